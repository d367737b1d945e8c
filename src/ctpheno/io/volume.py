"""The one geometry object: :class:`Volume`.

Conventions
-----------
* ``array`` is indexed ``(z, y, x)`` = (slice k, row j, column i).
* ``spacing_mm`` is in the same ``(z, y, x)`` order as the array.
* ``origin_mm`` and ``direction`` are kept in ITK/DICOM *physical* order
  (LPS patient coordinates, ``(x, y, z)``), exactly as SimpleITK reports them:
  ``origin_mm`` is the physical position of voxel ``[0, 0, 0]``'s centre and
  ``direction`` is the row-major 3x3 matrix whose *columns* are the physical
  unit vectors of the index axes ``(i, j, k)``.

In LPS, physical +x points to the patient's **left**, +y posterior and +z
superior (head). :meth:`Volume.index_axis_patient_left` tells which array axis
and sign point to the patient's left, which is how the right/left lung labels
(1 = right, 2 = left) are assigned independently of array order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..vocab import Spacing

IDENTITY_DIRECTION: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
GEOMETRY_AXES = "zyx"
"""Axis order of every geometry vector in stored attributes (see :meth:`Volume.geometry_attrs`)."""


@dataclass(frozen=True, eq=False)
class Volume:
    """An image or label array with its physical geometry.

    Parameters
    ----------
    array : ndarray, shape (z, y, x)
        Voxel values (HU as int16 for images, small unsigned ints for labels).
    spacing_mm : tuple of 3 float
        Voxel size along ``(z, y, x)`` in millimetres.
    origin_mm : tuple of 3 float
        Physical (LPS, x/y/z) position of the centre of voxel ``[0, 0, 0]``.
    direction : tuple of 9 float
        Row-major 3x3 direction cosine matrix (ITK convention).
    meta : dict
        Free-form, PHI-free metadata (kernel, manufacturer, ...).
    """

    array: npt.NDArray[Any]
    spacing_mm: Spacing
    origin_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = IDENTITY_DIRECTION
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        arr = np.asarray(self.array)
        if arr.ndim != 3:
            raise ValueError(f"Volume array must be 3-D (z, y, x); got shape {arr.shape}")
        sp = tuple(float(s) for s in self.spacing_mm)
        if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
            raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x); got {self.spacing_mm}")
        org = tuple(float(o) for o in self.origin_mm)
        if len(org) != 3:
            raise ValueError(f"origin_mm must have 3 values (x, y, z); got {self.origin_mm}")
        d = tuple(float(v) for v in np.asarray(self.direction, dtype=float).ravel())
        if len(d) != 9:
            raise ValueError(f"direction must have 9 values (3x3 row-major); got {len(d)}")
        object.__setattr__(self, "array", arr)
        object.__setattr__(self, "spacing_mm", sp)
        object.__setattr__(self, "origin_mm", org)
        object.__setattr__(self, "direction", d)

    # ------------------------------------------------------------------ basics
    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres (1 mL = 1000 mm^3)."""
        return float(np.prod(self.spacing_mm)) / 1000.0

    @property
    def direction_matrix(self) -> npt.NDArray[np.float64]:
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    def with_array(self, array: npt.NDArray[Any], **meta: Any) -> "Volume":
        """Same geometry, new voxels (shape must match)."""
        if np.shape(array) != self.shape:
            raise ValueError(f"new array shape {np.shape(array)} differs from volume shape {self.shape}")
        return replace(self, array=np.asarray(array), meta={**self.meta, **meta})

    def same_geometry(self, other: "Volume", *, atol: float = 1e-3) -> bool:
        return (
            self.shape == other.shape
            and np.allclose(self.spacing_mm, other.spacing_mm, atol=atol)
            and np.allclose(self.origin_mm, other.origin_mm, atol=max(atol, 1e-2))
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def check_same_geometry(self, other: "Volume", *, what: str = "mask") -> None:
        """Raise ValueError naming the mismatch if ``other`` is not on this grid."""
        if not self.same_geometry(other):
            raise ValueError(
                f"{what} geometry does not match the image: shape {other.shape} vs {self.shape}, "
                f"spacing {other.spacing_mm} vs {self.spacing_mm}, origin {other.origin_mm} vs "
                f"{self.origin_mm}; resample the {what} onto the image grid first"
            )

    # ------------------------------------------------------------- orientation
    def index_to_physical(self, zyx: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Physical LPS (x, y, z) positions of voxel indices given as (..., 3) in (z, y, x)."""
        idx = np.asarray(zyx, dtype=float)[..., ::-1]  # -> (i, j, k)
        scaled = idx * np.asarray(self.spacing_mm[::-1])
        return np.asarray(self.origin_mm) + scaled @ self.direction_matrix.T

    def axis_toward(self, physical_axis: int, sign: int = 1) -> tuple[int, int]:
        """Array axis (0=z, 1=y, 2=x) most aligned with a physical LPS axis.

        Returns ``(array_axis, s)`` where ``s`` is +1 if increasing the array
        index moves toward ``sign * physical_axis`` and -1 otherwise.
        """
        cols = self.direction_matrix  # columns: i, j, k
        comp = cols[physical_axis, :]  # physical component of each index axis
        ijk = int(np.argmax(np.abs(comp)))
        s = int(np.sign(comp[ijk])) * int(sign)
        return 2 - ijk, s

    def index_axis_patient_left(self) -> tuple[int, int]:
        """(array axis, sign) pointing to the patient's left (LPS +x)."""
        return self.axis_toward(0, +1)

    def index_axis_superior(self) -> tuple[int, int]:
        """(array axis, sign) pointing to the patient's head (LPS +z)."""
        return self.axis_toward(2, +1)

    def index_axis_anterior(self) -> tuple[int, int]:
        """(array axis, sign) pointing anterior (LPS -y)."""
        return self.axis_toward(1, -1)

    # --------------------------------------------------------------- SimpleITK
    def to_sitk(self):  # -> SimpleITK.Image
        import SimpleITK as sitk

        img = sitk.GetImageFromArray(np.ascontiguousarray(self.array))
        img.SetSpacing(tuple(float(s) for s in self.spacing_mm[::-1]))
        img.SetOrigin(self.origin_mm)
        img.SetDirection(self.direction)
        return img

    @classmethod
    def from_sitk(cls, image, **meta: Any) -> "Volume":
        import SimpleITK as sitk

        if image.GetDimension() != 3:
            raise ValueError(f"expected a 3-D image, got {image.GetDimension()}-D")
        arr = sitk.GetArrayFromImage(image)
        return cls(
            array=arr,
            spacing_mm=tuple(image.GetSpacing()[::-1]),
            origin_mm=tuple(image.GetOrigin()),
            direction=tuple(image.GetDirection()),
            meta=dict(meta),
        )

    def geometry_attrs(self) -> dict[str, Any]:
        """JSON-serialisable geometry, as stored in Zarr attributes, every vector in array order (z, y, x).

        ``spacing_mm`` is the voxel size along array axes (z, y, x); ``origin_mm`` is the LPS
        position of voxel ``[0, 0, 0]``'s centre written as its (z, y, x) components (ITK order
        reversed); ``direction`` is the 3x3 row-major matrix whose rows are the physical (z, y, x)
        components and whose columns are the array axes (z, y, x), i.e. ITK's matrix with rows and
        columns reversed. ``geometry_axes: "zyx"`` marks this convention; stores written before it
        (``origin_mm`` and ``direction`` in ITK's x, y, z order) carry no such key and are read by
        :meth:`from_geometry_attrs` unchanged.
        """
        return {
            "spacing_mm": list(self.spacing_mm),
            "origin_mm": list(self.origin_mm[::-1]),
            "direction": list(self.direction_matrix[::-1, ::-1].ravel()),
            "axes": ["z", "y", "x"],
            "geometry_axes": GEOMETRY_AXES,
        }

    @classmethod
    def from_geometry_attrs(cls, array: npt.NDArray[Any], attrs: dict[str, Any], **meta: Any) -> "Volume":
        """Inverse of :meth:`geometry_attrs`; also reads the older x, y, z origin/direction attributes."""
        origin = np.asarray(attrs["origin_mm"], dtype=float)
        direction = np.asarray(attrs["direction"], dtype=float).reshape(3, 3)
        if attrs.get("geometry_axes") == GEOMETRY_AXES:
            origin, direction = origin[::-1], direction[::-1, ::-1]
        return cls(
            array=array,
            spacing_mm=tuple(attrs["spacing_mm"]),
            origin_mm=tuple(origin),
            direction=tuple(direction.ravel()),
            meta=dict(meta),
        )


def axial_view(image: Volume) -> tuple[tuple[int, int, int], tuple[int, int], tuple[int, int]]:
    """Axis permutation putting the cranio-caudal axis first, and the left/superior axes after it."""
    sup_ax, sup_sign = image.index_axis_superior()
    left_ax, left_sign = image.index_axis_patient_left()
    if sup_ax == left_ax:
        raise ValueError(f"direction {image.direction} is degenerate: the superior and left axes coincide")
    rest = [a for a in (0, 1, 2) if a != sup_ax]
    perm = (sup_ax, *rest)
    return perm, (perm.index(left_ax), left_sign), (0, sup_sign)  # type: ignore[return-value]
