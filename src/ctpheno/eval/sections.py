"""The report's sections: one builder per section (its template is ``templates/sections/<id>.html.j2``).

The order of :data:`SECTIONS` is the order in the report; see :mod:`ctpheno.eval.report` for how
to add one.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from ..preprocess.gate import qc_flag_table
from . import figures
from .acquisition import build_acquisition, flagged_first
from .context import Missing, ReportContext, Section
from .headline import (best_models, chosen_clusterings, cluster_spread, headline_comparison, subject_measures,
                       with_holm)

PRIMARY_TARGET = "fev1_pct_pred"
"""Target whose best-vs-runner-up comparison the headline states (the first target when absent)."""
TARGET_NAMES = {"fev1_pct_pred": "FEV1 % predicted", "fev1_fvc": "FEV1/FVC", "gold_stage": "GOLD stage",
                "copd": "COPD (FEV1/FVC < 0.7)", "fev1_decline_ml_per_year": "FEV1 decline (mL/year)"}
COPD_TARGET = "copd"
CALIBRATION_BINS_MAX = 10
"""Quantile bins of the calibration plot (fewer with few subjects: at least 5 subjects per bin)."""


def _ci(row: Any, fmt: str = "{:.2f}") -> str:
    return f"{fmt.format(row['estimate'])} [{fmt.format(row['ci_low'])}, {fmt.format(row['ci_high'])}]"


def _target(name: str) -> str:
    return TARGET_NAMES.get(name, name)


# ------------------------------------------------------------------------------------------ headline
def build_headline(ctx: ReportContext) -> dict[str, Any] | Missing:
    """Best model per target with its CI, one multiplicity-corrected comparison, the chosen clusters."""
    met, comp = ctx.supervised("metrics"), ctx.supervised("comparison")
    sel, assign = ctx.clusters("selection"), ctx.clusters("assignments")
    if met is None and sel is None and ctx.qc is None:
        return Missing("results", "run the pipeline (`ctpheno run`) to fill this summary")
    v: dict[str, Any] = {"ci_pct": round(100 * ctx.ci_level), "best": None, "comparison": None,
                         "clusters": None, "qc": None}
    best = best_models(met) if met is not None and len(met) else pd.DataFrame()
    if len(best):
        shown = pd.DataFrame({
            "target": best["target"].map(_target), "metric": best["metric"],
            f"estimate [{v['ci_pct']}% CI]": [_ci(r) for _, r in best.iterrows()],
            "feature set / model": best["feature_set"] + " / " + best["model"],
            "subjects": best["n_subjects"], "models compared": best["n_candidates"]})
        v["best"] = ctx.table("headline_best_models", shown)
        primary = best[best["target"] == PRIMARY_TARGET]
        top = (primary if len(primary) else best).iloc[0]
        if comp is not None and len(comp):
            v["comparison"] = headline_comparison(with_holm(comp), met, top)
            if v["comparison"]:
                v["comparison"]["target_name"] = _target(top["target"])
    chosen = chosen_clusterings(sel) if sel is not None else pd.DataFrame()
    if len(chosen) and assign is not None:
        top = chosen.iloc[0]
        a = assign[(assign["feature_set"] == top["feature_set"]) & (assign["algorithm"] == top["algorithm"])]
        spread = cluster_spread(a, subject_measures(ctx.manifest, ctx.qct, ctx.clinical))
        v["clusters"] = {"feature_set": top["feature_set"], "algorithm": top["algorithm"], "k": int(top["k"]),
                         "stability": top["stability_ari"], "n_chosen": len(chosen),
                         "profile": ctx.table("headline_cluster_profile", spread)}
    qc = ctx.qc
    if qc is not None and "flags" in qc:
        flagged = qc["flags"].fillna("").astype(str).str.len() > 0
        v["qc"] = {"n": len(qc), "flagged": int(flagged.sum())}
    return v


# ---------------------------------------------------------------------------------------- data
def build_cohort(ctx: ReportContext) -> dict[str, Any] | Missing:
    man, clin = ctx.manifest, ctx.clinical
    rows: list[tuple[str, Any]] = []
    if man is not None:
        rows += [("series discovered", len(man)), ("usable series", int(man["usable"].sum())),
                 ("subjects", man["subject_id"].nunique())]
    if clin is not None:
        rows.append(("subjects with clinical data", len(clin)))
        for c in ("age_years", "height_cm", "pack_years", "fev1_pct_pred", "fev1_fvc"):
            if c in clin:
                rows.append((f"{c} mean (SD)", f"{clin[c].mean():.3g} ({clin[c].std():.2g})"))
        if "sex" in clin:
            rows.append(("sex M/F", f"{(clin['sex'] == 'M').sum()}/{(clin['sex'] == 'F').sum()}"))
        if "gold_stage" in clin:
            counts = clin["gold_stage"].value_counts().sort_index()
            rows += [(f"GOLD {int(k)}", int(n)) for k, n in counts.items()]
    if not rows:
        return Missing("manifest and clinical table", "run `ctpheno ingest`")
    return {"table": ctx.table("cohort_summary", pd.DataFrame(rows, columns=["item", "value"]).astype(str),
                               max_rows=40)}


def build_failures(ctx: ReportContext) -> dict[str, Any]:
    fail, man = ctx.read(ctx.wd.failures), ctx.manifest
    v: dict[str, Any] = {"failures": None, "rejected": None}
    if fail is not None and len(fail):
        cols = [c for c in ("scan_id", "stage", "error_type", "message", "attempts") if c in fail]
        v["failures"] = ctx.table("failures", fail[cols], max_rows=30)
    if man is not None and "usable" in man:
        bad = man[~man["usable"].fillna(False).astype(bool)]
        if len(bad):
            cols = [c for c in ("scan_id", "subject_id", "modality", "reasons", "source") if c in bad]
            v["rejected"] = ctx.table("rejected_series", bad[cols], max_rows=30, collapse=len(bad) > 10)
    return v


def build_not_fitted(ctx: ReportContext) -> dict[str, Any] | None:
    """Model stages that fitted nothing and why (``models/<stage>/skipped.json``,
    :mod:`ctpheno.train.tiny`); no section when every stage fitted."""
    from ..train.tiny import skipped_models

    skips = skipped_models(ctx.wd)
    return {"skips": skips} if skips else None


def build_qc(ctx: ReportContext) -> dict[str, Any] | Missing:
    qc = ctx.qc
    if qc is None:
        return Missing("QC table and montages", "run `ctpheno preprocess`")
    ordered = flagged_first(qc, qc_flag_table(ctx.wd))  # worst severity first (segmentation and QCT flags)
    thumbs = []
    for _, row in ordered.head(ctx.max_qc_images).iterrows():
        png = ctx.wd.qc_png(row["scan_id"])
        if png.is_file():
            sid = row["scan_id"]
            thumbs.append({"img": ctx.image(f"qc_{sid}", png.read_bytes(), f"QC montage {sid}"),
                           "caption": sid, "flags": row.get("flags", "") or ""})
    flagged = ordered[ordered["flags"].fillna("") != ""] if "flags" in ordered else ordered.iloc[:0]
    return {"thumbs": thumbs, "n": len(qc), "n_flagged": len(flagged),
            "flagged": ctx.table("qc_flagged", flagged, max_rows=40) if len(flagged) else None,
            "table": ctx.table("qc", ordered, max_rows=len(ordered), collapse=True,
                               summary="QC of every scan")}


def build_qct(ctx: ReportContext) -> dict[str, Any] | Missing:
    qct, man = ctx.qct, ctx.manifest
    if qct is None:
        return Missing("QCT metrics", "run `ctpheno features`")
    whole = qct[qct["region"] == "whole"].set_index("scan_id")
    g = None
    if ctx.gold is not None and man is not None:
        g = man.set_index("scan_id")["subject_id"].map(ctx.gold)
    desc = whole.select_dtypes("number").describe().T.reset_index().rename(columns={"index": "metric"})
    png = figures.qct_distributions(whole, g)
    return {"figure": ctx.image("qct_distributions", png, "QCT distributions"),
            "table": ctx.table("qct_whole_summary", desc, max_rows=len(desc), collapse=True,
                               summary="whole-lung QCT summary statistics")}


def build_clusters(ctx: ReportContext) -> dict[str, Any] | Missing:
    sel, assign, prof = ctx.clusters("selection"), ctx.clusters("assignments"), ctx.clusters("profiles")
    if sel is None or assign is None:
        return Missing("clusters", "run `ctpheno train` (clustering)")
    sel = sel.assign(chosen=sel["chosen"].astype(bool) & (sel["k"] >= 2))
    maps = []
    for (fset, algo), a in assign.groupby(["feature_set", "algorithm"], sort=False):
        if algo == "kmeans":
            png = figures.cluster_map(a, ctx.gold, f"{fset} / {algo}")
            maps.append(ctx.image(f"cluster_map_{fset.replace('+', '-')}_{algo}", png, f"cluster map {fset}"))
    return {"selection": ctx.table("cluster_selection", sel, max_rows=len(sel), collapse=len(sel) > 12,
                                   summary="k selection of every feature set and algorithm"),
            "maps": maps,
            "profiles": ctx.table("cluster_profiles", prof, max_rows=len(prof), collapse=True,
                                  summary="mean profile of every cluster") if prof is not None else None}


# ---------------------------------------------------------------------------------------- models
def _best_predictions(ctx: ReportContext, target: str, metric: str) -> tuple[pd.DataFrame, Any] | None:
    met, pred = ctx.supervised("metrics"), ctx.supervised("predictions")
    if met is None or pred is None:
        return None
    m = met[(met["target"] == target) & (met["metric"] == metric) & met["estimate"].notna()]
    if m.empty:
        return None
    best = m.loc[m["estimate"].idxmax()]
    p = pred[(pred["target"] == target) & (pred["feature_set"] == best["feature_set"])
             & (pred["model"] == best["model"])]
    return (p, best) if len(p) else None


def build_models(ctx: ReportContext) -> dict[str, Any] | Missing:
    met = ctx.supervised("metrics")
    if met is None or met.empty:
        return Missing("model metrics", "run `ctpheno train` (supervised)")
    figs = []
    for target, metric in (("fev1_pct_pred", "r2"), ("gold_stage", "within_one_accuracy"), ("copd", "auc")):
        if ((met["target"] == target) & (met["metric"] == metric)).any():
            png = figures.metric_forest(met, target, metric)
            figs.append(ctx.image(f"forest_{target}", png, f"{target} {metric}"))
    fev1 = _best_predictions(ctx, "fev1_pct_pred", "r2")
    if fev1 is not None:
        p, b = fev1
        figs.append(ctx.image("fev1_observed_predicted", figures.observed_vs_predicted(
            p, f"FEV1 %pred ({b['feature_set']}, {b['model']})"), "FEV1 observed vs predicted"))
    copd = _best_predictions(ctx, COPD_TARGET, "auc")
    copd_figs = []
    if copd is not None and copd[0]["observed"].nunique() == 2:
        p, b = copd
        label = f"COPD ({b['feature_set']}, {b['model']})"
        bins = int(min(CALIBRATION_BINS_MAX, max(2, len(p) // 5)))
        copd_figs = [ctx.image("copd_roc", figures.roc_plot(p, label), "ROC curve COPD"),
                     ctx.image("copd_calibration", figures.calibration_plot(p, label, n_bins=bins),
                               "calibration plot COPD")]
    return {"figures": figs, "copd": copd_figs,
            "table": ctx.table("model_metrics", met, max_rows=len(met), collapse=True,
                               summary="every metric of every model")}


def build_comparison(ctx: ReportContext) -> dict[str, Any] | Missing:
    comp = ctx.supervised("comparison")
    if comp is None or comp.empty:
        return Missing("comparison", "configure two or more feature sets in models.supervised.feature_sets")
    table = with_holm(comp)
    shown = table[["target", "model", "metric", "feature_set", "reference_set", "difference_fold_mean",
                   "boot_ci_low", "boot_ci_high", "p_holm"]]
    return {"n": int(table["p_holm"].notna().sum()), "ci_pct": round(100 * ctx.ci_level),
            "table": ctx.table("comparison", shown, max_rows=len(shown), collapse=len(shown) > 15,
                               summary="every comparison, smallest p first")}


def build_importance(ctx: ReportContext) -> dict[str, Any] | Missing:
    imp, pdp = ctx.supervised("importance"), ctx.supervised("partial_dependence")
    if imp is None or imp.empty:
        return Missing("feature importances", "run `ctpheno train` (supervised)")
    figs = [ctx.image(f"importance_{t}_{m}_{k}", figures.importance_bars(g, f"{t} / {m} / {k}"),
                      f"importance {t}")
            for (t, m, k), g in imp.groupby(["target", "model", "kind"], sort=False)
            if t in ("fev1_pct_pred", "gold_stage")]
    pd_fig = (ctx.image("pd_fev1_laa950", figures.partial_dependence_plot(pdp), "partial dependence")
              if pdp is not None and len(pdp) else None)
    table = ctx.table("importance", imp, max_rows=len(imp), collapse=True, summary="every importance")
    return {"figures": figs, "pd": pd_fig, "table": table}


def build_synthetic(ctx: ReportContext) -> dict[str, Any] | None:
    s = ctx.synthetic
    return {"table": ctx.table("synthetic_acceptance", s, max_rows=40)} if s is not None and len(s) else None


def build_run(ctx: ReportContext) -> dict[str, Any]:
    """The configuration and package versions the report was given; what is not given comes from
    the newest run of the work directory (``runs/<id>/config.resolved.yaml``, ``versions.json``),
    else the installed versions."""
    cfg_text, ver = ctx.config_yaml, ctx.versions
    runs = (sorted(ctx.wd.runs_dir.glob("*/config.resolved.yaml"), key=lambda p: p.stat().st_mtime)
            if ctx.wd.runs_dir.is_dir() else [])
    if runs:
        if cfg_text is None:
            cfg_text = runs[-1].read_text()
        vf = runs[-1].parent / "versions.json"
        if ver is None and vf.is_file():
            ver = json.loads(vf.read_text())
    if ver is None:
        from ..config.pipeline import package_versions

        ver = package_versions()
    return {"versions": json.dumps(ver, indent=1), "config": cfg_text or "defaults"}


SECTIONS: list[Section] = [
    Section("headline", "Headline", build_headline),
    Section("cohort", "Cohort summary", build_cohort),
    Section("failures", "Failures", build_failures),
    Section("qc", "Segmentation QC (flagged scans first)", build_qc),
    Section("qct", "QCT distributions", build_qct),
    Section("acquisition", "Density by acquisition; QC gate", build_acquisition),
    Section("not_fitted", "Why no model was fitted", build_not_fitted),
    Section("clusters", "Imaging phenotypes (clusters)", build_clusters),
    Section("models", "Prediction models (cross-validated, bootstrap CIs)", build_models),
    Section("comparison", "Comparison of feature sets (same folds)", build_comparison),
    Section("importance", "Explainability", build_importance),
    Section("synthetic", "Synthetic cohort: recovery of the generator's truth", build_synthetic),
    Section("run", "Run configuration and versions", build_run),
]
"""Every section, in report order (a builder returning None leaves its section out)."""
