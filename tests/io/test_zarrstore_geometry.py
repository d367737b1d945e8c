"""Volume-store geometry: every vector in (z, y, x) order, and stores of the older x, y, z layout still read."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.io.volume import Volume
from ctpheno.io.zarrstore import read_volume, store_attrs, write_volume_store

# an oblique, left-right flipped grid: index i runs toward the patient's right, j is tilted
C, S = np.cos(0.3), np.sin(0.3)
DIRECTION = (-1.0, 0.0, 0.0, 0.0, C, -S, 0.0, S, C)  # ITK row-major, columns = index axes (i, j, k)
ORIGIN_XYZ = (120.5, -30.25, -700.0)


@pytest.fixture
def volume() -> Volume:
    arr = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    return Volume(arr, (2.5, 0.8, 0.7), ORIGIN_XYZ, DIRECTION)


def test_attrs_are_zyx_and_round_trip(tmp_path, volume):
    store = write_volume_store(tmp_path / "s.zarr", {"image": volume.array}, volume)
    attrs = store_attrs(store)
    assert attrs["geometry_axes"] == "zyx" and attrs["axes"] == ["z", "y", "x"]
    assert attrs["spacing_mm"] == [2.5, 0.8, 0.7]
    assert attrs["origin_mm"] == [-700.0, -30.25, 120.5]  # LPS z, y, x of voxel [0, 0, 0]
    # direction in z, y, x order: entry [r][c] = physical axis r's component of array axis c
    d = np.asarray(attrs["direction"]).reshape(3, 3)
    itk = np.asarray(DIRECTION).reshape(3, 3)
    assert d[0, 0] == itk[2, 2] and d[2, 2] == itk[0, 0] and d[1, 0] == itk[1, 2]  # z-component of k, y of k
    back = read_volume(store)
    assert back.origin_mm == volume.origin_mm and back.direction == volume.direction
    assert back.spacing_mm == volume.spacing_mm and np.array_equal(back.array, volume.array)
    # voxel positions agree, not only the numbers
    idx = np.array([[3, 4, 5], [1, 2, 0]])
    np.testing.assert_allclose(back.index_to_physical(idx), volume.index_to_physical(idx), atol=1e-9)


def test_stores_written_with_xyz_origin_still_read(tmp_path, volume):
    import zarr

    store = write_volume_store(tmp_path / "old.zarr", {"image": volume.array}, volume)
    group = zarr.open_group(str(store), mode="r+")
    old = {"spacing_mm": list(volume.spacing_mm), "origin_mm": list(ORIGIN_XYZ), "direction": list(DIRECTION),
           "axes": ["z", "y", "x"]}  # the layout before geometry_axes existed
    attrs = {k: v for k, v in group.attrs.items() if k != "geometry_axes"}
    group.attrs.clear()
    group.attrs.update({**attrs, **old})
    back = read_volume(store)
    assert back.origin_mm == ORIGIN_XYZ and back.direction == DIRECTION


@pytest.mark.parametrize("where", ["chunk edges", "far corner", "nowhere", "everywhere"])
def test_label_arrays_read_back_exactly(tmp_path, where):
    """Label arrays are written only within the chunks around their nonzero voxels; every voxel
    still reads back, the rest as 0."""
    shape, chunks = (20, 24, 28), (8, 8, 8)
    labels = np.zeros(shape, np.uint8)
    if where == "chunk edges":
        labels[0, 0, 0] = 1
        labels[16, 16, 16] = 3  # the first voxel of a chunk: the box must end after it
        labels[7, 15, 23] = 2  # the last voxel of a chunk
    elif where == "far corner":
        labels[-1, -1, -1] = 2  # the last, partial chunk of every axis
    elif where == "everywhere":
        labels[:] = np.arange(labels.size).reshape(shape) % 4
    geom = Volume(np.zeros(shape, np.int16), (1.0, 1.0, 1.0))
    store = write_volume_store(tmp_path / "s.zarr", {"image": geom.array, "labels": labels}, geom, chunks=chunks)
    assert np.array_equal(read_volume(store, "labels").array, labels)
