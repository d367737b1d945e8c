"""The numbers of the report's first section, as plain functions on the work directory's tables.

* :func:`best_models`: per target, the feature set and model with the best cross-validated primary
  metric (R² for FEV1 and decline, within-one accuracy for GOLD, AUC for COPD) and its CI.
* :func:`holm` / :func:`with_holm`: Holm's step-down adjustment (Holm 1979, Scand J Stat 6:65-70) of
  the Nadeau-Bengio corrected resampled t-test p-values over every comparison of feature sets,
  so that one p-value per comparison is shown and it accounts for how many were made.
* :func:`headline_comparison`: the one comparison the headline reports: the best feature set against
  the runner-up for the same target and model.
* :func:`chosen_clusterings` and :func:`cluster_spread`: the clusterings chosen by the model stage
  (HDBSCAN with fewer than two clusters is never "chosen") and, for the most stable one, each
  cluster's median and interquartile range of the key QCT and spirometry measures.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ..train.metrics import PRIMARY

MIN_CLUSTERS = 2
"""A clustering with fewer clusters than this partitions nothing (HDBSCAN may find none)."""
SPREAD_COLUMNS = {"laa950_pct": "LAA-950 (%)", "perc15_hu": "Perc15 (HU)",
                  "lung_volume_ml": "lung volume (mL)", "fev1_pct_pred": "FEV1 %pred"}
"""Measures profiled per cluster in the headline (QCT whole lung, then clinical)."""


def best_models(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per target: the row of its primary metric with the highest estimate, and how many were compared."""
    rows = []
    for (target, task), g in metrics.groupby(["target", "task"], sort=False):
        m = g[(g["metric"] == PRIMARY[task]) & g["estimate"].notna()]
        if m.empty:
            continue
        best = m.loc[m["estimate"].idxmax()]
        rows.append({"target": target, "metric": best["metric"], "feature_set": best["feature_set"],
                     "model": best["model"], "estimate": best["estimate"], "ci_low": best["ci_low"],
                     "ci_high": best["ci_high"], "n_subjects": int(best["n_subjects"]),
                     "n_candidates": len(m)})
    return pd.DataFrame(rows)


def holm(p: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Holm-adjusted p-values; NaN stays NaN and does not count as a test.

    .. math:: \\tilde p_{(i)} = \\max_{j \\le i} \\min\\{1, (m - j + 1)\\, p_{(j)}\\}

    for the :math:`m` finite p-values sorted ascending.
    """
    p = np.asarray(p, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    out[order] = np.maximum.accumulate(adjusted)
    return out


def with_holm(comparison: pd.DataFrame) -> pd.DataFrame:
    """The comparison table with ``p_holm`` (Holm over all its rows' ``corrected_p``), sorted by it."""
    out = comparison.assign(p_holm=holm(comparison["corrected_p"]))
    return out.sort_values(["p_holm", "target"], na_position="last", kind="stable").reset_index(drop=True)


def headline_comparison(comparison: pd.DataFrame, metrics: pd.DataFrame,
                        best: pd.Series) -> dict[str, Any] | None:
    """The best feature set against the runner-up (same target, model and folds), oriented best minus other.

    ``comparison`` must carry ``p_holm`` (:func:`with_holm`). None when no such comparison exists.
    """
    m = metrics[(metrics["target"] == best["target"]) & (metrics["model"] == best["model"])
                & (metrics["metric"] == best["metric"]) & (metrics["feature_set"] != best["feature_set"])]
    if m.empty or comparison.empty:
        return None
    other = m.loc[m["estimate"].idxmax(), "feature_set"]
    c = comparison[(comparison["target"] == best["target"]) & (comparison["model"] == best["model"])]
    fwd = c[(c["feature_set"] == best["feature_set"]) & (c["reference_set"] == other)]
    rev = c[(c["feature_set"] == other) & (c["reference_set"] == best["feature_set"])]
    if len(fwd):
        r, sign = fwd.iloc[0], 1.0
    elif len(rev):
        r, sign = rev.iloc[0], -1.0
    else:
        return None
    lo, hi = sorted((sign * r["boot_ci_low"], sign * r["boot_ci_high"]))
    return {"target": best["target"], "model": best["model"], "metric": r["metric"],
            "better": best["feature_set"], "other": other, "difference": sign * r["difference_fold_mean"],
            "ci_low": lo, "ci_high": hi, "p_holm": r["p_holm"],
            "n_comparisons": int(comparison["p_holm"].notna().sum())}


def chosen_clusterings(selection: pd.DataFrame) -> pd.DataFrame:
    """Chosen rows with at least :data:`MIN_CLUSTERS` clusters, most stable first (then silhouette)."""
    ch = selection[selection["chosen"].astype(bool) & (selection["k"] >= MIN_CLUSTERS)]
    ch = ch.sort_values(["stability_ari", "silhouette"], ascending=False, na_position="last", kind="stable")
    return ch.reset_index(drop=True)


def subject_measures(manifest: pd.DataFrame | None, qct: pd.DataFrame | None,
                     clinical: pd.DataFrame | None) -> pd.DataFrame:
    """Per subject: whole-lung QCT of its analysed scan and its clinical values (index subject_id)."""
    parts = []
    if manifest is not None and qct is not None:
        man = manifest
        if "selected" in man:
            man = man[man["selected"].fillna(False).astype(bool)]
        order = [c for c in ("acquisition_offset_days", "scan_id") if c in man]
        first = man.sort_values(order).drop_duplicates("subject_id")[["subject_id", "scan_id"]]
        whole = qct[qct["region"] == "whole"]
        cols = [c for c in SPREAD_COLUMNS if c in whole and c != "fev1_pct_pred"]
        parts.append(first.merge(whole[["scan_id", *cols]], on="scan_id").drop(columns="scan_id")
                     .set_index("subject_id"))
    if clinical is not None:
        cols = [c for c in ("fev1_pct_pred", "gold_stage") if c in clinical]
        parts.append(clinical.drop_duplicates("subject_id").set_index("subject_id")[cols])
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, axis=1)


def cluster_spread(assignments: pd.DataFrame, measures: pd.DataFrame) -> pd.DataFrame:
    """Per cluster of one clustering: n, median (IQR) of each measure, GOLD stage counts."""
    df = assignments.set_index("subject_id")[["cluster"]].join(measures, how="left")
    rows = []
    for cluster, g in df.groupby("cluster"):
        row: dict[str, Any] = {"cluster": "noise" if cluster == -1 else int(cluster), "n": len(g)}
        for col, name in SPREAD_COLUMNS.items():
            v = g[col].dropna() if col in g else pd.Series(dtype=float)
            row[name] = (f"{format_number(v.median())} ({format_number(v.quantile(0.25))} to "
                         f"{format_number(v.quantile(0.75))})"
                         if len(v) else "–")
        if "gold_stage" in g:
            counts = g["gold_stage"].dropna().astype(int).value_counts().sort_index()
            row["GOLD 0/1/2/3/4"] = "/".join(str(int(counts.get(s, 0))) for s in range(5))
        rows.append(row)
    return pd.DataFrame(rows)


def format_number(value: float) -> str:
    """Three significant digits, but whole numbers from 100 up (no exponent for mL or HU)."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
