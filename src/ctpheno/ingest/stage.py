"""The ingest stage: inputs -> ``manifest.parquet``, ``ingest/sources.parquet``, ``clinical.parquet``.

Bad input never stops the run: series that fail validation are manifest rows
with ``usable = False`` and their reason codes; files that cannot be grouped
(non-image files, damaged headers) and empty folders are rows of
``failures.parquet`` with stage ``ingest``; a clinical table that fails its
schema check is recorded there too (scan id ``clinical``) and
``clinical.parquet`` is not written.
"""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from ..cluster.runner import StageResult
from ..config.pipeline import PipelineConfig
from ..errors import ClinicalTableError, NoInputFoundError
from ..io.layout import WorkDir
from ..io.schemas import FAILURES, MANIFEST, SOURCES
from ..io.tables import atomic_path, write_table
from .catalog import build_catalog
from .clinical import join_report, pseudonymise_clinical, read_clinical
from .discover import collect_records, take_inventory
from .pseudonym import Pseudonymizer, resolve_salt
from .reasons import NOTED_ONLY, failure_code

log = logging.getLogger(__name__)
STAGE = "ingest"


def clinical_join_path(wd: WorkDir) -> Path:
    return wd.root / "ingest" / "clinical_join.parquet"


def pseudonym_map_path(wd: WorkDir) -> Path:
    return wd.root / "ingest" / "pseudonym_map.csv"


def write_private_table(df: pd.DataFrame, dest: Path) -> Path:
    """Write a table readable by the owner only (mode 0600), atomically."""
    SOURCES.validate(df, where=str(dest))
    with atomic_path(dest, suffix=".parquet") as tmp:
        os.chmod(tmp, 0o600)
        df.to_parquet(tmp, index=False)
    os.chmod(dest, 0o600)
    return dest


def _write_failures(wd: WorkDir, rows: pd.DataFrame) -> None:
    """Replace this stage's rows of ``failures.parquet`` with ``rows``."""
    old = pd.read_parquet(wd.failures) if wd.failures.exists() else FAILURES.empty()
    keep = old[old["stage"] != STAGE]
    frames = [f for f in (keep, rows) if len(f)]
    df = pd.concat(frames, ignore_index=True) if frames else FAILURES.empty()
    df["attempts"] = df["attempts"].astype("Int64")
    if len(df) or wd.failures.exists():
        write_table(df.reset_index(drop=True), wd.failures, FAILURES)


def run_ingest(cfg: PipelineConfig, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Discover, validate and catalogue ``cfg.paths.inputs``; join ``cfg.paths.clinical``.

    ``force`` is accepted for a uniform stage signature; ingest always re-reads the headers
    (cheap) so that the manifest reflects the inputs as they are now.

    The outputs are replaced as one: the old ``manifest.parquet`` is removed first and the new one
    written last, after ``ingest/sources.parquet``, the clinical table and the failures, so a run
    that stops midway (a full disk) leaves no manifest pointing at missing sources — later stages
    then ask for ingest to be re-run. Inputs holding no series at all raise
    :class:`~ctpheno.errors.NoInputFoundError` (exit code 2) after recording their failures.
    """
    t0 = time.perf_counter()
    wd = wd if isinstance(wd, WorkDir) else WorkDir(wd)
    wd.ensure()
    icfg = cfg.ingest
    pseudo = Pseudonymizer(resolve_salt(cfg.paths, wd))
    inv = take_inventory([str(p) for p in cfg.paths.inputs])
    records = collect_records([p for _, p in inv.files], client=client, batch_size=icfg.batch_size)
    catalog = build_catalog(records, inv, pseudo, cfg=icfg)
    manifest, sources, failures = catalog.manifest, catalog.sources, catalog.failures
    wd.manifest.unlink(missing_ok=True)  # ingest incomplete until the new manifest is written
    if not len(manifest):
        _write_failures(wd, failures)
        raise NoInputFoundError(
            f"no DICOM series or NIfTI/NRRD/MHA volume found in the {len(inv.roots)} input(s) "
            f"({len(inv.files)} file(s) looked at, {len(failures)} recorded in {wd.failures.name}); "
            "check --input / paths.inputs"
        )
    write_private_table(sources, wd.sources)
    if cfg.paths.clinical:
        failures = _join_clinical(cfg, wd, pseudo, manifest, failures, catalog.first_dates)
    _write_failures(wd, failures)
    if icfg.write_pseudonym_map:
        dest = pseudonym_map_path(wd)
        with atomic_path(dest, suffix=".csv") as tmp:
            os.chmod(tmp, 0o600)
            pd.DataFrame(sorted(catalog.subject_map.items()), columns=["raw_id", "subject_id"]).to_csv(
                tmp, index=False
            )
        os.chmod(dest, 0o600)
    write_table(manifest, wd.manifest, MANIFEST)
    failed = [sid for sid, msg in zip(failures["scan_id"], failures["message"])
              if failure_code(msg) not in NOTED_ONLY]
    result = StageResult(STAGE, done=list(manifest["scan_id"]), failed=failed, table=manifest)
    result.seconds = time.perf_counter() - t0
    n_usable = int(manifest["usable"].sum()) if len(manifest) else 0
    log.info(
        "ingest: %d series (%d usable, %d selected), %d unreadable/ignored item(s) in %.1f s",
        len(manifest),
        n_usable,
        int(manifest["selected"].fillna(False).sum()) if len(manifest) else 0,
        len(failures),
        result.seconds,
    )
    return result


def _join_clinical(cfg: PipelineConfig, wd: WorkDir, pseudo: Pseudonymizer, manifest: pd.DataFrame,
                   failures: pd.DataFrame, first_dates: dict) -> pd.DataFrame:
    """Write ``clinical.parquet`` and the join report, or record why the table was refused.

    The failure row's ``source`` is ``clinical`` and its message names columns and rows only:
    neither the file's name nor a cell value passes ingest.
    """
    icfg = cfg.ingest
    try:
        raw = read_clinical(str(cfg.paths.clinical), id_column=icfg.clinical_id_column)
        clinical = pseudonymise_clinical(raw, pseudo, id_column=icfg.clinical_id_column,
                                         columns=icfg.clinical_columns, first_dates=first_dates)
    except ClinicalTableError as err:
        log.error("ingest: %s", err)
        row = pd.DataFrame(
            [
                {
                    "scan_id": "clinical",
                    "stage": STAGE,
                    "error_type": type(err).__name__,
                    "message": str(err),
                    "source": "clinical",
                    "attempts": 1,
                    "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            ]
        )
        row["attempts"] = row["attempts"].astype("Int64")
        wd.clinical.unlink(missing_ok=True)  # an earlier run's table would describe another file
        clinical_join_path(wd).unlink(missing_ok=True)
        return pd.concat([failures, row], ignore_index=True) if len(failures) else row
    write_table(clinical, wd.clinical)
    write_table(join_report(clinical, manifest), clinical_join_path(wd))
    return failures
