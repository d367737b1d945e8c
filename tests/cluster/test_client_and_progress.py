"""dask-jobqueue job scripts (no SLURM needed), the local cluster, and the progress display."""

from __future__ import annotations

import io
import logging

import pandas as pd
import pytest

from ctpheno.cluster import ScanTask, jobqueue_script, open_client, run_stage
from ctpheno.cluster.runner import Progress
from ctpheno.cluster.testing import toy_scan, toy_value
from ctpheno.config import ClusterConfig
from ctpheno.errors import ConfigError


def test_slurm_job_script_has_resources():
    cfg = ClusterConfig(kind="slurm", threads_per_worker=4, memory_limit="16GiB",
                        jobqueue={"queue": "cpu-long", "walltime": "02:30:00", "account": "copd-lab",
                                  "job_extra_directives": ["--exclusive"]})
    script = jobqueue_script(cfg)
    lines = script.splitlines()
    assert lines[0].startswith("#!/")
    assert "#SBATCH -p cpu-long" in lines
    assert "#SBATCH -A copd-lab" in lines
    assert "#SBATCH -t 02:30:00" in lines
    assert "#SBATCH --cpus-per-task=4" in lines
    assert "#SBATCH --mem=16G" in lines
    assert "#SBATCH --exclusive" in lines
    assert "--nthreads 4" in script and "--memory-limit 16.00GiB" in script
    assert "tcp://SCHEDULER:8786" in script and "--name ctpheno-worker" in script
    with pytest.raises(ConfigError, match="only for"):
        jobqueue_script(ClusterConfig(kind="local"))


def test_pbs_job_script_and_bad_keyword():
    script = jobqueue_script(ClusterConfig(kind="pbs", threads_per_worker=2, memory_limit="8GiB",
                                           jobqueue={"queue": "normal", "walltime": "01:00:00"}))
    assert "#PBS -q normal" in script and "#PBS -l walltime=01:00:00" in script
    assert "ncpus=2" in script
    with pytest.raises(ConfigError, match="cluster.jobqueue: .*queuee.*SLURMCluster"):
        jobqueue_script(ClusterConfig(kind="slurm", jobqueue={"queuee": "x"}))


def test_address_kind_needs_address():
    with pytest.raises(ConfigError, match="cluster.address is empty"):
        with open_client(ClusterConfig(kind="address")):
            pass


def test_local_cluster_threads_and_synchronous(tmp_path):
    tasks = [ScanTask(f"s{i}", {"out_dir": str(tmp_path / "out")}) for i in range(3)]
    with open_client(ClusterConfig(kind="local", n_workers=1, processes=False, memory_limit="1GiB")) as c:
        assert len(c.scheduler_info()["workers"]) == 1
        res = run_stage(toy_scan, tasks, stage="toy", workdir=tmp_path / "w1", client=c,
                        output=tmp_path / "w1" / "t.parquet", progress=False)
    with open_client(ClusterConfig(kind="synchronous")) as c:
        assert c is None
        res2 = run_stage(toy_scan, tasks, stage="toy", workdir=tmp_path / "w2", client=c,
                         output=tmp_path / "w2" / "t.parquet", progress=False)
    assert sorted(res.done) == sorted(res2.done) == ["s0", "s1", "s2"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "w1" / "t.parquet"),
                                  pd.read_parquet(tmp_path / "w2" / "t.parquet"))
    assert pd.read_parquet(tmp_path / "w1" / "t.parquet")["value"].tolist() == [toy_value(f"s{i}")
                                                                               for i in range(3)]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal():
    stream = _Tty()
    bar = Progress("toy", 3, stream=stream)
    for ok in (True, False, True):
        bar.update(ok)
    bar.close()
    text = stream.getvalue()
    assert "toy" in text and "3/3" in text and "failed 1" in text and "ETA" in text


def test_progress_log_lines_without_terminal(caplog):
    with caplog.at_level(logging.INFO, logger="ctpheno.cluster.runner"):
        bar = Progress("toy", 4, stream=io.StringIO(), log_every_s=0.0)
        for ok in (True, False, True, True):
            bar.update(ok)
        bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("toy: 1/4 done, 0 failed, 3 remaining, ETA")
    assert lines[-1].startswith("toy: 3/4 done, 1 failed, 0 remaining, ETA 0 s")


def test_subprocess_cluster_stops_processes_by_pid(tmp_path):
    import psutil

    from ctpheno.cluster.testing import _alive, subprocess_cluster

    with subprocess_cluster(tmp_path, n_workers=1, memory_limit="512MiB") as info:
        pids = [int(p.read_text()) for p in (info["scheduler_pid_file"], *info["worker_pid_files"])]
        names = [" ".join(psutil.Process(p).cmdline()) for p in pids]
        assert "scheduler" in names[0] and "worker" in names[1]
        with open_client(ClusterConfig(kind="address", address=info["address"])) as client:
            client.wait_for_workers(1, timeout=60)
            assert client.submit(sum, [1, 2]).result() == 3
    assert not any(_alive(p) for p in pids)
