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
