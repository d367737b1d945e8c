"""Plausibility of voxel geometry, shared by ingest's validation and the readers (pure functions).

Spacing
-------
A voxel size outside :data:`SPACING_RANGE_MM` (0.1-20 mm, ``ingest.spacing_range_mm``) is not
a chest CT: the finest clinical reconstructions are about 0.25 mm in-plane and 0.5 mm thick,
the thickest archived series 10 mm; a 0 written by a converter (read by ITK as 1 mm) or a
10^4 mm typo would scale every volume (lung volume in mL) by orders of magnitude.

Orientation
-----------
Row and column direction cosines :math:`r, c` (ImageOrientationPatient, or the columns of a
volume file's direction matrix) must be unit vectors and orthogonal:
:math:`\\max(|\\,\\lVert r\\rVert - 1|, |\\,\\lVert c\\rVert - 1|, |r\\cdot c|) \\le` :data:`ORTHONORMAL_TOLERANCE`.
0.01 accepts direction cosines written with two decimals and rejects any shear above ~0.6°;
a sheared matrix would otherwise be silently orthonormalised by the reader.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

SPACING_RANGE_MM: tuple[float, float] = (0.1, 20.0)
"""Plausible voxel size of a CT series, mm (inclusive)."""
ORTHONORMAL_TOLERANCE = 0.01
"""Largest deviation of direction cosines from unit length / orthogonality (see module docstring)."""
SPACING_TOLERANCE = 0.1
"""Relative deviation of a slice gap from the median gap tolerated (``ingest.spacing_tolerance``)."""
DUPLICATE_GAP_MM = 1e-3
"""Two slices closer than this along the normal are at the same position."""
MISSING_GAP_FACTOR = 1.5
"""A gap of this many median gaps or more means a slice (or more) is missing."""


def slice_order(positions_mm: npt.ArrayLike, normal: npt.ArrayLike
                ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """``(order, sorted distances)`` of slices along the stack: :math:`d_k = p_k \\cdot n`.

    ``positions_mm`` are the slices' ImagePositionPatient (k x 3), ``normal`` the unit slice normal
    (:func:`slice_normal`); ``order`` sorts the slices by :math:`d` (stable, so slices at the same
    position keep their order) and the sorted distances go to :func:`stack_spacing`. The one
    slice ordering of the project: the reader stacks the slices in this order and ingest's
    validation measures the same gaps.
    """
    dist = np.asarray(positions_mm, dtype=float) @ np.asarray(normal, dtype=float)
    order = np.argsort(dist, kind="stable")
    return order, dist[order]


def stack_spacing(positions_mm: npt.ArrayLike, *, tolerance: float = SPACING_TOLERANCE,
                  range_mm: tuple[float, float] = SPACING_RANGE_MM) -> tuple[float | None, set[str]]:
    """``(median gap, problems)`` of sorted slice positions along the normal (mm).

    Problems are reason codes: ``duplicate_slices`` (a gap below :data:`DUPLICATE_GAP_MM`),
    ``missing_slices`` (a gap of :data:`MISSING_GAP_FACTOR` x the median or more),
    ``nonuniform_spacing`` (otherwise a gap more than ``tolerance`` from the median, relative),
    ``implausible_spacing`` (the median outside ``range_mm``). With :math:`g_k` the gaps and
    :math:`\\Delta = \\mathrm{median}(g)` over the non-duplicate gaps.
    """
    d = np.asarray(positions_mm, dtype=float)
    problems: set[str] = set()
    if d.size < 2:
        return None, problems
    gaps = np.diff(d)
    if np.any(gaps < DUPLICATE_GAP_MM):
        problems.add("duplicate_slices")
    real = gaps[gaps >= DUPLICATE_GAP_MM]
    if not real.size:
        return None, problems
    step = float(np.median(real))
    if np.any(real >= MISSING_GAP_FACTOR * step):
        problems.add("missing_slices")
    elif np.max(np.abs(real - step)) / step > tolerance:
        problems.add("nonuniform_spacing")
    if not spacing_plausible([step], range_mm=range_mm):
        problems.add("implausible_spacing")
    return step, problems


def spacing_plausible(values: Sequence[float], *, range_mm: tuple[float, float] = SPACING_RANGE_MM) -> bool:
    """True when every value is finite and within ``range_mm``."""
    lo, hi = range_mm
    v = np.asarray([float(x) for x in values], dtype=float)
    return bool(v.size) and bool(np.all(np.isfinite(v) & (v >= lo) & (v <= hi)))


def is_orthonormal(vectors: npt.ArrayLike, *, tol: float = ORTHONORMAL_TOLERANCE) -> bool:
    """True when the rows of ``vectors`` (k x 3) are unit length and mutually orthogonal within ``tol``."""
    v = np.asarray(vectors, dtype=float)
    if v.ndim != 2 or not np.all(np.isfinite(v)):
        return False
    lengths_ok = np.all(np.abs(np.linalg.norm(v, axis=1) - 1.0) <= tol)
    dots = v @ v.T
    return bool(lengths_ok and np.all(np.abs(dots[~np.eye(len(v), dtype=bool)]) <= tol))


def iop_orthonormal(iop: Sequence[float], *, tol: float = ORTHONORMAL_TOLERANCE) -> bool:
    """ImageOrientationPatient (6 values, row then column cosines) is orthonormal within ``tol``."""
    v = np.asarray([float(x) for x in iop], dtype=float)
    return v.shape == (6,) and is_orthonormal(v.reshape(2, 3), tol=tol)


def slice_normal(iop: Sequence[float]) -> npt.NDArray[np.float64]:
    """Unit normal :math:`r \\times c` of an ImageOrientationPatient (6 values, row then column cosines).

    Raises
    ------
    ValueError
        Not 6 values, or row and column vectors (nearly) parallel.
    """
    v = np.asarray([float(x) for x in iop], dtype=float)
    if v.shape != (6,):
        raise ValueError(f"ImageOrientationPatient must have 6 values; got {list(iop)}")
    n = np.cross(v[:3], v[3:])
    norm = float(np.linalg.norm(n))
    if norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient {list(iop)} has parallel row and column vectors")
    return n / norm


def axes_orthogonal(axes: npt.ArrayLike, *, tol: float = ORTHONORMAL_TOLERANCE) -> bool:
    """The columns of a direction/axis matrix (any lengths) are orthogonal within ``tol`` once normalised."""
    a = np.asarray(axes, dtype=float)
    norms = np.linalg.norm(a, axis=0)
    if a.ndim != 2 or not np.all(np.isfinite(a)) or np.any(norms <= 0):
        return False
    return is_orthonormal((a / norms).T, tol=tol)
