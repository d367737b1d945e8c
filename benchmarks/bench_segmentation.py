"""Benchmark of the classic lung segmentation: time, peak memory and Dice on full-size phantoms.

Usage: ``python benchmarks/bench_segmentation.py [--n 3] [--out benchmarks/out/segmentation.json]``

For each full-size synthetic phantom (512x512, 300-450 slices) it times
:func:`ctpheno.preprocess.segment_lungs` on one core and records the peak of numpy allocations
during the call (``tracemalloc``, which sees every ndarray buffer) relative to the raw int16
volume's bytes, and the Dice per lung against ``Phantom.lungs``. Targets: <= 10 s, <= 4x bytes,
Dice >= 0.97.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1))


def main() -> None:
    from ctpheno.preprocess import segment_lungs
    from ctpheno.synth import make_phantom

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/segmentation.json"))
    args = ap.parse_args()
    subtypes = ["none", "centrilobular", "panlobular", "paraseptal", "airway"]
    rows = []
    for i in range(args.n):
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
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
