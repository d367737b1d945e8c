"""Per-stage configuration models, re-exported (each lives in its stage's own module here)."""

from .embeddings import EmbeddingsConfig
from .export import ExportConfig
from .features import FeaturesConfig, QCTConfig, RadiomicsConfig
from .ingest import IngestConfig
from .models import ModelsConfig, ReportConfig, SupervisedConfig, UnsupervisedConfig
from .preprocess import PreprocessConfig, SegmentationConfig
from .synth import SynthConfig

__all__ = ["EmbeddingsConfig", "ExportConfig", "FeaturesConfig", "IngestConfig", "ModelsConfig",
           "PreprocessConfig", "QCTConfig", "RadiomicsConfig", "ReportConfig", "SegmentationConfig",
           "SupervisedConfig", "SynthConfig", "UnsupervisedConfig"]
