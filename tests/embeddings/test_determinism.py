"""Same seed -> same encoder and embeddings on CPU; a resumed run equals an uninterrupted one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ctpheno.features.deep_embeddings.extract import embed_lungs, load_encoder
from ctpheno.features.deep_embeddings.patches import lung_grid
from ctpheno.features.deep_embeddings.ssl import train_encoder, training_scan

TINY = dict(epochs=2, train_patches_per_scan=8, batch_size=8)


@pytest.fixture(scope="module")
def tiny_scans(cohort, fast_cfg):
    return [training_scan(s.scan_id, lung_grid(s.hu, s.labels, s.spacing_mm, target_mm=fast_cfg.spacing_mm,
                                               margin_mm=24.0), patch_size=fast_cfg.patch_size,
                          min_lung_fraction=0.5) for s in cohort[:2]]


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_same_seed_same_embeddings(tiny_scans, cohort, fast_cfg, tmp_path):
    """Tolerance: weights bit-identical; embeddings within 1e-6 absolute."""
    cfg = fast_cfg.model_copy(update=TINY)
    a = train_encoder(tiny_scans, cfg=cfg, out_dir=tmp_path / "a")
    b = train_encoder(tiny_scans, cfg=cfg, out_dir=tmp_path / "b")
    wa, wb = _weights(a.encoder_path), _weights(b.encoder_path)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    s = cohort[3]
    ea = embed_lungs(s.hu, s.labels, s.spacing_mm, encoder=load_encoder(cfg, checkpoint=a.encoder_path), cfg=cfg)
    eb = embed_lungs(s.hu, s.labels, s.spacing_mm, encoder=load_encoder(cfg, checkpoint=b.encoder_path), cfg=cfg)
    np.testing.assert_allclose(ea["whole"], eb["whole"], atol=1e-6, rtol=0)
    c = train_encoder(tiny_scans, cfg=cfg.model_copy(update={"seed": 1}), out_dir=tmp_path / "c")
    assert not torch.equal(_weights(c.encoder_path)["features.0.weight"], wa["features.0.weight"])


def test_resume_equals_uninterrupted(tiny_scans, fast_cfg, tmp_path):
    full = train_encoder(tiny_scans, cfg=fast_cfg.model_copy(update=TINY), out_dir=tmp_path / "full")
    part = fast_cfg.model_copy(update={**TINY, "epochs": 1})
    train_encoder(tiny_scans, cfg=part, out_dir=tmp_path / "resumed")
    # the 1-epoch run's checkpoint has other settings (epochs): make it look like an interrupted
    # 2-epoch run by re-saving it with the 2-epoch settings, then resume
    from ctpheno.features.deep_embeddings.ssl import train_settings

    ck = tmp_path / "resumed" / "checkpoints" / "epoch_000.pt"
    state = torch.load(ck, map_location="cpu", weights_only=False)
    state["settings"] = train_settings(fast_cfg.model_copy(update=TINY))
    torch.save(state, ck)
    (tmp_path / "resumed" / "encoder.pt").unlink()
    res = train_encoder(tiny_scans, cfg=fast_cfg.model_copy(update=TINY), out_dir=tmp_path / "resumed")
    assert res.epochs_run == 1
    wf, wr = _weights(full.encoder_path), _weights(res.encoder_path)
    assert all(torch.allclose(wf[k].float(), wr[k].float(), atol=1e-6) for k in wf)
    assert res.losses == pytest.approx(full.losses, abs=1e-6)
