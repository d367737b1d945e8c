"""QCT metrics: known-answer phantom, exact histogram percentiles, blockwise == in-memory."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.features import QCTConfig
from ctpheno.errors import EmptyLungMaskError
from ctpheno.features.histogram import lung_histogram, percentile_from_histogram
from ctpheno.features.qct import (
    hu_moments,
    laa950_upper_lower_ratio,
    laa_pct,
    lung_volume_ml,
    mld_hu,
    percentile_hu,
    qct_metrics,
    qct_metrics_dask,
)
from ctpheno.io.zarrstore import read_dask, write_volume_store
from ctpheno.vocab import ZONE_CODES
from ctpheno.io.volume import Volume


def test_known_answer_phantom(lung_phantom):
    p = lung_phantom
    lung = (p.labels == 1) | (p.labels == 2)
    n = int(lung.sum())
    n_blob = int(p.blob.sum())
    vox_ml = float(np.prod(p.spacing_mm)) / 1000.0
    df = qct_metrics(p.hu, p.labels, p.zones, p.spacing_mm).set_index("region")
    whole = df.loc["whole"]
    assert whole["lung_volume_ml"] == n * vox_ml
    assert whole["laa950_pct"] == pytest.approx(100.0 * n_blob / n, rel=1e-12)  # only the blob is <= -950
    assert whole["laa856_pct"] == pytest.approx(100.0 * n_blob / n, rel=1e-12)  # -850 > -856
    assert whole["mld_hu"] == pytest.approx((-850.0 * (n - n_blob) - 980.0 * n_blob) / n, rel=1e-12)
    assert whole["perc10_hu"] == -850.0  # blob < 10 % of the lung
    # the airway tube (label 3, -1000 HU) is excluded everywhere
    assert df.loc["left", "laa950_pct"] == 0.0
    assert df.loc["right", "lung_volume_ml"] == int((p.labels == 1).sum()) * vox_ml
    # the blob sits in the right upper zone: LAC finds exactly one cluster of the blob's size there
    assert df.loc["right", "lac_count"] == 1
    assert df.loc["right", "lac_max_ml"] == pytest.approx(n_blob * vox_ml)
    assert (
        df.loc["left", "laa950_upper_lower_ratio"] != df.loc["left", "laa950_upper_lower_ratio"]
    )  # 0/0: NaN
    assert df.loc["whole", "laa950_upper_lower_ratio"] == np.inf  # emphysema only in the upper zone
    assert list(df.index) == ["whole", "right", "left", "upper", "middle", "lower"]


def test_pure_functions_match_numpy(noisy_phantom):
    p = noisy_phantom
    lung = (p.labels == 1) | (p.labels == 2)
    vals = p.hu[lung]
    assert lung_volume_ml(lung, p.spacing_mm) == vals.size * (float(np.prod(p.spacing_mm)) / 1000.0)
    assert mld_hu(p.hu, lung) == pytest.approx(float(vals.astype(np.float64).mean()), rel=1e-12)
    for t in (-950, -910, -856):
        assert laa_pct(p.hu, lung, t) == 100.0 * int(np.count_nonzero(vals <= t)) / vals.size
    for q in (15, 10):
        assert percentile_hu(p.hu, lung, q) == float(np.percentile(vals, q))
    m = hu_moments(p.hu, lung)
    from scipy import stats

    assert m["hu_sd"] == pytest.approx(float(vals.std()), rel=1e-10)
    assert m["hu_skewness"] == pytest.approx(float(stats.skew(vals)), rel=1e-9)
    assert m["hu_kurtosis"] == pytest.approx(float(stats.kurtosis(vals)), rel=1e-9)
    up = lung & np.isin(p.zones, [ZONE_CODES[("right", "upper")], ZONE_CODES[("left", "upper")]])
    lo = lung & np.isin(p.zones, [ZONE_CODES[("right", "lower")], ZONE_CODES[("left", "lower")]])
    assert laa950_upper_lower_ratio(p.hu, p.labels, p.zones) == pytest.approx(
        laa_pct(p.hu, up, -950) / laa_pct(p.hu, lo, -950), rel=1e-12
    )


@pytest.mark.parametrize("n", [1, 2, 3, 7, 20, 101, 1000, 4099])
def test_histogram_percentile_equals_numpy_bit_for_bit(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        vals = rng.integers(-1024, 400, size=n).astype(np.int16)
        hist = lung_histogram(vals.reshape(1, 1, -1), np.ones((1, 1, n), bool))
        for q in (0, 1, 10, 15, 33.3, 50, 85, 99.9, 100):
            assert percentile_from_histogram(hist, q) == float(np.percentile(vals, q)), (n, q)


def test_blockwise_equals_in_memory_on_small_chunks(noisy_phantom, tmp_path):
    p = noisy_phantom
    geom = Volume(p.hu, p.spacing_mm)
    store = write_volume_store(
        tmp_path / "s.zarr", {"image": p.hu, "labels": p.labels, "zones": p.zones}, geom, chunks=(16, 16, 16)
    )
    assert read_dask(store).numblocks == (3, 3, 4)
    cfg = QCTConfig(lac_fit_range_ml=(0.0005, 0.05), lac_min_voxels=1)
    mem = qct_metrics(p.hu, p.labels, p.zones, p.spacing_mm, config=cfg, scan_id="s")
    blk = qct_metrics_dask(
        read_dask(store, "image"),
        read_dask(store, "labels"),
        read_dask(store, "zones"),
        p.spacing_mm,
        config=cfg,
        scan_id="s",
    )
    pd.testing.assert_frame_equal(mem, blk, check_exact=True)
    assert np.isfinite(mem["lac_d_950"]).all()  # the noise gives many small clusters in this range
    # airway wall metrics (cropped around the label-3 lumen blockwise): whole row only
    whole = mem["region"] == "whole"
    assert np.isfinite(mem.loc[whole, ["airway_wall_hu", "peribronchial_hu", "pooled_airway_lumen_radius_mm"]]).all(None)
    assert mem.loc[~whole, "airway_wall_hu"].isna().all()


def test_input_errors_name_the_problem(lung_phantom):
    p = lung_phantom
    lung = p.labels == 1
    with pytest.raises(TypeError, match="int16"):
        laa_pct(p.hu.astype(np.float32), lung, -950)
    with pytest.raises(ValueError, match="differ in shape"):
        laa_pct(p.hu, lung[:-1], -950)
    with pytest.raises(EmptyLungMaskError, match="empty"):
        mld_hu(p.hu, np.zeros_like(lung))
    with pytest.raises(ValueError, match="spacing_mm"):
        qct_metrics(p.hu, p.labels, p.zones, (1.0, 0.0, 1.0))
    # an empty region is a NaN row (tests/features/test_robust_regions.py), not an error


def test_group_histograms_count_each_label_and_zone():
    """Each (lung, zone) histogram is the plain histogram of that group's HU; airways and background
    count nowhere; a zone code outside 0..6 is refused."""
    from ctpheno.features.histogram import HU_OFFSET, group_histograms

    rng = np.random.default_rng(3)
    shape = (6, 20, 30)
    hu = rng.integers(-1024, 3000, shape).astype(np.int16)
    hu.flat[:5] = [-32768, 32767, -1000, 0, -950]
    labels = rng.integers(0, 4, shape).astype(np.uint8)
    zones = rng.integers(0, 7, shape).astype(np.uint8)
    groups = group_histograms(hu, labels, zones)
    assert groups.shape == (2, 7, 65536) and groups.sum() == np.count_nonzero((labels == 1) | (labels == 2))
    for i, lab in enumerate((1, 2)):
        for z in range(7):
            want = np.bincount(hu[(labels == lab) & (zones == z)].astype(np.int64) + HU_OFFSET, minlength=65536)
            np.testing.assert_array_equal(groups[i, z], want)
    zones[labels == 2] = 7
    with pytest.raises(ValueError, match="zones contain code 7"):
        group_histograms(hu, labels, zones)
