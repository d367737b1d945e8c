"""Filling a costal bite up to the pleural line: the convex hull's chord, then the arc of the chest wall."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.morphology import convex_hull_image

from ctpheno.preprocess.pockets import _fill_slice

SP = (0.7, 0.7)
YY, XX = np.mgrid[:200, :200]


def _bitten(own_full: np.ndarray, centre: tuple[int, int], radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    bite = (YY - centre[0]) ** 2 + (XX - centre[1]) ** 2 <= radius ** 2
    near = (YY - centre[0]) ** 2 + (XX - centre[1]) ** 2 <= (radius + 15) ** 2
    own = own_full & ~bite
    return own, near & ~own, bite & own_full


@pytest.mark.parametrize("bite_px", [12, 18])
def test_bite_on_a_convex_wall_is_filled_up_to_the_arc_not_the_chord(bite_px):
    disk = (YY - 100) ** 2 + (XX - 100) ** 2 <= 60 ** 2  # a lung cross-section of radius 42 mm
    own, free, truth = _bitten(disk, (100, 160), bite_px)  # a mass on its wall
    add = _fill_slice(own, free, free, SP)
    assert np.mean((own | add)[truth]) > 0.99
    assert np.mean(convex_hull_image(own)[truth]) < 0.92  # the chord alone cuts off the wall's segment
    assert np.count_nonzero(add & ~disk) < 3 * bite_px  # at most about a voxel layer beyond the wall


def test_no_arc_across_a_concave_or_straight_boundary():
    # a lung draped around a round organ (the heart side): the boundary is concave, the chord stays
    square = (np.abs(YY - 100) < 70) & (np.abs(XX - 100) < 70)
    organ = (YY - 100) ** 2 + (XX - 190) ** 2 <= 45 ** 2
    own, free, _ = _bitten(square & ~organ, (100, 146), 10)
    add = _fill_slice(own, free, free, SP)
    assert not (add & ~convex_hull_image(own)).any()
    # a straight wall: arc and chord coincide
    own, free, truth = _bitten(square, (100, 169), 12)
    add = _fill_slice(own, free, free, SP)
    assert np.mean((own | add)[truth]) > 0.99 and not (add & ~square).any()
