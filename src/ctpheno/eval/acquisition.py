"""Report pieces on acquisition: density by scanner, kernel class and slice thickness (raw and
adjusted), flagged scans first, and the scans the QC gate left out of the models.

The report (:mod:`ctpheno.eval.sections`) shows :func:`build_acquisition` as a section and orders
its QC montages with :func:`flagged_first`; the tables are plain DataFrames.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd

from ..io.layout import WorkDir
from ..preprocess.gate import SEVERITY_ORDER, qc_flag_table

THICKNESS_BINS_MM = (0.0, 1.25, 2.5, 100.0)
"""Slice-thickness classes: thin (<= 1.25 mm, COPDGene), intermediate, thick."""
THICKNESS_LABELS = ("<= 1.25 mm", "1.25-2.5 mm", "> 2.5 mm")
DENSITY = (("laa950_pct", "laa950_adj_pct"), ("perc15_hu", "perc15_adj_hu"))
FACTORS = ("manufacturer", "kernel_class", "slice_thickness")


def density_by_acquisition(qct: pd.DataFrame, manifest: pd.DataFrame | None) -> pd.DataFrame:
    """Mean whole-lung LAA-950 and Perc15, raw and adjusted, per scanner, kernel class and thickness class.

    Columns: ``factor``, ``level``, ``n``, and the mean and SD of each density column. A factor
    whose column is missing is left out; the kernel class is the QCT stage's (header, else noise).
    """
    whole = qct[qct["region"] == "whole"].copy()
    if manifest is not None:
        cols = [c for c in ("scan_id", "manufacturer", "slice_thickness_mm", "spacing_z_mm") if c in manifest]
        whole = whole.merge(manifest[cols], on="scan_id", how="left", suffixes=("", "_manifest"))
    if "slice_thickness_mm" in whole:
        thick = whole["slice_thickness_mm"].fillna(whole.get("spacing_z_mm"))
        whole["slice_thickness"] = pd.cut(thick, THICKNESS_BINS_MM, labels=THICKNESS_LABELS).astype("string")
    metrics = [c for pair in DENSITY for c in pair if c in whole]
    rows = []
    for factor in FACTORS:
        if factor not in whole:
            continue
        levels = whole[factor].astype("string").fillna("unknown")
        for level, g in whole.groupby(levels, sort=True):
            row: dict[str, Any] = {"factor": factor, "level": str(level), "n": len(g)}
            for m in metrics:
                row[f"{m}_mean"] = float(g[m].mean())
                row[f"{m}_sd"] = float(g[m].std()) if len(g) > 1 else np.nan
            rows.append(row)
    return pd.DataFrame(rows)


def density_figure(table: pd.DataFrame) -> bytes:
    """PNG: mean LAA-950 raw vs adjusted per level of each factor (one panel per factor)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    factors = [f for f in FACTORS if f in set(table["factor"])]
    fig = Figure(figsize=(4.2 * max(len(factors), 1), 3.4), dpi=100)
    axes = fig.subplots(1, max(len(factors), 1), squeeze=False)[0]
    for ax, factor in zip(axes, factors):
        t = table[table["factor"] == factor]
        x = np.arange(len(t))
        for dx, col, label in ((-0.2, "laa950_pct_mean", "raw"), (0.2, "laa950_adj_pct_mean", "adjusted")):
            if col in t:
                ax.bar(x + dx, t[col], width=0.4, label=label)
        ax.set_xticks(x, [f"{lv}\n(n={n})" for lv, n in zip(t["level"], t["n"])], fontsize=7)
        ax.set_title(factor.replace("_", " "), fontsize=9)
        ax.set_ylabel("LAA-950 (%)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def flagged_first(qc: pd.DataFrame, flags: pd.DataFrame) -> pd.DataFrame:
    """The QC table with the worst severity per scan, scans with ``exclude`` flags first, then ``warn``, then the rest."""
    worst = (flags.assign(_o=flags["severity"].map(SEVERITY_ORDER)).sort_values("_o")
             .drop_duplicates("scan_id").set_index("scan_id")["severity"])
    out = qc.copy()
    out.insert(1, "worst_severity", out["scan_id"].map(worst).fillna(""))
    order = out["worst_severity"].map(SEVERITY_ORDER).fillna(len(SEVERITY_ORDER))
    return out.assign(_o=order).sort_values(["_o", "scan_id"], kind="stable").drop(columns="_o").reset_index(drop=True)


def build_acquisition(ctx: Any) -> dict[str, Any]:
    """Report section (:class:`ctpheno.eval.report.ReportContext` in, template variables out): density
    by acquisition (figure + table), the QC flags of density scans, the scans the gate left out."""
    wd: WorkDir = ctx.wd
    qct, man = ctx.qct, ctx.manifest
    v: dict[str, Any] = {"figure": None, "density": None, "n_flagged": 0, "flags": None,
                         "excluded": None, "n_excluded": None, "applied": True}
    has_density = qct is not None and "laa950_adj_pct" in qct
    table = density_by_acquisition(qct, man) if has_density else pd.DataFrame()
    if len(table):  # an empty QCT table (every scan failed) has nothing to draw
        v["figure"] = ctx.image("density_by_acquisition", density_figure(table), "density by acquisition")
        v["density"] = ctx.table("density_by_acquisition", table, max_rows=60)
    flags = qc_flag_table(wd)
    v["n_flagged"] = int(flags["scan_id"].nunique())
    if len(flags):
        v["flags"] = ctx.table("qc_flags", flags, max_rows=200, collapse=len(flags) > 20,
                               summary="QC flags of every density scan")
    if wd.excluded_scans.is_file():
        ex = pd.read_parquet(wd.excluded_scans)
        v["applied"] = bool(ex["applied"].all()) if len(ex) else True
        v["n_excluded"] = len(ex)
        if len(ex):
            v["excluded"] = ctx.table("excluded_scans", ex, max_rows=200)
    return v
