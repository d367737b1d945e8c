"""Stages qct and radiomics on a small work directory: tables, resume, recompute on change, failures."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.features.qct import qct_metrics
from ctpheno.features.stage import run_qct, run_radiomics
from ctpheno.io.layout import WorkDir
from ctpheno.io.volume import Volume
from ctpheno.io.zarrstore import write_volume_store

from .conftest import make_lung_phantom

PARAMS = """imageType:
  Original: {}
featureClass:
  firstorder: [Mean, Minimum, 10Percentile]
  glcm: [Contrast]
setting:
  binWidth: 25
  label: 1
"""


def _store(wd: WorkDir, scan_id: str, p, *, content: str) -> None:
    write_volume_store(
        wd.volume(scan_id),
        {"image": p.hu, "labels": p.labels, "zones": p.zones},
        Volume(p.hu, p.spacing_mm),
        chunks=(16, 16, 16),
        attrs={"scan_id": scan_id, "content_hash": content},
    )


@pytest.fixture
def setup(tmp_path):
    wd = WorkDir(tmp_path / "work").ensure()
    a, b = make_lung_phantom(noise_hu=40.0, seed=1), make_lung_phantom(shape=(40, 36, 48), seed=2)
    _store(wd, "scanA", a, content="a1")
    _store(wd, "scanB", b, content="b1")
    empty = make_lung_phantom(shape=(24, 24, 24))
    _store(
        wd,
        "scanE",
        type(empty)(empty.hu, np.zeros_like(empty.labels), empty.zones, empty.spacing_mm, empty.blob),
        content="e1",
    )
    wd.qc_table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scan_id": ["scanA", "scanB", "scanE"]}).to_parquet(wd.qc_table)
    params = tmp_path / "radiomics.yaml"
    params.write_text(PARAMS)
    cfg = PipelineConfig.model_validate(
        {
            "paths": {"workdir": str(wd.root)},
            "cluster": {"kind": "synchronous"},
            "features": {"radiomics": {"params": str(params), "regions": ["whole", "upper"]}},
        }
    )
    return wd, cfg, {"scanA": a, "scanB": b}


def test_qct_stage_table_resume_and_failures(setup):
    wd, cfg, ph = setup
    res = run_qct(cfg, wd, None)
    assert sorted(res.done) == ["scanA", "scanB"] and res.failed == ["scanE"]
    table = pd.read_parquet(wd.qct)
    a = ph["scanA"]
    expected = qct_metrics(a.hu, a.labels, a.zones, a.spacing_mm, scan_id="scanA")
    got = table[table["scan_id"] == "scanA"].set_index("region").loc[list(expected["region"])].reset_index()
    pd.testing.assert_frame_equal(got[expected.columns], expected, check_dtype=False)
    fails = pd.read_parquet(wd.failures)
    row = fails[(fails["scan_id"] == "scanE") & (fails["stage"] == "qct")].iloc[0]
    assert row["error_type"] == "EmptyLungMaskError" and "no lung voxel" in row["message"]
    again = run_qct(cfg, wd, None)
    assert sorted(again.skipped) == ["scanA", "scanB"] and not again.done
    # a changed volume (new content_hash) is recomputed, the other is not
    _store(wd, "scanB", ph["scanB"], content="b2")
    third = run_qct(cfg, wd, None)
    assert third.done == ["scanB"] and third.skipped == ["scanA"]


def test_radiomics_stage_writes_wide_table_settings_and_diagnostics(setup):
    wd, cfg, ph = setup
    res = run_radiomics(cfg, wd, None)
    assert sorted(res.done) == ["scanA", "scanB"] and res.failed == ["scanE"]
    table = pd.read_parquet(wd.radiomics)
    assert list(table.columns[:2]) == ["scan_id", "region"]
    assert set(table["region"]) == {"whole", "upper"}
    assert "original_glcm_Contrast" in table.columns
    a = ph["scanA"]
    lung = (a.labels == 1) | (a.labels == 2)
    whole_a = table[(table["scan_id"] == "scanA") & (table["region"] == "whole")].iloc[0]
    assert whole_a["original_firstorder_Mean"] == pytest.approx(a.hu[lung].mean(), rel=1e-12)
    settings = json.loads((wd.features_dir / "radiomics.settings.json").read_text())
    assert settings["pyradiomics_version"] and len(settings["settings_hash"]) == 16
    diag = pd.read_parquet(wd.features_dir / "radiomics_diagnostics.parquet")
    assert set(diag["scan_id"]) == {"scanA", "scanB"}
    fails = pd.read_parquet(wd.failures)
    row = fails[(fails["scan_id"] == "scanE") & (fails["stage"] == "radiomics")].iloc[0]
    assert row["error_type"] == "FeatureExtractionError" and "no voxel with label 1" in row["message"]
