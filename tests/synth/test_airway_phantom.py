"""Thin-slice airway-tree phantom: its per-branch truth and the image built from it."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.synth.airway_phantom import make_airway_phantom, pi10_truth
from ctpheno.synth.trees import wall_thickness_mm


@pytest.fixture(scope="module")
def phantom():
    return make_airway_phantom(seed=4, airway_wall_mm=1.0, max_generation=6, trachea_radius_mm=5.0,
                               end_probability=0.8, noise_hu=0.0)


def test_truth_table(phantom):
    b = phantom.branches
    assert b["generation"].max() == 6 and (b.loc[b["generation"] == 1, "side"].tolist() == ["right", "left"])
    law = 1.0 * np.clip(0.55 + 0.15 * b["lumen_radius_mm"].to_numpy(), 0.5, 2.0)  # the cohort's wall law, w = 1 mm
    assert wall_thickness_mm(3.0, 1.0) == pytest.approx(1.0)
    assert np.all(np.abs(b["wall_thickness_mm"] / law - 1.0) <= 0.1 + 1e-9)
    child = b[b["parent_id"] >= 0]
    parent_r = b.set_index("branch_id").loc[child["parent_id"], "lumen_radius_mm"].to_numpy()
    assert np.all(child["lumen_radius_mm"].to_numpy() < parent_r)
    np.testing.assert_allclose(b["wa_pct"], 100 * b["wall_area_mm2"] / (b["wall_area_mm2"] + b["lumen_area_mm2"]))
    assert phantom.params["pi10_mm"] == pytest.approx(pi10_truth(b))


def test_image_and_labels_follow_the_truth(phantom):
    img, lab = phantom.image, phantom.labels
    assert img.array.dtype == np.int16 and max(img.spacing_mm) <= 1.0
    t = phantom.branches.iloc[0]  # the trachea: its axis mid-point is air, labelled 3
    mid = (np.array([t.x0_mm + t.x1_mm, t.y0_mm + t.y1_mm, t.z0_mm + t.z1_mm]) / 2 - img.origin_mm) / img.spacing_mm[::-1]
    k = tuple(np.rint(mid[::-1]).astype(int))
    assert img.array[k] < -980 and lab.array[k] == 3
    lung = np.isin(lab.array, (1, 2))
    assert np.median(img.array[lung]) == pytest.approx(-850, abs=15)
    right = lab.array == 1
    assert img.origin_mm[0] + img.spacing_mm[2] * np.nonzero(right.any((0, 1)))[0].max() < t.x1_mm + 1.0


def test_airway_subtype_has_the_higher_pi10_and_generation_is_deterministic():
    a = make_airway_phantom(seed=5, airway_wall_mm=2.0, max_generation=4)
    b = make_airway_phantom(seed=5, airway_wall_mm=2.0, max_generation=4)
    assert np.array_equal(a.image.array, b.image.array)
    thin = make_airway_phantom(seed=5, airway_wall_mm=1.0, max_generation=4)
    assert a.params["pi10_mm"] > thin.params["pi10_mm"] + 1.0
    with pytest.raises(ValueError, match="thin-slice"):
        make_airway_phantom(seed=1, spacing_mm=(2.5, 0.7, 0.7))
