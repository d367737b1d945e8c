"""Radiomics on the shared analysis grid vs PyRadiomics resampling itself: feature differences and time.

Usage: ``python benchmarks/bench_resampling.py --out benchmarks/out [--quick]``

For each case the features of ``config/features/radiomics.yaml`` (six classes, 2 mm, sitkBSpline)
are computed twice per region:

* ``pyradiomics`` (``features.radiomics.resampling: pyradiomics``, the exact option): the native
  image and region mask go to PyRadiomics, which resamples both inside the call;
* ``analysis_grid`` (the default): the grid preprocess stores once per scan
  (:func:`ctpheno.preprocess.analysis_grid.make_analysis_grid`), PyRadiomics' resampling off.

Cases: full-size synthetic phantoms of three emphysema subtypes (whole lung and the three zones;
``--quick``: one demo-size phantom) and the real lung1 CT of ``../shared/data`` (its lesion, and
both lungs as segmented by ctpheno). The table gives, per feature class, the largest relative
difference :math:`|a - b| / \\max(|b|, 10^{-12})` over features, regions and cases, and how many
feature values differ by more than 1e-6 relative.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import parse_args, write_result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "config" / "features" / "radiomics.yaml"
LUNG1 = REPO.parent / "shared" / "data" / "pyradiomics_lung1"
REL_TOL = 1e-6


def _cases(quick: bool):
    """(name, image, labels, zones, regions) on the native grid."""
    import SimpleITK as sitk

    from ctpheno.io.volume import Volume
    from ctpheno.preprocess import lung_zones, segment_lungs
    from ctpheno.synth import make_phantom

    subtypes = ["centrilobular"] if quick else ["centrilobular", "panlobular", "paraseptal"]
    for i, sub in enumerate(subtypes):
        ph = make_phantom(seed=20 + i, size="demo" if quick else "full", subtype=sub, emphysema_fraction=0.2)
        labels = segment_lungs(ph.image)
        yield (f"phantom {sub}", ph.image, labels, lung_zones(labels),
               ["whole"] if quick else ["whole", "upper", "middle", "lower"])
    if LUNG1.is_dir():
        image = Volume.from_sitk(sitk.ReadImage(str(LUNG1 / "lung1_image.nrrd")))
        lesion = Volume.from_sitk(sitk.ReadImage(str(LUNG1 / "lung1_label.nrrd")))
        lesion = lesion.with_array(lesion.array.astype(np.uint8))
        yield "lung1 lesion", image, lesion, lesion.with_array(np.zeros(lesion.shape, np.uint8)), ["right"]
        labels = segment_lungs(image)
        yield "lung1 lungs", image, labels, lung_zones(labels), ["whole"]


def compare(quick: bool) -> tuple[list[list], list[list]]:
    from ctpheno.features.radiomics import extract_regions, load_params, params_on_grid
    from ctpheno.preprocess.analysis_grid import make_analysis_grid

    params = load_params(PARAMS)
    spacing = float(params["setting"]["resampledPixelSpacing"][0])
    interp = {"sitkBSpline": "bspline", "sitkLinear": "linear"}[params["setting"].get("interpolator", "sitkBSpline")]
    if quick:
        params = {**params, "featureClass": {"firstorder": [], "glcm": []}}
    on_grid = params_on_grid(params, spacing_mm=spacing, interpolator=interp)
    worst: dict[str, tuple[float, str]] = {}
    n_over: dict[str, int] = {}
    n_values: dict[str, int] = {}
    times = []
    for name, image, labels, zones, regions in _cases(quick):
        t0 = time.process_time()
        exact, _ = extract_regions(image, labels, zones, params=params, regions=regions)
        t_exact = time.process_time() - t0
        t0 = time.process_time()
        grid = make_analysis_grid(image, labels, zones, spacing_mm=spacing, interpolator=interp)
        t_grid_build = time.process_time() - t0
        t0 = time.process_time()
        shared, _ = extract_regions(grid.image, grid.labels, grid.zones, params=on_grid, regions=regions)
        t_grid = time.process_time() - t0
        times.append([name, "x".join(map(str, image.shape)), len(regions), round(t_exact, 2),
                      round(t_grid_build, 2), round(t_grid, 2)])
        print(times[-1], flush=True)
        for col in exact.columns:
            if not col.startswith("original_"):
                continue
            cls = col.split("_")[1]
            a, b = shared[col].to_numpy(float), exact[col].to_numpy(float)
            rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-12)
            k = int(np.argmax(rel))
            if rel[k] >= worst.get(cls, (-1.0, ""))[0]:
                worst[cls] = (float(rel[k]), f"{col.split('_', 2)[2]} ({name}, {regions[k]})")
            n_over[cls] = n_over.get(cls, 0) + int((rel > REL_TOL).sum())
            n_values[cls] = n_values.get(cls, 0) + len(rel)
    rows = [[cls, n_values[cls], f"{worst[cls][0]:.1e}", worst[cls][1], n_over[cls]] for cls in sorted(worst)]
    return rows, times


def main() -> None:
    import logging

    args = parse_args(__doc__.splitlines()[0])
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    rows, times = compare(args.quick)
    result = {
        "title": "Radiomics on the shared analysis grid vs PyRadiomics' own resampling",
        "quick": args.quick,
        "tables": [
            {"title": "Feature differences (analysis grid vs pyradiomics)",
             "columns": ["feature class", "values compared", "largest relative difference", "where",
                         f"values over {REL_TOL:g}"],
             "rows": rows,
             "note": "relative difference |grid - pyradiomics| / max(|pyradiomics|, 1e-12), over every "
                     "feature, region and case"},
            {"title": "Core-seconds per case",
             "columns": ["case", "native grid (z x y x x)", "regions", "pyradiomics resampling + features",
                         "analysis grid: build (once, in preprocess)", "analysis grid: features"],
             "rows": times,
             "note": "one process, one thread (OMP/ITK threads 1)"},
        ],
        "placeholders": {"GRID_MAX_REL_DIFF": max(float(r[2]) for r in rows) if rows else float("nan")},
    }
    print(write_result(args.out, "resampling", result))


if __name__ == "__main__":
    main()
