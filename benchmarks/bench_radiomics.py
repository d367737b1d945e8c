"""Radiomics benchmark: ctpheno's radiomics stage (Dask) vs PyRadiomics called directly in a plain loop.

Usage: ``python benchmarks/bench_radiomics.py --out benchmarks/out [--quick]``

On one synthetic scan (full size, 512x512 and 300-450 slices; ``--quick``: the demo size),
resampled to 1 mm and 2 mm isotropic, it times per feature class (and all classes
together), for the whole lung and for the three zones:

* ``ctpheno``: :func:`ctpheno.features.stage.run_radiomics` on a one-worker, one-thread
  local Dask cluster (reads the Zarr store, validates, extracts, writes Parquet parts);
* ``direct``: ``RadiomicsFeatureExtractor.execute`` in a plain Python loop over the same
  in-memory image and region masks.

The ratio ctpheno / direct is what the Dask layer (task submission, Zarr reads, Parquet
writes, resume markers) adds per scan. Peak memory per worker is the worker process's
``ru_maxrss``. ``--quick`` keeps to 2 mm and firstorder + glcm.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from common import parse_args, peak_rss_mib, write_result  # noqa: E402

ALL_CLASSES = ["firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
"""Texture and first-order classes. ``shape`` is left out, as in the default lung parameter file:
on a whole-lung mask its O(n^2) maximum-diameter search takes minutes at 1 mm and says little
that the QCT lung volume does not."""
REGION_SETS = {"whole lung": ["whole"], "per zone": ["upper", "middle", "lower"]}


def _worker_peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(spacing_mm: float, size: str, root: Path):
    """Phantom resampled to ``spacing_mm``; written as one Zarr store in a fresh work dir."""
    from ctpheno.io.layout import WorkDir
    from ctpheno.io.zarrstore import write_volume_store
    from ctpheno.preprocess import lung_zones, resample
    from ctpheno.synth import make_phantom

    ph = make_phantom(seed=5, size=size, subtype="centrilobular", emphysema_fraction=0.2)
    sp = (spacing_mm,) * 3
    image = resample(ph.image, sp)
    labels = resample(ph.lungs, sp, is_label=True)
    zones = lung_zones(labels)
    wd = WorkDir(root / f"work_{spacing_mm:g}mm").ensure()
    write_volume_store(
        wd.volume("scan"),
        {"image": image.array, "labels": labels.array, "zones": zones.array},
        image,
        attrs={"content_hash": f"bench-{spacing_mm}"},
    )
    wd.qc_table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scan_id": ["scan"]}).to_parquet(wd.qc_table)
    return wd, image, labels, zones


def direct_loop(image, labels, zones, params: dict, regions: list[str]) -> float:
    """Seconds for PyRadiomics alone over ``regions`` (masks built beforehand, not timed)."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    from ctpheno.features.radiomics import region_masks

    masks = {
        r: labels.with_array(m).to_sitk() for r, m in region_masks(labels.array, zones.array, regions).items()
    }
    img = image.to_sitk()
    t0 = time.perf_counter()
    ext = RadiomicsFeatureExtractor(params)
    for m in masks.values():
        ext.execute(img, m, label=1)
    return time.perf_counter() - t0


def ctpheno_stage(wd, client, params_file: Path, regions: list[str]) -> float:
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.features.stage import run_radiomics

    cfg = PipelineConfig.model_validate(
        {
            "paths": {"workdir": str(wd.root)},
            "features": {"radiomics": {"params": str(params_file), "regions": regions}},
        }
    )
    t0 = time.perf_counter()
    res = run_radiomics(cfg, wd, client, force=True)
    seconds = time.perf_counter() - t0
    if not res.ok:
        raise RuntimeError(f"radiomics stage failed: {pd.read_parquet(wd.failures).to_dict('records')}")
    return seconds


def main() -> None:
    import logging

    import yaml
    from distributed import Client, LocalCluster

    args = parse_args(__doc__.splitlines()[0])
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    spacings = [2.0] if args.quick else [1.0, 2.0]
    classes = ["firstorder", "glcm"] if args.quick else ALL_CLASSES
    size = "demo" if args.quick else "full"
    rows = []
    with (
        tempfile.TemporaryDirectory(prefix="bench_radiomics_") as tmp,
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=True, memory_limit="6GiB", dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        root = Path(tmp)
        for sp in spacings:
            wd, image, labels, zones = prepare(sp, size, root)
            n_lung = int(np.isin(labels.array, [1, 2]).sum())
            groups = [*classes, "all"]  # each class alone, then all together (shared image loading)
            for group in groups:
                feature_class = {c: [] for c in (classes if group == "all" else [group])}
                params = {
                    "imageType": {"Original": {}},
                    "featureClass": feature_class,
                    "setting": {"binWidth": 25, "label": 1},
                }
                pfile = root / f"params_{group}.yaml"
                pfile.write_text(yaml.safe_dump(params))
                for rname, regions in REGION_SETS.items():
                    t_direct = direct_loop(image, labels, zones, params, regions)
                    t_stage = ctpheno_stage(wd, client, pfile, regions)
                    rows.append(
                        [
                            f"{sp:g} mm",
                            "x".join(map(str, image.shape)),
                            n_lung,
                            group,
                            rname,
                            round(t_stage, 2),
                            round(t_direct, 2),
                            round(t_stage / t_direct, 2),
                        ]
                    )
                    print(rows[-1], flush=True)
        worker_mib = max(client.run(_worker_peak_mib).values())
    result = {
        "title": "Radiomics: ctpheno stage (1 Dask worker) vs PyRadiomics in a plain loop",
        "quick": args.quick,
        "tables": [
            {
                "title": f"Seconds per scan ({size} synthetic scan, binWidth 25)",
                "columns": [
                    "spacing",
                    "grid (z x y x x)",
                    "lung voxels",
                    "feature class",
                    "regions",
                    "ctpheno s",
                    "direct s",
                    "ratio",
                ],
                "rows": rows,
                "note": f"peak RSS per worker {worker_mib:.0f} MiB; this process {peak_rss_mib():.0f} MiB",
            }
        ],
        "placeholders": {"RADIOMICS_WORKER_PEAK_MIB": round(worker_mib)},
    }
    print(write_result(args.out, "radiomics", result))


if __name__ == "__main__":
    main()
