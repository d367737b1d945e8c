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
                rows.append(
                    dict(
                        check="cluster_ari",
                        feature_set=fset,
                        method=algo,
                        value=value,
                        ci_low=None,
                        ci_high=None,
                        threshold=0.8,
                        passed=value >= 0.8,
                    )
                )
    met = wd.models_dir / "supervised" / "metrics.parquet"
    oracle = json.loads(info_p.read_text()).get("oracle_r2_fev1_pct_pred") if info_p.is_file() else None
    if met.is_file():
        m = pd.read_parquet(met)
        if oracle and len(m):
            for r in m[(m["target"] == "fev1_pct_pred") & (m["metric"] == "r2")].itertuples():
                rows.append(
                    dict(
                        check="fev1_r2_vs_oracle",
                        feature_set=r.feature_set,
                        method=r.model,
                        value=r.estimate / oracle,
                        ci_low=r.ci_low / oracle,
                        ci_high=r.ci_high / oracle,
                        threshold=0.9,
                        passed=r.estimate / oracle >= 0.9,
                    )
                )
        if len(m):
            for r in m[(m["target"] == "gold_stage") & (m["metric"] == "within_one_accuracy")].itertuples():
                rows.append(
                    dict(
                        check="gold_within_one",
                        feature_set=r.feature_set,
                        method=r.model,
                        value=r.estimate,
                        ci_low=r.ci_low,
                        ci_high=r.ci_high,
                        threshold=None,
                        passed=None,
                    )
                )
    out = pd.DataFrame(rows)
    if oracle is not None and len(out):
        out["oracle_r2"] = oracle
    return out if len(out) else None
