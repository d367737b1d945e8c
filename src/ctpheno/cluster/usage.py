"""CPU accounting across the driver and the Dask workers: core-seconds per stage.

Wall-clock time on a shared machine says little about what a stage costs; the CPU time of
every process that worked on it does. :func:`cpu_seconds` reads the CPU time (user + system,
all threads) of this process and of each worker process; the difference of two readings is
the core-seconds spent in between. A worker that restarted in between loses its earlier count,
so the difference is then a lower bound.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


def _process_cpu_seconds() -> float:
    return time.process_time()


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds of the driver and of each worker (keyed by worker address) at one moment."""

    driver_s: float
    workers_s: dict[str, float]
    wall_s: float


def cpu_seconds(client: Any = None) -> CpuReading:
    """Read the CPU time of this process and, with a ``distributed.Client``, of every worker."""
    workers: dict[str, float] = {}
    if client is not None:
        try:
            workers = {str(k): float(v) for k, v in client.run(_process_cpu_seconds).items()}
        except (OSError, TimeoutError, RuntimeError):  # a worker that is gone cannot be read
            workers = {}
    return CpuReading(time.process_time(), workers, time.perf_counter())


@dataclass(frozen=True)
class CpuUsage:
    """Core-seconds spent between two readings (driver, workers) and the wall seconds."""

    driver_s: float
    workers_s: float
    wall_s: float

    @property
    def total_s(self) -> float:
        return self.driver_s + self.workers_s

    def text(self) -> str:
        return (f"{self.wall_s:.1f} s wall, {self.total_s:.1f} core-s "
                f"(driver {self.driver_s:.1f}, workers {self.workers_s:.1f})")


def usage_between(before: CpuReading, after: CpuReading) -> CpuUsage:
    """Core-seconds spent between ``before`` and ``after`` (workers present in both)."""
    w = sum(max(0.0, after.workers_s[k] - v) for k, v in before.workers_s.items() if k in after.workers_s)
    w += sum(v for k, v in after.workers_s.items() if k not in before.workers_s)  # joined since
    return CpuUsage(after.driver_s - before.driver_s, w, after.wall_s - before.wall_s)
