"""QCT and radiomics configuration (owned by ctpheno.features)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, PositiveFloat

from .airways import AirwaysConfig
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
    params: Optional[Path] = None
    """PyRadiomics parameter file (PyRadiomics' own format). A relative path is read beside the YAML
    file that names it, else from the current directory; ``null``: the packaged default, a copy of
    ``config/features/radiomics.yaml``."""
    regions: list[Literal["whole", "right", "left", "upper", "middle", "lower"]] = Field(
        default_factory=lambda: ["whole"])
    """Regions to extract."""


class FeaturesConfig(StrictModel):
    qct: QCTConfig = QCTConfig()
    """QCT metrics."""
    airways: AirwaysConfig = AirwaysConfig()
    """Airway tree and per-branch airway measures (Pi10, WA % ...)."""
    radiomics: RadiomicsConfig = RadiomicsConfig()
    """Radiomics."""
