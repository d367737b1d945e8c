"""FEV1 / GOLD / progression models on every feature set, compared on the same folds.

``python -m ctpheno.train.supervised --config config/models/supervised.yaml`` runs this stage
on the work directory of the pipeline configuration.
"""

from __future__ import annotations

import logging
from itertools import combinations
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config.models import SupervisedConfig
from .explain import partial_dependence_1d, permutation_importance_cv, tree_shap_importance
from .features import Cohort
from .metrics import PRIMARY, TASK_METRICS, bootstrap_indices, corrected_ttest, score_with_ci
from .models import TASKS, cross_val_predict, make_model, make_splits

log = logging.getLogger(__name__)
LAA_FEATURES = ("qct_laa950_adj_pct__whole", "qct_laa950_pct__whole")
"""Partial dependence of FEV1 on whole-lung LAA-950: whichever flavour the explained set uses."""


@dataclass
class SupervisedResult:
    """Tables produced by :func:`fit_supervised` (all PHI-free: subject pseudonyms only)."""

    metrics: pd.DataFrame
    comparison: pd.DataFrame
    predictions: pd.DataFrame
    importance: pd.DataFrame
    partial_dependence: pd.DataFrame
    models: dict[str, dict] = field(default_factory=dict)

    def summary(self) -> str:
        m = self.metrics
        if m.empty:
            return "supervised: no target could be cross-validated (too few subjects; see the log)"
        best = m[m["metric"] == "r2"].query("target == 'fev1_pct_pred'")
        txt = f"supervised: {m[['target', 'feature_set', 'model']].drop_duplicates().shape[0]} models"
        if len(best):
            b = best.sort_values("estimate").iloc[-1]
            txt += (
                f"; best FEV1 %pred R2 {b.estimate:.2f} [{b.ci_low:.2f}, {b.ci_high:.2f}] "
                f"({b.feature_set}, {b.model})"
            )
        return txt


def fit_supervised(cohort: Cohort, cfg: SupervisedConfig) -> SupervisedResult:
    """Cross-validate every (target, feature set, model), compare sets, explain, refit on all."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # tiny matrices: BLAS/OpenMP threads only add overhead
        return _fit_supervised(cohort, cfg)


def _fit_supervised(cohort: Cohort, cfg: SupervisedConfig) -> SupervisedResult:
    models = list(dict.fromkeys(["linear", *cfg.models]))
    sets = list(cfg.feature_sets)
    ref = cfg.reference_set
    level = cfg.ci_level
    rows, comp, preds, imps, pds, saved = [], [], [], [], [], {}
    frame = cohort.frame
    for target in cfg.targets:
        if target not in frame.columns:
            log.warning("target %s is not in the clinical table; skipped", target)
            continue
        task = TASKS[target]
        sub = frame[frame[target].notna()]
        y = sub[target].to_numpy(float)
        try:
            splits = make_splits(
                y, sub.index, task, n_splits=cfg.n_splits, n_repeats=cfg.n_repeats, seed=cfg.random_state
            )
        except ValueError as err:
            log.warning("target %s skipped: %s", target, err)
            continue
        boot = bootstrap_indices(len(y), cfg.n_bootstrap, seed=cfg.random_state + 1)
        primary = PRIMARY[task]
        fold_scores: dict[tuple[str, str], np.ndarray] = {}
        dists: dict[tuple[str, str], np.ndarray] = {}
        for fset in sets:
            cols = cohort.feature_columns(fset, covariates=cfg.covariates_for(target))
            X = sub[cols]
            for name in models:

                def make(name: str = name, task: str = task):
                    return make_model(
                        name,
                        task,
                        pre=cfg.preprocessing,
                        lgbm=cfg.lightgbm,
                        seed=cfg.random_state,
                        screen_ks=tuple(cfg.screening_k),
                    )

                oof, fitted = cross_val_predict(make, X, y, task, splits)
                for metric, fn in TASK_METRICS[task].items():
                    est, lo, hi, dist = score_with_ci(fn, y, oof, boot, level=level)
                    rows.append(
                        dict(
                            target=target,
                            task=task,
                            feature_set=fset,
                            model=name,
                            metric=metric,
                            estimate=est,
                            ci_low=lo,
                            ci_high=hi,
                            n_subjects=len(y),
                            n_features=len(cols),
                            n_splits=splits.n_splits,
                            n_repeats=cfg.n_repeats,
                        )
                    )
                    if metric == primary:
                        dists[(fset, name)] = dist
                fn = TASK_METRICS[task][primary]
                fold_scores[(fset, name)] = np.array(
                    [fn(y[te], oof[r, te]) for r, folds in enumerate(splits.folds) for _, te in folds]
                )
                preds.append(
                    pd.DataFrame(
                        {
                            "subject_id": sub.index,
                            "target": target,
                            "feature_set": fset,
                            "model": name,
                            "observed": y,
                            "predicted": oof.mean(axis=0),
                        }
                    )
                )
                if fset == cfg.explain_set:
                    imps.append(_explain(fitted, X, y, task, splits, cfg, target, fset, name))
                if cfg.save_models or (fset == cfg.explain_set and target == "fev1_pct_pred"):
                    final = make()
                    final.fit(X, y)
                    saved[f"{target}__{fset.replace('+', '-')}__{name}"] = dict(
                        pipeline=final,
                        features=cols,
                        target=target,
                        task=task,
                        feature_set=fset,
                        model=name,
                        config=cfg.model_dump(mode="json"),
                        n_subjects=len(y),
                    )
                    laa = next((c for c in LAA_FEATURES if c in cols), None)
                    if fset == cfg.explain_set and target == "fev1_pct_pred" and laa is not None:
                        pd_ = partial_dependence_1d(final, X, laa, task)
                        pds.append(pd_.assign(target=target, feature=laa, model=name))
                    if fset == cfg.explain_set and name == "lightgbm":
                        shap = tree_shap_importance(final, X).head(cfg.top_features)
                        imps.append(
                            shap.rename(columns={"mean_abs_shap": "importance_mean"}).assign(
                                importance_sd=np.nan,
                                kind="mean_abs_shap",
                                target=target,
                                feature_set=fset,
                                model=name,
                            )
                        )
        n_tr = len(y) * (splits.n_splits - 1) / splits.n_splits
        if cfg.reference_set is None:
            pairs = list(combinations(sets, 2))
        else:
            pairs = [(f, ref) for f in sets if f != ref and ref in sets]
        for fset, ref in pairs:
            for name in models:
                t, p = corrected_ttest(
                    fold_scores[(fset, name)] - fold_scores[(ref, name)],
                    n_train=int(n_tr),
                    n_test=len(y) - int(n_tr),
                )
                d = dists[(fset, name)] - dists[(ref, name)]
                a = (1 - level) / 2
                est = np.nanmean(fold_scores[(fset, name)]) - np.nanmean(fold_scores[(ref, name)])
                comp.append(
                    dict(
                        target=target,
                        model=name,
                        metric=primary,
                        feature_set=fset,
                        reference_set=ref,
                        difference_fold_mean=est,
                        boot_ci_low=float(np.nanquantile(d, a)),
                        boot_ci_high=float(np.nanquantile(d, 1 - a)),
                        boot_p=float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))),
                        corrected_t=t,
                        corrected_p=p,
                    )
                )
    cat = lambda parts: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return SupervisedResult(pd.DataFrame(rows), pd.DataFrame(comp), cat(preds), cat(imps), cat(pds), saved)


def _explain(
    fitted, X, y, task, splits, cfg: SupervisedConfig, target: str, fset: str, name: str
) -> pd.DataFrame:
    fn = TASK_METRICS[task][PRIMARY[task] if task != "ordinal" else "mae"]
    sign = -1.0 if task == "ordinal" else 1.0  # MAE: lower is better
    score = lambda yt, p: sign * fn(yt, p)
    imp = permutation_importance_cv(
        fitted, X, y, task, splits, score, n_repeats=cfg.permutation_repeats, seed=cfg.random_state
    )
    return imp.head(cfg.top_features).assign(kind="permutation", target=target, feature_set=fset, model=name)


def main(argv: list[str] | None = None) -> None:
    """``python -m ctpheno.train.supervised --config config/models/supervised.yaml [--workdir DIR]``."""
    from .stage import module_main

    module_main("supervised", argv, __doc__)


if __name__ == "__main__":
    main()
