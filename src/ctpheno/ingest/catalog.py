"""Group header records into series, validate them and build the manifest, sources and failures rows.

Grouping (no reliance on file names or folders): DICOM files group by
SeriesInstanceUID, a localizer sharing its series' UID being split off as its
own row; files without a SeriesInstanceUID group by (folder, StudyInstanceUID,
SeriesNumber, rows x columns, orientation). Each NIfTI / NRRD / MHA file is one
scan. Files that are not images, whose header is damaged, and empty folders
cannot be grouped; they become rows of ``failures.parquet`` (stage ``ingest``).

Everything written is pseudonymous: ids are salted HMACs
(:mod:`ctpheno.ingest.pseudonym`), dates become ``acquisition_offset_days``
from the subject's first study and ``source`` names the input by its index
and a pseudonymous folder token (``input0/d-1a2b3c4d5e6f``). Raw paths go only
to ``ingest/sources.parquet``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

import pandas as pd

from ..config.ingest import IngestConfig
from ..io.readers import volume_format
from ..io.remote import storable_path
from ..io.schemas import FAILURES, MANIFEST
from .discover import Inventory, folder_of
from .pseudonym import Pseudonymizer
from .reasons import is_rejection, join_reasons
from .roles import assign_kernel_classes, select_series, series_roles
from .validate import is_localizer, summarize_dicom_series, summarize_volume_file


def _rel(path: str, root: str) -> str:
    root = root.replace("\\", "/").rstrip("/")
    path = path.replace("\\", "/")
    if path == root:
        return path.rsplit("/", 1)[-1]
    return path[len(root) + 1 :] if path.startswith(root + "/") else path


def _strip_ext(name: str) -> str:
    low = name.lower()
    for ext in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if low.endswith(ext):
            return name[: -len(ext)]
    return name


def _date(text: str) -> date | None:
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date() if text else None
    except ValueError:
        return None


def group_key(rec: dict[str, Any], rel_folder: str) -> str:
    """The series a DICOM record belongs to (raw; hashed into the scan id).

    Within one SeriesInstanceUID, localizers and objects without pixels (a structured report,
    a presentation state) are split off as rows of their own, so that they never reject the
    image series that shares their UID.
    """
    suffix = "#localizer" if is_localizer(rec["image_type"]) else ""
    if rec.get("problem") == "no_pixel_data":
        suffix += f"#nonimage:{rec['sop_class']}"
    if rec["series_uid"]:
        return f"uid:{rec['series_uid']}{suffix}"
    iop = ",".join(f"{v:.3f}" for v in rec["iop"]) if rec["iop"] else "-"
    return (
        f"folder:{rel_folder}|{rec['study_uid']}|{rec['series_number']}|{rec['rows']}x{rec['columns']}"
        f"|{iop}{suffix}"
    )


def _failure(scan_id: str, error_type: str, code: str, message: str, source: str) -> dict[str, Any]:
    return {
        "scan_id": scan_id,
        "stage": "ingest",
        "error_type": error_type,
        "message": f"{code}: {message}",
        "source": source,
        "attempts": 1,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


class Catalog(NamedTuple):
    """What :func:`build_catalog` returns."""

    manifest: pd.DataFrame
    sources: pd.DataFrame
    failures: pd.DataFrame
    subject_map: dict[str, str]
    """Raw subject identifier -> pseudonym (for the optional mapping file)."""
    first_dates: dict[str, date]
    """Subject pseudonym -> first imaging date (in memory only: clinical dates become offsets)."""


def build_catalog(
    records: Sequence[dict[str, Any]], inv: Inventory, pseudo: Pseudonymizer, *, cfg: IngestConfig
) -> Catalog:
    """Manifest, sources, failures, subject map and first imaging dates from header records.

    Nothing returned holds a raw identifier except ``sources.paths``, ``subject_map`` and
    ``first_dates`` (the last two are never written as artifacts).
    """
    root_of = {p: i for i, p in inv.files}
    groups: dict[str, list[dict[str, Any]]] = {}
    volumes: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    for rec in records:
        i = root_of.get(rec["path"], 0)
        rel = _rel(rec["path"], inv.roots[i])
        src = f"input{i}/{pseudo('file', rel)}"
        if rec["kind"] == "dicom":
            groups.setdefault(group_key(rec, _rel(folder_of(rec["path"]), inv.roots[i])), []).append(rec)
        elif rec["kind"] == "volume":
            volumes.append(rec)
        elif rec["kind"] == "other":
            failures.append(
                _failure(
                    pseudo("file", rel),
                    "NonImageFile",
                    "non_image_file",
                    "neither DICOM nor a NIfTI/NRRD/MHA file; ignored",
                    src,
                )
            )
        elif rec["kind"] == "error":
            code = rec.get("code") or "unreadable_header"
            failures.append(
                _failure(
                    pseudo("file", rel),
                    "UnreadableSeriesError",
                    code,
                    f"cannot read the file ({rec['error']})",
                    src,
                )
            )
    for i, path, code, detail in inv.skipped:
        rel = _rel(path, inv.roots[i])
        kind = "folder" if code == "unreadable_folder" else "file"
        token = pseudo(kind, rel)
        failures.append(
            _failure(token, "UnreadableSeriesError", code, f"{detail}; not opened", f"input{i}/{token}")
        )
    for i in inv.missing:
        failures.append(
            _failure(
                pseudo("folder", f"input:{inv.roots[i]}"),
                "FileNotFoundError",
                "missing_input",
                f"input {i} of paths.inputs does not exist",
                f"input{i}",
            )
        )
    for i, folder in inv.empty_folders:
        rel = _rel(folder, inv.roots[i])
        failures.append(
            _failure(
                pseudo("folder", rel),
                "EmptyFolder",
                "empty_folder",
                "folder holds no files",
                f"input{i}/{pseudo('folder', rel)}",
            )
        )
    rows, sources, subject_map = [], [], {}
    for key, recs in groups.items():
        first = recs[0]
        i = root_of.get(first["path"], 0)
        rel_folder = _rel(folder_of(first["path"]), inv.roots[i])
        summary = summarize_dicom_series(recs, cfg=cfg)
        raw_subject = first["patient_id"] or (
            f"study:{first['study_uid']}" if first["study_uid"] else f"folder:{rel_folder}"
        )
        raw_study = first["study_uid"] or f"{raw_subject}|{first['date']}|{rel_folder}"
        folders = {folder_of(r["path"]) for r in recs}
        source = f"input{i}/{pseudo('folder', rel_folder)}"
        if len(folders) > 1:
            source += f" (+{len(folders) - 1} folders)"
        dates = [d for d in (_date(r["date"]) for r in recs) if d is not None]
        rows.append(
            _row(
                pseudo("scan", key),
                pseudo,
                raw_subject,
                raw_study,
                key.split("#")[0],
                "dicom",
                summary,
                source,
                min(dates) if dates else None,
            )
        )
        subject_map[raw_subject] = pseudo.subject(raw_subject)
        sources.append({"scan_id": rows[-1]["scan_id"], "format": "dicom",
                        "paths": [storable_path(p) for p in summary["paths"]]})
    for rec in volumes:
        i = root_of.get(rec["path"], 0)
        rel = _rel(rec["path"], inv.roots[i])
        summary = summarize_volume_file(rec, cfg=cfg)
        raw_subject = _strip_ext(rel.rsplit("/", 1)[-1])
        ext = rel[len(_strip_ext(rel)) :]
        rows.append(
            _row(
                pseudo("scan", f"file:{i}:{rel}"),
                pseudo,
                raw_subject,
                f"file:{i}:{rel}",
                f"file:{i}:{rel}",
                volume_format(rel) or "unknown",
                summary,
                f"input{i}/{pseudo('file', rel)}{ext}",
                None,
            )
        )
        subject_map[raw_subject] = pseudo.subject(raw_subject)
        sources.append(
            {"scan_id": rows[-1]["scan_id"], "format": rows[-1]["format"],
             "paths": [storable_path(p) for p in summary["paths"]]}
        )
    manifest = pd.DataFrame(rows, columns=[*MANIFEST.columns, "_date"]) if rows else None
    first_dates: dict[str, date] = {}
    if manifest is None:
        manifest = MANIFEST.empty()
    else:
        dated = manifest.dropna(subset=["_date"])
        first_dates = dated.groupby("subject_id")["_date"].min().to_dict()
        manifest = _offsets(manifest)
        manifest = assign_kernel_classes(manifest, {s["scan_id"]: s["paths"] for s in sources})
        manifest["selected"] = select_series(manifest, rule=cfg.selection, lung_kernels=cfg.lung_kernels,
                                             max_density_slice_mm=cfg.max_density_slice_mm)
        manifest["series_role"] = series_roles(manifest, airway_series=cfg.airway_series)
        manifest = _types(manifest).sort_values("scan_id", kind="stable").reset_index(drop=True)
    src_df = pd.DataFrame(sources, columns=["scan_id", "format", "paths"])
    fail_df = pd.DataFrame(failures, columns=list(FAILURES.columns))
    fail_df = fail_df.drop_duplicates("scan_id").reset_index(drop=True)
    fail_df["attempts"] = fail_df["attempts"].astype("Int64")
    return Catalog(manifest, src_df.sort_values("scan_id").reset_index(drop=True), fail_df, subject_map,
                   first_dates)


def _row(
    scan_id: str,
    pseudo: Pseudonymizer,
    raw_subject: str,
    raw_study: str,
    raw_series: str,
    fmt: str,
    summary: dict[str, Any],
    source: str,
    first_date: date | None,
) -> dict[str, Any]:
    reasons = summary["reasons"]
    row = {k: summary.get(k) for k in MANIFEST.columns if k in summary}
    row.update(
        scan_id=scan_id,
        subject_id=pseudo.subject(raw_subject),
        study_id=pseudo("study", raw_study),
        series_id=pseudo("series", raw_series),
        format=fmt,
        source=source,
        usable=not any(is_rejection(c) for c in reasons),
        reasons=join_reasons(reasons),
        selected=False,
        acquisition_offset_days=None,
        _date=first_date,
    )
    return row


def _offsets(df: pd.DataFrame) -> pd.DataFrame:
    """Dates -> days since the subject's first dated series; the dates themselves are dropped."""
    dates = pd.to_datetime(df["_date"])
    first = dates.groupby(df["subject_id"]).transform("min")
    df["acquisition_offset_days"] = (dates - first).dt.days.astype("float64")
    return df.drop(columns="_date")


def _types(df: pd.DataFrame) -> pd.DataFrame:
    for c, col in MANIFEST.columns.items():
        if c not in df:
            continue
        if col.dtype == "int":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("Int64")
        elif col.dtype == "float":
            df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
        elif col.dtype == "bool":
            df[c] = df[c].astype("boolean")
        elif col.dtype == "string":
            df[c] = df[c].astype("string")
    df["usable"] = df["usable"].astype(bool)
    return df
