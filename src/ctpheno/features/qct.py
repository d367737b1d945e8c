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
= lung voxels with zone codes 1+4 / 2+5 / 3+6 (:data:`ctpheno.vocab.ZONE_CODES`,
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
from ..io.zarrstore import label_box
from ..vocab import LABEL_AIRWAYS, ZONE_CODES, Spacing, check_spacing
from .airway import AIRWAY_COLUMNS, AIRWAY_REACH_MM, airway_metrics
from .regions import REGION_PARTS, region_parts
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
from .descriptors import (
    Descriptors,
    adjusted_crop_histograms,
    adjusted_group_histograms,
    lung_box,
    measure_descriptors,
    remap_histograms,
    superior_is_last,
)
from .lac import LAC_THRESHOLD_HU, lac_metrics_from_sizes, region_cluster_sizes



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


def lung_volume_ml(mask: npt.NDArray[np.bool_], spacing_mm: Spacing) -> float:
    """Volume of ``mask`` in mL: ``n * prod(spacing_mm) / 1000``."""
    n = int(np.count_nonzero(mask))
    return n * (float(np.prod(check_spacing(spacing_mm))) / 1000.0)


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


def _laa950(hist: np.ndarray) -> float:
    n = int(hist.sum())
    return 100.0 * int(hist[: HU_OFFSET - 950 + 1].sum()) / n if n else 0.0


def _side_ratios(pairs: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Upper/lower LAA-950 ratio per row from (upper, lower) histogram pairs."""
    return {row: _ratio(_laa950(up), _laa950(low)) for row, (up, low) in pairs.items()}


DENSITY_KEYS = ("lung_volume_ml", "n_voxels", "mld_hu", "laa950_pct", "laa910_pct", "laa856_pct", "perc15_hu",
                "perc10_hu", "hu_sd", "hu_skewness", "hu_kurtosis")
"""Columns of :func:`histogram_metrics` (NaN on rows without lung voxels or with cut zones)."""
ADJ_COLUMNS = {"laa950_pct": "laa950_adj_pct", "laa910_pct": "laa910_adj_pct", "laa856_pct": "laa856_adj_pct",
               "perc15_hu": "perc15_adj_hu", "perc10_hu": "perc10_adj_hu", "mld_hu": "mld_adj_hu"}
"""Raw metric -> its twin on the adjusted (calibrated, harmonised) image."""
LAC_KEYS = ("lac_count", "lac_mean_ml", "lac_median_ml", "lac_max_ml", "lac_frac_large_pct", "lac_d_950",
            "lac_d_950_se", "lac_fit_ks", "lac_fit_n")
SCAN_COLUMNS = ("air_hu", "noise_hu", "blood_hu", "air_source", "noise_fav_lpmm", "kernel_class",
                "calibration_scale", "calibration_offset_hu", "harmonise_sigma_mm", "harmonise_deboost",
                "harmonise_target_hu",
                "qct_flags", "airway_scan_id")
"""Scan-level columns (the same on every row of a scan; written once in ``ctpheno qct --json``)."""
INT_COLUMNS = ("n_voxels", "lac_count", "lac_fit_n")
QCT_FLAGS = ("apex_cut", "base_cut", "right_lung_missing", "left_lung_missing", "air_unmeasured", "air_offset",
             "noise_high")
"""Every flag ``qct_flags`` can hold (severities: ``ctpheno.preprocess.qc.QC_FLAG_SEVERITY``)."""
ZONE_REGIONS = ("upper", "middle", "lower")


def coverage_flags(lung_z: npt.NDArray[np.integer], superior_last: bool | None, *, cut_fraction: float) -> list[str]:
    """``apex_cut`` / ``base_cut`` when the lungs are cut by the first or last slice.

    A lung is cut at an end slice when that slice holds more than ``cut_fraction`` of the
    largest slice's lung area (the tip of an apex or of a costophrenic recess is a few voxels;
    a scan that starts inside the lung shows a cross-section). Without zones to tell which end is
    superior, the last slice is taken as superior.
    """
    counts = np.asarray(lung_z, dtype=np.float64)
    if counts.size == 0 or counts.max() <= 0:
        return []
    limit = cut_fraction * counts.max()
    first_cut, last_cut = counts[0] > limit, counts[-1] > limit
    sup_last = True if superior_last is None else superior_last
    apex, base = (last_cut, first_cut) if sup_last else (first_cut, last_cut)
    return [name for name, cut in (("apex_cut", apex), ("base_cut", base)) if cut]


def _require_lung(groups: np.ndarray, scan_id: str | None) -> None:
    """A scan without any lung voxel is a failure (a missing region of a scan with lung is a NaN row)."""
    if int(groups.sum()) == 0:
        raise EmptyLungMaskError(
            f"QCT of scan {scan_id}: the lung mask has no lung voxel (labels 1 and 2 are empty); "
            f"check the segmentation QC image or the --mask labels"
        )


def _nan_row() -> dict[str, float]:
    return {**{k: math.nan for k in DENSITY_KEYS}, **{k: math.nan for k in LAC_KEYS},
            **{v: math.nan for v in ADJ_COLUMNS.values()}, "perc15_voladj_hu": math.nan}


def _volume_adjusted(perc15: float, volume_ml: float, config: QCTConfig) -> float:
    """Sponge-model volume adjustment ``(P15 + 1000) * (V / V_ref)^k - 1000`` (Shaker et al. 2004)."""
    va = config.volume_adjustment
    if not (math.isfinite(perc15) and volume_ml > 0):
        return math.nan
    return (perc15 + 1000.0) * (volume_ml / va.reference_volume_ml) ** va.exponent - 1000.0


def low_attenuation_parts(hu: np.ndarray, labels: np.ndarray, zones: np.ndarray) -> npt.NDArray[np.uint8]:
    """The lung part (:func:`~ctpheno.features.regions.region_parts`) of every voxel at or below
    :data:`~ctpheno.features.lac.LAC_THRESHOLD_HU`, 0 elsewhere: what the cluster analysis labels."""
    parts = region_parts(labels, zones)
    parts *= np.asarray(hu) <= LAC_THRESHOLD_HU
    return parts


def _lac_sizes(hu: np.ndarray, labels: np.ndarray, zones: np.ndarray) -> dict[str, np.ndarray]:
    """Low-attenuation cluster sizes (voxels) of every region, labelled once on the lungs' box."""
    box = label_box(np.asarray(labels), (0, 0, 0)) or (slice(0, 0),) * 3  # lung and airway voxels
    return region_cluster_sizes(low_attenuation_parts(hu[box], labels[box], zones[box]), REGION_PARTS)


def _from_groups(groups, adj_groups, prof, desc: Descriptors, sp: Spacing, config: QCTConfig, scan_id,
                 lac_sizes, airway, airway_scan_id, superior_last) -> pd.DataFrame:
    hists = regions_from_groups(groups, list(REGIONS))
    adj = regions_from_groups(adj_groups, list(REGIONS))
    flags = list(desc.flags)
    if superior_last is None:
        superior_last = superior_is_last(prof)
    flags += coverage_flags(prof["lung_z"], superior_last, cut_fraction=config.apex_base_cut_fraction)
    cut = "apex_cut" in flags or "base_cut" in flags
    for side in ("right", "left"):
        if int(hists[side].sum()) == 0:
            flags.append(f"{side}_lung_missing")
    whole_ml = float(hists["whole"].sum()) * float(np.prod(sp)) / 1000.0
    ratios = {} if cut else _ratios_from_groups({**hists, **_side_zone_hists(groups)})
    scan = {**desc.columns(), "qct_flags": ";".join(dict.fromkeys(flags)), "airway_scan_id": airway_scan_id}
    rows = []
    for region in config.regions:
        row = _nan_row()
        n = int(hists[region].sum())
        if n and not (cut and region in ZONE_REGIONS):
            row.update(histogram_metrics(hists[region], sp))
            am = histogram_metrics(adj[region], sp)
            row.update({new: am[old] for old, new in ADJ_COLUMNS.items()})
            row["perc15_voladj_hu"] = _volume_adjusted(row["perc15_adj_hu"], whole_ml, config)
            row.update(lac_metrics_from_sizes(lac_sizes[region], sp, fit_range_ml=config.lac_fit_range_ml,
                                              min_voxels=config.lac_min_voxels))
        else:
            row["n_voxels"] = n
            row["lung_volume_ml"] = n * float(np.prod(sp)) / 1000.0 if n == 0 else math.nan
        row["laa950_upper_lower_ratio"] = ratios.get(region, math.nan)
        row.update({c: (airway[c] if region == "whole" else math.nan) for c in AIRWAY_COLUMNS})
        rows.append({"region": region, **row, **scan})
    df = pd.DataFrame(rows)
    df.insert(0, "scan_id", scan_id if scan_id is not None else "")
    for c in ("scan_id", "region", "air_source", "kernel_class", "qct_flags", "airway_scan_id"):
        df[c] = df[c].astype("string")
    for c in INT_COLUMNS:
        df[c] = pd.array(df[c].to_numpy(dtype=np.float64), dtype="Int64")
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
    kernel_class: str = "unknown",
    superior_last: bool | None = None,
    airway: dict[str, float] | None = None,
    airway_scan_id: str | None = None,
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
        :class:`~ctpheno.config.features.QCTConfig` (regions, LAC fit, calibration, harmonisation).
    kernel_class
        Class of the reconstruction kernel from the header (``unknown``: decided by the noise texture).
    superior_last
        Whether the last slice is the most superior (default: from the zones).
    airway, airway_scan_id
        Airway columns measured on another reconstruction of the study (the sharpest) and its id;
        by default they are measured on this scan.

    A region without lung voxels is a row of NaN (``lung_volume_ml`` 0), not a failure; zone rows
    and upper/lower ratios are NaN when the lungs are cut at the apex or the base (flags in
    ``qct_flags``).
    """
    sp = check_spacing(spacing_mm)
    groups = group_histograms(hu, labels, zones)
    _require_lung(groups, scan_id)
    desc, prof = measure_descriptors(hu, labels, zones, sp, config=config, kernel_class=kernel_class,
                                     superior_last=superior_last)
    adj = adjusted_group_histograms(hu, labels, zones, groups, desc, sp, prof)
    return _from_groups(
        groups, adj, prof, desc, sp, config, scan_id,
        lac_sizes=_lac_sizes(hu, labels, zones),
        airway=airway if airway is not None else airway_metrics(hu, labels, sp),
        airway_scan_id=airway_scan_id if airway_scan_id is not None else (scan_id or ""),
        superior_last=superior_last,
    )


def qct_metrics_dask(
    image, labels, zones, spacing_mm: Spacing, *, config: QCTConfig = QCTConfig(), scan_id: str | None = None,
    kernel_class: str = "unknown", superior_last: bool | None = None, airway: dict[str, float] | None = None,
    airway_scan_id: str | None = None,
) -> pd.DataFrame:
    """Blockwise twin of :func:`qct_metrics` on dask arrays (e.g. from ``zarrstore.read_dask``).

    Histogram-type metrics are summed over chunks (exact). The cluster analysis needs
    connected components across chunks, so it labels the boolean low-attenuation mask
    of each region in memory (1 byte per voxel, computed blockwise; cropped to its
    bounding box before labelling) — an eighth of what a float image would need. The
    descriptors read crops and a few slices; the harmonising filter runs on the lungs'
    bounding box (plus the kernel's halo), read into memory as :func:`qct_metrics` does.
    """
    import dask
    import dask.array as da

    from .histogram import group_histograms_dask

    sp = check_spacing(spacing_mm)
    image = da.asarray(image)
    labels = da.asarray(labels).rechunk(image.chunks)
    zones = da.asarray(zones).rechunk(image.chunks)
    groups = group_histograms_dask(image, labels, zones)
    _require_lung(groups, scan_id)
    desc, prof = measure_descriptors(image, labels, zones, sp, config=config, kernel_class=kernel_class,
                                     superior_last=superior_last)
    if desc.filters:  # the lungs' bounding box in memory (~1/4 of the volume), as qct_metrics does
        box = lung_box(prof, image.shape, desc.halo(sp))
        adj = (adjusted_crop_histograms(*dask.compute(image[box], labels[box], zones[box]), desc, sp)
               if box is not None else np.zeros_like(groups))
    else:
        adj = remap_histograms(groups, desc.calibration_scale, desc.calibration_offset_hu)
    parts = da.map_blocks(low_attenuation_parts, image, labels, zones, dtype=np.uint8).compute()
    return _from_groups(
        groups, adj, prof, desc, sp, config, scan_id,
        lac_sizes=region_cluster_sizes(parts, REGION_PARTS),
        airway=airway if airway is not None else _airway_dask(image, labels, sp),
        airway_scan_id=airway_scan_id if airway_scan_id is not None else (scan_id or ""),
        superior_last=superior_last,
    )


def _airway_dask(image, labels, sp: Spacing) -> dict[str, float]:
    """:func:`airway_metrics` on the in-memory crop around the airway lumen (bounding box from blockwise projections)."""
    import dask

    lumen = labels == LABEL_AIRWAYS
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
