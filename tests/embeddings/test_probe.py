"""Acceptance: a linear probe on the SSL embeddings beats the same network with random weights.

Held-out protocol (``ctpheno.eval.probe``): 48 demo-size phantoms (4 subtypes x 12, emphysema
fraction 0 or 0.05-0.40), 4-fold cross-validation repeated over 5 shuffles (every scan is predicted
by a probe fitted on the other 36; scores are averaged over the shuffles). The encoder is trained
on the cohort without labels, as the pipeline does. The baseline is the same architecture with random weights, averaged
over three initialisations (seeds 0, 1, 2), so one lucky or unlucky draw does not decide the test.

Margins asserted (measured values in docs/embeddings.md; seed 0 measured 0.945 vs a random mean of
0.334 for the fraction and 0.892 vs 0.644 for the subtype):

* emphysema fraction, ridge on the standardised whole-lung embedding: R2(ssl) >= 0.85 and
  R2(ssl) >= mean R2(random) + 0.30;
* subtype (none / centrilobular / panlobular / paraseptal), logistic regression on the
  standardised whole + upper + middle + lower embeddings: accuracy(ssl) >= 0.75 and
  accuracy(ssl) >= mean accuracy(random) + 0.10.

The contrastive term starts at log(2B - 1) (uniform similarities) and must fall; the density
term (squared error of the patch's cumulative HU histogram) must fall to under half its first
epoch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.eval.probe import embed_cohort, probe_scores, train_probe_encoder

pytestmark = pytest.mark.slow  # a module-scoped pipeline run: scheduled first (tests/conftest.py)


@pytest.fixture(scope="module")
def trained(probe_cohort, fast_cfg, tmp_path_factory):
    import torch

    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("ssl")
    return train_probe_encoder(probe_cohort, fast_cfg, out), out


def _scores(embs, cohort) -> tuple[float, float]:
    s = probe_scores(embs, [c.fraction for c in cohort], [c.subtype for c in cohort])
    return s.fraction_r2, s.subtype_accuracy


def test_training_writes_curve_card_and_checkpoints(trained, probe_cohort, fast_cfg):
    result, out = trained
    assert (out / "encoder.pt").is_file() and (out / "MODEL_CARD.md").is_file()
    assert (out / "loss.png").stat().st_size > 1000
    curve = pd.read_csv(out / "loss.csv")
    steps = (len(probe_cohort) * fast_cfg.train_patches_per_scan) // fast_cfg.batch_size
    assert len(curve) == steps * fast_cfg.epochs
    assert list(curve.columns) == ["epoch", "step", "loss", "contrastive", "density", "lr"]
    assert len(list((out / "checkpoints").glob("epoch_*.pt"))) == fast_cfg.epochs
    np.testing.assert_allclose(curve["loss"], curve["contrastive"] + fast_cfg.density_weight * curve["density"],
                               rtol=1e-5)
    by_epoch = curve.groupby("epoch")[["loss", "contrastive", "density"]].mean()
    # InfoNCE with 2B-1 candidates starts near log(2B-1) and must go down
    assert by_epoch["contrastive"].iloc[0] == pytest.approx(np.log(2 * fast_cfg.batch_size - 1), abs=0.5)
    assert by_epoch["contrastive"].iloc[-1] < by_epoch["contrastive"].iloc[0] - 0.03
    assert by_epoch["density"].iloc[-1] < 0.5 * by_epoch["density"].iloc[0]
    assert result.losses == pytest.approx(by_epoch["loss"].tolist(), rel=1e-6)
    card = (out / "MODEL_CARD.md").read_text()
    assert "InfoNCE" in card and "temperature" in card and f"{len(probe_cohort)} scans" in card
    assert "cumulative histogram" in card


def test_ssl_probe_beats_random_weights(trained, probe_cohort, fast_cfg):
    _, out = trained
    ssl = embed_cohort(probe_cohort, fast_cfg, out / "encoder.pt")
    r2_ssl, acc_ssl = _scores(ssl, probe_cohort)
    rnd = [_scores(embed_cohort(probe_cohort, fast_cfg.model_copy(update={"model": "random", "seed": seed})),
                   probe_cohort) for seed in (0, 1, 2)]
    r2_rnd, acc_rnd = (float(np.mean(v)) for v in zip(*rnd))
    print(f"\nemphysema fraction R2: ssl {r2_ssl:.3f} random {r2_rnd:.3f} {[round(r, 3) for r, _ in rnd]}; "
          f"subtype accuracy: ssl {acc_ssl:.3f} random {acc_rnd:.3f} {[round(a, 3) for _, a in rnd]}")
    assert r2_ssl >= 0.85
    assert r2_ssl >= r2_rnd + 0.30
    assert acc_ssl >= 0.75
    assert acc_ssl >= acc_rnd + 0.10
    assert ssl[0]["whole"].shape == (8 * fast_cfg.width,)
