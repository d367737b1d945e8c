"""Branch graph of a hand-built lumen: branches, generations from the carina, sides, spur pruning."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.features.airways.graph import build_tree
from ctpheno.synth.trees import Segment, rasterize

SPACING = (1.0, 1.0, 1.0)


def _lumen(segments, shape=(70, 70, 90)):
    cover = np.zeros(shape, np.float32)
    rasterize(segments, cover, origin_mm=np.zeros(3), spacing_mm=np.ones(3))
    return cover >= 0.5


def _tree_segments():
    """Trachea (top, +z) -> carina -> two main bronchi -> two lobar bronchi each (x y z, mm)."""
    top, carina = np.array([45.0, 35, 66]), np.array([45.0, 35, 44])
    segs = [Segment(top, carina, 5.0, 0)]
    for sx in (-1, 1):  # patient right is -x (LPS)
        mid = carina + np.array([14.0 * sx, 0, -12])
        segs.append(Segment(carina, mid, 3.5, 1))
        segs.append(Segment(mid, mid + np.array([8.0 * sx, 8, -16]), 2.5, 2))
        segs.append(Segment(mid, mid + np.array([8.0 * sx, -8, -16]), 2.5, 2))
    return segs


def test_generations_sides_and_lengths():
    lumen = _lumen(_tree_segments())
    labels = np.zeros(lumen.shape, np.uint8)
    labels[:, :, :45] = 1  # right lung at low x
    labels[:, :, 45:] = 2
    tree = build_tree(lumen, SPACING, labels=labels)
    b = tree.branches
    assert len(b) == 7
    assert b.groupby("generation").size().to_dict() == {0: 1, 1: 2, 2: 4}
    assert b.loc[0, "parent_id"] == -1 and b.loc[0, "inscribed_radius_mm"] == pytest.approx(5.0, abs=1.0)
    assert sorted(b.loc[b["generation"] > 0, "side"].value_counts().to_dict().items()) == [("left", 3), ("right", 3)]
    kids = b[b["parent_id"] == 0]
    assert len(kids) == 2 and set(kids["side"]) == {"right", "left"}
    # a lobar branch: ~sqrt(8^2 + 8^2 + 16^2) = 19.6 mm from the junction to its end
    assert b.loc[b["generation"] == 2, "length_mm"].median() == pytest.approx(19.6, abs=3.0)
    assert tree.max_generation == 2


def test_surface_bump_is_not_a_branch():
    segs = _tree_segments()
    bump = Segment(np.array([52.0, 35, 38]), np.array([52.0, 41.0, 38]), 1.5, 1)  # a bulge of a main bronchus's wall
    tree = build_tree(_lumen(segs + [bump]), SPACING)
    assert len(tree.branches) == 7 and tree.max_generation == 2


def test_empty_lumen_and_bad_input():
    assert len(build_tree(np.zeros((10, 10, 10), bool), SPACING).branches) == 0
    with pytest.raises(TypeError, match="bool"):
        build_tree(np.zeros((10, 10, 10), np.uint8), SPACING)
