"""The per-task allocator settings undo Dask's per-allocation mmap (cluster/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from ctpheno.cluster import allocator

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc only")

CHURN = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from ctpheno.cluster.allocator import tune_allocator
    if sys.argv[1] == "tuned":
        tune_allocator()
    np.ones(2_500_000).sum()  # the first 20 MB crop is faulted in either way
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(40):  # a segmentation's churn: 20 MB temporaries made and freed
        a = np.ones(2_500_000)
        a.sum()
        del a
    print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def _faults(mode: str, **env: str) -> int:
    full = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", **env}  # what Dask's nanny sets
    out = subprocess.run([sys.executable, "-c", CHURN, mode], env=full, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def test_tuning_stops_the_page_faults_of_every_temporary_under_dask_malloc_settings():
    untuned, tuned = _faults("plain"), _faults("tuned")
    # 40 x 20 MB freshly mapped and zeroed by the kernel, against reuse of the heap
    assert untuned > 5 * max(tuned, 1), (untuned, tuned)


def test_opt_out_leaves_the_allocator_alone():
    assert 5 * _faults("tuned", CTPHENO_KEEP_MALLOC="1") > _faults("plain")


def test_execute_task_tunes_and_releases(tmp_path, monkeypatch):
    from ctpheno.cluster import ScanTask, execute_task
    from ctpheno.cluster import runner

    calls = []
    monkeypatch.setattr(runner, "tune_allocator", lambda: calls.append("tune") or True)
    monkeypatch.setattr(runner, "release_memory", lambda: calls.append("release"))
    out = execute_task(lambda t: None, ScanTask("s1", {}), str(tmp_path), "demo", "k")
    assert out["status"] == "ok" and calls == ["tune", "release"]
    calls.clear()

    def boom(task):
        raise ValueError("bad scan")

    out = execute_task(boom, ScanTask("s2", {}), str(tmp_path), "demo", "k")
    assert out["status"] == "failed" and calls == ["tune", "release"]


def test_tune_allocator_is_once_per_process():
    first = allocator.tune_allocator()
    assert allocator.tune_allocator() is first
    allocator.release_memory()  # harmless at any time
