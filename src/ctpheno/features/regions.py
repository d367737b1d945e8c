"""The lung regions features are reported on: whole lung, each side, and each height third."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..vocab import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES



def zone_region_masks(labels: npt.NDArray[np.integer],
                      zones: npt.NDArray[np.integer]) -> dict[str, npt.NDArray[np.bool_]]:
    """Boolean mask of every region of :data:`ctpheno.vocab.REGIONS` from the lung labels and zone codes.

    ``whole`` is both lungs (labels 1 and 2, airways excluded), ``right``/``left`` one lung each;
    ``upper``/``middle``/``lower`` are the lung voxels of that height third on either side
    (:data:`ctpheno.vocab.ZONE_CODES`).
    """
    lung = (labels == LABEL_RIGHT_LUNG) | (labels == LABEL_LEFT_LUNG)
    out = {"whole": lung, "right": labels == LABEL_RIGHT_LUNG, "left": labels == LABEL_LEFT_LUNG}
    for level in ("upper", "middle", "lower"):
        out[level] = lung & ((zones == ZONE_CODES[("right", level)]) | (zones == ZONE_CODES[("left", level)]))
    return out


_LEVELS = ("upper", "middle", "lower")
_MAX_ZONE = 7  # zone codes are 1..6; larger values are not a zone
_PART_OF = np.zeros(4 * (_MAX_ZONE + 1), np.uint8)
"""Part code of ``label * 8 + zone`` (labels clipped to 3, zones to 7)."""
for _label, _first in ((LABEL_RIGHT_LUNG, 1), (LABEL_LEFT_LUNG, 5)):
    _PART_OF[_label * (_MAX_ZONE + 1):(_label + 1) * (_MAX_ZONE + 1)] = _first  # a lung voxel without a zone
    for (_side, _level), _zone in ZONE_CODES.items():
        _PART_OF[_label * (_MAX_ZONE + 1) + _zone] = _first + 1 + _LEVELS.index(_level)

REGION_PARTS: dict[str, frozenset[int]] = {
    "whole": frozenset(range(1, 9)),
    "right": frozenset(range(1, 5)),
    "left": frozenset(range(5, 9)),
    **{level: frozenset({2 + i, 6 + i}) for i, level in enumerate(_LEVELS)},
}
"""Region -> the part codes of :func:`region_parts` it is made of."""


def region_parts(labels: npt.NDArray[np.integer], zones: npt.NDArray[np.integer]) -> npt.NDArray[np.uint8]:
    """Every lung voxel's part: the finest cells the regions are unions of (0 outside the lungs).

    Right lung 1-4, left lung 5-8: the first code of a side for voxels without a zone, then one
    code per height third (upper, middle, lower). Region ``r`` is ``np.isin(parts,
    list(REGION_PARTS[r]))``, the same voxels as :func:`zone_region_masks` gives it.
    """
    index = np.clip(labels, 0, 3).astype(np.uint8)
    index *= _MAX_ZONE + 1
    index += np.clip(zones, 0, _MAX_ZONE).astype(np.uint8)
    return np.take(_PART_OF, index)
