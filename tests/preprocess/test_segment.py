"""Lung segmentation against independent truth: the analytic phantom, synthetic phantoms, real scans."""

from __future__ import annotations

import numpy as np
import pytest

from preprocess_phantom import dice, make_small_phantom
from ctpheno.config.preprocess import SegmentationConfig
from ctpheno.errors import EmptyLungMaskError, MissingExtraError, NotChestCTError
from ctpheno.io.volume import Volume
from ctpheno.preprocess import SEGMENTATION_BACKENDS, segment_lungs


@pytest.fixture(scope="module")
def small_labels(small_phantom):
    return segment_lungs(small_phantom.image).array


def test_small_phantom_dice_and_exclusions(small_phantom, small_labels):
    lab, truth = small_labels, small_phantom.truth
    assert dice(lab == 1, truth == 1) >= 0.97
    assert dice(lab == 2, truth == 2) >= 0.97
    # the -980 HU emphysema blob stays inside the right lung
    assert np.mean(lab[small_phantom.emphysema] == 1) > 0.99
    # bowel gas below the lungs is not lung
    assert not np.isin(lab[small_phantom.bowel_gas], (1, 2)).any()
    # the trachea above the lungs is labelled airway, not lung
    trachea = truth == 3
    assert np.mean(lab[trachea] == 3) > 0.7
    assert np.mean(np.isin(lab[trachea], (1, 2))) < 0.05
    # vessels (40 HU tubes) inside the lungs are inside the mask: no hole in the mask where truth is lung
    assert np.count_nonzero((truth == 1) & (lab == 0)) < 0.02 * np.count_nonzero(truth == 1)


def test_labels_follow_patient_side_not_array_order(small_phantom, small_labels):
    flipped = make_small_phantom(flip_x=True)
    lab = segment_lungs(flipped.image).array
    # same physical patient stored mirrored: label 1 is still the patient's right lung
    assert dice(lab == 1, flipped.truth == 1) >= 0.97
    assert np.array_equal(lab[:, :, ::-1], small_labels)
    ax, sign = flipped.image.index_axis_patient_left()
    assert (ax, sign) == (2, -1)


def test_lungs_touching_anteriorly_are_separated():
    ph = make_small_phantom(bridge=True)
    lab = segment_lungs(ph.image).array
    assert dice(lab == 1, ph.truth == 1) >= 0.97
    assert dice(lab == 2, ph.truth == 2) >= 0.97


def test_no_air_in_body_raises_empty():
    arr = np.full((30, 64, 64), -1000, np.int16)
    arr[:, 8:56, 8:56] = 40
    with pytest.raises(EmptyLungMaskError, match="no air below"):
        segment_lungs(Volume(arr, (2.5, 2.0, 2.0)))


def test_too_little_lung_air_raises_not_chest():
    arr = np.full((30, 64, 64), -1000, np.int16)
    arr[:, 8:56, 8:56] = 40
    arr[10:14, 20:26, 20:26] = -900  # a few mL of gas
    with pytest.raises(NotChestCTError, match="mL of lung air"):
        segment_lungs(Volume(arr, (2.5, 2.0, 2.0)))


def test_backend_registry_and_missing_extras(small_phantom):
    assert set(SEGMENTATION_BACKENDS) == {"classic", "lungmask", "totalsegmentator"}
    try:
        import lungmask  # noqa: F401
    except ImportError:
        with pytest.raises(MissingExtraError, match="lungmask"):
            segment_lungs(small_phantom.image, config=SegmentationConfig(backend="lungmask"))
    with pytest.raises(TypeError, match="Volume"):
        segment_lungs(small_phantom.image.array)


@pytest.fixture(scope="module")
def demo_results():
    from ctpheno.synth import make_phantom

    out = {}
    for seed, subtype, frac in [(11, "none", 0.0), (12, "centrilobular", 0.35), (13, "panlobular", 0.5),
                                (14, "paraseptal", 0.3), (15, "airway", 0.1)]:
        ph = make_phantom(seed=seed, size="demo", subtype=subtype, emphysema_fraction=frac)
        out[subtype] = (ph, segment_lungs(ph.image).array)
    return out


@pytest.mark.parametrize("subtype", ["none", "centrilobular", "panlobular", "paraseptal", "airway"])
def test_synthetic_demo_dice(demo_results, subtype):
    ph, lab = demo_results[subtype]
    truth = ph.lungs.array
    assert dice(lab == 1, truth == 1) >= 0.97
    assert dice(lab == 2, truth == 2) >= 0.97
    # emphysema (label 5 of the detailed truth) is inside the lungs
    emph = ph.labels.array == 5
    if emph.any():
        assert np.mean(np.isin(lab[emph], (1, 2))) > 0.98
    # trachea / main bronchi are not lung
    assert np.mean(np.isin(lab[truth == 3], (1, 2))) < 0.15


def test_synthetic_full_size_dice():
    from ctpheno.synth import make_phantom

    ph = make_phantom(seed=101, size="full", subtype="panlobular", emphysema_fraction=0.4)
    lab = segment_lungs(ph.image).array
    truth = ph.lungs.array
    assert dice(lab == 1, truth == 1) >= 0.97
    assert dice(lab == 2, truth == 2) >= 0.97


def test_paraseptal_emphysema_is_no_warning(demo_results):
    """Confluent subpleural emphysema is a sheet of air along the chest wall like a pneumothorax: the
    pleural-air number sees it, so its flag is information, not a warning (see docs/segmentation.md)."""
    from ctpheno.preprocess import qc_metrics
    from ctpheno.preprocess.qc import QC_FLAG_SEVERITY

    ph, lab = demo_results["paraseptal"]
    qc = qc_metrics(ph.image, ph.image.with_array(lab))
    assert qc["pleural_air_ml"] > 10.0 and "pleural_air" in qc["flags"].split(";")  # seen ...
    assert QC_FLAG_SEVERITY["pleural_air"] == "info"  # ... but not ranked as a failure


@pytest.fixture(scope="module")
def lung1(shared_data):
    from ctpheno.io.readers import read_scan

    image = read_scan(shared_data / "pyradiomics_lung1" / "lung1_image.nrrd")
    return image, segment_lungs(image)


def test_real_thorax_lung1(lung1, tmp_path):
    from ctpheno.preprocess import qc_metrics, qc_montage

    image, labels = lung1
    qc = qc_metrics(image, labels)
    assert qc["both_lungs_found"]
    assert 2000 < qc["lung_volume_ml"] < 6000
    assert 700 < qc["right_volume_ml"] and 700 < qc["left_volume_ml"]
    lung = np.isin(labels.array, (1, 2))
    mld = float(image.array[lung].mean())
    assert -900 < mld < -750  # inspiratory lung density
    # the partial-volume rim at the pleura is in the mask, and its voxels lie above -500 HU by nature
    assert qc["frac_above_minus500"] < 0.12
    # the trachea is found and labelled 3; right lung lies toward the patient's right (LPS -x)
    assert np.count_nonzero(labels.array == 3) * image.voxel_volume_ml > 5
    xr = np.nonzero(labels.array == 1)[2].mean()
    xl = np.nonzero(labels.array == 2)[2].mean()
    assert xr < xl  # identity direction: +x index = patient left
    png = qc_montage(image, labels, tmp_path / "qc.png")
    assert png.stat().st_size > 10_000


def test_upper_abdomen_series_is_not_a_chest_ct(shared_data):
    from ctpheno.io.readers import read_scan

    image = read_scan(shared_data / "totalsegmentator_ct_dicom")
    with pytest.raises(NotChestCTError, match="does not contain the lungs"):
        segment_lungs(image)


def test_air_under_the_back_is_not_taken_for_the_opacified_lung(lung1):
    """lung1 with its left lung whited out: the air between the patient's back and the table pad (inside
    the body outline, where the field of view cuts the body) must not become the 'left lung'."""
    from ctpheno.synth import variants as V

    image, labels = lung1
    base = labels.array
    var = V.opacify_lung(image.array, base, image.spacing_mm, code=2,
                         noise_hu=V.scan_noise_hu(image.array, image.spacing_mm), rng=np.random.default_rng(8))
    lab = segment_lungs(image.with_array(var.hu)).array
    assert not (lab == 2).any()
    assert dice(lab == 1, base == 1) >= 0.98
    lung, right = np.isin(lab, (1, 2)), base == 1
    assert abs(np.mean(var.hu[lung] <= -950) - np.mean(var.hu[right] <= -950)) * 100 <= 0.5


def test_field_of_view_cutting_the_lungs(lung1):
    """A small reconstruction field of view that cuts through both lungs laterally: they stay lungs."""
    image, labels = lung1
    full = labels.array
    x0, x1 = 100, 412  # 178 mm wide: both lungs touch the image's left and right edges
    crop = Volume(np.ascontiguousarray(image.array[:, :, x0:x1]), image.spacing_mm,
                  tuple(image.index_to_physical([0, 0, x0])), image.direction)
    lab = segment_lungs(crop).array
    ref = full[:, :, x0:x1]
    assert (ref[:, :, 0] == 1).any() and (ref[:, :, -1] == 2).any()
    assert dice(lab == 1, ref == 1) >= 0.98
    assert dice(lab == 2, ref == 2) >= 0.98


def test_real_thin_slice_lidc_0314_elevated_hemidiaphragm(lidc_0314):
    """Real sharp-kernel scan with a markedly elevated right hemidiaphragm: both lungs, no rejecting flag,
    and the mask edge sits on the partial-volume rim (its outermost voxels are between lung and tissue)."""
    from scipy import ndimage as ndi

    from ctpheno.preprocess import qc_metrics
    from ctpheno.preprocess.qc import QC_FLAG_SEVERITY

    image = lidc_0314
    labels = segment_lungs(image)
    qc = qc_metrics(image, labels)
    assert qc["both_lungs_found"]
    assert all(QC_FLAG_SEVERITY[f] != "exclude" for f in qc["flags"].split(";") if f)
    assert qc["left_right_ratio"] > 1.6  # real anatomy: the right lung is small
    lung = np.isin(labels.array, (1, 2))
    box = tuple(slice(s.start, s.stop) for s in ndi.find_objects(lung.astype(np.uint8))[0])
    edge = lung[box] & ~ndi.binary_erosion(lung[box])
    hu = image.array[box][edge]
    assert np.mean((hu >= -400) & (hu <= 0)) > 0.5  # the rim, not the half-maximum (-600 HU median before)
    assert 2500 < qc["lung_volume_ml"] < 3500
