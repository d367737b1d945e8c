r"""COPD quantitative CT (QCT) metrics of the lung HU histogram, per region.

Definitions follow COPDGene and the Chest Imaging Platform (CIP; Regan et al.,
COPD 2010; San José Estépar et al.), with the densitometric thresholds of
Gevenois et al. (AJRCCM 1995/1996: ``-950`` HU on inspiratory thin-section CT
correlates with macroscopic emphysema) and the air-trapping threshold
``-856`` HU on expiratory CT (Newman/Matsuoka; COPDGene). With ``n`` lung
voxels of HU values :math:`x_i` and voxel volume :math:`v` (mL):

.. math::

    \text{lung\_volume\_ml} = n \cdot \frac{\prod_k \Delta_k}{1000}, \qquad
    \text{mld\_hu} = \frac{1}{n}\sum_i x_i, \qquad
    \text{laa}T\text{\_pct} = 100 \cdot \frac{\#\{x_i \le T\}}{n}

``percT_hu`` is ``np.percentile(x, T)`` with linear interpolation between order
statistics (Hyndman & Fan type 7), e.g. Perc15 (Dirksen et al., the density
endpoint of alpha-1 antitrypsin trials; Parr et al. 2006). ``hu_sd``,
``hu_skewness`` and ``hu_kurtosis`` are the population moments
:math:`\sigma = \sqrt{m_2}`, :math:`m_3/m_2^{3/2}` and excess kurtosis
:math:`m_4/m_2^2 - 3` (central moments :math:`m_k`).

Lung mask = labels ``{1, 2}`` (right, left lung; airways ``3`` excluded).
Regions: ``whole`` (1+2), ``right`` (1), ``left`` (2), ``upper``/``middle``/``lower``
= lung voxels with zone codes 1+4 / 2+5 / 3+6 (:data:`ctpheno.io.zarrstore.ZONE_CODES`,
equal-volume cranio-caudal thirds of each lung as preprocess defines them).
``laa950_upper_lower_ratio`` = LAA-950 of the upper region over that of the lower
region of the same row's lung(s) (whole: both lungs; right/left: that lung's zones;
NaN on zone rows, where it is not defined; ``inf`` when the lower value is 0 and
the upper is not). Low-attenuation clusters: see :mod:`ctpheno.features.lac`.

Every histogram-type metric is computed from an exact integer histogram
(:mod:`ctpheno.features.histogram`), in memory here and blockwise over Zarr
chunks in :func:`qct_metrics_dask`; both paths give identical numbers.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..config.features import QCTConfig
from ..errors import EmptyLungMaskError
from ..io.zarrstore import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES
from .airway import AIRWAY_COLUMNS, AIRWAY_REACH_MM, LABEL_AIRWAY, airway_metrics
from .histogram import (
    HU_OFFSET,
    REGION_GROUPS,
    REGIONS,
    _check_hu,
    group_histograms,
    histogram_metrics,
    lung_histogram,
    percentile_from_histogram,
    region_histograms,
    region_histograms_dask,
    regions_from_groups,
)
from .lac import lac_metrics_from_low

Spacing = tuple[float, float, float]


def _mask_values(hu: np.ndarray, mask: np.ndarray) -> np.ndarray:
    _check_hu(hu)
    if mask.shape != hu.shape:
        raise ValueError(f"image and lung mask differ in shape: {hu.shape} vs {mask.shape}")
    if mask.dtype != np.bool_:
        raise TypeError(f"lung mask must be a bool array; got {mask.dtype}. Use labels == 1 | labels == 2")
    vals = hu[mask]
    if vals.size == 0:
        raise EmptyLungMaskError("lung mask is empty; check the segmentation QC image")
    return vals


def _spacing(spacing_mm) -> Spacing:
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise ValueError(f"spacing_mm must be three positive numbers (z, y, x) in mm; got {spacing_mm}")
    return sp  # type: ignore[return-value]


def lung_volume_ml(mask: npt.NDArray[np.bool_], spacing_mm: Spacing) -> float:
    """Volume of ``mask`` in mL: ``n * prod(spacing_mm) / 1000``."""
    n = int(np.count_nonzero(mask))
    return n * (float(np.prod(_spacing(spacing_mm))) / 1000.0)


def mld_hu(hu: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_]) -> float:
    """Mean lung density (HU), from the exact integer sum."""
    vals = _mask_values(hu, mask)
    return int(vals.sum(dtype=np.int64)) / vals.size


def laa_pct(hu: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_], threshold_hu: float) -> float:
    """Percentage of lung voxels at or below ``threshold_hu`` (LAA-950/-910/-856)."""
    vals = _mask_values(hu, mask)
    return 100.0 * int(np.count_nonzero(vals <= threshold_hu)) / vals.size


def percentile_hu(hu: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_], q: float) -> float:
    """HU at the ``q``-th percentile of the lung histogram (Perc15: ``q=15``), NumPy-linear, exact."""
    _mask_values(hu, mask)
    return percentile_from_histogram(lung_histogram(hu, mask), q)


def hu_moments(hu: npt.NDArray[np.int16], mask: npt.NDArray[np.bool_]) -> dict[str, float]:
    """``hu_sd``, ``hu_skewness``, ``hu_kurtosis`` (excess) of the lung HU values."""
    _mask_values(hu, mask)
    m = histogram_metrics(lung_histogram(hu, mask), (1.0, 1.0, 1.0))
    return {k: m[k] for k in ("hu_sd", "hu_skewness", "hu_kurtosis")}


def laa950_upper_lower_ratio(hu: npt.NDArray[np.int16], labels: np.ndarray, zones: np.ndarray) -> float:
    """LAA-950 of the upper zones (1+4) over the lower zones (3+6), both lungs."""
    h = region_histograms(hu, labels, zones, ["upper", "lower"])
    return _ratio(
        histogram_metrics(h["upper"], (1.0, 1.0, 1.0))["laa950_pct"],
        histogram_metrics(h["lower"], (1.0, 1.0, 1.0))["laa950_pct"],
    )


def _ratio(up: float, low: float) -> float:
    if low == 0:
        return math.inf if up > 0 else math.nan
    return up / low


def _zone_region_masks(labels: np.ndarray, zones: np.ndarray) -> dict[str, np.ndarray]:
    lung = (labels == LABEL_RIGHT_LUNG) | (labels == LABEL_LEFT_LUNG)
    out = {"whole": lung, "right": labels == LABEL_RIGHT_LUNG, "left": labels == LABEL_LEFT_LUNG}
    for level in ("upper", "middle", "lower"):
        out[level] = lung & ((zones == ZONE_CODES[("right", level)]) | (zones == ZONE_CODES[("left", level)]))
    return out


def _laa950(hist: np.ndarray) -> float:
    n = int(hist.sum())
    return 100.0 * int(hist[: HU_OFFSET - 950 + 1].sum()) / n if n else 0.0


def _side_ratios(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Upper/lower LAA-950 ratio per row from (upper, lower) histogram pairs."""
    return {row: _ratio(_laa950(up), _laa950(low)) for row, (up, low) in pairs.items()}


def _assemble(
    metrics: dict[str, dict[str, float]],
    ratios: dict[str, float],
    lac: dict[str, dict[str, float]],
    scan_id: str | None,
    airway: dict[str, float],
) -> pd.DataFrame:
    rows = []
    for region, m in metrics.items():
        row = {
            "region": region,
            **m,
            "laa950_upper_lower_ratio": ratios.get(region, math.nan),
            **lac.get(region, {}),
            **{c: (airway[c] if region == "whole" else math.nan) for c in AIRWAY_COLUMNS},
        }
        rows.append(row)
    df = pd.DataFrame(rows)
    df.insert(0, "scan_id", scan_id if scan_id is not None else "")
    df["scan_id"] = df["scan_id"].astype("string")
    df["region"] = df["region"].astype("string")
    return df


def _ratios_from_groups(groups: dict[str, np.ndarray]) -> dict[str, float]:
    return _side_ratios(
        {
            "whole": (groups["upper"], groups["lower"]),
            "right": (groups["right_upper"], groups["right_lower"]),
            "left": (groups["left_upper"], groups["left_lower"]),
        }
    )


def _side_zone_hists(hist_groups) -> dict[str, np.ndarray]:
    """Right/left upper and lower histograms from a ``(2, 7, bins)`` group histogram."""
    right, left = hist_groups[0], hist_groups[1]
    return {
        "right_upper": right[ZONE_CODES[("right", "upper")]],
        "right_lower": right[ZONE_CODES[("right", "lower")]],
        "left_upper": left[ZONE_CODES[("left", "upper")]],
        "left_lower": left[ZONE_CODES[("left", "lower")]],
    }


def qct_metrics(
    hu: npt.NDArray[np.int16],
    labels: np.ndarray,
    zones: np.ndarray,
    spacing_mm: Spacing,
    *,
    config: QCTConfig = QCTConfig(),
    scan_id: str | None = None,
) -> pd.DataFrame:
    """QCT metrics of one scan, long by region (schema :data:`ctpheno.io.schemas.QCT`).

    Parameters
    ----------
    hu
        int16 HU, shape (z, y, x).
    labels
        uint8 lung labels on the same grid (1 right, 2 left, 3 airways).
    zones
        uint8 zone codes (0 outside, 1..6 see ``ZONE_CODES``).
    spacing_mm
        Voxel size (z, y, x) in mm.
    config
        :class:`~ctpheno.config.features.QCTConfig` (regions, LAC fitting range).
    """
    sp = _spacing(spacing_mm)
    groups = group_histograms(hu, labels, zones)
    low = hu <= -950
    region_masks = _zone_region_masks(labels, zones)
    return _from_groups(
        groups,
        sp,
        config,
        scan_id,
        low_of=lambda region: low & region_masks[region],
        airway=airway_metrics(hu, labels, sp),
    )


def _from_groups(groups, sp: Spacing, config: QCTConfig, scan_id, low_of, airway) -> pd.DataFrame:
    hists = regions_from_groups(groups, list(REGIONS))
    metrics = {}
    for region in config.regions:
        try:
            metrics[region] = histogram_metrics(hists[region], sp)
        except EmptyLungMaskError:
            raise EmptyLungMaskError(
                f"QCT region {region!r} has no lung voxel (scan {scan_id}); check the "
                f"lung labels and zones, or drop the region from features.qct.regions"
            ) from None
    ratios = _ratios_from_groups({**hists, **_side_zone_hists(groups)})
    lac = {
        region: lac_metrics_from_low(low_of(region), sp, fit_range_ml=config.lac_fit_range_ml)
        for region in config.regions
    }
    return _assemble(metrics, ratios, lac, scan_id, airway)


def qct_metrics_dask(
    image, labels, zones, spacing_mm: Spacing, *, config: QCTConfig = QCTConfig(), scan_id: str | None = None
) -> pd.DataFrame:
    """Blockwise twin of :func:`qct_metrics` on dask arrays (e.g. from ``zarrstore.read_dask``).

    Histogram-type metrics are summed over chunks (exact). The cluster analysis needs
    connected components across chunks, so it labels the boolean low-attenuation mask
    of each region in memory (1 byte per voxel, computed blockwise; cropped to its
    bounding box before labelling) — an eighth of what a float image would need.
    """
    import dask.array as da

    from .histogram import group_histograms_dask

    sp = _spacing(spacing_mm)
    image = da.asarray(image)
    labels = da.asarray(labels).rechunk(image.chunks)
    zones = da.asarray(zones).rechunk(image.chunks)
    groups = group_histograms_dask(image, labels, zones)
    lung = (labels == LABEL_RIGHT_LUNG) | (labels == LABEL_LEFT_LUNG)
    low = (image <= -950) & lung
    masks = {
        "whole": low,
        "right": low & (labels == LABEL_RIGHT_LUNG),
        "left": low & (labels == LABEL_LEFT_LUNG),
    }
    for level in ("upper", "middle", "lower"):
        masks[level] = low & da.isin(zones, [ZONE_CODES[("right", level)], ZONE_CODES[("left", level)]])
    return _from_groups(
        groups,
        sp,
        config,
        scan_id,
        low_of=lambda region: masks[region].compute(),
        airway=_airway_dask(image, labels, sp),
    )


def _airway_dask(image, labels, sp: Spacing) -> dict[str, float]:
    """:func:`airway_metrics` on the in-memory crop around the airway lumen (bounding box from blockwise projections)."""
    import dask

    lumen = labels == LABEL_AIRWAY
    proj = dask.compute(*(lumen.any(axis=tuple(a for a in range(3) if a != k)) for k in range(3)))
    if not all(p.any() for p in proj):
        return airway_metrics(np.zeros((1, 1, 1), np.int16), np.zeros((1, 1, 1), np.uint8), sp)
    margin = [int(math.ceil(AIRWAY_REACH_MM / s)) + 2 for s in sp]
    box = []
    for p, m, n in zip(proj, margin, image.shape):
        nz = np.flatnonzero(p)
        box.append(slice(max(int(nz[0]) - m, 0), min(int(nz[-1]) + m + 1, n)))
    img, lab = dask.compute(image[tuple(box)], labels[tuple(box)])
    return airway_metrics(img, lab, sp)


__all__ = [
    "lung_volume_ml",
    "mld_hu",
    "laa_pct",
    "percentile_hu",
    "hu_moments",
    "laa950_upper_lower_ratio",
    "qct_metrics",
    "qct_metrics_dask",
    "REGION_GROUPS",
    "region_histograms_dask",
]
