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
