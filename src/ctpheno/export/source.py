"""The scan as it came in: its original grid and, for DICOM, its slice headers in grid order.

Exports go back onto the grid the user's viewer shows for the source data. The pipeline's
label maps may live on a resampled analysis grid (``preprocess.spacing_mm``), so they are
mapped back here by nearest neighbour in physical (LPS) space.

The original grid of a DICOM series is built from the headers alone exactly as
:func:`ctpheno.io.readers.read_dicom_series` builds it from the pixels: slices sorted by
ImagePositionPatient along the normal :math:`n = r \\times c`, origin at the first slice,
direction columns ``(r, c, n)``, slice spacing the mean gap
:math:`(p_{N-1} - p_0)\\cdot n / (N-1)`. Pixel data is never read (DICOM SEG needs only the
headers of its source images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UnreadableSeriesError
from ..io.geometry import slice_normal
from ..io.readers import read_header
from ..io.volume import Volume

MULTIFRAME = "dicom multi-frame"
"""Source format of an enhanced (multi-frame) CT file: exported as NIfTI / OME-Zarr, not yet as SEG/SR."""
GEOMETRY_ATOL_MM = 1e-3
"""Two grids whose spacing, origin and direction agree to this are the same grid (no resampling)."""


@dataclass(frozen=True)
class Grid:
    """A voxel grid: shape and spacing in (z, y, x); origin and direction in ITK/LPS order."""

    shape: tuple[int, int, int]
    spacing_mm: tuple[float, float, float]
    origin_mm: tuple[float, float, float]
    direction: tuple[float, ...]

    @classmethod
    def of(cls, volume: Volume) -> "Grid":
        return cls(volume.shape, volume.spacing_mm, volume.origin_mm, volume.direction)

    def volume(self, array: npt.NDArray[Any]) -> Volume:
        """``array`` (shape :attr:`shape`) as a :class:`Volume` on this grid."""
        return Volume(array, self.spacing_mm, self.origin_mm, self.direction)

    def matches(self, other: "Grid") -> bool:
        return (self.shape == other.shape
                and np.allclose(self.spacing_mm, other.spacing_mm, atol=GEOMETRY_ATOL_MM)
                and np.allclose(self.origin_mm, other.origin_mm, atol=GEOMETRY_ATOL_MM)
                and np.allclose(self.direction, other.direction, atol=GEOMETRY_ATOL_MM))


@dataclass
class SourceScan:
    """The original grid of a scan and, for a DICOM series, its headers in slice order."""

    grid: Grid
    format: str
    datasets: list[Any] = field(default_factory=list)
    """pydicom Datasets without pixel data, ``datasets[k]`` being slice ``k`` of :attr:`grid`."""


def read_source(paths: Sequence[str], fmt: str) -> SourceScan:
    """The original grid of the scan made of ``paths`` (``format`` as in ``ingest/sources.parquet``)."""
    if fmt == "dicom":
        return _dicom_source(paths)
    return SourceScan(_volume_file_grid(paths[0]), fmt)


def _dicom_source(paths: Sequence[str]) -> SourceScan:
    headers, seen = [], set()
    for p in paths:
        ds = read_header(p)
        uid = str(ds.get("SOPInstanceUID", ""))
        if uid in seen:  # the same instance listed twice is read once, as the reader does
            continue
        seen.add(uid)
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:  # enhanced CT: its grid as the pipeline reads it
            from ..io.readers import read_scan

            return SourceScan(Grid.of(read_scan([p], fmt="dicom")), MULTIFRAME)
        headers.append(ds)
    if not headers:
        raise UnreadableSeriesError("the scan has no DICOM files in ingest/sources.parquet")
    iop = [float(v) for v in headers[0].ImageOrientationPatient]
    normal = slice_normal(iop)
    dist = np.array([np.dot([float(v) for v in ds.ImagePositionPatient], normal) for ds in headers])
    order = np.argsort(dist, kind="stable")
    headers = [headers[i] for i in order]
    dist = dist[order]
    spacing_z = float(dist[-1] - dist[0]) / (len(dist) - 1) if len(dist) > 1 else float(
        headers[0].get("SliceThickness", 1.0) or 1.0)
    row_mm, col_mm = (float(v) for v in headers[0].PixelSpacing)
    grid = Grid(shape=(len(headers), int(headers[0].Rows), int(headers[0].Columns)),
                spacing_mm=(abs(spacing_z) or 1.0, row_mm, col_mm),
                origin_mm=tuple(float(v) for v in headers[0].ImagePositionPatient),
                direction=tuple(np.column_stack([iop[:3], iop[3:], normal]).ravel()))
    return SourceScan(grid, "dicom", headers)


def _volume_file_grid(path: str) -> Grid:
    import SimpleITK as sitk

    from ..io.remote import local_copies

    with local_copies([path]) as local:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(local[0]))
        try:
            reader.ReadImageInformation()
        except RuntimeError as err:
            raise UnreadableSeriesError(f"the scan's volume file cannot be read: {str(err).splitlines()[-1]}")
    size = reader.GetSize()[:3]
    return Grid(shape=(size[2], size[1], size[0]), spacing_mm=tuple(reader.GetSpacing()[:3][::-1]),
                origin_mm=tuple(reader.GetOrigin()[:3]),
                direction=tuple(np.asarray(reader.GetDirection()).reshape(
                    reader.GetDimension(), reader.GetDimension())[:3, :3].ravel()))


def labels_on_grid(labels: Volume, grid: Grid) -> npt.NDArray[np.uint8]:
    """A label map brought onto ``grid`` by nearest neighbour in physical space (as is when on it).

    Voxels of ``grid`` outside the label map's extent are 0 (background).
    """
    if Grid.of(labels).matches(grid):
        return np.asarray(labels.array, dtype=np.uint8)
    import SimpleITK as sitk

    reference = sitk.Image([int(n) for n in grid.shape[::-1]], sitk.sitkUInt8)
    reference.SetSpacing(tuple(float(s) for s in grid.spacing_mm[::-1]))
    reference.SetOrigin(grid.origin_mm)
    reference.SetDirection(grid.direction)
    moving = labels.with_array(np.asarray(labels.array, dtype=np.uint8)).to_sitk()
    out = sitk.Resample(moving, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(out)
