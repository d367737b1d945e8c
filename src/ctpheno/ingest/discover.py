"""Discovery: walk the inputs and read every file's header, in parallel over folder batches.

The walk (a directory listing) runs here; header reading — the slow part on
network file systems and object stores — runs as Dask tasks, one per batch of
files from the same folder(s), when a client is given, else in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import NoInputFoundError
from ..io.fs import is_url
from ..io.remote import walk
from .headers import read_records

log = logging.getLogger(__name__)


@dataclass
class Inventory:
    """What the walk found: files per input root, and empty folders."""

    roots: list[str] = field(default_factory=list)
    files: list[tuple[int, str]] = field(default_factory=list)
    """(root index, file path)."""
    empty_folders: list[tuple[int, str]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)
    """Indices of inputs that do not exist."""
    skipped: list[tuple[int, str, str, str]] = field(default_factory=list)
    """(root index, path, reason code, PHI-free detail) of entries that were never opened
    (special files, dangling or escaping links, unreadable folders; see :func:`~.remote.walk`)."""


def take_inventory(inputs: Sequence[str]) -> Inventory:
    """Walk every input (folder tree of any depth, single file or URL)."""
    if not inputs:
        raise NoInputFoundError("no inputs to ingest: set paths.inputs in the config or pass PATH arguments")
    inv = Inventory(roots=[str(p) for p in inputs])
    for i, root in enumerate(inv.roots):
        try:
            tree = walk(root)
        except FileNotFoundError:
            log.error("ingest: input %d does not exist; recorded in failures.parquet", i)
            inv.missing.append(i)
            continue
        inv.files += [(i, f) for f in tree.files]
        inv.empty_folders += [(i, d) for d in tree.empty_folders]
        inv.skipped += [(i, p, code, detail) for p, code, detail in tree.skipped]
    if len(inv.missing) == len(inv.roots):
        raise NoInputFoundError(
            f"none of the {len(inv.roots)} input(s) exists: {inv.roots[:3]}; check --input / paths.inputs"
        )
    log.info(
        "ingest: %d files, %d empty folders and %d entries not opened under %d input(s)",
        len(inv.files),
        len(inv.empty_folders),
        len(inv.skipped),
        len(inv.roots),
    )
    return inv


def folder_of(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[0]


def batch_by_folder(paths: Sequence[str], *, batch_size: int = 256) -> list[list[str]]:
    """Split files into batches of at most ``batch_size``, never mixing folders within a small folder."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    by_folder: dict[str, list[str]] = {}
    for p in paths:
        by_folder.setdefault(folder_of(p), []).append(p)
    batches: list[list[str]] = []
    cur: list[str] = []
    for folder in sorted(by_folder):
        files = by_folder[folder]
        if cur and len(cur) + len(files) > batch_size:
            batches.append(cur)
            cur = []
        for k in range(0, len(files), batch_size):
            chunk = files[k : k + batch_size]
            if len(chunk) == batch_size:
                batches.append(chunk)
            else:
                cur += chunk
    if cur:
        batches.append(cur)
    return batches


def collect_records(
    paths: Sequence[str], *, client: Any = None, batch_size: int = 256
) -> list[dict[str, Any]]:
    """Header records of ``paths`` (in input order), read through ``client`` when given.

    ``memory://`` URLs live in this process only, so they are always read here.
    """
    batches = batch_by_folder(paths, batch_size=batch_size)
    local_only = any(p.startswith("memory://") for p in paths)
    records: list[dict[str, Any]] = []
    if client is None or local_only or not batches:
        for b in batches:
            records += read_records(b)
    else:
        from distributed import as_completed

        futures = client.map(read_records, batches, pure=False)
        for fut in as_completed(futures):
            records += fut.result()
            fut.release()
    order = {p: i for i, p in enumerate(paths)}
    records.sort(key=lambda r: order.get(r["path"], len(order)))
    n_remote = sum(is_url(p) for p in paths)
    log.info(
        "ingest: read %d headers in %d batches%s",
        len(records),
        len(batches),
        f" ({n_remote} remote)" if n_remote else "",
    )
    return records
