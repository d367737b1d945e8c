"""Per-scan pipeline benchmark: core-seconds and memory per stage, 1- and 2-worker throughput, and a
plain single-process loop, all measured in one run.

The scans go through the pipeline's own per-scan stage functions, stage after stage on one Dask
cluster as ``ctpheno run`` calls them: ``preprocess_scan`` (read the DICOM series, HU, lung
segmentation, zones, the isotropic analysis grid, Zarr store, QC montage), ``qct_scan`` (the
labelled box of the store), ``radiomics_scan`` (PyRadiomics on the analysis grid, its own
resampling off) and ``embed_scan_task`` (the patch encoder on the analysis grid; random weights,
the same network cost as a trained one).

Full size: 8 synthetic 512x512x~400 DICOM series (``ctpheno.synth.make_phantom(size="full")``);
``--quick``: 4 demo-size phantoms. Memory is read from ``/proc/self/status`` in the worker: its
resident memory when a task starts (*idle*: libraries loaded, no scan held) and the peak above it
while the task runs (the per-scan *increment*; the peak is reset before every task). The plain
loop is what a user would write without ctpheno: SimpleITK series read + the same lung
segmentation + PyRadiomics with the same parameter file (it resamples inside every call).

    python benchmarks/bench_pipeline.py --out benchmarks/out [--quick]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (measure, parse_args, peak_rss_mib, projection_table, reset_peak, status_mib,  # noqa: E402
                    write_result)

REPO = Path(__file__).resolve().parents[1]
RADIOMICS_PARAMS = REPO / "config" / "features" / "radiomics.yaml"
STAGES = ("preprocess", "qct", "radiomics", "embed")
CORE_SECONDS_TARGET = 12.0
PEAK_MIB_TARGET = 1.5 * 1024
SCALING_TARGET = 1.8
RATIO_TARGET = 0.5


def pipeline_config(work: Path):
    """The default pipeline configuration with the random-weight patch encoder (no training)."""
    from ctpheno.config.pipeline import PipelineConfig

    return PipelineConfig.model_validate({
        "paths": {"workdir": str(work)},
        "features": {"radiomics": {"params": str(RADIOMICS_PARAMS)}},
        "embeddings": {"model": "random"},
    })


def stage_task(task):
    """One stage of one scan on a worker (``task.inputs["stage"]``), timed and metered.

    Memory comes from ``/proc/self/status``: ``idle`` is the worker's resident memory when the
    task starts, ``peak`` its highest while the task runs (reset first).
    """
    import json

    from ctpheno.cluster import ScanTask
    from ctpheno.features.radiomics import load_params
    from ctpheno.io.layout import WorkDir

    cfg = pipeline_config(Path(task.inputs["workdir"]))
    wd = WorkDir(cfg.paths.workdir).ensure()
    sid, store, stage = task.scan_id, str(wd.volume(task.scan_id)), task.inputs["stage"]
    if stage == "preprocess":
        from ctpheno.preprocess.stage import preprocess_scan

        inner = {"paths": [str(p) for p in sorted(Path(task.inputs["path"]).glob("*.dcm"))], "format": "dicom",
                 "config": json.loads(cfg.preprocess.model_dump_json()), "workdir": str(wd.root)}
        run = preprocess_scan
    elif stage == "qct":
        from ctpheno.features.stage import qct_scan

        inner, run = {"store": store, "config": json.loads(cfg.features.qct.model_dump_json())}, qct_scan
    elif stage == "radiomics":
        from ctpheno.features.stage import radiomics_inputs, radiomics_scan

        params, on_grid = radiomics_inputs(cfg, load_params(RADIOMICS_PARAMS), str(RADIOMICS_PARAMS))
        inner = {"store": store, "params": params, "regions": list(cfg.features.radiomics.regions),
                 "workdir": str(wd.root), "analysis_grid": on_grid}
        run = radiomics_scan
    else:
        import functools

        from ctpheno.features.deep_embeddings.stage import embed_scan_task

        inner = {"store": store, "model": "random", "checkpoint": "", "checkpoint_hash": ""}
        run = functools.partial(embed_scan_task, settings_json=cfg.embeddings.model_dump_json(), threads=1)
    idle = status_mib("VmRSS")
    reset_peak()
    t: dict[str, float] = {}
    with measure(t, "stage"):
        run(ScanTask(sid, inner))
    return pd.DataFrame([{"scan_id": sid, "stage": stage, "pid": os.getpid(), "core_s": t["stage"],
                          "wall_s": t["stage_wall"], "idle_mib": idle, "peak_mib": status_mib("VmHWM")}])


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
    """Every scan through the per-scan stages on ``n_workers`` one-thread workers, stage after stage as
    ``ctpheno run`` does; wall time from the first submission to the last result."""
    from ctpheno.cluster import ScanTask, open_client, run_stage
    from ctpheno.config import ClusterConfig

    stage_work = work / f"w{n_workers}"
    cfg = ClusterConfig(kind="local", n_workers=n_workers, threads_per_worker=1, memory_limit="6GiB", retries=0)
    tables = []
    with open_client(cfg) as client:
        client.submit(int, 0).result()  # workers up before the clock starts
        t0 = time.perf_counter()
        for stage in STAGES:
            # est_bytes as the pipeline gives it (scan size), so that the runner starts the largest first
            tasks = [ScanTask(p.name, {"stage": stage, "path": str(p), "workdir": str(stage_work)},
                              est_bytes=sum(f.stat().st_size for f in p.glob("*.dcm"))) for p in paths]
            out = work / f"bench{n_workers}_{stage}.parquet"
            res = run_stage(stage_task, tasks, stage=f"bench{n_workers}-{stage}", workdir=work, client=client,
                            output=out, progress=False, force=True)
            if res.failed:
                raise RuntimeError(f"{stage} failed for {res.failed}: see {work / 'failures.parquet'}")
            tables.append(pd.read_parquet(out))
        wall = time.perf_counter() - t0
    table = pd.concat(tables, ignore_index=True)
    return {"workers": n_workers, "wall_s": wall, "scans": len(paths), "scans_per_hour": 3600 * len(paths) / wall,
            "table": table}


def read_floor(path: Path) -> float:
    """Core-seconds to read and decode one series (the least any pipeline must spend)."""
    from ctpheno.io.readers import read_scan

    t: dict[str, float] = {}
    with measure(t, "read"):
        read_scan(sorted(str(p) for p in path.glob("*.dcm")), fmt="dicom")
    return t["read"]


def plain_loop(paths: list[Path]) -> dict:
    """A plain loop: SimpleITK series read + the same segmentation + PyRadiomics' extractor."""
    import SimpleITK as sitk
    from radiomics import featureextractor

    from ctpheno.io.volume import Volume
    from ctpheno.preprocess import segment_lungs

    extractor = featureextractor.RadiomicsFeatureExtractor(str(RADIOMICS_PARAMS))
    t: dict[str, float] = {}
    for p in paths:
        with measure(t, "total"):
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(p)))
            img = reader.Execute()
            labels = segment_lungs(Volume.from_sitk(img))
            mask = sitk.GetImageFromArray(np.isin(labels.array, (1, 2)).astype(np.uint8))
            mask.CopyInformation(img)
            extractor.execute(img, mask, label=1)
    return {"core_s": t["total"], "wall_s": t["total_wall"], "scans": len(paths)}


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    size, n = ("demo", 4) if args.quick else ("full", 8)
    result: dict = {"title": "Per-scan pipeline", "quick": args.quick, "size": size, "n_scans": n,
                    "tables": [], "plots": {}, "placeholders": {}}
    paths = make_scans(args.out / "data", n, size)
    work = args.out / "work"
    one, two = (run_workers(paths, k, work) for k in (1, 2))
    per_stage = one["table"].groupby("stage", sort=False)
    floor = read_floor(paths[0])
    both = pd.concat([one["table"], two["table"]], ignore_index=True)
    both["increment_mib"] = both["peak_mib"] - both["idle_mib"]
    stage_rows, core_total = [], 0.0
    for s in STAGES:
        g = per_stage.get_group(s)
        mem = both[both["stage"] == s]
        core = float(g["core_s"].mean())
        core_total += core
        stage_rows.append([s, round(core, 2), round(core / floor, 1), round(float(g["wall_s"].mean()), 2),
                           round(float(mem["idle_mib"].median())), round(float(mem["increment_mib"].median())),
                           round(float(mem["peak_mib"].max()))])
    eff = two["scans_per_hour"] / one["scans_per_hour"]
    peak = float(both["peak_mib"].max())
    idle = float(both["idle_mib"].median())
    inc_med, inc_max = float(both["increment_mib"].median()), float(both["increment_mib"].max())
    raw_mib = 2 * 512 * 512 * float(np.mean([len(list(p.glob("*.dcm"))) for p in paths])) / 2**20
    result["tables"].append({
        "title": "Core-seconds and worker memory per scan, by stage (1 worker)",
        "columns": ["stage", "core-s per scan", "x read floor", "wall s", "idle RSS (MiB)",
                    "increment, median (MiB)", "peak RSS (MiB)"],
        "rows": stage_rows + [["total", round(core_total, 2), round(core_total / floor, 1), "", "", "", round(peak)]],
        "note": (f"target <= {CORE_SECONDS_TARGET:g} core-s per full-size scan and peak <= {PEAK_MIB_TARGET:.0f} MiB; "
                 f"read floor (read + decode the series, part of preprocess) {floor:.2f} core-s; idle = the worker's "
                 f"RSS when a task starts, increment = its peak above that while the task runs (1 and 2 workers)")})
    result["tables"].append({
        "title": "Worker memory",
        "columns": ["measure", "MiB", "x raw volume"],
        "rows": [["idle (median over tasks)", round(idle), round(idle / raw_mib, 1)],
                 ["per-scan increment, median", round(inc_med), round(inc_med / raw_mib, 1)],
                 ["per-scan increment, max", round(inc_max), round(inc_max / raw_mib, 1)],
                 ["peak worker RSS", round(peak), round(peak / raw_mib, 1)]],
        "note": f"target peak <= {PEAK_MIB_TARGET:.0f} MiB; raw int16 volume {raw_mib:.0f} MiB"})
    result["tables"].append({
        "title": "Throughput",
        "columns": ["workers", "scans", "wall s", "scans/hour"],
        "rows": [[r["workers"], r["scans"], round(r["wall_s"], 1), round(r["scans_per_hour"], 1)] for r in (one, two)],
        "note": f"scaling (2-worker / 1-worker throughput): {eff:.2f}x (target >= {SCALING_TARGET:g}x)"})
    base = plain_loop(paths[:2])
    base_per_scan = base["core_s"] / base["scans"]
    same = float(per_stage.get_group("preprocess")["core_s"].mean() + per_stage.get_group("radiomics")["core_s"].mean())
    result["tables"].append({
        "title": "Plain loop (SimpleITK read + same segmentation + PyRadiomics resampling itself)",
        "columns": ["pipeline", "core-s per scan", "ratio ctpheno / plain loop"],
        "rows": [["plain loop", round(base_per_scan, 2), ""],
                 ["ctpheno, same stages (preprocess + radiomics)", round(same, 2), round(same / base_per_scan, 2)]],
        "note": f"target ratio <= {RATIO_TARGET:g}; preprocess also writes zones, the analysis grid, "
                f"the Zarr store and the QC montage, which the plain loop does not"})
    result["plots"]["throughput"] = {"x": [1, 2], "y": [one["scans_per_hour"], two["scans_per_hour"]],
                                     "xlabel": "workers", "ylabel": "scans / hour", "kind": "line"}
    result["plots"]["time_per_stage"] = {"x": list(STAGES), "y": [r[1] for r in stage_rows],
                                         "xlabel": "stage", "ylabel": "core-seconds per scan", "kind": "bar"}
    result["plots"]["memory_per_stage"] = {"x": list(STAGES), "y": [r[6] for r in stage_rows],
                                           "xlabel": "stage", "ylabel": "peak worker RSS (MiB)", "kind": "bar"}
    result["summary"] = {"core_s_per_scan": core_total, "peak_worker_mib": peak, "idle_mib": idle,
                         "increment_mib_median": inc_med, "increment_mib_max": inc_max, "scaling_2w": eff,
                         "ratio_plain": same / base_per_scan, "stages": stage_rows,
                         "main_process_peak_mib": peak_rss_mib()}
    print(result["summary"], flush=True)
    if not args.quick:
        result["placeholders"] = {"CORE_SECONDS_PER_SCAN": round(core_total, 1),
                                  "PEAK_WORKER_MIB": round(peak), "IDLE_WORKER_MIB": round(idle),
                                  "SCAN_INCREMENT_MIB": round(inc_max), "SCALING_2W": round(eff, 2),
                                  "RATIO_PLAIN_LOOP": round(same / base_per_scan, 2),
                                  "PROJECTION_TABLE": "\n" + projection_table(core_total, peak) + "\n",
                                  "STATUS": (f"\n> Measured by `make bench` on {time.strftime('%Y-%m-%d')} "
                                             f"({n} full-size scans; see docs/results.md).\n")}
    write_result(args.out, "pipeline", result)


if __name__ == "__main__":
    main()
