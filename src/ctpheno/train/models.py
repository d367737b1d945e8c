"""Model registry, CV splits and cross-validated predictions (no I/O)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectKBest, f_classif, f_regression
from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline

from ..config.models import LightGBMConfig, PreprocessingConfig
from .features import preprocessor

TASKS: dict[str, str] = {
    "fev1_pct_pred": "regression",
    "fev1_fvc": "regression",
    "gold_stage": "ordinal",
    "copd": "binary",
    "fev1_decline_ml_per_year": "progression",
}
"""Target -> task; ordinal GOLD is fitted as a regression on the stage and rounded to 0-4."""


class ScreenedLinear(BaseEstimator):
    """Univariate screening + ridge (or L2 logistic), the number of features chosen by inner CV.

    For each ``k`` in ``ks`` (0 = all features) the top-``k`` features by univariate F statistic
    (``f_regression`` / ``f_classif``) feed a RidgeCV (alpha by efficient LOO) or an L2
    logistic regression; the ``k`` with the best inner 3-fold score (R^2 / AUC) is refitted on all
    training rows. With tens of subjects and hundreds of correlated features, this is what keeps
    a linear model from fitting noise (Hastie et al., *Elements of Statistical Learning*, 7.10.2:
    screening belongs inside the cross-validation loop, as here).
    """

    def __init__(
        self, task: str = "regression", ks: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 0), seed: int = 0
    ) -> None:
        self.task = task
        self.ks = ks
        self.seed = seed

    def _est(self) -> BaseEstimator:
        if self.task == "binary":
            return LogisticRegression(C=0.5, max_iter=5000)
        return RidgeCV(alphas=np.logspace(-2, 4, 25))

    def _fit_k(self, X: npt.NDArray, y: npt.NDArray, k: int) -> tuple[SelectKBest, BaseEstimator]:
        score = f_classif if self.task == "binary" else f_regression
        sel = SelectKBest(score, k=min(k, X.shape[1]) if k else "all").fit(X, y)
        return sel, self._est().fit(sel.transform(X), y)

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> "ScreenedLinear":
        from .metrics import auc, r2

        X, y = np.asarray(X, float), np.asarray(y, float)
        ks = sorted({min(k, X.shape[1]) if k else X.shape[1] for k in self.ks})
        if self.task == "binary":
            self.classes_ = np.unique(y)
            n_in = int(min(3, np.bincount(y.astype(int)).min()))
            cv = StratifiedKFold(n_in, shuffle=True, random_state=self.seed) if n_in >= 2 else None
        else:
            cv = KFold(min(3, len(y)), shuffle=True, random_state=self.seed) if len(y) >= 6 else None
        best = ks[-1]
        if cv is not None and len(ks) > 1:
            scores = []
            for k in ks:
                s = []
                for tr, te in cv.split(X, y):
                    sel, est = self._fit_k(X[tr], y[tr], k)
                    xt = sel.transform(X[te])
                    p = est.predict_proba(xt)[:, 1] if self.task == "binary" else est.predict(xt)
                    s.append(auc(y[te], p) if self.task == "binary" else r2(y[te], p))
                scores.append(np.nanmean(s))
            best = ks[int(np.nanargmax(scores))] if np.isfinite(scores).any() else ks[-1]
        self.k_ = best
        self.selector_, self.estimator_ = self._fit_k(X, y, best)
        return self

    def predict(self, X: npt.ArrayLike) -> npt.NDArray:
        return self.estimator_.predict(self.selector_.transform(np.asarray(X, float)))

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray:
        return self.estimator_.predict_proba(self.selector_.transform(np.asarray(X, float)))


ENET_L1_RATIOS = (0.1, 0.5, 0.9, 1.0)
"""Elastic-net mixes tried by the inner CV (1.0 = lasso)."""
ENET_PATH_EPS = 1e-2
"""The penalty path ends at this fraction of the smallest penalty that zeroes every coefficient
(scikit-learn's default is 1e-3). With tens of subjects and hundreds of features the weakest
penalties leave the model unpenalised; the inner CV does not choose them, yet they are most of
the path's time (4x on the demo's 512 embedding columns, same cross-validated R^2; docs/results.md)."""
ENET_N_ALPHAS = 30
"""Penalties on the path (log-spaced; scikit-learn's default 100): the inner CV's choice and the
cross-validated R^2 move by less than 0.005 on the demo cohort, at 60 % of the time."""
ENET_LOGISTIC_TOL = 1e-3
"""Stopping tolerance of the elastic-net logistic regression (saga; scikit-learn's default 1e-4):
2-3x faster on the demo cohort with the same or higher cross-validated AUC."""


class ElasticNetModel(BaseEstimator):
    """Elastic net with penalty strength and L1/L2 mix chosen by inner CV on the training rows.

    Zou & Hastie, J R Stat Soc B 2005;67:301-320. With tens of subjects and many correlated
    features the L1 part selects jointly (a weak predictor that adds to a strong one survives,
    which univariate screening misses) and the L2 part keeps correlated groups together.
    Regression: ``ElasticNetCV`` (mixes :data:`ENET_L1_RATIOS`); binary: elastic-net logistic
    regression (``saga``) scored by AUC. The inner fold count shrinks to what the training rows
    allow (5 for regression, 3 for binary, fewer on tiny cohorts); with too few rows for any
    inner split, a fixed mix (0.5) and penalty is fitted instead.
    """

    def __init__(self, task: str = "regression", seed: int = 0) -> None:
        self.task = task
        self.seed = seed

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> "ElasticNetModel":
        import inspect

        from sklearn.linear_model import ElasticNet, ElasticNetCV, LogisticRegressionCV

        X, y = np.asarray(X, float), np.asarray(y, float)
        if self.task == "binary":
            self.classes_ = np.unique(y)
            n_cv = int(min(3, np.bincount(y.astype(int)).min()))
            if n_cv >= 2:
                kw: dict = dict(Cs=8, cv=StratifiedKFold(n_cv, shuffle=True, random_state=self.seed),
                                solver="saga", l1_ratios=[0.1, 0.5, 0.9], scoring="roc_auc", max_iter=5000,
                                tol=ENET_LOGISTIC_TOL, random_state=self.seed)
                params = inspect.signature(LogisticRegressionCV).parameters
                if params["penalty"].default != "deprecated":
                    kw["penalty"] = "elasticnet"  # scikit-learn < 1.8; later ones infer it from l1_ratios
                if "use_legacy_attributes" in params:
                    kw["use_legacy_attributes"] = False
                self.estimator_ = LogisticRegressionCV(**kw).fit(X, y)
            else:
                self.estimator_ = LogisticRegression(C=0.5, max_iter=5000).fit(X, y)
        else:
            n_cv = int(min(5, len(y) // 3))
            if n_cv >= 2:
                cv = KFold(n_cv, shuffle=True, random_state=self.seed)
                # newer scikit-learn takes the number of penalties as `alphas` (default 100), older as `n_alphas`
                default = inspect.signature(ElasticNetCV).parameters["alphas"].default
                n_alphas = "alphas" if isinstance(default, int) else "n_alphas"
                self.estimator_ = ElasticNetCV(l1_ratio=list(ENET_L1_RATIOS), eps=ENET_PATH_EPS, cv=cv,
                                               max_iter=20000, **{n_alphas: ENET_N_ALPHAS}).fit(X, y)
            else:
                self.estimator_ = ElasticNet(alpha=1.0, l1_ratio=0.5, max_iter=20000).fit(X, y)
        return self

    @property
    def coef_(self) -> npt.NDArray:
        return np.ravel(self.estimator_.coef_)

    def predict(self, X: npt.ArrayLike) -> npt.NDArray:
        return self.estimator_.predict(np.asarray(X, float))

    def predict_proba(self, X: npt.ArrayLike) -> npt.NDArray:
        return self.estimator_.predict_proba(np.asarray(X, float))


def make_model(
    name: str,
    task: str,
    *,
    pre: PreprocessingConfig,
    lgbm: LightGBMConfig,
    seed: int,
    screen_ks: tuple[int, ...] = (1, 2, 3, 5, 10, 20, 0),
) -> Pipeline:
    """A preprocessing + estimator pipeline for ``name`` in {linear, elastic_net, lightgbm, random_forest}."""
    binary = task == "binary"
    if name == "elastic_net":
        est = ElasticNetModel(task="binary" if binary else "regression", seed=seed)
        return Pipeline(preprocessor(pre) + [("model", est)])
    if name == "linear":
        est = ScreenedLinear(task="binary" if binary else "regression", ks=tuple(screen_ks), seed=seed)
        return Pipeline(preprocessor(pre) + [("model", est)])
    if name == "lightgbm":
        import lightgbm as lgb

        kw = dict(
            n_estimators=lgbm.n_estimators,
            learning_rate=lgbm.learning_rate,
            num_leaves=lgbm.num_leaves,
            min_child_samples=lgbm.min_child_samples,
            reg_lambda=lgbm.reg_lambda,
            colsample_bytree=lgbm.colsample_bytree,
            subsample=0.8,
            subsample_freq=1,
            min_data_in_bin=1,
            random_state=seed,
            n_jobs=1,
            verbose=-1,
        )
        est = lgb.LGBMClassifier(**kw) if binary else lgb.LGBMRegressor(**kw)
        return Pipeline(preprocessor(pre, scale=False) + [("model", est)])
    if name == "random_forest":
        kw = dict(n_estimators=200, min_samples_leaf=2, max_features="sqrt", random_state=seed, n_jobs=1)
        est = RandomForestClassifier(**kw) if binary else RandomForestRegressor(**kw)
        return Pipeline(preprocessor(pre, scale=False) + [("model", est)])
    raise ValueError(f"unknown model {name!r}; use linear, elastic_net, lightgbm or random_forest")


def predict(pipe: Pipeline, X: pd.DataFrame | npt.NDArray, task: str) -> npt.NDArray[np.float64]:
    """Continuous prediction: probability of the positive class for binary tasks."""
    if task == "binary":
        return pipe.predict_proba(X)[:, 1]
    return np.asarray(pipe.predict(X), dtype=float)


@dataclass(frozen=True)
class Splits:
    """Repeated, stratified, subject-grouped folds shared by every model and feature set."""

    folds: list[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]]
    """folds[repeat][k] = (train indices, test indices)."""
    n_splits: int


def make_splits(
    y: npt.ArrayLike, groups: npt.ArrayLike, task: str, *, n_splits: int, n_repeats: int, seed: int
) -> Splits:
    """Stratified group k-fold, repeated with different shuffles.

    Strata are the classes (binary) or quantile bins of the target; ``n_splits`` shrinks to the
    smallest class (binary) and to n/4 so each test fold holds several subjects.
    """
    y = np.asarray(y, float)
    n = len(y)
    if task == "binary":
        strata = y.astype(int)
        n_splits = min(n_splits, int(np.bincount(strata).min()))
    else:
        bins = max(2, min(5, n // max(n_splits, 2)))
        strata = np.searchsorted(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1]), y, side="right")
    n_splits = min(n_splits, n // 4)
    if n_splits < 2:
        raise ValueError(
            f"too few subjects for cross-validation: n={n}, task={task}, smallest class "
            f"{np.bincount(strata).min()}; need at least 2 per class and 8 subjects"
        )
    folds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for r in range(n_repeats):
            cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed + r)
            folds.append([(tr, te) for tr, te in cv.split(np.zeros(n), strata, np.asarray(groups))])
    return Splits(folds, n_splits)


def cross_val_predict(
    make: callable, X: pd.DataFrame, y: npt.NDArray, task: str, splits: Splits
) -> tuple[npt.NDArray[np.float64], list[Pipeline]]:
    """Out-of-fold predictions, shape (n_repeats, n); also the fitted pipelines of repeat 0."""
    out = np.full((len(splits.folds), len(y)), np.nan)
    fitted: list[Pipeline] = []
    for r, folds in enumerate(splits.folds):
        for tr, te in folds:
            pipe = make()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pipe.fit(X.iloc[tr], y[tr])
                out[r, te] = predict(pipe, X.iloc[te], task)
            if r == 0:
                fitted.append(pipe)
    return out, fitted
