"""QCT on synthetic COPD phantoms against the generator's truth (acceptance of issue 6)."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.features.qct import qct_metrics
from ctpheno.preprocess import lung_zones, segment_lungs
from ctpheno.synth import make_phantom, rim_truth_bounds, truth_metrics

CASES = [(11, "centrilobular"), (12, "panlobular"), (13, "paraseptal"), (14, "panlobular")]


@pytest.fixture(scope="module", params=CASES, ids=[f"{c[1]}-{c[0]}" for c in CASES])
def phantom(request):
    seed, subtype = request.param
    return make_phantom(seed=seed, size="demo", subtype=subtype, emphysema_fraction=0.2)


def test_truth_mask_gives_the_generator_truth_exactly(phantom):
    img, lungs = phantom.image, phantom.lungs
    truth = truth_metrics(img.array, lungs.array, img.spacing_mm)
    df = qct_metrics(img.array, lungs.array, lung_zones(lungs).array, img.spacing_mm).set_index("region")
    assert df.loc["whole", "laa950_pct"] == truth["laa950_pct"]
    assert df.loc["whole", "perc15_hu"] == truth["perc15_hu"]
    assert df.loc["whole", "lung_volume_ml"] == truth["lung_volume_ml"]
    assert df.loc["right", "lung_volume_ml"] == truth["right_lung_volume_ml"]
    assert df.loc["left", "lung_volume_ml"] == truth["left_lung_volume_ml"]
    assert truth["laa950_pct"] > 1.0  # the phantom has emphysema to measure


def test_pipeline_mask_is_within_acceptance_of_truth(phantom):
    """The segmentation's density and volume lie between the truth mask and the truth mask plus its
    partial-volume layer (the pleural-rim convention, :func:`rim_truth_bounds`), within noise:
    missing lung drops the volume below the low end, a leak past the rim lifts Perc15 above the high one."""
    img = phantom.image
    bounds = rim_truth_bounds(img.array, phantom.lungs.array, img.spacing_mm)
    labels = segment_lungs(img)
    df = qct_metrics(img.array, labels.array, lung_zones(labels).array, img.spacing_mm).set_index("region")
    tol = {"laa950_pct": 0.25, "perc15_hu": 2.0, "lung_volume_ml": 0.0}
    for metric, (low, high) in bounds.items():
        value = float(df.loc["whole", metric])
        assert low - tol[metric] <= value <= high + tol[metric], (metric, value, low, high)
    assert np.isfinite(df.loc["whole", "lac_d_950"])
