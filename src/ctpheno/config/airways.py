"""Airway-tree and per-branch airway measurement configuration (owned by ctpheno.features.airways)."""

from __future__ import annotations

from typing import Optional

from pydantic import Field, PositiveFloat, confloat, conint

from .base import StrictModel


class AirwaysConfig(StrictModel):
    """Airway tree, per-branch wall measurements and Pi10 (``ctpheno run --stages airways``;
    method: ``docs/methods_features.md``, "Airway tree and per-branch airway measures")."""

    enabled: bool = True
    """Run the airways stage (a separate stage: 6.7 core-s measured on a 512 x 512 x 275 thin-slice scan,
    ``benchmarks/bench_airways.py``; thick-slice scans cost only their reading)."""
    max_slice_thickness_mm: confloat(ge=0.5, le=3.0) = 1.25
    """Thicker slices (or a larger slice spacing) get no per-branch measurement: the endpoints are NaN with
    the flag ``thick_slices`` (segmental walls of ~1 mm are not resolved across 2-3 mm slices)."""
    smoothing_mm: confloat(ge=0.0, le=2.0) = 0.5
    """Gaussian SD of the smoothing applied before growing the lumen (against sharp-kernel noise)."""
    thresholds_hu: list[confloat(ge=-1024, le=-600)] = Field(
        default_factory=lambda: [-975.0, -950.0, -925.0, -900.0, -875.0, -850.0, -825.0])
    """Global thresholds tried (lowest first); the highest before the grown volume explodes is kept."""
    explosion_ratio: confloat(gt=1.0, le=10.0) = 1.5
    """Growth factor of the lumen volume between two thresholds that counts as an explosion (leak)..."""
    explosion_ml: PositiveFloat = 20.0
    """...together with an increase of at least this volume (mL)."""
    leak_growth: confloat(ge=1.5, le=20.0) = 4.0
    """Per-branch leak control: a lineage whose growth over ``leak_window_mm`` exceeds this factor of its
    width is a leak, erased and regrown 25 HU lower."""
    leak_window_mm: confloat(ge=2.0, le=30.0) = 8.0
    """Window (mm of growth) of the per-branch leak test."""
    max_leak_fraction: confloat(ge=0.0, le=1.0) = 0.25
    """Flag ``airway_leak`` when the leak control erased more than this fraction of the final lumen volume."""
    section_step_mm: confloat(ge=0.25, le=5.0) = 1.0
    """Spacing of the cross-sections along each branch."""
    n_rays: conint(ge=12, le=180) = 36
    """Rays per cross-section."""
    wall_hu: confloat(ge=-300, le=300) = 40.0
    """Airway-wall attenuation (soft tissue) assumed by the wall-area integral, WA ~ 1 / (wall_hu - lung HU):
    on LIDC-IDRI-0314 (whole scan), Pi10 3.04 mm at 40 HU, 3.12 at 0 HU, 3.32 at -100 HU."""
    psf_fwhm_mm: Optional[confloat(ge=0.2, le=5.0)] = None
    """In-plane PSF FWHM of the scanner; ``null`` measures it on the trachea's lumen edge."""
    min_sections: conint(ge=1, le=50) = 3
    """Valid cross-sections a branch needs to be measured."""
    min_branches_pi10: conint(ge=3, le=500) = 6
    """Measured branches (generation >= 2) Pi10 needs; fewer: NaN and flag ``few_branches``."""
    min_branches_seg: conint(ge=1, le=500) = 3
    """Measured branches of generation 3-5 the segmental medians need."""
    qc_png: bool = True
    """Write ``qc/<scan_id>_airways.png`` (tree by generation and a cross-section gallery)."""
