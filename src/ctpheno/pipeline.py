"""Whole-pipeline orchestration: runs the stages in order on one Dask client.

Each stage exposes ``run_<stage>(cfg, workdir, client, *, force=False)`` in its
``stage`` module; this file only wires them. Stages communicate solely through
the artifacts of :mod:`ctpheno.io.layout`.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from importlib import import_module
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Callable

from .cluster.client import open_client
from .cluster.usage import cpu_seconds, usage_between
from .config.pipeline import PipelineConfig, save_resolved
from .config.public import public_command
from .errors import NoInputFoundError, WorkdirError
from .io.layout import WorkDir
from .io.tables import atomic_path
from .logs import new_run_id, setup_logging

log = logging.getLogger(__name__)

StageRunner = Callable[..., Any]


@dataclass
class SkippedStage:
    """A stage that could not run in this installation (a missing extra), and why."""

    stage: str
    reason: str
    failed: tuple = ()

    def summary(self) -> str:
        return f"{self.stage}: skipped: {self.reason}"


def _skip(stage: str, reason: str) -> StageRunner:
    def runner(cfg: PipelineConfig, wd: WorkDir, client: Any, *, force: bool = False) -> SkippedStage:
        log.warning("%s stage skipped: %s", stage, reason)
        return SkippedStage(stage, reason)
    return runner


STAGES: dict[str, str] = {
    "synth": "synth.stage:run_synth",
    "ingest": "ingest.stage:run_ingest",
    "preprocess": "preprocess.stage:run_preprocess",
    "airways": "features.airways.stage:run_airways",
    "qct": "features.stage:run_qct",
    "radiomics": "features.stage:run_radiomics",
    "embed": "features.deep_embeddings.stage:run_embeddings",
    "cluster": "train.stage:run_clustering",
    "supervised": "train.stage:run_supervised",
    "report": "eval.stage:run_report",
    "export": "export.stage:run_export",
}
"""Stage name -> its runner as ``module:function`` below ``ctpheno``, in pipeline order. A stage's
module is imported when the stage runs, so a run imports only the stages it runs (and a missing
optional extra stops only the stage that needs it)."""

EXTRA_NEEDED: dict[str, tuple[str, str]] = {
    "embed": ("torch", "PyTorch is not installed (pip install 'ctpheno[deep]'); feature sets that "
                       "need embeddings are left out of the models"),
}
"""Stage -> (module it needs, why it is skipped without it): the other stages run without it."""


def stage_runner(name: str) -> StageRunner:
    """The runner of stage ``name`` (see :data:`STAGES`); a stand-in that logs why and returns a
    :class:`SkippedStage` when the stage's optional extra is not installed."""
    needed = EXTRA_NEEDED.get(name)
    if needed is not None and find_spec(needed[0]) is None:
        return _skip(name, needed[1])
    module, function = STAGES[name].split(":")
    return getattr(import_module(f"{__package__}.{module}"), function)


WITHOUT_CLUSTER = frozenset({"report"})
"""Stages that read tables only: a run of just these starts no Dask cluster."""


def stage_enabled(cfg: PipelineConfig, name: str) -> bool:
    return {
        "synth": cfg.synth.enabled,
        "airways": cfg.features.airways.enabled,
        "qct": cfg.features.qct.enabled,
        "radiomics": cfg.features.radiomics.enabled,
        "embed": cfg.embeddings.enabled,
        "cluster": cfg.models.unsupervised.enabled,
        "supervised": cfg.models.supervised.enabled,
        "report": cfg.report.enabled,
        "export": cfg.export.enabled,
    }.get(name, True)


def synthetic_inputs(cfg: PipelineConfig) -> PipelineConfig:
    """When the synthetic cohort is generated and no inputs are given, read it as the input."""
    if not cfg.synth.enabled or cfg.paths.inputs:
        return cfg
    out = cfg.synth.out if cfg.synth.out.is_absolute() else Path(cfg.paths.workdir) / cfg.synth.out
    paths = cfg.paths.model_copy(update={"inputs": [str(out / "images")],
                                         "clinical": cfg.paths.clinical or str(out / "clinical.csv")})
    return cfg.model_copy(update={"paths": paths})


def check_workdir(path: str | Path) -> WorkDir:
    """Create the work directory if needed and prove it writable; :class:`WorkdirError` otherwise.

    Runs before anything is written, so a work directory that is a file or read-only ends the
    command with a message naming the problem before any work starts (a disk that fills up later
    is reported by the command's error handler when a write fails).
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise WorkdirError(f"work directory {root} exists and is not a folder; choose another --workdir")
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".ctpheno-write-test-"):
            pass
    except OSError as err:
        raise WorkdirError(f"work directory {root} cannot be written ({err.strerror or err}); "
                           "choose a folder you can write to with --workdir") from None
    return WorkDir(root)


def check_inputs(inputs: list[str], *, clinical: str | None = None) -> None:
    """Fail before any work starts when there is nothing to ingest (no input, or none of the local ones
    exists) or the clinical table named does not exist (a typo would otherwise cost a whole run)."""
    from .io.fs import is_url

    if clinical and not is_url(clinical) and not Path(clinical.removeprefix("file://")).is_file():
        raise NoInputFoundError(f"clinical table {clinical} does not exist; check --clinical / paths.clinical")

    if not inputs:
        raise NoInputFoundError("no inputs to ingest: give --input (or PATH arguments) or set paths.inputs")
    local = [p for p in inputs if not is_url(p)]
    if len(local) == len(inputs) and not any(Path(p.removeprefix("file://")).exists() for p in local):
        raise NoInputFoundError(
            f"none of the {len(inputs)} input(s) exists: {inputs[:3]}; check --input / paths.inputs")


def write_status(run_dir: Path, status: str, **info: Any) -> None:
    """``runs/<id>/status.json``: ``running`` until the run ends ``done``, or ``incomplete`` with why.

    Best effort: on a full disk the file may stay ``running``, which reads as incomplete too.
    """
    try:
        with atomic_path(run_dir / "status.json") as tmp:
            tmp.write_text(json.dumps({"status": status, **info}, indent=1))
    except OSError:
        log.warning("could not update %s", run_dir / "status.json")


def start_run(cfg: PipelineConfig, *, command: str) -> tuple[WorkDir, str]:
    """Create the work dir, a run folder with the resolved config and versions, and the log file.

    ``command.txt`` holds ``command`` with input paths tokenised and secrets masked
    (:func:`ctpheno.config.public.public_command`), like the resolved config.
    """
    wd = check_workdir(cfg.paths.workdir)
    run_id = new_run_id()
    run_dir = wd.run_dir(run_id)
    save_resolved(cfg, run_dir)
    with atomic_path(run_dir / "command.txt") as tmp:
        tmp.write_text(public_command(command, cfg) + "\n")
    write_status(run_dir, "running")
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
    if "ingest" in names and not ("synth" in names and cfg.synth.enabled):
        check_inputs(cfg.paths.inputs, clinical=cfg.paths.clinical)
    wd, run_id = start_run(cfg, command=command)
    results: dict[str, Any] = {}
    ordered = [n for n in STAGES if n in names and stage_enabled(cfg, n)]

    current = {"stage": None}

    def _go(cl: Any) -> None:
        for name in ordered:
            log.info("stage %s", name)
            current["stage"] = name
            before = cpu_seconds(cl)
            results[name] = stage_runner(name)(cfg, wd, cl, force=force)
            log.info("stage %s finished: %s", name, usage_between(before, cpu_seconds(cl)).text())

    try:
        if client is not None or set(ordered) <= WITHOUT_CLUSTER:
            _go(client)
        else:
            with open_client(cfg.cluster) as cl:
                _go(cl)
    except BaseException as err:
        write_status(wd.run_dir(run_id), "incomplete", stage=current["stage"], error_type=type(err).__name__)
        raise
    failed = {n: len(getattr(r, "failed", []) or []) for n, r in results.items()}
    write_status(wd.run_dir(run_id), "done", failed=failed)
    return results
