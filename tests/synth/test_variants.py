"""The controlled-variant builders against closed-form truth: sphere volumes, noise level, positions."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.synth import variants as V


@pytest.mark.parametrize("radius_mm", [4.0, 9.5])
def test_sphere_weight_integrates_to_the_sphere_volume(radius_mm):
    spacing = (1.25, 0.7, 0.7)
    w, box = V.sphere_weight((60, 80, 80), spacing, (30.3, 40.6, 39.2), radius_mm, psf_fwhm_mm=1.0)
    volume = float(w.sum()) * np.prod(spacing)
    assert volume == pytest.approx(4.0 / 3.0 * np.pi * radius_mm ** 3, rel=0.02)
    assert w.max() == pytest.approx(1.0, abs=1e-3) and w.min() >= 0.0


def test_scan_noise_is_measured_in_homogeneous_tissue():
    rng = np.random.default_rng(0)
    hu = np.full((20, 64, 64), -1000.0)
    hu[:, 8:56, 8:56] = 40.0  # soft tissue
    hu[5:15, 20:40, 20:40] = -850.0  # lung: not homogeneous tissue, not used
    noisy = np.rint(hu + rng.normal(0.0, 25.0, hu.shape)).astype(np.int16)
    assert V.scan_noise_hu(noisy, (1.0, 1.2, 1.2)) == pytest.approx(25.0, rel=0.1)
    with pytest.raises(ValueError, match="homogeneous soft tissue"):
        V.scan_noise_hu(np.full((8, 8, 8), -1000, np.int16), (1.0, 1.0, 1.0))


def _ellipsoid_lungs() -> np.ndarray:
    z, y, x = np.ogrid[:40, :60, :80]
    lungs = np.zeros((40, 60, 80), np.uint8)
    lungs[((z - 20) / 18.0) ** 2 + ((y - 30) / 22.0) ** 2 + ((x - 22) / 14.0) ** 2 < 1] = 1
    lungs[((z - 20) / 18.0) ** 2 + ((y - 30) / 22.0) ** 2 + ((x - 58) / 14.0) ** 2 < 1] = 2
    return lungs


@pytest.mark.parametrize("where", V.WHERES)
def test_costal_point_is_on_the_outer_edge_and_points_outward(where):
    lungs = _ellipsoid_lungs()
    for code, side in ((1, -1), (2, 1)):
        (k, j, i), d = V.costal_point(lungs == code, (2.0, 2.0, 2.0), where, lateral_sign=side)
        assert lungs[k, j, i] == code
        step = np.rint(np.array([k, j, i]) + 2.0 * d).astype(int)  # two voxels outward: outside the lung
        assert lungs[tuple(step)] == 0
        if where == "lateral":
            assert np.sign(d[2]) == side  # away from the midline


def test_juxtapleural_mass_abuts_the_pleura_and_variants_touch_only_their_target():
    lungs = _ellipsoid_lungs()
    hu = np.where(lungs > 0, -850, 40).astype(np.int16)
    sp = (2.0, 2.0, 2.0)
    mass = V.juxtapleural_mass(hu, lungs, sp, code=1, where="lateral", radius_mm=8.0, level_hu=40.0)
    inside = mass.changed & (lungs == 1)
    assert 0.5 < inside.sum() / mass.changed.sum() < 0.97  # mostly in the lung, pressed into the wall
    assert np.all(mass.hu[mass.changed & (lungs == 1)] > -200)
    white = V.opacify_lung(hu, lungs, sp, code=2, level_hu=35.0)
    assert np.all(white.hu[lungs == 1] == hu[lungs == 1])
    assert np.median(white.hu[lungs == 2]) == pytest.approx(35.0, abs=1.0)
    emph = V.inject_emphysema(hu, lungs, sp, n_blobs=10, radius_mm=(3.0, 6.0), rng=np.random.default_rng(1))
    assert emph.changed.any() and not (emph.changed & (lungs == 0)).any()
    assert np.all(emph.hu[lungs == 0] == hu[lungs == 0])  # the pleura and chest wall are intact
    fluid = V.pleural_effusion(hu, lungs, sp, code=1, depth_mm=10.0)
    assert fluid.changed.any() and not (fluid.changed & (lungs != 1)).any()
