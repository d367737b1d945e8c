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
