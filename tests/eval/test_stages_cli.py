"""Stage results, resume, saved models, `ctpheno predict` and the module entry points."""

from __future__ import annotations

import subprocess
import sys

import joblib
import pandas as pd
from typer.testing import CliRunner

from ctpheno.cli import app


def test_stage_outputs_and_resume(trained, report_cfg):
    from ctpheno.train.stage import run_clustering

    wd, res = trained["wd"], trained["results"]
    assert "qct/kmeans" in res["run_clustering"].summary()
    assert "FEV1 %pred R2" in res["run_supervised"].summary()
    sel = pd.read_parquet(wd.models_dir / "clusters" / "selection.parquet")
    chosen = sel.groupby(["feature_set", "algorithm"])["chosen"].sum()
    assert chosen.drop(index="hdbscan", level="algorithm").eq(1).all()  # k-means and GMM always choose a k
    assert chosen.le(1).all() and not (sel["chosen"] & (sel["k"] < 2)).any()  # HDBSCAN with no cluster: none
    assert (sel["algorithm"].eq("hdbscan") & sel["k"].lt(2)).any()  # the fixture has such a run (qct)
    assert run_clustering(report_cfg, wd, None).skipped  # unchanged inputs and config
    met = pd.read_parquet(wd.models_dir / "supervised" / "metrics.parquet")
    assert {"r2", "within_one_accuracy", "quadratic_kappa", "auc", "c_index"} <= set(met["metric"])
    bundle = joblib.load(wd.models_dir / "fev1_pct_pred__qct__lightgbm.joblib")
    assert bundle["target"] == "fev1_pct_pred" and bundle["features"][0].startswith("qct_")
    assert bundle["config"]["n_repeats"] == 1


def test_predict_cli_applies_saved_model(trained, tmp_path):
    wd = trained["wd"]
    out = tmp_path / "pred.csv"
    r = CliRunner().invoke(
        app,
        [
            "predict",
            "--model",
            str(wd.models_dir / "gold_stage__qct__linear.joblib"),
            "--workdir",
            str(wd.root),
            "--out",
            str(out),
        ],
    )
    assert r.exit_code == 0, r.output
    df = pd.read_csv(out)
    assert len(df) == 24 and df["prediction_stage"].between(0, 4).all()
    clin = pd.read_parquet(wd.clinical).set_index("subject_id")
    # in-sample predictions of a fitted model agree with the truth within one stage mostly
    assert ((df.set_index("subject_id")["prediction_stage"] - clin["gold_stage"]).abs() <= 1).mean() > 0.8
    r = CliRunner().invoke(
        app, ["predict", "--model", str(tmp_path / "nope.joblib"), "--workdir", str(wd.root)]
    )
    assert r.exit_code != 0 and "does not exist" in r.output


def test_module_entry_point(trained, tmp_path):
    import shutil

    root = tmp_path / "wd"
    shutil.copytree(trained["wd"].root, root)
    cfg = tmp_path / "unsupervised.yaml"
    cfg.write_text("feature_sets: [qct]\nalgorithms: [kmeans]\nn_bootstrap: 3\nembedding_map: pca\n")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "ctpheno.train.cluster",
            "--config",
            str(cfg),
            "--workdir",
            str(root),
            "--force",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "qct/kmeans: k=" in out.stdout
