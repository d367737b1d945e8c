"""The same data gives the same model numbers under any pseudonym salt.

Pseudonyms are salted hashes, so another salt names and *sorts* the same subjects differently.
Rows of the modelling cohort are ordered by each scan's content hash and the CV groups are row
numbers, so cohort order, folds and every metric follow the data, not the salt.
"""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd

from ctpheno.config.models import SupervisedConfig
from ctpheno.io.layout import WorkDir
from ctpheno.train.features import assemble_cohort
from ctpheno.train.supervised import fit_supervised
from ctpheno.train.testing import write_synthetic_workdir


def _rename(wd: WorkDir, salt: str) -> None:
    """Rename every subject and scan id of ``wd`` as another salt would (consistently across tables)."""
    def new(v: str) -> str:
        return v[:2] + hashlib.sha256(f"{salt}:{v}".encode()).hexdigest()[:12]

    for path in (wd.manifest, wd.clinical, wd.qct, wd.radiomics, wd.embeddings, wd.qc_table):
        df = pd.read_parquet(path)
        for col in ("subject_id", "scan_id"):
            if col in df:
                df[col] = df[col].astype(str).map(new)
        df.to_parquet(path)


def test_cohort_order_folds_and_metrics_do_not_depend_on_the_salt(tmp_path):
    a = write_synthetic_workdir(tmp_path / "a", n=24, seed=5, n_embed=8, n_radiomics=6)["workdir"]
    man = pd.read_parquet(a.manifest)
    a.qc_table.parent.mkdir(parents=True, exist_ok=True)
    # the content hash of each scan's store: a function of the data only
    pd.DataFrame({"scan_id": man["scan_id"],
                  "content_hash": [hashlib.sha256(f"volume {i}".encode()).hexdigest()[:16]
                                   for i in range(len(man))]}).to_parquet(a.qc_table)
    b = WorkDir(tmp_path / "b")
    shutil.copytree(a.root, b.root)
    _rename(b, "another salt")

    ca, cb = assemble_cohort(a), assemble_cohort(b)
    assert list(ca.frame.index) != list(cb.frame.index)  # different names ...
    cols = ca.feature_columns("qct")
    np.testing.assert_array_equal(ca.frame[cols].to_numpy(), cb.frame[cols].to_numpy())  # ... same rows, same order

    cfg = SupervisedConfig(targets=["fev1_pct_pred"], feature_sets=["qct"], models=["linear"], n_repeats=2,
                           n_bootstrap=50, permutation_repeats=1, screening_k=[0])
    ma = fit_supervised(ca, cfg).metrics.drop(columns="subject_id", errors="ignore")
    mb = fit_supervised(cb, cfg).metrics.drop(columns="subject_id", errors="ignore")
    pd.testing.assert_frame_equal(ma.reset_index(drop=True), mb.reset_index(drop=True))
