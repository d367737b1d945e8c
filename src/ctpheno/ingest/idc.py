"""Cohort queries against the NCI Imaging Data Commons, offline.

The series index bundled with the ``idc-index-data`` package (a Parquet file,
``idc_index_data.IDC_INDEX_PARQUET_FILEPATH``) is read directly with pyarrow.
``idc_index.IDCClient`` is deliberately not used: its constructor looks for the
``s5cmd`` binary and some of its indices are fetched from GitHub on demand,
whereas this module must work without network. Downloading the listed series
needs network and ``s5cmd``::

    s5cmd --no-sign-request --endpoint-url https://s3.amazonaws.com run s5cmd_manifest.txt
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

SERIES_COLUMNS = [
    "collection_id",
    "PatientID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "StudyDate",
    "SeriesDescription",
    "BodyPartExamined",
    "Manufacturer",
    "ManufacturerModelName",
    "instanceCount",
    "series_size_MB",
    "series_aws_url",
    "crdc_series_uuid",
]
"""Columns of the series list (the index's own names)."""


def index_path() -> Path:
    """The bundled IDC series index (Parquet)."""
    try:
        import idc_index_data
    except ImportError as err:  # pragma: no cover - dependency missing
        from ..errors import MissingExtraError

        raise MissingExtraError("idc-index", "idc", "the IDC cohort query") from err
    return Path(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)


def index_version() -> str:
    import idc_index_data

    return str(getattr(idc_index_data, "__version__", "unknown"))


def query_collection(
    collection: str, *, limit_patients: int | None = None, modality: str = "CT"
) -> pd.DataFrame:
    """Series of ``modality`` in an IDC collection, optionally for the first ``limit_patients`` patients.

    Patients are taken in PatientID order, so a given limit always returns the same cohort
    for one index version. Raises ValueError naming close collection ids when the id is unknown.
    """
    import pyarrow.parquet as pq

    if limit_patients is not None and limit_patients < 1:
        raise ValueError(f"limit_patients must be >= 1; got {limit_patients}")
    coll = collection.strip().lower().replace("-", "_")
    path = index_path()
    table = pq.read_table(
        path, columns=SERIES_COLUMNS, filters=[("collection_id", "==", coll), ("Modality", "==", modality)]
    )
    df = table.to_pandas()
    if df.empty:
        ids = pq.read_table(path, columns=["collection_id"]).column(0).unique().to_pylist()
        close = sorted(i for i in ids if coll[:3] in i)[:10]
        raise ValueError(
            f"IDC collection {collection!r} has no {modality} series in the bundled index "
            f"(idc-index-data {index_version()}); similar ids: {close or sorted(ids)[:10]}"
        )
    df = df.sort_values(["PatientID", "StudyInstanceUID", "SeriesInstanceUID"], kind="stable")
    if limit_patients is not None:
        keep = sorted(df["PatientID"].unique())[:limit_patients]
        df = df[df["PatientID"].isin(keep)]
    return df.reset_index(drop=True)


def s5cmd_manifest(series: pd.DataFrame, *, dest: str | Path) -> str:
    """``s5cmd run`` lines copying each series into ``dest/<crdc_series_uuid>/``."""
    dest = str(dest).rstrip("/")
    lines = [
        f'cp {url} "{dest}/{uuid}/"'
        for url, uuid in zip(series["series_aws_url"], series["crdc_series_uuid"])
    ]
    return "\n".join(lines) + ("\n" if lines else "")


def write_idc_outputs(series: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write ``series.csv`` (the series list) and ``s5cmd_manifest.txt`` (download into ``out/dicom``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "series.csv"
    series.to_csv(csv, index=False)
    manifest = out / "s5cmd_manifest.txt"
    manifest.write_text(s5cmd_manifest(series, dest=out / "dicom"))
    return [csv, manifest]
