r"""The isotropic analysis grid shared by radiomics and the embeddings: one resampling per scan.

Texture features and patch embeddings are computed on isotropic voxels (2 mm by default) so
that they compare across scanners and slice thicknesses. Resampling the native image once in
preprocess, cropped to the lungs, replaces a full-volume B-spline resampling inside every
PyRadiomics call and a second resampling in the embeddings.

Grid
----
The grid is PyRadiomics' own (``imageoperations.resampleImage``, van Griethuysen et al., Cancer
Res 2017;77:e104-7): along each axis with native spacing :math:`s`, :math:`n` voxels and target
spacing :math:`s'`, voxel :math:`k` of the grid sits at the continuous native index

.. math:: c(k) = (k + \tfrac12)\,\frac{s'}{s} - \tfrac12, \qquad 0 \le k < \lceil n s / s' \rceil,

i.e. the corner of voxel 0 coincides with the native image's corner. It is cropped, like
PyRadiomics' own crop, to the lungs' bounding box :math:`[l, h]` (labels 1 and 2) grown by
:math:`p = \lceil m / s' \rceil` voxels (``margin_mm`` :math:`m`):
:math:`k \in [\lfloor (l - \frac12) s/s' - p \rfloor, \lceil (h + \frac12) s/s' + p \rceil]`.
With ``margin_mm`` = 5 voxels (PyRadiomics' ``padDistance``) the whole-lung region's grid is
the one PyRadiomics would build itself.

Interpolation
-------------
The image is interpolated as ITK's ``ResampleImageFilter`` does it for PyRadiomics, but
separably: the cubic B-spline (Unser, IEEE Signal Process Mag 1999;16:22-38; the default
``interpolator: sitkBSpline`` of PyRadiomics) is the tensor product of 1-D operators
:math:`K_a = W_a P_a`, where :math:`P_a` is the B-spline prefilter (exact inverse of the
sampled cubic B-spline, mirror boundary, :func:`scipy.ndimage.spline_filter1d`) and
:math:`W_a` the cubic B-spline weights of the four samples around each :math:`c(k)`. So

.. math:: g = K_z \cdot (K_y \cdot (f \cdot K_x^T))

is three small matrix products instead of a 64-sample evaluation per voxel, computed slab by
slab in float64. The prefilter is an IIR filter with pole :math:`z_1 = \sqrt3 - 2`; the native
image is cropped to :data:`BSPLINE_MARGIN_VOXELS` samples beyond the farthest tap, where
:math:`|z_1|^{16} < 10^{-9}`, so the crop does not change the result. Values are clamped to the
int16 range and truncated toward zero, as ITK casts to an int16 output. ``linear`` uses the
two-sample weights with no prefilter. Labels and zones take the nearest native voxel through
ITK's ``sitkNearestNeighbor`` itself (what PyRadiomics does to masks; :func:`resample_nearest`).
Grid voxels outside the native image (:math:`c < -\frac12` or :math:`c \ge n - \frac12`) read
air and label 0.

On a full-size phantom the image equals PyRadiomics' own resampled image voxel for voxel; see
``docs/methods_features.md`` for the measured feature differences and the exact option
(``features.radiomics.resampling: pyradiomics``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import numpy.typing as npt

from ..errors import EmptyLungMaskError
from ..io.volume import Volume
from ..vocab import HU_AIR, LUNG_LABELS

Interpolator = Literal["bspline", "linear"]
BSPLINE_MARGIN_VOXELS = 16
"""Native samples kept beyond the farthest B-spline tap (prefilter pole :math:`|z_1|^{16} < 10^{-9}`)."""
SLAB_VOXELS = 2**22
"""Native voxels converted to float64 at a time (32 MiB): bounds the working memory."""
_INT16 = np.iinfo(np.int16)


@dataclass(frozen=True)
class AnalysisGrid:
    """A scan on the isotropic analysis grid (all three on one geometry)."""

    image: Volume
    """int16 HU."""
    labels: Volume
    """uint8 lung labels (1 right, 2 left, 3 airways)."""
    zones: Volume
    """uint8 zone codes (:data:`ctpheno.vocab.ZONE_CODES`)."""


def grid_index_range(lo: int, hi: int, n: int, spacing_mm: float, target_mm: float,
                     pad_voxels: int) -> tuple[int, int]:
    """First and last (inclusive) grid index covering native voxels ``lo..hi`` plus ``pad_voxels``.

    ``n`` native voxels of ``spacing_mm``; grid of ``target_mm`` (see the module formulas; the
    same rounding as PyRadiomics' ``resampleImage``).
    """
    r = spacing_mm / target_mm
    first = max(0, int(math.floor((lo - 0.5) * r - pad_voxels)))
    last = min(int(math.ceil(n * r)) - 1, int(math.ceil((hi + 0.5) * r + pad_voxels)))
    return first, last


def continuous_index(first: int, size: int, spacing_mm: float, target_mm: float) -> npt.NDArray[np.float64]:
    """Native continuous index :math:`c(k)` of grid voxels ``first .. first + size - 1``."""
    k = np.arange(first, first + size, dtype=np.float64)
    return (k + 0.5) * (target_mm / spacing_mm) - 0.5


def _mirror(idx: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """Whole-sample mirror of indices into ``0..n-1`` (ITK's B-spline boundary, scipy's ``mirror``)."""
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx > n - 1, period - idx, idx)


def axis_operator(c: npt.NDArray[np.float64], n: int, interpolator: Interpolator
                  ) -> tuple[int, npt.NDArray[np.float64]]:
    """The 1-D interpolation operator of one axis: ``(start, K)``.

    Output sample ``i`` is ``K[i] @ f[start:start + K.shape[1]]`` for native samples ``f`` of
    length ``n``, at continuous indices ``c``. Samples outside the image have a zero row.
    """
    from scipy import ndimage as ndi

    inside = (c >= -0.5) & (c < n - 0.5)
    base = np.floor(c).astype(np.int64)
    if interpolator == "bspline":
        taps = np.arange(-1, 3)
        reach = BSPLINE_MARGIN_VOXELS
    elif interpolator == "linear":
        taps = np.arange(0, 2)
        reach = 0
    else:
        raise ValueError(f"interpolator must be 'bspline' or 'linear'; got {interpolator!r}")
    used = base[inside] if inside.any() else np.zeros(1, np.int64)
    start = max(0, int(used.min()) + int(taps[0]) - reach)
    stop = min(n, int(used.max()) + int(taps[-1]) + 1 + reach)
    t = c - base
    if interpolator == "bspline":
        weights = np.stack([(1 - t) ** 3 / 6, (3 * t**3 - 6 * t**2 + 4) / 6,
                            (-3 * t**3 + 3 * t**2 + 3 * t + 1) / 6, t**3 / 6], axis=1)
        index = _mirror(base[:, None] + taps[None, :], n)
    else:
        weights = np.stack([1 - t, t], axis=1)
        index = np.clip(base[:, None] + taps[None, :], 0, n - 1)
    W = np.zeros((len(c), stop - start))
    rows = np.repeat(np.arange(len(c)), len(taps))
    np.add.at(W, (rows, (index - start).ravel()), weights.ravel())
    W[~inside] = 0.0
    if interpolator == "bspline":
        # prefilter of the cropped samples: P[:, j] is the coefficient response to sample j
        P = ndi.spline_filter1d(np.eye(stop - start), order=3, axis=0, mode="mirror")
        W = W @ P
    return start, W


def resample_image(hu: npt.NDArray[np.integer], c_zyx: Sequence[npt.NDArray[np.float64]], *,
                   interpolator: Interpolator = "bspline", outside_hu: int = HU_AIR) -> npt.NDArray[np.int16]:
    """``hu`` interpolated at the separable grid ``c_zyx`` (continuous indices per axis), int16.

    See the module docstring: three 1-D operators, slab by slab over native z in float64;
    clamped to int16 and truncated toward zero; points outside the image get ``outside_hu``.
    """
    from threadpoolctl import threadpool_limits

    ops = [axis_operator(np.asarray(c, float), n, interpolator) for c, n in zip(c_zyx, hu.shape)]
    (z0, Kz), (y0, Ky), (x0, Kx) = ops
    nz = Kz.shape[1]
    step = max(1, SLAB_VOXELS // max(1, Ky.shape[1] * Kx.shape[1]))
    plane = np.empty((nz, Ky.shape[0], Kx.shape[0]), dtype=np.float64)
    with threadpool_limits(1):  # small products: BLAS threads would only spin
        for a in range(0, nz, step):
            b = min(nz, a + step)
            slab = np.asarray(hu[z0 + a:z0 + b, y0:y0 + Ky.shape[1], x0:x0 + Kx.shape[1]], dtype=np.float64)
            plane[a:b] = np.matmul(Ky, slab @ Kx.T)
        out = np.tensordot(Kz, plane, axes=(1, 0))
    del plane
    np.clip(out, _INT16.min, _INT16.max, out=out)
    result = np.trunc(out).astype(np.int16)
    outside = [~((c >= -0.5) & (c < n - 0.5)) for c, n in zip(c_zyx, hu.shape)]
    if any(o.any() for o in outside):
        result[outside[0]] = outside_hu
        result[:, outside[1]] = outside_hu
        result[:, :, outside[2]] = outside_hu
    return result


def resample_nearest(labels: npt.NDArray[np.integer], native: Volume, grid: Volume) -> npt.NDArray:
    """Nearest-neighbour resampling of a label map from ``native``'s grid onto ``grid``'s (0 outside).

    Done by SimpleITK's ``ResampleImageFilter`` (``sitkNearestNeighbor``), the filter PyRadiomics uses
    for masks: where a grid point is exactly halfway between two native voxels (e.g. 5 mm slices
    to 2 mm) the choice follows ITK's own floating-point index arithmetic, so on the same grid the
    result is PyRadiomics' mask voxel for voxel.
    """
    import SimpleITK as sitk

    src = native.with_array(labels).to_sitk()
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(grid.spacing_mm[::-1])
    f.SetOutputOrigin(grid.origin_mm)
    f.SetOutputDirection(grid.direction)
    f.SetSize([int(n) for n in grid.shape[::-1]])
    f.SetInterpolator(sitk.sitkNearestNeighbor)
    f.SetDefaultPixelValue(0)
    return sitk.GetArrayFromImage(f.Execute(src)).astype(labels.dtype, copy=False)


def grid_origin(native: Volume, first_zyx: Sequence[int], spacing_mm: float) -> tuple[float, float, float]:
    """Physical centre of grid voxel ``first_zyx``, with PyRadiomics' own arithmetic.

    ``resampleImage`` computes the cropped origin as the continuous index
    :math:`\frac{s' - s}{2 s} + k_0 \frac{s'}{s}` (per axis, x/y/z) mapped by ITK's
    ``TransformContinuousIndexToPhysicalPoint``; the same float operations here give the same
    origin to the last bit, so ITK's nearest-neighbour ties fall the same way.
    """
    import SimpleITK as sitk

    ref = sitk.Image([1, 1, 1], sitk.sitkUInt8)
    ref.SetSpacing(native.spacing_mm[::-1])
    ref.SetOrigin(native.origin_mm)
    ref.SetDirection(native.direction)
    mask_sp = np.array(native.spacing_mm[::-1])
    new_sp = np.full(3, float(spacing_mm))
    ratio = mask_sp / new_sp
    index = np.array(0.5 * (new_sp - mask_sp) / mask_sp) + np.asarray(first_zyx[::-1], dtype=float) / ratio
    return tuple(float(v) for v in ref.TransformContinuousIndexToPhysicalPoint(index.tolist()))  # type: ignore[return-value]


def lung_bbox(labels: npt.NDArray[np.integer]) -> tuple[tuple[int, int], ...]:
    """Inclusive (first, last) index of the lungs (labels 1, 2) along each axis."""
    lung = (labels == LUNG_LABELS[0]) | (labels == LUNG_LABELS[1])
    zs = np.flatnonzero(lung.reshape(len(lung), -1).any(axis=1))
    if zs.size == 0:
        raise EmptyLungMaskError("the lung mask (labels 1, 2) is empty; no analysis grid can be built")
    plane = lung[zs[0]:zs[-1] + 1].any(axis=0)
    ys, xs = np.flatnonzero(plane.any(axis=1)), np.flatnonzero(plane.any(axis=0))
    return (int(zs[0]), int(zs[-1])), (int(ys[0]), int(ys[-1])), (int(xs[0]), int(xs[-1]))


def make_analysis_grid(hu: Volume, labels: Volume, zones: Volume, *, spacing_mm: float = 2.0,
                       margin_mm: float = 10.0, interpolator: Interpolator = "bspline") -> AnalysisGrid:
    """Resample a scan once to the isotropic analysis grid around its lungs (see module docstring).

    Parameters
    ----------
    hu : Volume, int16 (z, y, x)
        Image in HU on the native grid.
    labels, zones : Volume, uint8
        Lung labels and zone codes on the same grid.
    spacing_mm : float
        Isotropic voxel size of the grid.
    margin_mm : float
        Margin around the lungs' bounding box, rounded up to whole grid voxels.
    interpolator : {"bspline", "linear"}
        Image interpolation (labels and zones: nearest neighbour).
    """
    hu.check_same_geometry(labels, what="lung labels")
    hu.check_same_geometry(zones, what="zones")
    if not spacing_mm > 0:
        raise ValueError(f"analysis grid spacing_mm must be positive; got {spacing_mm}")
    if margin_mm < 0:
        raise ValueError(f"analysis grid margin_mm must be >= 0; got {margin_mm}")
    pad = int(math.ceil(margin_mm / spacing_mm))
    box = lung_bbox(labels.array)
    firsts, cs = [], []
    for (lo, hi), n, s in zip(box, hu.shape, hu.spacing_mm):
        first, last = grid_index_range(lo, hi, n, s, spacing_mm, pad)
        firsts.append(first)
        cs.append(continuous_index(first, last - first + 1, s, spacing_mm))
    image = Volume(resample_image(hu.array, cs, interpolator=interpolator), (float(spacing_mm),) * 3,
                   grid_origin(hu, firsts, spacing_mm), hu.direction)
    return AnalysisGrid(image, image.with_array(resample_nearest(labels.array, hu, image).astype(np.uint8)),
                        image.with_array(resample_nearest(zones.array, hu, image).astype(np.uint8)))
