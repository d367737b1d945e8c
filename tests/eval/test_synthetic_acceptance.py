import json

import pandas as pd
import pytest

from ctpheno.config.common import PathsConfig
from ctpheno.eval.synthetic import synthetic_acceptance
from ctpheno.ingest.pseudonym import Pseudonymizer
from ctpheno.io.layout import WorkDir


@pytest.mark.parametrize("salt_from", ["config", "environment"])
def test_truth_is_matched_through_pseudonyms(tmp_path, monkeypatch, salt_from):
    wd = WorkDir(tmp_path / "wd").ensure()
    if salt_from == "config":
        paths = PathsConfig(pseudonym_salt="s3cret")
    else:  # the recommended way: $CTPHENO_SALT, never written to a saved config
        monkeypatch.setenv("CTPHENO_SALT", "s3cret")
        paths = PathsConfig()
    pseudo = Pseudonymizer(b"s3cret")
    raw = [f"SYN{i:03d}" for i in range(12)]
    sub = ["none", "centrilobular", "airway"] * 4
    cohort = tmp_path / "synthetic"
    cohort.mkdir()
    pd.DataFrame({"subject_id": raw, "subtype": sub}).to_parquet(cohort / "truth.parquet")
    (cohort / "cohort.json").write_text(json.dumps({"oracle_r2_fev1_pct_pred": 0.5}))
    (wd.models_dir / "clusters").mkdir(parents=True)
    (wd.models_dir / "supervised").mkdir(parents=True)
    code = {"none": 2, "centrilobular": 0, "airway": 1}
    pd.DataFrame(
        {
            "subject_id": [pseudo.subject(r) for r in raw],
            "feature_set": "qct",
            "algorithm": "kmeans",
            "cluster": [code[s] for s in sub],
        }
    ).to_parquet(wd.models_dir / "clusters" / "assignments.parquet")
    pd.DataFrame(
        {
            "target": ["fev1_pct_pred", "gold_stage"],
            "metric": ["r2", "within_one_accuracy"],
            "feature_set": "qct",
            "model": "linear",
            "estimate": [0.46, 0.9],
            "ci_low": [0.3, 0.8],
            "ci_high": [0.6, 1.0],
        }
    ).to_parquet(wd.models_dir / "supervised" / "metrics.parquet")
    out = synthetic_acceptance(wd, cohort, paths).set_index("check")
    assert out.loc["cluster_ari", "value"] == pytest.approx(1.0)
    assert out.loc["fev1_r2_vs_oracle", "value"] == pytest.approx(0.92)
    assert bool(out.loc["fev1_r2_vs_oracle", "passed"])
    assert out.loc["gold_within_one", "ci_low"] == 0.8
    assert synthetic_acceptance(wd, tmp_path / "nowhere", paths) is None
