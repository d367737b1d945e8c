"""Upper / middle / lower lung zones: thirds of each lung by volume along the cranio-caudal axis."""

from __future__ import annotations

import numpy as np

from ..io.volume import Volume
from ..io.zarrstore import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES


def lung_zones(labels: Volume) -> Volume:
    """Zone map of a lung label map (CIP convention: equal-volume thirds of each lung, top to bottom).

    For each lung, slices are ordered from the apex (``index_axis_superior``) down; the cumulative
    lung voxel count :math:`C(k)` splits it at :math:`C = V/3` and :math:`2V/3`. Voxels of a slice that
    straddles a cut are assigned by their rank in the cumulative count (in array order within the
    slice), so each zone holds one third of the voxels to within one voxel.

    Returns uint8 codes of :data:`ctpheno.io.zarrstore.ZONE_CODES` (1-3 right, 4-6 left, 0 outside).
    """
    lab = np.asarray(labels.array)
    sup_ax, sup_sign = labels.index_axis_superior()
    moved = np.moveaxis(lab, sup_ax, 0)
    if sup_sign > 0:
        moved = moved[::-1]  # index 0 = apex
    out = np.zeros(moved.shape, np.uint8)
    for code, side in ((LABEL_RIGHT_LUNG, "right"), (LABEL_LEFT_LUNG, "left")):
        m = moved == code
        n = int(m.sum())
        if n == 0:
            continue
        rank = np.cumsum(m.ravel()).reshape(m.shape)  # 1..n in apex-to-base order
        third = np.where(rank <= n / 3.0, 0, np.where(rank <= 2.0 * n / 3.0, 1, 2))
        codes = np.array([ZONE_CODES[(side, z)] for z in ("upper", "middle", "lower")], np.uint8)
        out[m] = codes[third[m]]
    if sup_sign > 0:
        out = out[::-1]
    out = np.ascontiguousarray(np.moveaxis(out, 0, sup_ax))
    return labels.with_array(out, kind="zones")
