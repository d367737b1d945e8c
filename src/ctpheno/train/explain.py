"""Explainability: held-out permutation importance, TreeSHAP, partial dependence."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.pipeline import Pipeline

from .features import transformed_names
from .metrics import MetricFn
from .models import Splits, predict


def permutation_importance_cv(
    fitted: list[Pipeline],
    X: pd.DataFrame,
    y: npt.NDArray,
    task: str,
    splits: Splits,
    score: MetricFn,
    *,
    n_repeats: int,
    seed: int,
) -> pd.DataFrame:
    """Drop in held-out score when one raw feature is shuffled within a test fold (Breiman 2001).

    Uses the repeat-0 pipelines on their own test folds; all permuted copies of a fold are
    predicted in one batch. Returns feature, importance_mean, importance_sd (over folds x shuffles).
    """
    rng = np.random.default_rng(seed)
    cols = list(X.columns)
    drops = np.zeros((len(cols), 0))
    for pipe, (_, te) in zip(fitted, splits.folds[0]):
        if len(te) < 3:
            continue
        xt = X.iloc[te].to_numpy(dtype=float)
        yt = y[te]
        base = score(yt, predict(pipe, pd.DataFrame(xt, columns=cols), task))
        big = np.repeat(xt[None, None], len(cols), axis=0).repeat(n_repeats, axis=1)  # (F, R, m, F)
        for j in range(len(cols)):
            for r in range(n_repeats):
                big[j, r, :, j] = xt[rng.permutation(len(te)), j]
        p = predict(pipe, pd.DataFrame(big.reshape(-1, len(cols)), columns=cols), task)
        p = p.reshape(len(cols), n_repeats, len(te))
        d = np.array([[base - score(yt, p[j, r]) for r in range(n_repeats)] for j in range(len(cols))])
        drops = np.concatenate([drops, d], axis=1)
    return pd.DataFrame(
        {
            "feature": cols,
            "importance_mean": np.nanmean(drops, axis=1),
            "importance_sd": np.nanstd(drops, axis=1),
        }
    ).sort_values("importance_mean", ascending=False)


def tree_shap_importance(pipe: Pipeline, X: pd.DataFrame) -> pd.DataFrame:
    """Mean |SHAP| per feature of a fitted LightGBM pipeline (exact TreeSHAP, ``pred_contrib=True``).

    Lundberg et al., Nat Mach Intell 2020;2:56-67. Returns feature, mean_abs_shap.
    """
    steps = pipe[:-1]
    xt = steps.transform(X)
    contrib = np.asarray(pipe.named_steps["model"].predict(xt, pred_contrib=True))
    names = transformed_names(pipe)
    return pd.DataFrame(
        {"feature": names, "mean_abs_shap": np.abs(contrib[:, : len(names)]).mean(axis=0)}
    ).sort_values("mean_abs_shap", ascending=False)


def partial_dependence_1d(
    pipe: Pipeline, X: pd.DataFrame, feature: str, task: str, *, n_grid: int = 20
) -> pd.DataFrame:
    """Average prediction with ``feature`` set to each grid value (Friedman 2001, Ann Stat 29:1189).

    The grid spans the 5th-95th percentile of the observed values. Returns value, prediction.
    """
    v = X[feature].dropna().to_numpy(float)
    grid = np.unique(np.quantile(v, np.linspace(0.05, 0.95, n_grid)))
    big = pd.concat([X.assign(**{feature: g}) for g in grid], ignore_index=True)
    p = predict(pipe, big, task).reshape(len(grid), len(X)).mean(axis=1)
    return pd.DataFrame({"value": grid, "prediction": p})
