"""Shared helpers for the benchmark scripts (``benchmarks/bench_*.py``).

Each script takes ``--out DIR`` and ``--quick`` and writes ``DIR/<name>.json``::

    {"name": "pipeline", "title": "...", "quick": false, "machine": {...},
     "tables": [{"title": "...", "columns": [...], "rows": [[...], ...], "note": "..."}],
     "plots": {"throughput": {"x": [...], "y": [...], "xlabel": ..., "ylabel": ...}, ...},
     "placeholders": {"CORE_SECONDS_PER_SCAN": 12.3}}

``run_all.py`` renders every table and plot into ``docs/results.md``; the
``placeholders`` fill the marked numbers in ``docs/scaling.md``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

NOT_AVAILABLE = "not available"


def parse_args(description: str) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", type=Path, required=True, help="folder for the JSON result")
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    return ap.parse_args()


def machine_info() -> dict[str, Any]:
    """CPU model, cores, memory and package versions of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        mem_gib = psutil.virtual_memory().total / 2**30
    except ImportError:  # pragma: no cover
        mem_gib = float("nan")
    try:
        avail = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        avail = os.cpu_count()
    from ctpheno.config import package_versions

    return {"cpu": cpu, "logical_cores": os.cpu_count(), "usable_cores": avail,
            "memory_gib": round(mem_gib, 1), "os": platform.platform(), "versions": package_versions()}


def optional(module: str, name: str) -> tuple[Callable[..., Any] | None, str]:
    """``(function, "")`` if ``module.name`` imports, else ``(None, reason)`` — stages may be missing."""
    try:
        return getattr(importlib.import_module(module), name), ""
    except (ImportError, AttributeError) as err:
        return None, f"{NOT_AVAILABLE}: {module}.{name} ({type(err).__name__}: {err})"


@contextmanager
def measure(into: dict[str, float], key: str) -> Iterator[None]:
    """Add this block's CPU seconds (``key``) and wall seconds (``key + '_wall'``) to ``into``.

    CPU time is ``time.process_time`` of this process (all its threads): core-seconds.
    """
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        yield
    finally:
        into[key] = into.get(key, 0.0) + time.process_time() - c0
        into[key + "_wall"] = into.get(key + "_wall", 0.0) + time.perf_counter() - w0


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB).

    ``ru_maxrss``: on Linux a process started by fork + exec (a Dask worker) inherits its
    parent's peak, so for workers use :func:`status_mib` (``VmHWM``) instead.
    """
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / 1024 if sys.platform != "darwin" else ru / 2**20


def status_mib(field: str) -> float:
    """A memory line of ``/proc/self/status`` in MiB: ``VmRSS`` (now) or ``VmHWM`` (peak since start
    or since :func:`reset_peak`); NaN where there is no ``/proc`` (macOS)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return float("nan")


def reset_peak() -> bool:
    """Reset this process's peak RSS (``VmHWM``) to its current RSS (Linux >= 4.0, ``clear_refs`` 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:  # pragma: no cover - not Linux / not permitted
        return False


def write_result(out: Path, name: str, result: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"name": name, "machine": machine_info(), **result}, indent=2, default=str))
    os.replace(tmp, path)
    return path


# --- NLST-scale projection (docs/scaling.md) -------------------------------------------------------
IDC_CT_SERIES = 203_111
"""CT series in the IDC index used for the plan (NLST and other collections)."""
IDC_CT_TERABYTES = 11.1
"""Their total size (TB, 10^12 bytes)."""
CLUSTERS = [
    # name, nodes, workers per node, memory per node (GiB), price per node-hour (USD), note
    ("SLURM (dask-jobqueue)", 10, 32, 192, 0.0, "on-premise HPC: no cash price, core-hours charged"),
    ("Kubernetes (dask-kubernetes)", 20, 16, 64, 0.68, "16-vCPU/64 GiB nodes (e.g. GKE n2-standard-16)"),
    ("Cloud VMs, on-demand", 50, 32, 64, 1.36, "AWS c6i.8xlarge, us-east-1 list price"),
    ("Cloud VMs, spot", 50, 32, 64, 0.50, "same, spot price (interruptions: resume skips done scans)"),
]


def projection_table(core_s_per_scan: float, peak_worker_mib: float, *, efficiency: float = 0.85) -> str:
    """Markdown table of wall time, cost, memory and I/O for the IDC CT index on each cluster."""
    mb_per_scan = IDC_CT_TERABYTES * 1e6 / IDC_CT_SERIES
    core_h = IDC_CT_SERIES * core_s_per_scan / 3600
    mem_gib = max(2.0, 1.5 * peak_worker_mib / 1024)
    rows = ["| cluster | nodes x workers | wall time (h) | cost (USD) | memory per worker (GiB) | "
            "fits node memory | input per node (MB/s) |", "|---|---|---|---|---|---|---|"]
    for name, nodes, wpn, node_gib, price, note in CLUSTERS:
        workers = nodes * wpn
        wall_h = core_h / (workers * efficiency)
        cost = wall_h * nodes * price
        fits = "yes" if wpn * mem_gib <= node_gib * 0.9 else f"no: use {int(node_gib * 0.9 // mem_gib)} workers/node"
        io = wpn * mb_per_scan / core_s_per_scan
        rows.append(f"| {name} ({note}) | {nodes} x {wpn} | {wall_h:.1f} | "
                    f"{'—' if price == 0 else f'{cost:,.0f}'} | {mem_gib:.1f} | {fits} | {io:.0f} |")
    head = (f"{IDC_CT_SERIES:,} series x {core_s_per_scan:.1f} core-s = {core_h:,.0f} core-hours; "
            f"{mb_per_scan:.1f} MB per series on average; parallel efficiency assumed {efficiency:.2f}.")
    return head + "\n\n" + "\n".join(rows)
