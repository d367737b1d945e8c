"""The pipeline's volumes as OME-Zarr (OME-NGFF), which napari and the ``ome-zarr`` reader open.

One image group per scan, ``volumes.ome.zarr``, written with the ``ome-zarr`` package in
OME-NGFF 0.4 (Zarr v2), the version napari's reader, Fiji/MoBIE and neuroglancer all open:

* the HU image (int16) as a single-resolution multiscale image, axes ``z, y, x`` in millimetres;
* ``labels/lungs`` (1 right lung, 2 left lung, 3 airways), ``labels/zones`` and ``labels/lobes``
  (when present) as NGFF ``image-label`` groups with each value's colour and name.

Coordinate transformations are ``scale`` = voxel size and ``translation`` = the LPS position of
voxel ``[0, 0, 0]``, both in (z, y, x) order, which places the voxels in patient space exactly
when the direction matrix is the identity (axial scans). NGFF has no rotation yet, so the full
direction matrix (rows and columns in z, y, x order, as in the volume stores) is kept in the
group attributes under ``ctpheno``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

from ..errors import MissingExtraError
from ..io.volume import Volume
from .labels import LabelInfo

AXES = [{"name": n, "type": "space", "unit": "millimeter"} for n in ("z", "y", "x")]
CHUNKS = (64, 128, 128)


def _transforms(volume: Volume) -> list[list[dict]]:
    return [[{"type": "scale", "scale": [float(s) for s in volume.spacing_mm]},
             {"type": "translation", "translation": [float(o) for o in volume.origin_mm[::-1]]}]]


def write_ome_zarr(dest: Path, image: Volume, label_maps: dict[str, tuple[npt.NDArray[np.uint8],
                                                                            tuple[LabelInfo, ...]]]) -> Path:
    """Write ``image`` and its label maps (name -> (array on the image grid, label table)) to ``dest``."""
    try:
        import ome_zarr  # noqa: F401
    except ImportError as err:
        raise MissingExtraError("ome-zarr", "export", "the OME-Zarr export") from err
    import dask

    with dask.config.set(scheduler="synchronous"):  # ome-zarr computes through dask: here, not on the cluster
        _write(dest, image, label_maps)
    return dest


def _write(dest: Path, image: Volume, label_maps: dict[str, tuple[npt.NDArray[np.uint8],
                                                                   tuple[LabelInfo, ...]]]) -> None:
    import zarr
    from ome_zarr.format import FormatV04
    from ome_zarr.writer import write_multiscale, write_multiscale_labels

    fmt = FormatV04()
    group = zarr.open_group(str(dest), mode="w", zarr_format=2)
    chunks = tuple(min(c, s) for c, s in zip(CHUNKS, image.shape))
    transforms = _transforms(image)
    write_multiscale([np.asarray(image.array)], group, fmt=fmt, axes=AXES,
                     coordinate_transformations=transforms, storage_options={"chunks": chunks}, name="image")
    for name, (array, table) in label_maps.items():
        if array.shape != image.shape:
            raise ValueError(f"label map {name!r} has shape {array.shape}, the image {image.shape}")
        metadata = {"colors": [{"label-value": lab.value, "rgba": [*lab.rgb, 255]} for lab in table],
                    "properties": [{"label-value": lab.value, "name": lab.name} for lab in table],
                    "source": {"image": "../../"}}
        write_multiscale_labels([np.asarray(array, dtype=np.uint8)], group, name, fmt=fmt, axes=AXES,
                                coordinate_transformations=transforms, storage_options={"chunks": chunks},
                                label_metadata=metadata)
    group.attrs["ctpheno"] = {"direction_zyx": list(np.asarray(image.direction_matrix)[::-1, ::-1].ravel()),
                              "hu": "image values are Hounsfield units (int16)"}
