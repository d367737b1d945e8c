"""Pipeline stage ``preprocess``: per scan, HU -> (resample) -> lungs -> zones -> Zarr + QC.

Reads ``manifest.parquet`` (rows with ``usable & selected``, and the airway series kept beside
them) and ``ingest/sources.parquet`` (scan id -> format, paths); maps :func:`preprocess_scan`
over the scans through :func:`ctpheno.cluster.run_stage`; consolidates the QC rows into
``qc/qc.parquet`` (schema QC).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cluster.runner import ScanTask, StageResult, config_hash, run_stage
from ..config.pipeline import PipelineConfig
from ..config.preprocess import PreprocessConfig
from ..io.layout import WorkDir
from ..io.schemas import QC
from ..io.volume import Volume
from ..ingest.roles import analysed_scans
from ..io.zarrstore import ANALYSIS_GROUP, remove_stale_stores, write_volume_store
from .analysis_grid import make_analysis_grid
from .external import map_labels, read_mask, to_image_grid
from .hu import to_hu_int16
from .qc import qc_metrics, qc_montage
from .resample import resample
from .segment import segment_lungs
from .zones import lung_zones

log = logging.getLogger(__name__)
STAGE = "preprocess"
BYTES_PER_VOXEL = 14
"""Peak working memory per input voxel (int16 HU, resampled copy, uint8 labels/zones, masks)."""


def content_hash(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 (first 16 hex) over the names, dtypes, shapes and bytes of the stored arrays."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()[:16]


def process_volume(image: Volume, cfg: PreprocessConfig, *, mask: Volume | None = None,
                   in_place: bool = False) -> tuple[Volume, Volume, Volume]:
    """HU clip, optional resampling, segmentation and zones of one scan (no I/O).

    ``mask``: a label image from another tool on the scan's physical grid (backend ``external``);
    its labels are mapped by ``cfg.segmentation.external`` instead of segmenting. A lobe map, when
    the mapping names lobes, is in ``labels.meta["lobes"]``.
    ``in_place``: clip ``image``'s own array instead of a copy (the caller gives the array up,
    so a full-size scan is held once, not twice).
    """
    hu = image.with_array(to_hu_int16(image.array, clip_hu=cfg.clip_hu, copy=not in_place))
    lobes = None
    if mask is not None:
        labels, lobes = map_labels(hu, to_image_grid(hu, mask), cfg.segmentation.external)
    if cfg.spacing_mm is not None:
        hu = resample(hu, cfg.spacing_mm)
        hu = hu.with_array(to_hu_int16(hu.array, clip_hu=cfg.clip_hu))
        if mask is not None:
            labels = resample(labels, cfg.spacing_mm, is_label=True)
            lobes = resample(lobes, cfg.spacing_mm, is_label=True) if lobes is not None else None
    if mask is None:
        labels = segment_lungs(hu, config=cfg.segmentation)
    if lobes is not None:
        labels = labels.with_array(labels.array, lobes=lobes.array)
    zones = lung_zones(labels)
    return hu, labels, zones


def external_mask_path(template: str, paths: list[str]) -> Path:
    """The mask file of a scan from ``path_template`` (``{folder}``, ``{name}``) and its input files."""
    first = Path(paths[0])
    if len(paths) == 1 and first.is_dir():
        folder, name = first, first.name
    elif len(paths) == 1:
        folder, name = first.parent, first.name.split(".")[0]
    else:  # a DICOM series: its files' folder
        folder = first.parent
        name = folder.name
    return Path(template.format(folder=folder, name=name))


def analysis_grid_group(hu: Volume, labels: Volume, zones: Volume, cfg: PreprocessConfig
                        ) -> dict[str, tuple[dict[str, np.ndarray], Volume, dict[str, Any]]]:
    """The store's ``analysis`` sub-group (isotropic grid shared by radiomics and embeddings), or none."""
    g = cfg.analysis_grid
    if not g.enabled:
        return {}
    grid = make_analysis_grid(hu, labels, zones, spacing_mm=g.spacing_mm, margin_mm=g.margin_mm,
                              interpolator=g.interpolator)
    arrays = {"image": grid.image.array, "labels": grid.labels.array, "zones": grid.zones.array}
    return {ANALYSIS_GROUP: (arrays, grid.image, {"interpolator": g.interpolator, "margin_mm": g.margin_mm})}


def preprocess_scan(task: ScanTask) -> pd.DataFrame:
    """Per-scan work of the stage (top-level, so picklable for Dask workers)."""
    from ..io.readers import read_scan

    cfg = PreprocessConfig.model_validate(task.inputs["config"])
    wd = WorkDir(task.inputs["workdir"])
    image = read_scan(list(task.inputs["paths"]), fmt=task.inputs["format"], label=task.source or task.scan_id)
    mask = None
    if cfg.segmentation.backend == "external":
        template = cfg.segmentation.external.path_template
        if not template:
            raise ValueError("segmentation.backend is 'external' but segmentation.external.path_template is not set")
        mask = read_mask(external_mask_path(template, list(task.inputs["paths"])),
                         label=f"external mask of {task.source or task.scan_id}")
    hu, labels, zones = process_volume(image, cfg, mask=mask, in_place=True)
    del image  # clipped in place: hu holds the same array
    arrays = {"image": hu.array, "labels": labels.array, "zones": zones.array}
    if "lobes" in labels.meta:
        arrays["lobes"] = labels.meta["lobes"]
    groups = analysis_grid_group(hu, labels, zones, cfg)
    digest = content_hash({**arrays, **{f"{name}/{k}": v for name, (sub, _, _) in groups.items()
                                        for k, v in sub.items()}})
    write_volume_store(wd.volume(task.scan_id), arrays, hu, chunks=tuple(cfg.chunks),
                       attrs={"scan_id": task.scan_id, "content_hash": digest,
                              "segmentation_backend": cfg.segmentation.backend,
                              "clip_hu": list(cfg.clip_hu), "stage": STAGE}, groups=groups)
    del arrays, groups, zones  # stored; QC needs the image and labels only
    row = qc_metrics(hu, labels, min_lung_volume_ml=cfg.min_lung_volume_ml,
                     max_lung_volume_ml=cfg.max_lung_volume_ml,
                     max_frac_above_minus500=cfg.max_frac_above_minus500,
                     min_left_right_ratio=cfg.min_left_right_ratio, max_left_right_ratio=cfg.max_left_right_ratio,
                     min_lung_body_ratio=cfg.min_lung_body_ratio, max_lung_body_ratio=cfg.max_lung_body_ratio,
                     max_envelope_gap_ml=cfg.max_envelope_gap_ml, max_pleural_air_ml=cfg.max_pleural_air_ml)
    if cfg.qc_png:
        qc_montage(hu, labels, wd.qc_png(task.scan_id), title=task.scan_id, qc=row)
    return pd.DataFrame([{"scan_id": task.scan_id, **row, "content_hash": digest,
                          "series_role": task.inputs.get("series_role", "density")}])


def _role(row: pd.Series) -> str:
    role = row.get("series_role")
    return str(role) if isinstance(role, str) and role else "density"


def scan_tasks(cfg: PipelineConfig, wd: WorkDir) -> list[ScanTask]:
    """One task per usable, selected scan of the manifest, with its files from ``ingest/sources.parquet``."""
    if not wd.manifest.exists():
        raise FileNotFoundError(f"{wd.manifest} does not exist; run `ctpheno ingest` first")
    if not wd.sources.exists():
        raise FileNotFoundError(f"{wd.sources} does not exist; run `ctpheno ingest` first")
    man = pd.read_parquet(wd.manifest)
    man = man[analysed_scans(man)]  # the density series, and the airway series kept beside it
    src = pd.read_parquet(wd.sources).set_index("scan_id")
    pcfg = cfg.preprocess.model_dump(mode="json")
    tasks = []
    for scan_id in man["scan_id"]:
        if scan_id not in src.index:
            raise KeyError(f"scan {scan_id!r} is in {wd.manifest.name} but not in {wd.sources}; re-run ingest")
        row = src.loc[scan_id]
        paths = [str(p) for p in np.atleast_1d(row["paths"])]
        voxels = None
        m = man[man["scan_id"] == scan_id].iloc[0]
        if all(c in m and pd.notna(m[c]) for c in ("size_z", "size_y", "size_x")):
            voxels = int(m["size_z"]) * int(m["size_y"]) * int(m["size_x"])
            native = [m.get(c) for c in ("spacing_z_mm", "spacing_y_mm", "spacing_x_mm")]
            if cfg.preprocess.spacing_mm is not None and all(pd.notna(v) for v in native):
                voxels += int(voxels * np.prod(np.asarray(native, float) / np.asarray(cfg.preprocess.spacing_mm)))
        tasks.append(ScanTask(scan_id=str(scan_id),
                              inputs={"paths": paths, "format": str(row["format"]), "config": pcfg,
                                      "workdir": str(wd.root), "series_role": _role(m)},
                              source=str(m["source"]) if "source" in m and pd.notna(m["source"]) else "",
                              est_bytes=voxels * BYTES_PER_VOXEL if voxels else None))
    return tasks


def run_preprocess(cfg: PipelineConfig, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Preprocess every usable, selected scan; writes volumes/, qc/ and qc/qc.parquet."""
    tasks = scan_tasks(cfg, wd)
    log.info("preprocess: %d scan(s)", len(tasks))
    stale = remove_stale_stores(wd.volume("x").parent)
    if stale:
        log.info("preprocess: removed %d half-written volume store(s) left by an interrupted run", stale)
    return run_stage(preprocess_scan, tasks, stage=STAGE, workdir=wd, client=client,
                     cfg_hash=config_hash(cfg.preprocess), retries=cfg.cluster.retries, force=force,
                     output=wd.qc_table, schema=QC)
