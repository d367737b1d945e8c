"""Lumen growing: a bulla abutting a bronchus through a gap in its wall is a leak, not airway."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ctpheno.features.airways.segment import segment_lumen
from ctpheno.synth.trees import Segment, rasterize

SPACING = (0.8, 0.8, 0.8)


def _chest(bulla: bool, seed: int = 0):
    """A trachea and two bronchi in -850 HU lung (noise 40 HU); optionally a 12 mm -1000 HU bulla
    opening onto the right bronchus."""
    shape = (90, 80, 110)
    sxyz = np.array(SPACING[::-1])
    top, carina = np.array([44.0, 32, 70]), np.array([44.0, 32, 48])
    lum = [Segment(top, carina, 5.0, 0), Segment(carina, carina + [-18.0, 0, -18], 3.0, 1),
           Segment(carina, carina + [18.0, 0, -18], 3.0, 1)]
    lumen, wall = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    rasterize(lum, lumen, origin_mm=np.zeros(3), spacing_mm=sxyz)
    rasterize(lum, wall, origin_mm=np.zeros(3), spacing_mm=sxyz, extra_mm=1.2)
    wall = np.maximum(wall, lumen)
    hu = -850.0 * (1 - wall) + 30.0 * (wall - lumen) - 1000.0 * lumen
    z, y, x = np.indices(shape) * np.array(SPACING)[:, None, None, None]
    sphere = np.zeros(shape, bool)
    if bulla:  # centred 13 mm beside the right bronchus's end, its wall opened toward it
        c = carina + [-18.0, 0, -18] + [-13.0, 0, 0]
        sphere = (x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= 12.0**2
        hole = (x - (c[0] + 11.0)) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2 <= 3.0**2
        hu[sphere | hole] = -1000.0
    hu = ndi.gaussian_filter(hu, 0.5) + np.random.default_rng(seed).normal(0.0, 40.0, shape)
    labels = np.where(x < 44.0, 1, 2).astype(np.uint8)
    labels[(lumen >= 0.5) & (z > carina[2])] = 3  # the trachea, as preprocess labels it
    return hu.astype(np.int16), labels, lumen >= 0.5, sphere


def test_bronchi_grow_and_the_bulla_leak_is_stopped():
    hu, labels, truth, _ = _chest(False)
    clean = segment_lumen(hu, labels, SPACING)
    core = ndi.binary_erosion(truth)  # the lumen less its partial-volume rim
    assert clean.n_leaks == 0 and np.count_nonzero(clean.lumen & core) > 0.9 * np.count_nonzero(core)
    assert np.count_nonzero(clean.lumen & ~ndi.binary_dilation(truth, iterations=2)) < 0.02 * np.count_nonzero(truth)
    hu, labels, truth, bulla = _chest(True)
    seg = segment_lumen(hu, labels, SPACING)
    assert np.count_nonzero(seg.lumen & bulla) < 0.05 * np.count_nonzero(bulla)
    assert seg.n_leaks >= 1 and seg.leak_rejected_ml > 0.5
    # the other bronchus is still there
    left = core & (np.indices(truth.shape)[2] * SPACING[2] > 50.0)
    assert np.count_nonzero(seg.lumen & left) > 0.6 * np.count_nonzero(left)  # regrown lower with its lineage


def test_no_seed_no_lumen():
    hu, labels, _, _ = _chest(False)
    labels[labels == 3] = 1
    seg = segment_lumen(hu, labels, SPACING)
    assert not seg.lumen.any() and np.isnan(seg.threshold_hu)
