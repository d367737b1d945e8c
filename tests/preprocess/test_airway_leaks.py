"""Leak control of the trachea/main-bronchi growth: emphysema or a bulla touching a bronchus is not airway."""

from __future__ import annotations

import numpy as np

from ctpheno.preprocess.trachea import drop_thick_leaks, grow_airway

SP = (2.5, 2.5, 2.5)


def _tree(blob_hu: float = -965.0):
    """Coarse HU: a trachea (radius 9 mm) down to a carina, two main bronchi (radius 6 mm), and a bulla
    (radius 15 mm, ``blob_hu``) opening into the right bronchus; soft tissue around."""
    z, y, x = np.mgrid[:50, :40, :60].astype(float) * 2.5
    hu = np.full(z.shape, 40.0, np.float32)
    trachea = ((y - 50) ** 2 + (x - 75) ** 2 <= 9.0 ** 2) & (z >= 75)
    t = np.clip((75 - z) / 40.0, 0, 1)
    bronchi = np.zeros_like(trachea)
    for side in (-1, 1):
        cx = 75 + side * 45 * t
        bronchi |= ((y - 50) ** 2 + (x - cx) ** 2 <= 6.0 ** 2) & (z < 78) & (z > 30)
    blob = (z - 45) ** 2 + (y - 50) ** 2 + (x - 75 + 45 * 0.75 + 17) ** 2 <= 15.0 ** 2
    hu[blob & ~bronchi] = blob_hu
    hu[trachea | bronchi] = -1000.0
    seed = trachea & (z >= 110)
    return hu, seed, trachea, bronchi & ~blob, blob & ~bronchi


def test_a_bulla_on_a_bronchus_is_not_grown_into():
    hu, seed, trachea, bronchi, blob = _tree()
    region = grow_airway(hu, np.ones(hu.shape, bool), seed, max_threshold=-850.0, max_voxels=250e3 / 2.5 ** 3)
    assert np.mean(region[trachea]) > 0.99 and np.mean(region[bronchi]) > 0.95
    assert np.mean(region[blob]) < 0.05


def test_thick_parts_below_the_trachea_are_dropped_from_the_airway():
    hu, seed, trachea, bronchi, blob = _tree(blob_hu=-1000.0)  # a bulla at the lumen's own HU: grown in
    region = grow_airway(hu, np.ones(hu.shape, bool), seed, max_threshold=-850.0, max_voxels=250e3 / 2.5 ** 3)
    assert np.mean(region[blob]) > 0.95
    kept = drop_thick_leaks(region, seed, SP)
    assert np.mean(kept[blob]) < 0.1
    assert np.mean(kept[trachea]) > 0.99 and np.mean(kept[bronchi]) > 0.95
