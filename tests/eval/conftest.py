"""A synthetic work directory run through clustering, supervised models and the report."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.models import ModelsConfig, ReportConfig, SupervisedConfig, UnsupervisedConfig
from ctpheno.config.pipeline import PipelineConfig
from ctpheno.train.testing import write_synthetic_workdir

FLAGGED_INDEX = 3
"""The fixture's QC table flags the fourth scan by id (the report must show it first)."""


def _png(seed: int) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow(np.random.default_rng(seed).normal(size=(16, 16)), cmap="gray")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


@pytest.fixture(scope="package")
def report_cfg():
    return PipelineConfig(
        models=ModelsConfig(
            unsupervised=UnsupervisedConfig(
                feature_sets=["qct", "qct+radiomics+embeddings"],
                n_bootstrap=4,
                embedding_map="umap",
                reference_labels="subtype",
            ),
            supervised=SupervisedConfig(
                targets=["fev1_pct_pred", "gold_stage", "copd", "fev1_decline_ml_per_year"],
                feature_sets=["qct", "embeddings", "qct+radiomics+embeddings"],
                n_repeats=1,
                n_bootstrap=100,
                permutation_repeats=2,
            ),
        ),
        report=ReportConfig(title="ctpheno test report", max_qc_images=4),
    )


@pytest.fixture(scope="package")
def trained(tmp_path_factory, report_cfg):
    from ctpheno.eval.stage import run_report
    from ctpheno.train.stage import run_clustering, run_supervised

    info = write_synthetic_workdir(tmp_path_factory.mktemp("wd24"), n=24, seed=5)
    wd = info["workdir"]
    scans = pd.read_parquet(wd.manifest)["scan_id"].tolist()
    wd.qc_table.parent.mkdir(parents=True, exist_ok=True)
    # one flagged scan that is not first by id, and the preprocess stage's internal resume column
    flags = ["lr_ratio" if i == FLAGGED_INDEX else "" for i in range(len(scans))]
    pd.DataFrame({"scan_id": scans, "lung_volume_ml": 5000.0, "flags": flags,
                  "content_hash": "0123456789abcdef"}).to_parquet(wd.qc_table)
    for i, s in enumerate(scans[:FLAGGED_INDEX + 1]):
        wd.qc_png(s).write_bytes(_png(i))
    pd.DataFrame(
        {
            "scan_id": ["s-broken000000"],
            "stage": ["preprocess"],
            "error_type": ["EmptyLungMaskError"],
            "message": ["lung mask is empty"],
            "source": [""],
            "attempts": [2],
            "timestamp": ["2026-01-01T00:00:00Z"],
        }
    ).to_parquet(wd.failures)
    results = {
        f.__name__: f(report_cfg, wd, None, force=True) for f in (run_clustering, run_supervised, run_report)
    }
    return {"wd": wd, "results": results, **info}
