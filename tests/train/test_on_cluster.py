"""The model stages as Dask tasks give the same tables as the serial loop in the driver."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.cluster import open_client
from ctpheno.cluster.mapping import serial_map, task_map
from ctpheno.config import ClusterConfig
from ctpheno.config.models import SupervisedConfig, UnsupervisedConfig
from ctpheno.train.cluster import cluster_cohort
from ctpheno.train.features import assemble_cohort
from ctpheno.train.supervised import fit_supervised
from ctpheno.train.testing import write_synthetic_workdir


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    info = write_synthetic_workdir(tmp_path_factory.mktemp("small"), n=24, seed=5, n_embed=16, n_radiomics=10)
    return assemble_cohort(info["workdir"])


@pytest.fixture(scope="module")
def client():
    with open_client(ClusterConfig(kind="local", n_workers=2, threads_per_worker=1, memory_limit="1GiB")) as c:
        yield c


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


def test_supervised_on_workers_equals_serial(small, client):
    cfg = SupervisedConfig(targets=["fev1_pct_pred", "copd"], feature_sets=["qct_core", "phenotype"],
                           models=["linear", "lightgbm"], n_splits=3, n_repeats=1, n_bootstrap=50,
                           permutation_repeats=2, explain_set="phenotype", top_features=5,
                           lightgbm={"n_estimators": 20})
    serial = fit_supervised(small, cfg, mapper=serial_map)
    dask = fit_supervised(small, cfg, mapper=task_map(client))
    assert len(serial.metrics) == 2 * 2 * 2 * 2 and len(serial.comparison) == 2 * 2
    for name in ("metrics", "comparison", "predictions", "importance", "partial_dependence"):
        _same(getattr(serial, name), getattr(dask, name))
    assert serial.models.keys() == dask.models.keys()
    for stem, bundle in serial.models.items():
        X = small.frame[bundle["features"]]
        np.testing.assert_array_equal(bundle["pipeline"].predict(X), dask.models[stem]["pipeline"].predict(X))


def test_clustering_on_workers_equals_serial(small, client):
    cfg = UnsupervisedConfig(feature_sets=["phenotype", "qct"], algorithms=["kmeans", "gmm", "hdbscan"],
                             k_max=4, n_bootstrap=3, embedding_map="pca", reference_labels="subtype")
    serial = cluster_cohort(small, cfg, mapper=serial_map)
    dask = cluster_cohort(small, cfg, mapper=task_map(client))
    sel = serial.selection
    # one choice per (feature set, algorithm), except an HDBSCAN that finds no cluster (all noise)
    per_pair = sel.groupby(["feature_set", "algorithm"])["chosen"].sum()
    assert (per_pair <= 1).all() and per_pair.drop(index="hdbscan", level="algorithm").eq(1).all()
    for name in ("selection", "assignments", "profiles"):
        _same(getattr(serial, name), getattr(dask, name))
