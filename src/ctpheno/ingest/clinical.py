"""Clinical table: allow-listed columns, type and range checks, pseudonymisation, join report.

The table (CSV or Parquet) has one row per subject, identified by the column
``ingest.clinical_id_column`` holding the same raw identifier as the DICOM
PatientID (or, for NIfTI/NRRD/MHA inputs, the file name without extension).
It is written to ``clinical.parquet`` with that column replaced by
``subject_id`` — the same HMAC pseudonym as the manifest's — and **only the
columns of ``ingest.clinical_columns``** (an allow-list with a type per column):
every other column (free text, names, addresses, record numbers, raw dates) is
dropped, and ``date`` columns become ``<column>_offset_days``, days from the
subject's first dated imaging series, as the manifest does with acquisition dates.

Checked (missing values allowed): numbers are numbers within ``[min, max]``,
``int`` columns whole numbers, categories among their ``values``, booleans
true/false/yes/no/1/0, dates parseable. A failing table raises
:class:`~ctpheno.errors.ClinicalTableError` whose message names the column and
the (1-based) data rows, never a cell's value, since cells may hold identifiers.
Default columns and ranges (:data:`~ctpheno.config.ingest.DEFAULT_CLINICAL_COLUMNS`):

============================ ========== ==============================
column                       type       allowed
============================ ========== ==============================
``age_years``                float      0 - 120
``sex``                      category   M, F, O, U
``height_cm``                float      50 - 250
``weight_kg``                float      10 - 400
``pack_years``               float      0 - 300
``fev1_pct_pred``            float      0 - 200 (% predicted)
``fev1_fvc``                 float      0 - 1.2 (a ratio, not a percentage)
``fev1_l`` / ``fvc_l``       float      0 - 10 / 0 - 12 (litres)
``gold_stage``               int        0 - 4 (PRISm goes in ``prism``)
``prism``                    bool
``fev1_decline_ml_per_year`` float      -1000 - 1000
============================ ========== ==============================
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ..config.ingest import DEFAULT_CLINICAL_COLUMNS, ClinicalColumn
from ..errors import ClinicalTableError
from .pseudonym import Pseudonymizer

log = logging.getLogger(__name__)

TRUE_WORDS = {"TRUE", "T", "YES", "Y", "1", "1.0"}
FALSE_WORDS = {"FALSE", "F", "NO", "N", "0", "0.0"}
MAX_ROWS_NAMED = 5
"""How many offending rows an error message lists."""


def read_clinical(path: str | Path, *, id_column: str) -> pd.DataFrame:
    """Read the clinical CSV/Parquet with the id column as text (leading zeros kept).

    Messages do not name the file: they end up in ``failures.parquet``, past ingest.
    """
    path = Path(path)
    if not path.is_file():
        raise ClinicalTableError("the clinical table (paths.clinical) does not exist or is not a file")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv", ".txt", ".tsv"):
        raise ClinicalTableError(f"clinical table: unsupported type {path.suffix!r}; use CSV or Parquet")
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={id_column: str})
    except Exception as err:  # noqa: BLE001 - parser messages may quote cells: only the type is kept
        raise ClinicalTableError(
            f"clinical table cannot be read as {'Parquet' if suffix in ('.parquet', '.pq') else 'CSV'} "
            f"({type(err).__name__})") from None
    if id_column not in df.columns:
        raise ClinicalTableError(
            f"clinical table has no column {id_column!r} (it has {len(df.columns)} columns); "
            "set ingest.clinical_id_column"
        )
    df[id_column] = df[id_column].astype("string").str.strip()
    return df.reset_index(drop=True)


def _rows(mask: pd.Series | np.ndarray) -> str:
    idx = np.flatnonzero(np.asarray(mask)) + 1
    more = f" and {len(idx) - MAX_ROWS_NAMED} more" if len(idx) > MAX_ROWS_NAMED else ""
    return f"row{'s' if len(idx) > 1 else ''} {', '.join(str(i) for i in idx[:MAX_ROWS_NAMED])}{more}"


def _convert(values: pd.Series, col: str, spec: ClinicalColumn, where: str) -> pd.Series:
    """One column converted to its type, or ClinicalTableError naming the column and rows."""
    present = values.notna() & (values.astype("string").str.strip() != "")
    if spec.type in ("float", "int"):
        num = pd.to_numeric(values.where(present), errors="coerce").astype("float64")
        bad = present & num.isna()
        if bad.any():
            raise ClinicalTableError(f"{where}: column {col!r} must be numeric; {_rows(bad)} are not")
        lo = -np.inf if spec.min is None else spec.min
        hi = np.inf if spec.max is None else spec.max
        out = num.notna() & ((num < lo) | (num > hi))
        if out.any():
            hint = " (give FEV1/FVC as a ratio, not %)" if col == "fev1_fvc" else ""
            raise ClinicalTableError(
                f"{where}: column {col!r} has {int(out.sum())} value(s) outside [{lo:g}, {hi:g}] "
                f"in {_rows(out)}{hint}"
            )
        if spec.type == "int":
            frac = num.notna() & (num != num.round())
            if frac.any():
                raise ClinicalTableError(f"{where}: column {col!r} must hold whole numbers; {_rows(frac)} do not")
        return num
    text = values.astype("string").str.strip().str.upper()
    if spec.type == "category":
        allowed = {v.upper() for v in spec.values or []}
        bad = present & ~text.isin(allowed)
        if bad.any():
            raise ClinicalTableError(
                f"{where}: column {col!r} must be one of {sorted(allowed)}; {_rows(bad)} are not")
        return text.where(present).astype("string")
    if spec.type == "bool":
        bad = present & ~text.isin(TRUE_WORDS | FALSE_WORDS)
        if bad.any():
            raise ClinicalTableError(f"{where}: column {col!r} must be true/false; {_rows(bad)} are not")
        return text.isin(TRUE_WORDS).astype("boolean").where(present, pd.NA)
    parsed = pd.to_datetime(values.where(present), errors="coerce", format="mixed")
    bad = present & parsed.isna()
    if bad.any():
        raise ClinicalTableError(f"{where}: column {col!r} must hold dates; {_rows(bad)} do not")
    return parsed


def clean_clinical(df: pd.DataFrame, *, id_column: str,
                   columns: Mapping[str, ClinicalColumn] | None = None,
                   where: str = "clinical table") -> pd.DataFrame:
    """The id column and the allow-listed columns present, each converted to its type.

    Raises :class:`ClinicalTableError` (column and rows named, values never) for empty or
    duplicate ids and for values that fail their column's type or range.
    """
    columns = DEFAULT_CLINICAL_COLUMNS if columns is None else columns
    ids = df[id_column]
    empty = ids.isna() | (ids.astype("string").str.strip() == "")
    if empty.any():
        raise ClinicalTableError(f"{where}: empty {id_column!r} in {_rows(empty)}")
    dup = ids.duplicated(keep="first")
    if dup.any():
        raise ClinicalTableError(
            f"{where}: {int(dup.sum())} duplicate subject id(s) in {id_column!r} ({_rows(dup)}); "
            "one row per subject is expected"
        )
    out = pd.DataFrame({id_column: ids.astype("string")}, index=df.index)
    for col in df.columns:
        if col in columns and col != id_column:
            out[col] = _convert(df[col], col, columns[col], where)
    return out


def check_clinical(df: pd.DataFrame, *, id_column: str,
                   columns: Mapping[str, ClinicalColumn] | None = None,
                   where: str = "clinical table") -> pd.DataFrame:
    """Validate ids, types and ranges (see the module docstring); return ``df`` unchanged."""
    clean_clinical(df, id_column=id_column, columns=columns, where=where)
    return df


def pseudonymise_clinical(df: pd.DataFrame, pseudo: Pseudonymizer, *, id_column: str,
                          columns: Mapping[str, ClinicalColumn] | None = None,
                          first_dates: Mapping[str, date] | None = None) -> pd.DataFrame:
    """``subject_id`` pseudonyms (first column) and the allow-listed columns, dates as day offsets.

    ``first_dates`` maps subject pseudonyms to their first imaging date (the origin of the
    manifest's ``acquisition_offset_days``); a subject without one gets NaN offsets.
    """
    columns = DEFAULT_CLINICAL_COLUMNS if columns is None else columns
    clean = clean_clinical(df, id_column=id_column, columns=columns)
    dropped = [c for c in df.columns if c != id_column and c not in clean.columns]
    if dropped:
        log.info("clinical table: %d column(s) not in ingest.clinical_columns dropped", len(dropped))
    subjects = [pseudo.subject(str(v)) for v in clean[id_column]]
    out = pd.DataFrame({"subject_id": subjects})
    origin = pd.to_datetime(pd.Series([(first_dates or {}).get(s) for s in subjects], dtype="object"))
    for col in clean.columns:
        if col == id_column or col == "subject_id":
            continue
        if columns[col].type == "date":
            out[f"{col}_offset_days"] = (clean[col].reset_index(drop=True) - origin).dt.days.astype("float64")
        else:
            out[col] = clean[col].reset_index(drop=True)
    return out


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
