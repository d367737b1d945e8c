"""One self-contained static HTML report (``<workdir>/report/index.html``).

Images are embedded as base64 PNG data URIs and styles are inline, so the file opens with no
server and makes no external request. Every table shown is also written as CSV and Parquet
under ``report/tables/`` and every figure as PNG under ``report/figures/``. Only pseudonymous
ids appear. A small inline script records, on load, how many images decoded and which sections
are empty (``data-images-loaded`` / ``data-images-total`` / ``data-empty-sections`` on ``<body>``),
for automated rendering checks.
"""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ..io.layout import WorkDir
from ..io.tables import atomic_path
from ..preprocess.gate import qc_flag_table
from . import acquisition, figures

STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0}td,th{border:1px solid #ccc;padding:2px 6px}
th{background:#eee}section{margin-bottom:2em}img{max-width:100%;margin:4px}
.thumbs{display:flex;flex-wrap:wrap}.thumbs figure{width:31%;margin:4px}.thumbs figcaption{font-size:11px}pre{background:#f6f6f6;
padding:8px;font-size:11px;max-height:400px;overflow:auto}.note{color:#666;font-style:italic}"""

CHECK_SCRIPT = """window.addEventListener('load',function(){var im=document.images,ok=0;
for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}
var empty=[];document.querySelectorAll('section').forEach(function(s){var t=s.cloneNode(true);
var h=t.querySelector('h2');if(h)h.remove();if(t.textContent.trim().length===0&&!t.querySelector('img'))
empty.push(s.id);});var b=document.body;b.setAttribute('data-images-total',im.length);
b.setAttribute('data-images-loaded',ok);b.setAttribute('data-empty-sections',empty.join(','));
b.setAttribute('data-status','checked');});"""


class _Builder:
    def __init__(self, wd: WorkDir) -> None:
        self.wd = wd
        self.fig_dir = wd.report_dir / "figures"
        self.tab_dir = wd.report_dir / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.tab_dir.mkdir(parents=True, exist_ok=True)
        self.sections: list[tuple[str, str, list[str]]] = []

    def section(self, sid: str, title: str) -> list[str]:
        body: list[str] = []
        self.sections.append((sid, title, body))
        return body

    def image(self, name: str, png: bytes, alt: str) -> str:
        (self.fig_dir / f"{name}.png").write_bytes(png)
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'

    def table(self, name: str, df: pd.DataFrame, *, max_rows: int = 60, floatfmt: str = "{:.3g}") -> str:
        df.to_csv(self.tab_dir / f"{name}.csv", index=False)
        df.reset_index(drop=True).to_parquet(self.tab_dir / f"{name}.parquet")
        shown = df.head(max_rows)
        more = (
            f'<p class="note">first {max_rows} of {len(df)} rows; all in tables/{name}.csv</p>'
            if len(df) > max_rows
            else ""
        )
        return shown.to_html(index=False, float_format=floatfmt.format, border=0, na_rep="–") + more

    def render(self, title: str) -> str:
        nav = " · ".join(f'<a href="#{sid}">{html.escape(t)}</a>' for sid, t, _ in self.sections)
        body = "\n".join(
            f'<section id="{sid}"><h2>{html.escape(t)}</h2>\n' + "\n".join(parts) + "</section>"
            for sid, t, parts in self.sections
        )
        stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        return (
            f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style><script>{CHECK_SCRIPT}</script></head><body><h1>{html.escape(title)}</h1>"
            f"<p class='note'>generated {stamp} by ctpheno; subject and scan ids are pseudonyms</p>"
            f"<nav>{nav}</nav>{body}</body></html>"
        )


def _missing(what: str, fix: str) -> str:
    return f'<p class="note">{html.escape(what)} not available: {html.escape(fix)}</p>'


def _read(path: Path) -> pd.DataFrame | None:
    return pd.read_parquet(path) if path.is_file() else None


def build_report(
    wd: WorkDir,
    *,
    synthetic: pd.DataFrame | None = None,
    title: str = "ctpheno report",
    max_qc_images: int = 12,
    config_yaml: str | None = None,
    versions: dict | None = None,
) -> Path:
    """Write ``wd.report`` from the work directory's artifacts; return its path.

    Missing artifacts give a sentence saying which stage produces them, never an empty section.
    """
    b = _Builder(wd)
    man, clin, fail = _read(wd.manifest), _read(wd.clinical), _read(wd.failures)
    qct, qc = _read(wd.qct), _read(wd.qc_table)
    mdir = wd.models_dir
    sel, assign, prof = (
        _read(mdir / "clusters" / f"{n}.parquet") for n in ("selection", "assignments", "profiles")
    )
    met, comp, pred, imp, pdp = (
        _read(mdir / "supervised" / f"{n}.parquet")
        for n in ("metrics", "comparison", "predictions", "importance", "partial_dependence")
    )
    gold = None
    if clin is not None and "gold_stage" in clin:
        gold = clin.set_index("subject_id")["gold_stage"]

    s = b.section("cohort", "Cohort summary")
    rows = []
    if man is not None:
        rows += [
            ("series discovered", len(man)),
            ("usable series", int(man["usable"].sum())),
            ("subjects", man["subject_id"].nunique()),
        ]
    if clin is not None:
        rows.append(("subjects with clinical data", len(clin)))
        for c in ("age_years", "height_cm", "pack_years", "fev1_pct_pred", "fev1_fvc"):
            if c in clin:
                rows.append((f"{c} mean (SD)", f"{clin[c].mean():.3g} ({clin[c].std():.2g})"))
        if "sex" in clin:
            rows.append(("sex M/F", f"{(clin['sex'] == 'M').sum()}/{(clin['sex'] == 'F').sum()}"))
        if "gold_stage" in clin:
            rows += [
                (f"GOLD {int(k)}", int(v)) for k, v in clin["gold_stage"].value_counts().sort_index().items()
            ]
    s.append(
        b.table("cohort_summary", pd.DataFrame(rows, columns=["item", "value"]).astype(str))
        if rows
        else _missing("manifest and clinical table", "run `ctpheno ingest`")
    )

    s = b.section("failures", "Failures")
    if fail is not None and len(fail):
        s.append(
            b.table(
                "failures",
                fail[[c for c in ("scan_id", "stage", "error_type", "message", "attempts") if c in fail]],
            )
        )
    else:
        s.append("<p>No per-scan failures recorded.</p>")
    if man is not None and "usable" in man and (~man["usable"].fillna(False).astype(bool)).any():
        bad = man[~man["usable"].fillna(False).astype(bool)]
        cols = [c for c in ("scan_id", "subject_id", "modality", "reasons", "source") if c in bad]
        s.append("<h3>Series rejected at ingest</h3>")
        s.append(b.table("rejected_series", bad[cols], max_rows=200))

    s = b.section("qc", "Segmentation QC")
    if qc is not None:
        qc = acquisition.flagged_first(qc, qc_flag_table(wd))  # flagged scans first (issue #14)
        ids = list(qc["scan_id"])[:max_qc_images]
        thumbs = [
            f"<figure>{b.image(f'qc_{sid}', wd.qc_png(sid).read_bytes(), f'QC montage {sid}')}"
            f"<figcaption>{html.escape(sid)}</figcaption></figure>"
            for sid in ids
            if wd.qc_png(sid).is_file()
        ]
        if thumbs:
            s.append('<div class="thumbs">' + "".join(thumbs) + "</div>")
        s.append(b.table("qc", qc, max_rows=12))
    else:
        s.append(_missing("QC table and montages", "run `ctpheno preprocess`"))

    s = b.section("qct", "QCT distributions")
    if qct is not None:
        whole = qct[qct["region"] == "whole"].set_index("scan_id")
        g = None
        if gold is not None and man is not None:
            g = man.set_index("scan_id")["subject_id"].map(gold)
        s.append(b.image("qct_distributions", figures.qct_distributions(whole, g), "QCT distributions"))
        desc = whole.select_dtypes("number").describe().T.reset_index().rename(columns={"index": "metric"})
        s.append(b.table("qct_whole_summary", desc))
    else:
        s.append(_missing("QCT metrics", "run `ctpheno features`"))

    acquisition.add_acquisition_section(b, b.section("acquisition", "Density by acquisition; QC gate"), wd)

    s = b.section("clusters", "Imaging phenotypes (clusters)")
    if sel is not None and assign is not None:
        s.append(
            "<p>k chosen among stable k (mean ARI between subsample clusterings &ge; threshold) by "
            "silhouette (k-means) or BIC (Gaussian mixture); HDBSCAN chooses its own number.</p>"
        )
        s.append(b.table("cluster_selection", sel))
        for (fset, algo), a in assign.groupby(["feature_set", "algorithm"], sort=False):
            if algo != "kmeans":
                continue
            name = f"cluster_map_{fset.replace('+', '-')}_{algo}"
            s.append(b.image(name, figures.cluster_map(a, gold, f"{fset} / {algo}"), f"cluster map {fset}"))
        if prof is not None:
            s.append("<h3>Cluster profiles</h3>" + b.table("cluster_profiles", prof, max_rows=80))
    else:
        s.append(_missing("clusters", "run `ctpheno train` (clustering)"))

    s = b.section("models", "Prediction models (cross-validated, bootstrap CIs)")
    if met is not None and len(met):
        s.append(b.table("model_metrics", met, max_rows=300))
        for target, metric in (
            ("fev1_pct_pred", "r2"),
            ("gold_stage", "within_one_accuracy"),
            ("copd", "auc"),
        ):
            if ((met["target"] == target) & (met["metric"] == metric)).any():
                s.append(
                    b.image(
                        f"forest_{target}", figures.metric_forest(met, target, metric), f"{target} {metric}"
                    )
                )
        if pred is not None and len(pred):
            p = pred[(pred["target"] == "fev1_pct_pred")]
            if len(p):
                best = (
                    met[(met["target"] == "fev1_pct_pred") & (met["metric"] == "r2")]
                    .sort_values("estimate")
                    .iloc[-1]
                )
                p = p[(p["feature_set"] == best["feature_set"]) & (p["model"] == best["model"])]
                s.append(
                    b.image(
                        "fev1_observed_predicted",
                        figures.observed_vs_predicted(
                            p, f"FEV1 %pred ({best['feature_set']}, {best['model']})"
                        ),
                        "FEV1 observed vs predicted",
                    )
                )
    else:
        s.append(_missing("model metrics", "run `ctpheno train` (supervised)"))

    s = b.section("comparison", "Comparison of feature sets (same folds)")
    if comp is not None and len(comp):
        s.append(
            "<p>Difference of the primary metric, feature_set minus reference_set, same models and CV folds: "
            "mean over folds, paired bootstrap CI and p over subjects, Nadeau-Bengio corrected resampled t-test.</p>"
        )
        s.append(b.table("comparison", comp, max_rows=200))
    else:
        s.append(
            _missing("comparison", "configure two or more feature sets in models.supervised.feature_sets")
        )

    s = b.section("importance", "Explainability")
    if imp is not None and len(imp):
        s.append(b.table("importance", imp, max_rows=200))
        for (target, model, kind), g in imp.groupby(["target", "model", "kind"], sort=False):
            if target in ("fev1_pct_pred", "gold_stage"):
                s.append(
                    b.image(
                        f"importance_{target}_{model}_{kind}",
                        figures.importance_bars(g, f"{target} / {model} / {kind}"),
                        f"importance {target}",
                    )
                )
        if pdp is not None and len(pdp):
            s.append("<h3>Partial dependence of FEV1 %pred on LAA-950</h3>")
            s.append(b.image("pd_fev1_laa950", figures.partial_dependence_plot(pdp), "partial dependence"))
    else:
        s.append(_missing("feature importances", "run `ctpheno train` (supervised)"))

    if synthetic is not None and len(synthetic):
        s = b.section("synthetic", "Synthetic cohort: recovery of the generator's truth")
        s.append(
            "<p>Cluster agreement with the latent subtype (adjusted Rand index), cross-validated FEV1 %pred "
            "R&sup2; as a fraction of the generator's oracle R&sup2;, and GOLD within-one-stage accuracy.</p>"
        )
        s.append(b.table("synthetic_acceptance", synthetic))

    s = b.section("run", "Run configuration and versions")
    cfg_text, ver = config_yaml, versions
    runs = (
        sorted(wd.runs_dir.glob("*/config.resolved.yaml"), key=lambda p: p.stat().st_mtime)
        if wd.runs_dir.is_dir()
        else []
    )
    if runs:
        cfg_text = runs[-1].read_text()
        vf = runs[-1].parent / "versions.json"
        if vf.is_file():
            ver = json.loads(vf.read_text())
    if ver is None:
        from ..config.pipeline import package_versions

        ver = package_versions()
    s.append(f"<h3>Versions</h3><pre>{html.escape(json.dumps(ver, indent=1))}</pre>")
    s.append(f"<h3>Configuration</h3><pre>{html.escape(cfg_text or 'defaults')}</pre>")

    with atomic_path(wd.report) as tmp:
        tmp.write_text(b.render(title), encoding="utf-8")
    return wd.report
