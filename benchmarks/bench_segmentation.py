"""Benchmark of the classic lung segmentation: time, peak memory and Dice on full-size phantoms.

Usage: ``python benchmarks/bench_segmentation.py --out benchmarks/out [--quick]`` (writes ``segmentation.json``)

For each full-size synthetic phantom (512x512, 300-450 slices) it times
:func:`ctpheno.preprocess.segment_lungs` on one core and records the peak of numpy allocations
during the call (``tracemalloc``, which sees every ndarray buffer) relative to the raw int16
volume's bytes, and the Dice per lung against ``Phantom.lungs``. Targets: <= 10 s, <= 4x bytes,
Dice >= 0.97.
"""

from __future__ import annotations

import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1))


def main() -> None:
    from ctpheno.preprocess import segment_lungs
    from ctpheno.synth import make_phantom

    from common import parse_args, write_result

    args = parse_args(__doc__.splitlines()[0])
    n = 1 if args.quick else 3
    subtypes = ["none", "centrilobular", "panlobular", "paraseptal", "airway"]
    rows = []
    for i in range(n):
        sub = subtypes[i % len(subtypes)]
        ph = make_phantom(seed=100 + i, size="full", subtype=sub, emphysema_fraction=0.3 if sub != "none" else 0.0)
        img = ph.image
        tracemalloc.start()
        t0 = time.perf_counter()
        lab = segment_lungs(img).array
        dt = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        truth = ph.lungs.array
        row = {"seed": 100 + i, "subtype": sub, "shape": list(img.shape), "spacing_mm": list(img.spacing_mm),
               "seconds": dt, "peak_bytes": peak, "peak_over_raw": peak / img.array.nbytes,
               "dice_right": dice(lab == 1, truth == 1), "dice_left": dice(lab == 2, truth == 2),
               "airway_truth_as_lung_voxels": int(((truth == 3) & np.isin(lab, (1, 2))).sum())}
        rows.append(row)
        print(json.dumps(row))
    cols = ["subtype", "shape", "seconds", "peak_over_raw", "dice_right", "dice_left"]
    table = {"title": "Classic lung segmentation on full-size phantoms (one core; targets <= 10 s, "
                      "<= 4x the raw int16 bytes, Dice >= 0.97)",
             "columns": ["subtype", "shape (z, y, x)", "time (s)", "peak / raw bytes", "Dice right",
                         "Dice left"],
             "rows": [[r["subtype"], "x".join(map(str, r["shape"])), round(r["seconds"], 2),
                       round(r["peak_over_raw"], 2), round(r["dice_right"], 4), round(r["dice_left"], 4)]
                      for r in rows],
             "note": "peak = tracemalloc peak of NumPy allocations during segment_lungs"}
    del cols
    print(write_result(args.out, "segmentation", {"title": "Lung segmentation", "quick": args.quick,
                                                  "tables": [table], "raw": rows}))


if __name__ == "__main__":
    main()
