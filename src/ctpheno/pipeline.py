"""Whole-pipeline orchestration: runs the stages in order on one Dask client.

Each stage exposes ``run_<stage>(cfg, workdir, client, *, force=False)`` in its
``stage`` module; this file only wires them. Stages communicate solely through
the artifacts of :mod:`ctpheno.io.layout`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from .cluster.client import open_client
from .config.pipeline import PipelineConfig, save_resolved
from .io.layout import WorkDir
from .logs import new_run_id, setup_logging

log = logging.getLogger(__name__)

StageRunner = Callable[..., Any]


def _synth() -> StageRunner:
    from .synth.stage import run_synth
    return run_synth


def _ingest() -> StageRunner:
    from .ingest.stage import run_ingest
    return run_ingest


def _preprocess() -> StageRunner:
    from .preprocess.stage import run_preprocess
    return run_preprocess


def _qct() -> StageRunner:
    from .features.stage import run_qct
    return run_qct


def _radiomics() -> StageRunner:
    from .features.stage import run_radiomics
    return run_radiomics


def _embed() -> StageRunner:
    from .features.deep_embeddings.stage import run_embeddings
    return run_embeddings


def _cluster() -> StageRunner:
    from .train.stage import run_clustering
    return run_clustering


def _supervised() -> StageRunner:
    from .train.stage import run_supervised
    return run_supervised


def _report() -> StageRunner:
    from .eval.stage import run_report
    return run_report


# name -> loader of the stage's runner, in pipeline order
STAGES: dict[str, Callable[[], StageRunner]] = {
    "synth": _synth,
    "ingest": _ingest,
    "preprocess": _preprocess,
    "qct": _qct,
    "radiomics": _radiomics,
    "embed": _embed,
    "cluster": _cluster,
    "supervised": _supervised,
    "report": _report,
}


def stage_enabled(cfg: PipelineConfig, name: str) -> bool:
    return {
        "synth": cfg.synth.enabled,
        "qct": cfg.features.qct.enabled,
        "radiomics": cfg.features.radiomics.enabled,
        "embed": cfg.embeddings.enabled,
        "cluster": cfg.models.unsupervised.enabled,
        "supervised": cfg.models.supervised.enabled,
        "report": cfg.report.enabled,
    }.get(name, True)


def synthetic_inputs(cfg: PipelineConfig) -> PipelineConfig:
    """When the synthetic cohort is generated and no inputs are given, read it as the input."""
    if not cfg.synth.enabled or cfg.paths.inputs:
        return cfg
    out = cfg.synth.out if cfg.synth.out.is_absolute() else Path(cfg.paths.workdir) / cfg.synth.out
    paths = cfg.paths.model_copy(update={"inputs": [str(out / "images")],
                                         "clinical": cfg.paths.clinical or str(out / "clinical.csv")})
    return cfg.model_copy(update={"paths": paths})


def start_run(cfg: PipelineConfig, *, command: str) -> tuple[WorkDir, str]:
    """Create the work dir, a run folder with the resolved config and versions, and the log file."""
    wd = WorkDir(cfg.paths.workdir).ensure()
    run_id = new_run_id()
    run_dir = wd.run_dir(run_id)
    save_resolved(cfg, run_dir)
    (run_dir / "command.txt").write_text(command + "\n")
    setup_logging(log_file=run_dir / "run.log")
    log.info("run %s: work directory %s", run_id, wd.root)
    return wd, run_id


def run_stages(cfg: PipelineConfig, names: list[str], *, force: bool = False, command: str = "ctpheno run",
               client: Any = None) -> dict[str, Any]:
    """Run the named stages in pipeline order; returns each stage's result.

    Raises :class:`RuntimeError` at the end if any stage failed as a whole; per-scan failures
    are in ``failures.parquet`` and do not stop the run.
    """
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        raise ValueError(f"unknown stage(s) {unknown}; choose from {list(STAGES)}")
    cfg = synthetic_inputs(cfg) if "synth" in names or cfg.synth.enabled else cfg
    wd, run_id = start_run(cfg, command=command)
    results: dict[str, Any] = {}
    ordered = [n for n in STAGES if n in names and stage_enabled(cfg, n)]

    def _go(cl: Any) -> None:
        from .cluster.usage import cpu_seconds, usage_between

        for name in ordered:
            log.info("stage %s", name)
            before = cpu_seconds(cl)
            results[name] = STAGES[name]()(cfg, wd, cl, force=force)
            log.info("stage %s finished: %s", name, usage_between(before, cpu_seconds(cl)).text())

    if client is not None:
        _go(client)
    else:
        with open_client(cfg.cluster) as cl:
            _go(cl)
    return results
