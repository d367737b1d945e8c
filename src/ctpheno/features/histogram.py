"""Exact integer HU histograms and the histogram-type QCT metrics computed from them.

CT numbers are stored as ``int16``, so the lung histogram is exact: one bin per
integer HU over the whole ``int16`` range (65,536 bins, offset
:data:`HU_OFFSET`). Every histogram-type metric (volume, MLD, LAA%, percentiles,
moments) is a function of these counts alone, which makes the blockwise path
trivial and exact: histograms of Zarr chunks add up to the histogram of the
volume, so :func:`region_histograms_dask` equals :func:`region_histograms`
bit for bit and never holds more than one chunk per task in memory.

Percentiles reproduce :func:`numpy.percentile` (``method="linear"``, Hyndman &
Fan type 7) *exactly*, including NumPy's floating-point evaluation order: with
``n`` values and ``q`` in [0, 100], the virtual index is
``h = (n - 1) * (q/100)``, the order statistics ``x_(floor h)`` and
``x_(floor h + 1)`` are read from the cumulative histogram, and the value is
``a + (b - a) * g`` for ``g = h - floor h < 0.5`` else ``b - (b - a) * (1 - g)``.
"""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np
import numpy.typing as npt

from ..errors import EmptyLungMaskError
from ..vocab import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, LUNG_LABELS, REGIONS, ZONE_CODES

HU_OFFSET = 32768
"""Bin ``i`` of a histogram counts voxels with HU ``i - HU_OFFSET``."""
N_BINS = 65536
N_ZONES = 7
"""Zone codes 0 (none) and 1..6 (see :data:`ctpheno.vocab.ZONE_CODES`)."""


def _region_groups() -> dict[str, list[tuple[int, int]]]:
    """(lung label, zone code) groups making up each region."""
    groups = [(lab, z) for lab in LUNG_LABELS for z in range(N_ZONES)]
    out: dict[str, list[tuple[int, int]]] = {
        "whole": groups,
        "right": [g for g in groups if g[0] == LABEL_RIGHT_LUNG],
        "left": [g for g in groups if g[0] == LABEL_LEFT_LUNG],
    }
    for level in ("upper", "middle", "lower"):
        codes = {ZONE_CODES[("right", level)], ZONE_CODES[("left", level)]}
        out[level] = [g for g in groups if g[1] in codes]
    return out


REGION_GROUPS = _region_groups()


def _check_hu(hu: np.ndarray, name: str = "hu") -> None:
    if not isinstance(hu, np.ndarray) or hu.dtype != np.int16:
        got = hu.dtype if isinstance(hu, np.ndarray) else type(hu).__name__
        raise TypeError(
            f"{name} must be an int16 array of HU (as stored by preprocess); got {got}. "
            f"Convert with np.clip(x, -32768, 32767).astype(np.int16)"
        )


def lung_histogram(hu: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """Exact histogram (65,536 integer-HU bins) of ``hu`` inside ``mask``."""
    _check_hu(hu)
    if mask.shape != hu.shape:
        raise ValueError(f"image and mask differ in shape: {hu.shape} vs {mask.shape}")
    vals = hu[np.asarray(mask, dtype=bool)].astype(np.int64) + HU_OFFSET
    return np.bincount(vals, minlength=N_BINS)


def group_histograms(hu: np.ndarray, labels: np.ndarray, zones: np.ndarray) -> npt.NDArray[np.int64]:
    """Histograms per (lung label, zone) group, shape ``(2, 7, 65536)``, int64.

    ``[i, z]`` counts voxels with label ``LUNG_LABELS[i]`` and zone code ``z``
    (airways, label 3, and background are excluded). Summing groups gives any region.
    """
    _check_hu(hu)
    if not (hu.shape == labels.shape == zones.shape):
        raise ValueError(f"hu, labels and zones differ in shape: {hu.shape}, {labels.shape}, {zones.shape}")
    lab = np.asarray(labels)
    lung = (lab == LABEL_RIGHT_LUNG) | (lab == LABEL_LEFT_LUNG)
    zone = np.asarray(zones)[lung]
    lo, hi = (int(zone.min()), int(zone.max())) if zone.size else (0, 0)
    if hi >= N_ZONES or lo < 0:
        raise ValueError(f"zones contain code {hi if hi >= N_ZONES else lo}; "
                         f"expected 0..6 (ctpheno.vocab.ZONE_CODES)")
    # bin index (side * 7 + zone) * 65536 + HU + offset, built in place in one intp array
    code = zone.astype(np.intp)
    del zone
    code[lab[lung] == LABEL_LEFT_LUNG] += N_ZONES
    code *= N_BINS
    code += hu[lung]
    code += HU_OFFSET
    counts = np.bincount(code, minlength=2 * N_ZONES * N_BINS)
    return counts.reshape(2, N_ZONES, N_BINS)


def region_histograms(
    hu: np.ndarray, labels: np.ndarray, zones: np.ndarray, regions: tuple[str, ...] | list[str] = REGIONS
) -> dict[str, npt.NDArray[np.int64]]:
    """Exact histogram of every named region (see :data:`REGION_GROUPS`)."""
    return regions_from_groups(group_histograms(hu, labels, zones), regions)


def regions_from_groups(
    groups: np.ndarray, regions: tuple[str, ...] | list[str] = REGIONS
) -> dict[str, npt.NDArray[np.int64]]:
    out = {}
    for name in regions:
        if name not in REGION_GROUPS:
            raise ValueError(f"unknown region {name!r}; choose from {list(REGION_GROUPS)}")
        out[name] = sum(groups[LUNG_LABELS.index(lab), z] for lab, z in REGION_GROUPS[name])
    return out


def region_histograms_dask(
    image, labels, zones, regions: tuple[str, ...] | list[str] = REGIONS
) -> dict[str, npt.NDArray[np.int64]]:
    """Blockwise twin of :func:`region_histograms` over dask arrays (e.g. :func:`read_dask`).

    Each chunk is histogrammed on its own (one ``(2, 7, 65536)`` int64 array, 7 MiB)
    and the chunk histograms are summed in a tree, so memory per task is one chunk
    of each array plus a few histograms, whatever the volume size.
    """
    return regions_from_groups(group_histograms_dask(image, labels, zones), regions)


def group_histograms_dask(image, labels, zones) -> npt.NDArray[np.int64]:
    """:func:`group_histograms` summed over the chunks of dask arrays (tree reduction)."""
    import dask
    import dask.array as da

    image = da.asarray(image)
    if image.dtype != np.int16:
        raise TypeError(f"image must be int16 HU; got {image.dtype}")
    labels = da.asarray(labels).rechunk(image.chunks)
    zones = da.asarray(zones).rechunk(image.chunks)
    parts = [
        dask.delayed(group_histograms)(a, b, c)
        for a, b, c in zip(
            image.to_delayed().ravel(), labels.to_delayed().ravel(), zones.to_delayed().ravel()
        )
    ]
    while len(parts) > 1:
        parts = [
            dask.delayed(np.add)(parts[i], parts[i + 1]) if i + 1 < len(parts) else parts[i]
            for i in range(0, len(parts), 2)
        ]
    (groups,) = dask.compute(parts[0])
    return groups


def order_statistic(cum: np.ndarray, k: int) -> int:
    """HU of the ``k``-th smallest value (0-based) given the cumulative histogram ``cum``."""
    return int(np.searchsorted(cum, k, side="right")) - HU_OFFSET


def percentile_from_histogram(hist: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear) from the exact histogram of ``values``, bit for bit."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must lie in [0, 100]; got {q}")
    cum = np.cumsum(hist)
    n = int(cum[-1])
    if n == 0:
        raise EmptyLungMaskError("cannot take a percentile of an empty region")
    quantile = float(np.true_divide(q, 100))
    virtual = (n - 1) * quantile  # NumPy's 'linear' virtual index, evaluated the same way
    if virtual >= n - 1:
        return float(order_statistic(cum, n - 1))
    prev = math.floor(virtual) if virtual >= 0 else 0
    a = order_statistic(cum, prev)
    b = order_statistic(cum, prev + 1)
    gamma = virtual - prev
    diff = float(b - a)
    if gamma >= 0.5:
        return float(b - diff * (1 - gamma))
    return float(a + diff * gamma)


def histogram_metrics(
    hist: np.ndarray,
    spacing_mm: tuple[float, float, float],
    *,
    laa_thresholds_hu: tuple[int, ...] = (-950, -910, -856),
    percentiles: tuple[int, ...] = (15, 10),
) -> dict[str, float]:
    """Histogram-type QCT metrics of one region (see :mod:`ctpheno.features.qct` for the formulas).

    Returns ``lung_volume_ml``, ``n_voxels``, ``mld_hu``, ``laa<T>_pct`` for each threshold,
    ``perc<P>_hu`` for each percentile, and ``hu_sd``, ``hu_skewness``, ``hu_kurtosis``.
    Raises :class:`EmptyLungMaskError` when the region has no voxel.
    """
    hist = np.asarray(hist, dtype=np.int64)
    if hist.shape != (N_BINS,):
        raise ValueError(f"histogram must have {N_BINS} integer-HU bins; got shape {hist.shape}")
    n = int(hist.sum())
    if n == 0:
        raise EmptyLungMaskError("region is empty (no lung voxel); check the lung mask and zones")
    nz = np.flatnonzero(hist)
    values = (nz - HU_OFFSET).astype(np.int64)
    counts = hist[nz]
    vox_ml = float(np.prod(spacing_mm)) / 1000.0
    total = int(np.dot(values, counts))  # exact integer sum
    mean = total / n
    dev = values.astype(np.float64) - mean
    m2 = float(np.dot(counts, dev**2)) / n
    m3 = float(np.dot(counts, dev**3)) / n
    m4 = float(np.dot(counts, dev**4)) / n
    out: dict[str, float] = {"lung_volume_ml": n * vox_ml, "n_voxels": n, "mld_hu": mean}
    cum = np.cumsum(hist)
    for t in laa_thresholds_hu:
        below = int(cum[int(t) + HU_OFFSET]) if int(t) + HU_OFFSET >= 0 else 0
        out[f"laa{abs(int(t))}_pct"] = 100.0 * below / n
    for p in percentiles:
        out[f"perc{int(p)}_hu"] = percentile_from_histogram(hist, p)
    out["hu_sd"] = math.sqrt(m2)
    out["hu_skewness"] = m3 / m2**1.5 if m2 > 0 else 0.0
    out["hu_kurtosis"] = m4 / m2**2 - 3.0 if m2 > 0 else 0.0
    return out


def metrics_by_region(
    hists: Mapping[str, np.ndarray], spacing_mm: tuple[float, float, float]
) -> dict[str, dict[str, float]]:
    """:func:`histogram_metrics` of each region histogram."""
    return {name: histogram_metrics(h, spacing_mm) for name, h in hists.items()}
