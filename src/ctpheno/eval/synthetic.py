"""Acceptance numbers on a synthetic cohort, scored against the generator's truth.

The synthetic cohort (``ctpheno.synth``) writes ``truth.parquet`` (raw subject id -> latent
``subtype``) and ``cohort.json`` (``oracle_r2_fev1_pct_pred``: the R^2 of the noise-free
generator). Raw ids are mapped to the work directory's pseudonyms with the same salted HMAC
as ingest, so no raw id enters any output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..config.common import PathsConfig
from ..io.layout import WorkDir
from ..train.metrics import ari


ARI_THRESHOLD = 0.8
"""Adjusted Rand index with the latent subtype that a clustering must reach."""
R2_VS_ORACLE_THRESHOLD = 0.9
"""Cross-validated FEV1 %pred R^2 as a fraction of the noise-free generator's R^2."""


def _row(check: str, feature_set: str, method: str, value: float, ci_low: float | None,
         ci_high: float | None, threshold: float | None) -> dict:
    """One acceptance row; ``passed`` is None for a check reported without a threshold."""
    return dict(check=check, feature_set=feature_set, method=method, value=value, ci_low=ci_low,
                ci_high=ci_high, threshold=threshold, passed=None if threshold is None else value >= threshold)


def synthetic_acceptance(wd: WorkDir, cohort_dir: str | Path, paths: PathsConfig) -> pd.DataFrame | None:
    """Rows: check, feature_set, algorithm/model, value, threshold, passed; None without truth files.

    * ``cluster_ari``: ARI of each chosen clustering with the latent subtype (threshold 0.8).
    * ``fev1_r2_vs_oracle``: cross-validated FEV1 %pred R^2 / oracle R^2 (threshold 0.9).
    * ``gold_within_one``: within-one-stage GOLD accuracy with its CI (reported, no threshold).
    """
    from ..ingest.pseudonym import Pseudonymizer, has_salt, resolve_salt

    cohort_dir = Path(cohort_dir)
    truth_p, info_p = cohort_dir / "truth.parquet", cohort_dir / "cohort.json"
    if not truth_p.is_file() or not has_salt(paths, wd):  # a salt in $CTPHENO_SALT counts too
        return None
    pseudo = Pseudonymizer(resolve_salt(paths, wd))
    truth = pd.read_parquet(truth_p, columns=["subject_id", "subtype"])
    subtype = pd.Series(truth["subtype"].to_numpy(), index=[pseudo.subject(s) for s in truth["subject_id"]])
    rows: list[dict] = []
    assign = wd.models_dir / "clusters" / "assignments.parquet"
    if assign.is_file():
        for (fset, algo), g in pd.read_parquet(assign).groupby(["feature_set", "algorithm"], sort=False):
            g = g[g["subject_id"].isin(subtype.index)]
            if len(g):
                value = ari(subtype.loc[g["subject_id"]].to_numpy(), g["cluster"].to_numpy())
                rows.append(_row("cluster_ari", fset, algo, value, None, None, ARI_THRESHOLD))
    met = wd.models_dir / "supervised" / "metrics.parquet"
    oracle = json.loads(info_p.read_text()).get("oracle_r2_fev1_pct_pred") if info_p.is_file() else None
    if met.is_file():
        m = pd.read_parquet(met)
        if oracle and len(m):
            for r in m[(m["target"] == "fev1_pct_pred") & (m["metric"] == "r2")].itertuples():
                rows.append(_row("fev1_r2_vs_oracle", r.feature_set, r.model, r.estimate / oracle,
                                 r.ci_low / oracle, r.ci_high / oracle, R2_VS_ORACLE_THRESHOLD))
        gold = m[(m["target"] == "gold_stage") & (m["metric"] == "within_one_accuracy")] if len(m) else m
        for r in gold.itertuples():
            rows.append(_row("gold_within_one", r.feature_set, r.model, r.estimate, r.ci_low, r.ci_high, None))
    out = pd.DataFrame(rows)
    if oracle is not None and len(out):
        out["oracle_r2"] = oracle
    return out if len(out) else None
