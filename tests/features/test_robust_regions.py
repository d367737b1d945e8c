"""Robust regions: one-lung scans, scans cut at the apex or base, very noisy scans — no failed scan,
NaN where a region or zone is missing, the flag present; blockwise == in memory with harmonisation on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.features.qct import qct_metrics, qct_metrics_dask
from ctpheno.io.volume import Volume
from ctpheno.io.zarrstore import read_dask, write_volume_store

from .acquisition_phantom import SPACING, make_object, scan


@pytest.fixture(scope="module")
def chest():
    obj = make_object(seed=4)
    return obj, scan(obj, "sharp")


def test_one_lung_scan_gives_nan_rows_not_a_failure(chest):
    obj, hu = chest
    labels = np.where(obj.labels == 2, 0, obj.labels).astype(np.uint8)  # left lung opacified / resected
    zones = np.where(labels == 0, 0, obj.zones).astype(np.uint8)
    df = qct_metrics(hu, labels, zones, SPACING).set_index("region")
    assert df.loc["left", "lung_volume_ml"] == 0.0 and df.loc["left", "n_voxels"] == 0
    assert df.loc["left", ["laa950_pct", "laa950_adj_pct", "perc15_hu", "mld_adj_hu", "lac_d_950"]].isna().all()
    assert np.isfinite(df.loc[["whole", "right", "upper", "lower"], "laa950_adj_pct"]).all()
    assert df.loc["whole", "lung_volume_ml"] == df.loc["right", "lung_volume_ml"]
    assert "left_lung_missing" in df.loc["whole", "qct_flags"].split(";")


@pytest.mark.parametrize("end, flag", [("last", "apex_cut"), ("first", "base_cut")])
def test_cut_coverage_gives_nan_zones_and_flag(chest, end, flag):
    obj, hu = chest
    keep = slice(0, 25) if end == "last" else slice(14, None)  # the last slice is superior here
    df = qct_metrics(hu[keep], obj.labels[keep], obj.zones[keep], SPACING).set_index("region")
    assert flag in df.loc["whole", "qct_flags"].split(";")
    assert df.loc[["upper", "middle", "lower"], ["laa950_pct", "laa950_adj_pct", "perc15_hu"]].isna().all(None)
    assert df.loc[["whole", "right", "left"], "laa950_upper_lower_ratio"].isna().all()
    assert np.isfinite(df.loc[["whole", "right", "left"], "laa950_adj_pct"]).all()
    full = qct_metrics(hu, obj.labels, obj.zones, SPACING).set_index("region")
    assert not ({"apex_cut", "base_cut"} & set(full.loc["whole", "qct_flags"].split(";")))
    assert np.isfinite(full.loc["whole", "laa950_upper_lower_ratio"])


def test_extreme_noise_is_flagged_not_failed(chest):
    obj, _ = chest
    hu = scan(obj, "sharp", mas=2.0)  # ~10x the noise of a standard scan
    w = qct_metrics(hu, obj.labels, obj.zones, SPACING).set_index("region").loc["whole"]
    assert w["noise_hu"] > 250 and "noise_high" in w["qct_flags"].split(";")
    assert np.isfinite(w["laa950_adj_pct"]) and w["laa950_adj_pct"] < w["laa950_pct"]


def test_blockwise_equals_in_memory_with_harmonisation(chest, tmp_path):
    obj, hu = chest
    store = write_volume_store(tmp_path / "s.zarr", {"image": hu, "labels": obj.labels, "zones": obj.zones},
                               Volume(hu, SPACING), chunks=(20, 100, 100))
    mem = qct_metrics(hu, obj.labels, obj.zones, SPACING, scan_id="s", kernel_class="sharp")
    blk = qct_metrics_dask(read_dask(store, "image"), read_dask(store, "labels"), read_dask(store, "zones"),
                           SPACING, scan_id="s", kernel_class="sharp")
    assert mem["harmonise_sigma_mm"].iloc[0] > 0  # the filter ran, blockwise with halos
    pd.testing.assert_frame_equal(mem, blk, check_exact=True)
