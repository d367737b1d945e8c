"""QC that gates: which scans the model stages leave out, and why (``models/excluded_scans.parquet``).

Every QC flag has a severity (:data:`ctpheno.preprocess.qc.QC_FLAG_SEVERITY`). The flags come
from segmentation QC (``qc/qc.parquet``, column ``flags``), from the QCT stage
(``features/qct.parquet``, column ``qct_flags``) and from the airways stage (its column
``airway_tree_flags``: about the airway endpoints, ``info``/``warn``, so they never gate by
default). With ``models.qc_gate.enabled`` (default) a density scan with a flag whose severity is
in ``models.qc_gate.severities`` (default ``exclude``) and not in ``models.qc_gate.keep_flags`` is
left out of clustering and of the supervised models; :func:`qc_flag_table` lists every flagged scan with its flags and severities
(what the report shows first) and :func:`excluded_scans` the ones the gate removes.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from ..io.layout import WorkDir
from ..io.schemas import EXCLUDED_SCANS
from ..io.tables import write_table
from .qc import QC_FLAG_SEVERITY

SEVERITY_ORDER = {"exclude": 0, "warn": 1, "info": 2}
UNKNOWN_FLAG_SEVERITY = "warn"
"""Severity of a flag missing from the table (e.g. one added by a newer stage)."""


def _split(text: object) -> list[str]:
    return [f for f in str(text or "").split(";") if f and f != "<NA>"] if pd.notna(text) else []


FLAG_COLUMNS = {"qct_flags": "qct", "airway_tree_flags": "airways"}
"""Flag columns of ``features/qct.parquet`` (whole-scan values, repeated on every region row) and the
``source`` their flags are listed under."""
COVERAGE_FLAGS = ("apex_cut", "base_cut")
"""Coverage flags the QCT stage re-measures with a tolerance (a recess tip in the end slice is not a
truncated lung); once it has run, segmentation QC's any-voxel versions of them are not used."""


def qc_flag_table(wd: WorkDir) -> pd.DataFrame:
    """One row per (density scan, flag): ``scan_id``, ``flag``, ``severity``, ``source`` (``qc`` | ``qct`` |
    ``airways``).

    Sorted with the most severe first. Airway series (``series_role == airway``) are left out:
    they feed only the airway columns of their study's density scan. ``apex_cut`` / ``base_cut``
    come from the QCT stage when it has run (:data:`COVERAGE_FLAGS`).
    """
    rows: list[dict[str, str]] = []
    qct_ran = wd.qct.is_file()
    if wd.qc_table.is_file():
        qc = pd.read_parquet(wd.qc_table)
        if "series_role" in qc:
            qc = qc[qc["series_role"].fillna("density").astype(str) != "airway"]
        for sid, flags in zip(qc["scan_id"].astype(str), qc.get("flags", pd.Series("", index=qc.index))):
            rows += [{"scan_id": sid, "flag": f, "source": "qc"} for f in _split(flags)
                     if not (qct_ran and f in COVERAGE_FLAGS)]
    if wd.qct.is_file():
        per_scan = pd.read_parquet(wd.qct).drop_duplicates("scan_id")
        for column, source in FLAG_COLUMNS.items():
            if column in per_scan:
                for sid, flags in zip(per_scan["scan_id"].astype(str), per_scan[column]):
                    rows += [{"scan_id": sid, "flag": f, "source": source} for f in _split(flags)]
    df = pd.DataFrame(rows, columns=["scan_id", "flag", "source"]).drop_duplicates(["scan_id", "flag"])
    df["severity"] = df["flag"].map(QC_FLAG_SEVERITY).fillna(UNKNOWN_FLAG_SEVERITY)
    order = df["severity"].map(SEVERITY_ORDER)
    return (df.assign(_o=order).sort_values(["_o", "scan_id", "flag"], kind="stable")
            .drop(columns="_o").reset_index(drop=True)[["scan_id", "flag", "severity", "source"]])


def excluded_scans(flags: pd.DataFrame, *, severities: Iterable[str] = ("exclude",),
                   keep_flags: Iterable[str] = ()) -> pd.DataFrame:
    """Scans the gate removes: ``scan_id``, ``reasons`` (the gating flags, ``;``-joined), ``severity``."""
    sev, keep = set(severities), set(keep_flags)
    hit = flags[flags["severity"].isin(sev) & ~flags["flag"].isin(keep)]
    out = (hit.groupby("scan_id", sort=True)
           .agg(reasons=("flag", lambda f: ";".join(f)), severity=("severity", "first")).reset_index())
    return out[["scan_id", "reasons", "severity"]]


def gate(wd: WorkDir, *, enabled: bool = True, severities: Iterable[str] = ("exclude",),
         keep_flags: Iterable[str] = ()) -> set[str]:
    """Write ``models/excluded_scans.parquet`` and return the scan ids the model stages leave out."""
    table = excluded_scans(qc_flag_table(wd), severities=severities, keep_flags=keep_flags)
    table["applied"] = bool(enabled)
    wd.excluded_scans.parent.mkdir(parents=True, exist_ok=True)
    write_table(table, wd.excluded_scans, EXCLUDED_SCANS)
    return set(table["scan_id"]) if enabled else set()
