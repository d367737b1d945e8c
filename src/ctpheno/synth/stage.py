"""Pipeline stage ``synth``: write the synthetic demo cohort into the work directory."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..cluster.runner import StageResult
from ..config.pipeline import PipelineConfig
from ..io.layout import WorkDir
from ..io.tables import read_json
from .cohort import STAGE, write_cohort

log = logging.getLogger(__name__)


def cohort_dir(cfg: PipelineConfig, wd: WorkDir) -> Path:
    """``cfg.synth.out``, relative paths resolved inside the work directory."""
    out = Path(cfg.synth.out)
    return out if out.is_absolute() else wd.root / out


def cohort_is_complete(out: Path, *, n: int, seed: int, size: str, fmt: str,
                       two_reconstructions: float = 0.0) -> bool:
    """True when ``out`` already holds exactly this cohort (cohort.json matches, tables present)."""
    meta_path = out / "cohort.json"
    if not (meta_path.exists() and (out / "clinical.csv").exists() and (out / "truth.parquet").exists()):
        return False
    try:
        meta = read_json(meta_path)
    except (OSError, ValueError):
        return False
    if (meta.get("n"), meta.get("seed"), meta.get("size"), meta.get("format")) != (n, seed, size, fmt):
        return False
    if float(meta.get("two_reconstructions", 0.0)) != float(two_reconstructions):
        return False
    images = [p for p in (out / "images").iterdir() if not p.name.startswith(".")] if (out / "images").exists() else []
    return len(images) == int(meta.get("n_series", n))


def run_synth(cfg: PipelineConfig, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Write the cohort of ``cfg.synth`` to ``cfg.synth.out`` (skipped when it already exists).

    The pipeline's ingest stage then reads ``<out>/images`` and ``<out>/clinical.csv``.
    Per-subject resume markers live beside the cohort (``<out>/.state``), not in the work
    directory: the synthetic truth carries the raw subject ids the work directory must never hold.
    """
    s = cfg.synth
    out = cohort_dir(cfg, wd)
    t0 = time.perf_counter()
    res = StageResult(STAGE)
    ids = [f"subject-{i:05d}" for i in range(s.n_subjects)]
    if not s.enabled:
        log.info("synth: disabled (synth.enabled = false); nothing to do")
        return res
    if not force and cohort_is_complete(out, n=s.n_subjects, seed=s.seed, size=s.size, fmt=s.format,
                                        two_reconstructions=s.two_reconstructions):
        log.info("synth: cohort already in %s (n=%d, seed=%d); use --force to regenerate", out, s.n_subjects, s.seed)
        res.skipped = ids
    else:
        write_cohort(out, n=s.n_subjects, seed=s.seed, size=s.size, fmt=s.format, client=client, workdir=None,
                     force=force, two_reconstructions=s.two_reconstructions)
        res.done = ids
    res.seconds = time.perf_counter() - t0
    return res
