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

from ..cluster.mapping import Mapper, serial_map
from ..config.models import SupervisedConfig
from .explain import partial_dependence_1d, permutation_importance_cv, tree_shap_importance
from .features import Cohort
from .metrics import PRIMARY, TASK_METRICS, bootstrap_indices, corrected_ttest, score_with_ci
from .models import TASKS, Splits, cross_val_predict, make_model, make_splits

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


def fit_supervised(cohort: Cohort, cfg: SupervisedConfig, *, mapper: Mapper = serial_map) -> SupervisedResult:
    """Cross-validate every (target, feature set, model), compare sets, explain, refit on all.

    Each (target, feature set, model) is one job (:func:`fit_one`): its cross-validated
    predictions, bootstrap CIs, permutation importance and final refit. ``mapper`` runs the jobs
    (:func:`ctpheno.cluster.mapping.task_map` puts them on the Dask cluster); the jobs are
    deterministic, so every mapper gives the same tables as the serial loop.
    """
    models = list(dict.fromkeys(["linear", *cfg.models]))
    sets = list(cfg.feature_sets)
    frame = cohort.frame
    data: dict[str, TargetData] = {}
    jobs: list[Job] = []
    for target in cfg.targets:
        if target not in frame.columns:
            log.warning("target %s is not in the clinical table; skipped", target)
            continue
        task = TASKS[target]
        sub = frame[frame[target].notna()]
        y = sub[target].to_numpy(float)
        try:
            # one row per subject: the row number is the group. Group labels are sorted inside the
            # splitter, so the salted subject ids would make the folds change with the salt.
            splits = make_splits(
                y, np.arange(len(sub)), task, n_splits=cfg.n_splits, n_repeats=cfg.n_repeats,
                seed=cfg.random_state
            )
        except ValueError as err:
            log.warning("target %s skipped: %s", target, err)
            continue
        boot = bootstrap_indices(len(y), cfg.n_bootstrap, seed=cfg.random_state + 1)
        data[target] = TargetData(sub, y, splits, boot)
        jobs += [Job(target, task, fset, name, tuple(cohort.feature_columns(fset, covariates=cfg.covariates_for(target))))
                 for fset in sets for name in models]
    results = mapper(fit_one, jobs, data=data, cfg=cfg)
    rows, comp, preds, imps, pds, saved = [], [], [], [], [], {}
    for job, res in zip(jobs, results):
        rows += res.rows
        preds.append(res.predictions)
        imps += res.importance
        pds += res.partial_dependence
        saved.update(res.saved)
    for target, d in data.items():
        mine = [(job, res) for job, res in zip(jobs, results) if job.target == target]
        comp += _compare(target, mine, d, sets, models, cfg)
    cat = lambda parts: pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return SupervisedResult(pd.DataFrame(rows), pd.DataFrame(comp), cat(preds), cat(imps), cat(pds), saved)


@dataclass(frozen=True)
class TargetData:
    """What every job of one target shares: its subjects, outcome, folds and bootstrap draws."""

    frame: pd.DataFrame
    y: np.ndarray
    splits: Splits
    boot: np.ndarray


@dataclass(frozen=True)
class Job:
    """One (target, feature set, model) fit."""

    target: str
    task: str
    feature_set: str
    model: str
    columns: tuple[str, ...]


@dataclass
class JobResult:
    """Tables of one job (see :func:`fit_one`)."""

    rows: list[dict]
    fold_scores: np.ndarray
    dist: np.ndarray
    predictions: pd.DataFrame
    importance: list[pd.DataFrame]
    partial_dependence: list[pd.DataFrame]
    saved: dict[str, dict]


def fit_one(job: Job, *, data: dict[str, TargetData], cfg: SupervisedConfig) -> JobResult:
    """Cross-validate, score with bootstrap CIs, explain and refit one (target, set, model) job.

    Top-level and deterministic (seeded by ``cfg.random_state``), so it runs as a Dask task and
    gives the same result wherever it runs. BLAS/OpenMP stay at one thread (tiny matrices).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _fit_one(job, data[job.target], cfg)


def _fit_one(job: Job, d: TargetData, cfg: SupervisedConfig) -> JobResult:
    target, task, fset, name = job.target, job.task, job.feature_set, job.model
    y, splits, cols = d.y, d.splits, list(job.columns)
    X = d.frame[cols]
    primary = PRIMARY[task]

    def make():
        return make_model(name, task, pre=cfg.preprocessing, lgbm=cfg.lightgbm, seed=cfg.random_state,
                          screen_ks=tuple(cfg.screening_k))

    oof, fitted = cross_val_predict(make, X, y, task, splits)
    rows, dist = [], np.array([])
    for metric, fn in TASK_METRICS[task].items():
        est, lo, hi, dst = score_with_ci(fn, y, oof, d.boot, level=cfg.ci_level)
        rows.append(dict(target=target, task=task, feature_set=fset, model=name, metric=metric, estimate=est,
                         ci_low=lo, ci_high=hi, n_subjects=len(y), n_features=len(cols),
                         n_splits=splits.n_splits, n_repeats=cfg.n_repeats))
        if metric == primary:
            dist = dst
    fn = TASK_METRICS[task][primary]
    fold_scores = np.array([fn(y[te], oof[r, te]) for r, folds in enumerate(splits.folds) for _, te in folds])
    preds = pd.DataFrame({"subject_id": d.frame.index, "target": target, "feature_set": fset, "model": name,
                          "observed": y, "predicted": oof.mean(axis=0)})
    imps, pds, saved = [], [], {}
    if fset == cfg.explain_set:
        imps.append(_explain(fitted, X, y, task, splits, cfg, target, fset, name))
    if cfg.save_models or (fset == cfg.explain_set and target == "fev1_pct_pred"):
        final = make()
        final.fit(X, y)
        saved[f"{target}__{fset.replace('+', '-')}__{name}"] = dict(
            pipeline=final, features=cols, target=target, task=task, feature_set=fset, model=name,
            config=cfg.model_dump(mode="json"), n_subjects=len(y))
        laa = next((c for c in LAA_FEATURES if c in cols), None)
        if fset == cfg.explain_set and target == "fev1_pct_pred" and laa is not None:
            pd_ = partial_dependence_1d(final, X, laa, task)
            pds.append(pd_.assign(target=target, feature=laa, model=name))
        if fset == cfg.explain_set and name == "lightgbm":
            shap = tree_shap_importance(final, X).head(cfg.top_features)
            imps.append(shap.rename(columns={"mean_abs_shap": "importance_mean"}).assign(
                importance_sd=np.nan, kind="mean_abs_shap", target=target, feature_set=fset, model=name))
    return JobResult(rows, fold_scores, dist, preds, imps, pds, saved)


def _compare(target: str, results: list[tuple[Job, JobResult]], d: TargetData, sets: list[str],
             models: list[str], cfg: SupervisedConfig) -> list[dict]:
    """Paired comparisons of feature sets (corrected t-test over folds, bootstrap CI of the difference)."""
    fold_scores = {(j.feature_set, j.model): r.fold_scores for j, r in results}
    dists = {(j.feature_set, j.model): r.dist for j, r in results}
    primary = PRIMARY[TASKS[target]]
    level = cfg.ci_level
    n_tr = len(d.y) * (d.splits.n_splits - 1) / d.splits.n_splits
    ref = cfg.reference_set
    if ref is None:
        pairs = list(combinations(sets, 2))
    else:
        pairs = [(f, ref) for f in sets if f != ref and ref in sets]
    comp = []
    for fset, ref in pairs:
        for name in models:
            t, p = corrected_ttest(fold_scores[(fset, name)] - fold_scores[(ref, name)],
                                   n_train=int(n_tr), n_test=len(d.y) - int(n_tr))
            diff = dists[(fset, name)] - dists[(ref, name)]
            a = (1 - level) / 2
            est = np.nanmean(fold_scores[(fset, name)]) - np.nanmean(fold_scores[(ref, name)])
            comp.append(dict(target=target, model=name, metric=primary, feature_set=fset, reference_set=ref,
                             difference_fold_mean=est, boot_ci_low=float(np.nanquantile(diff, a)),
                             boot_ci_high=float(np.nanquantile(diff, 1 - a)),
                             boot_p=float(min(1.0, 2 * min(np.mean(diff <= 0), np.mean(diff >= 0)))),
                             corrected_t=t, corrected_p=p))
    return comp


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


if __name__ == "__main__":  # ``python -m ctpheno.train.supervised``; the entry point is in ctpheno.train.cli
    from .cli import supervised_main
    raise SystemExit(supervised_main())
