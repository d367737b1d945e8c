"""Per-scan pipeline benchmark: throughput with 1 and 2 workers, core-seconds and memory per stage,
the read/decode floor and a naive single-process baseline.

Full size: synthetic 512x512x~400 DICOM series (``ctpheno.synth.make_phantom(size="full")``);
``--quick``: the small demo phantoms. Stages are called through their public names; a stage that
is not importable is recorded as "not available" and left out of the totals.

    python benchmarks/bench_pipeline.py --out benchmarks/out [--quick]
"""

from __future__ import annotations

import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (NOT_AVAILABLE, measure, optional, parse_args, peak_rss_mib, projection_table,  # noqa: E402
                    write_result)  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RADIOMICS_PARAMS = REPO / "config" / "features" / "radiomics.yaml"
STAGES = ("read", "segment", "qct", "radiomics", "embed")
_CACHE: dict[str, object] = {}


def _stage_functions() -> tuple[dict[str, object], dict[str, str]]:
    funcs, missing = {}, {}
    for key, (mod, name) in {"read_scan": ("ctpheno.io.readers", "read_scan"),
                             "segment_lungs": ("ctpheno.preprocess", "segment_lungs"),
                             "lung_zones": ("ctpheno.preprocess", "lung_zones"),
                             "qct_metrics": ("ctpheno.features.qct", "qct_metrics"),
                             "extract_regions": ("ctpheno.features.radiomics", "extract_regions"),
                             "load_params": ("ctpheno.features.radiomics", "load_params"),
                             "embed_lungs": ("ctpheno.features.deep_embeddings.extract", "embed_lungs"),
                             "load_encoder": ("ctpheno.features.deep_embeddings.extract", "load_encoder")}.items():
        f, why = optional(mod, name)
        if f is None:
            missing[key] = why
        else:
            funcs[key] = f
    return funcs, missing


def _encoder(funcs):
    if "encoder" not in _CACHE:
        from ctpheno.config import EmbeddingsConfig

        cfg = EmbeddingsConfig(model="random")  # same network cost as a trained one, no checkpoint
        _CACHE["encoder"] = (funcs["load_encoder"](cfg), cfg)
    return _CACHE["encoder"]


def ctpheno_scan(task):
    """The per-scan pipeline (read -> segment -> QCT -> radiomics -> embedding), timed per stage."""
    funcs, _ = _stage_functions()
    t: dict[str, float] = {}
    rss: dict[str, float] = {}
    with measure(t, "read"):
        vol = funcs["read_scan"](task.inputs["path"])
    rss["read"] = peak_rss_mib()
    if "segment_lungs" in funcs:
        with measure(t, "segment"):
            labels = funcs["segment_lungs"](vol)
            zones = funcs["lung_zones"](labels) if "lung_zones" in funcs else labels
        rss["segment"] = peak_rss_mib()
        if "qct_metrics" in funcs:
            with measure(t, "qct"):
                funcs["qct_metrics"](vol.array, labels.array, zones.array, vol.spacing_mm)
            rss["qct"] = peak_rss_mib()
        if "extract_regions" in funcs:
            with measure(t, "radiomics"):
                params = funcs["load_params"](RADIOMICS_PARAMS)
                funcs["extract_regions"](vol, labels, zones, params=params, regions=("whole",))
            rss["radiomics"] = peak_rss_mib()
        if "embed_lungs" in funcs:
            with measure(t, "embed"):
                enc, cfg = _encoder(funcs)
                funcs["embed_lungs"](vol.array, labels.array, vol.spacing_mm, encoder=enc, cfg=cfg,
                                     zones=zones.array)
            rss["embed"] = peak_rss_mib()
    import os

    row = {"scan_id": task.scan_id, "pid": os.getpid(), "raw_mib": vol.array.nbytes / 2**20,
           **{f"{k}_s": v for k, v in t.items() if not k.endswith("_wall")},
           **{f"{k[:-5]}_wall_s": v for k, v in t.items() if k.endswith("_wall")},
           **{f"{k}_rss_mib": v for k, v in rss.items()}}
    return pd.DataFrame([row])


def make_scans(folder: Path, n: int, size: str) -> list[Path]:
    """Write ``n`` synthetic DICOM series (reused when already there)."""
    from ctpheno.synth import make_phantom
    from ctpheno.synth.dicom import fake_patient, write_dicom_series

    paths = []
    for i in range(n):
        d = folder / f"{size}_{i:02d}"
        if not (d / ".complete").exists():
            ph = make_phantom(seed=1000 + i, size=size)
            d.mkdir(parents=True, exist_ok=True)
            rng = np.random.default_rng(i)
            study = date(2020, 1, 1)
            write_dicom_series(ph.image, d, patient=fake_patient(rng, age_years=60, sex="M", study_date=study),
                               uid_entropy=f"bench/{size}/{i}", rescale_intercept=-1024, manufacturer="SYNTH",
                               scanner_model="bench", kernel_name="B30f",
                               slice_thickness_mm=float(ph.image.spacing_mm[0]), study_date=study)
            (d / ".complete").write_text("ok")
        paths.append(d)
    return paths


def run_workers(paths: list[Path], n_workers: int, work: Path) -> dict:
    from ctpheno.cluster import ScanTask, open_client, run_stage
    from ctpheno.config import ClusterConfig

    tasks = [ScanTask(p.name, {"path": str(p)}) for p in paths]
    cfg = ClusterConfig(kind="local", n_workers=n_workers, threads_per_worker=1, memory_limit="6GiB", retries=0)
    with open_client(cfg) as client:
        client.submit(lambda: 0).result()  # workers up before the clock starts
        t0 = time.perf_counter()
        res = run_stage(ctpheno_scan, tasks, stage=f"bench{n_workers}", workdir=work, client=client,
                        output=work / f"bench{n_workers}.parquet", progress=False, force=True)
        wall = time.perf_counter() - t0
    table = pd.read_parquet(work / f"bench{n_workers}.parquet")
    return {"workers": n_workers, "wall_s": wall, "scans": len(res.done), "failed": res.failed,
            "scans_per_hour": 3600 * len(res.done) / wall if res.done else 0.0, "table": table}


def naive_baseline(paths: list[Path], funcs) -> dict:
    """A plain loop: SimpleITK series read + the same segmentation + PyRadiomics' extractor."""
    import SimpleITK as sitk
    from radiomics import featureextractor

    from ctpheno.io.volume import Volume

    extractor = featureextractor.RadiomicsFeatureExtractor(str(RADIOMICS_PARAMS))
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    for p in paths:
        with measure(t, "total"):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(p)))
            img = reader.Execute()
            labels = funcs["segment_lungs"](Volume.from_sitk(img))
            mask = sitk.GetImageFromArray(np.isin(labels.array, (1, 2)).astype(np.uint8))
            mask.CopyInformation(img)
            extractor.execute(img, mask, label=1)
    return {"wall_s": time.perf_counter() - t0, "core_s": t["total"], "scans": len(paths)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size, n = ("demo", 2) if args.quick else ("full", 4)
    funcs, missing = _stage_functions()
    result: dict = {"title": "Per-scan pipeline", "quick": args.quick, "size": size, "n_scans": n,
                    "missing": missing, "tables": [], "plots": {}, "placeholders": {}}
    if "read_scan" not in funcs:
        result["tables"].append({"title": "Per-scan pipeline", "columns": ["status"], "rows": [[NOT_AVAILABLE]]})
        write_result(args.out, "pipeline", result)
        return
    paths = make_scans(args.out / "data", n, size)
    runs = [run_workers(paths, k, args.out / "work") for k in (1, 2)]
    one, two = runs
    per_scan = one["table"]
    raw_mib = float(per_scan["raw_mib"].mean())
    stage_rows, core_total = [], 0.0
    read_s = float(per_scan["read_s"].mean())
    for s in STAGES:
        if f"{s}_s" not in per_scan:
            stage_rows.append([s, NOT_AVAILABLE, "", "", ""])
            continue
        core = float(per_scan[f"{s}_s"].mean())
        core_total += core
        rss = float(per_scan[f"{s}_rss_mib"].min())  # a worker's first scan: growth stage by stage
        stage_rows.append([s, round(core, 2), round(core / read_s, 1) if read_s else "",
                           round(float(per_scan[f"{s}_wall_s"].mean()), 2), round(rss)])
    eff = two["scans_per_hour"] / one["scans_per_hour"] if one["scans_per_hour"] else float("nan")
    peak = {k["workers"]: float(k["table"].filter(like="_rss_mib").max().max()) for k in runs}
    result["tables"].append({
        "title": "Throughput", "columns": ["workers", "scans", "wall s", "scans/hour", "peak RSS per worker (MiB)",
                                           "peak / raw volume"],
        "rows": [[r["workers"], r["scans"], round(r["wall_s"], 1), round(r["scans_per_hour"], 1),
                  round(peak[r["workers"]]), round(peak[r["workers"]] / raw_mib, 1)] for r in runs],
        "note": (f"scaling efficiency (2-worker / 1-worker throughput): {eff:.2f}x (target >= 1.8x); raw volume "
                 f"{raw_mib:.0f} MiB; target peak <= 4x raw")})
    result["tables"].append({
        "title": "Core-seconds per scan by stage (1 worker)",
        "columns": ["stage", "core-s per scan", "x read floor", "wall s",
                    "peak RSS after stage, worker's first scan (MiB)"],
        "rows": stage_rows + [["total", round(core_total, 2), round(core_total / read_s, 1), "", ""]],
        "note": "target: <= 18 core-seconds per full-size scan for the whole per-scan pipeline; "
                "'x read floor' is each stage's time as a multiple of reading and decoding the series"})
    if "segment_lungs" in funcs and optional("radiomics.featureextractor", "RadiomicsFeatureExtractor")[0]:
        base = naive_baseline(paths[:2], funcs)
        comparable = sum(float(per_scan[f"{s}_s"].mean()) for s in ("read", "segment", "radiomics")
                         if f"{s}_s" in per_scan)
        base_per_scan = base["core_s"] / base["scans"]
        result["tables"].append({
            "title": "Naive baseline (plain loop: SimpleITK read + same segmentation + PyRadiomics)",
            "columns": ["pipeline", "core-s per scan", "ratio ctpheno / baseline"],
            "rows": [["naive baseline", round(base_per_scan, 2), ""],
                     ["ctpheno, same stages (read+segment+radiomics)", round(comparable, 2),
                      round(comparable / base_per_scan, 2)],
                     ["ctpheno, whole pipeline, 2 workers (wall s per scan)",
                      round(two["wall_s"] / max(two["scans"], 1), 2),
                      round((two["wall_s"] / max(two["scans"], 1)) / (base["wall_s"] / base["scans"]), 2)]]})
    result["plots"]["throughput"] = {"x": [r["workers"] for r in runs], "y": [r["scans_per_hour"] for r in runs],
                                     "xlabel": "workers", "ylabel": "scans / hour", "kind": "line"}
    avail = [r for r in stage_rows if r[1] != NOT_AVAILABLE]
    result["plots"]["time_per_stage"] = {"x": [r[0] for r in avail], "y": [r[1] for r in avail],
                                         "xlabel": "stage", "ylabel": "core-seconds per scan", "kind": "bar"}
    result["plots"]["memory_per_stage"] = {"x": [r[0] for r in avail], "y": [r[4] for r in avail],
                                           "xlabel": "stage", "ylabel": "peak RSS after stage (MiB)", "kind": "bar"}
    if not args.quick:
        result["placeholders"] = {"CORE_SECONDS_PER_SCAN": round(core_total, 1),
                                  "PEAK_WORKER_MIB": round(peak[1]), "SCALING_2W": round(eff, 2),
                                  "PROJECTION_TABLE": "\n" + projection_table(core_total, peak[1]) + "\n",
                                  "STATUS": (f"\n> Measured by `make bench` on {time.strftime('%Y-%m-%d')} "
                                             f"({n} full-size scans; see docs/results.md).\n")}
    write_result(args.out, "pipeline", result)


if __name__ == "__main__":
    main()
