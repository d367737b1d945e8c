r"""Low-attenuation cluster (LAC) analysis: cluster sizes and the power-law exponent D.

Mishima et al. (PNAS 1999, 96:8829) showed that the cumulative size
distribution of low-attenuation areas in emphysema follows a power law,

.. math::

    Y(s) = \#\{\text{clusters with size} \ge s\} \;\propto\; s^{-D},

and that ``D`` falls as small clusters coalesce into large ones, before LAA%
changes. Mishima worked on 2D slices; here clusters are 3D:

* a low-attenuation voxel is a lung-mask voxel with ``HU <= -950``;
* clusters are the connected components of those voxels under **6-connectivity**
  (voxels sharing a face, ``scipy.ndimage.generate_binary_structure(3, 1)``); voxels
  outside the mask never join clusters;
* a cluster's size is its voxel count times the voxel volume, in mL;
* ``D`` is minus the least-squares slope of ``log10 Y(s)`` against ``log10 s``,
  evaluated at every distinct cluster size ``s`` inside the fitting range
  ``[s_min, s_max]`` mL (``QCTConfig.lac_fit_range_ml``, default 0.01–10 mL: below
  0.01 mL a cluster is a few voxels and its size is dominated by noise and
  partial volume; above 10 mL clusters are too few to estimate a tail).

At least three distinct sizes are needed in the range; otherwise ``D`` is
undefined and :class:`~ctpheno.errors.FeatureExtractionError` is raised by
:func:`lac_exponent` (the QCT table then holds NaN only with ``lac_fit_n`` < 3
documenting why — see :func:`lac_metrics`).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ..errors import FeatureExtractionError

LAC_THRESHOLD_HU = -950
CONNECTIVITY = 1
"""``scipy.ndimage`` connectivity rank: 1 = 6-connected (face neighbours)."""


def cluster_sizes_voxels(low: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Voxel counts of the 6-connected clusters of ``low`` (a boolean 3D array), sorted descending."""
    low = np.asarray(low, dtype=bool)
    if low.ndim != 3:
        raise ValueError(f"low-attenuation mask must be 3D (z, y, x); got shape {low.shape}")
    if not low.any():
        return np.zeros(0, dtype=np.int64)
    # crop to the bounding box first: labels are int32, 4 bytes per voxel
    idx = (
        np.nonzero(low.any(axis=(1, 2)))[0],
        np.nonzero(low.any(axis=(0, 2)))[0],
        np.nonzero(low.any(axis=(0, 1)))[0],
    )
    box = tuple(slice(int(i[0]), int(i[-1]) + 1) for i in idx)
    lab, n = ndimage.label(low[box], structure=ndimage.generate_binary_structure(3, CONNECTIVITY))
    sizes = np.bincount(lab.ravel())[1:].astype(np.int64)
    return np.sort(sizes)[::-1]


def cumulative_size_distribution(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sizes ``s`` (ascending) and ``Y(s)``, the number of clusters of size ``>= s``."""
    sizes = np.asarray(sizes)
    uniq, counts = np.unique(sizes, return_counts=True)
    y = np.cumsum(counts[::-1])[::-1]
    return uniq, y


def lac_exponent(sizes_ml: np.ndarray, *, fit_range_ml: tuple[float, float]) -> tuple[float, int]:
    """Power-law exponent ``D`` of the cumulative cluster-size distribution and the number of fit points.

    Parameters
    ----------
    sizes_ml
        Cluster sizes in mL.
    fit_range_ml
        ``(s_min, s_max)``: only distinct sizes within this closed range enter the fit
        (``Y(s)`` itself still counts every cluster of size ``>= s``).
    """
    lo, hi = fit_range_ml
    if not 0 < lo < hi:
        raise ValueError(f"fit_range_ml must be (s_min, s_max) with 0 < s_min < s_max; got {fit_range_ml}")
    s, y = cumulative_size_distribution(np.asarray(sizes_ml, dtype=np.float64))
    keep = (s >= lo) & (s <= hi)
    n = int(keep.sum())
    if n < 3:
        raise FeatureExtractionError(
            f"LAC exponent needs >= 3 distinct cluster sizes within {fit_range_ml} mL; found {n} "
            f"(of {len(sizes_ml)} clusters). Too little emphysema, or widen QCTConfig.lac_fit_range_ml"
        )
    slope = np.polyfit(np.log10(s[keep]), np.log10(y[keep].astype(np.float64)), 1)[0]
    return float(-slope), n


def lac_metrics(
    hu: npt.NDArray[np.int16],
    mask: npt.NDArray[np.bool_],
    spacing_mm: tuple[float, float, float],
    *,
    fit_range_ml: tuple[float, float] = (0.01, 10.0),
    threshold_hu: int = LAC_THRESHOLD_HU,
) -> dict[str, float]:
    """Cluster count, size distribution and ``lac_d_950`` of one region.

    Returns
    -------
    dict
        ``lac_count`` (clusters), ``lac_mean_ml``, ``lac_median_ml``, ``lac_max_ml``,
        ``lac_frac_large_pct`` (% of low-attenuation volume in clusters > 1 mL),
        ``lac_d_950`` (NaN when fewer than three distinct sizes lie in the fitting range,
        see ``lac_fit_n``) and ``lac_fit_n`` (distinct sizes used in the fit).
    """
    if hu.shape != mask.shape:
        raise ValueError(f"image and mask differ in shape: {hu.shape} vs {mask.shape}")
    low = (hu <= threshold_hu) & np.asarray(mask, dtype=bool)
    return lac_metrics_from_low(low, spacing_mm, fit_range_ml=fit_range_ml)


def lac_metrics_from_low(
    low: npt.NDArray[np.bool_],
    spacing_mm: tuple[float, float, float],
    *,
    fit_range_ml: tuple[float, float] = (0.01, 10.0),
) -> dict[str, float]:
    """:func:`lac_metrics` from a precomputed low-attenuation mask."""
    vox_ml = float(np.prod(spacing_mm)) / 1000.0
    sizes = cluster_sizes_voxels(low) * vox_ml
    out: dict[str, float] = {"lac_count": int(sizes.size)}
    if sizes.size:
        out.update(
            lac_mean_ml=float(sizes.mean()),
            lac_median_ml=float(np.median(sizes)),
            lac_max_ml=float(sizes.max()),
            lac_frac_large_pct=100.0 * float(sizes[sizes > 1.0].sum() / sizes.sum()),
        )
    else:
        out.update(lac_mean_ml=0.0, lac_median_ml=0.0, lac_max_ml=0.0, lac_frac_large_pct=0.0)
    try:
        d, n = lac_exponent(sizes, fit_range_ml=fit_range_ml)
    except FeatureExtractionError:
        s, _ = cumulative_size_distribution(sizes)
        d, n = math.nan, int(((s >= fit_range_ml[0]) & (s <= fit_range_ml[1])).sum())
    out["lac_d_950"] = d
    out["lac_fit_n"] = n
    return out
