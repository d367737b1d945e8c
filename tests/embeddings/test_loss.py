"""The scan-positive contrastive loss against its definition, and the batch layout it needs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctpheno.config.embeddings import EmbeddingsConfig
from ctpheno.features.deep_embeddings.ssl import nt_xent


def test_one_pair_per_group_equals_plain_nt_xent():
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    plain = nt_xent(z1, z2, temperature=0.3)
    grouped = nt_xent(z1, z2, temperature=0.3, groups=torch.arange(6))
    assert float(grouped) == pytest.approx(float(plain), abs=1e-6)


def test_scan_positive_loss_by_hand():
    """Two scans x two pairs: every view has 3 positives among 7 candidates (module formula)."""
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    groups = torch.tensor([0, 0, 1, 1])
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1).numpy().astype(np.float64)
    gg = np.concatenate([groups.numpy()] * 2)
    tau, losses = 0.5, []
    for i in range(8):
        others = [k for k in range(8) if k != i]
        log_den = np.log(sum(np.exp(z[i] @ z[k] / tau) for k in others))
        pos = [k for k in others if gg[k] == gg[i]]
        assert len(pos) == 3
        losses.append(-np.mean([z[i] @ z[p] / tau - log_den for p in pos]))
    got = float(nt_xent(z1, z2, temperature=tau, groups=groups))
    assert got == pytest.approx(float(np.mean(losses)), abs=1e-5)
    # uniform similarities give log(2B - 1), the value the training test checks first
    same = torch.ones(4, 3)
    assert float(nt_xent(same, same, temperature=tau, groups=groups)) == pytest.approx(np.log(7), abs=1e-6)


def test_views_per_scan_must_divide_batch():
    with pytest.raises(ValueError, match="views_per_scan"):
        EmbeddingsConfig(views_per_scan=3, batch_size=32, train_patches_per_scan=30)


def test_patch_cdf_counts_lung_voxels_below_each_edge():
    """Two 2^3 patches with known values: the target is the fraction of *lung* voxels below each edge."""
    from ctpheno.features.deep_embeddings.ssl import patch_cdf

    vals = np.array([0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7], np.float32)
    patches = np.stack([vals.reshape(2, 2, 2), vals[::-1].reshape(2, 2, 2)])
    lung = np.zeros_like(patches, dtype=bool)
    lung[0] = True                      # all 8 voxels are lung
    lung[1].reshape(-1)[:4] = True      # first four voxels: 0.7, 0.6, 0.5, 0.4
    edges = np.array([0.15, 0.45, 0.9], np.float32)
    got = patch_cdf(patches, lung, edges)
    np.testing.assert_allclose(got, [[2 / 8, 5 / 8, 1.0], [0.0, 1 / 4, 1.0]], atol=1e-7)
    # a patch with no lung voxel (a positive shifted off the lung) falls back to all its voxels
    got = patch_cdf(patches[:1], np.zeros((1, 2, 2, 2), bool), edges)
    np.testing.assert_allclose(got, [[2 / 8, 5 / 8, 1.0]], atol=1e-7)


def test_density_edges_follow_the_hu_window():
    from ctpheno.features.deep_embeddings.ssl import density_edges

    cfg = EmbeddingsConfig(hu_window=(-1000.0, 0.0), density_bins_hu=(-950.0, -500.0))
    np.testing.assert_allclose(density_edges(cfg), [0.05, 0.5], atol=1e-7)
    with pytest.raises(ValueError, match="density_bins_hu"):
        EmbeddingsConfig(density_bins_hu=(-900.0, -950.0))


def test_density_loss_is_summed_squared_error():
    from ctpheno.features.deep_embeddings.ssl import density_loss

    pred = torch.tensor([[0.1, 0.5], [0.0, 1.0]])
    target = torch.tensor([[0.0, 0.5], [0.2, 0.8]])
    # rows: 0.01 and 0.04 + 0.04 -> mean 0.045
    assert float(density_loss(pred, target)) == pytest.approx(0.045, abs=1e-7)
    assert float(density_loss(target, target)) == 0.0
