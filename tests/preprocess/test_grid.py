"""Coarse-grid helpers: the packed label fractions equal one block mean per label."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.preprocess.grid import block_label_fractions, block_mean


@pytest.mark.parametrize("shape, factors", [
    ((17, 23, 29), (3, 4, 5)),  # partial last blocks on every axis
    ((8, 8, 8), (2, 2, 2)),
    ((10, 31, 33), (4, 6, 6)),  # the QC grid of a 1 mm x 0.7 mm scan
    ((5, 7, 9), (8, 8, 8)),  # one partial block: edge replication fills most of it
    ((40, 40, 40), (11, 10, 10)),  # 1,100 voxels a block: past the packed fields, the per-label path
])
def test_packed_fractions_equal_one_block_mean_per_label(shape, factors):
    labels = np.random.default_rng(sum(shape)).integers(0, 5, shape).astype(np.uint8)
    labels[-1] = 1  # the replicated last slice counts for the partial slab
    got = block_label_fractions(labels, factors, (1, 2, 3))
    for code in (1, 2, 3):
        np.testing.assert_array_equal(got[code], block_mean((labels == code).view(np.uint8), factors),
                                      err_msg=f"label {code}")
        np.testing.assert_allclose(got[code], _padded_block_mean(labels == code, factors), rtol=1e-6,
                                   err_msg=f"label {code} against the padded mean")


def _padded_block_mean(mask: np.ndarray, factors) -> np.ndarray:
    """The definition: pad each axis to whole blocks by repeating its last voxel, then average blocks."""
    pad = [(0, -n % f) for n, f in zip(mask.shape, factors)]
    full = np.pad(mask.astype(np.float64), pad, mode="edge")
    c = [n // f for n, f in zip(full.shape, factors)]
    return full.reshape(c[0], factors[0], c[1], factors[1], c[2], factors[2]).mean(axis=(1, 3, 5))
