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
* ``D`` is the **maximum-likelihood** exponent of the cluster sizes inside the fitting range
  ``[s_min, s_max]`` mL (Clauset, Shalizi & Newman, SIAM Review 2009, for a power law truncated
  on both sides): with :math:`Y(s) \propto s^{-D}` the size density is
  :math:`p(s) = D\, s^{-D-1} / (a^{-D} - b^{-D})` on :math:`[a, b]`, and

  .. math:: \hat D = \arg\max_D \; n \ln D - n \ln(a^{-D} - b^{-D}) - (D + 1) \sum_i \ln s_i,

  with :math:`a = s_{min} - v/2` (half a voxel volume :math:`v`: sizes are whole voxels,
  Clauset's continuity correction). The range starts at ``max(s_min, lac_min_voxels * v)``
  (default 8 voxels): smaller clusters are noise and partial volume, and their number depends on
  the voxel size, which made the former least-squares fit of :math:`\log Y` over every distinct
  size move with the reconstruction (1.05 vs 1.32 on two reconstructions of one lung). Unlike
  the least-squares slope of the cumulative distribution (whose points are not independent), the
  likelihood weights every cluster once and gives a standard error
  :math:`\mathrm{SE} = (-\partial^2 \ln L / \partial D^2)^{-1/2}` (``lac_d_950_se``) and the
  Kolmogorov-Smirnov distance between the fitted and the observed size distribution
  (``lac_fit_ks``) as the fit's quality. Default range **0.01-10 mL** (above 10 mL clusters are
  too few to estimate a tail).

At least :data:`MIN_FIT_CLUSTERS` clusters are needed in the range; otherwise ``D`` is
undefined and :class:`~ctpheno.errors.FeatureExtractionError` is raised by
:func:`lac_exponent` (the QCT table then holds NaN, with ``lac_fit_n`` saying how many clusters
were in range — see :func:`lac_metrics`).
"""

from __future__ import annotations

import math
from typing import Collection, Mapping

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.optimize import minimize_scalar

from ..errors import FeatureExtractionError
from ..io.zarrstore import label_box

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


def region_cluster_sizes(parts: npt.NDArray[np.integer],
                         regions: Mapping[str, Collection[int]]) -> dict[str, npt.NDArray[np.int64]]:
    """6-connected cluster sizes (voxels, descending) of every region, from one labelling.

    ``parts`` gives every low-attenuation voxel the code of the part of the lung it lies in (0
    elsewhere); ``regions`` names each region's set of part codes. The result for region ``r``
    equals ``cluster_sizes_voxels(np.isin(parts, regions[r]))``: each part is labelled once, and
    the clusters of a region are the parts' clusters joined where two of them touch across a
    boundary between two parts of that region. Labelling each region separately costs one
    labelling of the lungs per region; this costs one in all.
    """
    parts = np.asarray(parts)
    if parts.ndim != 3:
        raise ValueError(f"parts must be 3D (z, y, x); got shape {parts.shape}")
    box = label_box(parts, (0, 0, 0))
    if box is None:
        return {r: np.zeros(0, dtype=np.int64) for r in regions}
    parts = parts[box]
    fine = np.zeros(parts.shape, np.int32)
    structure = ndimage.generate_binary_structure(3, CONNECTIVITY)
    sizes, code_of = [np.zeros(1, np.int64)], [np.zeros(1, np.int64)]
    n = 0
    for code, sub in enumerate(ndimage.find_objects(parts), start=1):
        if sub is None:
            continue
        lab, k = ndimage.label(parts[sub] == code, structure=structure)
        np.copyto(fine[sub], lab + np.int32(n), where=lab > 0)
        sizes.append(np.bincount(lab.ravel(), minlength=k + 1)[1:].astype(np.int64))
        code_of.append(np.full(k, code, np.int64))
        n += k
    size, part_of = np.concatenate(sizes), np.concatenate(code_of)  # per cluster of a part (0: none)
    # neighbours in two different parts: the only places where a region's clusters join parts' clusters
    flat_parts, flat_fine, pairs = parts.ravel(), fine.ravel(), []
    for axis, length in enumerate(parts.shape):
        stride = int(np.prod(parts.shape[axis + 1:]))
        first, second = flat_parts[:-stride], flat_parts[stride:]
        contact = first != second
        contact &= first.astype(bool)
        contact &= second.astype(bool)
        at = np.flatnonzero(contact)
        at = at[(at // stride) % length != length - 1]  # not across the array's edge into the next row
        pairs.append(np.stack([flat_fine[at], flat_fine[at + stride]], axis=1))
    edges = np.unique(np.concatenate(pairs), axis=0)
    out = {}
    for name, codes in regions.items():
        inside = np.isin(part_of, list(codes))
        inside[0] = False
        keep = edges[inside[edges[:, 0]] & inside[edges[:, 1]]]
        graph = coo_matrix((np.ones(len(keep), np.int8), (keep[:, 0], keep[:, 1])), shape=(n + 1, n + 1))
        _, comp = connected_components(graph, directed=False)
        merged = np.bincount(comp[inside], weights=size[inside]).astype(np.int64)
        out[name] = np.sort(merged[merged > 0])[::-1]
    return out


def cumulative_size_distribution(sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sizes ``s`` (ascending) and ``Y(s)``, the number of clusters of size ``>= s``."""
    sizes = np.asarray(sizes)
    uniq, counts = np.unique(sizes, return_counts=True)
    y = np.cumsum(counts[::-1])[::-1]
    return uniq, y


MIN_FIT_CLUSTERS = 10
"""Fewest clusters inside the fitting range for which ``D`` is estimated."""
D_BOUNDS = (0.05, 6.0)
"""Search interval of the maximum-likelihood exponent."""


def _neg_loglik(d: float, logs: np.ndarray, a: float, b: float) -> float:
    n = logs.size
    norm = a ** (-d) - b ** (-d)
    return -(n * math.log(d) - n * math.log(norm) - (d + 1.0) * float(logs.sum()))


def lac_exponent(
    sizes_ml: np.ndarray, *, fit_range_ml: tuple[float, float], voxel_ml: float = 0.0
) -> tuple[float, int, float, float]:
    """Maximum-likelihood power-law exponent ``D`` of cluster sizes inside ``fit_range_ml``.

    Parameters
    ----------
    sizes_ml
        Cluster sizes in mL.
    fit_range_ml
        ``(s_min, s_max)``: clusters with sizes in this closed range enter the fit.
    voxel_ml
        Voxel volume: the lower bound of the continuous density is ``s_min - voxel_ml / 2``.

    Returns
    -------
    (D, n, se, ks)
        Exponent, clusters in range, standard error, Kolmogorov-Smirnov distance of the fit.
    """
    lo, hi = fit_range_ml
    if not 0 < lo < hi:
        raise ValueError(f"fit_range_ml must be (s_min, s_max) with 0 < s_min < s_max; got {fit_range_ml}")
    s = np.asarray(sizes_ml, dtype=np.float64)
    s = np.sort(s[(s >= lo) & (s <= hi)])
    n = int(s.size)
    if n < MIN_FIT_CLUSTERS:
        raise FeatureExtractionError(
            f"LAC exponent needs >= {MIN_FIT_CLUSTERS} clusters within {fit_range_ml} mL; found {n} "
            f"(of {len(sizes_ml)} clusters). Too little emphysema, or widen QCTConfig.lac_fit_range_ml"
        )
    a = max(lo - 0.5 * voxel_ml, 0.5 * lo)
    b = hi + 0.5 * voxel_ml
    logs = np.log(s)
    res = minimize_scalar(_neg_loglik, bounds=D_BOUNDS, args=(logs, a, b), method="bounded",
                          options={"xatol": 1e-6})
    d = float(res.x)
    h = 1e-4 * max(d, 1.0)
    curv = (_neg_loglik(d + h, logs, a, b) - 2 * _neg_loglik(d, logs, a, b) + _neg_loglik(d - h, logs, a, b)) / h**2
    se = 1.0 / math.sqrt(curv) if curv > 0 else math.nan
    cdf = (a ** (-d) - s ** (-d)) / (a ** (-d) - b ** (-d))
    emp_hi = np.arange(1, n + 1) / n
    ks = float(max(np.max(emp_hi - cdf), np.max(cdf - (emp_hi - 1.0 / n))))
    return d, n, se, ks


def lac_metrics(
    hu: npt.NDArray[np.int16],
    mask: npt.NDArray[np.bool_],
    spacing_mm: tuple[float, float, float],
    *,
    fit_range_ml: tuple[float, float] = (0.01, 10.0),
    min_voxels: int = 8,
    threshold_hu: int = LAC_THRESHOLD_HU,
) -> dict[str, float]:
    """Cluster count, size distribution and ``lac_d_950`` of one region.

    Returns
    -------
    dict
        ``lac_count`` (clusters), ``lac_mean_ml``, ``lac_median_ml``, ``lac_max_ml``,
        ``lac_frac_large_pct`` (% of low-attenuation volume in clusters > 1 mL),
        ``lac_d_950`` (NaN when fewer than :data:`MIN_FIT_CLUSTERS` clusters lie in the fitting
        range), ``lac_d_950_se``, ``lac_fit_ks`` and ``lac_fit_n`` (clusters in the range).
    """
    if hu.shape != mask.shape:
        raise ValueError(f"image and mask differ in shape: {hu.shape} vs {mask.shape}")
    low = (hu <= threshold_hu) & np.asarray(mask, dtype=bool)
    return lac_metrics_from_sizes(cluster_sizes_voxels(low), spacing_mm, fit_range_ml=fit_range_ml,
                                  min_voxels=min_voxels)


def fit_range(fit_range_ml: tuple[float, float], voxel_ml: float, min_voxels: int) -> tuple[float, float]:
    """The fitting range actually used: the lower end raised to ``min_voxels`` voxels."""
    return max(float(fit_range_ml[0]), min_voxels * voxel_ml), float(fit_range_ml[1])


def lac_metrics_from_sizes(
    sizes_voxels: npt.NDArray[np.integer],
    spacing_mm: tuple[float, float, float],
    *,
    fit_range_ml: tuple[float, float] = (0.01, 10.0),
    min_voxels: int = 8,
) -> dict[str, float]:
    """:func:`lac_metrics` from the clusters' sizes in voxels (:func:`cluster_sizes_voxels`,
    :func:`region_cluster_sizes`)."""
    vox_ml = float(np.prod(spacing_mm)) / 1000.0
    sizes = np.asarray(sizes_voxels) * vox_ml
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
    rng = fit_range(fit_range_ml, vox_ml, min_voxels)
    if rng[0] >= rng[1]:
        d, n, se, ks = math.nan, 0, math.nan, math.nan
    else:
        try:
            d, n, se, ks = lac_exponent(sizes, fit_range_ml=rng, voxel_ml=vox_ml)
        except FeatureExtractionError:
            d, n, se, ks = math.nan, int(((sizes >= rng[0]) & (sizes <= rng[1])).sum()), math.nan, math.nan
    out.update(lac_d_950=d, lac_d_950_se=se, lac_fit_ks=ks, lac_fit_n=n)
    return out
