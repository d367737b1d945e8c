import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from ctpheno.config.models import PreprocessingConfig
from ctpheno.train.features import (
    CorrelationPruner,
    assemble_cohort,
    pivot_embeddings,
    phenotype_axes,
    qct_core,
    pivot_qct,
    preprocessor,
    transformed_names,
)
from ctpheno.train.testing import write_synthetic_workdir


def test_pivot_names():
    qct = pd.DataFrame(
        {
            "scan_id": ["a", "a", "b", "b"],
            "region": ["whole", "upper"] * 2,
            "laa950_pct": [1.0, 2.0, 3.0, 4.0],
        }
    )
    w = pivot_qct(qct)
    assert list(w.columns) == ["qct_laa950_pct__whole", "qct_laa950_pct__upper"]  # canonical order
    assert w.loc["b", "qct_laa950_pct__upper"] == 4.0
    emb = pd.DataFrame({"scan_id": ["a"], "region": ["whole"], "model": ["ssl"], "emb_000": [0.5]})
    assert list(pivot_embeddings(emb).columns) == ["emb_ssl_000__whole"]
    with pytest.raises(ValueError, match="embedding_model='cnn' is not in embeddings.parquet"):
        pivot_embeddings(emb, model="cnn")


def test_phenotype_axes_known_values():
    rows = []
    for scan, (whole, upper, lower, d, wall) in {
        "cle": (20.0, 30.0, 5.0, 1.1, -740.0),   # upper-zone predominant
        "ple": (20.0, 4.9, 39.9, 0.5, -735.0),   # lower-zone predominant
        "none": (0.0, 0.0, 0.0, np.nan, -610.0),  # no emphysema: ratio 1, D undefined
    }.items():
        rows += [
            dict(scan_id=scan, region="whole", laa950_pct=whole, lac_d_950=d, airway_wall_hu=wall),
            dict(scan_id=scan, region="upper", laa950_pct=upper, lac_d_950=np.nan, airway_wall_hu=np.nan),
            dict(scan_id=scan, region="lower", laa950_pct=lower, lac_d_950=np.nan, airway_wall_hu=np.nan),
        ]
    ph = phenotype_axes(pivot_qct(pd.DataFrame(rows)))
    assert list(ph.columns) == ["phe_log_laa950", "phe_log_upper_lower", "phe_lac_d_950", "phe_pi10_mm",
                                "phe_airway_wall_hu"]
    assert ph["phe_pi10_mm"].isna().all()  # no per-branch airway measures in this table: a missing axis
    np.testing.assert_allclose(ph.loc["cle", "phe_log_laa950"], np.log(21.0))
    np.testing.assert_allclose(ph.loc["cle", "phe_log_upper_lower"], np.log(30.1 / 5.1))
    np.testing.assert_allclose(ph.loc["ple", "phe_log_upper_lower"], np.log(5.0 / 40.0))
    assert ph.loc["none", "phe_log_upper_lower"] == 0.0 and ph.loc["none", "phe_log_laa950"] == 0.0
    assert np.isnan(ph.loc["none", "phe_lac_d_950"]) and ph.loc["ple", "phe_airway_wall_hu"] == -735.0
    # a QCT table without airway metrics gives a missing axis, not an error
    no_aw = pivot_qct(pd.DataFrame(rows).drop(columns="airway_wall_hu"))
    assert phenotype_axes(no_aw)["phe_airway_wall_hu"].isna().all()


def test_qct_core_is_the_whole_lung_standard_measures():
    rows = [dict(scan_id="a", region="whole", laa950_pct=12.5, perc15_hu=-948.0, lung_volume_ml=6100.0,
                 airway_wall_hu=-702.0, mld_hu=-860.0),
            dict(scan_id="a", region="upper", laa950_pct=30.0, perc15_hu=-990.0, lung_volume_ml=2000.0,
                 airway_wall_hu=np.nan, mld_hu=-900.0)]
    core = qct_core(pivot_qct(pd.DataFrame(rows)))
    assert list(core.columns) == ["core_laa950_pct", "core_perc15_hu", "core_lung_volume_ml", "core_pi10_mm",
                                  "core_airway_wall_hu"]
    assert core.loc["a"].drop("core_pi10_mm").tolist() == [12.5, -948.0, 6100.0, -702.0]
    assert np.isnan(core.loc["a", "core_pi10_mm"])  # thick-slice table: Pi10 missing
    # a metric the QCT table lacks is a missing column (imputed in the folds), not an error
    assert qct_core(pivot_qct(pd.DataFrame(rows).drop(columns="airway_wall_hu")))["core_airway_wall_hu"].isna().all()


def test_pooled_airway_profile_columns_are_not_features():
    rows = [dict(scan_id="a", region="whole", laa950_pct=12.5, pi10_mm=3.7, wa_pct_seg=61.0,
                 pooled_airway_wall_thickness_mm=3.9, pooled_airway_wa_pct=70.0, airway_wall_hu=-702.0)]
    wide = pivot_qct(pd.DataFrame(rows))
    assert {"qct_pi10_mm__whole", "qct_wa_pct_seg__whole", "qct_airway_wall_hu__whole"} <= set(wide.columns)
    assert not any("pooled_" in c for c in wide.columns), list(wide.columns)


def test_assemble_one_row_per_subject_usable_only(tmp_path):
    info = write_synthetic_workdir(tmp_path, n=10, seed=1)
    wd = info["workdir"]
    man = pd.read_parquet(wd.manifest)
    man.loc[0, "usable"] = False
    extra = man.iloc[[1]].assign(scan_id="s-extra", acquisition_offset_days=400.0)  # follow-up scan
    pd.concat([man, extra]).to_parquet(wd.manifest)
    q = pd.read_parquet(wd.qct)
    pd.concat([q, q[q.scan_id == man.scan_id[1]].assign(scan_id="s-extra")]).to_parquet(wd.qct)
    c = assemble_cohort(wd)
    assert len(c.frame) == 9 and c.frame.index.is_unique
    assert man.subject_id[0] not in c.frame.index
    assert c.frame.loc[man.subject_id[1], "scan_id"] == man.scan_id[1]  # baseline kept
    assert set(c.columns) == {"qct", "phenotype", "qct_core", "radiomics", "embeddings"}
    assert c.frame["copd"].eq(c.frame["gold_stage"] >= 1).all()
    with pytest.raises(ValueError, match="needs the 'foo' table"):
        c.feature_columns("qct+foo")


def test_pruner_drops_correlated_constant_and_missing():
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    X = pd.DataFrame(
        {
            "a": a,
            "a2": 2 * a + 1e-3 * rng.normal(size=50),
            "b": rng.normal(size=50),
            "const": 1.0,
            "holes": np.where(np.arange(50) < 20, np.nan, 1.0) * rng.normal(size=50),
        }
    )
    p = CorrelationPruner(0.95, 0.2).fit(X)
    assert list(p.get_feature_names_out()) == ["a", "b"]
    with pytest.raises(ValueError, match="every feature is constant"):
        CorrelationPruner().fit(pd.DataFrame({"c": np.ones(5)}))


def test_preprocessing_is_fitted_on_training_rows_only():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=30), "z": rng.normal(size=30)})
    X.loc[25:, "x"] += 100.0  # a shifted "test" block
    X.loc[3, "x"] = np.nan
    pipe = Pipeline(preprocessor(PreprocessingConfig()))
    pipe.fit(X.iloc[:25])
    assert pipe.named_steps["impute"].statistics_[0] == pytest.approx(np.nanmedian(X["x"][:25]))
    assert pipe.named_steps["scale"].mean_[0] == pytest.approx(
        X["x"][:25].fillna(np.nanmedian(X["x"][:25])).mean()
    )
    assert transformed_names(pipe) == ["x", "z"]


def test_adjusted_density_replaces_its_raw_twin_and_gate_excludes(synth60):
    from ctpheno.train.features import qct_feature_columns

    cols = ["qct_laa950_pct__whole", "qct_laa950_adj_pct__whole", "qct_perc15_hu__whole", "qct_lac_d_950__whole",
            "qct_perc15_voladj_hu__whole"]
    assert qct_feature_columns(cols, "adjusted") == ["qct_laa950_adj_pct__whole", "qct_perc15_hu__whole",
                                                     "qct_lac_d_950__whole", "qct_perc15_voladj_hu__whole"]
    assert qct_feature_columns(cols, "raw") == ["qct_laa950_pct__whole", "qct_perc15_hu__whole",
                                                "qct_lac_d_950__whole"]
    wd = synth60["workdir"]
    full = assemble_cohort(wd)
    gone = set(full.frame["scan_id"][:3])
    gated = assemble_cohort(wd, exclude=gone)
    assert len(gated.frame) == len(full.frame) - 3 and not gone & set(gated.frame["scan_id"])
