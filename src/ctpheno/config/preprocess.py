"""Preprocess configuration (owned by ctpheno.preprocess)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


class SegmentationConfig(StrictModel):
    backend: Literal["classic", "lungmask", "totalsegmentator"] = "classic"
    """Lung segmentation backend (``classic`` needs nothing extra)."""
    threshold_hu: confloat(ge=-800, le=-200) = -500.0
    """Air/tissue threshold for the initial lung candidate mask."""
    modelpath: Optional[Path] = None
    """Local weights file for the ``lungmask`` backend (never downloaded)."""


class PreprocessConfig(StrictModel):
    """HU handling, resampling, segmentation, zones, storage and QC (``ctpheno preprocess``)."""

    clip_hu: tuple[int, int] = (-1024, 3071)
    """HU range kept; padding values below (e.g. -2000, -3024) become air."""
    spacing_mm: Optional[tuple[PositiveFloat, PositiveFloat, PositiveFloat]] = None
    """Analysis grid (z, y, x) in mm; ``null`` keeps the native grid."""
    segmentation: SegmentationConfig = SegmentationConfig()
    """Lung segmentation settings."""
    chunks: tuple[PositiveInt, PositiveInt, PositiveInt] = (64, 64, 64)
    """Zarr chunk shape (z, y, x)."""
    qc_png: bool = True
    """Write a QC montage per scan."""
    min_lung_volume_ml: PositiveFloat = 1500.0
    """Below this the scan is flagged implausible (adult inspiratory)."""
    max_lung_volume_ml: PositiveFloat = 9000.0
    """Above this the scan is flagged implausible."""
