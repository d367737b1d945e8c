"""Pipeline stages ``qct`` and ``radiomics``: map the per-scan feature functions over preprocessed scans.

Scans are those preprocess finished (``qc/qc.parquet``), read from
``volumes/<scan_id>.zarr``. Each task's inputs hold the store's ``content_hash``
attribute, so a scan whose volume changed is recomputed on the next run.

Outputs: ``features/qct.parquet`` (schema QCT), ``features/radiomics.parquet``
(schema RADIOMICS), ``features/radiomics_diagnostics.parquet`` (PyRadiomics'
``diagnostics_*`` entries and captured warnings per scan and region) and
``features/radiomics.settings.json`` (validated PyRadiomics parameters, their hash
and the PyRadiomics version).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cluster.runner import ScanTask, StageResult, run_stage, stable_hash
from ..config.features import QCTConfig, RadiomicsConfig
from ..errors import ConfigError
from ..io.layout import WorkDir
from ..io.schemas import QCT, RADIOMICS
from ..io.tables import concat_parts, write_json

log = logging.getLogger(__name__)

QCT_BYTES_PER_VOXEL = 6
"""Peak memory of a QCT task per voxel: bool low-attenuation mask, int32 cluster labels (cropped), chunks."""
QCT_MARGIN_VOXELS = 2
"""Voxels kept around the labelled (lung and airway) voxels when QCT reads a store: every QCT number,
the airway wall profile included, is computed on lung or lumen voxels only."""
QCT_SLAB_SLICES = 32
"""Slices per block of the in-memory QCT crop (a few large blocks: few tasks, one mask at a time)."""
RADIOMICS_BYTES_PER_VOXEL = 40
"""Peak memory of PyRadiomics per voxel (image copies as float64, mask, cropped matrices)."""


def _store_hash(path: Path) -> str:
    from ..io.zarrstore import store_attrs

    attrs = store_attrs(path)
    return str(attrs.get("content_hash") or stable_hash({"path": str(path), "attrs": attrs}))


def _scan_ids(wd: WorkDir, stage: str) -> list[str]:
    if not wd.qc_table.exists():
        raise ConfigError(f"{stage}: {wd.qc_table} does not exist; run `ctpheno preprocess` first")
    ids = pd.read_parquet(wd.qc_table, columns=["scan_id"])["scan_id"].astype(str).tolist()
    return [s for s in ids if wd.volume(s).exists()]


def _tasks(wd: WorkDir, ids: list[str], extra: dict[str, Any], bytes_per_voxel: int,
           array: str = "image") -> list[ScanTask]:
    from ..io.zarrstore import open_volume_store

    tasks = []
    for sid in ids:
        store = wd.volume(sid)
        n = int(np.prod(open_volume_store(store)[array].shape))
        tasks.append(
            ScanTask(
                sid,
                inputs={"store": str(store), "content_hash": _store_hash(store), **extra},
                source=f"volumes/{sid}.zarr",
                est_bytes=n * bytes_per_voxel,
            )
        )
    return tasks


def qct_scan(task: ScanTask) -> pd.DataFrame:
    """Per-scan QCT work (top-level, picklable): the labelled box (lungs and airways) read once from
    the store, then :func:`qct_metrics_dask` over slabs of that crop.

    Every QCT number is computed on lung or lumen voxels (the airway wall profile too: only lung
    voxels enter its shells), so the crop gives the whole volume's table. Reading it once matters:
    the blockwise path on lazy Zarr chunks re-read and re-decompressed the store for every region
    (about 20 core-s per full-size scan against 4 here, the same table).
    """
    import dask
    import dask.array as da

    from ..io.zarrstore import read_around_labels, store_attrs
    from .qct import qct_metrics_dask

    store = task.inputs["store"]
    cfg = QCTConfig.model_validate(task.inputs["config"])
    spacing = tuple(float(s) for s in store_attrs(store)["spacing_mm"])
    arrays, _ = read_around_labels(store, margin_voxels=(QCT_MARGIN_VOXELS,) * 3)
    slab = (QCT_SLAB_SLICES,) + arrays["image"].shape[1:]
    with dask.config.set(scheduler="synchronous"):  # inside a worker: stay on its thread
        df = qct_metrics_dask(
            *(da.from_array(arrays[n], chunks=slab) for n in ("image", "labels", "zones")),
            spacing,
            config=cfg,
            scan_id=task.scan_id,
        )
    return QCT.validate(df, where=f"QCT of {task.scan_id}")


def run_qct(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Stage ``qct``: QCT metrics of every preprocessed scan -> ``features/qct.parquet``."""
    qcfg: QCTConfig = cfg.features.qct
    if not qcfg.enabled:
        return StageResult("qct")
    conf = json.loads(qcfg.model_dump_json())
    tasks = _tasks(wd, _scan_ids(wd, "qct"), {"config": conf}, QCT_BYTES_PER_VOXEL)
    return run_stage(
        qct_scan,
        tasks,
        stage="qct",
        workdir=wd,
        client=client,
        cfg_hash=stable_hash(conf),
        retries=cfg.cluster.retries,
        force=force,
        output=wd.qct,
        schema=QCT,
    )


def _diagnostics_part(wd_root: str, scan_id: str) -> Path:
    return WorkDir(wd_root).parts_dir("radiomics_diagnostics") / f"{scan_id}.parquet"


def radiomics_scan(task: ScanTask) -> pd.DataFrame:
    """Per-scan radiomics work (top-level, picklable); writes its diagnostics part beside the feature part."""
    from ..io.tables import write_table
    from ..io.zarrstore import ANALYSIS_GROUP, read_group_volumes, read_volume
    from .radiomics import extract_regions

    store = task.inputs["store"]
    if task.inputs.get("analysis_grid"):  # the isotropic grid preprocess stored: small, resampled once
        grid = read_group_volumes(store, ANALYSIS_GROUP)
        image, labels, zones = grid["image"], grid["labels"], grid["zones"]
    else:
        image, labels, zones = (read_volume(store, n) for n in ("image", "labels", "zones"))
    feats, diag = extract_regions(
        image,
        labels,
        zones,
        params=task.inputs["params"],
        regions=task.inputs["regions"],
        scan_id=task.scan_id,
    )
    write_table(diag, _diagnostics_part(task.inputs["workdir"], task.scan_id))
    return RADIOMICS.validate(feats, where=f"radiomics of {task.scan_id}")


def resolve_params_path(rcfg: RadiomicsConfig) -> Path:
    """The PyRadiomics parameter file (relative paths: from the current directory)."""
    path = Path(rcfg.params)
    if not path.is_file():
        raise ConfigError(
            f"features.radiomics.params: PyRadiomics parameter file {path.resolve()} does not exist"
        )
    return path


def radiomics_inputs(cfg: Any, params: dict[str, Any], source: str) -> tuple[dict[str, Any], bool]:
    """The params PyRadiomics gets and whether it reads the analysis grid (``features.radiomics.resampling``).

    ``analysis_grid`` with a ``resampledPixelSpacing``: the grid preprocess stored, PyRadiomics'
    resampling switched off (:func:`~ctpheno.features.radiomics.params_on_grid` checks that the
    grid is the one PyRadiomics would build). Otherwise the native grid and the params as given.
    """
    from .radiomics import params_on_grid, resampled_spacing

    rcfg: RadiomicsConfig = cfg.features.radiomics
    if rcfg.resampling != "analysis_grid" or resampled_spacing(params) is None:
        return params, False
    grid = cfg.preprocess.analysis_grid
    if not grid.enabled:
        raise ConfigError(
            "features.radiomics.resampling is analysis_grid but preprocess.analysis_grid.enabled is "
            "false; enable the grid (and re-run preprocess) or set features.radiomics.resampling: pyradiomics")
    return params_on_grid(params, spacing_mm=grid.spacing_mm, interpolator=grid.interpolator, source=source), True


def run_radiomics(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Stage ``radiomics``: PyRadiomics per scan and region -> ``features/radiomics.parquet``."""
    from ..io.zarrstore import ANALYSIS_GROUP
    from .radiomics import load_params, pyradiomics_version, settings_hash

    rcfg: RadiomicsConfig = cfg.features.radiomics
    if not rcfg.enabled:
        return StageResult("radiomics")
    path = resolve_params_path(rcfg)
    params = load_params(path)
    run_params, on_grid = radiomics_inputs(cfg, params, str(path))
    shash = settings_hash({"params": run_params, "regions": list(rcfg.regions), "analysis_grid": on_grid})
    wd.features_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        {
            "params_file": str(path),
            "params": params,
            "regions": list(rcfg.regions),
            "resampling": "analysis_grid" if on_grid else "pyradiomics",
            "settings_hash": shash,
            "pyradiomics_version": pyradiomics_version(),
        },
        wd.features_dir / "radiomics.settings.json",
    )
    extra = {"params": run_params, "regions": list(rcfg.regions), "workdir": str(wd.root), "analysis_grid": on_grid}
    tasks = _tasks(wd, _scan_ids(wd, "radiomics"), extra, RADIOMICS_BYTES_PER_VOXEL,
                   array=f"{ANALYSIS_GROUP}/image" if on_grid else "image")
    res = run_stage(
        radiomics_scan,
        tasks,
        stage="radiomics",
        workdir=wd,
        client=client,
        cfg_hash=shash,
        retries=cfg.cluster.retries,
        force=force,
        output=wd.radiomics,
        schema=RADIOMICS,
    )
    ok = set(res.done) | set(res.skipped)
    concat_parts(
        wd.parts_dir("radiomics_diagnostics"),
        wd.features_dir / "radiomics_diagnostics.parquet",
        None,
        keep=ok,
    )
    return res
