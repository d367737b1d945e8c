"""The ``embed`` stage: train the SSL encoder if needed, then one Dask task per scan.

Reads ``volumes/<scan_id>.zarr`` (image, labels, zones) for the scans of ``qc/qc.parquet``;
writes ``features/embeddings.parquet`` (schema EMBEDDINGS: ``scan_id``, ``region``, ``model``,
``emb_000``...). The trained SSL encoder lives in ``models/embeddings/ssl/`` (weights,
checkpoints, loss curve, model card). Each task sets torch's thread count to its worker's
threads so workers do not oversubscribe the cores.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...cluster.runner import ScanTask, StageResult, config_hash, run_stage
from ...config.embeddings import EmbeddingsConfig
from ...io.layout import WorkDir
from ...io.schemas import EMBEDDINGS
from ...io.tables import content_keys
from ...io.zarrstore import ANALYSIS_GROUP, open_volume_store, read_volume
from ..scans import feature_scan_ids, store_hash

log = logging.getLogger(__name__)

STAGE = "embed"
_ENCODERS: dict[tuple[str, str, str], Any] = {}


def ssl_dir(wd: WorkDir) -> Path:
    """Where the trained SSL encoder and its card live."""
    return wd.models_dir / "embeddings" / "ssl"


def file_hash(path: str | Path, n: int = 16) -> str:
    """SHA-256 (first ``n`` hex digits) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:n]


def _read_arrays(store: Path, spacing_mm: float | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, tuple[float, float, float]]:
    """Image, labels, zones and spacing of a store: its isotropic analysis grid when that grid has
    ``spacing_mm`` (already resampled and cropped to the lungs), else the native grid."""
    group = open_volume_store(store)
    if spacing_mm is not None and ANALYSIS_GROUP in group.group_keys():
        sub = group[ANALYSIS_GROUP]
        if all(abs(float(s) - spacing_mm) < 1e-6 for s in sub.attrs["spacing_mm"]):
            spacing = tuple(float(s) for s in sub.attrs["spacing_mm"])
            return sub["image"][...], sub["labels"][...], sub["zones"][...], spacing  # type: ignore[return-value]
    image = read_volume(store, "image")
    labels = read_volume(store, "labels")
    zones = np.asarray(group["zones"][...]) if "zones" in group else None
    return image.array, labels.array, zones, image.spacing_mm


def training_threads(requested: int = 0) -> int:
    """Torch threads for SSL training: ``requested``, or (0) every core this process may run on.

    Training runs in the driver while the workers wait, so it takes all the cores given to the
    process (its CPU affinity: a batch job's allocation, a container's cpuset), not torch's
    default of physical cores, which leaves hyper-threads (and a 2-vCPU VM's second vCPU) idle.
    """
    if requested:
        return int(requested)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS has no affinity API
        return max(1, os.cpu_count() or 1)


def train_from_workdir(cfg: EmbeddingsConfig, wd: WorkDir, *, ids: list[str] | None = None) -> Path:
    """Train (or resume, or reuse) the SSL encoder on the cohort's volumes; returns ``encoder.pt``."""
    import torch

    from .patches import lung_grid
    from .ssl import train_encoder, training_scan

    ids = feature_scan_ids(wd, "embed") if ids is None else ids
    keys = content_keys(wd.qc_table)  # training order from the data, not from the salted scan ids
    ids = sorted(ids, key=lambda s: (keys.get(s, ""), s))
    if not ids:
        raise FileNotFoundError(f"no volume stores to train on under {wd.root / 'volumes'}; run preprocess first")
    if len(ids) > cfg.max_train_scans:
        ids = [ids[i] for i in np.linspace(0, len(ids) - 1, cfg.max_train_scans).round().astype(int)]
    torch.set_num_threads(training_threads(cfg.train_threads))
    scans = []
    for sid in ids:
        try:
            hu, labels, _, spacing = _read_arrays(wd.volume(sid), cfg.spacing_mm)
            grid = lung_grid(hu, labels, spacing, target_mm=cfg.spacing_mm,
                             margin_mm=cfg.patch_size * cfg.spacing_mm / 2, hu_window=cfg.hu_window)
        except Exception as err:  # a bad scan is left out of training, never silently
            log.warning("embed: %s left out of SSL training: %s: %s", sid, type(err).__name__, err)
            continue
        scans.append(training_scan(sid, grid, patch_size=cfg.patch_size, min_lung_fraction=cfg.min_lung_fraction))
    log.info("embed: training the SSL encoder on %d scans (%d epochs)", len(scans), cfg.epochs)
    return train_encoder(scans, cfg=cfg, out_dir=ssl_dir(wd)).encoder_path


def _encoder(cfg: EmbeddingsConfig, checkpoint: str, ck_hash: str):
    from .extract import load_encoder

    key = (cfg.model_dump_json(), checkpoint, ck_hash)
    if key not in _ENCODERS:
        _ENCODERS.clear()
        _ENCODERS[key] = load_encoder(cfg, checkpoint=checkpoint or None)
    return _ENCODERS[key]


def embedding_rows(scan_id: str, model: str, regions: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per region: ``scan_id``, ``region``, ``model``, ``emb_000``..."""
    rows = []
    for region, vec in regions.items():
        row: dict[str, Any] = {"scan_id": scan_id, "region": region, "model": model}
        row.update({f"emb_{i:03d}": float(v) for i, v in enumerate(np.asarray(vec).ravel())})
        rows.append(row)
    return pd.DataFrame(rows)


def embed_scan_task(task: ScanTask, *, settings_json: str, threads: int) -> pd.DataFrame:
    """Per-scan work (runs on a worker): load (cached) encoder, read the store, embed."""
    import torch

    from .extract import embed_lungs
    from .pretrained import embed_chest
    from .ssl import select_device

    torch.set_num_threads(max(1, int(threads)))
    cfg = EmbeddingsConfig.model_validate_json(settings_json)
    enc = _encoder(cfg, task.inputs.get("checkpoint", ""), task.inputs.get("checkpoint_hash", ""))
    device = select_device(cfg.device)
    store = Path(task.inputs["store"])
    if enc.kind == "chest":
        regions = {"whole": embed_chest(read_volume(store, "image"), enc.module, device=device)}
    else:
        hu, labels, zones, spacing = _read_arrays(store, cfg.spacing_mm)
        regions = embed_lungs(hu, labels, spacing, encoder=enc, cfg=cfg, zones=zones, device=device)
    return embedding_rows(task.scan_id, enc.name, regions)


def _threads_per_task(client: Any) -> int:
    if client is None:
        return os.cpu_count() or 1
    counts = list(client.nthreads().values())
    return max(1, min(counts)) if counts else 1


def run_embeddings(cfg: Any, wd: WorkDir, client: Any, *, force: bool = False) -> StageResult:
    """Stage entry point (see module docstring); ``cfg`` is the :class:`PipelineConfig`."""
    ecfg: EmbeddingsConfig = cfg.embeddings
    ids = feature_scan_ids(wd, "embed")
    checkpoint = ""
    if ecfg.model == "ssl":
        checkpoint = str(ecfg.checkpoint) if ecfg.checkpoint else str(train_from_workdir(ecfg, wd, ids=ids))
    elif ecfg.model in ("torchscript", "monai"):
        checkpoint = str(ecfg.checkpoint)
    ck_hash = file_hash(checkpoint) if checkpoint else ""
    tasks = [ScanTask(sid, inputs={"store": str(wd.volume(sid)), "content_hash": store_hash(wd.volume(sid)),
                                   "model": ecfg.model, "checkpoint": checkpoint, "checkpoint_hash": ck_hash},
                      source=f"volumes/{sid}.zarr", est_bytes=(2_000_000_000 if ecfg.model == "astra" else None))
             for sid in ids]
    func = functools.partial(embed_scan_task, settings_json=ecfg.model_dump_json(),
                             threads=_threads_per_task(client))
    retries = getattr(getattr(cfg, "cluster", None), "retries", 1)
    return run_stage(func, tasks, stage=STAGE, workdir=wd, client=client, cfg_hash=config_hash(ecfg),
                     retries=retries, force=force, output=wd.embeddings, schema=EMBEDDINGS)
