"""Clinical table: schema check, pseudonymisation and the join report.

The table (CSV or Parquet) has one row per subject, identified by the column
``ingest.clinical_id_column`` holding the same raw identifier as the DICOM
PatientID (or, for NIfTI/NRRD/MHA inputs, the file name without extension).
It is written to ``clinical.parquet`` with that column replaced by
``subject_id`` — the same HMAC pseudonym as the manifest's — and every other
column unchanged, except columns whose names suggest direct identifiers
(``name``, ``birth``, ``dob``, ``mrn``, ``address``, ...), which are dropped.

Checked ranges (when the column exists; missing values are allowed):

=========================== ======================= ==============================
column                      allowed                 note
=========================== ======================= ==============================
``age_years``               0 - 120
``height_cm``               50 - 250
``pack_years``              0 - 300
``fev1_pct_pred``           0 - 200                 % predicted
``fev1_fvc``                0 - 1.2                 a ratio, not a percentage
``gold_stage``              0, 1, 2, 3, 4           integers; PRISm goes in ``prism``
``sex``                     M, F, O, U              case-insensitive
=========================== ======================= ==============================
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd

from ..errors import ClinicalTableError
from .pseudonym import Pseudonymizer

log = logging.getLogger(__name__)

RANGES: dict[str, tuple[float, float]] = {
    "age_years": (0, 120),
    "height_cm": (50, 250),
    "pack_years": (0, 300),
    "fev1_pct_pred": (0, 200),
    "fev1_fvc": (0, 1.2),
    "gold_stage": (0, 4),
    "fev1_decline_ml_per_year": (-1000, 1000),
}
"""Numeric columns and their plausible ranges (inclusive)."""
SEX_VALUES = {"M", "F", "O", "U"}
IDENTIFIER_PATTERN = re.compile(r"name|birth|dob|mrn|ssn|address|phone|e-?mail|accession", re.IGNORECASE)
"""Clinical columns matching this are dropped (direct identifiers must not leave ingest)."""


def read_clinical(path: str | Path, *, id_column: str) -> pd.DataFrame:
    """Read the clinical CSV/Parquet with the id column as text (leading zeros kept)."""
    path = Path(path)
    if not path.is_file():
        raise ClinicalTableError(f"clinical table {path} does not exist; fix paths.clinical")
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".txt", ".tsv"):
        df = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype={id_column: str})
    else:
        raise ClinicalTableError(
            f"clinical table {path.name}: unsupported type {path.suffix!r}; use CSV or Parquet"
        )
    if id_column not in df.columns:
        raise ClinicalTableError(
            f"clinical table {path.name} has no column {id_column!r} (columns: "
            f"{list(df.columns)[:12]}); set ingest.clinical_id_column"
        )
    df[id_column] = df[id_column].astype("string").str.strip()
    return df


def check_clinical(df: pd.DataFrame, *, id_column: str, where: str = "clinical table") -> pd.DataFrame:
    """Validate ids, types and ranges (see the module docstring); return ``df`` unchanged."""
    ids = df[id_column]
    if ids.isna().any() or (ids == "").any():
        rows = list(df.index[ids.isna() | (ids == "")][:5])
        raise ClinicalTableError(f"{where}: empty {id_column!r} in rows {rows}")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ClinicalTableError(
            f"{where}: {len(dup)} duplicate subject ids in {id_column!r} (one row per subject is expected)"
        )
    for col, (lo, hi) in RANGES.items():
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad_type = values.isna() & df[col].notna()
        if bad_type.any():
            raise ClinicalTableError(
                f"{where}: column {col!r} must be numeric; got {df.loc[bad_type, col].head(3).tolist()}"
            )
        out = values.notna() & ((values < lo) | (values > hi))
        if out.any():
            hint = " (give FEV1/FVC as a ratio, not %)" if col == "fev1_fvc" else ""
            raise ClinicalTableError(
                f"{where}: column {col!r} has {int(out.sum())} value(s) outside "
                f"[{lo}, {hi}], e.g. {values[out].head(3).tolist()}{hint}"
            )
        if col == "gold_stage":
            frac = values.notna() & (values != values.round())
            if frac.any():
                raise ClinicalTableError(
                    f"{where}: gold_stage must be an integer 0-4; got {values[frac].head(3).tolist()}"
                )
    if "sex" in df.columns:
        sex = df["sex"].dropna().astype(str).str.upper()
        bad = sex[~sex.isin(SEX_VALUES)]
        if len(bad):
            raise ClinicalTableError(
                f"{where}: column 'sex' must be one of {sorted(SEX_VALUES)}; got {sorted(set(bad))[:5]}"
            )
    return df


def pseudonymise_clinical(df: pd.DataFrame, pseudo: Pseudonymizer, *, id_column: str) -> pd.DataFrame:
    """Replace the id column by ``subject_id`` pseudonyms (first column); drop identifier columns."""
    drop = [c for c in df.columns if c != id_column and IDENTIFIER_PATTERN.search(str(c))]
    if drop:
        log.warning("clinical table: dropping identifier-like columns %s", drop)
    out = df.drop(columns=drop + [id_column]).copy()
    if "subject_id" in out.columns:
        out = out.drop(columns="subject_id")
    out.insert(0, "subject_id", [pseudo.subject(str(v)) for v in df[id_column]])
    return out.reset_index(drop=True)


def join_report(clinical: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """One row per subject in either table: has_images, has_clinical, n_scans, n_usable."""
    scans = manifest.groupby("subject_id").agg(n_scans=("scan_id", "size"), n_usable=("usable", "sum"))
    subjects = sorted(set(clinical["subject_id"]) | set(scans.index))
    rep = pd.DataFrame({"subject_id": subjects})
    rep["has_clinical"] = rep["subject_id"].isin(set(clinical["subject_id"]))
    rep["has_images"] = rep["subject_id"].isin(set(scans.index))
    rep = rep.merge(scans.reset_index(), on="subject_id", how="left")
    rep["n_scans"] = rep["n_scans"].fillna(0).astype("int64")
    rep["n_usable"] = rep["n_usable"].fillna(0).astype("int64")
    no_img = int((~rep["has_images"]).sum())
    no_clin = int((~rep["has_clinical"]).sum())
    if no_img:
        log.warning(
            "clinical join: %d subject(s) with clinical data but no images "
            "(see ingest/clinical_join.parquet)",
            no_img,
        )
    if no_clin:
        log.warning(
            "clinical join: %d subject(s) with images but no clinical row (see ingest/clinical_join.parquet)",
            no_clin,
        )
    return rep
