"""Per-scan Zarr v3 stores: ``volumes/<scan_id>.zarr``.

Layout of one store (a Zarr group)::

    image   int16  (z, y, x)  HU on the scan's grid (native, or preprocess.spacing_mm; clipped, padding -> air)
    labels  uint8  (z, y, x)  0 background, 1 right lung, 2 left lung, 3 airways
    zones   uint8  (z, y, x)  0 outside, 1/2/3 right upper/middle/lower, 4/5/6 left upper/middle/lower
    attrs   geometry (spacing_mm, origin_mm, direction), scan_id, provenance
    analysis/            the isotropic analysis grid (:mod:`ctpheno.preprocess.analysis_grid`),
        image   int16  (z', y', x')  HU, cropped to the lungs plus a margin
        labels  uint8  (z', y', x')  as above, nearest native voxel
        zones   uint8  (z', y', x')  as above
        attrs   its own geometry, interpolator, margin

Geometry attributes are all in the arrays' axis order **(z, y, x)** (``geometry_axes: "zyx"``):
``spacing_mm`` the voxel size per array axis, ``origin_mm`` the LPS position of voxel
``[0, 0, 0]`` as its (z, y, x) components, ``direction`` the row-major 3x3 direction cosines
with rows and columns in (z, y, x) order (:meth:`~ctpheno.io.volume.Volume.geometry_attrs`).
Stores written before this convention (origin and direction in ITK's x, y, z order, no
``geometry_axes`` key) are still read correctly by :func:`read_volume`.

Arrays are chunked (default 64^3) and compressed (Blosc: byte shuffle + zstd). Writes go to a
temporary store that is renamed into place once complete. A store may also live
at an fsspec URL (``s3://bucket/work/volumes/<scan_id>.zarr``): it is written
locally, then uploaded with the root ``zarr.json`` last, so an interrupted upload
leaves no store that opens (see :mod:`ctpheno.io.fs`).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from . import fs
from .volume import Volume

ARRAY_NAMES = ("image", "labels", "zones")
ANALYSIS_GROUP = "analysis"
"""Sub-group holding the isotropic analysis grid (same array names as the root)."""


def _codec():
    """Blosc: byte shuffle, then zstd level 1: the shuffle puts the int16 high bytes together, so a
    light zstd level compresses better and faster than a heavier one without it (measured in
    docs/scaling.md)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="zstd", clevel=1, shuffle="shuffle")


def _write_arrays(group: Any, arrays: Mapping[str, np.ndarray], geometry: Volume,
                  chunks: tuple[int, int, int]) -> None:
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.shape != geometry.shape:
            raise ValueError(f"array {name!r} has shape {arr.shape}, expected {geometry.shape}")
        ch = tuple(min(c, s) for c, s in zip(chunks, arr.shape))
        za = group.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=ch,
                                compressors=[_codec()], fill_value=0)
        if arr.dtype not in (np.uint8, np.bool_):
            za[...] = arr
            continue
        box = _nonzero_chunk_box(arr, ch)
        if box is not None:  # chunks outside the box hold only the fill value: not written (read as 0)
            za[box] = arr[box]


def _nonzero_chunk_box(arr: np.ndarray, chunks: tuple[int, ...]) -> tuple[slice, ...] | None:
    """The chunks' bounding box of the nonzero voxels of a 3D mask or label array (None if all zero).

    Label and zone arrays are zero outside the chest: writing only this box skips encoding the
    empty chunks (a third of a full-size scan's) that zarr would compress only to drop them.
    """
    box = label_box(arr, (0, 0, 0))
    if box is None:
        return None
    return tuple(slice(b.start // c * c, min(-(-b.stop // c) * c, n)) for b, c, n in zip(box, chunks, arr.shape))


def write_volume_store(dest: str | Path, arrays: Mapping[str, np.ndarray], geometry: Volume,
                       *, chunks: tuple[int, int, int] = (64, 64, 64),
                       attrs: Mapping[str, Any] | None = None,
                       groups: Mapping[str, tuple[Mapping[str, np.ndarray], Volume, Mapping[str, Any]]]
                       | None = None) -> str | Path:
    """Write named arrays sharing ``geometry``'s grid into one Zarr v3 group, atomically.

    ``groups`` adds sub-groups on grids of their own: name -> (arrays, geometry, attrs), e.g.
    :data:`ANALYSIS_GROUP`; they are written before the store is renamed into place.
    """
    import zarr

    if fs.is_url(dest):
        with tempfile.TemporaryDirectory(prefix="ctpheno-zarr-") as tmpdir:
            local = write_volume_store(Path(tmpdir) / "store.zarr", arrays, geometry, chunks=chunks,
                                       attrs=attrs, groups=groups)
            fs.remove(dest, recursive=True)
            fs.put_tree(local, dest, last=("zarr.json",))
        return dest
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    group = zarr.open_group(str(tmp), mode="w", zarr_format=3)
    _write_arrays(group, arrays, geometry, chunks)
    for sub_name, (sub_arrays, sub_geometry, sub_attrs) in (groups or {}).items():
        sub = group.create_group(sub_name)
        _write_arrays(sub, sub_arrays, sub_geometry, chunks)
        sub.attrs.update({**sub_geometry.geometry_attrs(), **dict(sub_attrs)})
    group.attrs.update({**geometry.geometry_attrs(), **dict(attrs or {})})
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return dest


def remove_stale_stores(folder: str | Path) -> int:
    """Delete temporary stores (``.<scan>.zarr.<hex>.tmp``) an interrupted writer left in ``folder``.

    A finished store is only ever created by renaming its temporary, so a temporary that
    still exists when a stage starts belongs to a write that never completed. Returns how
    many were removed.
    """
    folder = Path(folder)
    n = 0
    if folder.is_dir():
        for tmp in folder.glob(".*.zarr.*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
            n += 1
    return n


def open_volume_store(path: str | Path):
    """Open a store read-only; returns the zarr Group."""
    import zarr

    if fs.is_url(path):
        if not fs.exists(fs.join(path, "zarr.json")):
            raise FileNotFoundError(f"volume store {path} does not exist (no zarr.json); run preprocess first")
        return zarr.open_group(str(path), mode="r")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"volume store {path} does not exist; run preprocess first")
    return zarr.open_group(str(path), mode="r")


def read_volume(path: str | Path, name: str = "image") -> Volume:
    """Read one array of a store into memory as a :class:`Volume` (see :func:`read_dask` for lazy access)."""
    group = open_volume_store(path)
    if name not in group:
        raise KeyError(f"{path} has no array {name!r}; it has {sorted(group.array_keys())}")
    return Volume.from_geometry_attrs(group[name][...], dict(group.attrs))


def read_dask(path: str | Path, name: str = "image"):
    """The array ``name`` of a store as a lazily-loaded dask array with the store's chunks."""
    import dask.array as da

    group = open_volume_store(path)
    return da.from_zarr(group[name])


def read_group_volumes(path: str | Path, group: str = ANALYSIS_GROUP,
                       names: tuple[str, ...] = ARRAY_NAMES) -> dict[str, Volume]:
    """The arrays ``names`` of sub-group ``group`` (e.g. the analysis grid) as Volumes on its geometry."""
    root = open_volume_store(path)
    if group not in root.group_keys():
        raise KeyError(f"{path} has no {group!r} group; re-run preprocess with that grid enabled")
    sub = root[group]
    attrs = dict(sub.attrs)
    return {n: Volume.from_geometry_attrs(sub[n][...], attrs) for n in names}


def label_box(labels: np.ndarray, margin_voxels: tuple[int, int, int]) -> tuple[slice, slice, slice] | None:
    """Bounding box of the non-zero voxels of ``labels`` grown by ``margin_voxels`` (z, y, x), clipped
    to the array; None when every voxel is 0. Two passes over the array (z profile, then one plane)."""
    zs = np.flatnonzero(labels.reshape(len(labels), -1).any(axis=1))
    if zs.size == 0:
        return None
    plane = labels[zs[0]:zs[-1] + 1].any(axis=0)
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    ranges = ((zs[0], zs[-1]), (ys[0], ys[-1]), (xs[0], xs[-1]))
    return tuple(slice(max(0, int(lo) - m), min(n, int(hi) + m + 1))  # type: ignore[return-value]
                 for (lo, hi), m, n in zip(ranges, margin_voxels, labels.shape))


def read_around_labels(path: str | Path, names: tuple[str, ...] = ARRAY_NAMES, *,
                       margin_voxels: tuple[int, int, int] = (0, 0, 0)
                       ) -> tuple[dict[str, np.ndarray], tuple[slice, slice, slice]]:
    """The arrays ``names`` of a store cropped to its labelled voxels (``labels`` > 0) plus a margin.

    Only the chunks that overlap the box are read and decompressed; a stage that needs the lungs
    and airways (and a margin around them) never holds the rest of the field of view. Returns the
    arrays and the box (in the store's index space). A store with no labelled voxel gives the
    whole arrays.
    """
    group = open_volume_store(path)
    labels = np.asarray(group["labels"][...])
    box = label_box(labels, margin_voxels) or tuple(slice(0, n) for n in labels.shape)
    out = {n: (np.ascontiguousarray(labels[box]) if n == "labels" else np.asarray(group[n][box]))
           for n in names}
    return out, box  # type: ignore[return-value]


def store_attrs(path: str | Path) -> dict[str, Any]:
    return dict(open_volume_store(path).attrs)
