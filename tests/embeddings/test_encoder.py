"""The extraction copy of the patch encoder (BatchNorm folded, channels-last) gives the embeddings
of the encoder it was made from."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctpheno.features.deep_embeddings.encoder import make_encoder
from ctpheno.features.deep_embeddings.extract import embed_patches


def _trained_like(width: int) -> torch.nn.Module:
    """An encoder whose BatchNorms carry running statistics and affine weights far from the
    identity, as after training (a fresh one's BN is close to a no-op in evaluation mode)."""
    model = make_encoder(width=width, seed=3)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.05)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.02 + 0.001)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.3)
    return model.eval()


@pytest.mark.parametrize("width", [4, 16])
def test_inference_copy_equals_the_encoder(width):
    model = _trained_like(width)
    patches = np.random.default_rng(0).random((10, 16, 16, 16), dtype=np.float32)
    ref = embed_patches(model, patches, batch_size=4)
    fast = embed_patches(model.for_inference(), patches, batch_size=4)
    assert fast.shape == ref.shape == (10, 8 * width)
    assert np.abs(ref).max() > 0.1  # the BN statistics matter: a copy that dropped them would differ
    np.testing.assert_allclose(fast, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())


def test_inference_copy_needs_evaluation_mode():
    with pytest.raises(RuntimeError, match="eval"):
        make_encoder(width=4, seed=0).for_inference()
