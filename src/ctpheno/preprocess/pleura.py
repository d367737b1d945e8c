"""The lung boundary at the pleura: the partial-volume rim.

One step of the classic segmentation (:mod:`.classic`) that brings its mask to the convention of
expert (radiotherapy) lung contours and of the learned segmenters (lungmask R231, TotalSegmentator):
the contour runs *on* the pleura, so the partial-volume voxels of the boundary are lung. Lesions that
fill the lung envelope up to the chest wall are the business of :mod:`.pockets`.

Partial-volume rim (:func:`grow_pleural_rim`)
---------------------------------------------
A voxel at the lung boundary mixes lung (level :math:`L`) and the tissue outside (level
:math:`T`). Its HU :math:`h` gives the lung fraction of the two-material model

.. math:: \\phi = \\frac{T - h}{T - L}

(Glover & Pelc 1980, for CT partial volume in general). The threshold of the classic method sits
half-way (:math:`\\phi = 0.5`, the half-maximum boundary), which leaves out the outer half of the
blurred edge: on the real thin-slice scan LIDC-IDRI-0314 the first voxel layer outside that
boundary has a median of -157 HU (lung fraction ~0.2). The rim growth adds, by geodesic dilation
from the mask, voxels with :math:`\\phi \\ge` ``lung_fraction`` up to ``max_mm`` from the mask
(one through-plane step, the rest in-plane): the first layer of partial-volume voxels, and dense
dependent lung (subpleural atelectasis, -400...-100 HU) within that distance. :math:`T` is
measured locally outside the lung (so fat beside the pericardium or in the extrapleural space,
~-100 HU, is not taken for lung) and clipped to the soft-tissue range; :math:`L` is the lung's
median. Growth never enters the airways and their wall.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .grid import STRUCT_6, bbox_slices, block_factors, block_mean, dilate_6

TISSUE_HU_RANGE = (-150.0, 100.0)
"""Plausible HU of what borders the lung (fat ... muscle, blood); the local level is clipped to it."""
LEVEL_GRID_MM = 5.0
"""Voxel size of the grid on which the local tissue level is estimated."""
AIRWAY_MARGIN_MM = 3.0
"""The rim does not grow within this distance of the extra-pulmonary airways (lumen and wall)."""


def _local_tissue_level(hu: npt.NDArray[np.integer], lung: npt.NDArray[np.bool_],
                        spacing: tuple[float, float, float]) -> tuple[npt.NDArray[np.float32], tuple[int, int, int]]:
    """HU of the tissue just outside the lung, on a ~5 mm grid (normalised convolution of a shell).

    The shell is 1-2 coarse voxels (5-10 mm) outside the coarse lung: beyond the partial-volume rim,
    close enough to be the tissue the lung borders. Coarse voxels without shell data take the level
    of the nearest one that has it.
    """
    f = block_factors(spacing, LEVEL_GRID_MM)
    hu_c = block_mean(hu, f)
    lung_c = block_mean(lung.view(np.uint8), f) >= 0.5
    d1 = ndi.binary_dilation(lung_c, structure=STRUCT_6)
    shell = ndi.binary_dilation(d1, structure=STRUCT_6) & ~d1
    w = ndi.gaussian_filter(shell.astype(np.float32), 1.0)
    s = ndi.gaussian_filter(np.where(shell, hu_c, 0.0).astype(np.float32), 1.0)
    have = w > 1e-3
    level = np.where(have, s / np.maximum(w, 1e-6), np.nan).astype(np.float32)
    if not have.all() and have.any():
        idx = ndi.distance_transform_edt(~have, return_distances=False, return_indices=True)
        level = level[tuple(idx)]
    level = np.nan_to_num(level, nan=TISSUE_HU_RANGE[1])
    return np.clip(level, *TISSUE_HU_RANGE).astype(np.float32), f


def grow_pleural_rim(hu: npt.NDArray[np.integer], labels: npt.NDArray[np.uint8],
                     spacing_mm: tuple[float, float, float], *, lung_fraction: float = 0.15,
                     max_mm: float = 1.0) -> npt.NDArray[np.uint8]:
    """Add the partial-volume rim at the pleura to lung labels 1/2 (see the module docstring).

    Parameters
    ----------
    hu : ndarray (z, y, x), int16
    labels : ndarray (z, y, x), uint8
        1 right, 2 left lung, 3 airways; axis 0 is the cranio-caudal axis.
    lung_fraction
        Smallest lung fraction :math:`\\phi` of a rim voxel (0.5 = half-maximum boundary).
    max_mm
        Largest in-plane distance of growth from the input mask.

    Returns
    -------
    ndarray (z, y, x), uint8 — a new label array; voxels equidistant from both lungs stay 0.
    """
    if not 0.0 < lung_fraction <= 0.5:
        raise ValueError(f"lung_fraction must be in (0, 0.5]; got {lung_fraction}")
    out = labels.copy()
    margin = int(np.ceil(max_mm / min(spacing_mm[1:]))) + 2
    box = bbox_slices((labels == LABEL_RIGHT_LUNG) | (labels == LABEL_LEFT_LUNG), margin=margin)
    if box is None or max_mm <= 0:
        return out
    sub = np.ascontiguousarray(out[box])  # flat views below need a contiguous block
    h = np.ascontiguousarray(hu[box])
    lung = (sub == LABEL_RIGHT_LUNG) | (sub == LABEL_LEFT_LUNG)
    level, f = _local_tissue_level(h, lung, spacing_mm)
    lung_level = np.float32(np.median(h[lung][::11]))
    phi = np.float32(lung_fraction)
    near_airway = airway_zone(sub, spacing_mm)

    def admissible(lin: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        zyx = np.unravel_index(lin, sub.shape)
        t = level[tuple(c // k for c, k in zip(zyx, f))]
        ok = (sub.ravel()[lin] == 0) & (h.ravel()[lin] <= t - phi * (t - lung_level))
        return ok & ~near_airway.ravel()[lin] if near_airway is not None else ok

    # step 1: the face neighbours of the lung (also through-plane: one slice of partial volume)
    first = np.flatnonzero(dilate_6(lung) & ~lung)
    first = first[admissible(first)]
    owner = _owner_from_neighbours(sub, first, _offsets(sub.shape, inplane=False))
    frontier, codes = first[owner > 0], owner[owner > 0]
    sub.ravel()[frontier] = codes
    # further steps in-plane only, up to max_mm
    offs = _offsets(sub.shape, inplane=True)
    for _ in range(int(np.floor(max_mm / min(spacing_mm[1:]))) - 1):
        if frontier.size == 0:
            break
        cand = (frontier[:, None] + offs[None, :]).ravel()
        cc = np.repeat(codes, offs.size)
        keep = admissible(cand)
        cand, cc = cand[keep], cc[keep]
        lin, inv = np.unique(cand, return_inverse=True)
        lo = np.full(lin.size, 255, np.uint8)
        hi = np.zeros(lin.size, np.uint8)
        np.minimum.at(lo, inv, cc)
        np.maximum.at(hi, inv, cc)
        ok = lo == hi  # reached from one lung only
        frontier, codes = lin[ok], lo[ok]
        sub.ravel()[frontier] = codes
    out[box] = sub
    return out


def _offsets(shape: tuple[int, ...], *, inplane: bool) -> npt.NDArray[np.intp]:
    """Linear-index offsets of the face neighbours (in-plane only: axes 1 and 2)."""
    strides = np.array([shape[1] * shape[2], shape[2], 1], dtype=np.intp)
    axes = (1, 2) if inplane else (0, 1, 2)
    return np.array([s * d for a in axes for s, d in ((strides[a], 1), (strides[a], -1))], dtype=np.intp)


def _owner_from_neighbours(sub: npt.NDArray[np.uint8], lin: npt.NDArray[np.intp],
                           offs: npt.NDArray[np.intp]) -> npt.NDArray[np.uint8]:
    """1/2 for voxels with a face neighbour in only the right/left lung, 0 for those touching both."""
    flat = sub.ravel()
    has_r = np.zeros(lin.size, bool)
    has_l = np.zeros(lin.size, bool)
    for o in offs:
        nb = flat[np.clip(lin + o, 0, flat.size - 1)]
        has_r |= nb == LABEL_RIGHT_LUNG
        has_l |= nb == LABEL_LEFT_LUNG
    return np.where(has_r & ~has_l, LABEL_RIGHT_LUNG, np.where(has_l & ~has_r, LABEL_LEFT_LUNG, 0)).astype(np.uint8)


def airway_zone(sub: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float]) -> npt.NDArray[np.bool_] | None:
    """Voxels within :data:`AIRWAY_MARGIN_MM` of the extra-pulmonary airways (lumen and wall), or None."""
    air = sub == LABEL_AIRWAYS
    n = max(1, int(round(AIRWAY_MARGIN_MM / min(spacing_mm))))
    box = bbox_slices(air, margin=n + 1)
    if box is None:
        return None
    zone = np.zeros_like(air)
    zone[box] = ndi.binary_dilation(air[box], structure=STRUCT_6, iterations=n)
    return zone
