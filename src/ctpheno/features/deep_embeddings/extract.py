"""Per-scan embeddings: patch encoders aggregated over the lungs and zones, and the encoder registry.

A scan's embedding for region :math:`R` is the mean of its patch embeddings,

.. math:: e_R = \\frac{1}{|P_R|} \\sum_{p \\in P_R} f_\\theta(x_p),

over the grid patches :math:`P_R` whose centre lies in :math:`R` (``whole``: every lung patch;
``upper`` zones 1+4, ``middle`` 2+5, ``lower`` 3+6). A region with no patch gets no row.
The pretrained I3ResNet (``astra``) embeds the whole chest once (region ``whole``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import numpy.typing as npt
import torch

from ...config.embeddings import EmbeddingsConfig
from ...errors import FeatureExtractionError, MissingExtraError
from .encoder import make_encoder
from .patches import cut_patches, grid_centres, lung_grid, patch_regions


@dataclass
class Encoder:
    """A loaded encoder: ``kind`` is ``patch`` (lung patches) or ``chest`` (whole volume)."""

    name: str
    kind: str
    module: torch.nn.Module
    dim: int


def embed_patches(module: torch.nn.Module, patches: npt.NDArray[np.float32], *, batch_size: int = 64,
                  device: torch.device | None = None) -> npt.NDArray[np.float32]:
    """Run ``module`` on (N, P, P, P) patches in batches; returns (N, D) float32."""
    device = device or torch.device("cpu")
    outs = []
    with torch.inference_mode():
        for i in range(0, len(patches), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(patches[i:i + batch_size, None])).to(device)
            y = module(x)
            if y.ndim != 2:
                y = y.reshape(y.shape[0], -1)
            outs.append(y.float().cpu().numpy())
    return np.concatenate(outs).astype(np.float32)


def embed_lungs(hu: npt.NDArray, labels: npt.NDArray, spacing_mm: tuple[float, float, float], *,
                encoder: Encoder, cfg: EmbeddingsConfig, zones: npt.NDArray | None = None,
                device: torch.device | None = None) -> dict[str, npt.NDArray[np.float32]]:
    """Region name -> mean patch embedding (see module formula) for one scan.

    Raises :class:`~ctpheno.errors.EmptyLungMaskError` for an empty mask and
    :class:`~ctpheno.errors.FeatureExtractionError` when no patch qualifies.
    """
    grid = lung_grid(hu, labels, spacing_mm, zones=zones, target_mm=cfg.spacing_mm,
                     margin_mm=cfg.patch_size * cfg.spacing_mm / 2, hu_window=cfg.hu_window)
    centres = grid_centres(grid.lung, patch_size=cfg.patch_size, min_lung_fraction=cfg.min_lung_fraction,
                           max_patches=cfg.extract_patches_per_scan)
    if len(centres) == 0:
        raise FeatureExtractionError(
            f"no {cfg.patch_size}^3 patch at {cfg.spacing_mm} mm is at least {cfg.min_lung_fraction:g} lung "
            f"(lungs of {int(grid.lung.sum())} voxels); lower embeddings.min_lung_fraction or patch_size")
    feats = embed_patches(encoder.module, cut_patches(grid.image, centres, patch_size=cfg.patch_size),
                          device=device)
    if not np.all(np.isfinite(feats)):
        raise FeatureExtractionError(f"encoder {encoder.name!r} produced non-finite patch embeddings")
    return {region: feats[sel].mean(axis=0) for region, sel in patch_regions(grid.zones, centres).items()
            if sel.any()}


# ---------------------------------------------------------------- encoder registry
def _load_ssl(cfg: EmbeddingsConfig, checkpoint: Path | None) -> Encoder:
    from .ssl import load_trained_encoder

    if checkpoint is None:
        raise ValueError("model 'ssl' needs the trained encoder's path (models/embeddings/ssl/encoder.pt)")
    m = load_trained_encoder(checkpoint).for_inference()
    return Encoder("ssl", "patch", m, m.embedding_dim)


def _load_random(cfg: EmbeddingsConfig, checkpoint: Path | None) -> Encoder:
    m = make_encoder(width=cfg.width, seed=cfg.seed).eval().for_inference()
    return Encoder("random", "patch", m, m.embedding_dim)


def _load_torchscript(cfg: EmbeddingsConfig, checkpoint: Path | None) -> Encoder:
    path = Path(checkpoint or "")
    if not path.is_file():
        raise FileNotFoundError(f"embeddings.checkpoint {path} does not exist (TorchScript file expected)")
    try:
        m = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as err:
        raise ValueError(f"embeddings.checkpoint {path} is not a TorchScript file ({err}); save it with "
                         f"torch.jit.save(torch.jit.script(model), path)") from None
    dim = _probe_dim(m, cfg)
    return Encoder("torchscript", "patch", m, dim)


def _load_monai(cfg: EmbeddingsConfig, checkpoint: Path | None) -> Encoder:
    from monai.networks import nets

    name = cfg.monai_network or ""
    cls = getattr(nets, name, None)
    if cls is None or not isinstance(cls, type):
        raise ValueError(f"embeddings.monai_network {name!r} is not a class in monai.networks.nets")
    path = Path(checkpoint or "")
    if not path.is_file():
        raise FileNotFoundError(f"embeddings.checkpoint {path} does not exist (state dict expected)")
    m = cls(**dict(cfg.monai_args))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    m.load_state_dict(state, strict=True)
    m.eval()
    return Encoder(f"monai:{name}", "patch", m, _probe_dim(m, cfg))


def _load_astra(cfg: EmbeddingsConfig, checkpoint: Path | None) -> Encoder:
    from .pretrained import load_astra_encoder

    return Encoder("astra", "chest", load_astra_encoder(depth_first=cfg.astra_depth_first), 2048)


def _probe_dim(m: torch.nn.Module, cfg: EmbeddingsConfig) -> int:
    with torch.inference_mode():
        y = m(torch.zeros(1, 1, cfg.patch_size, cfg.patch_size, cfg.patch_size))
    return int(np.prod(y.shape[1:]))


ENCODERS: dict[str, Callable[[EmbeddingsConfig, Path | None], Encoder]] = {
    "ssl": _load_ssl, "random": _load_random, "torchscript": _load_torchscript, "monai": _load_monai,
    "astra": _load_astra,
}


def load_encoder(cfg: EmbeddingsConfig, *, checkpoint: str | Path | None = None) -> Encoder:
    """The encoder ``cfg.model`` names (``checkpoint`` defaults to ``cfg.checkpoint``)."""
    if cfg.model not in ENCODERS:
        raise ValueError(f"unknown embeddings.model {cfg.model!r}; choose from {sorted(ENCODERS)}")
    ck = checkpoint if checkpoint is not None else cfg.checkpoint
    return ENCODERS[cfg.model](cfg, Path(ck) if ck is not None else None)


__all__ = ["ENCODERS", "Encoder", "MissingExtraError", "embed_lungs", "embed_patches", "load_encoder"]
