"""Benchmark of the airway step: cost on a full-size thin-slice scan, accuracy on phantoms.

Usage: ``python benchmarks/bench_airways.py --out benchmarks/out [--quick]`` (writes ``airways.json``)

1. LIDC-IDRI-0314 (``../shared/data``: 512 x 512 x 275, 0.78 x 0.78 x 1 mm, Philips kernel D), whole
   scan: core-seconds of :func:`ctpheno.features.airways.measure_airways` (one thread) by step —
   lumen growing, branch graph, PSF, cross-sections — and the endpoints; the blur-corrected Pi10
   beside plain FWHM on the same branches and its sensitivity to the assumed wall attenuation.
   Writes the QC picture to ``docs/figures/airways_lidc_0314.png``.
   Then controlled variants of the same scan on the same lung masks (air offset -30 / +30 HU, added
   in-plane-correlated noise of 20 / 40 HU SD, an in-plane Gaussian blur of 0.4 / 0.7 mm SD, a
   softer kernel): how far the endpoints move when only the scanner changes (skipped with --quick).
2. Thin-slice airway phantoms (sharp and smooth kernel; two walls without, two with airway disease):
   Pi10 error against the phantom's own truth and the share of measured branches with lumen radius
   >= 1.5 mm whose wall is within 0.2 mm or 20 %.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LIDC = REPO.parent / "shared" / "data" / "lidc_idri_0314" / "dicom"
FIGURE = REPO / "docs" / "figures" / "airways_lidc_0314.png"
STEPS = {"segment_lumen": "lumen growing", "build_tree": "branch graph", "psf_sigma_mm": "PSF (trachea)",
         "measure_sections": "cross-sections"}


def _timed_steps(module, into: dict) -> None:
    """Wrap the step functions ``measure_airways`` calls so each adds its CPU seconds to ``into``."""
    for name in STEPS:
        fn = getattr(module, name)

        def wrapper(*a, _fn=fn, _name=name, **k):
            c0 = time.process_time()
            try:
                return _fn(*a, **k)
            finally:
                into[_name] = into.get(_name, 0.0) + time.process_time() - c0

        setattr(module, name, wrapper)


def lidc_cost() -> tuple[dict, dict, object, object]:
    from ctpheno.config.airways import AirwaysConfig
    from ctpheno.features.airways import endpoints as E
    from ctpheno.features.airways import measure as M
    from ctpheno.features.airways.figures import save_qc_figure
    from ctpheno.io.readers import read_dicom_series
    from ctpheno.preprocess import segment_lungs

    from common import peak_rss_mib

    image = read_dicom_series(sorted(str(p) for p in LIDC.glob("*.dcm")))
    labels = segment_lungs(image)
    M.measure_airways(image.array[:2], labels.array[:2], image.spacing_mm)  # imports, tables: not timed
    steps: dict = {}
    _timed_steps(M, steps)
    c0, w0 = time.process_time(), time.perf_counter()
    res = M.measure_airways(image.array, labels.array, image.spacing_mm,
                            slice_thickness_mm=image.meta.get("slice_thickness_mm"))
    total, wall = time.process_time() - c0, time.perf_counter() - w0
    steps = dict(steps)  # the sensitivity runs below would add to it
    save_qc_figure(res, image.array, image.spacing_mm, FIGURE, title="LIDC-IDRI-0314")
    s = res.sections[res.sections["valid"]]
    g = s.groupby("branch_id").agg(n=("valid", "size"), af=("lumen_radius_fwhm_mm", "median"),
                                   bf=("outer_radius_fwhm_mm", "median"))
    g = g[g["n"] >= 3].join(res.branches.set_index("branch_id")["generation"])
    g = g[g["generation"] >= 2]
    pi10_fwhm = E.pi10_mm(2 * np.pi * g["af"], np.pi * (g["bf"] ** 2 - g["af"] ** 2))
    wall_hu = {}
    for hu in (0.0, -100.0):
        r = M.measure_airways(image.array, labels.array, image.spacing_mm, config=AirwaysConfig(wall_hu=hu))
        wall_hu[hu] = r.endpoints["pi10_mm"]
    cost = {"core_s_total": total, "wall_s": wall, **{f"core_s_{k}": v for k, v in steps.items()},
            "peak_rss_mib": peak_rss_mib(), "shape": list(image.shape)}
    found = {**res.endpoints, **res.diagnostics, "pi10_fwhm_mm": pi10_fwhm,
             "pi10_wall_0hu_mm": wall_hu[0.0], "pi10_wall_minus100hu_mm": wall_hu[-100.0],
             "n_branches_measured": int(res.branches["measured"].sum())}
    return cost, found, image, labels


VARIANT_COLUMNS = ["variant", "pi10_mm", "wa_pct_seg", "wall_thickness_seg_mm", "airway_count",
                   "max_generation_right", "max_generation_left", "n_branches_measured", "psf_sigma_xy_mm"]


def lidc_variants(image, labels) -> list[list]:
    """The endpoints of LIDC-IDRI-0314 under controlled scanner variants, on the original lung masks."""
    from scipy import ndimage as ndi

    from ctpheno.features.airways import measure_airways

    hu = image.array
    sp = image.spacing_mm
    rng = np.random.default_rng(0)
    white = ndi.gaussian_filter(rng.standard_normal(hu.shape, dtype=np.float32), (0, 0.7, 0.7))
    white /= white.std()

    def stored(x):  # what a scanner stores: whole HU, nothing below -1024
        return np.clip(np.rint(x), -1024, 3071).astype(np.int16)

    variants = {"original": hu, "air -30 HU": stored(hu - 30.0), "air +30 HU": stored(hu + 30.0),
                "noise +20 HU": stored(hu + 20.0 * white), "noise +40 HU": stored(hu + 40.0 * white)}
    for sigma in (0.4, 0.7):
        variants[f"blur {sigma} mm"] = stored(ndi.gaussian_filter(hu.astype(np.float32),
                                                                  (0, sigma / sp[1], sigma / sp[2])))
    rows = []
    for name, img in variants.items():
        r = measure_airways(img, labels.array, sp, slice_thickness_mm=image.meta.get("slice_thickness_mm"))
        found = {**r.endpoints, **r.diagnostics, "variant": name,
                 "n_branches_measured": int(r.branches["measured"].sum()) if len(r.branches) else 0}
        rows.append([round(found[c], 3) if isinstance(found[c], float) else found[c] for c in VARIANT_COLUMNS])
        print(json.dumps(dict(zip(VARIANT_COLUMNS, rows[-1])), default=str), flush=True)
    return rows


def phantom_accuracy(quick: bool) -> list[dict]:
    from ctpheno.features.airways import measure_airways
    from ctpheno.synth.airway_phantom import make_airway_phantom

    sys.path.insert(0, str(REPO / "tests" / "features" / "airways"))
    from test_phantom_acceptance import _match  # the acceptance test's own branch matching

    cohort = [(10, 0.9), (12, 1.8)] if quick else [(10, 0.9), (11, 1.0), (14, 1.1), (12, 1.8), (13, 2.2), (15, 2.4)]
    rows = []
    for kernel in ("sharp",) if quick else ("sharp", "smooth"):
        for seed, wall in cohort:
            ph = make_airway_phantom(seed=seed, airway_wall_mm=wall, kernel=kernel, max_generation=6,
                                     trachea_radius_mm=5.5, end_probability=0.8)
            res = measure_airways(ph.image.array, ph.labels.array, ph.image.spacing_mm)
            m = _match(res, ph)
            big = m[m["true_lumen_radius_mm"] >= 1.5]
            err = (big["wall_thickness_mm"] - big["true_wall_thickness_mm"]).abs()
            ok = (err <= 0.2) | (err <= 0.2 * big["true_wall_thickness_mm"])
            rows.append({"kernel": kernel, "seed": seed, "airway_wall_mm": wall,
                         "pi10_true_mm": ph.params["pi10_mm"], "pi10_mm": res.endpoints["pi10_mm"],
                         "pi10_error_mm": res.endpoints["pi10_mm"] - ph.params["pi10_mm"],
                         "branches_r_ge_1p5": int(len(big)), "within_tolerance": float(ok.mean()),
                         "median_abs_wall_error_mm": float(err.median()),
                         "max_generation": res.endpoints["airway_max_generation"]})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    from common import parse_args, write_result

    args = parse_args(__doc__.splitlines()[0])
    tables, placeholders = [], {}
    if LIDC.is_dir():
        cost, found, image, labels = lidc_cost()
        print(json.dumps({**cost, **found}, default=str), flush=True)
        tables.append({"title": "Airway step on LIDC-IDRI-0314 (512 x 512 x 275, 1 mm; one thread)",
                       "columns": ["step", "core-seconds"],
                       "rows": [[label, round(cost[f"core_s_{k}"], 1)] for k, label in STEPS.items()]
                       + [["total (measure_airways)", round(cost["core_s_total"], 1)],
                          ["wall-clock", round(cost["wall_s"], 1)], ["peak RSS (MiB)", round(cost["peak_rss_mib"])]],
                       "note": "lung segmentation and DICOM decoding not included"})
        tables.append({"title": "LIDC-IDRI-0314 airway endpoints", "columns": ["quantity", "value"],
                       "rows": [[k, round(v, 3) if isinstance(v, float) else v] for k, v in found.items()]})
        placeholders["AIRWAYS_CORE_SECONDS_PER_SCAN"] = round(cost["core_s_total"], 1)
        if not args.quick:
            tables.append({"title": "LIDC-IDRI-0314 under controlled scanner variants (same lung masks)",
                           "columns": VARIANT_COLUMNS, "rows": lidc_variants(image, labels),
                           "note": "noise: Gaussian, correlated in-plane (SD 0.7 voxel), added to the stored "
                                   "image; blur: in-plane Gaussian; every variant stored as whole HU >= -1024"})
        del image, labels
    rows = phantom_accuracy(args.quick)
    cols = ["kernel", "airway_wall_mm", "pi10_true_mm", "pi10_mm", "pi10_error_mm", "branches_r_ge_1p5",
            "within_tolerance", "median_abs_wall_error_mm", "max_generation"]
    tables.append({"title": "Thin-slice airway phantoms: Pi10 and per-branch walls against truth",
                   "columns": cols, "rows": [[r[c] if not isinstance(r[c], float) else round(r[c], 3) for c in cols]
                                             for r in rows],
                   "note": "within_tolerance: share of measured branches (lumen radius >= 1.5 mm) whose wall "
                           "thickness is within 0.2 mm or 20 % of the truth"})
    write_result(args.out, "airways", {"title": "Airway tree and per-branch measures", "quick": args.quick,
                                       "tables": tables, "placeholders": placeholders})


if __name__ == "__main__":
    main()
