"""Create the Dask client described by :class:`~ctpheno.config.ClusterConfig`.

``local`` starts a LocalCluster; ``address`` connects to a running
``dask scheduler``; ``slurm|pbs|sge|lsf`` build a dask-jobqueue cluster and
``kubernetes`` a dask-kubernetes KubeCluster (optional extras ``[cluster]`` and ``[kubernetes]``);
``synchronous`` runs everything in this process with no Dask at all.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Any, Iterator

import dask

from ..config.common import ClusterConfig
from ..errors import ConfigError, MissingExtraError

log = logging.getLogger(__name__)

JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster", "lsf": "LSFCluster"}


def _jobqueue_class(cfg: ClusterConfig) -> Any:
    try:
        import dask_jobqueue
    except ImportError as err:  # pragma: no cover - extra missing
        raise MissingExtraError("dask-jobqueue", "cluster", f"cluster kind {cfg.kind!r}") from err
    return getattr(dask_jobqueue, JOBQUEUE_CLASSES[cfg.kind])


def worker_thread_env(threads: int) -> dict[str, str]:
    """Environment that keeps a worker's libraries to the worker's own ``threads`` cores.

    Dask already does this for OpenMP and BLAS. Two libraries would otherwise start one thread
    per core of the node: ITK (SimpleITK, also inside PyRadiomics) and Zarr, whose thread pool
    compresses and decompresses chunks in parallel. On a node shared by several workers those
    threads compete with the other workers' tasks, and a lone worker looks faster than its share.
    """
    n = str(max(1, int(threads)))
    return {"ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS": n, "ZARR_THREADING__MAX_WORKERS": n}


def _jobqueue_kwargs(cfg: ClusterConfig) -> dict[str, Any]:
    kwargs = {"cores": cfg.threads_per_worker, "processes": 1, "memory": cfg.memory_limit, **cfg.jobqueue}
    exports = [f"export {k}={v}" for k, v in worker_thread_env(cfg.threads_per_worker).items()]
    # the user's prologue after ours: their exports win
    kwargs["job_script_prologue"] = exports + list(kwargs.get("job_script_prologue") or [])
    return kwargs


def _kubernetes_kwargs(cfg: ClusterConfig) -> dict[str, Any]:
    """KubeCluster arguments: ``cluster.kubernetes`` plus the worker-thread environment in ``env``.

    dask-kubernetes takes ``env`` as a mapping or as Kubernetes' list of ``{name, value}`` entries;
    either way a variable the user sets wins over ours.
    """
    kwargs = {"n_workers": cfg.n_workers, **cfg.kubernetes}
    ours = worker_thread_env(cfg.threads_per_worker)
    user = kwargs.get("env") or {}
    if isinstance(user, dict):
        kwargs["env"] = {**ours, **user}
    else:
        named = {e.get("name") for e in user if isinstance(e, dict)}
        kwargs["env"] = [{"name": k, "value": v} for k, v in ours.items() if k not in named] + list(user)
    return kwargs


def make_jobqueue_cluster(cfg: ClusterConfig) -> Any:
    """Build (but do not scale) the dask-jobqueue cluster for ``cfg.kind`` (starts its scheduler here)."""
    cls = _jobqueue_class(cfg)
    try:
        return cls(**_jobqueue_kwargs(cfg))
    except TypeError as err:
        raise ConfigError(f"cluster.jobqueue: {err}; see the dask-jobqueue docs for {cls.__name__}") from None


def jobqueue_script(cfg: ClusterConfig, *, scheduler: str = "tcp://SCHEDULER:8786") -> str:
    """The batch script one worker job would be submitted with (for review and tests).

    Built from the job class alone, so no scheduler is started and no batch system is needed;
    ``scheduler`` is the address written into the worker command line.
    """
    if cfg.kind not in JOBQUEUE_CLASSES:
        raise ConfigError(f"cluster.kind is {cfg.kind!r}; a job script exists only for "
                          f"{sorted(JOBQUEUE_CLASSES)}")
    cls = _jobqueue_class(cfg)
    try:
        job = cls.job_cls(scheduler=scheduler, name="ctpheno-worker", **_jobqueue_kwargs(cfg))
    except TypeError as err:
        raise ConfigError(f"cluster.jobqueue: {err}; see the dask-jobqueue docs for {cls.__name__}") from None
    return job.job_script()


@contextmanager
def open_client(cfg: ClusterConfig) -> Iterator[Any]:
    """Yield a ``distributed.Client`` (or ``None`` for ``kind: synchronous``) and clean up after."""
    if cfg.kind == "synchronous":
        yield None
        return
    from distributed import Client, LocalCluster

    overrides = {"distributed.scheduler.allowed-failures": max(cfg.retries, 0),
                 "distributed.worker.memory.terminate": 0.95,
                 # ITK and Zarr start one thread per core by default: a worker gets its own threads only
                 "distributed.nanny.pre-spawn-environ": {
                     **dask.config.get("distributed.nanny.pre-spawn-environ", {}),
                     **worker_thread_env(cfg.threads_per_worker)}}
    with dask.config.set(overrides):
        cluster = None
        if cfg.kind == "local":
            # worker processes talk over TCP on the loopback only; threads use the in-process comm
            where = {"host": "127.0.0.1"} if cfg.processes else {}
            # threads in this process: Dask would hold each worker to the limit on the whole process's
            # memory (the driver's included) and pause it for good once that is over 80 %
            cluster = LocalCluster(n_workers=cfg.n_workers, threads_per_worker=cfg.threads_per_worker,
                                   memory_limit=cfg.memory_limit if cfg.processes else 0,
                                   processes=cfg.processes,
                                   dashboard_address=":0" if cfg.dashboard else None, **where)
            client = Client(cluster)
        elif cfg.kind == "address":
            if not cfg.address:
                raise ConfigError("cluster.kind is 'address' but cluster.address is empty; "
                                  "give the scheduler address, e.g. tcp://127.0.0.1:8786")
            client = Client(cfg.address, timeout="30s")
        elif cfg.kind in JOBQUEUE_CLASSES:
            cluster = make_jobqueue_cluster(cfg)
            cluster.scale(jobs=cfg.n_workers)
            client = Client(cluster)
        elif cfg.kind == "kubernetes":
            try:
                from dask_kubernetes.operator import KubeCluster
            except ImportError as err:  # pragma: no cover - extra missing
                raise MissingExtraError("dask-kubernetes", "kubernetes", "cluster kind 'kubernetes'") from err
            cluster = KubeCluster(**_kubernetes_kwargs(cfg))
            client = Client(cluster)
        else:  # pragma: no cover - Literal prevents this
            raise ConfigError(f"unknown cluster.kind {cfg.kind!r}")
        log.info("Dask client: %s", client)
        log.info(dashboard_line(client, local=cfg.kind == "local"))
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


def dashboard_line(client: Any, *, local: bool = False) -> str:
    """One line for the console: the Dask dashboard's address, or why there is none.

    A scheduler serves its HTTP endpoint without bokeh, but the dashboard pages need it; for a
    scheduler in this process (``local``) a missing bokeh is said instead of a dead link.
    """
    from importlib.util import find_spec

    services = (client.scheduler_info() or {}).get("services", {})
    if "dashboard" in services and not (local and find_spec("bokeh") is None):
        return f"Dask dashboard: {client.dashboard_link}"
    return ("Dask dashboard: off (set cluster.dashboard: true for a local cluster; the dashboard needs "
            "bokeh: pip install 'ctpheno[cluster]')")
