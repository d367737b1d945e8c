"""Pipeline stages ``qct`` and ``radiomics``: map the per-scan feature functions over preprocessed scans.

Scans are those preprocess finished (``qc/qc.parquet``), read from
``volumes/<scan_id>.zarr``. Each task's inputs hold the store's ``content_hash``
attribute, so a scan whose volume changed is recomputed on the next run.

Outputs: ``features/qct.parquet`` (schema QCT; the whole-lung rows carry the endpoints of the
``airways`` stage, :mod:`ctpheno.features.airways.stage`), ``features/radiomics.parquet``
(schema RADIOMICS), ``features/radiomics_diagnostics.parquet`` (PyRadiomics'
``diagnostics_*`` entries and captured warnings per scan and region) and
``features/radiomics.settings.json`` (validated PyRadiomics parameters, their hash
and the PyRadiomics version).
"""

from __future__ import annotations

import json
import logging
import math
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
from .harmonise import GAUSS_TRUNCATE
from .kernel_fit import BOOST_EDGE_MM
from .scans import feature_scan_ids, scan_tasks, store_hash

log = logging.getLogger(__name__)

QCT_BYTES_PER_VOXEL = 8
"""Peak memory of a QCT task per voxel: the lungs' bounding box read once into memory (image, labels, zones:
4 bytes per voxel of a box of ~1/4-1/2 of the volume), the low-attenuation part codes (uint8) and their
int32 cluster labels on that box, and the harmonising filter's float32 crop."""
QCT_MARGIN_VOXELS = 2
"""Voxels kept around the labelled (lung and airway) voxels when QCT reads a store: every QCT number,
the airway wall profile included, is computed on lung or lumen voxels only (the harmonising filter's
in-plane reach is added, :func:`qct_margin_voxels`)."""
RADIOMICS_BYTES_PER_VOXEL = 40
"""Peak memory of PyRadiomics per voxel (image copies as float64, mask, cropped matrices)."""


def _acquisition_inputs(wd: WorkDir, ids: list[str]) -> dict[str, dict[str, Any]]:
    """Per density scan: its kernel class (manifest) and the airway series' store, when one was processed."""
    from ..ingest.roles import density_airway_pairs

    if not wd.manifest.exists():
        return {}
    man = pd.read_parquet(wd.manifest)
    kernel = (man.set_index("scan_id")["kernel_class"].fillna("unknown").astype(str).to_dict()
              if "kernel_class" in man else {})
    pairs = density_airway_pairs(man)
    out: dict[str, dict[str, Any]] = {}
    for sid in ids:
        extra: dict[str, Any] = {"kernel_class": kernel.get(sid, "unknown")}
        airway = pairs.get(sid)
        if airway and wd.volume(airway).exists():
            store = wd.volume(airway)
            extra.update(airway_scan_id=airway, airway_store=str(store), airway_hash=store_hash(store))
        out[sid] = extra
    return out


def qct_margin_voxels(cfg: QCTConfig, spacing_mm: tuple[float, ...]) -> tuple[int, int, int]:
    """Margin (z, y, x voxels) around the labelled voxels that QCT reads: :data:`QCT_MARGIN_VOXELS`,
    in-plane widened to the harmonising filter's widest possible reach (``max_sigma_mm`` with the
    de-boost component), so a lung voxel's filtered value is the same as on the whole volume."""
    reach_mm = GAUSS_TRUNCATE * math.hypot(cfg.harmonisation.max_sigma_mm, BOOST_EDGE_MM)
    inplane = tuple(QCT_MARGIN_VOXELS + int(math.ceil(reach_mm / float(s))) for s in spacing_mm[1:])
    return (QCT_MARGIN_VOXELS,) + inplane  # type: ignore[return-value]


def qct_scan(task: ScanTask) -> pd.DataFrame:
    """Per-scan QCT work (top-level, picklable): the labelled box (lungs and airways) read once from
    the store, then :func:`qct_metrics` on that crop in memory.

    Every QCT number is computed on lung or lumen voxels (the airway wall profile too: only lung
    voxels enter its shells; the harmonising filter reaches at most :func:`qct_margin_voxels` into
    the chest wall), so the crop gives the whole volume's table. Reading it once matters: the
    blockwise path on lazy Zarr chunks re-read and re-decompressed the store for every region
    (about 20 core-s per full-size scan against 4 here, the same table). On the crop in memory
    the NumPy path gives the same table as :func:`qct_metrics_dask` over slabs of it, with
    ~100 MiB less peak memory on a full-size scan and no Dask graph inside the task.
    """
    import dask

    from ..io.zarrstore import read_around_labels, read_dask, store_attrs
    from .airways import with_endpoints
    from .qct import _airway_dask, qct_metrics

    store = task.inputs["store"]
    cfg = QCTConfig.model_validate(task.inputs["config"])
    attrs = store_attrs(store)
    spacing = tuple(float(s) for s in attrs["spacing_mm"])
    arrays, _ = read_around_labels(store, margin_voxels=qct_margin_voxels(cfg, spacing))
    airway = None
    if task.inputs.get("airway_store"):  # measured on another reconstruction's store, read lazily
        a_store = task.inputs["airway_store"]
        a_sp = tuple(float(s) for s in store_attrs(a_store)["spacing_mm"])
        with dask.config.set(scheduler="synchronous"):  # inside a worker: stay on its thread
            airway = _airway_dask(read_dask(a_store, "image"), read_dask(a_store, "labels"), a_sp)
    df = qct_metrics(
        arrays["image"], arrays["labels"], arrays["zones"], spacing,
        config=cfg,
        scan_id=task.scan_id,
        kernel_class=task.inputs.get("kernel_class", "unknown"),
        superior_last=_superior_last(attrs),
        airway=airway,
        airway_scan_id=task.inputs.get("airway_scan_id"),
    )
    df = with_endpoints(df, task.inputs.get("airways"))  # the airways stage's endpoints, whole-lung row
    return QCT.validate(df, where=f"QCT of {task.scan_id}")


def _superior_last(attrs: dict[str, Any]) -> bool | None:
    """Whether the store's last slice is the most superior (None when slices are not axial)."""
    from ..io.volume import Volume

    geom = Volume.from_geometry_attrs(np.zeros((1, 1, 1), np.int16), attrs)
    axis, sign = geom.index_axis_superior()
    return (sign > 0) if axis == 0 else None


def run_qct(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Stage ``qct``: QCT metrics of every preprocessed scan -> ``features/qct.parquet``."""
    qcfg: QCTConfig = cfg.features.qct
    if not qcfg.enabled:
        return StageResult("qct")
    from .airways.stage import endpoints_by_scan

    conf = json.loads(qcfg.model_dump_json())
    ids = feature_scan_ids(wd, "qct")
    airways = endpoints_by_scan(wd)  # None: the airways stage did not run for the scan
    acquisition = _acquisition_inputs(wd, ids)
    tasks = scan_tasks(wd, ids, {"config": conf}, QCT_BYTES_PER_VOXEL,
                        per_scan={sid: {"airways": airways.get(sid), **acquisition.get(sid, {})}
                                  for sid in ids})
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
    """The PyRadiomics parameter file (relative paths: from the current directory; null: packaged default)."""
    from ..config.resources import radiomics_params_path

    path = radiomics_params_path(rcfg.params)
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
    tasks = scan_tasks(wd, feature_scan_ids(wd, "radiomics"), extra, RADIOMICS_BYTES_PER_VOXEL,
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
