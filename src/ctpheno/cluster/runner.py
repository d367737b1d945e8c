"""Map a per-scan function over scans as Dask tasks: progress, retries, resume, failures.

The science functions know nothing of Dask. A stage wraps its per-scan work
in a top-level (picklable) function ``func(task) -> DataFrame | None`` that
reads its inputs, writes its own artifacts atomically and returns the rows
for the stage's table. :func:`run_stage` then

* skips scans whose completion marker matches the task key (a hash of the
  stage, the stage config and the task's inputs) unless ``force``;
* submits the rest, largest (``est_bytes``) first, with a bounded number in flight and collects them with
  ``as_completed`` — each result is written to ``parts/<stage>/<scan_id>.parquet``
  *on the worker* as soon as that scan finishes, never gathered at the end;
* re-runs a task whose worker died until it had ``retries + 1`` attempts in all
  (the scheduler's own re-runs, ``allowed-failures``, count), and records
  every failure (scan id, stage, exception type, message) in
  ``failures.parquet`` while the run goes on;
* shows a progress bar (done / failed / remaining / ETA);
* consolidates the parts into the stage's table at the end.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from ..errors import ScanTooLargeError
from ..io.layout import WorkDir
from ..io.redact import scrub
from ..io.schemas import FAILURES, TableSchema
from ..io.tables import concat_parts, read_json, write_json, write_table
from .allocator import release_memory, tune_allocator

log = logging.getLogger(__name__)

ScanFunc = Callable[["ScanTask"], "pd.DataFrame | None"]


@dataclass(frozen=True)
class ScanTask:
    """One unit of per-scan work.

    Attributes
    ----------
    scan_id
        Pseudonymous scan id (file-name safe).
    inputs
        JSON-serialisable inputs (paths, upstream content hashes, ...). Hashed with the stage
        name and config hash into the resume key, so a changed input is recomputed.
    source
        PHI-free description of the input (relative path) for the failures table.
    est_bytes
        Estimated peak memory of the task; a task that cannot fit a worker's memory limit
        fails early with :class:`ScanTooLargeError` instead of killing the worker.
    """

    scan_id: str
    inputs: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    est_bytes: int | None = None


@dataclass
class StageResult:
    stage: str
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    table: pd.DataFrame | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        return (f"{self.stage}: {len(self.done)} done, {len(self.skipped)} up to date, "
                f"{len(self.failed)} failed in {self.seconds:.1f} s")


def stable_hash(obj: Any, n: int = 16) -> str:
    """Short SHA-256 of a JSON-serialisable object (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def config_hash(model: Any) -> str:
    """Hash of a pydantic config model (or any JSON-able object)."""
    if hasattr(model, "model_dump_json"):
        return stable_hash(json.loads(model.model_dump_json()))
    return stable_hash(model)


def task_key(stage: str, cfg_hash: str, task: ScanTask) -> str:
    return stable_hash({"stage": stage, "config": cfg_hash, "scan_id": task.scan_id, "inputs": dict(task.inputs)})


def is_complete(workdir: WorkDir, stage: str, scan_id: str, key: str) -> bool:
    """True when ``scan_id`` finished ``stage`` with exactly this key (and its part exists if it had one)."""
    marker = workdir.marker(stage, scan_id)
    if not marker.exists():
        return False
    try:
        info = read_json(marker)
    except (OSError, ValueError):
        return False
    if info.get("key") != key:
        return False
    return not info.get("has_part") or workdir.part(stage, scan_id).exists()


def _worker_memory_limit() -> int | None:
    try:
        from distributed import get_worker

        limit = get_worker().memory_manager.memory_limit
        return int(limit) if limit else None
    except (ImportError, ValueError, AttributeError):
        return None


def execute_task(func: ScanFunc, task: ScanTask, root: str, stage: str, key: str) -> dict[str, Any]:
    """Run one task where it lands (worker or this process) and persist its outcome atomically."""
    wd = WorkDir(root)
    marker = wd.marker(stage, task.scan_id)
    part = wd.part(stage, task.scan_id)
    marker.unlink(missing_ok=True)
    t0 = time.perf_counter()
    tune_allocator()  # undo the nanny's per-allocation mmap (cluster/allocator.py)
    try:
        limit = _worker_memory_limit()
        if limit and task.est_bytes and task.est_bytes > 0.8 * limit:
            raise ScanTooLargeError(
                f"scan needs about {task.est_bytes / 2**30:.2f} GiB but a worker may use "
                f"{limit / 2**30:.2f} GiB; raise cluster.memory_limit or lower the resolution")
        df = func(task)
        if df is not None:
            write_table(df, part)
        else:
            part.unlink(missing_ok=True)
        write_json({"key": key, "scan_id": task.scan_id, "stage": stage, "has_part": df is not None,
                    "seconds": time.perf_counter() - t0,
                    "finished": datetime.now(timezone.utc).isoformat()}, marker)
        return {"status": "ok", "scan_id": task.scan_id, "seconds": time.perf_counter() - t0}
    except Exception as exc:  # recorded in failures.parquet by the caller; never a silent NaN
        part.unlink(missing_ok=True)
        # input paths never pass ingest: any a library put in a message becomes the scan's source
        private = [str(p) for p in task.inputs.get("paths", [])] if isinstance(task.inputs, Mapping) else []
        tb = scrub(traceback.format_exc(), *private, token=task.source or task.scan_id)
        log.debug("%s failed on %s:\n%s", stage, task.scan_id, tb)
        return {"status": "failed", "scan_id": task.scan_id, "error_type": type(exc).__name__,
                "message": scrub(str(exc) or repr(exc), *private, token=task.source or task.scan_id),
                "seconds": time.perf_counter() - t0}
    finally:
        release_memory()


class FailureLog:
    """Keeps ``failures.parquet`` current while a stage runs."""

    def __init__(self, workdir: WorkDir, stage: str) -> None:
        self.path = workdir.failures
        self.stage = stage
        self.rows: list[dict[str, Any]] = []
        self.cleared: set[str] = set()

    def add(self, task: ScanTask, error_type: str, message: str, attempts: int) -> None:
        self.rows.append({"scan_id": task.scan_id, "stage": self.stage, "error_type": error_type,
                          "message": message, "source": task.source, "attempts": attempts,
                          "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        self.flush()

    def clear(self, scan_id: str) -> None:
        self.cleared.add(scan_id)

    def flush(self) -> None:
        old = pd.read_parquet(self.path) if self.path.exists() else FAILURES.empty()
        touched = self.cleared | {r["scan_id"] for r in self.rows}
        keep = old[~((old["stage"] == self.stage) & old["scan_id"].isin(touched))]
        new = pd.DataFrame(self.rows, columns=list(FAILURES.columns))
        frames = [f for f in (keep, new) if len(f)]
        df = pd.concat(frames, ignore_index=True) if frames else FAILURES.empty()
        df["attempts"] = df["attempts"].astype("Int64")
        write_table(df.reset_index(drop=True), self.path, FAILURES)


class Progress:
    """Progress bar: done / failed / remaining / ETA (rich on a terminal, log lines otherwise)."""

    def __init__(self, stage: str, total: int, enabled: bool = True, *, stream: Any = None,
                 log_every_s: float = 10.0) -> None:
        self.stage, self.total, self.enabled = stage, total, enabled and total > 0
        self.done = self.failed = 0
        self.t0 = time.perf_counter()
        self._bar = None
        self._last_log = 0.0
        self.log_every_s = log_every_s
        stream = sys.stderr if stream is None else stream
        if self.enabled and stream.isatty():
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("failed {task.fields[failed]}"), TimeElapsedColumn(),
                                     TextColumn("ETA"), TimeRemainingColumn(), transient=False,
                                     console=Console(file=stream, force_terminal=True))
            self._task = self._bar.add_task(stage, total=total, failed=0)
            self._bar.start()

    def update(self, ok: bool) -> None:
        if ok:
            self.done += 1
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)
        elif self.enabled:
            now = time.perf_counter()
            n = self.done + self.failed
            if now - self._last_log > self.log_every_s or n == self.total:
                self._last_log = now
                rate = n / max(now - self.t0, 1e-9)
                eta = (self.total - n) / rate if rate > 0 else float("nan")
                log.info("%s: %d/%d done, %d failed, %d remaining, ETA %.0f s", self.stage, self.done,
                         self.total, self.failed, self.total - n, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _remove_stale_temporaries(wd: WorkDir, stage: str) -> None:
    """Delete temporaries an interrupted run left in this stage's parts/markers (never trusted anyway)."""
    for folder in (wd.parts_dir(stage), wd.marker(stage, "x").parent):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)


def run_stage(func: ScanFunc, tasks: Sequence[ScanTask], *, stage: str, workdir: WorkDir | str | Path,
              client: Any = None, cfg_hash: str = "", retries: int = 1, force: bool = False,
              output: str | Path | None = None, schema: TableSchema | None = None, progress: bool = True,
              max_in_flight: int | None = None) -> StageResult:
    """Run ``func`` over ``tasks`` (see module docstring); returns what was done, skipped and failed.

    Parameters
    ----------
    func
        Top-level (picklable) ``func(task) -> DataFrame | None``; raises for a per-scan failure.
    tasks
        One :class:`ScanTask` per scan; scan ids must be unique.
    stage
        Stage name: names the parts/markers folders and the ``stage`` column of ``failures.parquet``.
    workdir
        Work directory (its ``parts/``, ``state/`` and ``failures.parquet`` are used).
    client
        A ``distributed.Client`` (tasks run on its workers) or ``None`` (run here, in order).
    cfg_hash
        :func:`config_hash` of the stage config; part of every resume key.
    retries
        Attempts after a worker death, counting the scheduler's own re-runs (``allowed-failures``).
    force
        Recompute scans whose marker is current.
    output, schema
        Consolidate the parts of done and up-to-date scans into this table (path or URL),
        validated against ``schema``.
    progress
        Show the progress bar (terminal) or periodic log lines.
    max_in_flight
        Tasks submitted at once. Default: one per worker thread, re-read at every completion so
        workers that join later (a SLURM job that starts late) get work. A task never waits in a
        worker's own queue, so a worker killed by one scan's memory takes no innocent scan with it.
    """
    wd = workdir if isinstance(workdir, WorkDir) else WorkDir(workdir)
    wd.ensure()
    t_start = time.perf_counter()
    ids = [t.scan_id for t in tasks]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"stage {stage!r}: duplicate scan ids {dup}")
    result = StageResult(stage)
    _remove_stale_temporaries(wd, stage)
    failures = FailureLog(wd, stage)
    keys = {t.scan_id: task_key(stage, cfg_hash, t) for t in tasks}
    todo: list[ScanTask] = []
    for t in tasks:
        if not force and is_complete(wd, stage, t.scan_id, keys[t.scan_id]):
            result.skipped.append(t.scan_id)
            failures.clear(t.scan_id)
        else:
            todo.append(t)
    if result.skipped:
        log.info("%s: %d of %d scans already up to date (use --force to recompute)", stage,
                 len(result.skipped), len(tasks))
    bar = Progress(stage, len(todo), progress)

    def record(task: ScanTask, out: dict[str, Any], attempts: int) -> None:
        if out["status"] == "ok":
            result.done.append(task.scan_id)
            failures.clear(task.scan_id)
            bar.update(True)
        else:
            result.failed.append(task.scan_id)
            failures.add(task, out["error_type"], out["message"], attempts)
            log.warning("%s failed for %s: %s: %s", stage, task.scan_id, out["error_type"], out["message"])
            bar.update(False)

    try:
        if client is None:
            for t in todo:
                record(t, execute_task(func, t, str(wd.root), stage, keys[t.scan_id]), 1)
        else:
            _run_distributed(func, todo, client, wd, stage, keys, retries, record, max_in_flight)
    finally:
        bar.close()
        failures.flush()
    if output is not None:
        ok_ids = set(result.done) | set(result.skipped)
        result.table = concat_parts(wd.parts_dir(stage), output, schema, keep=ok_ids)
    result.seconds = time.perf_counter() - t_start
    log.info(result.summary())
    return result


def _run_distributed(func: ScanFunc, todo: list[ScanTask], client: Any, wd: WorkDir, stage: str,
                     keys: dict[str, str], retries: int, record: Callable[[ScanTask, dict, int], None],
                     max_in_flight: int | None) -> None:
    from distributed import as_completed

    def window() -> int:
        if max_in_flight is not None:
            return max_in_flight
        return max(1, sum(client.nthreads().values()))

    # largest scans first (longest-processing-time order, Graham 1969): the tasks started last are the
    # short ones, so the workers run out of work together instead of one finishing a big scan alone
    pending = iter(sorted(todo, key=lambda t: -(t.est_bytes or 0)))
    used: dict[str, int] = {}
    by_future: dict[Any, ScanTask] = {}

    def submit(task: ScanTask) -> Any:
        used.setdefault(task.scan_id, 0)
        fut = client.submit(execute_task, func, task, str(wd.root), stage, keys[task.scan_id],
                            key=f"{stage}-{task.scan_id}-{used[task.scan_id]}-{os.urandom(3).hex()}",
                            pure=False)
        by_future[fut] = task
        return fut

    if not client.nthreads():
        log.info("%s: waiting for the first worker", stage)
        client.wait_for_workers(1)
    first = [submit(t) for _, t in zip(range(window()), pending)]
    ac = as_completed(first)
    for fut in ac:
        task = by_future.pop(fut)
        if fut.status == "finished":
            record(task, fut.result(), used[task.scan_id] + 1)
        else:
            error_type, msg, spent = _lost_task_reason(fut)
            used[task.scan_id] += spent
            n = used[task.scan_id]
            if n <= retries:
                log.warning("%s: %s lost (%s); retrying (attempt %d of %d)", stage, task.scan_id,
                            error_type, n + 1, retries + 1)
                fut.release()
                ac.add(submit(task))
                continue
            record(task, {"status": "failed", "error_type": error_type, "message": msg}, n)
        fut.release()
        for _ in range(max(1, window() - ac.count())):
            nxt = next(pending, None)
            if nxt is None:
                break
            ac.add(submit(nxt))


def _lost_task_reason(fut: Any) -> tuple[str, str, int]:
    """Why a future did not finish: (exception type, message, attempts it consumed).

    A ``KilledWorker`` means the scheduler already re-ran the task on other workers
    ``allowed_failures`` times (``distributed.scheduler.allowed-failures``, set from
    ``cluster.retries`` for clusters this process starts; a remote scheduler keeps its own),
    so it counts as ``allowed_failures + 1`` attempts.
    """
    if fut.status == "cancelled":
        return "CancelledError", "the task was cancelled (scheduler restarted or client reconnected)", 1
    exc = fut.exception()
    name = type(exc).__name__
    if name == "KilledWorker":
        tries = int(getattr(exc, "allowed_failures", 0)) + 1
        return name, (f"the worker died while processing this scan ({tries} attempt(s) on the "
                      f"scheduler): killed, or over its memory limit (cluster.memory_limit); {exc}"), tries
    return name, str(exc) or repr(exc), 1
