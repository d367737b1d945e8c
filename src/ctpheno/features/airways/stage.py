"""Pipeline stage ``airways``: the airway tree and per-branch measures of every preprocessed scan.

A separate stage (before ``qct``), because it costs more than the rest of the per-scan QCT
(docs/methods_features.md gives the measured core-seconds) and can be turned off
(``features.airways.enabled: false``); the ``qct`` stage copies its endpoints onto the whole-lung
rows of ``qct.parquet`` (``airways_not_run`` when it did not run).

Per scan it reads ``volumes/<scan_id>.zarr`` (``image``, ``labels``) and writes

* a row of ``features/airways.parquet`` (schema AIRWAYS: endpoints and how they were measured);
* its branches to ``features/airway_branches.parquet`` (schema AIRWAY_BRANCHES);
* ``airways/<scan_id>.zarr``: array ``branch`` (int32, lumen voxels labelled ``branch_id + 1``);
* ``qc/<scan_id>_airways.png`` (:mod:`.figures`).

The image the walls are measured on is a task input (``measure_store``, ``measure_array``;
default the scan's own ``image``): a study's sharp reconstruction on the same grid can be
passed instead, the tree is still grown on the scan's image and labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from ...cluster.runner import ScanTask, StageResult, run_stage, stable_hash
from ...config.airways import AirwaysConfig
from ...io.layout import WorkDir
from ...io.schemas import AIRWAY_BRANCHES, AIRWAYS
from ...io.tables import concat_parts
from ..scans import feature_scan_ids, scan_tasks, store_hash

AIRWAYS_BYTES_PER_VOXEL = 24
"""Peak memory of an airways task per voxel: image and labels, float32 smoothed crop, int32 piece ids, masks."""
BRANCHES_STAGE = "airway_branches"


def _slice_thickness(wd: WorkDir) -> dict[str, float]:
    """Scan id -> slice thickness from the manifest (absent: the store's z spacing is used)."""
    if not wd.manifest.exists():
        return {}
    man = pd.read_parquet(wd.manifest)
    if "slice_thickness_mm" not in man.columns:
        return {}
    vals = man.set_index(man["scan_id"].astype(str))["slice_thickness_mm"].astype(float)
    return {k: float(v) for k, v in vals.items() if math.isfinite(v)}


def _airway_series_inputs(wd: WorkDir, ids: list[str], thick: dict[str, float]) -> dict[str, dict[str, Any]]:
    """Per density scan whose study kept a sharper airway series (ingest's ``series_role``): measure the
    walls on it. On the same grid the tree is grown on the density scan and the walls measured on the
    airway series (``measure_store``); on another grid tree and walls both come from the airway series
    (``store``, with its own slice thickness). Without an airway series: nothing (the scan's own image)."""
    from ...ingest.roles import density_airway_pairs

    if not wd.manifest.exists():
        return {}
    pairs = density_airway_pairs(pd.read_parquet(wd.manifest))
    out: dict[str, dict[str, Any]] = {}
    for sid in ids:
        airway = pairs.get(sid)
        if not airway or airway == sid or not wd.volume(airway).exists():
            continue
        a_store = wd.volume(airway)
        same_grid = _grid(wd.volume(sid)) == _grid(a_store)
        if same_grid:
            out[sid] = {"measure_store": str(a_store), "airway_hash": store_hash(a_store)}
        else:
            out[sid] = {"store": str(a_store), "content_hash": store_hash(a_store),
                        "slice_thickness_mm": thick.get(airway)}
    return out


def _grid(store: Path) -> tuple:
    """Shape and geometry of a store's image (rounded to 1 µm): same tuple = same voxel centres."""
    from ...io.zarrstore import open_volume_store, store_attrs

    attrs = store_attrs(store)
    geometry = tuple(tuple(round(float(v), 3) for v in attrs.get(k, ())) for k in ("spacing_mm", "origin_mm",
                                                                                   "direction"))
    return (tuple(open_volume_store(store)["image"].shape), *geometry)


def airways_row(scan_id: str, result: Any, measure_image: str) -> pd.DataFrame:
    """The AIRWAYS row of one scan's :class:`~ctpheno.features.airways.AirwayResult`."""
    b = result.branches
    row = {"scan_id": scan_id, **result.endpoints, **result.diagnostics,
           "n_branches_measured": int(b["measured"].sum()) if len(b) else 0, "measure_image": measure_image}
    df = pd.DataFrame([row])
    for c in ("scan_id", "airway_tree_flags", "psf_source", "measure_image"):
        df[c] = df[c].astype("string")
    return df[list(AIRWAYS.columns)]


def branches_table(scan_id: str, branches: pd.DataFrame) -> pd.DataFrame:
    """The AIRWAY_BRANCHES rows of one scan."""
    if not len(branches):
        return AIRWAY_BRANCHES.empty()
    df = branches.copy()
    df.insert(0, "scan_id", scan_id)
    df["scan_id"] = df["scan_id"].astype("string")
    df["side"] = df["side"].astype("string")
    return df[list(AIRWAY_BRANCHES.columns)]


def airways_scan(task: ScanTask) -> pd.DataFrame:
    """Per-scan airway work (top-level, picklable); writes the branch part, tree store and QC picture."""
    from ...io.tables import write_table
    from ...io.zarrstore import read_volume, write_volume_store
    from .measure import branch_label_map, measure_airways

    cfg = AirwaysConfig.model_validate(task.inputs["config"])
    wd = WorkDir(task.inputs["workdir"])
    store = task.inputs["store"]
    image, labels = read_volume(store, "image"), read_volume(store, "labels")
    m_store = task.inputs.get("measure_store") or store
    m_array = task.inputs.get("measure_array") or "image"
    measure = image
    if (m_store, m_array) != (store, "image"):
        measure = read_volume(m_store, m_array)
        image.check_same_geometry(measure, what=f"measurement image {Path(str(m_store)).name}/{m_array}")
    result = measure_airways(image.array, labels.array, image.spacing_mm, measure_hu=measure.array,
                             slice_thickness_mm=task.inputs.get("slice_thickness_mm"), config=cfg)
    write_table(branches_table(task.scan_id, result.branches), wd.part(BRANCHES_STAGE, task.scan_id), AIRWAY_BRANCHES)
    if result.tree is not None and result.segmentation is not None:
        tree_map = branch_label_map(result.tree, result.segmentation.lumen, image.spacing_mm)
        write_volume_store(wd.airway_tree(task.scan_id), {"branch": tree_map}, image,
                           attrs={"scan_id": task.scan_id})
        if cfg.qc_png:
            from .figures import save_qc_figure

            save_qc_figure(result, measure.array, image.spacing_mm, wd.qc_airways_png(task.scan_id),
                           title=task.scan_id)
    return AIRWAYS.validate(airways_row(task.scan_id, result, f"{Path(str(m_store)).name}/{m_array}"),
                            where=f"airways of {task.scan_id}")


def run_airways(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Stage ``airways``: airway tree and per-branch measures -> ``features/airways.parquet``."""
    acfg: AirwaysConfig = cfg.features.airways
    if not acfg.enabled:
        return StageResult("airways")
    conf = json.loads(acfg.model_dump_json())
    thick = _slice_thickness(wd)
    ids = feature_scan_ids(wd, "airways")
    sharp = _airway_series_inputs(wd, ids, thick)
    tasks = scan_tasks(wd, ids, {"config": conf, "workdir": str(wd.root)}, AIRWAYS_BYTES_PER_VOXEL,
                        per_scan={sid: {"slice_thickness_mm": thick.get(sid), **sharp.get(sid, {})}
                                  for sid in ids})
    res = run_stage(airways_scan, tasks, stage="airways", workdir=wd, client=client, cfg_hash=stable_hash(conf),
                    retries=cfg.cluster.retries, force=force, output=wd.airways, schema=AIRWAYS)
    concat_parts(wd.parts_dir(BRANCHES_STAGE), wd.airway_branches, AIRWAY_BRANCHES,
                 keep=set(res.done) | set(res.skipped))
    return res


def endpoints_by_scan(wd: WorkDir) -> dict[str, dict]:
    """Scan id -> its endpoints and flags from ``features/airways.parquet`` (empty when absent): what
    the ``qct`` stage copies onto its whole-lung rows."""
    from .endpoints import ENDPOINT_COLUMNS, FLAG_COLUMN

    if not wd.airways.exists():
        return {}
    tab = pd.read_parquet(wd.airways)
    out = {}
    for row in tab.to_dict("records"):
        ep = {c: float(row[c]) for c in ENDPOINT_COLUMNS}
        ep[FLAG_COLUMN] = str(row[FLAG_COLUMN]) if pd.notna(row[FLAG_COLUMN]) else ""
        out[str(row["scan_id"])] = ep
    return out


__all__ = ["airways_row", "airways_scan", "branches_table", "endpoints_by_scan", "run_airways"]
