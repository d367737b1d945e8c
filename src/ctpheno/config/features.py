"""QCT and radiomics configuration (owned by ctpheno.features)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


class QCTConfig(StrictModel):
    """COPD quantitative CT metrics."""

    enabled: bool = True
    """Compute QCT metrics."""
    regions: list[Literal["whole", "right", "left", "upper", "middle", "lower"]] = Field(
        default_factory=lambda: ["whole", "right", "left", "upper", "middle", "lower"])
    """Regions to report."""
    lac_fit_range_ml: tuple[PositiveFloat, PositiveFloat] = (0.01, 10.0)
    """Cluster-size range (mL) over which the LAC power law exponent D is fitted."""


class RadiomicsConfig(StrictModel):
    """PyRadiomics feature extraction."""

    enabled: bool = True
    """Compute radiomics features."""
    params: Path = Path("config/features/radiomics.yaml")
    """PyRadiomics parameter file (PyRadiomics' own format)."""
    resampling: Literal["analysis_grid", "pyradiomics"] = "analysis_grid"
    """Where the isotropic resampling of ``setting.resampledPixelSpacing`` happens.
    ``analysis_grid``: PyRadiomics reads the grid preprocess stored once per scan
    (``preprocess.analysis_grid``, which must have the same spacing and interpolator) with its
    own resampling switched off; ``pyradiomics``: PyRadiomics resamples the native image itself
    in every call (exactly PyRadiomics' behaviour; slower, more memory). Without
    ``resampledPixelSpacing`` both read the native grid."""
    regions: list[Literal["whole", "right", "left", "upper", "middle", "lower"]] = Field(
        default_factory=lambda: ["whole"])
    """Regions to extract."""


class FeaturesConfig(StrictModel):
    qct: QCTConfig = QCTConfig()
    """QCT metrics."""
    radiomics: RadiomicsConfig = RadiomicsConfig()
    """Radiomics."""
