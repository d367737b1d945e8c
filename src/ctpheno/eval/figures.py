"""Report figures (matplotlib, Agg backend): each returns PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


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
            groups = [v[g == s].dropna().to_numpy() for s in sorted(g.dropna().unique())]
            ax.hist(
                groups, bins=12, stacked=True, label=[f"GOLD {int(s)}" for s in sorted(g.dropna().unique())]
            )
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
        sc = axes[1].scatter(x, y, c=g, cmap="viridis", s=22, vmin=0, vmax=4)
        fig.colorbar(sc, ax=axes[1], label="GOLD")
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
