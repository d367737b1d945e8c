"""Synthetic cohort configuration (owned by ctpheno.synth)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PositiveInt, confloat, conint

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
    two_reconstructions: confloat(ge=0.0, le=1.0) = 0.2
    """Fraction of subjects whose study holds a smooth and a sharp reconstruction of one acquisition
    (NLST/COPDGene-like; DICOM only): ingest measures density on the smooth one and keeps the sharp
    one for the airway measures."""
    out: Path = Path("synthetic")
    """Output folder (relative paths are inside the work directory)."""
