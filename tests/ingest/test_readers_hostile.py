"""Readers refuse what ingest rejects (for the single-scan tools that skip ingest), read enhanced CT by
its functional groups, and name scans by their PHI-free label in the pipeline."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.errors import UnreadableSeriesError
from ctpheno.io import WorkDir
from ctpheno.io.readers import read_scan
from ctpheno.io.volheaders import VolumeFileError

from .conftest import SeriesSpec, truth_hu, write_series
from .hostile_corpus import N, OpenWatch, axial_positions, write_enhanced_ct


def test_enhanced_ct_reads_like_the_same_series_of_files(tmp_path):
    hu = truth_hu(N, 32, 32, seed=5)
    pos = axial_positions()[::-1]  # frames stored superior to inferior: the order must not matter
    write_enhanced_ct(tmp_path / "mf.dcm", positions_mm=pos, hu=hu[::-1], entropy="mf-read")
    vol = read_scan(tmp_path / "mf.dcm")
    files = write_series(tmp_path / "series", SeriesSpec("same", n=N, rows=32, cols=32), hu=hu)
    ref = read_scan(files)
    np.testing.assert_array_equal(vol.array, hu)
    np.testing.assert_array_equal(vol.array, ref.array)
    np.testing.assert_allclose(vol.spacing_mm, (2.5, 0.75, 0.75), atol=1e-6)  # from positions, not 1 mm
    np.testing.assert_allclose(vol.origin_mm, ref.origin_mm, atol=1e-4)
    np.testing.assert_allclose(vol.direction, ref.direction, atol=1e-9)


@pytest.mark.parametrize("defect, match", [
    ("gap", r"irregular slice positions \(missing_slices"),
    ("duplicate", "two different slices at the same position"),
    ("none", "without per-frame positions"),
])
def test_irregular_enhanced_ct_is_refused_not_read_as_1mm(tmp_path, defect, match):
    pos = axial_positions()
    if defect == "gap":
        pos[6:] += [0, 0, 5.0]
    elif defect == "duplicate":
        pos[7] = pos[6]
    write_enhanced_ct(tmp_path / "mf.dcm", positions_mm=None if defect == "none" else pos, entropy=defect)
    with pytest.raises(UnreadableSeriesError, match=match):
        read_scan(tmp_path / "mf.dcm")


@pytest.mark.parametrize("tags, match", [
    ({"RescaleSlope": "0"}, "RescaleSlope 0"),
    ({"PixelSpacing": ["0", "0"]}, "PixelSpacing .* implausible"),
    ({"ImageOrientationPatient": ["1", "0", "0", "0.26", "0.9656", "0"]}, "not orthonormal"),
])
def test_damaged_dicom_series_refused_naming_the_label(tmp_path, tags, match):
    files = write_series(tmp_path / "DOE^JOHN", SeriesSpec("bad", n=N, rows=16, cols=16))
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(f)
    with pytest.raises(UnreadableSeriesError, match=match) as info:
        read_scan(files, label="input0/d-0123456789ab")
    assert "input0/d-0123456789ab file" in str(info.value)
    assert "DOE" not in str(info.value) and "img0" not in str(info.value)


def test_missing_slice_refused_instead_of_averaged(tmp_path):
    files = write_series(tmp_path / "s", SeriesSpec("gap", n=N, rows=16, cols=16))
    files[5].unlink()
    with pytest.raises(UnreadableSeriesError, match="missing_slices"):
        read_scan(tmp_path / "s")


def _nii(path: Path, arr: np.ndarray) -> Path:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.7, 0.7, 2.0))
    sitk.WriteImage(img, str(path))
    return path


def test_volume_files_refused_at_read_time(tmp_path):
    hu = truth_hu(N, 32, 32)
    gz = _nii(tmp_path / "ROE^RICHARD.nii.gz", hu)
    gz.write_bytes(gz.read_bytes()[:-40])
    with pytest.raises(VolumeFileError, match="gzip stream is cut short") as info:
        read_scan(gz, label="input0/f-aaaaaaaaaaaa.nii.gz")  # SimpleITK zero-filled it before
    assert info.value.code == "truncated_file" and "ROE" not in str(info.value)
    nan = hu.astype(np.float32)
    nan[2, 2, 2] = np.inf
    with pytest.raises(VolumeFileError, match="NaN or infinite") as info:
        read_scan(_nii(tmp_path / "inf.nii.gz", nan))
    assert info.value.code == "non_finite_voxels"
    # the raw bytes of the gzip stream end cleanly, but the header declares twice the slices
    short = gzip.compress(gzip.decompress(_nii(tmp_path / "s.nii.gz", hu).read_bytes())[: 352 + hu.nbytes // 2])
    (tmp_path / "s.nii.gz").write_bytes(short)
    with pytest.raises(VolumeFileError, match=r"hold \d+ of the \d+ bytes"):
        read_scan(tmp_path / "s.nii.gz")


def test_detached_header_pointing_outside_is_never_opened(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "passwd"
    secret.write_bytes(truth_hu(N, 32, 32).tobytes())
    scan = tmp_path / "in" / "scan"
    scan.mkdir(parents=True)
    (scan / "x.nhdr").write_text("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\nsizes: 32 32 12\n"
                                 "space directions: (0.7,0,0) (0,0.7,0) (0,0,2)\nendian: little\n"
                                 "encoding: raw\ndata file: ../../outside/passwd\n")
    watch = OpenWatch([outside, secret])
    try:
        with pytest.raises(VolumeFileError, match="lies outside its folder") as info:
            read_scan(scan / "x.nhdr")
        assert info.value.code == "outside_input_tree" and watch.events() == []
        # a caller may allow a wider folder explicitly
        assert read_scan(scan / "x.nhdr", tree=str(tmp_path)).shape == (N, 32, 32)
        assert any(p.endswith("passwd") for p in watch.events())
    finally:
        watch.close()


def test_preprocess_failure_names_the_source_not_the_file(tmp_path):
    """A NIfTI's file name is its subject key: a read failure after ingest must not print it."""
    from ctpheno.ingest.stage import run_ingest
    from ctpheno.preprocess.stage import run_preprocess

    inputs = tmp_path / "archive"
    inputs.mkdir()
    nii = _nii(inputs / "ROE^RICHARD_19480730.nii.gz", truth_hu(N, 32, 32))
    cfg = PipelineConfig.model_validate({"paths": {"inputs": [str(inputs)], "workdir": str(tmp_path / "w"),
                                                   "pseudonym_salt": "x"},
                                         "cluster": {"kind": "synchronous"}, "ingest": {"min_slices": 8}})
    wd = WorkDir(tmp_path / "w")
    man = run_ingest(cfg, wd, None).table
    assert man["usable"].all()
    nii.write_bytes(nii.read_bytes()[:-100])  # damaged after ingest (an interrupted copy, a bad disk)
    res = run_preprocess(cfg, wd, None)
    assert res.failed == man["scan_id"].tolist()
    fail = pd.read_parquet(wd.failures).iloc[-1]
    assert fail["source"] == man["source"].iloc[0] and fail["source"] in fail["message"]
    assert "ROE" not in fail["message"] and "archive" not in fail["message"]
