import numpy as np
import pytest
from sklearn.metrics import (
    adjusted_rand_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
)

from ctpheno.train.metrics import (
    ari,
    auc,
    balanced_accuracy,
    bootstrap_indices,
    c_index,
    corrected_ttest,
    mae,
    quadratic_kappa,
    r2,
    score_with_ci,
    within_one_accuracy,
)

rng = np.random.default_rng(0)
Y = rng.normal(size=40)
P = Y + rng.normal(size=40)
B = (Y > 0).astype(float)
S = np.round(np.clip(Y + 2, 0, 4))
SP = np.clip(S + rng.integers(-1, 2, 40), 0, 4)


def test_metrics_match_sklearn():
    assert r2(Y, P) == pytest.approx(r2_score(Y, P))
    assert mae(Y, P) == pytest.approx(mean_absolute_error(Y, P))
    assert auc(B, P) == pytest.approx(roc_auc_score(B, P))
    assert balanced_accuracy(S, SP) == pytest.approx(balanced_accuracy_score(S, SP))
    assert quadratic_kappa(S, SP) == pytest.approx(
        cohen_kappa_score(S, SP, weights="quadratic", labels=range(5))
    )
    a, b = rng.integers(0, 4, 50), rng.integers(0, 3, 50)
    assert ari(a, b) == pytest.approx(adjusted_rand_score(a, b))


def test_auc_ties_and_single_class():
    assert auc(np.array([0, 1, 0, 1.0]), np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert np.isnan(auc(np.ones(4), np.arange(4.0)))


def test_within_one_and_c_index_by_hand():
    assert within_one_accuracy(np.array([0, 1, 2, 4]), np.array([2, 1, 3, 4])) == 0.75
    # pairs (y): (1,2) concordant, (1,3) concordant, (2,3) discordant -> 2/3
    assert c_index(np.array([1.0, 2, 3]), np.array([1.0, 3, 2])) == pytest.approx(2 / 3)
    # tie in prediction counts 1/2
    assert c_index(np.array([1.0, 2]), np.array([5.0, 5])) == 0.5


def test_corrected_ttest_formula():
    d = np.array([0.1, 0.2, 0.0, 0.15, 0.05])
    t, p = corrected_ttest(d, n_train=80, n_test=20)
    expected = d.mean() / np.sqrt((1 / 5 + 20 / 80) * d.var(ddof=1))
    assert t == pytest.approx(expected)
    assert 0 < p < 1
    assert corrected_ttest(np.zeros(5), n_train=8, n_test=2) != corrected_ttest(d, n_train=8, n_test=2)


def test_bootstrap_ci_covers_estimate_and_shrinks_with_n():
    boot = bootstrap_indices(40, 300, seed=1)
    est, lo, hi, dist = score_with_ci(r2, Y, P[None], boot)
    assert lo < est < hi and dist.shape == (300,)
    big_y = rng.normal(size=400)
    big_p = big_y + rng.normal(size=400)
    _, lo2, hi2, _ = score_with_ci(r2, big_y, big_p[None], bootstrap_indices(400, 300, seed=1))
    assert hi2 - lo2 < hi - lo
