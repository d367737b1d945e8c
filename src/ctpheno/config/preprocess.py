"""Preprocess configuration (owned by ctpheno.preprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


LabelRole = Literal["right", "left", "lung", "airway", "ignore"]
LobeName = Literal["right_upper", "right_middle", "right_lower", "left_upper", "left_lower"]

TOTALSEGMENTATOR_LABEL_MAP: dict[int, LabelRole] = {10: "left", 11: "left", 12: "right", 13: "right", 14: "right",
                                                    16: "airway"}
"""TotalSegmentator v2 task ``total``: lung lobes 10-14 and the trachea (16)."""
TOTALSEGMENTATOR_LOBES: dict[int, LobeName] = {10: "left_upper", 11: "left_lower", 12: "right_upper",
                                               13: "right_middle", 14: "right_lower"}


class ExternalMaskConfig(StrictModel):
    """Lung masks made by another tool (``segmentation.backend: external``, ``ctpheno qct --mask``)."""

    path_template: Optional[str] = None
    """Where each scan's mask is, from its input files: ``{folder}`` (the folder holding the scan's
    files) and ``{name}`` (file name without extension, or the DICOM folder's name), e.g.
    ``"{folder}/{name}_lungs.nii.gz"``. Needed by the pipeline, not by ``ctpheno qct --mask``."""
    preset: Optional[Literal["totalsegmentator"]] = None
    """Fill ``label_map`` and ``lobes`` with a tool's labels (``totalsegmentator``: lobes 10-14 and trachea 16)."""
    label_map: dict[int, LabelRole] = {1: "right", 2: "left", 3: "airway"}
    """Source label -> role. ``lung`` (e.g. a binary mask's 1) is split into right and left by ctpheno;
    a source label missing from the map is an error."""
    lobes: dict[int, LobeName] = {}
    """Source label -> lobe, kept as a lobe map for per-lobe metrics."""

    def model_post_init(self, __context: object) -> None:
        if self.preset == "totalsegmentator":
            object.__setattr__(self, "label_map", {**TOTALSEGMENTATOR_LABEL_MAP, **{
                k: v for k, v in self.label_map.items() if k not in (1, 2, 3)}})
            object.__setattr__(self, "lobes", self.lobes or dict(TOTALSEGMENTATOR_LOBES))


class SegmentationConfig(StrictModel):
    """Lung segmentation settings (see ``docs/segmentation.md`` for the method)."""

    backend: Literal["classic", "lungmask", "totalsegmentator", "external"] = "classic"
    """Lung segmentation backend (``classic`` needs nothing extra; ``external`` reads each scan's mask
    from ``external.path_template``)."""
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
    rim_lung_fraction: confloat(gt=0.0, le=0.5) = 0.15
    """Partial-volume rim at the pleura: a voxel just outside the half-maximum boundary is lung when its
    HU shows at least this lung fraction between the lung and the local tissue level (0.5 = no rim)."""
    rim_max_mm: confloat(ge=0.0, le=6.0) = 1.0
    """Largest in-plane distance the rim grows from the half-maximum boundary (0 = no rim growth)."""
    costal_closing_mm: confloat(ge=0.0, le=40.0) = 20.0
    """Radius of the rolling ball that fills costal concavities (juxtapleural masses, consolidation);
    0 turns it off. The mediastinal side is never filled."""
    costal_min_depth_mm: confloat(ge=0.0, le=30.0) = 5.0
    """A costal pocket thinner than this is the ball smoothing the surface, not a lesion: not added."""
    modelpath: Optional[Path] = None
    """Local weights: a lungmask model file, or TotalSegmentator's weights folder (never downloaded)."""
    external: ExternalMaskConfig = ExternalMaskConfig()
    """Masks from other tools: where they are and what their labels mean."""


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
    min_lung_body_ratio: confloat(ge=0, le=1) = 0.1
    """Lung over body volume (in the lung slices) below this: a lung lost or missed (flag ``lung_body_low``)."""
    max_lung_body_ratio: confloat(ge=0, le=1) = 0.7
    """Above this the mask left the thorax (flag ``lung_body_high``)."""
    max_envelope_gap_ml: confloat(ge=0) = 4.0
    """Costal concavity a rolling ball fills beyond the mask, above which it is flagged ``costal_gap``
    (a lesion at the chest wall cut out of the lung, or an effusion)."""
    max_pleural_air_ml: confloat(ge=0) = 10.0
    """Air along the chest wall inside the mask above this is flagged ``pleural_air``."""
