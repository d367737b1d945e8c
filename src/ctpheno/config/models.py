"""Clustering, supervised-model and report configuration (owned by ctpheno.train / ctpheno.eval).

Feature sets are named by the feature tables they join, ``+``-separated:
``qct``, ``radiomics``, ``embeddings``, ``qct+radiomics``, ``qct+radiomics+embeddings``; and
``phenotype``, the COPD phenotype axes derived from the QCT table (emphysema extent, apico-basal
distribution, cluster-size exponent, Pi10 on thin-slice scans, airway-wall density;
:func:`ctpheno.train.features.phenotype_axes`); ``qct_core``, the standard whole-lung measures
LAA-950, Perc15, lung volume, Pi10 and airway-wall density (:func:`ctpheno.train.features.qct_core`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, confloat, conint, field_validator

from .base import StrictModel

FEATURE_TABLES = ("qct", "radiomics", "embeddings", "phenotype", "qct_core")
"""Feature tables a feature set may combine."""

ClusterAlgorithm = Literal["kmeans", "gmm", "hdbscan"]
TargetName = Literal["fev1_pct_pred", "fev1_fvc", "gold_stage", "copd", "fev1_decline_ml_per_year"]
Covariate = Literal["age_years", "sex", "height_cm", "pack_years"]
ModelName = Literal["linear", "elastic_net", "lightgbm", "random_forest"]


def _check_sets(sets: list[str]) -> list[str]:
    for s in sets:
        parts = s.split("+")
        bad = [p for p in parts if p not in FEATURE_TABLES]
        if bad or len(set(parts)) != len(parts):
            raise ValueError(
                f"feature set {s!r} must join distinct names from {list(FEATURE_TABLES)} with '+'"
            )
    return sets


class PreprocessingConfig(StrictModel):
    """Feature preprocessing, always fitted inside the training folds."""

    max_missing_fraction: confloat(ge=0.0, le=1.0) = 0.2
    """Drop a feature missing in more than this fraction of training subjects."""
    impute: Literal["median", "mean"] = "median"
    """How remaining missing values are filled (statistics of the training fold)."""
    correlation_threshold: confloat(gt=0.0, le=1.0) = 0.95
    """Of two features with |Pearson r| above this, keep the earlier one (1.0 = no pruning)."""


class UnsupervisedConfig(StrictModel):
    """Phenotype clustering (``ctpheno.train.cluster``)."""

    enabled: bool = True
    """Run clustering."""
    feature_sets: list[str] = ["phenotype", "qct", "radiomics", "embeddings", "qct+radiomics+embeddings"]
    """Feature sets clustered and reported (``+`` joins tables; ``phenotype``: the QCT phenotype
    axes, which separate emphysema subtypes from severity)."""
    algorithms: list[ClusterAlgorithm] = ["kmeans", "gmm", "hdbscan"]
    """Algorithms: k-means, Gaussian mixture (full covariance on PCA scores), HDBSCAN."""
    k_min: conint(ge=2, le=20) = 2
    """Smallest number of clusters tried (k-means, GMM)."""
    k_max: conint(ge=2, le=20) = 6
    """Largest number of clusters tried (capped at n_subjects // 3)."""
    pca_variance: confloat(gt=0.0, le=1.0) = 0.9
    """PCA keeps the components explaining this fraction of variance (1.0 = all)."""
    pca_max_components: PositiveInt = 10
    """Upper bound on PCA components (small cohorts: few components keep GMM estimable)."""
    n_bootstrap: conint(ge=2, le=500) = 10
    """Resamples for the stability (bootstrap consensus) of each k."""
    bootstrap_fraction: confloat(gt=0.3, lt=1.0) = 0.8
    """Fraction of subjects drawn without replacement in each resample."""
    min_stability: confloat(ge=0.0, le=1.0) = 0.6
    """A k is eligible only if its mean pairwise ARI between resamples reaches this."""
    k_selection: Literal["criterion", "largest_stable"] = "criterion"
    """Among stable k: ``criterion`` = best silhouette (k-means) / lowest BIC (GMM);
    ``largest_stable`` = the largest k (finest stable partition, as in prediction strength)."""
    hdbscan_min_cluster_size: conint(ge=2) = 4
    """HDBSCAN's ``min_cluster_size``."""
    embedding_map: Literal["umap", "pca"] = "umap"
    """2-D map of subjects: UMAP (falls back to PCA when unavailable) or PCA."""
    umap_neighbors: conint(ge=2) = 10
    """UMAP ``n_neighbors`` (capped at n_subjects - 1)."""
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    """Missing values, correlation pruning."""
    embedding_model: str | None = None
    """Embedding model name to use from ``embeddings.parquet`` (None = every model present)."""
    reference_labels: str | None = None
    """Clinical-table column with known labels (e.g. a synthetic cohort's ``subtype``); when present,
    each clustering is scored against it by adjusted Rand index."""
    random_state: int = 0
    """Seed of every random step."""

    _v = field_validator("feature_sets")(classmethod(lambda cls, v: _check_sets(v)))


class LightGBMConfig(StrictModel):
    """Small, regularised gradient-boosted trees (tiny cohorts)."""

    n_estimators: PositiveInt = 150
    """Boosting rounds."""
    learning_rate: confloat(gt=0.0, le=1.0) = 0.05
    """Shrinkage."""
    num_leaves: conint(ge=2, le=64) = 4
    """Leaves per tree."""
    min_child_samples: conint(ge=1) = 3
    """Minimum subjects per leaf."""
    reg_lambda: confloat(ge=0.0) = 1.0
    """L2 penalty on leaf values."""
    colsample_bytree: confloat(gt=0.0, le=1.0) = 0.5
    """Fraction of features per tree."""


class SupervisedConfig(StrictModel):
    """FEV1 / GOLD / progression models (``ctpheno.train.supervised``)."""

    enabled: bool = True
    """Run supervised models."""
    targets: list[TargetName] = [
        "fev1_pct_pred",
        "fev1_fvc",
        "gold_stage",
        "copd",
        "fev1_decline_ml_per_year",
    ]
    """Targets: regression (FEV1 %pred, FEV1/FVC), ordinal GOLD 0-4, COPD yes/no (GOLD >= 1),
    progression (FEV1 decline, scored also by Harrell's C-index)."""
    feature_sets: list[str] = ["qct_core", "qct", "radiomics", "embeddings", "qct+radiomics+embeddings"]
    """Feature sets compared on the same folds (``qct_core``: the standard whole-lung QCT
    measures, the compact baseline the larger sets have to beat)."""
    models: list[ModelName] = ["linear", "elastic_net", "lightgbm"]
    """Models; ``linear`` (univariate screening + ridge / L2-logistic, k and penalty by inner CV) is
    always added; ``elastic_net`` (L1+L2 penalty and mix by inner 5-fold CV: ElasticNetCV /
    elastic-net logistic) selects features jointly rather than one by one."""
    covariates: list[Covariate] = [
        "age_years",
        "sex",
        "height_cm",
    ]
    """Clinical covariates appended to every feature set (empty = imaging only)."""
    covariates_by_target: dict[TargetName, list[Covariate]] = {"fev1_pct_pred": []}
    """Per-target replacement of ``covariates``. Default: none for FEV1 %pred, which its
    reference equation (NHANES III, Hankinson 1999) already normalises for age, sex and height,
    so they add only noise to it (on the 60-subject synthetic cohort they lowered the
    cross-validated R^2 by 0.02-0.08 of the oracle)."""
    n_splits: conint(ge=2, le=20) = 5
    """CV folds (reduced to the smallest stratum / class size when needed)."""
    n_repeats: conint(ge=1, le=50) = 3
    """CV repeats with different shuffles."""
    n_bootstrap: conint(ge=50, le=10000) = 400
    """Bootstrap resamples of subjects for confidence intervals."""
    ci_level: confloat(gt=0.5, lt=1.0) = 0.95
    """Confidence level of the intervals."""
    reference_set: str | None = None
    """Feature set the others are compared with (None = every pair of ``feature_sets``)."""
    explain_set: str = "qct"
    """Feature set whose models get permutation importance, SHAP and partial dependence."""
    permutation_repeats: conint(ge=1, le=100) = 5
    """Shuffles per feature for permutation importance (on held-out folds)."""
    top_features: PositiveInt = 15
    """Features listed per target in importance tables."""
    screening_k: list[conint(ge=0)] = [1, 2, 3, 5, 10, 20, 0]
    """Linear model: numbers of top univariate features (0 = all) among which inner 3-fold CV
    of each training fold chooses; small cohorts need few features."""
    lightgbm: LightGBMConfig = LightGBMConfig()
    """LightGBM settings."""
    preprocessing: PreprocessingConfig = PreprocessingConfig()
    """Missing values, correlation pruning."""
    embedding_model: str | None = None
    """Embedding model name to use from ``embeddings.parquet`` (None = every model present)."""
    save_models: bool = True
    """Fit each (target, set, model) on all subjects and save it under ``models/``."""
    random_state: int = 0
    """Seed of every random step."""

    _v = field_validator("feature_sets")(classmethod(lambda cls, v: _check_sets(v)))

    def covariates_for(self, target: str) -> list[str]:
        """The covariates of ``target``: its ``covariates_by_target`` entry, else ``covariates``."""
        return list(self.covariates_by_target.get(target, self.covariates))  # type: ignore[call-overload]


class QCGateConfig(StrictModel):
    """Which flagged scans the model stages leave out (``ctpheno.preprocess.gate``)."""

    enabled: bool = True
    """Leave scans with a gating QC flag out of clustering and the supervised models (they stay in
    every table and are listed in ``models/excluded_scans.parquet`` and the report)."""
    severities: list[Literal["info", "warn", "exclude"]] = ["exclude"]
    """Flag severities that gate (``ctpheno.preprocess.qc.QC_FLAG_SEVERITY``)."""
    keep_flags: list[str] = []
    """Flags never to gate on, whatever their severity (e.g. ``[apex_cut]`` to keep scans without
    their apices when no zonal metric is used)."""


class ModelsConfig(StrictModel):
    density: Literal["adjusted", "raw"] = "adjusted"
    """Density columns the QCT feature sets use: ``adjusted`` (``laa950_adj_pct``, ``perc15_adj_hu``
    ...: air-calibrated, noise-harmonised) or ``raw`` (the standard definitions as measured)."""
    qc_gate: QCGateConfig = QCGateConfig()
    """QC gating of the model stages."""
    unsupervised: UnsupervisedConfig = UnsupervisedConfig()
    """Clustering."""
    supervised: SupervisedConfig = SupervisedConfig()
    """Prediction."""


class ReportConfig(StrictModel):
    enabled: bool = True
    """Write the HTML report."""
    title: str = "ctpheno report"
    """Report title."""
    max_qc_images: conint(ge=0) = 12
    """QC montages embedded in the report (the first scans by id)."""
