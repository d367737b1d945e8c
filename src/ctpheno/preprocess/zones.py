"""Upper / middle / lower lung zones: thirds of each lung by volume along the cranio-caudal axis."""

from __future__ import annotations

import numpy as np

from ..io.volume import Volume
from ..vocab import LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES


def _zone_of_rank(rank: np.ndarray, n: int) -> np.ndarray:
    """0 (upper) for ranks <= n/3, 1 (middle) for ranks <= 2n/3, else 2 (lower)."""
    rank = np.asarray(rank)
    return np.where(rank <= n / 3.0, 0, np.where(rank <= 2.0 * n / 3.0, 1, 2))


def lung_zones(labels: Volume) -> Volume:
    """Zone map of a lung label map (CIP convention: equal-volume thirds of each lung, top to bottom).

    For each lung, slices are ordered from the apex (``index_axis_superior``) down; the cumulative
    lung voxel count :math:`C(k)` splits it at :math:`C = V/3` and :math:`2V/3`. Voxels of a slice that
    straddles a cut are assigned by their rank in the cumulative count (in array order within the
    slice), so each zone holds one third of the voxels to within one voxel.

    Returns uint8 codes of :data:`ctpheno.vocab.ZONE_CODES` (1-3 right, 4-6 left, 0 outside).
    """
    lab = np.asarray(labels.array)
    sup_ax, sup_sign = labels.index_axis_superior()
    moved = np.moveaxis(lab, sup_ax, 0)
    if sup_sign > 0:
        moved = moved[::-1]  # index 0 = apex
    out = np.zeros(moved.shape, np.uint8)
    for code, side in ((LABEL_RIGHT_LUNG, "right"), (LABEL_LEFT_LUNG, "left")):
        m = moved == code
        per_slice = np.count_nonzero(m.reshape(m.shape[0], -1), axis=1)
        n = int(per_slice.sum())
        if n == 0:
            continue
        codes = np.array([ZONE_CODES[(side, z)] for z in ("upper", "middle", "lower")], np.uint8)
        # ranks 1..n run apex to base; a slice holds ranks first..last
        last = np.cumsum(per_slice)
        first = last - per_slice + 1
        zone_first, zone_last = _zone_of_rank(first, n), _zone_of_rank(last, n)
        whole = (zone_first == zone_last) & (per_slice > 0)
        slice_code = np.where(whole, codes[zone_last], 0).astype(np.uint8)
        # slices wholly inside one zone: one broadcast, no per-voxel rank array (memory ~ 2 bytes/voxel)
        np.copyto(out, slice_code.reshape((-1,) + (1,) * (m.ndim - 1)), where=m)
        for k in np.flatnonzero(~whole & (per_slice > 0)):  # at most two straddling slices per lung
            mk = m[k]
            rank = first[k] - 1 + np.cumsum(mk.ravel()).reshape(mk.shape)
            out[k][mk] = codes[_zone_of_rank(rank[mk], n)]
    if sup_sign > 0:
        out = out[::-1]
    out = np.ascontiguousarray(np.moveaxis(out, 0, sup_ax))
    return labels.with_array(out, kind="zones")
