"""Stage ``export``: per scan, results in the formats other tools read, under ``<out>/<scan_id>/``.

Reads ``volumes/<scan_id>.zarr`` (labels, zones, image), ``features/qct.parquet`` and the
private ``ingest/sources.parquet`` (the source files: their grid and DICOM headers) and writes::

    <out>/<scan_id>/lungs.nii.gz, lungs.itksnap.txt, lungs.seg.nrrd   labels on the original grid
                    zones.nii.gz, …                                    (and lobes.* when present)
                    seg.dcm                                            DICOM SEG on the source series
                    sr.dcm                                             DICOM SR (TID 1500) of the QCT numbers
                    volumes.ome.zarr                                   image + image-label groups (OME-NGFF)
                    export.json                                        what was written, what was not and why

A scan's folder is written under a temporary name and renamed into place when complete, and
always rewritten (the work directory's resume markers cannot know about files outside it).
DICOM SEG/SR need a DICOM source series; for NIfTI/NRRD/MHA inputs they are skipped with the
reason in ``export.json``. The SEG and SR carry the source series' patient and study
attributes (nothing more), so ``<out>`` belongs beside the source data: it is outside the
work directory's pseudonymised boundary by design. Failures go to ``failures.parquet``.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from ..cluster.runner import ScanTask, StageResult, run_stage, stable_hash
from ..config.export import EXPORT_FORMATS
from ..errors import ConfigError, MissingExtraError
from ..io.layout import WorkDir
from .labels import LABEL_TABLES

log = logging.getLogger(__name__)
STAGE = "export"
BYTES_PER_VOXEL = 16
"""Peak memory per voxel of the source grid: label maps, stacked binary segment masks, encoding."""
MAP_FILE_NAMES = {"labels": "lungs", "zones": "zones", "lobes": "lobes"}
"""Store array -> file stem of its exported label map."""


def export_out_dir(cfg: Any, wd: WorkDir, formats: list[str]) -> Path:
    """Where exports go (``export.out``), checked against the work directory's PHI boundary.

    DICOM SEG/SR copy the source series' patient attributes, so they may not go inside the
    pseudonymised work directory; raises ConfigError naming the fix.
    """
    if cfg.export.out is None:
        raise ConfigError("export.out is not set: give the export folder (ctpheno export --out DIR, or "
                          "--set export.out=DIR), outside the work directory")
    out = Path(cfg.export.out)
    dicom = [f for f in formats if f.startswith("dicom")]
    if dicom and out.resolve().is_relative_to(wd.root.resolve()):
        raise ConfigError(f"export.out {out} is inside the work directory {wd.root}, but {', '.join(dicom)} "
                          f"copy the source series' patient and study attributes; choose a folder outside it "
                          f"(beside the source data), or export only nifti/ome-zarr there")
    return out


def export_scan(task: ScanTask) -> None:
    """Per-scan work of the stage (top level, picklable): write ``<out>/<scan_id>/``."""
    from ..io.zarrstore import open_volume_store, read_volume
    from .source import Grid, labels_on_grid, read_source

    inp = task.inputs
    wd, out = WorkDir(inp["workdir"]), Path(inp["out"])
    formats = list(inp["formats"])
    store = wd.volume(task.scan_id)
    attrs = dict(open_volume_store(store).attrs)
    maps = {name: read_volume(store, name) for name in LABEL_TABLES if name in open_volume_store(store)}
    source = read_source(list(inp["paths"]), inp["format"])
    on_source = {name: labels_on_grid(vol, source.grid) for name, vol in maps.items()}
    tmp = out / f".{task.scan_id}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.mkdir(parents=True)
    written: list[str] = []
    skipped: dict[str, str] = {}
    try:
        if "nifti" in formats:
            from .nifti import write_label_maps

            files = write_label_maps({MAP_FILE_NAMES[n]: (a, LABEL_TABLES[n]) for n, a in on_source.items()},
                                     source.grid.volume(on_source["labels"]), tmp)
            written += [f.name for f in files]
        seg = None
        if {"dicom-seg", "dicom-sr"} & set(formats):
            if not source.datasets:
                reason = f"the source is {source.format}, not a series of single-frame DICOM images"
                skipped["dicom-seg"] = skipped["dicom-sr"] = reason
            else:
                from .dicom_seg import build_segmentation

                seed = f"{source.datasets[0].SeriesInstanceUID}:{attrs.get('content_hash', '')}:{__version__}"
                seg = build_segmentation(source.datasets, on_source["labels"], on_source.get("lobes"),
                                         backend=str(attrs.get("segmentation_backend", "classic")),
                                         uid_seed=seed)
                seg.save_as(tmp / "seg.dcm")
                written.append("seg.dcm")
        if "dicom-sr" in formats and seg is not None:
            rows = inp["qct_rows"]
            if not rows:
                skipped["dicom-sr"] = "no QCT rows for this scan; run the qct stage first"
            else:
                from .dicom_sr import build_report

                sr = build_report(seg, source.datasets, pd.DataFrame(rows),
                                  uid_seed=f"{seed}:{stable_hash(rows)}")
                sr.save_as(tmp / "sr.dcm")
                written.append("sr.dcm")
        if "ome-zarr" in formats:
            from .omezarr import write_ome_zarr

            image = read_volume(store, "image")
            own_grid = {MAP_FILE_NAMES[n]: (np.asarray(v.array), LABEL_TABLES[n]) for n, v in maps.items()}
            write_ome_zarr(tmp / "volumes.ome.zarr", image, own_grid)
            written.append("volumes.ome.zarr")
        grid = source.grid
        (tmp / "export.json").write_text(json.dumps({
            "scan_id": task.scan_id, "ctpheno": __version__, "written": written, "skipped": skipped,
            "original_grid": {"shape_zyx": list(grid.shape), "spacing_mm_zyx": list(grid.spacing_mm)},
            "analysis_grid_resampled": not Grid.of(maps["labels"]).matches(grid)}, indent=2))
        final = out / task.scan_id
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def export_tasks(cfg: Any, wd: WorkDir, out: Path, formats: list[str]) -> list[ScanTask]:
    """One task per preprocessed scan (a volume store and a row in ``ingest/sources.parquet``)."""
    from ..io.zarrstore import open_volume_store

    for path, stage in ((wd.qc_table, "preprocess"), (wd.sources, "ingest")):
        if not path.exists():
            raise ConfigError(f"export: {path} does not exist; run `ctpheno {stage}` first")
    ids = [s for s in pd.read_parquet(wd.qc_table, columns=["scan_id"])["scan_id"].astype(str)
           if wd.volume(s).exists()]
    src = pd.read_parquet(wd.sources).set_index("scan_id")
    qct = pd.read_parquet(wd.qct) if wd.qct.exists() else pd.DataFrame(columns=["scan_id", "region"])
    tasks = []
    for sid in ids:
        if sid not in src.index:
            raise ConfigError(f"export: scan {sid!r} has a volume store but no row in {wd.sources}; "
                              f"re-run ingest")
        rows = qct[qct["scan_id"] == sid].to_dict("records")
        shape = open_volume_store(wd.volume(sid))["labels"].shape
        tasks.append(ScanTask(
            scan_id=sid, source=f"volumes/{sid}.zarr",
            inputs={"workdir": str(wd.root), "out": str(out), "formats": formats,
                    "paths": [str(p) for p in np.atleast_1d(src.loc[sid, "paths"])],
                    "format": str(src.loc[sid, "format"]),
                    "qct_rows": json.loads(json.dumps(rows, default=str))},
            est_bytes=int(np.prod(shape)) * BYTES_PER_VOXEL))
    return tasks


def run_export(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Export every preprocessed scan; always rewrites (the exports live outside the work directory)."""
    formats = [f for f in EXPORT_FORMATS if f in cfg.export.formats]
    if "ome-zarr" in formats and not _has_ome_zarr():
        if len(formats) < len(EXPORT_FORMATS):  # asked for by name: say what is missing
            raise MissingExtraError("ome-zarr", "export", "the OME-Zarr export")
        log.warning("export: OME-Zarr left out: the ome-zarr package is not installed "
                    "(pip install 'ctpheno[export]')")
        formats.remove("ome-zarr")
    if "dicom-sr" in formats and "dicom-seg" not in formats:
        formats.insert(formats.index("dicom-sr"), "dicom-seg")  # the SR references the SEG
    out = export_out_dir(cfg, wd, formats)
    tasks = export_tasks(cfg, wd, out, formats)
    out.mkdir(parents=True, exist_ok=True)
    log.info("export: %d scan(s) as %s into %s", len(tasks), ", ".join(formats), out)
    return run_stage(export_scan, tasks, stage=STAGE, workdir=wd, client=client, retries=cfg.cluster.retries,
                     force=True)


def _has_ome_zarr() -> bool:
    from importlib.util import find_spec

    return find_spec("ome_zarr") is not None
