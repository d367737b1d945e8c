"""Report figures (matplotlib, Agg backend): each returns PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


GOLD_COLORS = {0: "#1b9e77", 1: "#66a61e", 2: "#e6ab02", 3: "#d95f02", 4: "#7570b3"}
"""One fixed, distinct colour per GOLD stage (a category, never a colour bar)."""
GOLD_MISSING_COLOR = "#bbbbbb"


def gold_color(stage: float) -> str:
    """Colour of a GOLD stage (grey when unknown)."""
    return GOLD_MISSING_COLOR if pd.isna(stage) else GOLD_COLORS.get(int(stage), GOLD_MISSING_COLOR)


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def qct_distributions(qct_whole: pd.DataFrame, gold: pd.Series | None) -> bytes:
    """Histograms of whole-lung QCT metrics, stacked by GOLD stage when known."""
    cols = [
        c
        for c in ("laa950_pct", "laa910_pct", "mld_hu", "perc15_hu", "lung_volume_ml", "lac_d_950")
        if c in qct_whole.columns
    ]
    fig, axes = plt.subplots(1, len(cols), figsize=(3.0 * len(cols), 2.6), squeeze=False)
    for ax, c in zip(axes[0], cols):
        v = qct_whole[c]
        if gold is not None and gold.notna().any():
            g = gold.reindex(v.index)
            stages = sorted(g.dropna().unique())
            groups = [v[g == s].dropna().to_numpy() for s in stages]
            ax.hist(groups, bins=12, stacked=True, label=[f"GOLD {int(s)}" for s in stages],
                    color=[gold_color(s) for s in stages])
        else:
            ax.hist(v.dropna(), bins=12)
        ax.set_title(c, fontsize=9)
    if gold is not None and gold.notna().any():
        axes[0][0].legend(fontsize=7)
    return _png(fig)


def cluster_map(assign: pd.DataFrame, gold: pd.Series | None, title: str) -> bytes:
    """2-D map of subjects coloured by cluster (left) and by GOLD stage (right)."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.4))
    x, y = assign["map_x"].to_numpy(), assign["map_y"].to_numpy()
    for c in sorted(assign["cluster"].unique()):
        m = assign["cluster"].to_numpy() == c
        axes[0].scatter(x[m], y[m], s=22, label="noise" if c == -1 else f"cluster {c}")
    axes[0].legend(fontsize=7)
    axes[0].set_title(f"{title}: clusters", fontsize=9)
    if gold is not None:
        g = gold.reindex(assign["subject_id"]).to_numpy(float)
        for stage in [*sorted(set(g[np.isfinite(g)])), np.nan]:
            m = np.isnan(g) if np.isnan(stage) else g == stage
            if m.any():
                axes[1].scatter(x[m], y[m], s=22, color=gold_color(stage),
                                label="GOLD unknown" if np.isnan(stage) else f"GOLD {int(stage)}")
        axes[1].legend(fontsize=7)
    axes[1].set_title(f"{title}: GOLD stage", fontsize=9)
    method = str(assign["map_method"].iloc[0]).upper()
    for ax in axes:
        ax.set_xlabel(f"{method} 1")
        ax.set_ylabel(f"{method} 2")
    return _png(fig)


def observed_vs_predicted(pred: pd.DataFrame, title: str) -> bytes:
    """Scatter of cross-validated predictions against observations."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.scatter(pred["observed"], pred["predicted"], s=16)
    lo = float(min(pred["observed"].min(), pred["predicted"].min()))
    hi = float(max(pred["observed"].max(), pred["predicted"].max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("observed")
    ax.set_ylabel("cross-validated prediction")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def importance_bars(imp: pd.DataFrame, title: str) -> bytes:
    """Horizontal bars of the top features."""
    imp = imp.sort_values("importance_mean").tail(15)
    fig, ax = plt.subplots(figsize=(5.5, 0.28 * len(imp) + 0.8))
    err = imp["importance_sd"].fillna(0).to_numpy() if "importance_sd" in imp else None
    ax.barh(imp["feature"], imp["importance_mean"], xerr=err)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(title, fontsize=9)
    return _png(fig)


def partial_dependence_plot(pdp: pd.DataFrame) -> bytes:
    """Partial dependence of FEV1 %pred on whole-lung LAA-950, one line per model."""
    fig, ax = plt.subplots(figsize=(4.0, 3.2))
    for name, g in pdp.groupby("model"):
        ax.plot(g["value"], g["prediction"], marker="o", ms=3, label=name)
    ax.set_xlabel("LAA-950 whole lung (%)")
    ax.set_ylabel("predicted FEV1 %pred")
    ax.legend(fontsize=7)
    return _png(fig)


def metric_forest(metrics: pd.DataFrame, target: str, metric: str) -> bytes:
    """Estimates with CIs per feature set and model (the comparison at a glance)."""
    m = metrics[(metrics["target"] == target) & (metrics["metric"] == metric)].reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(5.0, 0.35 * len(m) + 0.9))
    yy = np.arange(len(m))
    ax.errorbar(m["estimate"], yy, xerr=[m["estimate"] - m["ci_low"], m["ci_high"] - m["estimate"]], fmt="o")
    ax.set_yticks(yy, [f"{a} / {b}" for a, b in zip(m["feature_set"], m["model"])], fontsize=7)
    ax.set_xlabel(metric)
    ax.set_title(f"{target}: {metric} (CI)", fontsize=9)
    return _png(fig)


def _against_diagonal(x: np.ndarray, y: np.ndarray, *, fmt: str, label: str, diagonal: str, xlabel: str,
                      ylabel: str, title: str, legend_loc: str) -> bytes:
    """A curve in the unit square with the y = x reference line (ROC: chance; calibration: perfect)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.4))
    ax.plot(x, y, fmt, lw=1.5, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label=diagonal)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc=legend_loc)
    return _png(fig)


def roc_plot(pred: pd.DataFrame, title: str) -> bytes:
    """ROC curve of cross-validated probabilities (``observed`` 0/1, ``predicted`` probability)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y, p = pred["observed"].to_numpy(int), pred["predicted"].to_numpy(float)
    fpr, tpr, _ = roc_curve(y, p)
    return _against_diagonal(fpr, tpr, fmt="-", label=f"AUC {roc_auc_score(y, p):.2f}", diagonal="chance",
                             xlabel="1 - specificity", ylabel="sensitivity", title=title,
                             legend_loc="lower right")


def calibration_plot(pred: pd.DataFrame, title: str, *, n_bins: int) -> bytes:
    """Observed fraction against mean predicted probability in quantile bins, with the Brier score."""
    from sklearn.calibration import calibration_curve

    y, p = pred["observed"].to_numpy(int), np.clip(pred["predicted"].to_numpy(float), 0.0, 1.0)
    frac, mean_p = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    brier = float(np.mean((p - y) ** 2))
    return _against_diagonal(mean_p, frac, fmt="o-", label=f"model (Brier {brier:.3f})",
                             diagonal="perfect calibration", xlabel="mean predicted probability",
                             ylabel="observed fraction with COPD", title=title, legend_loc="upper left")
