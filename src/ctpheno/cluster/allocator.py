"""glibc allocator settings for the processes that run per-scan tasks.

Dask's nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536``
(``distributed.nanny.pre-spawn-environ``) so that freed memory goes back to the operating system
at once. Setting a malloc threshold also switches off glibc's *dynamic* mmap threshold, so every
allocation of 128 KiB or more becomes a fresh ``mmap``: each NumPy/SciPy temporary of the
segmentation and the QCT (crops of a few to 30 MiB, thousands per scan) is page-faulted in and
zeroed again. On one full-size scan (306 x 512 x 512, one-thread worker) this made the per-scan
stages much slower in a worker than in a plain process: preprocess 16.0 core-s against 9.4, QCT
6.3 against 3.5.

:func:`tune_allocator` sets, in the process it runs in, an mmap threshold of
:data:`MMAP_THRESHOLD_BYTES` (the ceiling glibc's dynamic threshold reaches in a plain process:
whole volumes, over a hundred MiB, are still mapped and unmapped, so they go back to the system
when freed) and a trim threshold of :data:`TRIM_THRESHOLD_BYTES`; :func:`release_memory` returns
the heap's free pages after each task, so the memory a worker keeps between scans stays small.
Measured on that scan in a worker: preprocess 10.7 core-s, QCT 4.2; the task's peak resident
memory 1.17 GiB instead of 1.0 (the heap keeps freed crops for reuse while the task runs);
with an 8 or 16 MiB threshold the peak stays near 1.0 GiB but preprocess takes 13-14 core-s.
Not glibc (macOS, musl): nothing changes. ``CTPHENO_KEEP_MALLOC=1`` leaves the allocator alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
"""``mallopt`` parameter numbers (glibc ``malloc.h``)."""
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 2**20
"""Allocations from this size up are mapped (and unmapped when freed); smaller ones reuse the heap."""
TRIM_THRESHOLD_BYTES = 32 * 2**20
"""Freed memory beyond this at the top of the heap is returned to the system."""
DISABLE_ENV = "CTPHENO_KEEP_MALLOC"
"""Set this environment variable (to anything) to leave the allocator as the process found it."""

_state: dict[int, bool] = {}


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def release_memory() -> None:
    """Give the heap's free pages back to the system (``malloc_trim(0)``) between two tasks, so that
    a worker's idle memory is what it holds, not what its last scan freed; no-op where not glibc."""
    if not _state.get(os.getpid()):
        return
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


def tune_allocator() -> bool:
    """Apply the thresholds above once per process; True when they are in force."""
    pid = os.getpid()
    if pid in _state:
        return _state[pid]
    ok = False
    if not os.environ.get(DISABLE_ENV):
        mallopt = getattr(_libc(), "mallopt", None)  # None where not glibc
        if mallopt is not None:
            ok = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
            log.debug("malloc thresholds %s (mmap %d, trim %d bytes)", "set" if ok else "refused",
                      MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES)
    _state[pid] = ok
    return ok
