"""When a model stage cannot fit anything, say why instead of failing: tiny or constant cohorts.

A cohort of one or two scans (a user trying the pipeline on one series) is a normal input, yet
clustering needs several subjects per cluster and cross-validation several per fold, and a
feature that is the same for everyone carries no information. The stages check this first
(:func:`cohort_problem`); when nothing can be fitted they write ``models/<stage>/skipped.json``
(``stage``, ``reason``, ``n_subjects``), log the reason and end normally, and the report shows
the reason (:func:`skipped_models`). A later fit removes the file.

Minimums
--------
* clustering: :math:`3 k_{min}` subjects (at the smallest k, about three subjects per cluster,
  so that subsample stability and silhouette are defined);
* supervised: :data:`MIN_SUBJECTS_SUPERVISED` subjects with clinical data (two folds of four,
  the fewest :func:`ctpheno.train.models.make_splits` accepts).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..io.layout import WorkDir
from ..io.tables import atomic_path

log = logging.getLogger(__name__)
SKIP_FILE = "skipped.json"
MIN_SUBJECTS_SUPERVISED = 8
"""Fewest subjects for cross-validated supervised models (n // 4 >= 2 folds)."""


def min_subjects_clustering(k_min: int) -> int:
    """Fewest subjects clustering is attempted on (see the module docstring)."""
    return 3 * k_min


def variable_columns(frame: pd.DataFrame, columns: list[str], *, max_missing_fraction: float) -> list[str]:
    """Columns with at least two distinct finite values and at most ``max_missing_fraction`` missing."""
    out = []
    for c in columns:
        v = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        if len(v) and 1 - finite.size / len(v) <= max_missing_fraction and np.unique(finite).size >= 2:
            out.append(c)
    return out


def cohort_problem(cohort: Any, feature_sets: list[str], *, min_subjects: int,
                   max_missing_fraction: float, what: str) -> tuple[str | None, list[str]]:
    """``(reason nothing can be fitted or None, feature sets with a variable feature)``."""
    n = len(cohort.frame)
    if n < min_subjects:
        return (f"too few subjects for {what}: {n} (at least {min_subjects} needed)", [])
    usable = [s for s in feature_sets
              if variable_columns(cohort.frame, cohort.feature_columns(s),
                                  max_missing_fraction=max_missing_fraction)]
    if not usable:
        return (f"no feature varies across the {n} subjects in the feature sets {feature_sets}", [])
    dropped = sorted(set(feature_sets) - set(usable))
    if dropped:
        log.warning("%s: feature sets without a varying feature skipped: %s", what, dropped)
    return None, usable


def record_skip(out_dir: Path, stage: str, reason: str, *, n_subjects: int,
                stale: tuple[str, ...] = ("*.parquet", "state.json")) -> None:
    """Write ``out_dir/skipped.json`` and remove the stage's earlier outputs (they describe another cohort)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for pattern in stale:
        for f in out_dir.glob(pattern):
            f.unlink()
    with atomic_path(out_dir / SKIP_FILE) as tmp:
        tmp.write_text(json.dumps({"stage": stage, "reason": reason, "n_subjects": n_subjects}, indent=1))
    log.warning("%s: no model fitted: %s", stage, reason)


def clear_skip(out_dir: Path) -> None:
    (out_dir / SKIP_FILE).unlink(missing_ok=True)


def skipped_models(wd: WorkDir) -> list[dict[str, Any]]:
    """The ``skipped.json`` records under ``models/`` (empty when every model stage fitted)."""
    found = []
    for f in sorted(wd.models_dir.glob(f"*/{SKIP_FILE}")):
        try:
            found.append(json.loads(f.read_text()))
        except (OSError, ValueError):
            continue
    return found
