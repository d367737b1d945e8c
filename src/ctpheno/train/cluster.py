"""Imaging phenotypes by clustering: k-means, Gaussian mixture, HDBSCAN with stability-based k.

For each feature set the features are pruned, imputed, standardised and PCA-reduced; for each
algorithm and k the *stability* is the mean adjusted Rand index (Hubert & Arabie 1985) between
clusterings of random subsamples, compared on the subjects they share (Lange et al., Neural
Comput 2004;16:1299-1323). Among the k whose stability reaches ``min_stability``, k-means takes
the best silhouette (Rousseeuw 1987) and the mixture the lowest BIC (Schwarz 1978).

``python -m ctpheno.train.cluster --config config/models/unsupervised.yaml`` runs this stage.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.cluster import HDBSCAN, KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import silhouette_score
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import Pipeline

from ..cluster.mapping import Mapper, serial_map
from ..config.models import UnsupervisedConfig
from .features import Cohort, preprocessor
from .metrics import ari

log = logging.getLogger(__name__)
PROFILE_METRICS = ("laa950_pct", "laa910_pct", "mld_hu", "perc15_hu", "lung_volume_ml")
CLINICAL_PROFILE = ("fev1_pct_pred", "fev1_fvc", "age_years", "pack_years", "fev1_decline_ml_per_year")


def reduce_features(X: pd.DataFrame, cfg: UnsupervisedConfig) -> npt.NDArray[np.float64]:
    """Pruned, imputed, standardised, PCA-reduced scores (n_subjects, n_components)."""
    pre = Pipeline(preprocessor(cfg.preprocessing))
    z = pre.fit_transform(X)
    n_max = int(min(cfg.pca_max_components, z.shape[1], z.shape[0] - 1))
    pca = PCA(n_components=n_max, random_state=cfg.random_state).fit(z)
    if cfg.pca_variance < 1.0:
        n = int(np.searchsorted(np.cumsum(pca.explained_variance_ratio_), cfg.pca_variance) + 1)
        n = max(2, min(n, n_max))
    else:
        n = n_max
    return pca.transform(z)[:, :n]


def fit_labels(
    algorithm: str, Z: npt.NDArray, k: int | None, *, seed: int, min_cluster_size: int = 4, n_init: int = 10
) -> npt.NDArray[np.int64]:
    """Cluster labels of one algorithm (HDBSCAN ignores ``k``; its noise points are -1)."""
    if algorithm == "kmeans":
        return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(Z)
    if algorithm == "gmm":
        return (
            GaussianMixture(
                n_components=k,
                covariance_type="diag",
                n_init=max(1, n_init // 3),
                reg_covar=1e-3,
                random_state=seed,
            )
            .fit(Z)
            .predict(Z)
        )
    if algorithm == "hdbscan":
        return HDBSCAN(min_cluster_size=min(min_cluster_size, len(Z) - 1), copy=True).fit_predict(Z)
    raise ValueError(f"unknown clustering algorithm {algorithm!r}; use kmeans, gmm or hdbscan")


def stability(
    algorithm: str,
    Z: npt.NDArray,
    k: int | None,
    *,
    n_boot: int,
    fraction: float,
    seed: int,
    min_cluster_size: int = 4,
) -> float:
    """Mean pairwise ARI between clusterings of subsamples, on the subjects each pair shares."""
    rng = np.random.default_rng(seed)
    n = len(Z)
    m = max(int(round(fraction * n)), (k or 2) + 1)
    labs = []
    for b in range(n_boot):
        idx = np.sort(rng.choice(n, size=m, replace=False))
        full = np.full(n, -2)
        full[idx] = fit_labels(
            algorithm, Z[idx], k, seed=seed + b, min_cluster_size=min_cluster_size, n_init=3
        )
        labs.append(full)
    aris = []
    for i in range(len(labs)):
        for j in range(i + 1, len(labs)):
            both = (labs[i] != -2) & (labs[j] != -2)
            aris.append(ari(labs[i][both], labs[j][both]))
    return float(np.mean(aris))


def _bic(Z: npt.NDArray, k: int, seed: int) -> float:
    return float(
        GaussianMixture(n_components=k, covariance_type="diag", n_init=3, reg_covar=1e-3, random_state=seed)
        .fit(Z)
        .bic(Z)
    )


@dataclass
class ClusterResult:
    """Tables of the clustering stage."""

    selection: pd.DataFrame
    """feature_set, algorithm, k, stability_ari, silhouette, bic, chosen (and reference_ari)."""
    assignments: pd.DataFrame
    """subject_id, feature_set, algorithm, cluster, map_x, map_y, map_method."""
    profiles: pd.DataFrame
    """feature_set, algorithm, cluster, n, mean QCT / zonal / spirometry values, GOLD counts."""

    def summary(self) -> str:
        ch = self.selection[self.selection["chosen"]]
        parts = [
            f"{r.feature_set}/{r.algorithm}: k={r.k}"
            + (f" ARI={r.reference_ari:.2f}" if "reference_ari" in ch and pd.notna(r.reference_ari) else "")
            for r in ch.itertuples()
        ]
        return "clustering: " + "; ".join(parts)


def cluster_cohort(cohort: Cohort, cfg: UnsupervisedConfig, *, mapper: Mapper = serial_map) -> ClusterResult:
    """Cluster every configured feature set with every algorithm; choose k; profile; map.

    Each (feature set, algorithm, k) fit with its stability bootstraps is one job
    (:func:`cluster_job`); ``mapper`` runs them (:func:`ctpheno.cluster.mapping.task_map` puts
    them on the Dask cluster). The jobs are seeded, so every mapper gives the same tables.
    """
    frame = cohort.frame
    n = len(frame)
    ks = [k for k in range(cfg.k_min, cfg.k_max + 1) if k <= max(2, n // 3)]
    truth = frame[cfg.reference_labels].to_numpy() if cfg.reference_labels and cfg.reference_labels in frame else None
    from threadpoolctl import threadpool_limits

    reduced = {}
    for fset in cfg.feature_sets:
        with threadpool_limits(1), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reduced[fset] = reduce_features(frame[cohort.feature_columns(fset)], cfg)
    jobs = [ClusterJob(fset, algo, k) for fset in cfg.feature_sets for algo in cfg.algorithms
            for k in ([None] if algo == "hdbscan" else ks)]
    out = dict(zip(jobs, mapper(cluster_job, jobs, reduced=reduced, cfg=cfg, truth=truth)))
    # the 2-D maps stay here: UMAP compiles its numba kernels once per process (~15 s), far more
    # than the map itself, so one process should draw them all
    maps = serial_map(cluster_job, [ClusterJob(fset, "map", None) for fset in cfg.feature_sets],
                      reduced=reduced, cfg=cfg, truth=truth)
    sel_rows, assign, profs = [], [], []
    for fset, (xy, how) in zip(cfg.feature_sets, maps):
        for algo in cfg.algorithms:
            rows = [out[j] for j in jobs if j.feature_set == fset and j.algorithm == algo]
            best = _choose(rows, algo, cfg.min_stability, cfg.k_selection)
            best["chosen"] = best["k"] >= 2  # HDBSCAN finding no cluster (all noise) chooses nothing
            sel_rows += rows
            assign.append(pd.DataFrame({"subject_id": frame.index, "feature_set": fset, "algorithm": algo,
                                        "cluster": best["labels"], "map_x": xy[:, 0], "map_y": xy[:, 1],
                                        "map_method": how}))
            prof = cluster_profiles(frame, best["labels"])
            prof.insert(0, "algorithm", algo)
            prof.insert(0, "feature_set", fset)
            profs.append(prof)
    selection = pd.DataFrame(sel_rows).drop(columns="labels")
    return ClusterResult(selection, pd.concat(assign, ignore_index=True), pd.concat(profs, ignore_index=True))


@dataclass(frozen=True)
class ClusterJob:
    """One clustering fit (``algorithm``, ``k``; HDBSCAN: k None) or the 2-D map (``algorithm`` "map")."""

    feature_set: str
    algorithm: str
    k: int | None


def cluster_job(job: ClusterJob, *, reduced: dict[str, npt.NDArray], cfg: UnsupervisedConfig,
                truth: npt.NDArray | None) -> Any:
    """Run one :class:`ClusterJob` on the reduced features of its set (top-level, deterministic).

    Returns ``(xy, method)`` for a map job, else the selection row (with the ``labels``).
    """
    from threadpoolctl import threadpool_limits

    Z = reduced[job.feature_set]
    with threadpool_limits(1), warnings.catch_warnings():  # tiny matrices: BLAS threads only add overhead
        warnings.simplefilter("ignore")
        if job.algorithm == "map":
            return _map(Z, cfg)
        return _score_k(Z, job, cfg, truth)


def _score_k(Z: npt.NDArray, job: ClusterJob, cfg: UnsupervisedConfig, truth: npt.NDArray | None) -> dict:
    algo, k = job.algorithm, job.k
    lab = fit_labels(algo, Z, k, seed=cfg.random_state, min_cluster_size=cfg.hdbscan_min_cluster_size)
    n_cl = len(set(lab) - {-1})
    ok = lab != -1
    sil = float(silhouette_score(Z[ok], lab[ok])) if 2 <= n_cl < ok.sum() else np.nan
    st = stability(algo, Z, k, n_boot=cfg.n_bootstrap, fraction=cfg.bootstrap_fraction, seed=cfg.random_state,
                   min_cluster_size=cfg.hdbscan_min_cluster_size)
    row = dict(feature_set=job.feature_set, algorithm=algo, k=n_cl, stability_ari=st, silhouette=sil,
               bic=_bic(Z, k, cfg.random_state) if algo == "gmm" else np.nan, n_components=Z.shape[1],
               chosen=False, labels=lab)
    if truth is not None:
        row["reference_ari"] = ari(truth, lab)
    return row


def _choose(rows: list[dict], algo: str, min_stability: float, rule: str) -> dict:
    if len(rows) == 1:
        return rows[0]
    ok = [r for r in rows if r["stability_ari"] >= min_stability] or [
        max(rows, key=lambda r: r["stability_ari"])
    ]
    if rule == "largest_stable":
        return max(ok, key=lambda r: r["k"])
    if algo == "gmm":
        return min(ok, key=lambda r: r["bic"])
    return max(ok, key=lambda r: -np.inf if np.isnan(r["silhouette"]) else r["silhouette"])


def _map(Z: npt.NDArray, cfg: UnsupervisedConfig) -> tuple[npt.NDArray, str]:
    if cfg.embedding_map == "umap" and len(Z) > 4:
        xy = _umap_map(Z, cfg)
        if xy is not None:
            return xy, "umap"
    xy = Z[:, :2] if Z.shape[1] >= 2 else np.column_stack([Z[:, 0], np.zeros(len(Z))])
    return xy, "pca"


def _umap_map(Z: npt.NDArray, cfg: UnsupervisedConfig) -> npt.NDArray | None:
    """2-D UMAP of ``Z``, or None (PCA is drawn instead) when umap-learn is absent or fails."""
    try:
        import umap
    except ImportError:
        log.info("umap-learn is not installed (pip install 'ctpheno[umap]'); the cluster map uses PCA")
        return None
    try:
        reducer = umap.UMAP(
            n_neighbors=min(cfg.umap_neighbors, len(Z) - 1),
            random_state=cfg.random_state,
            n_components=2,
            init="spectral" if len(Z) > 10 else "random",
        )
        return np.asarray(reducer.fit_transform(Z))
    except Exception as err:  # noqa: BLE001 - umap-learn failing on odd data: PCA map instead
        log.warning("UMAP map failed (%s); using PCA", err)
        return None


def cluster_profiles(frame: pd.DataFrame, labels: npt.NDArray) -> pd.DataFrame:
    """Per cluster: size, mean whole-lung QCT metrics, zonal LAA-950, spirometry, GOLD counts."""
    cols = [f"qct_{m}__whole" for m in PROFILE_METRICS]
    cols += [f"qct_laa950_pct__{z}" for z in ("upper", "middle", "lower")]
    cols += list(CLINICAL_PROFILE)
    cols = [c for c in cols if c in frame.columns]
    df = frame[cols].assign(cluster=labels)
    out = df.groupby("cluster").mean()
    out.insert(0, "n", df.groupby("cluster").size())
    if "gold_stage" in frame.columns:
        g = pd.crosstab(labels, frame["gold_stage"].fillna(-1).astype(int).to_numpy())
        g.columns = [f"gold_{c}_n" if c >= 0 else "gold_missing_n" for c in g.columns]
        g.index.name = "cluster"
        out = out.join(g)
    return out.reset_index()


if __name__ == "__main__":  # ``python -m ctpheno.train.cluster``; the entry point is in ctpheno.train.cli
    from .cli import cluster_main
    raise SystemExit(cluster_main())
