"""Controlled pathology variants of a real scan (LIDC-IDRI-0314), segmented like the expert-contour variants.

The scan is block-averaged to 2 x 3.1 x 3.1 mm so each segmentation costs about a second; the variants
are built on that grid by ``ctpheno.synth.variants`` (the scan's own noise, partial-volume edges). The
truth is the unmodified scan's mask away from the change and known by construction at it. The full-
resolution table (both real scans, five positions, three sizes) is ``benchmarks/bench_segmentation_variants.py``.
"""

from __future__ import annotations

import numpy as np
import pytest

from preprocess_phantom import dice
from ctpheno.io.volume import Volume
from ctpheno.preprocess import qc_metrics, segment_lungs
from ctpheno.preprocess.grid import block_mean
from ctpheno.synth import variants as V

FACTORS = (2, 4, 4)


def _laa(hu: np.ndarray, mask: np.ndarray) -> float:
    return 100.0 * float(np.mean(hu[mask] <= -950))


@pytest.fixture(scope="module")
def scan(lidc_0314):
    arr = np.rint(block_mean(lidc_0314.array, FACTORS)).astype(np.int16)
    image = Volume(arr, tuple(s * f for s, f in zip(lidc_0314.spacing_mm, FACTORS)), lidc_0314.origin_mm,
                   lidc_0314.direction)
    base = segment_lungs(image).array
    noise = V.scan_noise_hu(arr, image.spacing_mm)
    return image, base, noise


def test_juxtapleural_masses_at_four_positions_are_inside_the_lung(scan):
    image, base, noise = scan
    hu, masses = image.array, []
    for k, (code, where, radius) in enumerate([(1, "lateral", 10.0), (1, "posterior", 12.5), (2, "anterior", 10.0),
                                               (2, "base", 12.5)]):
        var = V.juxtapleural_mass(hu, base, image.spacing_mm, code=code, where=where, radius_mm=radius,
                                  level_hu=40.0, noise_hu=noise, rng=np.random.default_rng(k))
        hu = var.hu
        masses.append((code, var.changed & (base == code)))
    lab = segment_lungs(image.with_array(hu)).array
    for code, mass in masses:
        assert mass.sum() * image.voxel_volume_ml > 2.0  # a real mass, mostly inside the lung envelope
        assert np.mean(lab[mass] == code) >= 0.9
    assert dice(lab == 1, base == 1) >= 0.97 and dice(lab == 2, base == 2) >= 0.97
    # without the costal step the masses are cut out of the mask
    from ctpheno.config.preprocess import SegmentationConfig

    cut = segment_lungs(image.with_array(hu), config=SegmentationConfig(costal_closing_mm=0.0)).array
    assert np.mean([np.mean(cut[m] == c) for c, m in masses]) < 0.6


def test_opacified_left_lung_gives_the_right_lung_and_its_density(scan):
    image, base, noise = scan
    var = V.opacify_lung(image.array, base, image.spacing_mm, code=2, noise_hu=noise, rng=np.random.default_rng(5))
    lab = segment_lungs(image.with_array(var.hu))
    arr = lab.array
    assert not (arr == 2).any()
    assert dice(arr == 1, base == 1) >= 0.97
    right = base == 1
    assert abs(_laa(var.hu, np.isin(arr, (1, 2))) - _laa(var.hu, right)) <= 0.5
    assert abs(np.isin(arr, (1, 2)).sum() / right.sum() - 1.0) < 0.03
    assert "left_lung_missing" in qc_metrics(image.with_array(var.hu), lab)["flags"].split(";")


def test_injected_emphysema_keeps_the_mask_and_laa950(scan):
    image, base, noise = scan
    var = V.inject_emphysema(image.array, base, image.spacing_mm, n_blobs=40, pleural_fraction=0.6,
                             noise_hu=noise, rng=np.random.default_rng(6))
    assert var.changed.sum() * image.voxel_volume_ml > 50.0
    lab = segment_lungs(image.with_array(var.hu)).array
    assert dice(lab == 1, base == 1) >= 0.97 and dice(lab == 2, base == 2) >= 0.97
    truth = _laa(var.hu, np.isin(base, (1, 2)))
    assert truth > _laa(image.array, np.isin(base, (1, 2))) + 1.0  # the injection moved LAA-950
    assert abs(_laa(var.hu, np.isin(lab, (1, 2))) - truth) <= 0.5


def test_posterior_effusion_stays_out_of_the_mask(scan):
    image, base, noise = scan
    var = V.pleural_effusion(image.array, base, image.spacing_mm, code=2, depth_mm=30.0, level_hu=10.0,
                             noise_hu=noise, rng=np.random.default_rng(7))
    fluid = var.changed
    assert fluid.sum() * image.voxel_volume_ml > 50.0
    lab = segment_lungs(image.with_array(var.hu)).array
    assert np.mean(np.isin(lab[fluid], (1, 2))) < 0.1
    truth = np.where(fluid, 0, base)
    assert dice(lab == 2, truth == 2) >= 0.97 and dice(lab == 1, truth == 1) >= 0.97

