"""Metrics, bootstrap confidence intervals and paired tests for cross-validated predictions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from scipy import stats

Arr = npt.NDArray[np.float64]


def r2(y: Arr, p: Arr) -> float:
    """Coefficient of determination :math:`1 - \\sum (y-\\hat y)^2 / \\sum (y-\\bar y)^2`."""
    ss = float(np.sum((y - y.mean()) ** 2))
    return float("nan") if ss == 0 else 1.0 - float(np.sum((y - p) ** 2)) / ss


def mae(y: Arr, p: Arr) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(y - p)))


def auc(y: Arr, score: Arr) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count 1/2); NaN with one class."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = stats.rankdata(score)
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def balanced_accuracy(y: Arr, pred: Arr) -> float:
    """Mean per-class recall over the classes present in ``y``."""
    classes = np.unique(y)
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def exact_accuracy(y: Arr, pred: Arr) -> float:
    """Fraction of exactly correct stages."""
    return float(np.mean(np.asarray(y) == np.asarray(pred)))


def within_one_accuracy(y: Arr, pred: Arr) -> float:
    """Fraction of stages predicted within one of the truth (González et al., AJRCCM 2018;197:193-203)."""
    return float(np.mean(np.abs(np.asarray(y) - np.asarray(pred)) <= 1))


def quadratic_kappa(y: Arr, pred: Arr, *, n_classes: int = 5) -> float:
    """Cohen's kappa with quadratic weights :math:`w_{ij} = (i-j)^2/(K-1)^2` (ordinal agreement)."""
    y, pred = np.asarray(y, int), np.asarray(pred, int)
    o = np.zeros((n_classes, n_classes))
    np.add.at(o, (y, pred), 1.0)
    e = np.outer(o.sum(1), o.sum(0)) / max(o.sum(), 1.0)
    i, j = np.indices(o.shape)
    w = (i - j) ** 2 / (n_classes - 1) ** 2
    den = float((w * e).sum())
    return float("nan") if den == 0 else 1.0 - float((w * o).sum()) / den


def c_index(y: Arr, p: Arr) -> float:
    """Harrell's concordance of predicted and observed progression (no censoring).

    Fraction of comparable pairs (:math:`y_i \\ne y_j`) ordered the same way by ``p``; ties in
    ``p`` count 1/2 (Harrell et al., Stat Med 1996;15:361-387).
    """
    y, p = np.asarray(y, float), np.asarray(p, float)
    dy = np.sign(y[:, None] - y[None, :])
    dp = np.sign(p[:, None] - p[None, :])
    comp = dy != 0
    n = comp.sum()
    return float("nan") if n == 0 else float(((dy == dp) & comp).sum() + 0.5 * ((dp == 0) & comp).sum()) / n


MetricFn = Callable[[Arr, Arr], float]

TASK_METRICS: dict[str, dict[str, MetricFn]] = {
    "regression": {"r2": r2, "mae": mae},
    "progression": {"r2": r2, "mae": mae, "c_index": c_index},
    "binary": {"auc": auc, "balanced_accuracy": lambda y, s: balanced_accuracy(y, (s >= 0.5).astype(float))},
    "ordinal": {
        "exact_accuracy": lambda y, p: exact_accuracy(y, _stage(p)),
        "within_one_accuracy": lambda y, p: within_one_accuracy(y, _stage(p)),
        "balanced_accuracy": lambda y, p: balanced_accuracy(y, _stage(p)),
        "quadratic_kappa": lambda y, p: quadratic_kappa(y, _stage(p)),
        "mae": mae,
    },
}
"""Metrics per task; functions take (truth, prediction) for one set of subjects."""
PRIMARY = {"regression": "r2", "progression": "r2", "binary": "auc", "ordinal": "within_one_accuracy"}
"""Metric used for model comparison per task."""


def _stage(p: Arr) -> Arr:
    return np.clip(np.rint(p), 0, 4)


def ari(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Adjusted Rand index (Hubert & Arabie, J Classif 1985;2:193-218) from the contingency table.

    .. math:: ARI = \\frac{\\sum_{ij}\\binom{n_{ij}}{2} - E}
              {\\tfrac12(\\sum_i\\binom{a_i}{2} + \\sum_j\\binom{b_j}{2}) - E},
              \\quad E = \\sum_i\\binom{a_i}{2}\\sum_j\\binom{b_j}{2}/\\binom{n}{2}
    """
    _, ia = np.unique(np.asarray(a), return_inverse=True)
    _, ib = np.unique(np.asarray(b), return_inverse=True)
    n = ia.size
    c = np.bincount(ia * (ib.max() + 1) + ib, minlength=(ia.max() + 1) * (ib.max() + 1))
    comb = lambda x: (x * (x - 1) / 2.0).sum()
    sij, sa, sb = comb(c), comb(np.bincount(ia)), comb(np.bincount(ib))
    expected = sa * sb / (n * (n - 1) / 2.0) if n > 1 else 0.0
    den = 0.5 * (sa + sb) - expected
    return 1.0 if den == 0 else float((sij - expected) / den)


def bootstrap_indices(n: int, n_boot: int, *, seed: int) -> npt.NDArray[np.int64]:
    """(n_boot, n) subject indices drawn with replacement, shared across models for paired CIs."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def score_with_ci(
    fn: MetricFn, y: Arr, preds: Arr, boot: npt.NDArray[np.int64], *, level: float = 0.95
) -> tuple[float, float, float, Arr]:
    """Metric averaged over CV repeats, with a percentile bootstrap CI over subjects.

    Parameters
    ----------
    y : (n,) truth.   preds : (n_repeats, n) out-of-fold predictions.   boot : (B, n) indices.

    Returns
    -------
    estimate, lower, upper, and the (B,) bootstrap distribution (for paired differences).
    """
    est = float(np.nanmean([fn(y, p) for p in preds]))
    dist = np.array([np.nanmean([fn(y[b], p[b]) for p in preds]) for b in boot])
    a = (1.0 - level) / 2.0
    lo, hi = np.nanquantile(dist, [a, 1.0 - a]) if np.isfinite(dist).any() else (np.nan, np.nan)
    return est, float(lo), float(hi), dist


def corrected_ttest(diffs: Arr, *, n_train: int, n_test: int) -> tuple[float, float]:
    """Nadeau & Bengio's corrected resampled t-test (Machine Learning 2003;52:239-281).

    .. math:: t = \\bar d / \\sqrt{(1/J + n_{test}/n_{train})\\, s_d^2}

    over the J per-fold score differences of two models evaluated on the same folds; two-sided
    p-value from :math:`t_{J-1}`. Returns (t, p); NaN when undefined.
    """
    d = np.asarray(diffs, float)
    d = d[np.isfinite(d)]
    j = d.size
    if j < 2:
        return float("nan"), float("nan")
    var = d.var(ddof=1)
    if var == 0:
        return (float("nan"), float("nan")) if d.mean() == 0 else (float(np.sign(d.mean()) * np.inf), 0.0)
    t = d.mean() / np.sqrt((1.0 / j + n_test / n_train) * var)
    return float(t), float(2 * stats.t.sf(abs(t), j - 1))
