"""QC numbers and flags, the preprocess stage end to end (Zarr read-back, QC table, failures) and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.io.volume import Volume


def test_qc_metrics_and_flags(small_phantom):
    from ctpheno.preprocess import qc_metrics

    img = small_phantom.image
    truth = img.with_array(small_phantom.truth)
    qc = qc_metrics(img, truth, min_lung_volume_ml=100, max_lung_volume_ml=5000)
    vml = img.voxel_volume_ml
    right_ml = np.count_nonzero(small_phantom.truth == 1) * vml  # from the label array, not from qc
    left_ml = np.count_nonzero(small_phantom.truth == 2) * vml
    assert qc["right_volume_ml"] == pytest.approx(right_ml)
    assert qc["left_volume_ml"] == pytest.approx(left_ml)
    assert qc["left_right_ratio"] == pytest.approx(left_ml / right_ml)
    assert left_ml != pytest.approx(right_ml, rel=0.02)  # the phantom's lungs differ: a swap would show
    assert qc["both_lungs_found"] and qc["covers_apex"] and qc["covers_base"]
    assert qc["flags"] == ""
    # one lung missing, too small for an adult: flagged, not hidden
    one = truth.with_array(np.where(small_phantom.truth == 2, 0, small_phantom.truth).astype(np.uint8))
    qc1 = qc_metrics(img, one)
    assert not qc1["both_lungs_found"]
    assert set(qc1["flags"].split(";")) >= {"left_lung_missing", "volume_low"}
    # mask cut at the top slice -> apex not covered
    cut = truth.array.copy()
    cut[-1, 40:50, 30:40] = 1
    assert "apex_cut" in qc_metrics(img, truth.with_array(cut))["flags"]
    with pytest.raises(ValueError, match="geometry"):
        qc_metrics(img, Volume(small_phantom.truth[:-1], img.spacing_mm))


def _write_scan(vol: Volume, path) -> None:
    import SimpleITK as sitk

    sitk.WriteImage(vol.to_sitk(), str(path))


def test_stage_writes_zarr_qc_and_failures(small_phantom, tmp_path):
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.io.layout import WorkDir
    from ctpheno.io.schemas import QC
    from ctpheno.io.zarrstore import read_volume, store_attrs
    from ctpheno.preprocess.stage import process_volume, run_preprocess

    wd = WorkDir(tmp_path / "work").ensure()
    good = tmp_path / "good.nii.gz"
    _write_scan(small_phantom.image, good)
    abdomen = np.full((30, 64, 64), -1000, np.int16)
    abdomen[:, 8:56, 8:56] = 40
    abdomen[10:14, 20:26, 20:26] = -900
    bad = tmp_path / "bad.nii.gz"
    _write_scan(Volume(abdomen, (2.5, 2.0, 2.0)), bad)
    man = pd.DataFrame({"scan_id": ["s-good", "s-bad", "s-unused"], "usable": [True, True, False],
                        "selected": [True, True, True], "size_z": [80, 30, 1], "size_y": [96, 64, 1],
                        "size_x": [112, 64, 1], "source": ["input0/f-a.nii.gz", "input0/f-b.nii.gz", ""]})
    man.to_parquet(wd.manifest)
    wd.sources.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scan_id": ["s-good", "s-bad", "s-unused"], "format": ["nifti"] * 3,
                  "paths": [[str(good)], [str(bad)], [str(bad)]]}).to_parquet(wd.sources)
    cfg = PipelineConfig()
    cfg = cfg.model_copy(update={"preprocess": cfg.preprocess.model_copy(update={"min_lung_volume_ml": 200.0,
                                                                                 "chunks": (16, 32, 32)})})
    res = run_preprocess(cfg, wd, None)
    assert res.done == ["s-good"] and res.failed == ["s-bad"]
    fails = pd.read_parquet(wd.failures)
    row = fails[fails["scan_id"] == "s-bad"].iloc[0]
    assert row["error_type"] == "NotChestCTError" and "lung" in row["message"]
    qc = pd.read_parquet(wd.qc_table)
    QC.validate(qc)
    assert qc["scan_id"].tolist() == ["s-good"] and bool(qc["both_lungs_found"].iloc[0])
    assert wd.qc_png("s-good").stat().st_size > 5_000
    # the store read back equals the in-memory arrays, with the geometry and a content hash
    hu, labels, zones = process_volume(small_phantom.image, cfg.preprocess)
    for name, mem in (("image", hu), ("labels", labels), ("zones", zones)):
        back = read_volume(wd.volume("s-good"), name)
        assert np.array_equal(back.array, mem.array)
        assert back.same_geometry(mem)
    attrs = store_attrs(wd.volume("s-good"))
    assert len(attrs["content_hash"]) == 16 and attrs["content_hash"] == qc["content_hash"].iloc[0]
    # resume: nothing recomputed the second time
    again = run_preprocess(cfg, wd, None)
    assert again.skipped == ["s-good"] and not again.done


def test_cli_segment_writes_labels_on_input_grid(small_phantom, tmp_path):
    import SimpleITK as sitk
    from typer.testing import CliRunner

    from ctpheno.cli import app

    src = tmp_path / "scan.nrrd"
    _write_scan(small_phantom.image, src)
    out = tmp_path / "labels.nii.gz"
    res = CliRunner().invoke(app, ["segment", str(src), str(out)])
    assert res.exit_code == 0, res.output
    img = sitk.ReadImage(str(out))
    ref = small_phantom.image.to_sitk()
    assert img.GetSize() == ref.GetSize()
    assert np.allclose(img.GetSpacing(), ref.GetSpacing()) and np.allclose(img.GetOrigin(), ref.GetOrigin())
    lab = sitk.GetArrayFromImage(img)
    assert set(np.unique(lab)) == {0, 1, 2, 3}
    res = CliRunner().invoke(app, ["segment", str(src), str(tmp_path / "labels.txt")])
    assert res.exit_code != 0 and ".nii.gz" in res.output


def test_module_entry_point_help():
    from ctpheno.preprocess.run import main

    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0


def test_ingest_then_preprocess_contract(tmp_path):
    """The stage runs on what the real ingest stage writes (manifest + sources), zones are volume thirds."""
    import SimpleITK as sitk

    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.ingest.stage import run_ingest
    from ctpheno.io.layout import WorkDir
    from ctpheno.io.zarrstore import read_volume
    from ctpheno.preprocess.stage import run_preprocess
    from ctpheno.synth import make_phantom

    src = tmp_path / "in"
    src.mkdir()
    ph = make_phantom(seed=3, size="demo", subtype="panlobular", emphysema_fraction=0.3)
    sitk.WriteImage(ph.image.to_sitk(), str(src / "subject1.nii.gz"))
    cfg = PipelineConfig()
    cfg = cfg.model_copy(update={"paths": cfg.paths.model_copy(update={"inputs": [str(src)],
                                                                       "workdir": str(tmp_path / "work")})})
    wd = WorkDir(tmp_path / "work").ensure()
    run_ingest(cfg, wd, None)
    res = run_preprocess(cfg, wd, None)
    assert len(res.done) == 1 and not res.failed
    scan_id = res.done[0]
    labels = read_volume(wd.volume(scan_id), "labels").array
    zones = read_volume(wd.volume(scan_id), "zones").array
    truth = ph.lungs.array
    for code in (1, 2):
        d = 2 * np.count_nonzero((labels == code) & (truth == code)) / (np.count_nonzero(labels == code)
                                                                        + np.count_nonzero(truth == code))
        assert d >= 0.97
    for z in range(1, 7):
        lung = 1 if z <= 3 else 2
        assert abs(np.count_nonzero(zones == z) - np.count_nonzero(labels == lung) / 3) <= 1
    qc = pd.read_parquet(wd.qc_table)
    assert 1500 < qc["lung_volume_ml"].iloc[0] < 9000
