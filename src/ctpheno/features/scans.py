"""What the feature stages (``qct``, ``radiomics``, ``airways``) share to find their scans and
build their tasks: the preprocessed density scans, one task per volume store, the store's hash."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..cluster.runner import ScanTask, stable_hash
from ..errors import ConfigError
from ..ingest.roles import density_scan_ids
from ..io.layout import WorkDir
from ..io.zarrstore import open_volume_store, store_attrs

log = logging.getLogger(__name__)


def store_hash(path: Path) -> str:
    """The store's ``content_hash`` attribute, else a stable hash of its path and attributes."""
    attrs = store_attrs(path)
    return str(attrs.get("content_hash") or stable_hash({"path": str(path), "attrs": attrs}))


def feature_scan_ids(wd: WorkDir, stage: str) -> list[str]:
    """Preprocessed density series (an airway series kept beside one feeds only its airway columns)."""
    if not wd.qc_table.exists():
        raise ConfigError(f"{stage}: {wd.qc_table} does not exist; run `ctpheno preprocess` first")
    ids = density_scan_ids(pd.read_parquet(wd.qc_table))
    have = {s: wd.volume(s).exists() for s in ids}
    missing = [s for s, ok in have.items() if not ok]
    if missing:
        log.warning("%s: %d scans of the QC table have no volume store (e.g. %s); skipped", stage,
                    len(missing), missing[:3])
    return [s for s in ids if have[s]]


def scan_tasks(wd: WorkDir, ids: list[str], extra: dict[str, Any], bytes_per_voxel: int, *,
               per_scan: dict[str, dict[str, Any]] | None = None, array: str = "image") -> list[ScanTask]:
    """One task per scan: its store, content hash and ``extra`` (and ``per_scan[scan_id]``) as inputs;
    the memory estimate is ``bytes_per_voxel`` times the size of the store's ``array``."""
    tasks = []
    for sid in ids:
        store = wd.volume(sid)
        n = int(np.prod(open_volume_store(store)[array].shape))
        tasks.append(
            ScanTask(
                sid,
                inputs={"store": str(store), "content_hash": store_hash(store), **extra,
                        **(per_scan or {}).get(sid, {})},
                source=f"volumes/{sid}.zarr",
                est_bytes=n * bytes_per_voxel,
            )
        )
    return tasks
