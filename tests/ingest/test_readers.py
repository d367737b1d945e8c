"""read_scan against SimpleITK on real series, and against known synthetic truth."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from ctpheno.errors import UnreadableSeriesError
from ctpheno.io.readers import HU_PADDING, dicom_slice_hu, read_scan

from .conftest import SeriesSpec, truth_hu, write_series


def _sitk_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    return reader.Execute()


def _assert_same_as_sitk(vol, image: sitk.Image) -> None:
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(image))
    np.testing.assert_allclose(vol.spacing_mm, image.GetSpacing()[::-1], rtol=0, atol=1e-6)
    np.testing.assert_allclose(vol.origin_mm, image.GetOrigin(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(vol.direction, image.GetDirection(), rtol=0, atol=1e-9)


def test_ibsi_ct_phantom_dicom_equals_simpleitk_and_nifti(shared_data):
    folder = shared_data / "ibsi_1_ct_radiomics_phantom" / "dicom" / "image"
    vol = read_scan(folder)
    assert vol.shape == (60, 201, 204)
    _assert_same_as_sitk(vol, _sitk_series(folder))
    nifti = read_scan(shared_data / "ibsi_1_ct_radiomics_phantom" / "nifti" / "image" / "phantom.nii.gz")
    np.testing.assert_array_equal(vol.array, nifti.array)
    np.testing.assert_allclose(vol.spacing_mm, nifti.spacing_mm, atol=1e-5)
    np.testing.assert_allclose(vol.origin_mm, nifti.origin_mm, atol=1e-4)


def test_jpeg2000_siemens_series_decodes_like_simpleitk(shared_data):
    folder = shared_data / "totalsegmentator_ct_dicom" / "dicom"
    files = sorted(str(p) for p in folder.iterdir())
    assert (
        pydicom.dcmread(files[0], stop_before_pixels=True).file_meta.TransferSyntaxUID
        == "1.2.840.10008.1.2.4.90"
    )
    random.Random(3).shuffle(files)  # order of the list must not matter
    vol = read_scan(files)
    assert vol.shape == (20, 512, 512)
    assert (int(vol.array.min()), int(vol.array.max())) == (-1024, 1839)
    _assert_same_as_sitk(vol, _sitk_series(folder))
    assert vol.meta["kernel"].startswith("Br38f")


def test_nrrd_equals_simpleitk(shared_data):
    path = shared_data / "pyradiomics_lung1" / "lung1_image.nrrd"
    vol = read_scan(path)
    _assert_same_as_sitk(vol, sitk.ReadImage(str(path)))


def test_per_slice_rescale_sorting_and_padding(tmp_path):
    hu = truth_hu(12, 16, 16, seed=4)
    spec = SeriesSpec("rescale", n=12, rows=16, cols=16, intercepts=(-1024, 0, -1000), padding_stored=-3000)
    files = write_series(tmp_path / "s", spec, hu=hu)
    # file names run opposite to slice order and InstanceNumber is scrambled: only IPP may sort
    for k, f in enumerate(files):
        ds = pydicom.dcmread(f)
        ds.InstanceNumber = (k * 7) % 12 + 1
        ds.save_as(f)
    vol = read_scan(tmp_path / "s")
    expected = hu.copy()
    expected[:, :2, :2] = HU_PADDING
    np.testing.assert_array_equal(vol.array, expected)
    assert vol.origin_mm == pytest.approx((-12.0, -12.0, -50.0))
    assert vol.spacing_mm == pytest.approx((2.5, 0.75, 0.75))


def test_dicom_slice_hu_formula_and_padding_markers():
    raw = np.array([[0, 10, -976, -2000]], dtype=np.int16)
    out = dicom_slice_hu(raw, slope=0.5, intercept=-1000.0, padding_value=None)
    np.testing.assert_array_equal(out, [[-1000, -995, -1488, HU_PADDING]])
    out = dicom_slice_hu(np.array([[5, 7]], np.int16), slope=1.0, intercept=-1024, padding_value=7)
    np.testing.assert_array_equal(out, [[-1019, HU_PADDING]])


def test_unreadable_and_ambiguous_series_raise_naming_the_file(tmp_path):
    files = write_series(tmp_path / "t", SeriesSpec("trunc", n=6))
    data = files[2].read_bytes()
    files[2].write_bytes(data[:-500])
    with pytest.raises(UnreadableSeriesError, match=files[2].name):
        read_scan(files)
    other = write_series(tmp_path / "o", SeriesSpec("other", n=3))
    with pytest.raises(UnreadableSeriesError, match="different series"):
        read_scan([*write_series(tmp_path / "g", SeriesSpec("g", n=3)), other[0]])
    with pytest.raises(ValueError, match="fmt must be one of"):
        read_scan(files, fmt="jpeg")


def test_fsspec_url_is_copied_and_read(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    files = write_series(tmp_path / "m", SeriesSpec("mem", n=5, rows=8, cols=8), hu=truth_hu(5, 8, 8))
    fs = fsspec.filesystem("memory")
    for f in files:
        fs.pipe(f"/ctpheno-test/series/{f.name}", f.read_bytes())
    try:
        vol = read_scan("memory://ctpheno-test/series")
        np.testing.assert_array_equal(vol.array, truth_hu(5, 8, 8))
    finally:
        fs.rm("/ctpheno-test", recursive=True)


def test_discovery_of_real_series(shared_data, tmp_path):
    """The UID-less JPEG 2000 series is one row; the IBSI folder gives the CT series and its RTSTRUCT."""
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.ingest.stage import run_ingest
    from ctpheno.io import WorkDir

    inputs = [
        str(shared_data / "totalsegmentator_ct_dicom" / "dicom"),
        str(shared_data / "ibsi_1_ct_radiomics_phantom" / "dicom"),
    ]
    cfg = PipelineConfig.model_validate(
        {
            "paths": {"inputs": inputs, "workdir": str(tmp_path), "pseudonym_salt": "x"},
            "ingest": {"min_slices": 16},
        }
    )
    manifest = run_ingest(cfg, WorkDir(tmp_path), None).table.set_index("n_files")
    assert sorted(manifest.index) == [1, 20, 60]
    ts = manifest.loc[20]
    assert (ts["size_z"], ts["spacing_z_mm"], ts["slice_thickness_mm"]) == (20, 2.0, 3.0)  # overlapping recon
    assert ts["reasons"].split(";") == ["body_part_not_chest", "contrast_enhanced", "non_lung_kernel"]
    assert ts["usable"] and ts["kernel"] == "Br38f\\3" and ts["manufacturer"] == "SIEMENS"
    ibsi = manifest.loc[60]
    assert ibsi["usable"] and (ibsi["size_y"], ibsi["size_x"]) == (201, 204)
    assert ibsi["spacing_z_mm"] == pytest.approx(3.0) and ibsi["orientation"] == "axial"
    assert manifest.loc[1, "reasons"] == "not_ct;no_pixel_data" and manifest.loc[1, "modality"] == "RTSTRUCT"
    assert manifest.loc[1, "study_id"] == ibsi["study_id"]


def test_discovery_over_fsspec_urls(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.ingest.stage import run_ingest
    from ctpheno.io import WorkDir

    files = write_series(tmp_path / "s", SeriesSpec("url", n=31, rows=8, cols=8), hu=truth_hu(31, 8, 8))
    fs = fsspec.filesystem("memory")
    for f in files:
        fs.pipe(f"/ctpheno-disc/a/b/{f.name}", f.read_bytes())
    fs.pipe("/ctpheno-disc/a/notes.bin", b"xx" * 100)
    try:
        cfg = PipelineConfig.model_validate(
            {
                "paths": {
                    "inputs": ["memory://ctpheno-disc"],
                    "workdir": str(tmp_path / "w"),
                    "pseudonym_salt": "x",
                }
            }
        )
        res = run_ingest(cfg, WorkDir(tmp_path / "w"), None)
        assert len(res.table) == 1 and bool(res.table["usable"].iloc[0])
        # the non-image file is noted in failures.parquet but is not a failed scan (exit code 0)
        fails = pd.read_parquet(WorkDir(tmp_path / "w").failures)
        assert fails["message"].str.startswith("non_image_file:").tolist() == [True] and res.failed == []
        paths = list(pd.read_parquet(WorkDir(tmp_path / "w").sources)["paths"].iloc[0])
        assert all(p.startswith("memory://") for p in paths)
        np.testing.assert_array_equal(read_scan(paths).array, truth_hu(31, 8, 8))
    finally:
        fs.rm("/ctpheno-disc", recursive=True)


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless"])
def test_compressed_series_decode_and_truncation_is_detected(tmp_path, syntax):
    """Encapsulated pixel data: decoded HU equal the truth; a cut file is flagged from its header."""
    import pydicom.uid

    from ctpheno.ingest.headers import read_dicom_record

    hu = truth_hu(4, 64, 64, seed=9)
    files = write_series(tmp_path / "c", SeriesSpec("cmp" + syntax, n=4, rows=64, cols=64), hu=hu)
    for f in files:
        ds = pydicom.dcmread(f)
        ds.compress(getattr(pydicom.uid, syntax))
        ds.save_as(f)
    assert str(pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID) == getattr(pydicom.uid, syntax)
    np.testing.assert_array_equal(read_scan(tmp_path / "c").array, hu)
    assert read_dicom_record(str(files[1]))["problem"] is None
    files[1].write_bytes(files[1].read_bytes()[:-40])
    assert read_dicom_record(str(files[1]))["problem"] == "truncated_file"


def test_slice_spacing_is_the_median_gap_as_in_the_manifest(tmp_path):
    """One gap 8 % longer (inside the 10 % tolerance): the reader's spacing is the median gap
    (2.5 mm), the value ingest validation writes to the manifest, not the mean (2.505 mm)."""
    from ctpheno.config.ingest import IngestConfig
    from ctpheno.ingest.headers import read_dicom_record
    from ctpheno.ingest.validate import summarize_dicom_series

    spec = SeriesSpec("median-gap", rows=16, cols=16)
    files = write_series(tmp_path / "s", spec, hu=truth_hu(spec.n, 16, 16, seed=5))
    top = max(files, key=lambda f: float(pydicom.dcmread(f).ImagePositionPatient[2]))
    ds = pydicom.dcmread(top)
    ds.ImagePositionPatient = [*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 0.2]
    ds.save_as(top)
    summary = summarize_dicom_series([read_dicom_record(str(f)) for f in files], cfg=IngestConfig())
    assert not summary["reasons"], summary["reasons"]
    vol = read_scan(tmp_path / "s")
    assert summary["spacing_z_mm"] == pytest.approx(2.5)
    assert vol.spacing_mm[0] == pytest.approx(summary["spacing_z_mm"], abs=1e-9)
