"""A real ``dask scheduler`` + two ``dask worker`` processes on 127.0.0.1 for the module."""

from __future__ import annotations

import pytest

from ctpheno.cluster.testing import subprocess_cluster


@pytest.fixture(scope="package")
def dask_processes(tmp_path_factory):
    """Scheduler with ``allowed-failures: 0`` so a worker death reaches the runner's own retries;
    workers limited to 700 MiB so the memory tests are cheap."""
    with subprocess_cluster(tmp_path_factory.mktemp("dask"), n_workers=2, memory_limit="700MiB",
                            allowed_failures=0) as info:
        yield info
