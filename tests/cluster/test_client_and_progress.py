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
    # ITK and Zarr keep to the worker's 4 cores; a prologue of the user's comes after (and wins)
    assert "export ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS=4" in lines
    assert "export ZARR_THREADING__MAX_WORKERS=4" in lines
    user = jobqueue_script(cfg.model_copy(update={"jobqueue": {**cfg.jobqueue,
                                                               "job_script_prologue": ["module load gcc"]}}))
    assert user.index("ZARR_THREADING__MAX_WORKERS=4") < user.index("module load gcc")
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


def _worker_threads() -> dict:
    import SimpleITK as sitk
    import zarr

    return {"itk": sitk.ProcessObject.GetGlobalDefaultNumberOfThreads(),
            "zarr": zarr.config.get("threading.max_workers")}


def test_local_workers_keep_itk_and_zarr_to_their_threads():
    cfg = ClusterConfig(kind="local", n_workers=1, threads_per_worker=1, memory_limit="1GiB")
    with open_client(cfg) as c:
        seen = c.submit(_worker_threads, pure=False).result()
    assert seen == {"itk": 1, "zarr": 1}


def test_kubernetes_worker_pods_get_the_thread_env_and_the_user_wins():
    from ctpheno.cluster.client import _kubernetes_kwargs

    base = dict(kind="kubernetes", n_workers=4, threads_per_worker=2)
    kw = _kubernetes_kwargs(ClusterConfig(**base, kubernetes={"image": "img:1"}))
    assert kw["n_workers"] == 4 and kw["image"] == "img:1"
    assert kw["env"] == {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "2", "ZARR_THREADING__MAX_WORKERS": "2"}
    user = {"ZARR_THREADING__MAX_WORKERS": "8", "A": "b"}
    kw = _kubernetes_kwargs(ClusterConfig(**base, kubernetes={"env": user}))
    assert kw["env"] == {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": "2", **user}
    # Kubernetes' own list form: ours first, a name the user gives is theirs alone
    user = [{"name": "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "value": "1"}, {"name": "A", "value": "b"}]
    kw = _kubernetes_kwargs(ClusterConfig(**base, kubernetes={"env": user}))
    assert kw["env"] == [{"name": "ZARR_THREADING__MAX_WORKERS", "value": "2"}, *user]


def test_threaded_local_workers_have_no_memory_limit():
    """Threads share this process: a limit would be checked against the whole process (the test session's
    memory included) and pause the workers for good once over 80 %."""
    with open_client(ClusterConfig(kind="local", n_workers=1, processes=False, memory_limit="1GiB")) as c:
        limits = c.run(lambda dask_worker: dask_worker.memory_manager.memory_limit)
    assert list(limits.values()) == [None]


def _log_order(task):
    with open(task.inputs["log"], "a") as f:
        f.write(task.scan_id + "\n")
    return pd.DataFrame({"scan_id": [task.scan_id]})


def test_cluster_runs_the_largest_scans_first(tmp_path):
    """One worker thread runs the tasks in submission order: largest est_bytes first, unknown last."""
    log_file = tmp_path / "order.txt"
    sizes = {"a": 10, "b": 50, "c": None, "d": 30, "e": 40}
    tasks = [ScanTask(k, {"log": str(log_file)}, est_bytes=v) for k, v in sizes.items()]
    with open_client(ClusterConfig(kind="local", n_workers=1, threads_per_worker=1, processes=False,
                                   memory_limit="1GiB")) as c:
        run_stage(_log_order, tasks, stage="order", workdir=tmp_path / "w", client=c, progress=False)
    assert log_file.read_text().split() == ["b", "e", "d", "a", "c"]


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
