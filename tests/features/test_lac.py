"""LAC analysis: cluster sizes and the Mishima power-law exponent on volumes with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.errors import FeatureExtractionError
from ctpheno.features.lac import (cluster_sizes_voxels, cumulative_size_distribution, lac_exponent, lac_metrics,
                                  region_cluster_sizes)
from ctpheno.features.regions import REGION_PARTS, region_parts, zone_region_masks


def power_law_volume(d: float, *, n_clusters: int = 512, s_min: int = 10, cell: int = 12, seed: int = 0):
    """Clusters of sizes drawn (stratified inverse-CDF sampling) from P(S >= s) = (s / s_min)^-d.

    Each cluster fills the first ``s`` voxels of its cell's (cell-1)^3 cube in raster order
    (6-connected by construction); a one-voxel gap separates cells.
    """
    rng = np.random.default_rng(seed)
    u = (np.arange(n_clusters) + rng.uniform(size=n_clusters)) / n_clusters  # stratified draws
    cap = (cell - 1) ** 3
    sizes = np.minimum(np.floor(s_min * u ** (-1.0 / d)).astype(int), cap)
    k = int(np.ceil(n_clusters ** (1 / 3)))
    low = np.zeros((k * cell,) * 3, dtype=bool)
    for i, s in enumerate(sizes):
        cz, cy, cx = np.unravel_index(i, (k, k, k))
        block = np.zeros((cell - 1) ** 3, dtype=bool)
        block[:s] = True
        low[
            cz * cell : cz * cell + cell - 1,
            cy * cell : cy * cell + cell - 1,
            cx * cell : cx * cell + cell - 1,
        ] = block.reshape((cell - 1,) * 3)
    return low, np.sort(sizes)[::-1]


def test_cluster_sizes_are_the_constructed_ones():
    low, sizes = power_law_volume(1.5, n_clusters=64, seed=1)
    np.testing.assert_array_equal(cluster_sizes_voxels(low), sizes)


def test_six_connectivity_diagonal_voxels_are_separate_clusters():
    low = np.zeros((3, 3, 3), bool)
    low[0, 0, 0] = low[1, 1, 0] = low[2, 2, 2] = True  # edge / corner neighbours only
    assert cluster_sizes_voxels(low).tolist() == [1, 1, 1]
    low[1, 0, 0] = True  # now (0,0,0)-(1,0,0)-(1,1,0) are face-connected
    assert sorted(cluster_sizes_voxels(low).tolist()) == [1, 3]


@pytest.mark.parametrize("d", [1.2, 1.6, 2.0])
def test_lac_exponent_recovers_power_law(d):
    low, _ = power_law_volume(d, seed=int(d * 10))
    spacing = (1.0, 1.0, 1.0)  # 1 voxel = 0.001 mL
    hu = np.where(low, -980, -850).astype(np.int16)
    # fit from the smallest drawn size to well below the cap (the cap truncates the tail)
    m = lac_metrics(hu, np.ones(hu.shape, bool), spacing, fit_range_ml=(0.010, 0.3))
    assert m["lac_count"] == 512
    assert abs(m["lac_d_950"] - d) <= 0.1, m


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_labelling_gives_every_regions_clusters(seed):
    """Clusters that cross the boundary between two lungs or two height thirds belong to the
    region holding both parts and are cut in two in each region holding one: the same sizes as
    labelling each region's mask separately."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    shape = (30, 28, 26)
    low = ndimage.gaussian_filter(rng.normal(size=shape), 1.2) > 0.15  # blobs, many across boundaries
    labels = np.where(np.arange(shape[2]) < 13, 1, 2)[None, None, :].repeat(shape[0], 0).repeat(shape[1], 1)
    labels[:, :3] = 0  # outside the lungs
    labels[:, 10:12, 5:8] = 3  # an airway
    z = np.arange(shape[0])[:, None, None] + rng.integers(-2, 3, size=shape)  # ragged height thirds
    zones = np.where(z < 10, 1, np.where(z < 20, 2, 3)) + np.where(labels == 2, 3, 0)
    zones[(labels == 0) | (labels == 3)] = 0
    zones[5, 20, 20] = 0  # a lung voxel without a zone: in its side, in no height third
    parts = np.where(low, region_parts(labels, zones), 0).astype(np.uint8)
    got = region_cluster_sizes(parts, REGION_PARTS)
    masks = zone_region_masks(labels, zones)
    for region, mask in masks.items():
        np.testing.assert_array_equal(got[region], cluster_sizes_voxels(low & mask), err_msg=region)
    whole, right, left = (len(got[r]) for r in ("whole", "right", "left"))
    crossing = right + left - whole
    assert crossing > 0  # the test has clusters that span the two lungs


def test_clusters_do_not_join_across_the_arrays_edge():
    """The last voxel of a row and the first of the next are not neighbours."""
    parts = np.zeros((2, 3, 4), np.uint8)
    parts[0, 0, 3] = 1
    parts[0, 1, 0] = 5  # the next voxel in memory, another part
    parts[0, 2, 3] = 1
    parts[1, 0, 0] = 5  # next in memory after parts[0, 2, 3]
    got = region_cluster_sizes(parts, {"whole": {1, 5}})
    assert got["whole"].tolist() == [1, 1, 1, 1]


def test_cumulative_distribution_counts_clusters_at_least_s():
    s, y = cumulative_size_distribution(np.array([1, 1, 2, 5, 5, 5]))
    assert s.tolist() == [1, 2, 5] and y.tolist() == [6, 4, 3]


def test_too_few_sizes_in_range_raise_and_metrics_document_it():
    with pytest.raises(FeatureExtractionError, match="clusters within"):
        lac_exponent(np.array([0.02, 0.02, 0.03]), fit_range_ml=(0.01, 10))
    hu = np.full((4, 4, 4), -850, np.int16)
    m = lac_metrics(hu, np.ones(hu.shape, bool), (1.0, 1.0, 1.0))
    assert m["lac_count"] == 0 and np.isnan(m["lac_d_950"]) and m["lac_fit_n"] == 0


def test_bad_fit_range_is_rejected():
    with pytest.raises(ValueError, match="fit_range_ml"):
        lac_exponent(np.array([1.0]), fit_range_ml=(1.0, 0.5))


def test_d_holds_across_voxel_sizes_and_noise_specks():
    """The same cluster volumes imaged at 1 mm and at 0.5 mm voxels give one D, and single-voxel noise
    specks do not move it: the fit starts at ``min_voxels`` voxels and weights clusters by likelihood
    (issue #14: D moved from 1.05 to 1.32 between two reconstructions of one lung)."""
    low, _ = power_law_volume(1.4, n_clusters=512, s_min=8, seed=5)
    ones = np.ones(low.shape, bool)
    coarse = lac_metrics(np.where(low, -980, -850).astype(np.int16), ones, (1.0, 1.0, 1.0),
                         fit_range_ml=(0.008, 0.3))
    # the same draws in mL imaged with 0.5 mm voxels: 8x the voxels per cluster
    fine_low, _ = power_law_volume(1.4, n_clusters=512, s_min=64, cell=23, seed=5)
    fine = lac_metrics(np.where(fine_low, -980, -850).astype(np.int16), np.ones(fine_low.shape, bool),
                       (0.5, 0.5, 0.5), fit_range_ml=(0.008, 0.3))
    rng = np.random.default_rng(0)
    specks = low.copy()
    specks.flat[rng.choice(np.flatnonzero(~low), 4000, replace=False)] = True  # isolated noise voxels
    # a range that starts at one voxel: min_voxels (8) keeps the specks out of the fit
    noisy = lac_metrics(np.where(specks, -980, -850).astype(np.int16), ones, (1.0, 1.0, 1.0),
                        fit_range_ml=(0.001, 0.3), min_voxels=8)
    assert abs(coarse["lac_d_950"] - 1.4) <= 0.1
    assert abs(fine["lac_d_950"] - coarse["lac_d_950"]) <= coarse["lac_d_950_se"]  # within one SE
    assert abs(noisy["lac_d_950"] - coarse["lac_d_950"]) <= 0.05
    for m in (coarse, fine, noisy):
        assert 0 < m["lac_d_950_se"] < 0.1 and m["lac_fit_ks"] < 0.1
