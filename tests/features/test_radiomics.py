"""PyRadiomics wrapper: baseline agreement on lung1, parameter validation, captured failures."""

from __future__ import annotations

import ast
import csv

import numpy as np
import pytest

from ctpheno.errors import ConfigError, FeatureExtractionError
from ctpheno.features.radiomics import (
    extract_features,
    params_on_grid,
    extract_regions,
    load_params,
    settings_hash,
    validate_params,
)
from ctpheno.io.volume import Volume

CLASSES = ("firstorder", "glcm", "gldm", "glrlm", "glszm", "ngtdm", "shape")


def _lung1_baseline(folder, column="lung1"):
    values, settings = {}, None
    for cls in CLASSES:
        with open(folder / "baseline" / f"baseline_{cls}.csv", newline="") as fh:
            rows = list(csv.reader(fh))
        col = rows[0].index(column)
        for row in rows[1:]:
            if row[0] == "diagnostics_Configuration_Settings":
                settings = ast.literal_eval(row[col])
            elif row[0].startswith("original_"):
                values[row[0]] = float(row[col])
    return values, settings


def test_lung1_every_original_feature_equals_pyradiomics_baseline(shared_data):
    import SimpleITK as sitk

    folder = shared_data / "pyradiomics_lung1"
    baseline, settings = _lung1_baseline(folder)
    assert settings["binWidth"] == 25 and settings["voxelArrayShift"] == 2000
    params = validate_params(
        {"imageType": {"Original": {}}, "featureClass": {c: [] for c in CLASSES}, "setting": settings},
        source="lung1 baseline settings",
    )
    image = Volume.from_sitk(sitk.ReadImage(str(folder / "lung1_image.nrrd")))
    mask = Volume.from_sitk(sitk.ReadImage(str(folder / "lung1_label.nrrd")))
    feats, diag = extract_features(image, mask, params=params, label=settings["label"])
    assert set(feats) == set(baseline)
    assert len(feats) == 107
    for name, ref in baseline.items():
        assert feats[name] == pytest.approx(ref, rel=1e-5, abs=1e-12), name
    assert "Sum Average" in diag["warnings"]  # PyRadiomics' warning was captured, not lost


@pytest.fixture(scope="module")
def lung1_resampling(shared_data):
    """lung1 with PyRadiomics' ``lung1_resampling`` baseline: 2 mm isotropic, sitkBSpline, pad 5."""
    import SimpleITK as sitk

    folder = shared_data / "pyradiomics_lung1"
    baseline, settings = _lung1_baseline(folder, "lung1_resampling")
    assert settings["resampledPixelSpacing"] == [2, 2, 2] and settings["interpolator"] == "sitkBSpline"
    params = validate_params(
        {"imageType": {"Original": {}}, "featureClass": {c: [] for c in CLASSES}, "setting": settings},
        source="lung1_resampling baseline settings",
    )
    image = Volume.from_sitk(sitk.ReadImage(str(folder / "lung1_image.nrrd")))
    mask = Volume.from_sitk(sitk.ReadImage(str(folder / "lung1_label.nrrd")))
    return baseline, params, image, mask


def test_lung1_exact_option_pyradiomics_resampling_equals_baseline(lung1_resampling):
    """``resampling: pyradiomics``: the native image goes to PyRadiomics, which resamples it itself."""
    baseline, params, image, mask = lung1_resampling
    feats, _ = extract_features(image, mask, params=params, label=1)
    assert set(feats) == set(baseline) and len(feats) == 107
    for name, ref in baseline.items():
        assert feats[name] == pytest.approx(ref, rel=1e-5, abs=1e-12), name


def test_lung1_on_the_analysis_grid_equals_pyradiomics_resampling_baseline(lung1_resampling):
    """``resampling: analysis_grid``: the stored grid with PyRadiomics' resampling off gives PyRadiomics'
    own resampled features (docs/methods_features.md: equal within 1e-6 relative)."""
    from ctpheno.preprocess.analysis_grid import make_analysis_grid

    baseline, params, image, mask = lung1_resampling
    labels = mask.with_array(mask.array.astype(np.uint8))
    grid = make_analysis_grid(image, labels, labels.with_array(np.zeros(labels.shape, np.uint8)), spacing_mm=2.0)
    on_grid = params_on_grid(params, spacing_mm=2.0, interpolator="bspline")
    assert "resampledPixelSpacing" not in on_grid["setting"] and "resampledPixelSpacing" in params["setting"]
    feats, _ = extract_features(grid.image, grid.labels, params=on_grid, label=1)
    assert set(feats) == set(baseline)
    for name, ref in baseline.items():
        assert feats[name] == pytest.approx(ref, rel=1e-6, abs=1e-12), name


@pytest.mark.parametrize(
    "setting, grid, match",
    [
        ({"resampledPixelSpacing": [1, 1, 1]}, dict(spacing_mm=2.0, interpolator="bspline"), "resampledPixelSpacing"),
        ({"resampledPixelSpacing": [2, 2, 0]}, dict(spacing_mm=2.0, interpolator="bspline"), "resampledPixelSpacing"),
        ({"resampledPixelSpacing": [2, 2, 2], "interpolator": "sitkLinear"},
         dict(spacing_mm=2.0, interpolator="bspline"), "sitkLinear"),
        ({"resampledPixelSpacing": [2, 2, 2]}, dict(spacing_mm=2.0, interpolator="linear"), "sitkBSpline"),
    ],
)
def test_params_that_do_not_match_the_grid_are_rejected(setting, grid, match):
    params = validate_params({"setting": {"binWidth": 25, **setting}})
    with pytest.raises(ConfigError, match=match):
        params_on_grid(params, source="p.yaml", **grid)


def test_shipped_params_file_validates_and_hash_is_stable():
    params = load_params("config/features/radiomics.yaml")
    assert params["setting"]["binWidth"] == 25
    assert settings_hash(params) == settings_hash(load_params("config/features/radiomics.yaml"))
    changed = {**params, "setting": {**params["setting"], "binWidth": 10}}
    assert settings_hash(changed) != settings_hash(params)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"setting": {"binWidth": -1}}, "schema"),
        ({"setting": {"binWidht": 25}}, "schema"),
        ({"featureClass": {"glcmm": []}}, "glcmm"),
        ({"setting": {"binWidth": 25, "binCount": 32}}, "both binWidth and binCount"),
        ({"setting": {"resampledPixelSpacing": [1, 1]}}, "3 values"),
    ],
)
def test_invalid_params_are_rejected_before_any_work(bad, match):
    with pytest.raises(ConfigError, match=match):
        validate_params(bad, source="test.yaml")


def _tiny(shape=(8, 10, 12), value=None):
    rng = np.random.default_rng(0)
    arr = (
        rng.integers(-900, -700, size=shape).astype(np.int16)
        if value is None
        else np.full(shape, value, np.int16)
    )
    img = Volume(arr, (2.0, 1.0, 1.0))
    lab = np.zeros(shape, np.uint8)
    lab[2:6, 2:8, 2:10] = 1
    return img, img.with_array(lab)


def test_empty_label_and_pyradiomics_errors_raise_with_messages():
    img, msk = _tiny()
    params = validate_params({"featureClass": {"firstorder": []}, "setting": {"binWidth": 25}})
    with pytest.raises(FeatureExtractionError, match="no voxel with label 2"):
        extract_features(img, msk, params=params, label=2)
    # a one-slice ROI with minimumROIDimensions 3: PyRadiomics raises; the message is kept
    flat = msk.with_array(np.where(np.arange(8)[:, None, None] == 3, msk.array, 0).astype(np.uint8))
    strict = validate_params(
        {"featureClass": {"firstorder": []}, "setting": {"binWidth": 25, "minimumROIDimensions": 3}}
    )
    with pytest.raises(FeatureExtractionError, match="PyRadiomics failed"):
        extract_features(img, flat, params=strict, label=1)


def test_geometry_mismatch_is_rejected():
    img, msk = _tiny()
    moved = Volume(msk.array, (2.0, 1.0, 1.0), origin_mm=(5.0, 0.0, 0.0))
    params = validate_params({"featureClass": {"firstorder": []}, "setting": {"binWidth": 25}})
    with pytest.raises(ValueError):
        extract_features(img, moved, params=params)


def test_extract_regions_is_wide_with_pyradiomics_names(lung_phantom):
    p = lung_phantom
    vol = Volume(p.hu, p.spacing_mm)
    params = validate_params(
        {"featureClass": {"firstorder": ["Mean", "Minimum"]}, "setting": {"binWidth": 25}}
    )
    feats, diag = extract_regions(
        vol,
        vol.with_array(p.labels),
        vol.with_array(p.zones),
        params=params,
        regions=["whole", "right"],
        scan_id="s1",
    )
    assert list(feats.columns) == [
        "scan_id",
        "region",
        "original_firstorder_Mean",
        "original_firstorder_Minimum",
    ]
    lung = (p.labels == 1) | (p.labels == 2)
    assert feats.loc[0, "original_firstorder_Mean"] == pytest.approx(p.hu[lung].mean(), rel=1e-12)
    assert feats.loc[1, "original_firstorder_Minimum"] == -980.0  # the blob is in the right lung
    assert not any(c.startswith("diagnostics_") for c in feats.columns)
    assert any(c.startswith("diagnostics_") for c in diag.columns)
