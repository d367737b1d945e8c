"""Train stages: clustering and supervised models over the work directory's feature tables.

Outputs (under ``wd.models_dir``)::

    clusters/selection.parquet, assignments.parquet, profiles.parquet
    supervised/metrics.parquet, comparison.parquet, predictions.parquet, importance.parquet,
               partial_dependence.parquet
    <target>__<feature set>__<model>.joblib    pipeline + feature list + config (``ctpheno predict``)

A stage is skipped when its inputs and configuration are unchanged (``state.json`` beside its tables).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from ..cluster.mapping import task_map
from ..cluster.runner import config_hash, stable_hash
from ..config.pipeline import PipelineConfig
from ..io.layout import WorkDir
from ..io.tables import atomic_path, write_table
from .cluster import cluster_cohort
from .features import assemble_cohort
from .supervised import fit_supervised
from .tiny import MIN_SUBJECTS_SUPERVISED, clear_skip, cohort_problem, min_subjects_clustering, record_skip

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a train stage did."""

    stage: str
    text: str
    seconds: float
    skipped: bool = False

    def summary(self) -> str:
        return f"{self.text} ({'up to date' if self.skipped else f'{self.seconds:.1f} s'})"


def _inputs_hash(wd: WorkDir, section: Any, models: Any = None) -> str:
    files = [wd.qct, wd.radiomics, wd.embeddings, wd.manifest, wd.clinical, wd.qc_table]
    stat = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    shared = {"density": models.density, "qc_gate": config_hash(models.qc_gate)} if models is not None else {}
    return stable_hash({"files": stat, "config": config_hash(section), **shared})


def _gated(cfg: PipelineConfig, wd: WorkDir) -> set[str]:
    """Scans the QC gate leaves out (also writes ``models/excluded_scans.parquet``)."""
    from ..preprocess.gate import gate

    g = cfg.models.qc_gate
    out = gate(wd, enabled=g.enabled, severities=g.severities, keep_flags=g.keep_flags)
    if out:
        log.info("QC gate: %d scan(s) left out of the models (%s)", len(out), wd.excluded_scans)
    return out


def _up_to_date(state: Path, key: str) -> bool:
    return state.is_file() and json.loads(state.read_text()).get("key") == key


def _mark(state: Path, key: str) -> None:
    state.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(state) as tmp:
        tmp.write_text(json.dumps({"key": key}))


def _available_sets(cohort: Any, sets: list[str]) -> list[str]:
    """The configured feature sets whose tables the work directory has; the others are logged."""
    present = [s for s in sets if all(p in cohort.columns for p in s.split("+"))]
    if len(present) < len(sets):
        log.warning("feature sets without their tables skipped: %s", sorted(set(sets) - set(present)))
    return present


def _not_fitted(out: Path, stage: str, reason: str, n: int, t0: float, wd: WorkDir | None = None) -> TrainResult:
    """Record why ``stage`` fitted nothing (``models/<stage>/skipped.json``, shown by the report)."""
    record_skip(out, stage, reason, n_subjects=n)
    if wd is not None:  # the supervised stage's saved models describe another cohort
        for f in wd.models_dir.glob("*__*__*.joblib"):
            f.unlink()
    return TrainResult(stage, f"{stage}: no model fitted ({reason})", time.perf_counter() - t0)


NO_FEATURES = "no feature table: no scan reached the feature stages"


@dataclass(frozen=True)
class _ModelStage:
    """How one model stage is named and configured."""

    name: str
    section: str  # its section of ``cfg.models``
    out: str  # its folder under ``models/``
    disabled: str  # summary when switched off
    current: str  # summary when up to date
    what: str  # the fitting, in cohort_problem's messages
    supervised: bool  # needs the clinical table; owns the saved models


CLUSTERING = _ModelStage("cluster", "unsupervised", "clusters", "clustering disabled", "clustering",
                         "clustering", supervised=False)
SUPERVISED = _ModelStage("supervised", "supervised", "supervised", "supervised models disabled", "supervised",
                         "supervised models", supervised=True)


@dataclass
class _Cohort:
    """What a model stage fits on: the cohort, its usable feature sets, the inputs hash, its
    configuration section, output folder and start time."""

    cohort: Any
    present: list[str]
    key: str
    sub: Any
    out: Path
    t0: float


def _open_cohort(spec: _ModelStage, cfg: PipelineConfig, wd: WorkDir, *, force: bool, min_subjects: int
                 ) -> TrainResult | _Cohort:
    """The checks every model stage makes before fitting, in order: switched off, up to date (inputs
    and config unchanged since ``state.json``), no feature table, no clinical table (supervised), a
    cohort too small or too incomplete (:func:`cohort_problem`). Returns the stage's result when it
    fits nothing (the reason recorded by :func:`_not_fitted`), else the cohort to fit."""
    t0 = time.perf_counter()
    sub = getattr(cfg.models, spec.section)
    out = wd.models_dir / spec.out
    if not sub.enabled:
        return TrainResult(spec.name, spec.disabled, 0.0, skipped=True)
    key = _inputs_hash(wd, sub, cfg.models)
    if not force and _up_to_date(out / "state.json", key):
        return TrainResult(spec.name, spec.current, 0.0, skipped=True)
    owner = wd if spec.supervised else None  # the supervised stage's saved models go with its cohort
    if not _has_features(wd):
        return _not_fitted(out, spec.name, NO_FEATURES, 0, t0, owner)
    if spec.supervised and not wd.clinical.is_file():
        return _not_fitted(out, spec.name, "no clinical table (paths.clinical not set, or the table was "
                           "refused at ingest: see failures.parquet)", 0, t0, owner)
    cohort = assemble_cohort(wd, embedding_model=sub.embedding_model, require_clinical=spec.supervised,
                             density=cfg.models.density, exclude=_gated(cfg, wd))
    present = _available_sets(cohort, sub.feature_sets)
    reason, present = cohort_problem(cohort, present, min_subjects=min_subjects,
                                     max_missing_fraction=sub.preprocessing.max_missing_fraction, what=spec.what)
    if reason:
        return _not_fitted(out, spec.name, reason, len(cohort.frame), t0, owner)
    clear_skip(out)
    return _Cohort(cohort, present, key, sub, out, t0)


def _has_features(wd: WorkDir) -> bool:
    return any(f.is_file() for f in (wd.qct, wd.radiomics, wd.embeddings))


def run_clustering(
    cfg: PipelineConfig, wd: WorkDir, client: Any = None, *, force: bool = False
) -> TrainResult:
    """Cluster subjects on each configured feature set; write ``models/clusters/*.parquet``."""
    opened = _open_cohort(CLUSTERING, cfg, wd, force=force,
                          min_subjects=min_subjects_clustering(cfg.models.unsupervised.k_min))
    if isinstance(opened, TrainResult):
        return opened
    res = cluster_cohort(opened.cohort, opened.sub.model_copy(update={"feature_sets": opened.present}),
                         mapper=task_map(client))
    out = opened.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("selection", "assignments", "profiles"):
        write_table(getattr(res, name), out / f"{name}.parquet")
    _mark(out / "state.json", opened.key)
    return TrainResult("cluster", res.summary(), time.perf_counter() - opened.t0)


def run_supervised(
    cfg: PipelineConfig, wd: WorkDir, client: Any = None, *, force: bool = False
) -> TrainResult:
    """Cross-validate, compare, explain and save the supervised models; write ``models/supervised/``."""
    opened = _open_cohort(SUPERVISED, cfg, wd, force=force, min_subjects=MIN_SUBJECTS_SUPERVISED)
    if isinstance(opened, TrainResult):
        return opened
    scfg, out = opened.sub, opened.out
    updates: dict[str, Any] = {"feature_sets": opened.present}
    if scfg.reference_set is not None and scfg.reference_set not in opened.present:
        updates["reference_set"] = None
    res = fit_supervised(opened.cohort, scfg.model_copy(update=updates), mapper=task_map(client))
    out.mkdir(parents=True, exist_ok=True)
    for name in ("metrics", "comparison", "predictions", "importance", "partial_dependence"):
        write_table(getattr(res, name), out / f"{name}.parquet")
    for stem, bundle in res.models.items():
        with atomic_path(wd.models_dir / f"{stem}.joblib") as tmp:
            joblib.dump(bundle, tmp)
    _mark(out / "state.json", opened.key)
    return TrainResult("supervised", res.summary(), time.perf_counter() - opened.t0)


def predict_with_model(model_path: str | Path, wd: WorkDir) -> pd.DataFrame:
    """Apply a saved model to every scan with features in ``wd``.

    Returns scan_id, subject_id, target, prediction (probability of COPD for the binary target,
    rounded GOLD stage in ``prediction_stage`` for the ordinal one). Features the model needs but
    the work directory lacks are missing values (imputed as in training); a model needing
    covariates reads them from ``clinical.parquet`` when present.
    """
    from .features import load_feature_tables
    from .models import predict

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(
            f"model file {model_path} does not exist; models are saved as "
            f"<workdir>/models/<target>__<set>__<model>.joblib by `ctpheno train`"
        )
    bundle = joblib.load(model_path)
    feats, _ = load_feature_tables(wd)
    man = pd.read_parquet(wd.manifest, columns=["scan_id", "subject_id"]) if wd.manifest.is_file() else None
    X = feats.reset_index()
    if man is not None:
        X = X.merge(man, on="scan_id", how="left")
    if wd.clinical.is_file() and "subject_id" in X:
        clin = pd.read_parquet(wd.clinical)
        cov = [c for c in ("age_years", "sex", "height_cm", "pack_years") if c in clin.columns]
        X = X.merge(clin[["subject_id", *cov]].drop_duplicates("subject_id"), on="subject_id", how="left")
        if "sex" in X:
            X["sex"] = X["sex"].map({"M": 1.0, "F": 0.0}).astype(float)
    missing = [c for c in bundle["features"] if c not in X.columns]
    if len(missing) == len(bundle["features"]):
        raise ValueError(
            f"none of the {len(missing)} features of {model_path.name} exist in {wd.features_dir}; "
            "extract the same feature tables (same regions and embedding model) first"
        )
    for c in missing:
        X[c] = float("nan")
    p = predict(bundle["pipeline"], X[bundle["features"]], bundle["task"])
    out = pd.DataFrame(
        {
            "scan_id": X["scan_id"],
            "subject_id": X.get("subject_id"),
            "target": bundle["target"],
            "prediction": p,
        }
    )
    if bundle["task"] == "ordinal":
        out["prediction_stage"] = p.round().clip(0, 4).astype(int)
    return out
