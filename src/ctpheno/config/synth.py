"""Synthetic cohort configuration (owned by ctpheno.synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PositiveInt, conint

from .base import StrictModel


class SynthConfig(StrictModel):
    """Synthetic COPD cohort generation (``ctpheno synth``)."""

    enabled: bool = True
    """Generate the cohort as the first pipeline step (the demo); off for real data."""
    n_subjects: PositiveInt = 20
    """Number of subjects (one inspiratory CT each)."""
    seed: conint(ge=0) = 0
    """Random seed; the same seed gives byte-identical pixel data."""
    size: Literal["demo", "full"] = "demo"
    """``demo``: ~128x128x100 at ~2.5-3 mm; ``full``: 512x512, 300-450 slices like NLST."""
    format: Literal["dicom", "nifti"] = "dicom"
    """Output format of the images."""
    out: Path = Path("synthetic")
    """Output folder (relative paths are inside the work directory)."""
