"""Feature-matrix assembly and leakage-free preprocessing.

Feature tables (``features/qct.parquet`` long by region, ``features/radiomics.parquet`` and
``features/embeddings.parquet`` wide) are pivoted to one row per scan with columns
``qct_<metric>__<region>``, ``rad_<feature>__<region>`` and ``emb_<model>_<k>__<region>``,
joined to the manifest (scan -> pseudonymous subject) and to the clinical table by
``subject_id``. Scaling, imputation and correlated-feature pruning are sklearn transformers
placed *inside* each model's :class:`~sklearn.pipeline.Pipeline`, so they are fitted on the
training folds only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from ..config.models import PreprocessingConfig
from ..features.qct import ADJ_COLUMNS
from ..io.layout import WorkDir
from ..io.tables import content_keys

PREFIX = {"qct": "qct_", "radiomics": "rad_", "embeddings": "emb_", "phenotype": "phe_", "qct_core": "core_"}
"""Column prefix of each feature table in the wide matrix."""
COVARIATES = ("age_years", "sex", "height_cm", "pack_years")
DENSITY_ADJ = ADJ_COLUMNS
"""Raw density metric -> its adjusted twin."""
ADJ_ONLY = ("perc15_voladj_hu",)
"""Columns derived from the adjusted density (left out with ``models.density: raw``)."""
QCT_PRIORITY = (
    "laa950_pct",
    "perc15_hu",
    "mld_hu",
    "laa910_pct",
    "laa856_pct",
    "perc10_hu",
    "lung_volume_ml",
)
"""Canonical QCT metrics first: correlation pruning keeps the earlier of two correlated columns
(their adjusted twins take their places with ``models.density: adjusted``)."""
QCT_BOOKKEEPING = ("n_voxels", "lac_fit_n", "lac_d_950_se", "lac_fit_ks", "air_hu", "noise_hu", "blood_hu",
                   "noise_fav_lpmm", "calibration_scale", "calibration_offset_hu", "harmonise_sigma_mm",
                   "harmonise_deboost", "harmonise_target_hu")
"""QCT columns that describe the measurement or the acquisition, not the lung (left out of the features:
the acquisition is a confounder, not a phenotype)."""
QCT_POOLED_AIRWAY_PREFIX = "pooled_"
"""Pooled radial-profile airway columns (``pooled_airway_wall_thickness_mm`` ...): left out of the features,
replaced by the per-branch endpoints (``pi10_mm``, ``wa_pct_seg`` ...; :mod:`ctpheno.features.airways`). A
pooled profile around the central airways is not comparable to the field's per-branch measures (its
thickness saturates at the blur width and moves with slice thickness)."""


def density_metric(metric: str, density: str = "adjusted") -> str:
    """The QCT column a model uses for ``metric``: its adjusted twin with ``density='adjusted'``."""
    return DENSITY_ADJ.get(metric, metric) if density == "adjusted" else metric

REGION_ORDER = ("whole", "upper", "middle", "lower", "right", "left")


def _ordered(wide: pd.DataFrame, metrics: list[str], prefix: str) -> pd.DataFrame:
    regions = list(
        dict.fromkeys(
            [r for r in REGION_ORDER if r in set(wide.columns.get_level_values(1))]
            + sorted(set(wide.columns.get_level_values(1)))
        )
    )
    cols = [(m, r) for m in metrics for r in regions if (m, r) in wide.columns]
    wide = wide[cols]
    wide.columns = [f"{prefix}{m}__{r}" for m, r in cols]
    return wide


def pivot_qct(qct: pd.DataFrame) -> pd.DataFrame:
    """Long QCT table (scan_id, region, metrics...) -> wide ``qct_<metric>__<region>`` indexed by scan_id.

    Both density flavours are kept (adjusted first); :func:`qct_feature_columns` picks the one a
    feature set uses.
    """
    metrics = [
        c for c in qct.columns if c not in ("scan_id", "region") and pd.api.types.is_numeric_dtype(qct[c])
    ]
    metrics = [m for m in metrics if m not in QCT_BOOKKEEPING and not m.startswith(QCT_POOLED_AIRWAY_PREFIX)]
    priority = list(dict.fromkeys([density_metric(m) for m in QCT_PRIORITY] + list(QCT_PRIORITY)))
    metrics = [m for m in priority if m in metrics] + [m for m in metrics if m not in priority]
    wide = qct.pivot_table(index="scan_id", columns="region", values=metrics, aggfunc="first", dropna=False)
    return _ordered(wide, metrics, "qct_").dropna(axis=1, how="all")


def qct_feature_columns(columns: list[str], density: str = "adjusted") -> list[str]:
    """The wide QCT columns of the ``qct`` feature set: one density flavour.

    ``adjusted``: a raw density column is left out when its adjusted twin is present (tables
    written before the adjusted columns existed keep their raw ones); ``raw``: the adjusted
    columns and those derived from them (:data:`ADJ_ONLY`) are left out.
    """
    present = set(columns)
    out = []
    for c in columns:
        metric, _, region = c[len("qct_"):].partition("__")
        if density == "adjusted":
            twin = DENSITY_ADJ.get(metric)
            if twin is not None and f"qct_{twin}__{region}" in present:
                continue
        elif metric in DENSITY_ADJ.values() or metric in ADJ_ONLY:
            continue
        out.append(c)
    return out


PHENOTYPE_EPS_PCT = 0.1
"""Percentage points added to both zonal LAA-950 values before their log ratio (finite without emphysema)."""


def _qct_column(wide_qct: pd.DataFrame, metric: str, region: str = "whole", density: str = "raw") -> pd.Series:
    """Column ``qct_<metric>__<region>`` of the wide QCT matrix (its adjusted twin first with
    ``density='adjusted'``, when present); all-NaN when the table lacks it."""
    for m in dict.fromkeys([density_metric(metric, density), metric]):
        name = f"qct_{m}__{region}"
        if name in wide_qct.columns:
            return wide_qct[name]
    return pd.Series(np.nan, index=wide_qct.index)


def phenotype_axes(wide_qct: pd.DataFrame, *, density: str = "adjusted") -> pd.DataFrame:
    """Four COPD phenotype axes from the wide QCT matrix (index scan_id), one column each.

    * ``phe_log_laa950``: :math:`\\ln(1 + \\mathrm{LAA}_{-950})` of both lungs — emphysema
      *extent*, log-scaled because it is right-skewed in every cohort (most smokers near 0 %).
    * ``phe_log_upper_lower``: :math:`\\ln\\frac{\\mathrm{LAA}_{upper}+0.1}{\\mathrm{LAA}_{lower}+0.1}`
      — apico-basal *distribution* (centrilobular: upper-zone predominant, > 0; panlobular:
      lower-zone predominant, < 0); upper-zone predominance is what selected patients for lung-volume
      reduction in NETT (Fishman 2003).
    * ``phe_lac_d_950``: power-law exponent *D* of the low-attenuation cluster sizes (Mishima 1999)
      — many small holes (high *D*) versus confluent bullae (low *D*).
    * ``phe_pi10_mm``: Pi10 from the per-branch wall measurements (:mod:`ctpheno.features.airways`)
      — the field's airway-disease endpoint; missing on thick-slice scans (> 1.25 mm), where the
      next axis carries airway disease alone.
    * ``phe_airway_wall_hu``: ``airway_wall_hu``, the upper-quartile density of the lung within
      3 mm of the airway lumen (continued into the lung through the bronchi) — the airway-disease
      axis (peribronchial thickening), robust at 2-3 mm voxels where wall thickness itself is
      below the resolution.

    Extent is one axis among four (five with Pi10), so clusters follow the *pattern* of disease
    rather than only its amount; the full ``qct`` set is dominated by dozens of extent-correlated
    columns. Missing inputs give a missing axis (imputed inside the model's folds; an axis missing
    in most scans is left out there). LAA-950 is the adjusted column with ``density='adjusted'``
    (:func:`density_metric`).
    """
    col = partial(_qct_column, wide_qct, density=density)
    eps = PHENOTYPE_EPS_PCT
    out = pd.DataFrame(index=wide_qct.index)
    out["phe_log_laa950"] = np.log1p(col("laa950_pct").clip(lower=0))
    out["phe_log_upper_lower"] = np.log((col("laa950_pct", "upper").clip(lower=0) + eps)
                                        / (col("laa950_pct", "lower").clip(lower=0) + eps))
    out["phe_lac_d_950"] = col("lac_d_950")
    out["phe_pi10_mm"] = col("pi10_mm")
    out["phe_airway_wall_hu"] = col("airway_wall_hu")
    return out.astype(float)


QCT_CORE = ("laa950_pct", "perc15_hu", "lung_volume_ml", "pi10_mm", "airway_wall_hu")
"""Whole-lung QCT metrics of the ``qct_core`` set (see :func:`qct_core`)."""


def qct_core(wide_qct: pd.DataFrame, *, density: str = "adjusted") -> pd.DataFrame:
    """The standard whole-lung QCT measures as a compact set, ``core_<metric>``.

    Emphysema extent (LAA-950, Gevenois 1995), density (Perc15, Dirksen 2009), lung volume, Pi10
    (Nakano 2005; thin-slice scans only) and airway-wall density: the measures COPDGene-style
    analyses relate to spirometry (emphysema and airway disease as the two independent CT
    determinants of airflow obstruction). Pi10 comes before the wall density so that the
    correlation pruning keeps the field's endpoint when both are present and nearly collinear;
    on thick-slice cohorts Pi10 is missing and the wall density carries airway disease. With tens
    to hundreds of subjects a model on these columns does not have to find them among the ~70
    correlated columns of the full ``qct`` set. Missing inputs give a missing column (imputed inside
    the folds; a column missing in most scans is left out there). The density columns are the
    adjusted twins with ``density='adjusted'`` (the column names stay ``core_laa950_pct`` /
    ``core_perc15_hu``).
    """
    out = pd.DataFrame(index=wide_qct.index)
    for metric in QCT_CORE:
        out[f"core_{metric}"] = _qct_column(wide_qct, metric, density=density)
    return out.astype(float)


def pivot_radiomics(rad: pd.DataFrame) -> pd.DataFrame:
    """Wide radiomics table (scan_id, region, original_*...) -> ``rad_<feature>__<region>``."""
    feats = [
        c for c in rad.columns if c not in ("scan_id", "region") and pd.api.types.is_numeric_dtype(rad[c])
    ]
    wide = rad.pivot_table(index="scan_id", columns="region", values=feats, aggfunc="first", dropna=False)
    return _ordered(wide, feats, "rad_").dropna(axis=1, how="all")


def pivot_embeddings(emb: pd.DataFrame, *, model: str | None = None) -> pd.DataFrame:
    """Embeddings (scan_id, region, model, emb_000...) -> ``emb_<model>_<k>__<region>``.

    ``model`` selects one embedding model; a name absent from the table raises ValueError.
    """
    if "model" not in emb.columns:
        emb = emb.assign(model="cnn")
    if model is not None:
        if model not in set(emb["model"]):
            raise ValueError(
                f"embedding_model={model!r} is not in embeddings.parquet; "
                f"models present: {sorted(set(emb['model']))}"
            )
        emb = emb[emb["model"] == model]
    feats = [c for c in emb.columns if c.startswith("emb_")]
    wide = emb.pivot_table(index="scan_id", columns=["model", "region"], values=feats, aggfunc="first")
    wide.columns = [f"emb_{m}_{f[4:]}__{r}" for f, m, r in wide.columns]
    return wide


@dataclass(frozen=True)
class Cohort:
    """One row per subject: feature columns by table, clinical columns, pseudonymous ids."""

    frame: pd.DataFrame
    """Index ``subject_id``; columns ``scan_id``, feature columns and clinical columns."""
    columns: dict[str, list[str]]
    """Feature table name -> its columns in ``frame``."""

    def feature_columns(self, feature_set: str, *, covariates: tuple[str, ...] | list[str] = ()) -> list[str]:
        """Columns of a ``+``-joined feature set, then the covariates."""
        cols: list[str] = []
        for part in feature_set.split("+"):
            if part not in self.columns:
                raise ValueError(
                    f"feature set {feature_set!r} needs the {part!r} table, which this work "
                    f"directory lacks; available: {sorted(self.columns)}"
                )
            cols += self.columns[part]
        return cols + [c for c in covariates if c not in cols]


def load_feature_tables(
    wd: WorkDir, *, embedding_model: str | None = None, density: str = "adjusted"
) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """Wide per-scan features from every feature table present in ``wd`` (index scan_id).

    ``density``: which QCT density columns the ``qct``, ``phenotype`` and ``qct_core`` sets use
    (``models.density``).
    """
    parts: dict[str, pd.DataFrame] = {}
    if wd.qct.is_file():
        parts["qct"] = pivot_qct(pd.read_parquet(wd.qct))
        parts["phenotype"] = phenotype_axes(parts["qct"], density=density)
        parts["qct_core"] = qct_core(parts["qct"], density=density)
    if wd.radiomics.is_file():
        parts["radiomics"] = pivot_radiomics(pd.read_parquet(wd.radiomics))
    if wd.embeddings.is_file():
        parts["embeddings"] = pivot_embeddings(pd.read_parquet(wd.embeddings), model=embedding_model)
    if not parts:
        raise FileNotFoundError(
            f"no feature table in {wd.features_dir}; run `ctpheno features` and `ctpheno embed` first"
        )
    wide = pd.concat(list(parts.values()), axis=1, join="outer").astype(float)
    wide = wide.replace([np.inf, -np.inf], np.nan)  # e.g. an undefined LAC exponent: a missing value
    wide.index.name = "scan_id"
    columns = {k: list(v.columns) for k, v in parts.items()}
    if "qct" in columns:
        columns["qct"] = qct_feature_columns(columns["qct"], density)
    return wide, columns


def assemble_cohort(
    wd: WorkDir, *, embedding_model: str | None = None, require_clinical: bool = True,
    density: str = "adjusted", exclude: set[str] | frozenset[str] = frozenset(),
) -> Cohort:
    """Join features, manifest and clinical table into one row per subject.

    Scans must be ``usable`` (and ``selected`` where the column exists) and not in ``exclude``
    (the QC gate, :func:`ctpheno.preprocess.gate.gate`); a subject with several such scans keeps
    its first scan by ``acquisition_offset_days`` then ``scan_id`` (baseline). Rows are ordered by
    their scan's content hash (:func:`ctpheno.io.tables.content_keys`), which does not depend on the
    pseudonym salt.
    """
    feats, columns = load_feature_tables(wd, embedding_model=embedding_model, density=density)
    man = pd.read_parquet(wd.manifest, columns=None)
    keep = man["usable"].fillna(False).astype(bool) & ~man["scan_id"].astype(str).isin(exclude)
    if "selected" in man.columns:
        keep &= man["selected"].fillna(False).astype(bool)
    man = man[keep & man["scan_id"].isin(feats.index)]
    order = [c for c in ("acquisition_offset_days", "scan_id") if c in man.columns]
    man = man.sort_values(order).drop_duplicates("subject_id", keep="first")
    frame = man[["subject_id", "scan_id"]].merge(feats, left_on="scan_id", right_index=True, how="inner")
    if wd.clinical.is_file():
        clin = pd.read_parquet(wd.clinical).drop_duplicates("subject_id")
        clin = clin.drop(columns=[c for c in clin.columns if c in frame.columns and c != "subject_id"])
        frame = frame.merge(clin, on="subject_id", how="left" if not require_clinical else "inner")
    elif require_clinical:
        raise FileNotFoundError(
            f"{wd.clinical} does not exist; supervised models and cluster profiles need "
            "the clinical table (ingest with paths.clinical set)"
        )
    if "sex" in frame.columns:
        frame["sex"] = frame["sex"].map({"M": 1.0, "F": 0.0, "m": 1.0, "f": 0.0}).astype(float)
    if "gold_stage" in frame.columns:
        frame["copd"] = (frame["gold_stage"] >= 1).astype(float).where(frame["gold_stage"].notna())
    # rows in an order set by the data (the density scan's content hash), not by the salted pseudonyms:
    # CV folds and cluster initialisations then do not change with the salt
    key = frame["scan_id"].astype(str).map(content_keys(wd.qc_table)).fillna("")
    frame = frame.assign(_key=key).sort_values(["_key", "subject_id"], kind="stable").drop(columns="_key")
    return Cohort(frame.set_index("subject_id"), columns)


class CorrelationPruner(TransformerMixin, BaseEstimator):
    """Drop features too correlated with an earlier kept feature (greedy, column order).

    A feature *j* is dropped when :math:`|r_{ij}| > \\tau` for a kept feature *i < j*; also drops
    constant features and those missing in more than ``max_missing_fraction`` of rows.
    Fitted on training data only (use inside a Pipeline).
    """

    def __init__(self, threshold: float = 0.95, max_missing_fraction: float = 0.2) -> None:
        self.threshold = threshold
        self.max_missing_fraction = max_missing_fraction

    def fit(self, X: npt.ArrayLike, y: object = None) -> CorrelationPruner:
        names = list(X.columns) if isinstance(X, pd.DataFrame) else None
        a = np.asarray(X, dtype=float)
        self.n_features_in_ = a.shape[1]
        self.feature_names_in_ = np.asarray(
            names if names is not None else [f"x{i}" for i in range(a.shape[1])], dtype=object
        )
        miss = np.isnan(a).mean(axis=0)
        sd = np.nanstd(a, axis=0)
        cand = np.flatnonzero((miss <= self.max_missing_fraction) & (np.nan_to_num(sd) > 1e-12))
        if cand.size == 0:
            raise ValueError(
                "every feature is constant or too often missing in this training fold; "
                "check the feature tables or raise preprocessing.max_missing_fraction"
            )
        z = a[:, cand]
        mu = np.nanmean(z, axis=0)
        z = np.where(np.isnan(z), mu, z)
        z = (z - z.mean(axis=0)) / np.where(z.std(axis=0) > 0, z.std(axis=0), 1.0)
        if self.threshold >= 1.0:
            kept = list(range(cand.size))
        else:
            r = np.abs(z.T @ z) / len(z)
            kept = []
            for j in range(cand.size):
                if not kept or r[j, kept].max() <= self.threshold:
                    kept.append(j)
        self.support_ = cand[kept]
        return self

    def transform(self, X: npt.ArrayLike) -> npt.NDArray[np.float64]:
        return np.asarray(X, dtype=float)[:, self.support_]

    def get_feature_names_out(self, input_features: object = None) -> npt.NDArray[np.object_]:
        return self.feature_names_in_[self.support_]


def preprocessor(cfg: PreprocessingConfig, *, scale: bool = True) -> list[tuple[str, object]]:
    """Steps (prune, impute, scale) to put before a model in a Pipeline."""
    steps: list[tuple[str, object]] = [
        ("prune", CorrelationPruner(cfg.correlation_threshold, cfg.max_missing_fraction)),
        ("impute", SimpleImputer(strategy=cfg.impute)),
    ]
    if scale:
        steps.append(("scale", StandardScaler()))
    return steps


def transformed_names(pipe: Pipeline) -> list[str]:
    """Names of the features reaching the final estimator of a fitted pipeline."""
    return [str(n) for n in pipe.named_steps["prune"].get_feature_names_out()]
