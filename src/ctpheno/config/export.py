"""Export configuration (owned by ctpheno.export)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field

from .base import StrictModel

ExportFormat = Literal["nifti", "dicom-seg", "dicom-sr", "ome-zarr"]
EXPORT_FORMATS: tuple[str, ...] = ("nifti", "dicom-seg", "dicom-sr", "ome-zarr")
"""Every export format, in the order they are written (the SR references the SEG)."""


class ExportConfig(StrictModel):
    """Results in the formats other tools read (``ctpheno export``; docs/export.md)."""

    enabled: bool = False
    """Run the ``export`` stage in ``ctpheno run`` (``ctpheno export`` and ``--stages …,export`` always
    run it)."""
    out: Optional[Path] = None
    """Folder of the exports, one sub-folder per scan id (required to export). DICOM SEG and SR carry the
    source series' patient and study attributes, so this folder belongs with the source data: it may not
    lie inside the pseudonymised work directory when DICOM formats are written."""
    formats: list[ExportFormat] = Field(default_factory=lambda: list(EXPORT_FORMATS))
    """Formats to write: ``nifti`` (label maps + label tables on the original grid), ``dicom-seg``,
    ``dicom-sr`` (TID 1500 QCT measurements; needs ``dicom-seg``), ``ome-zarr`` (image + labels)."""
