"""Interrupt a run (SIGKILL of the process running ``run_stage``), rerun, compare with a clean run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from ctpheno.cluster import ScanTask, run_stage
from ctpheno.cluster.testing import call_count, toy_scan
from ctpheno.io.layout import WorkDir

N = 6
SCRIPT = textwrap.dedent("""
    import sys
    from ctpheno.cluster import ScanTask, run_stage
    from ctpheno.cluster.testing import toy_scan
    out, work = sys.argv[1], sys.argv[2]
    tasks = [ScanTask(f"s{i}", {"out_dir": out, "sleep_s": 0.4}) for i in range(%d)]
    run_stage(toy_scan, tasks, stage="toy", workdir=work, cfg_hash="h", progress=False,
              output=__import__("pathlib").Path(work) / "toy.parquet")
""" % N)


def _tasks(out: Path) -> list[ScanTask]:
    return [ScanTask(f"s{i}", {"out_dir": str(out), "sleep_s": 0.4}) for i in range(N)]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> pd.DataFrame:
    root = tmp_path_factory.mktemp("clean")
    run_stage(toy_scan, _tasks(root / "out"), stage="toy", workdir=root / "work", cfg_hash="h",
              output=root / "work" / "toy.parquet", progress=False)
    return pd.read_parquet(root / "work" / "toy.parquet")


def test_interrupted_run_resumes_without_recomputing(tmp_path, clean_run):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(wd.root)])
    t0 = time.monotonic()
    while len(list(wd.root.glob("state/toy/*.json"))) < 3:
        assert proc.poll() is None and time.monotonic() - t0 < 60, "run ended before it was interrupted"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = sorted(p.stem for p in wd.root.glob("state/toy/*.json"))
    assert 3 <= len(finished) < N and not (wd.root / "toy.parquet").exists()
    mtimes = {s: ((out / f"{s}.npy").stat().st_mtime_ns, wd.marker("toy", s).stat().st_mtime_ns)
              for s in finished}
    # a half-written part without a marker (what a kill mid-write could leave) is not trusted
    # (a call line written; a kill between the log's open and its write leaves an empty file)
    started = sorted(p.stem for p in (out / "calls").glob("*.log") if call_count(out, p.stem) > 0)
    stray = next(s for s in [f"s{i}" for i in range(N)] if s not in finished)
    wd.part("toy", stray).write_bytes(b"PAR1 truncated")
    (wd.parts_dir("toy") / f".{stray}.parquet.abc.parquet.tmp").write_bytes(b"PAR1")

    res = run_stage(toy_scan, _tasks(out), stage="toy", workdir=wd, cfg_hash="h",
                    output=wd.root / "toy.parquet", progress=False)
    assert sorted(res.skipped) == finished and sorted(res.done + res.skipped) == [f"s{i}" for i in range(N)]
    assert {s: ((out / f"{s}.npy").stat().st_mtime_ns, wd.marker("toy", s).stat().st_mtime_ns)
            for s in finished} == mtimes
    for s in finished:
        assert call_count(out, s) == 1
    for s in res.done:  # recomputed once more only if the killed run had started it
        assert call_count(out, s) == 1 + (s in started)
    pd.testing.assert_frame_equal(pd.read_parquet(wd.root / "toy.parquet"), clean_run)
    assert not [p for p in wd.root.rglob("*") if ".tmp" in p.name]


def test_corrupt_marker_or_missing_part_is_recomputed(tmp_path):
    out, wd = tmp_path / "out", WorkDir(tmp_path / "work")
    tasks = [ScanTask(f"s{i}", {"out_dir": str(out)}) for i in range(3)]
    run_stage(toy_scan, tasks, stage="toy", workdir=wd, progress=False)
    wd.marker("toy", "s0").write_text("{not json")
    wd.part("toy", "s1").unlink()
    res = run_stage(toy_scan, tasks, stage="toy", workdir=wd, progress=False)
    assert sorted(res.done) == ["s0", "s1"] and res.skipped == ["s2"]
    forced = run_stage(toy_scan, tasks, stage="toy", workdir=wd, progress=False, force=True)
    assert sorted(forced.done) == ["s0", "s1", "s2"] and call_count(out, "s2") == 2
