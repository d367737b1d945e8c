"""Typed configuration (pydantic models loaded from YAML under ``config/``)."""

from .base import StrictModel, apply_overrides, load_model, read_yaml, validate_model
from .common import ClusterConfig, PathsConfig
from .pipeline import PipelineConfig, load_pipeline_config, package_versions, save_resolved
from .stages import (EmbeddingsConfig, FeaturesConfig, IngestConfig, ModelsConfig, PreprocessConfig,
                     QCTConfig, RadiomicsConfig, ReportConfig, SegmentationConfig, SupervisedConfig,
                     SynthConfig, UnsupervisedConfig)

__all__ = [
    "ClusterConfig", "EmbeddingsConfig", "FeaturesConfig", "IngestConfig", "ModelsConfig", "PathsConfig",
    "PipelineConfig", "PreprocessConfig", "QCTConfig", "RadiomicsConfig", "ReportConfig",
    "SegmentationConfig", "StrictModel", "SupervisedConfig", "SynthConfig", "UnsupervisedConfig",
    "apply_overrides", "load_model", "load_pipeline_config", "package_versions", "read_yaml",
    "save_resolved", "validate_model",
]
