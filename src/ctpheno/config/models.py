"""Clustering, supervised-model and report configuration (owned by ctpheno.train / ctpheno.eval)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, conint

from .base import StrictModel


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
