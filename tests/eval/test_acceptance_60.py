"""Issue 8 acceptance on a 60-subject synthetic cohort, scored against the generator's truth.

One module-scoped run of ``ctpheno run`` (synth 60 demo subjects -> ingest -> preprocess ->
qct -> cluster -> supervised) on the QCT feature set, then
:func:`ctpheno.eval.synthetic.synthetic_acceptance`. Targets (issue 8): cluster ARI with the
latent subtype >= 0.8 for the best feature set; FEV1 %pred cross-validated R^2 >= 0.9 x the
cohort's oracle R^2; GOLD within-one accuracy reported with its CI. Each is asserted.

Measured (seed 7, 2 shared cores): the ``phenotype`` set (log extent, log upper/lower LAA ratio,
LAC exponent D, airway-wall density) gives k-means k = 5 chosen by stability + silhouette with
ARI 0.96 (GMM by BIC picks k = 4, ARI 0.67; HDBSCAN 0.82-0.87); the full ``qct`` set, dominated by
extent-correlated columns, stays at ARI 0.10-0.55. FEV1 R^2 / oracle: 0.92-0.94 over six fold
assignments with the four standard measures (``qct_core``: LAA-950, Perc15, lung volume,
airway-wall density measured around the bronchi continued into the lung; no age/sex/height,
which %pred already normalises for), 0.68-0.81 with ``qct``/``phenotype``
(docs/synthetic_cohort.md: the bound and how it was reached); GOLD within-one 0.93-0.98.

Runtime: 340 s on 2 quiet cores (synth and preprocess of 71 series dominate): more than a third of
the test suite's 15-minute budget, so it is an ``acceptance`` test, run by ``make acceptance`` and
left out of ``make test`` (the end-to-end and model tests cover the same code on 8-24 subjects).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.common import PathsConfig
from ctpheno.eval.synthetic import synthetic_acceptance
from ctpheno.io.layout import WorkDir

pytestmark = [pytest.mark.slow, pytest.mark.acceptance, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
SEED = 7
SETTINGS = [
    "synth.n_subjects=60",
    f"synth.seed={SEED}",
    "cluster.kind=local",
    "cluster.n_workers=2",
    "models.unsupervised.feature_sets=[phenotype,qct]",
    "models.supervised.feature_sets=[qct_core,qct,phenotype]",
    "models.supervised.targets=[fev1_pct_pred,gold_stage]",
    "models.supervised.n_bootstrap=200",
]


@pytest.fixture(scope="module")
def run60(tmp_path_factory):
    base = tmp_path_factory.mktemp("acc60")
    wd_root, archive = base / "wd", base / "cohort"
    cmd = [
        sys.executable, "-m", "ctpheno.cli", "run", "--config", str(REPO / "config" / "demo.yaml"),
        "--workdir", str(wd_root), "--stages", "synth,ingest,preprocess,qct,cluster,supervised",
    ]
    for s in [*SETTINGS, f"synth.out={archive}"]:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wd = WorkDir(wd_root)
    acc = synthetic_acceptance(wd, archive, PathsConfig())
    assert acc is not None, "no truth files or no model outputs"
    print("\n" + acc.to_string())
    return wd, acc, archive


def _truth_by_scan(wd: WorkDir, archive: Path) -> pd.DataFrame:
    from ctpheno.ingest.pseudonym import Pseudonymizer, resolve_salt

    pseudo = Pseudonymizer(resolve_salt(PathsConfig(), wd))
    truth = pd.read_parquet(archive / "truth.parquet")
    truth["subject_id"] = [pseudo.subject(s) for s in truth["subject_id"]]
    man = pd.read_parquet(wd.manifest, columns=["subject_id", "scan_id"])
    return man.merge(truth, on="subject_id").set_index("scan_id")


def test_every_subject_measured_with_airway_metrics(run60):
    wd, _, archive = run60
    q = pd.read_parquet(wd.qct)
    whole = q[q["region"] == "whole"].set_index("scan_id")
    assert len(whole) == 60
    assert whole["airway_wall_hu"].notna().mean() >= 0.95
    # airway wall density, measured around the bronchi continued into the lung, tracks the
    # generator's wall thickness (measured Pearson 0.98, Spearman 0.92; 0.88 and 0.74 around the
    # extra-pulmonary lumen alone)
    t = _truth_by_scan(wd, archive).join(whole["airway_wall_hu"], how="inner")
    r = t["airway_wall_hu"].corr(t["airway_wall_mm"])
    rho = t["airway_wall_hu"].corr(t["airway_wall_mm"], method="spearman")
    assert r >= 0.9 and rho >= 0.8, (r, rho)
    # and separates the airway subtype from subjects without airway disease
    aw = t.loc[t["subtype"] == "airway", "airway_wall_hu"]
    no = t.loc[t["subtype"] == "none", "airway_wall_hu"]
    assert aw.median() > no.quantile(0.9), (aw.median(), no.quantile(0.9))


def test_cluster_ari_best_feature_set(run60):
    _, acc, _ = run60
    ari = acc[acc["check"] == "cluster_ari"]
    assert set(ari["method"]) == {"kmeans", "gmm", "hdbscan"}
    assert set(ari["feature_set"]) == {"phenotype", "qct"}  # every set is reported
    best = ari.loc[ari["value"].idxmax()]
    # the four phenotype axes recover the latent subtype (measured: k-means k=5, ARI 0.96)
    assert best["feature_set"] == "phenotype" and best["value"] >= 0.8, ari.round(2).to_dict("records")


def test_fev1_r2_vs_oracle(run60):
    _, acc, _ = run60
    r = acc[acc["check"] == "fev1_r2_vs_oracle"]
    assert set(r["method"]) == {"linear", "elastic_net", "lightgbm"}
    best = r.loc[r["value"].idxmax()]
    # issue 8: >= 0.9 x the cohort's oracle (measured 0.92-0.94 over six fold
    # assignments with qct_core, linear and elastic net; bootstrap CI of one run [0.76, 1.05])
    assert best["value"] >= 0.9 and best["ci_low"] > 0.5, r.round(3).to_dict("records")
    assert best["feature_set"] == "qct_core", best.to_dict()


def test_gold_within_one_reported_with_ci(run60):
    _, acc, _ = run60
    g = acc[acc["check"] == "gold_within_one"]
    assert len(g) == 9  # three feature sets x three models
    for row in g.itertuples():
        assert np.isfinite([row.value, row.ci_low, row.ci_high]).all()
        assert row.ci_low <= row.value <= row.ci_high
        assert row.value > 0.6  # within-one of 5 ordinal stages: chance is ~0.5 at most
