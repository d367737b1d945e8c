import numpy as np
import pytest

from ctpheno.config.models import UnsupervisedConfig
from ctpheno.train.cluster import cluster_cohort, fit_labels, stability


@pytest.fixture(scope="module")
def clustered(synth60):
    cfg = UnsupervisedConfig(reference_labels="subtype", embedding_map="pca")
    return cluster_cohort(synth60["cohort"], cfg)


def test_recovers_latent_subtype_for_best_set(clustered):
    ch = clustered.selection[clustered.selection["chosen"]]
    assert set(ch["feature_set"]) == {"phenotype", "qct", "radiomics", "embeddings", "qct+radiomics+embeddings"}
    assert ch["reference_ari"].max() >= 0.8, ch.to_string()
    # shuffled reference labels are not recovered by the same clusters
    rng = np.random.default_rng(0)
    from ctpheno.train.metrics import ari

    best = ch.sort_values("reference_ari").iloc[-1]
    a = clustered.assignments
    a = a[(a["feature_set"] == best["feature_set"]) & (a["algorithm"] == best["algorithm"])]
    assert abs(ari(rng.permutation(a["cluster"].to_numpy()), a["cluster"].to_numpy())) < 0.2


def test_profiles_and_assignments_cover_every_subject(clustered, synth60):
    n = len(synth60["cohort"].frame)
    for (fset, algo), g in clustered.profiles.groupby(["feature_set", "algorithm"]):
        assert g["n"].sum() == n
    assert {"qct_laa950_pct__upper", "fev1_pct_pred", "gold_0_n"} <= set(clustered.profiles.columns)
    a = clustered.assignments
    assert len(a) == n * 15 and a[["map_x", "map_y"]].notna().all().all()


def test_stability_high_for_separated_blobs_low_for_noise():
    rng = np.random.default_rng(1)
    blobs = np.concatenate([rng.normal(c, 0.3, size=(20, 3)) for c in (0, 5, 10)])
    noise = rng.normal(size=(60, 3))
    assert stability("kmeans", blobs, 3, n_boot=6, fraction=0.8, seed=0) > 0.95
    assert stability("kmeans", noise, 5, n_boot=6, fraction=0.8, seed=0) < 0.8
    assert len(set(fit_labels("gmm", blobs, 3, seed=0))) == 3
    with pytest.raises(ValueError, match="unknown clustering algorithm 'spectral'"):
        fit_labels("spectral", blobs, 3, seed=0)
