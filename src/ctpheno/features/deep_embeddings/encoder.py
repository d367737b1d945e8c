"""The patch encoder: a small 3D CNN (plain PyTorch) and its contrastive projection head.

Architecture (``width`` = w, input 1 x P^3, P = patch edge)::

    stem    conv3^3(1 -> w)            BN ReLU     P^3
    stage1  conv3^3(w -> 2w), stride 2 BN ReLU     (P/2)^3
            conv3^3(2w -> 2w)          BN ReLU
    stage2  conv3^3(2w -> 4w), stride 2 BN ReLU    (P/4)^3
            conv3^3(4w -> 4w)          BN ReLU
    stage3  conv3^3(4w -> 8w), stride 2 BN ReLU    (P/8)^3
    pool    spatial mean -> 8w          (the patch embedding)
    head    linear 8w -> 8w, ReLU, linear 8w -> 64  (training only; SimCLR projection [1]_)
    density linear 8w -> K                         (training only; the patch's cumulative HU histogram)

BatchNorm is used (not instance/group norm) so the absolute density of a patch survives
normalisation in evaluation mode: density is the main emphysema cue.

References
----------
.. [1] Chen T, Kornblith S, Norouzi M, Hinton G. A simple framework for contrastive learning of
   visual representations (SimCLR). ICML 2020.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

PROJECTION_DIM = 64


def _block(cin: int, cout: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm3d(cout),
            nn.ReLU(inplace=True)]


def _check_patches(x: torch.Tensor) -> None:
    if x.ndim != 5 or x.shape[1] != 1:
        raise ValueError(f"PatchEncoder expects (B, 1, P, P, P) patches; got {tuple(x.shape)}")


class PatchEncoder(nn.Module):
    """3D CNN mapping ``(B, 1, P, P, P)`` patches in [0, 1] to ``(B, 8 * width)`` embeddings."""

    def __init__(self, *, width: int = 16) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1; got {width}")
        w = int(width)
        self.width = w
        self.embedding_dim = 8 * w
        self.features = nn.Sequential(
            *_block(1, w),
            *_block(w, 2 * w, 2), *_block(2 * w, 2 * w),
            *_block(2 * w, 4 * w, 2), *_block(4 * w, 4 * w),
            *_block(4 * w, 8 * w, 2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_patches(x)
        return self.features(x).mean(dim=(2, 3, 4))

    def for_inference(self) -> "InferencePatchEncoder":
        """An evaluation-only copy for extraction: the same embeddings up to float rounding.

        Each BatchNorm is folded into the convolution before it (its running statistics: the
        evaluation-mode BN is an affine map per channel), and activations are kept channels-last
        (``torch.channels_last_3d``), the layout oneDNN's CPU 3D convolutions run fastest in.
        About 40 % less CPU time per patch; outputs agree within ~1e-6 relative.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if self.training:
            raise RuntimeError("for_inference folds the running BatchNorm statistics: call .eval() first")
        layers = list(self.features)
        fused: list[nn.Module] = []
        for layer in layers:
            if isinstance(layer, nn.BatchNorm3d):
                fused[-1] = fuse_conv_bn_eval(fused[-1], layer)  # type: ignore[arg-type]
            else:
                fused.append(copy.deepcopy(layer))
        return InferencePatchEncoder(nn.Sequential(*fused), width=self.width).eval()


class InferencePatchEncoder(nn.Module):
    """:meth:`PatchEncoder.for_inference`: convolutions with BatchNorm folded in, channels-last;
    no training (it has no BatchNorm to update)."""

    def __init__(self, features: nn.Sequential, *, width: int) -> None:
        super().__init__()
        self.features = features.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        self.width = width
        self.embedding_dim = 8 * width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_patches(x)
        return self.features(x.contiguous(memory_format=torch.channels_last_3d)).mean(dim=(2, 3, 4))


class ProjectionHead(nn.Module):
    """Two-layer MLP used by the contrastive loss only (discarded after training)."""

    def __init__(self, dim: int, out_dim: int = PROJECTION_DIM) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DensityHead(nn.Module):
    """Linear map from the patch embedding to its cumulative HU histogram (training only).

    Being linear, it makes the training target -- the attenuation distribution of the patch --
    a linear read-out of the embedding, which is what a linear probe downstream relies on."""

    def __init__(self, dim: int, n_edges: int) -> None:
        super().__init__()
        self.net = nn.Linear(dim, n_edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def make_encoder(*, width: int, seed: int) -> PatchEncoder:
    """A freshly initialised encoder; the same ``seed`` gives the same weights (the ``random``
    baseline is exactly this, in evaluation mode)."""
    gen_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(int(seed))
        return PatchEncoder(width=width)
    finally:
        torch.random.set_rng_state(gen_state)
