"""The headline's numbers: best model per target, Holm adjustment, best-vs-runner-up, cluster spread."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.eval.headline import (best_models, chosen_clusterings, cluster_spread, headline_comparison, holm,
                                   with_holm)


def test_holm_step_down_by_hand():
    # finite p sorted: .01 .03 .04 .5 (m = 4) -> 4x.01=.04, 3x.03=.09, 2x.04=.08 -> .09 (monotone), 1x.5=.5
    out = holm([0.01, 0.04, 0.03, np.nan, 0.5])
    np.testing.assert_allclose(out, [0.04, 0.09, 0.09, np.nan, 0.5])
    assert holm([0.9, 0.8])[0] == 1.0 and np.isnan(holm([np.nan])).all()


def _metrics() -> pd.DataFrame:
    rows = []
    fev1 = dict(target="fev1_pct_pred", task="regression", model="linear", n_subjects=40)
    for fset, r2 in (("qct", 0.40), ("radiomics", 0.55), ("embeddings", 0.30)):
        rows.append(dict(fev1, feature_set=fset, metric="r2", estimate=r2, ci_low=r2 - 0.1, ci_high=r2 + 0.1))
        # not the primary metric: never the one compared
        rows.append(dict(fev1, feature_set=fset, metric="mae", estimate=10 - r2, ci_low=9, ci_high=11))
    rows.append(dict(target="copd", task="binary", feature_set="qct", model="linear", metric="auc",
                     estimate=0.8, ci_low=0.7, ci_high=0.9, n_subjects=40))
    return pd.DataFrame(rows)


def test_best_model_per_target_uses_the_primary_metric():
    best = best_models(_metrics()).set_index("target")
    fev1 = best.loc["fev1_pct_pred"]
    assert fev1["feature_set"] == "radiomics" and fev1["metric"] == "r2"
    assert best.loc["fev1_pct_pred", "n_candidates"] == 3 and best.loc["copd", "estimate"] == 0.8


def test_headline_comparison_is_best_minus_runner_up_whichever_way_it_was_computed():
    met = _metrics()
    same = dict(target="fev1_pct_pred", model="linear", metric="r2", reference_set="radiomics", boot_p=0.0)
    comp = pd.DataFrame([  # computed as qct minus radiomics (runner-up minus best)
        dict(same, feature_set="qct", difference_fold_mean=-0.15, boot_ci_low=-0.25, boot_ci_high=0.02,
             corrected_p=0.01),
        dict(same, feature_set="embeddings", difference_fold_mean=-0.25, boot_ci_low=-0.4, boot_ci_high=-0.1,
             corrected_p=0.02),
    ])
    best = best_models(met).set_index("target").loc["fev1_pct_pred"].rename("x")
    best["target"] = "fev1_pct_pred"
    c = headline_comparison(with_holm(comp), met, best)
    assert (c["better"], c["other"]) == ("radiomics", "qct")
    assert c["difference"] == pytest.approx(0.15)
    assert (c["ci_low"], c["ci_high"]) == pytest.approx((-0.02, 0.25))
    assert c["p_holm"] == pytest.approx(0.02) and c["n_comparisons"] == 2  # 2 x 0.01, Holm over both


def test_chosen_clusterings_drop_hdbscan_without_clusters_and_spread_is_median_iqr():
    sel = pd.DataFrame([
        dict(feature_set="qct", algorithm="kmeans", k=3, stability_ari=0.7, silhouette=0.3, chosen=True),
        dict(feature_set="qct", algorithm="hdbscan", k=0, stability_ari=1.0, silhouette=np.nan, chosen=True),
        dict(feature_set="qct", algorithm="gmm", k=2, stability_ari=0.9, silhouette=0.2, chosen=True),
        dict(feature_set="qct", algorithm="gmm", k=3, stability_ari=0.95, silhouette=0.2, chosen=False),
    ])
    ch = chosen_clusterings(sel)
    assert ch["algorithm"].tolist() == ["gmm", "kmeans"]
    subjects = [f"p-{i}" for i in range(8)]
    assign = pd.DataFrame({"subject_id": subjects, "cluster": [0, 0, 0, 0, 1, 1, 1, -1]})
    laa = np.array([1.0, 2.0, 3.0, 10.0, 20.0, 30.0, 40.0, 5.0])
    measures = pd.DataFrame({"laa950_pct": laa, "gold_stage": [0, 0, 1, 1, 2, 3, 3, 0]}, index=subjects)
    spread = cluster_spread(assign, measures).set_index("cluster")
    q = np.quantile(laa[:4], [0.25, 0.5, 0.75])
    assert spread.loc[0, "LAA-950 (%)"] == f"{q[1]:.3g} ({q[0]:.3g} to {q[2]:.3g})"
    assert spread.loc[1, "GOLD 0/1/2/3/4"] == "0/0/1/2/0" and spread.loc["noise", "n"] == 1
    assert spread.loc[0, "FEV1 %pred"] == "–"  # no clinical value: said, not invented
