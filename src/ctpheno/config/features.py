"""QCT and radiomics configuration (owned by ctpheno.features)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, PositiveFloat, confloat, conint

from ..vocab import REGIONS, Region
from .airways import AirwaysConfig
from .base import StrictModel


class CalibrationConfig(StrictModel):
    """Internal air calibration of the adjusted density (``*_adj`` columns; Parr et al. 2004)."""

    enabled: bool = True
    """Map the measured tracheal air to -1000 HU before the adjusted density is measured."""
    method: Literal["offset", "air_blood"] = "offset"
    """``offset``: shift so that tracheal air reads -1000 HU; ``air_blood``: two-point linear map
    through tracheal air (-1000 HU) and aortic blood (``blood_reference_hu``) when the blood was
    measured and is unenhanced, else ``offset``."""
    trachea_erosion_mm: confloat(ge=1.0, le=8.0) = 4.0
    """Tracheal lumen voxels closer than this to the wall are not used (partial volume, the
    undershoot of sharp kernels)."""
    blood_reference_hu: confloat(ge=20.0, le=70.0) = 45.0
    """CT number of unenhanced blood for the two-point map (haematocrit-dependent, ~40-50 HU)."""
    max_offset_hu: PositiveFloat = 50.0
    """A tracheal air further than this from -1000 HU raises the ``air_offset`` flag (severity
    ``exclude``): beyond a plausible calibration error, e.g. secretions in the trachea or a wrong
    rescale."""


class HarmonisationConfig(StrictModel):
    """Noise / kernel harmonisation of the adjusted density (:mod:`ctpheno.features.harmonise`)."""

    enabled: bool = True
    """Filter scans noisier than ``reference_noise_hu`` before the adjusted density is measured."""
    reference_noise_hu: PositiveFloat = 30.0
    """Tracheal-air noise SD (HU) the adjusted density is measured at: the upper end of
    smooth-kernel (B30f/B31f, STANDARD, B, FC10-FC13) chest CT; scans at or below it are unchanged."""
    kernel_matching: bool = True
    """Lower the target to the noise the reference kernel would give at the scan's dose, estimated
    from its noise texture, where the filtered-back-projection model fits (see
    :mod:`ctpheno.features.kernel_fit`); the reference noise stays the upper bound. Not applied to
    scans whose kernel class is ``smooth``."""
    reference_core_mm: confloat(gt=0.1, le=1.5) = 0.5
    """Gaussian core (SD, mm) of the reference kernel's MTF (0.5 mm: MTF50 0.37 mm^-1, B30f/STANDARD-like)."""
    max_sigma_mm: confloat(gt=0.0, le=5.0) = 2.5
    """Widest in-plane Gaussian (SD, mm) harmonisation may apply; a scan that needs more raises the
    ``noise_high`` flag (severity ``exclude``) and is filtered with this one."""


class VolumeAdjustmentConfig(StrictModel):
    """Volume-adjusted Perc15 for progression (sponge model; Shaker et al. 2004, Stolk et al. 2009)."""

    reference_volume_ml: PositiveFloat = 6000.0
    """Lung volume the density is adjusted to (for a subject's series use its baseline volume)."""
    exponent: confloat(ge=0.0, le=2.0) = 1.0
    """Exponent k of ``(D + 1000) * (V / V_ref)^k`` (1 = the sponge model: mass conserved)."""


class QCTConfig(StrictModel):
    """COPD quantitative CT metrics."""

    enabled: bool = True
    """Compute QCT metrics."""
    regions: list[Region] = Field(default_factory=lambda: list(REGIONS))
    """Regions to report."""
    lac_fit_range_ml: tuple[PositiveFloat, PositiveFloat] = (0.01, 10.0)
    """Cluster-size range (mL) over which the LAC power law exponent D is fitted."""
    lac_min_voxels: conint(ge=1, le=1000) = 8
    """The LAC fit starts at no fewer voxels than this (smaller clusters are noise and partial
    volume whatever the voxel size)."""
    calibration: CalibrationConfig = CalibrationConfig()
    """Air calibration of the ``*_adj`` density columns."""
    harmonisation: HarmonisationConfig = HarmonisationConfig()
    """Noise harmonisation of the ``*_adj`` density columns."""
    volume_adjustment: VolumeAdjustmentConfig = VolumeAdjustmentConfig()
    """Volume-adjusted Perc15 (``perc15_voladj_hu``)."""
    apex_base_cut_fraction: confloat(gt=0.0, lt=1.0) = 0.03
    """A lung whose first or last imaged slice holds more than this fraction of its largest
    slice's lung area is cut there (``apex_cut`` / ``base_cut``): zonal metrics become NaN."""


class RadiomicsConfig(StrictModel):
    """PyRadiomics feature extraction."""

    enabled: bool = True
    """Compute radiomics features."""
    params: Optional[Path] = None
    """PyRadiomics parameter file (PyRadiomics' own format). A relative path is read beside the YAML
    file that names it, else from the current directory; ``null``: the packaged default, a copy of
    ``config/features/radiomics.yaml``."""
    resampling: Literal["analysis_grid", "pyradiomics"] = "analysis_grid"
    """Where the isotropic resampling of ``setting.resampledPixelSpacing`` happens.
    ``analysis_grid``: PyRadiomics reads the grid preprocess stored once per scan
    (``preprocess.analysis_grid``, which must have the same spacing and interpolator) with its
    own resampling switched off; ``pyradiomics``: PyRadiomics resamples the native image itself
    in every call (exactly PyRadiomics' behaviour; slower, more memory). Without
    ``resampledPixelSpacing`` both read the native grid."""
    regions: list[Region] = Field(default_factory=lambda: ["whole"])
    """Regions to extract."""


class FeaturesConfig(StrictModel):
    qct: QCTConfig = QCTConfig()
    """QCT metrics."""
    airways: AirwaysConfig = AirwaysConfig()
    """Airway tree and per-branch airway measures (Pi10, WA % ...)."""
    radiomics: RadiomicsConfig = RadiomicsConfig()
    """Radiomics."""
