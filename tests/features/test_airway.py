"""Airway wall metrics on a phantom tube of known lumen radius and wall thickness."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctpheno.features.airway import (
    AIRWAY_COLUMNS,
    airway_metrics,
    fwhm_wall_thickness,
    mean_lumen_radius_mm,
    radial_profile,
    wall_area_pct,
)

LUMEN_R_MM = 6.0


def tube(wall_mm: float, h: float, *, outside_hu: float = -850.0, psf_sigma_mm: float = 0.6):
    """Tube along z (full field of view): air lumen, 35 HU wall, ``outside_hu`` around; 3x3 in-plane
    supersampled partial volume, then a Gaussian point-spread of ``psf_sigma_mm``."""
    n, nz, ss = int(round(50 / h)), int(round(30 / h)), 3
    c = (np.arange(n * ss) - (n * ss - 1) / 2) * h / ss
    r = np.hypot(c[:, None], c[None, :])
    sl = np.where(r < LUMEN_R_MM, -1000.0, np.where(r < LUMEN_R_MM + wall_mm, 35.0, outside_hu))
    sl = sl.reshape(n, ss, n, ss).mean(axis=(1, 3))
    img = ndi.gaussian_filter(np.repeat(sl[None], nz, 0), psf_sigma_mm / h)
    cc = (np.arange(n) - (n - 1) / 2) * h
    labels = np.ones(img.shape, np.uint8)  # lung around the bronchus (its wall is labelled lung, as preprocess does)
    labels[:, np.hypot(cc[:, None], cc[None, :]) < LUMEN_R_MM] = 3
    return np.rint(img).astype(np.int16), labels


@pytest.mark.parametrize("h", [0.6, 1.0])
def test_wall_thickness_tracks_truth(h):
    walls = [1.5, 2.0, 3.0, 4.0]
    got = []
    for t in walls:
        img, lab = tube(t, h)
        got.append(airway_metrics(img, lab, (h, h, h))["airway_wall_thickness_mm"])
    assert np.all(np.diff(got) > 0), got
    # FWHM within 0.5 mm of the true wall once the wall is wider than the point spread
    np.testing.assert_allclose(got, walls, atol=0.5)


def test_thin_walls_saturate_but_peak_hu_keeps_rising():
    """Below the resolution the FWHM saturates at the PSF width; the wall peak HU still orders the walls."""
    h = 2.5
    peaks, fwhm = [], []
    for t in (0.5, 1.0, 1.5, 2.0, 3.0):
        img, lab = tube(t, h, psf_sigma_mm=1.25)
        m = airway_metrics(img, lab, (h, h, h))
        peaks.append(m["airway_wall_peak_hu"])
        fwhm.append(m["airway_wall_thickness_mm"])
    assert np.all(np.diff(peaks) > 20), peaks
    assert min(fwhm) > 1.0  # never below the point-spread width


def test_lumen_radius_and_wa_pct():
    h, t = 1.0, 2.0
    img, lab = tube(t, h)
    r = mean_lumen_radius_mm(lab == 3, (h, h, h))
    assert abs(r - LUMEN_R_MM) < 0.4  # staircase of the voxelised circle
    m = airway_metrics(img, lab, (h, h, h))
    true_wa = 100 * ((LUMEN_R_MM + t) ** 2 - LUMEN_R_MM**2) / (LUMEN_R_MM + t) ** 2  # 43.75 %
    assert abs(m["airway_wa_pct"] - true_wa) < 5.0
    assert wall_area_pct(3.0, 1.0) == pytest.approx(100 * 7 / 16)


@pytest.mark.parametrize("h", [1.0, 2.5])
def test_wall_and_peribronchial_density_rise_with_wall(h):
    ms = [airway_metrics(*tube(t, h, psf_sigma_mm=max(0.6, h / 2)), (h, h, h)) for t in (0.5, 1.0, 2.0, 3.0)]
    for col in ("airway_wall_hu", "peribronchial_hu"):
        vals = [m[col] for m in ms]
        assert np.all(np.diff(vals) > 10), (col, vals)
        assert -850 < vals[0] < vals[-1] < 35


def test_mediastinal_voxels_do_not_enter():
    """Voxels outside the lung labels (mediastinum) are left out of the profile and shells."""
    img, lab = tube(2.0, 1.0)
    ref = airway_metrics(img, lab, (1.0, 1.0, 1.0))
    img2, lab2 = img.copy(), lab.copy()
    img2[:, :, :8], lab2[:, :, :8] = 300, 0  # dense non-lung tissue far from the tube
    img2[:, :, -8:], lab2[:, :, -8:] = 300, 0
    got = airway_metrics(img2, lab2, (1.0, 1.0, 1.0))
    assert got["airway_wall_hu"] == pytest.approx(ref["airway_wall_hu"])
    assert got["peribronchial_hu"] == pytest.approx(ref["peribronchial_hu"])


def test_profile_anisotropic_spacing_consistent():
    """1 x 1 x 1 and 2 x 1 x 1 mm grids of the same tube (along z) give the same thickness."""
    img, lab = tube(3.0, 1.0)
    iso = airway_metrics(img, lab, (1.0, 1.0, 1.0))["airway_wall_thickness_mm"]
    aniso = airway_metrics(img[::2], lab[::2], (2.0, 1.0, 1.0))["airway_wall_thickness_mm"]
    assert abs(iso - aniso) < 0.3
    assert abs(aniso - 3.0) < 0.5


def test_no_airway_lumen_gives_nan_row():
    img, lab = tube(2.0, 1.0)
    m = airway_metrics(img, np.zeros_like(lab), (1.0, 1.0, 1.0))
    assert set(m) == set(AIRWAY_COLUMNS) and all(math.isnan(v) for v in m.values())


def test_fwhm_without_lumen_part_is_nan_and_bad_inputs_raise():
    assert math.isnan(fwhm_wall_thickness([0.5, 1.0, 1.5, 2.0], [-900, 0, -800, -850]))
    img, lab = tube(2.0, 1.0)
    with pytest.raises(TypeError, match="bool"):
        radial_profile(img, lab, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="differ in shape"):
        airway_metrics(img[1:], lab, (1.0, 1.0, 1.0))
    with pytest.raises(ValueError, match="spacing_mm"):
        airway_metrics(img, lab, (1.0, 0.0, 1.0))
