"""Cohort lists: ``--input-list cohort.csv`` of local paths / URLs and IDC series.

A cohort list is a CSV file with one input per row, in a column named ``path`` or
``SeriesInstanceUID`` (else the first column). A value that is a DICOM UID (digits and dots)
and not an existing path names an NCI Imaging Data Commons series: those are downloaded first
with idc-index's own downloader (:func:`download_idc_series`, the ``[idc]`` extra) into
``<download>/<SeriesInstanceUID>/`` and ingested from there. Relative paths are read from the
CSV file's folder, as PyRadiomics' batch files are.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

UID_PATTERN = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")
"""A DICOM UID (PS3.5 9.1): numeric components separated by dots, at most 64 characters."""
LIST_COLUMNS = ("path", "SeriesInstanceUID")
IDC_FOLDER_TEMPLATE = "%SeriesInstanceUID"
"""idc-index download hierarchy: one folder per series, named by its SeriesInstanceUID."""


def is_series_uid(value: str) -> bool:
    return len(value) <= 64 and bool(UID_PATTERN.match(value))


def read_input_list(path: str | Path) -> list[str]:
    """The non-empty values of a cohort list, in file order (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--input-list: {path} does not exist")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise ValueError(f"--input-list: {path} is empty; it needs a header row (path or "
                             f"SeriesInstanceUID)")
        column = next((c for c in LIST_COLUMNS if c in reader.fieldnames), reader.fieldnames[0])
        values = [(row.get(column) or "").strip() for row in reader]
    values = [v for v in values if v]
    if not values:
        raise ValueError(f"--input-list: {path} lists no input in column {column!r}")
    return values


def resolve_input_list(path: str | Path, *, download_dir: str | Path | None = None) -> list[str]:
    """Inputs of a cohort list: paths / URLs as given (relative ones from the list's folder), and
    the download folders of its IDC series (downloaded into ``download_dir``, default
    ``idc/`` beside the list)."""
    from ..io.fs import is_url

    path = Path(path)
    values = read_input_list(path)
    out: list[str] = []
    uids: list[str] = []
    for v in values:
        if is_url(v) or Path(v).is_absolute():
            out.append(v)
        elif (path.parent / v).exists() or not is_series_uid(v):
            out.append(str((path.parent / v).resolve()))
        else:
            uids.append(v)
    if uids:
        folder = Path(download_dir) if download_dir is not None else path.parent / "idc"
        out += [str(p) for p in download_idc_series(uids, folder)]
    return out


def download_idc_series(series_uids: Sequence[str], download_dir: str | Path) -> list[Path]:
    """Download IDC series with idc-index (``IDCClient.download_from_selection``) into
    ``download_dir/<SeriesInstanceUID>/``; returns those folders.

    Needs network access to IDC's public buckets (no credentials) and the ``[idc]`` extra. Series
    already complete in ``download_dir`` are synchronised, not fetched again. Raises ValueError
    naming the UIDs the installed index does not know.
    """
    from ..errors import MissingExtraError

    try:
        from idc_index import IDCClient
    except ImportError as err:
        raise MissingExtraError("idc-index", "idc", "downloading IDC series") from err
    uids = list(dict.fromkeys(series_uids))
    client = IDCClient.client()
    index = client.index
    rows = index.loc[index["SeriesInstanceUID"].isin(uids), ["SeriesInstanceUID", "instanceCount"]]
    expected = dict(zip(rows["SeriesInstanceUID"], rows["instanceCount"].astype(int)))
    unknown = [u for u in uids if u not in expected]
    if unknown:
        raise ValueError(f"{len(unknown)} SeriesInstanceUID(s) are not in the IDC index installed with "
                         f"idc-index (first: {unknown[0]}); check the UID or update idc-index-data")
    folder = Path(download_dir)
    folder.mkdir(parents=True, exist_ok=True)
    client.download_from_selection(downloadDir=str(folder), seriesInstanceUID=uids,
                                   dirTemplate=IDC_FOLDER_TEMPLATE, quiet=True, show_progress_bar=False,
                                   use_s5cmd_sync=True)
    # idc-index logs a failed transfer and returns: count what arrived against the index
    short = {u: n for u in uids if (n := _n_files(folder / u)) < expected[u]}
    if short:
        u, n = next(iter(short.items()))
        raise RuntimeError(f"{len(short)} IDC series incomplete after download (first: {u}, {n} of "
                           f"{expected[u]} instances in {folder / u}); check network access to IDC's bucket "
                           f"and run the command again (complete files are not fetched twice)")
    return [folder / u for u in uids]


def _n_files(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else 0
