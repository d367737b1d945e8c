"""Paths and cluster configuration (``config/paths.yml``, ``cluster:`` section)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveInt

from .base import StrictModel


class PathsConfig(StrictModel):
    """Where data comes from and where results go (``config/paths.yml``)."""

    workdir: Path = Path("work")
    """Work directory holding every artifact (manifest, volumes, features, models, report)."""
    inputs: list[str] = Field(default_factory=list)
    """Input folders/files/URLs (DICOM trees, NIfTI, NRRD, MHA; ``s3://`` and ``gs://`` through fsspec)."""
    clinical: Optional[str] = None
    """Clinical table (CSV or Parquet) joined to the images by subject id; optional."""
    pseudonym_salt_env: str = "CTPHENO_SALT"
    """Environment variable holding the secret salt for subject pseudonyms (HMAC-SHA256)."""
    pseudonym_salt: Optional[str] = None
    """Salt given directly (prefer the environment variable; this one ends up in saved configs)."""


class ClusterConfig(StrictModel):
    """Dask execution backend for per-scan work."""

    kind: Literal["local", "address", "slurm", "pbs", "sge", "lsf", "kubernetes", "synchronous"] = "local"
    """``local``: a LocalCluster on this machine; ``address``: connect to a running scheduler;
    ``slurm|pbs|sge|lsf``: dask-jobqueue; ``kubernetes``: dask-kubernetes; ``synchronous``:
    no cluster, run in this process (debugging)."""
    n_workers: PositiveInt = 2
    """Workers (local) or jobs (jobqueue / kubernetes) to start."""
    threads_per_worker: PositiveInt = 1
    """Threads per worker; per-scan work is NumPy-heavy, so 1 thread per process scales best."""
    memory_limit: str = "4GiB"
    """Memory limit per worker (Dask spills at 60%, pauses at 80%, restarts the worker at 95%). Worker
    processes only: threads in this process (``processes: false``) get none (Dask would measure the
    whole process against it and pause them for good)."""
    processes: bool = True
    """Local workers as processes (True) or threads in this process (False)."""
    address: Optional[str] = None
    """Scheduler address for ``kind: address`` (e.g. ``tcp://10.0.0.5:8786``)."""
    retries: NonNegativeInt = 1
    """How often a scan whose worker died (killed, or over its memory limit) is re-run before it is
    recorded as failed. For clusters ctpheno starts this is also the scheduler's ``allowed-failures``;
    a remote scheduler (``kind: address``) keeps its own setting, and its re-runs count towards this."""
    dashboard: bool = False
    """Start the Dask dashboard (local) on a free port."""
    jobqueue: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the dask-jobqueue cluster class (cores, memory, queue, walltime,
    account, job_extra_directives, ...)."""
    kubernetes: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for dask-kubernetes' KubeCluster (name, image, resources, ...)."""
