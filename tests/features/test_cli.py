"""`ctpheno qct`, `ctpheno radiomics` and `python -m ctpheno.features.radiomics`."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from ctpheno.cli import app
from ctpheno.synth import make_phantom, rim_truth_bounds, truth_metrics

runner = CliRunner()


@pytest.fixture(scope="module")
def nifti_scan(tmp_path_factory):
    import SimpleITK as sitk

    ph = make_phantom(seed=21, size="demo", subtype="centrilobular", emphysema_fraction=0.2)
    d = tmp_path_factory.mktemp("scan")
    sitk.WriteImage(ph.image.to_sitk(), str(d / "ct.nii.gz"))
    sitk.WriteImage(ph.lungs.to_sitk(), str(d / "lungs.nii.gz"))
    truth = truth_metrics(ph.image.array, ph.lungs.array, ph.image.spacing_mm)
    return d, {**truth, "bounds": rim_truth_bounds(ph.image.array, ph.lungs.array, ph.image.spacing_mm)}


def test_qct_json_with_truth_mask_equals_truth(nifti_scan):
    d, truth = nifti_scan
    res = runner.invoke(app, ["qct", str(d / "ct.nii.gz"), "--mask", str(d / "lungs.nii.gz"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["laa950_pct"] == truth["laa950_pct"]
    assert out["perc15_hu"] == truth["perc15_hu"]
    assert out["lung_volume_ml"] == pytest.approx(
        truth["lung_volume_ml"], rel=1e-6
    )  # NIfTI stores float32 spacing
    assert {"upper_laa950_pct", "right_perc15_hu", "lac_d_950", "laa950_upper_lower_ratio"} <= set(out)


def test_qct_segments_when_no_mask_is_given(nifti_scan):
    d, truth = nifti_scan
    res = runner.invoke(app, ["qct", str(d / "ct.nii.gz"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    (laa_lo, laa_hi), (p15_lo, p15_hi) = truth["bounds"]["laa950_pct"], truth["bounds"]["perc15_hu"]
    assert laa_lo - 0.25 <= out["laa950_pct"] <= laa_hi + 0.25  # truth mask .. truth plus its rim layer
    assert p15_lo - 2 <= out["perc15_hu"] <= p15_hi + 2


def test_qct_mask_on_another_grid_fails_with_a_message(nifti_scan, tmp_path):
    import SimpleITK as sitk

    d, _ = nifti_scan
    m = sitk.ReadImage(str(d / "lungs.nii.gz"))
    m.SetOrigin((1.0, 2.0, 3.0))
    sitk.WriteImage(m, str(tmp_path / "moved.nii.gz"))
    res = runner.invoke(app, ["qct", str(d / "ct.nii.gz"), "--mask", str(tmp_path / "moved.nii.gz")])
    assert res.exit_code != 0 and "mask" in res.output


def test_radiomics_cli_on_ibsi_digital_phantom(shared_data, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text(
        "featureClass:\n  firstorder: [Mean, Maximum]\nsetting:\n  binWidth: 1\n  voxelArrayShift: 0\n"
    )
    root = shared_data / "ibsi_1_digital_phantom" / "nifti"
    res = runner.invoke(
        app,
        [
            "radiomics",
            str(root / "image" / "phantom.nii.gz"),
            str(root / "mask" / "mask.nii.gz"),
            "--params",
            str(params),
            "--label",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert set(out) == {"original_firstorder_Mean", "original_firstorder_Maximum"}
    assert out["original_firstorder_Mean"] == pytest.approx(2.1494, abs=1e-3)  # IBSI stat_mean 2.15
    assert out["original_firstorder_Maximum"] == 6.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: -3\n")
    res = runner.invoke(
        app,
        [
            "radiomics",
            str(root / "image" / "phantom.nii.gz"),
            str(root / "mask" / "mask.nii.gz"),
            "--params",
            str(bad),
        ],
    )
    assert res.exit_code != 0 and "bad.yaml" in res.output


def test_module_entry_point_takes_a_pyradiomics_file(tmp_path):
    import numpy as np

    from ctpheno.features.cli import radiomics_main as main
    from ctpheno.io.layout import WorkDir
    from ctpheno.io.volume import Volume
    from ctpheno.io.zarrstore import write_volume_store

    from .conftest import make_lung_phantom

    p = make_lung_phantom(shape=(24, 24, 32))
    wd = WorkDir(tmp_path / "work").ensure()
    write_volume_store(
        wd.volume("s1"),
        {"image": p.hu, "labels": p.labels, "zones": p.zones},
        Volume(p.hu, p.spacing_mm),
        attrs={"content_hash": "x"},
    )
    wd.qc_table.parent.mkdir(parents=True)
    pd.DataFrame({"scan_id": ["s1"]}).to_parquet(wd.qc_table)
    cfgdir = tmp_path / "config"
    (cfgdir / "features").mkdir(parents=True)
    (cfgdir / "pipeline.yaml").write_text("cluster:\n  kind: synchronous\n")
    (cfgdir / "features" / "radiomics.yaml").write_text(
        "featureClass:\n  firstorder: [Minimum]\nsetting:\n  binWidth: 25\n"
    )
    assert main(["--config", str(cfgdir / "features" / "radiomics.yaml"), "--workdir", str(wd.root)]) == 0
    table = pd.read_parquet(wd.radiomics)
    assert table["original_firstorder_Minimum"].tolist() == [-980.0]
    assert np.isfinite(table["original_firstorder_Minimum"]).all()


def test_features_command_runs_qct_and_radiomics(tmp_path):
    from ctpheno.io.layout import WorkDir
    from ctpheno.io.volume import Volume
    from ctpheno.io.zarrstore import write_volume_store

    from .conftest import make_lung_phantom

    p = make_lung_phantom(shape=(24, 24, 32))
    wd = WorkDir(tmp_path / "work").ensure()
    write_volume_store(
        wd.volume("s1"),
        {"image": p.hu, "labels": p.labels, "zones": p.zones},
        Volume(p.hu, p.spacing_mm),
        attrs={"content_hash": "x"},
    )
    wd.qc_table.parent.mkdir(parents=True)
    pd.DataFrame({"scan_id": ["s1"]}).to_parquet(wd.qc_table)
    params = tmp_path / "r.yaml"
    params.write_text("featureClass:\n  firstorder: [Mean]\nsetting:\n  binWidth: 25\n")
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(
        f"paths:\n  workdir: {wd.root}\ncluster:\n  kind: synchronous\n"
        f"features:\n  radiomics:\n    params: {params}\n"
    )
    res = runner.invoke(app, ["features", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "qct: 1 done" in res.output and "radiomics: 1 done" in res.output
    assert pd.read_parquet(wd.qct)["region"].nunique() == 6
    assert pd.read_parquet(wd.radiomics)["original_firstorder_Mean"].notna().all()
