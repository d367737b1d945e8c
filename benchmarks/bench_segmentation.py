"""Benchmark of the classic lung segmentation: time, peak memory and Dice on full-size phantoms.

Usage: ``python benchmarks/bench_segmentation.py --out benchmarks/out [--quick]`` (writes ``segmentation.json``)

For each full-size synthetic phantom (512x512, 300-450 slices) and the real thin-slice scan
LIDC-IDRI-0314 (512x512x275, from ``../shared/data``) it measures the CPU time of
:func:`ctpheno.preprocess.segment_lungs` with every thread pool pinned to one thread
(``time.process_time``: core-seconds, robust to other work on a shared machine; best of ``--repeat``
runs), records the peak of numpy allocations during the call (``tracemalloc``, which sees every
ndarray buffer) relative to the raw int16 volume's bytes, and the Dice per lung against
``Phantom.lungs``. Targets: <= 4 core-s for 512x512x~400, <= 4x bytes, Dice >= 0.97.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ[_var] = "1"  # before numpy / SimpleITK start their pools

import numpy as np  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1))


def _time_segmentation(img, repeat: int):
    """(labels, best CPU seconds, tracemalloc peak bytes) of ``segment_lungs`` on ``img``."""
    from ctpheno.preprocess import segment_lungs

    best, lab = float("inf"), None
    for _ in range(repeat):
        c0 = time.process_time()
        lab = segment_lungs(img).array
        best = min(best, time.process_time() - c0)
    tracemalloc.start()
    segment_lungs(img)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return lab, best, peak


def main() -> None:
    import argparse

    from ctpheno.io.readers import read_scan
    from ctpheno.preprocess import segment_lungs
    from ctpheno.synth import make_phantom

    from common import write_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeat", type=int, default=3, help="runs per scan; the fastest counts")
    args = ap.parse_args()
    n = 1 if args.quick else 3
    subtypes = ["none", "centrilobular", "panlobular", "paraseptal", "airway"]
    rows = []
    cases = [(f"phantom seed {100 + i}", subtypes[i % len(subtypes)], i) for i in range(n)]
    lidc = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "lidc_idri_0314" / "dicom"
    if lidc.is_dir():
        cases.append(("LIDC-IDRI-0314", "real", -1))
    segment_lungs(make_phantom(seed=1, size="demo", subtype="none", emphysema_fraction=0.0).image)  # warm imports
    for name, sub, i in cases:
        if i >= 0:
            ph = make_phantom(seed=100 + i, size="full", subtype=sub, emphysema_fraction=0.3 if sub != "none" else 0.0)
            img, truth = ph.image, ph.lungs.array
        else:
            img, truth = read_scan(lidc), None
        lab, cpu, peak = _time_segmentation(img, args.repeat)
        row = {"scan": name, "subtype": sub, "shape": list(img.shape), "spacing_mm": list(img.spacing_mm),
               "cpu_seconds": cpu, "peak_bytes": peak, "peak_over_raw": peak / img.array.nbytes,
               "dice_right": dice(lab == 1, truth == 1) if truth is not None else float("nan"),
               "dice_left": dice(lab == 2, truth == 2) if truth is not None else float("nan")}
        rows.append(row)
        print(json.dumps(row), flush=True)
    table = {"title": "Classic lung segmentation at full size (CPU seconds, one thread; targets <= 4 core-s for "
                      "512x512x~400, <= 4x the raw int16 bytes, Dice >= 0.97)",
             "columns": ["scan", "subtype", "shape (z, y, x)", "CPU s", "peak / raw bytes", "Dice right",
                         "Dice left"],
             "rows": [[r["scan"], r["subtype"], "x".join(map(str, r["shape"])), round(r["cpu_seconds"], 2),
                       round(r["peak_over_raw"], 2), round(r["dice_right"], 4), round(r["dice_left"], 4)]
                      for r in rows],
             "note": "CPU = time.process_time with OMP/OpenBLAS/MKL/ITK pinned to one thread, best of --repeat; "
                     "peak = tracemalloc peak of NumPy allocations during segment_lungs"}
    print(write_result(args.out, "segmentation", {"title": "Lung segmentation", "quick": args.quick,
                                                  "tables": [table], "raw": rows}))


if __name__ == "__main__":
    main()
