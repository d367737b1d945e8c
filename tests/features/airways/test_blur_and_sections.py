"""Blurred-ring model and cross-section measurement against independent truth.

The disc model is checked against scipy.stats.ncx2 (the exact distribution); the wall measurement
against straight tubes rasterised with partial volume and blurred by scipy's Gaussian filter (an
independent forward model), cut obliquely to the voxel grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from scipy.stats import ncx2

from ctpheno.features.airways.blur import blurred_disc
from ctpheno.features.airways.graph import AirwayTree
from ctpheno.features.airways.sections import measure_sections
from ctpheno.synth.trees import Segment, rasterize

SPACING = (0.8, 0.7, 0.7)
PSF_SIGMA_MM = 0.34  # Gaussian PSF of FWHM 0.8 mm in plane and through plane


@pytest.mark.parametrize("a_mm,sigma_mm", [(1.0, 0.4), (3.9, 0.4), (4.5, 0.35), (12.0, 0.5)])
def test_blurred_disc_matches_the_noncentral_chi2(a_mm, sigma_mm):
    s = np.linspace(0.0, a_mm + 3.0, 60)
    exact = ncx2.cdf((a_mm / sigma_mm) ** 2, 2, (s / sigma_mm) ** 2)
    np.testing.assert_allclose(blurred_disc(s, a_mm, sigma_mm), exact, atol=1e-3)


def _tube(r_mm: float, wall_mm: float, direction, *, noise_hu: float = 0.0, seed: int = 0):
    shape = (60, 64, 64)
    sxyz = np.array(SPACING[::-1])
    centre = np.array([32 * 0.7 + 0.3, 32 * 0.7 - 0.2, 30 * 0.8 + 0.1])  # off the voxel centres
    d = np.asarray(direction, float) / np.linalg.norm(direction)
    p0, p1 = centre - 18 * d, centre + 18 * d
    lumen, wall = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    rasterize([Segment(p0, p1, r_mm, 3)], lumen, origin_mm=np.zeros(3), spacing_mm=sxyz)
    rasterize([Segment(p0, p1, r_mm + wall_mm, 3)], wall, origin_mm=np.zeros(3), spacing_mm=sxyz)
    wall = np.maximum(wall, lumen)
    hu = -850.0 * (1 - wall) + 35.0 * (wall - lumen) - 1000.0 * lumen
    hu = ndi.gaussian_filter(hu.astype(np.float32), [PSF_SIGMA_MM / s for s in SPACING])
    if noise_hu:
        hu = hu + np.random.default_rng(seed).normal(0.0, noise_hu, shape).astype(np.float32)
    line = (p0 + np.linspace(0, 1, 41)[:, None] * (p1 - p0))[:, ::-1] / np.array(SPACING)
    branches = pd.DataFrame([dict(branch_id=0, parent_id=-1, generation=3, side="", length_mm=36.0,
                                  inscribed_radius_mm=0.8 * r_mm, n_children=0, junction=False)])
    return hu, AirwayTree(branches, [line])


@pytest.mark.parametrize("direction", [(1, 1, 1), (1, 0, 0.3)])
@pytest.mark.parametrize("r_mm,wall_mm", [(1.6, 0.6), (2.0, 1.2), (3.0, 0.9)])
def test_tube_wall_and_lumen_recovered_where_fwhm_overestimates(direction, r_mm, wall_mm):
    hu, tree = _tube(r_mm, wall_mm, direction)
    # the effective blur: PSF, the one-voxel partial-volume ramp of the rasteriser, trilinear sampling
    sig = float(np.sqrt(PSF_SIGMA_MM**2 + np.mean(SPACING) ** 2 / 12 + 0.7**2 / 12))
    sec = measure_sections(hu, tree, SPACING, sigma_zyx_mm=(sig, sig, sig))
    v = sec[sec["valid"]]
    assert len(v) >= 20
    a, b = v["lumen_radius_mm"].median(), v["outer_radius_mm"].median()
    assert a == pytest.approx(r_mm, abs=0.08)
    assert b - a == pytest.approx(wall_mm, abs=0.1)
    fwhm = (v["outer_radius_fwhm_mm"] - v["lumen_radius_fwhm_mm"]).median()
    if wall_mm < 1.0:  # the known FWHM bias (Reinhardt 1997): thin walls read thick, lumens small
        assert fwhm > wall_mm + 0.25 and v["lumen_radius_fwhm_mm"].median() < r_mm - 0.15


def test_noise_does_not_bias_the_wall():
    clean = _tube(1.8, 0.8, (1, 1, 1))
    noisy = _tube(1.8, 0.8, (1, 1, 1), noise_hu=60.0, seed=3)
    sig = float(np.sqrt(PSF_SIGMA_MM**2 + np.mean(SPACING) ** 2 / 12 + 0.7**2 / 12))
    got = []
    for hu, tree in (clean, noisy):
        sec = measure_sections(hu, tree, SPACING, sigma_zyx_mm=(sig, sig, sig))
        v = sec[sec["valid"]]
        got.append((v["outer_radius_mm"] - v["lumen_radius_mm"]).median())
    assert got[1] == pytest.approx(got[0], abs=0.05)
