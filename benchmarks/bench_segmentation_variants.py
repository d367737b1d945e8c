"""Controlled pathology variants of the real scans: juxtapleural masses, white-out, emphysema, effusion.

Usage: ``python benchmarks/bench_segmentation_variants.py --out benchmarks/out [--quick] [--scans lidc lung1]``
(writes ``segmentation_variants.json`` and prints one JSON line per variant).

For each real scan in ``../shared/data`` (LIDC-IDRI-0314, 1 mm sharp kernel; pyradiomics lung1, 5 mm) the
unmodified scan is segmented; that mask stands in for the expert contour away from the change. Variants of
:mod:`ctpheno.synth.variants` (the scan's own noise, partial-volume edges) are segmented and compared:

* mass (15/20/25 mm, 20-60 HU) on the costal pleura of each lung at five positions: the fraction of the
  mass inside the lung envelope that is labelled lung (``mass_in``), both lungs' Dice, the volume error;
* one lung opacified (white-out): Dice of the remaining lung, LAA-950 and mean density of the mask
  against the remaining lung's own;
* injected emphysema (blobs of -990...-960 HU, some on the pleura): Dice, LAA-950 against the truth
  (LAA-950 of the variant image inside the unmodified mask);
* posterior pleural effusion (fluid 0-20 HU replacing the dependent lung): the fraction of fluid labelled
  lung, Dice against the unmodified mask less the fluid, and the QC flags.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
for _k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
    os.environ.setdefault(_k, "1")

import numpy as np  # noqa: E402

VARIANTS = ("mass", "opacified", "emphysema", "effusion")
SCANS = {"lidc": "lidc_idri_0314/dicom", "lung1": "pyradiomics_lung1/lung1_image.nrrd"}
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(int(a.sum()) + int(b.sum()), 1))


def laa(hu: np.ndarray, m: np.ndarray) -> float:
    return float(100.0 * np.count_nonzero(hu[m] <= -950) / max(int(m.sum()), 1))


def _load(name: str, cache: Path):
    from ctpheno.io.readers import read_scan
    from ctpheno.io.volume import Volume

    f, g = cache / f"{name}.npy", cache / f"{name}.json"
    if f.exists() and g.exists():
        m = json.loads(g.read_text())
        return Volume(np.load(f), tuple(m["spacing"]), tuple(m["origin"]), tuple(m["direction"]))
    v = read_scan(SHARED / SCANS[name])
    cache.mkdir(parents=True, exist_ok=True)
    np.save(f, v.array)
    g.write_text(json.dumps({"spacing": v.spacing_mm, "origin": v.origin_mm, "direction": v.direction}))
    return v


def measure(image, truth: np.ndarray, hu: np.ndarray, **extra) -> dict:
    """Segment ``hu`` (on ``image``'s grid) and compare with ``truth`` (1/2 lung labels)."""
    from ctpheno.preprocess import qc_metrics, segment_lungs

    var = image.with_array(hu)
    t0 = time.process_time()
    lab = segment_lungs(var).array
    cpu = time.process_time() - t0
    qc = qc_metrics(var, var.with_array(lab))
    lung, tl = np.isin(lab, (1, 2)), np.isin(truth, (1, 2))
    row = {"dice_r": dice(lab == 1, truth == 1) if (truth == 1).any() else float("nan"),
           "dice_l": dice(lab == 2, truth == 2) if (truth == 2).any() else float("nan"),
           "vol_err_pct": 100.0 * (lung.sum() / tl.sum() - 1.0), "laa_pct": laa(hu, lung), "laa_truth_pct": laa(hu, tl),
           "mld_hu": float(hu[lung].mean()), "mld_truth_hu": float(hu[tl].mean()),
           "n_right": int((lab == 1).sum()), "n_left": int((lab == 2).sum()), "flags": qc["flags"],
           "pleural_air_ml": qc["pleural_air_ml"], "envelope_gap_ml": qc["envelope_gap_ml"], "cpu_s": cpu}
    return {**row, **extra, "_lab": lab}


def run_scan(name: str, cache: Path, *, quick: bool, only: tuple[str, ...] = VARIANTS) -> list[dict]:
    from ctpheno.preprocess import segment_lungs
    from ctpheno.synth import variants as V

    image = _load(name, cache)
    sp = image.spacing_mm
    hu0 = image.array
    base = segment_lungs(image).array
    noise = V.scan_noise_hu(hu0, sp)
    psf = 1.0
    print(json.dumps({"scan": name, "noise_hu": round(noise, 1), "right_ml": float((base == 1).sum() * image.voxel_volume_ml),
                      "left_ml": float((base == 2).sum() * image.voxel_volume_ml)}), flush=True)
    rows: list[dict] = []
    seq = iter(range(10_000))

    def rng() -> np.random.Generator:  # one stream per variant, so a subset reproduces the full run
        return np.random.default_rng((7, next(seq)))

    def emit(row: dict) -> None:
        row.pop("_lab", None)
        row = {"scan": name, **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}}
        rows.append(row)
        print(json.dumps(row), flush=True)

    wheres = ("lateral", "posterior") if quick else V.WHERES
    radii = (10.0,) if quick else (7.5, 10.0, 12.5)
    for code in (1, 2):
        for where in wheres:
            for r in radii:
                g = rng()
                if "mass" not in only:
                    continue
                lvl = float(g.uniform(20.0, 60.0))
                var = V.juxtapleural_mass(hu0, base, sp, code=code, where=where, radius_mm=r, level_hu=lvl,
                                          noise_hu=noise, psf_fwhm_mm=psf, rng=g)
                inside = var.changed & (base == code)
                row = measure(image, base, var.hu, variant="mass", lung=code, where=where, diameter_mm=2 * r,
                              level_hu=round(lvl), mass_ml=float(inside.sum() * image.voxel_volume_ml))
                row["mass_in"] = float(np.mean(row["_lab"][inside] == code)) if inside.any() else float("nan")
                emit(row)
    for code in (2, 1):
        g = rng()
        if "opacified" not in only:
            continue
        var = V.opacify_lung(hu0, base, sp, code=code, noise_hu=noise, psf_fwhm_mm=psf, rng=g)
        truth = np.where(base == code, 0, base)
        row = measure(image, truth, var.hu, variant="opacified", lung=code)
        emit(row)
    for n_blobs, pf in ((25, 0.4), (60, 0.7), (40, 1.0)) if not quick else ((40, 0.5),):
        g = rng()
        if "emphysema" not in only:
            continue
        var = V.inject_emphysema(hu0, base, sp, n_blobs=n_blobs, pleural_fraction=pf, noise_hu=noise,
                                 psf_fwhm_mm=psf, rng=g)
        row = measure(image, base, var.hu, variant="emphysema", blobs=n_blobs, pleural_fraction=pf,
                      emph_ml=float(var.changed.sum() * image.voxel_volume_ml))
        emit(row)
    for code in (1, 2):
        g = rng()
        if "effusion" not in only:
            continue
        var = V.pleural_effusion(hu0, base, sp, code=code, depth_mm=30.0, level_hu=float(g.uniform(0, 20)),
                                 noise_hu=noise, psf_fwhm_mm=psf, rng=g)
        truth = np.where(var.changed, 0, base)
        row = measure(image, truth, var.hu, variant="effusion", lung=code,
                      fluid_ml=float(var.changed.sum() * image.voxel_volume_ml))
        row["fluid_in"] = float(np.mean(np.isin(row["_lab"][var.changed], (1, 2))))
        emit(row)
    return rows


def main() -> None:
    import argparse

    from common import write_result

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--scans", nargs="+", default=list(SCANS), choices=list(SCANS))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--cache", type=Path, default=None, help="folder for the decoded scans (default: OUT/cache)")
    args = ap.parse_args()
    rows = []
    for name in args.scans:
        rows += run_scan(name, args.cache or args.out / "cache", quick=args.quick, only=tuple(args.variants))
    cols = ["scan", "variant", "lung", "where", "diameter_mm", "mass_in", "fluid_in", "dice_r", "dice_l",
            "vol_err_pct", "laa_pct", "laa_truth_pct", "flags"]
    table = {"title": "Segmentation of controlled variants of real scans (truth: the unmodified scan's mask)",
             "columns": cols, "rows": [[r.get(c, "") for c in cols] for r in rows]}
    print(write_result(args.out, "segmentation_variants", {"title": "Segmentation variants", "quick": args.quick,
                                                           "tables": [table], "raw": rows}))


if __name__ == "__main__":
    main()
