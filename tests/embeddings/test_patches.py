"""Patch geometry against hand-built arrays."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.errors import EmptyLungMaskError
from ctpheno.features.deep_embeddings.patches import (cut_patches, grid_centres, lung_grid, patch_regions,
                                                      window_hu)


def test_window_maps_hu_linearly_and_clips():
    v = window_hu(np.array([-2000, -1024, -712, -400, 100]), hu_window=(-1024, -400))
    np.testing.assert_allclose(v, [0, 0, 0.5, 1, 1], atol=1e-6)
    with pytest.raises(ValueError, match="high > low"):
        window_hu(np.zeros(3), hu_window=(0, 0))


def test_lung_grid_resamples_masks_and_keeps_density():
    hu = np.full((20, 40, 40), 50, np.int16)
    labels = np.zeros_like(hu, dtype=np.uint8)
    labels[5:15, 10:30, 10:30] = 1
    hu[labels == 1] = -712
    g = lung_grid(hu, labels, (2.0, 1.0, 1.0), target_mm=2.0, margin_mm=0.0)
    assert g.image.shape == (10, 10, 10)
    assert g.lung.all() and np.allclose(g.image, 0.5, atol=1e-5)
    g2 = lung_grid(hu, labels, (2.0, 1.0, 1.0), target_mm=2.0, margin_mm=4.0)
    assert g2.image[~g2.lung].max() == 0.0  # outside the lungs reads air
    with pytest.raises(EmptyLungMaskError):
        lung_grid(hu, np.zeros_like(labels), (1, 1, 1))
    with pytest.raises(ValueError, match="spacing_mm"):
        lung_grid(hu, labels, (1, 1))


def test_grid_centres_inside_lungs_and_capped():
    lung = np.zeros((32, 32, 32), bool)
    lung[:, :16] = True
    c = grid_centres(lung, patch_size=8, min_lung_fraction=0.5)
    assert len(c) and lung[tuple(c.T)].all()
    assert len(grid_centres(lung, patch_size=8, max_patches=5)) == 5


def test_cut_patches_reads_values_and_pads_with_air():
    img = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    p = cut_patches(img, np.array([[2, 2, 2], [0, 0, 0]]), patch_size=2)
    np.testing.assert_array_equal(p[0], img[1:3, 1:3, 1:3])
    assert p[1][0, 0, 0] == 0 and p[1][1, 1, 1] == img[0, 0, 0]


def test_patch_regions_by_zone_code():
    zones = np.zeros((3, 1, 1), np.uint8)
    zones[:, 0, 0] = [4, 2, 6]
    r = patch_regions(zones, np.array([[0, 0, 0], [1, 0, 0], [2, 0, 0]]))
    assert r["upper"].tolist() == [True, False, False]
    assert r["middle"].tolist() == [False, True, False]
    assert r["lower"].tolist() == [False, False, True]
    assert r["whole"].all()
