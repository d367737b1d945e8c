"""The boundary at the pleura and pathology at the lung border, against phantoms with a partial-volume truth.

The phantoms (``ctpheno.synth.pathology``) mix materials exactly over sub-voxels, blur and add noise
like a scanner; the truth is the lung fraction of every voxel before blur (>= 0.1: rim included).
"""

from __future__ import annotations

import numpy as np
import pytest

from preprocess_phantom import dice
from ctpheno.config.preprocess import SegmentationConfig
from ctpheno.preprocess import qc_metrics, segment_lungs
from ctpheno.synth.pathology import make_pathology_phantom


def _vol_err(lab: np.ndarray, truth: np.ndarray) -> float:
    return float(np.isin(lab, (1, 2)).sum() / np.isin(truth, (1, 2)).sum() - 1.0)


@pytest.fixture(scope="module")
def normal():
    ph = make_pathology_phantom()
    return ph, segment_lungs(ph.image).array


def test_rim_phantom_truth_is_the_partial_volume_fraction(normal):
    ph, _ = normal
    truth = np.isin(ph.lungs.array, (1, 2))
    # the truth holds every voxel with a tenth or more of lung: more than the half-voxel convention
    assert np.array_equal(truth, ph.fraction >= 0.1)
    assert truth.sum() > (ph.fraction >= 0.5).sum() * 1.02


def test_boundary_reaches_the_pleura(normal):
    ph, lab = normal
    truth = ph.lungs.array
    assert dice(lab == 1, truth == 1) >= 0.99
    assert dice(lab == 2, truth == 2) >= 0.99
    assert abs(_vol_err(lab, truth)) < 0.02
    # without the rim (the half-maximum boundary alone) the mask is short by the rim's volume
    half = segment_lungs(ph.image, config=SegmentationConfig(rim_max_mm=0.0)).array
    assert _vol_err(half, truth) < -0.03
    # the rim stays out of the trachea and main bronchi
    airway = truth == 3
    assert np.mean(np.isin(lab[airway], (1, 2))) < 0.05


def test_juxtapleural_mass_is_inside_the_lung():
    ph = make_pathology_phantom(mass_mm=18.0)
    lab = segment_lungs(ph.image).array
    mass = ph.marks["mass"]
    assert np.mean(lab[mass] == 1) >= 0.95
    assert dice(lab == 1, ph.lungs.array == 1) >= 0.99 and dice(lab == 2, ph.lungs.array == 2) >= 0.99
    # without the costal closing the mass is cut out, and QC sees the concavity
    cut = segment_lungs(ph.image, config=SegmentationConfig(costal_closing_mm=0.0))
    assert np.mean(cut.array[mass] == 1) < 0.2
    assert "costal_gap" in qc_metrics(ph.image, cut)["flags"].split(";")
    assert "costal_gap" not in qc_metrics(ph.image, ph.image.with_array(lab))["flags"].split(";")


def test_opacified_lung_gives_one_lung_across_the_midline():
    ph = make_pathology_phantom(opacified="left", herniation_mm=30.0)
    lab = segment_lungs(ph.image)
    arr, truth = lab.array, ph.lungs.array
    assert not (arr == 2).any()  # the remaining lung is not split at the midline
    assert dice(arr == 1, truth == 1) >= 0.99
    assert np.mean(arr[ph.marks["herniation"]] == 1) > 0.9
    assert np.mean(np.isin(arr[ph.marks["opacified"]], (1, 2))) < 0.01
    flags = qc_metrics(ph.image, lab)["flags"].split(";")
    assert "left_lung_missing" in flags


def test_pleural_air_is_flagged():
    ph = make_pathology_phantom(pleural_air_mm=12.0)
    lab = segment_lungs(ph.image)
    qc = qc_metrics(ph.image, lab)
    assert "pleural_air" in qc["flags"].split(";")
    assert qc["pleural_air_ml"] > 20.0
    truth_air_ml = ph.marks["pleural_air"].sum() * ph.image.voxel_volume_ml
    assert qc["pleural_air_ml"] < 1.5 * truth_air_ml


def test_pleural_effusion_stays_out_of_the_lung():
    ph = make_pathology_phantom(effusion_mm=25.0)
    lab = segment_lungs(ph.image)
    arr, truth, fluid = lab.array, ph.lungs.array, ph.marks["effusion"]
    assert fluid.sum() * ph.image.voxel_volume_ml > 100.0  # a dependent crescent of 0.1-0.2 L
    assert np.mean(np.isin(arr[fluid], (1, 2))) < 0.1
    assert dice(arr == 1, truth == 1) >= 0.99 and abs(_vol_err(arr, truth)) < 0.02
    assert "costal_gap" not in qc_metrics(ph.image, lab)["flags"].split(";")  # not a bite for the ball


def test_normal_phantom_has_no_mask_qc_flag(normal):
    ph, lab = normal
    qc = qc_metrics(ph.image, ph.image.with_array(lab))
    assert qc["flags"] == ""
    assert qc["envelope_gap_ml"] == 0.0 and qc["pleural_air_ml"] == 0.0
    assert 0.2 < qc["lung_body_ratio"] < 0.5


def test_noise_leaves_the_mask_unchanged(normal):
    ph, lab = normal
    rng = np.random.default_rng(1)
    noisy = ph.image.with_array(np.clip(ph.image.array + rng.normal(0, 120, ph.image.shape), -1024, 3071)
                                .astype(np.int16))
    lab2 = segment_lungs(noisy).array
    assert dice(lab2 == 1, lab == 1) >= 0.98 and dice(lab2 == 2, lab == 2) >= 0.98
