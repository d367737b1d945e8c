"""Preprocess configuration (owned by ctpheno.preprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


class SegmentationConfig(StrictModel):
    """Lung segmentation settings (see ``docs/segmentation.md`` for the method)."""

    backend: Literal["classic", "lungmask", "totalsegmentator"] = "classic"
    """Lung segmentation backend (``classic`` needs nothing extra)."""
    threshold_hu: confloat(ge=-800, le=-200) = -500.0
    """Air/tissue threshold for the body mask and the initial lung candidate mask."""
    adaptive_threshold: bool = False
    """Replace ``threshold_hu`` by Otsu's threshold of the HU inside the body, clipped to [-650, -350]."""
    airway_threshold_hu: confloat(ge=-1000, le=-700) = -850.0
    """Highest threshold tried when growing the trachea and main bronchi from the trachea seed
    (thresholds rise from -980 HU up to this value; growth stops before a leak)."""
    airway_max_ml: PositiveFloat = 250.0
    """An airway region larger than this is a leak into the lung; the previous threshold is kept."""
    coarse_spacing_mm: confloat(ge=1.0, le=6.0) = 2.5
    """Voxel size of the coarse grid on which components, airways and the left/right split are found."""
    closing_iterations: conint(ge=0, le=5) = 1
    """Morphological closing (coarse voxels) of each lung before per-slice hole filling."""
    min_second_lung_fraction: confloat(ge=0.01, le=0.9) = 0.12
    """A second air component counts as the other lung if its volume is at least this fraction of
    the largest one (and it lies on the other side and reaches the upper half of the lungs)."""
    min_chest_lung_ml: PositiveFloat = 400.0
    """Less lung air than this means the field of view holds no lungs (:class:`NotChestCTError`)."""
    modelpath: Optional[Path] = None
    """Local weights file for the ``lungmask`` backend (never downloaded)."""


class AnalysisGridConfig(StrictModel):
    """The isotropic analysis grid radiomics and embeddings share (``ctpheno.preprocess.analysis_grid``).

    Preprocess resamples each scan once to this grid, cropped to the lungs, and stores it in the
    scan's Zarr store beside the native grid (group ``analysis``).
    """

    enabled: bool = True
    """Build and store the grid (needed by ``features.radiomics.resampling: analysis_grid`` and
    used by the patch embeddings when their ``spacing_mm`` is the same)."""
    spacing_mm: confloat(gt=0.2, le=10.0) = 2.0  # type: ignore[valid-type]
    """Isotropic voxel size (mm); equal to the radiomics ``resampledPixelSpacing`` and the
    embeddings' ``spacing_mm``."""
    margin_mm: confloat(ge=0.0, le=100.0) = 10.0  # type: ignore[valid-type]
    """Margin around the lungs' bounding box (10 mm = 5 voxels of 2 mm, PyRadiomics' ``padDistance``)."""
    interpolator: Literal["bspline", "linear"] = "bspline"
    """Image interpolation: cubic B-spline (PyRadiomics' default ``sitkBSpline``; the grid then
    equals PyRadiomics' own resampled image) or linear (``sitkLinear``). Labels and zones take
    the nearest native voxel."""


class PreprocessConfig(StrictModel):
    """HU handling, resampling, segmentation, zones, storage and QC (``ctpheno preprocess``)."""

    clip_hu: tuple[int, int] = (-1024, 3071)
    """HU range kept; padding values below (e.g. -2000, -3024) become air."""
    spacing_mm: Optional[tuple[PositiveFloat, PositiveFloat, PositiveFloat]] = None
    """Grid (z, y, x) in mm the stored image is resampled to before segmentation and QCT; ``null``
    keeps the native grid (radiomics and embeddings read ``analysis_grid``)."""
    segmentation: SegmentationConfig = SegmentationConfig()
    """Lung segmentation settings."""
    analysis_grid: AnalysisGridConfig = AnalysisGridConfig()
    """Isotropic analysis grid shared by radiomics and the embeddings (stored beside the native grid)."""
    chunks: tuple[PositiveInt, PositiveInt, PositiveInt] = (64, 64, 64)
    """Zarr chunk shape (z, y, x)."""
    qc_png: bool = True
    """Write a QC montage per scan."""
    min_lung_volume_ml: PositiveFloat = 1500.0
    """Below this the scan is flagged implausible (adult inspiratory)."""
    max_lung_volume_ml: PositiveFloat = 9000.0
    """Above this the scan is flagged implausible."""
    max_frac_above_minus500: confloat(gt=0, le=1) = 0.25
    """A lung mask with more voxels above -500 HU than this fraction is flagged (leak into soft tissue)."""
    min_left_right_ratio: PositiveFloat = 0.5
    """Left/right lung volume ratios outside [min, max] are flagged (normal ~0.8-0.95)."""
    max_left_right_ratio: PositiveFloat = 1.6
    """Upper bound of the plausible left/right volume ratio."""
