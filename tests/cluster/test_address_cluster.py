"""Run per-scan pipelines through ``kind: address`` on real scheduler/worker processes."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctpheno.cluster import ScanTask, open_client, run_stage
from ctpheno.cluster.testing import call_count, toy_scan, toy_value
from ctpheno.config import ClusterConfig
from ctpheno.io.layout import WorkDir


def _tasks(out: Path, n: int, **inputs) -> list[ScanTask]:
    return [ScanTask(f"s{i:02d}", {"out_dir": str(out), **inputs}, source=f"toy/{i}") for i in range(n)]


@pytest.fixture
def client(dask_processes):
    with open_client(ClusterConfig(kind="address", address=dask_processes["address"])) as c:
        c.wait_for_workers(2, timeout=60)
        yield c


def test_address_cluster_runs_pipeline_and_resumes(client, tmp_path):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    tasks = _tasks(out, 5) + [ScanTask("bad", {"out_dir": str(out), "fail": True}, source="toy/bad")]
    res = run_stage(toy_scan, tasks, stage="toy", workdir=wd, client=client, cfg_hash="c1",
                    output=wd.root / "toy.parquet", progress=False)
    assert sorted(res.done) == [f"s{i:02d}" for i in range(5)] and res.failed == ["bad"]
    table = pd.read_parquet(wd.root / "toy.parquet")
    assert list(table["scan_id"]) == [f"s{i:02d}" for i in range(5)]
    np.testing.assert_allclose(table["value"], [toy_value(s) for s in table["scan_id"]])
    # the workers, not this process, ran the tasks
    pids = {int(line.split()[0]) for s in table["scan_id"]
            for line in (out / "calls" / f"{s}.log").read_text().splitlines()}
    assert os.getpid() not in pids and pids <= set(client.run(os.getpid).values())
    fail = pd.read_parquet(wd.failures)
    assert fail[["scan_id", "stage", "error_type"]].values.tolist() == [["bad", "toy", "FeatureExtractionError"]]
    assert "toy failure requested for bad" in fail["message"].iloc[0]
    assert fail["source"].iloc[0] == "toy/bad"

    mtimes = {s: (out / f"{s}.npy").stat().st_mtime_ns for s in table["scan_id"]}
    again = run_stage(toy_scan, tasks, stage="toy", workdir=wd, client=client, cfg_hash="c1",
                      output=wd.root / "toy.parquet", progress=False)
    assert sorted(again.skipped) == sorted(mtimes) and again.done == [] and again.failed == ["bad"]
    assert {s: (out / f"{s}.npy").stat().st_mtime_ns for s in mtimes} == mtimes
    assert all(call_count(out, s) == 1 for s in mtimes)
    # a changed stage config recomputes everything
    third = run_stage(toy_scan, tasks[:2], stage="toy", workdir=wd, client=client, cfg_hash="c2",
                      progress=False)
    assert sorted(third.done) == ["s00", "s01"] and call_count(out, "s00") == 2


def test_scan_larger_than_worker_memory_fails_cleanly(client, tmp_path):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    tasks = _tasks(out, 2) + [ScanTask("huge", {"out_dir": str(out)}, est_bytes=2 * 2**30)]
    res = run_stage(toy_scan, tasks, stage="toy", workdir=wd, client=client, progress=False)
    assert sorted(res.done) == ["s00", "s01"] and res.failed == ["huge"]
    fail = pd.read_parquet(wd.failures).set_index("scan_id")
    assert fail.loc["huge", "error_type"] == "ScanTooLargeError"
    assert "2.00 GiB" in fail.loc["huge", "message"] and "0.68 GiB" in fail.loc["huge", "message"]
    assert call_count(out, "huge") == 0  # refused before any work


def _run_in_thread(**kwargs):
    box: dict = {}

    def target():
        try:
            box["result"] = run_stage(toy_scan, **kwargs)
        except BaseException as err:  # surfaced by the test
            box["error"] = err

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


def _kill_worker_running(out: Path, scan_id: str, timeout_s: float = 60) -> int:
    log = out / "calls" / f"{scan_id}.log"
    t0 = time.monotonic()
    while not log.exists() or not log.read_text().strip():
        assert time.monotonic() - t0 < timeout_s, f"{scan_id} never started"
        time.sleep(0.05)
    pid = int(log.read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    return pid


@pytest.mark.parametrize("retries", [1, 0])
def test_killed_worker_is_retried_or_recorded(client, tmp_path, retries):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    tasks = _tasks(out, 4, sleep_s=1.5)
    th, box = _run_in_thread(tasks=tasks, stage="toy", workdir=wd, client=client, retries=retries,
                             output=wd.root / "toy.parquet", progress=False)
    killed = _kill_worker_running(out, "s00")
    th.join(timeout=120)
    assert not th.is_alive() and "error" not in box, box.get("error")
    res = box["result"]
    # every scan is done or failed, never both, never twice
    assert sorted(res.done + res.failed) == [t.scan_id for t in tasks]
    npy = sorted(p.name for p in out.glob("*.npy"))
    assert npy == sorted(f"{s}.npy" for s in res.done)
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    table = pd.read_parquet(wd.root / "toy.parquet")
    assert sorted(table["scan_id"]) == sorted(res.done)
    np.testing.assert_allclose(table["value"], [toy_value(s) for s in table["scan_id"]])
    assert call_count(out, "s00") == 1 + retries
    if retries:
        assert "s00" in res.done and res.failed == []
        second_pid = int((out / "calls" / "s00.log").read_text().splitlines()[1].split()[0])
        assert second_pid != killed
    else:
        assert "s00" in res.failed
        fail = pd.read_parquet(wd.failures).set_index("scan_id")
        assert fail.loc["s00", "error_type"] == "KilledWorker"
        assert "worker died" in fail.loc["s00", "message"] and fail.loc["s00", "attempts"] == 1
    client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed worker


def test_over_allocation_killed_by_nanny_is_recorded(client, tmp_path):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    tasks = [ScanTask("hog", {"out_dir": str(out), "alloc_bytes": 900 * 2**20, "hold_s": 20})]
    tasks += _tasks(out, 2)
    res = run_stage(toy_scan, tasks, stage="toy", workdir=wd, client=client, retries=0, progress=False)
    assert res.failed == ["hog"] and sorted(res.done) == ["s00", "s01"]
    fail = pd.read_parquet(wd.failures).set_index("scan_id")
    assert fail.loc["hog", "error_type"] == "KilledWorker"
    assert "memory limit" in fail.loc["hog", "message"]
    client.wait_for_workers(2, timeout=60)
