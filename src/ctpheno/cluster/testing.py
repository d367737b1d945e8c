"""Toy per-scan functions and a subprocess Dask cluster for testing the runner.

They live in the package (not under ``tests/``) so that a ``dask worker``
started as a separate process can unpickle them. Nothing here is used by the
pipeline itself.

Each toy task writes ``<out_dir>/<scan_id>.npy`` atomically and appends one
line to ``<out_dir>/calls/<scan_id>.log`` every time it *starts*, so a test can
count how often a scan was computed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..errors import FeatureExtractionError
from .runner import ScanTask


def toy_value(scan_id: str, n: int = 1000) -> float:
    """The number a toy scan reports: a deterministic function of its id."""
    rng = np.random.default_rng(int.from_bytes(scan_id.encode(), "little") % 2**32)
    return float(rng.normal(size=n).sum())


def toy_scan(task: ScanTask) -> pd.DataFrame:
    """Sleep ``inputs['sleep_s']``, write ``<scan_id>.npy``, return one row.

    ``inputs['fail']`` makes it raise :class:`FeatureExtractionError` (a per-scan failure);
    ``inputs['alloc_bytes']`` allocates and touches that many bytes first (memory tests).
    """
    out_dir = Path(task.inputs["out_dir"])
    calls = out_dir / "calls"
    calls.mkdir(parents=True, exist_ok=True)
    with open(calls / f"{task.scan_id}.log", "a") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")
    alloc = int(task.inputs.get("alloc_bytes", 0))
    if alloc:
        block = np.ones(alloc, dtype=np.uint8)
        time.sleep(float(task.inputs.get("hold_s", 2.0)))
        del block
    time.sleep(float(task.inputs.get("sleep_s", 0.0)))
    if task.inputs.get("fail"):
        raise FeatureExtractionError(f"toy failure requested for {task.scan_id}")
    value = toy_value(task.scan_id)
    tmp = out_dir / f".{task.scan_id}.{os.getpid()}.tmp.npy"
    np.save(tmp, np.array([value]))
    os.replace(tmp, out_dir / f"{task.scan_id}.npy")
    return pd.DataFrame({"scan_id": [task.scan_id], "value": [value]})


def call_count(out_dir: str | Path, scan_id: str) -> int:
    """How often ``toy_scan`` started on ``scan_id``."""
    log = Path(out_dir) / "calls" / f"{scan_id}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _wait_for(path: Path, timeout_s: float, proc: subprocess.Popen) -> None:
    t0 = time.monotonic()
    while not (path.exists() and path.stat().st_size > 0):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[:3]} exited with {proc.returncode} before writing {path}")
        if time.monotonic() - t0 > timeout_s:
            raise TimeoutError(f"{path} not written within {timeout_s} s")
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie awaiting its parent's ``wait`` counts as exited)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_by_pid_file(pid_file: str | Path, *, timeout_s: float = 10.0) -> None:
    """SIGTERM the process named in ``pid_file``, then SIGKILL if it lingers."""
    pid_file = Path(pid_file)
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().strip())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@contextmanager
def subprocess_cluster(tmp: str | Path, *, n_workers: int = 1, memory_limit: str = "1GiB",
                       nthreads: int = 1, allowed_failures: int | None = None,
                       timeout_s: float = 60.0) -> Iterator[dict]:
    """Start ``dask scheduler`` + ``dask worker`` processes on 127.0.0.1; stop them by PID.

    Yields ``{"address": ..., "scheduler_pid_file": ..., "worker_pid_files": [...]}``. The
    workers run with a nanny (the ``dask worker`` default), whose PID is in the pid file.
    """
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    dask_bin = str(Path(sys.executable).with_name("dask"))
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    if allowed_failures is not None:
        env["DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES"] = str(allowed_failures)
    sched_file, sched_pid = tmp / "scheduler.json", tmp / "scheduler.pid"
    procs: list[subprocess.Popen] = []
    pid_files = [sched_pid]
    logs = []
    try:
        log = open(tmp / "scheduler.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [dask_bin, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(sched_file), "--pid-file", str(sched_pid)],
            stdout=log, stderr=subprocess.STDOUT, env=env))
        _wait_for(sched_file, timeout_s, procs[0])
        worker_pids = []
        for i in range(n_workers):
            pid_file = tmp / f"worker{i}.pid"
            log = open(tmp / f"worker{i}.log", "w")
            logs.append(log)
            procs.append(subprocess.Popen(
                [dask_bin, "worker", "--scheduler-file", str(sched_file), "--host", "127.0.0.1",
                 "--nthreads", str(nthreads), "--memory-limit", memory_limit, "--no-dashboard",
                 "--name", f"w{i}", "--pid-file", str(pid_file)],
                stdout=log, stderr=subprocess.STDOUT, env=env))
            worker_pids.append(pid_file)
            pid_files.append(pid_file)
        for pf, proc in zip(worker_pids, procs[1:]):
            _wait_for(pf, timeout_s, proc)
        import json

        address = json.loads(sched_file.read_text())["address"]
        yield {"address": address, "scheduler_pid_file": sched_pid, "worker_pid_files": worker_pids,
               "log_dir": tmp}
    finally:
        for pf in reversed(pid_files):
            stop_by_pid_file(pf)
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover - stop_by_pid_file SIGKILLs
                proc.kill()
                proc.wait()
        for log in logs:
            log.close()


def _executing_keys(dask_worker: Any) -> list[str]:
    """Keys of the tasks this worker is running now (called through ``client.run``)."""
    return sorted(str(ts.key) for ts in dask_worker.state.executing)


def executing_keys(client: Any) -> dict[str, list[str]]:
    """Worker address -> keys of the tasks it is running now (unreachable workers are left out)."""
    out = client.run(_executing_keys, on_error="return")
    return {addr: keys for addr, keys in out.items() if isinstance(keys, list)}


def worker_pids(client: Any) -> dict[str, int]:
    """Worker address -> PID of the worker process itself (not its nanny)."""
    out = client.run(os.getpid, on_error="return")
    return {addr: pid for addr, pid in out.items() if isinstance(pid, int)}


def kill_worker_running(client: Any, key_prefix: str | tuple[str, ...], *, timeout_s: float = 60.0,
                        poll_s: float = 0.02) -> tuple[int, str]:
    """SIGKILL the worker process that is running a task whose key starts with ``key_prefix``
    (one prefix or a tuple of them; :func:`ctpheno.cluster.run_stage` keys are
    ``<stage>-<scan_id>-<attempt>-<hex>``).

    Waits (at most ``timeout_s``) until some worker executes such a task; returns the killed
    PID and the key it was running. The nanny, if any, then starts a fresh worker process.
    """
    if not key_prefix:
        raise ValueError("key_prefix is empty; give a stage prefix such as 'preprocess-'")
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        for addr, keys in executing_keys(client).items():
            hit = [k for k in keys if k.startswith(key_prefix)]
            if hit:
                pid = worker_pids(client).get(addr)
                if pid is None:  # the worker went away between the two calls
                    break
                os.kill(pid, signal.SIGKILL)
                return pid, hit[0]
        time.sleep(poll_s)
    raise TimeoutError(f"no worker ran a task with key prefix {key_prefix!r} within {timeout_s} s")


def wait_until_idle(client: Any, *, n_workers: int, timeout_s: float = 60.0, poll_s: float = 0.1) -> None:
    """Wait until ``n_workers`` workers are connected and none of them is running a task
    (e.g. the tasks a killed driver left behind have finished)."""
    t0 = time.monotonic()
    client.wait_for_workers(n_workers, timeout=timeout_s)
    while time.monotonic() - t0 < timeout_s:
        keys = executing_keys(client)
        if len(keys) >= n_workers and not any(keys.values()):
            return
        time.sleep(poll_s)
    raise TimeoutError(f"workers still busy after {timeout_s} s: {executing_keys(client)}")
