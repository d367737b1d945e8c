"""One scan's airway tree, per-branch measurements and endpoints: :func:`measure_airways`.

The tree is grown on ``hu`` (the scan the lungs were segmented on); the walls are measured on
``measure_hu`` — the study's sharp reconstruction when it has one (walls are best resolved
with a sharp kernel; COPDGene measures airways on its sharp series), else the same image.
Both must share one grid. The blur correction takes the PSF of the image it measures on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pandas as pd

from ...config.airways import AirwaysConfig
from ...vocab import LABEL_AIRWAYS, Spacing, check_spacing
from .endpoints import FLAG_COLUMN, branch_measures, missing_endpoints, scan_endpoints
from .graph import AirwayTree, build_tree
from .psf import psf_sigma_mm
from .sections import SectionSettings, measure_sections
from .segment import LumenSegmentation, segment_lumen


@dataclass(frozen=True)
class AirwayResult:
    """Everything :func:`measure_airways` found for one scan.

    Attributes
    ----------
    endpoints : dict
        Scan-level endpoints and ``airway_tree_flags`` (:mod:`.endpoints`).
    branches : pandas.DataFrame
        Branch table with per-branch medians (:func:`.endpoints.branch_measures`); empty when
        nothing was measured.
    diagnostics : dict
        How the tree was grown and measured (threshold, leak fraction, PSF ...).
    segmentation, tree, sections
        The intermediate results (None when the step was skipped).
    """

    endpoints: dict
    branches: pd.DataFrame
    diagnostics: dict = field(default_factory=dict)
    segmentation: LumenSegmentation | None = None
    tree: AirwayTree | None = None
    sections: pd.DataFrame | None = None


def effective_slice_mm(spacing_mm: Spacing, slice_thickness_mm: float | None) -> float:
    """Through-plane sampling that limits the measurement: the larger of slice thickness and spacing."""
    sz = float(spacing_mm[0])
    if slice_thickness_mm is None or not math.isfinite(float(slice_thickness_mm)):
        return sz
    return max(float(slice_thickness_mm), sz)


def _diag(seg: LumenSegmentation | None, tree: AirwayTree | None, psf: tuple | None, slice_mm: float) -> dict:
    branches = tree.branches if tree is not None else pd.DataFrame()
    by_side = branches.groupby("side")["generation"].max() if len(branches) else pd.Series(dtype=float)
    return {
        "slice_thickness_mm": slice_mm,
        "airway_threshold_hu": seg.threshold_hu if seg else math.nan,
        "airway_lumen_volume_ml": seg.volume_ml if seg else math.nan,
        "airway_leak_fraction": seg.leak_fraction if seg else math.nan,
        "airway_n_leaks": seg.n_leaks if seg else 0,
        "max_generation_right": float(by_side.get("right", math.nan)),
        "max_generation_left": float(by_side.get("left", math.nan)),
        "psf_sigma_xy_mm": float(psf[1]) if psf else math.nan,
        "psf_sigma_z_mm": float(psf[0]) if psf else math.nan,
        "psf_source": str(psf[3]) if psf else "",
    }


def measure_airways(hu: npt.NDArray, labels: npt.NDArray[np.integer], spacing_mm: Spacing, *,
                    measure_hu: npt.NDArray | None = None, slice_thickness_mm: float | None = None,
                    config: AirwaysConfig = AirwaysConfig()) -> AirwayResult:
    """Airway tree, per-branch wall measurements and scan endpoints of one chest CT.

    Parameters
    ----------
    hu
        HU (z, y, x) the tree is grown on.
    labels
        Lung labels on the same grid (1 right, 2 left, 3 trachea and main bronchi).
    spacing_mm
        Voxel size (z, y, x).
    measure_hu
        Image the walls are measured on (same grid; default ``hu``).
    slice_thickness_mm
        Reconstructed slice thickness (DICOM SliceThickness); default the z spacing.
    config
        :class:`~ctpheno.config.airways.AirwaysConfig`.
    """
    sp = check_spacing(spacing_mm)
    if hu.shape != labels.shape:
        raise ValueError(f"image and labels differ in shape: {hu.shape} vs {labels.shape}")
    img = hu if measure_hu is None else measure_hu
    if img.shape != hu.shape:
        raise ValueError(f"measurement image and segmentation image differ in shape: {img.shape} vs {hu.shape}; "
                         f"resample the sharp series onto the scan's grid first")
    slice_mm = effective_slice_mm(sp, slice_thickness_mm)
    if slice_mm > config.max_slice_thickness_mm:
        return AirwayResult(missing_endpoints("thick_slices"), pd.DataFrame(), _diag(None, None, None, slice_mm))
    if not np.any(labels == LABEL_AIRWAYS):
        return AirwayResult(missing_endpoints("no_airway_seed"), pd.DataFrame(), _diag(None, None, None, slice_mm))
    seg = segment_lumen(hu, labels, sp, smoothing_mm=config.smoothing_mm, thresholds_hu=tuple(config.thresholds_hu),
                        explosion_ratio=config.explosion_ratio, explosion_ml=config.explosion_ml,
                        growth=config.leak_growth, window_mm=config.leak_window_mm)
    tree = build_tree(seg.lumen, sp, labels=labels)
    psf = psf_sigma_mm(img, tree, sp, slice_thickness_mm=slice_mm, psf_fwhm_mm=config.psf_fwhm_mm)
    settings = SectionSettings(step_mm=config.section_step_mm, n_rays=config.n_rays, wall_hu=config.wall_hu)
    sections = measure_sections(img, tree, sp, sigma_zyx_mm=psf[:3], settings=settings,
                                lung=(labels == 1) | (labels == 2))
    branches = branch_measures(tree.branches, sections, min_sections=config.min_sections)
    endpoints = scan_endpoints(branches, min_branches_pi10=config.min_branches_pi10,
                               min_branches_seg=config.min_branches_seg)
    if math.isfinite(seg.leak_fraction) and seg.leak_fraction > config.max_leak_fraction:
        endpoints[FLAG_COLUMN] = ";".join(f for f in (endpoints[FLAG_COLUMN], "airway_leak") if f)
    return AirwayResult(endpoints, branches, _diag(seg, tree, psf, slice_mm), seg, tree, sections)


def branch_label_map(tree: AirwayTree, lumen: npt.NDArray[np.bool_], spacing_mm: Spacing) -> npt.NDArray[np.int32]:
    """Each lumen voxel labelled with its nearest branch: ``branch_id + 1`` (0 outside the lumen).

    Nearest centreline point in mm (a k-d tree of the centreline points; :class:`scipy.spatial.cKDTree`).
    """
    from scipy.spatial import cKDTree

    out = np.zeros(lumen.shape, np.int32)
    if not lumen.any() or not tree.centrelines:
        return out
    sp = np.asarray(spacing_mm, float)
    pts = np.concatenate(tree.centrelines) * sp
    ids = np.concatenate([np.full(len(c), i + 1, np.int32) for i, c in enumerate(tree.centrelines)])
    vox = np.argwhere(lumen)
    _, nearest = cKDTree(pts).query(vox * sp)
    out[tuple(vox.T)] = ids[nearest]
    return out


__all__ = ["AirwayResult", "branch_label_map", "effective_slice_mm", "measure_airways"]
