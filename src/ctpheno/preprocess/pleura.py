"""The lung boundary at the pleura: the partial-volume rim and pathology on the costal side.

Two steps of the classic segmentation (:mod:`.classic`) that bring its mask to the convention of
expert (radiotherapy) lung contours and of the learned segmenters (lungmask R231, TotalSegmentator):
the contour runs *on* the pleura, so the partial-volume voxels of the boundary and lesions that
fill the lung envelope up to the chest wall are lung.

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

Costal pockets (:func:`costal_pockets`)
---------------------------------------
A juxtapleural mass, consolidation or atelectasis on the costal side bites a concavity out of the
aerated lung. A rolling-ball closing (morphological closing with a ball of ``radius_mm``; Armato &
Sensakovic 2004) fills concavities narrower than the ball. Filled voxels are kept only where they
lie on the costal side: in every axial row along the left-right axis, voxels between the two lungs'
medial edges (or medial to the only lung's edge) are mediastinum, hila, heart, spine or the other
(opacified) hemithorax and are never added. Pockets thinner than ``min_depth_mm`` (the ball merely
smoothing the surface) are dropped.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from .grid import STRUCT_6, bbox_slices, block_factors, block_mean, upsample_nearest

LABEL_RIGHT, LABEL_LEFT, LABEL_AIRWAY = 1, 2, 3
TISSUE_HU_RANGE = (-150.0, 100.0)
"""Plausible HU of what borders the lung (fat ... muscle, blood); the local level is clipped to it."""
LEVEL_GRID_MM = 5.0
"""Voxel size of the grid on which the local tissue level is estimated."""
NEAR_BITE_FRACTION = 0.5
"""The hull fills only within this fraction of the ball radius of a bite the ball found (its mouth)."""
BALL_GRID_MM = 5.0
"""Voxel size of the grid on which the rolling ball looks for costal bites."""
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
    box = bbox_slices(np.isin(labels, (LABEL_RIGHT, LABEL_LEFT)), margin=margin)
    if box is None or max_mm <= 0:
        return out
    sub = np.ascontiguousarray(out[box])  # flat views below need a contiguous block
    h = np.ascontiguousarray(hu[box])
    lung = (sub == LABEL_RIGHT) | (sub == LABEL_LEFT)
    level, f = _local_tissue_level(h, lung, spacing_mm)
    lung_level = np.float32(np.median(h[lung][::11]))
    phi = np.float32(lung_fraction)
    near_airway = _airway_zone(sub, spacing_mm)

    def admissible(lin: npt.NDArray[np.intp]) -> npt.NDArray[np.bool_]:
        zyx = np.unravel_index(lin, sub.shape)
        t = level[tuple(c // k for c, k in zip(zyx, f))]
        ok = (sub.ravel()[lin] == 0) & (h.ravel()[lin] <= t - phi * (t - lung_level))
        return ok & ~near_airway.ravel()[lin] if near_airway is not None else ok

    # step 1: the face neighbours of the lung (also through-plane: one slice of partial volume)
    first = np.flatnonzero(ndi.binary_dilation(lung, structure=STRUCT_6) & ~lung)
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
        has_r |= nb == LABEL_RIGHT
        has_l |= nb == LABEL_LEFT
    return np.where(has_r & ~has_l, LABEL_RIGHT, np.where(has_l & ~has_r, LABEL_LEFT, 0)).astype(np.uint8)


def _airway_zone(sub: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float]) -> npt.NDArray[np.bool_] | None:
    """Voxels within :data:`AIRWAY_MARGIN_MM` of the extra-pulmonary airways (lumen and wall), or None."""
    air = sub == LABEL_AIRWAY
    n = max(1, int(round(AIRWAY_MARGIN_MM / min(spacing_mm))))
    box = bbox_slices(air, margin=n + 1)
    if box is None:
        return None
    zone = np.zeros_like(air)
    zone[box] = ndi.binary_dilation(air[box], structure=STRUCT_6, iterations=n)
    return zone


def costal_pockets(lab_c: npt.NDArray[np.uint8], body: npt.NDArray[np.bool_], spacing_c: tuple[float, float, float],
                   *, left_axis: tuple[int, int], sup_sign: int, radius_mm: float = 20.0, min_depth_mm: float = 5.0,
                   window: bool = True) -> npt.NDArray[np.uint8]:
    """Where costal bites of the lungs are: windows around the concavities a rolling ball finds.

    Parameters
    ----------
    lab_c : ndarray (z, y, x), uint8
        Coarse lung labels (1 right, 2 left, 3 airway); axis 0 cranio-caudal.
    body : ndarray of bool
        Body interior on the same grid (pockets never leave it).
    left_axis : (axis, sign)
        Array axis and direction of the patient's left.
    sup_sign : int
        +1 if the index along axis 0 grows toward the head, else -1.
    window : bool
        Return the costal region of a window around each bite (for :func:`fill_costal_pockets`);
        False returns the pocket voxels the ball fills, nothing more (the QC measure).

    Returns
    -------
    ndarray, uint8 — 1/2 over the costal part of a window around the bites of the right/left lung
    (to be filled by :func:`fill_costal_pockets` on the image grid), 0 elsewhere.
    """
    out = np.zeros_like(lab_c)
    lungs = (lab_c == LABEL_RIGHT) | (lab_c == LABEL_LEFT)
    box = bbox_slices(lungs, margin=0)
    if box is None or radius_mm <= 0:
        return out
    reach = [int(np.ceil(radius_mm / s)) for s in spacing_c]
    box = tuple(slice(max(0, b.start - r), min(n, b.stop + r)) for b, r, n in zip(box, reach, lab_c.shape))
    lab = lab_c[box]
    m = lungs[box]
    # the ball is large: finding the bites on a grid of ~BALL_GRID_MM loses nothing and costs 1/8
    g = block_factors(spacing_c, BALL_GRID_MM)
    sp_g = tuple(s * k for s, k in zip(spacing_c, g))
    m_g = block_mean(m.view(np.uint8), g) >= 0.5
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in sp_g]
    padded = np.pad(m_g, [(p, p) for p in pad])  # the ball must not feel the array border
    dil = ndi.distance_transform_edt(~padded, sampling=sp_g) <= radius_mm
    closed = ndi.distance_transform_edt(dil, sampling=sp_g) > radius_mm
    closed = upsample_nearest(closed[tuple(slice(p, -p) for p in pad)], g, m.shape)
    region = body[box] & (lab != LABEL_AIRWAY) & ~_mediastinal_zone(lab, left_axis) & _above_lung_base(m, sup_sign)
    added = closed & region & ~m
    if not added.any():
        return out
    comp, n = ndi.label(added, structure=STRUCT_6)
    depth, idx = ndi.distance_transform_edt(~m, sampling=spacing_c, return_indices=True)
    deepest = np.zeros(n + 1)
    np.maximum.at(deepest, comp[added], depth[added])
    keep = (deepest >= min_depth_mm)[comp] & added
    if not keep.any():
        return out
    owner = np.zeros_like(lab)
    owner[keep] = lab[tuple(i[keep] for i in idx)]
    sub = out[box]
    if not window:
        sub[keep] = owner[keep]
        return out
    for code in (LABEL_RIGHT, LABEL_LEFT):
        win = bbox_slices(owner == code, margin=0)
        if win is None:
            continue
        # the window around the bites the ball found, wide enough to hold both ends of each mouth
        win = tuple(slice(max(0, w.start - (1 if a == 0 else r)), min(nn, w.stop + (1 if a == 0 else r)))
                    for a, (w, r, nn) in enumerate(zip(win, reach, lab.shape)))
        # ... but only near a bite: a wide shallow concavity elsewhere in the window (an opacity the lung
        # drapes over, an effusion) is not a bite the ball found
        near = ndi.distance_transform_edt(~(owner[win] == code), sampling=spacing_c) <= NEAR_BITE_FRACTION * radius_mm
        sub[win][region[win] & near & (sub[win] == 0)] = code
    return out


def fill_costal_pockets(labels: npt.NDArray[np.uint8], region_c: npt.NDArray[np.uint8],
                        factors: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> npt.NDArray[np.uint8]:
    """Fill each bite found by :func:`costal_pockets` up to the chord across its mouth (in place).

    In every axial slice of a pocket's window the lung is replaced by its convex hull there: the
    costal surface follows the convex rib cage, so the hull spans the bite from pleura to pleura and
    adds nothing along an intact chest wall. Only voxels of ``region_c`` (upsampled, costal side)
    that are not labelled yet and not near the extra-pulmonary airways are added.
    """
    for code in (LABEL_RIGHT, LABEL_LEFT):
        win_c = bbox_slices(region_c == code, margin=0)
        if win_c is None:
            continue
        win = tuple(slice(w.start * k, min(n, w.stop * k)) for w, k, n in zip(win_c, factors, labels.shape))
        part = labels[win]
        region = upsample_nearest(region_c[win_c], factors, part.shape) == code
        near_airway = _airway_zone(part, spacing_mm)
        if near_airway is not None:
            region &= ~near_airway
        own = part == code
        for k in range(part.shape[0]):
            if own[k].any() and region[k].any():
                add = convex_hull_image(own[k]) & region[k] & (part[k] == 0)
                part[k][add] = code
    return labels


def _above_lung_base(lung: npt.NDArray[np.bool_], sup_sign: int) -> npt.NDArray[np.bool_]:
    """Voxels with lung below them (caudally) in their cranio-caudal column (axis 0).

    The diaphragm is a surface over the abdomen: the liver and spleen under a dome have no lung
    below them, a costal lesion on the sloping chest wall has.
    """
    nz = lung.shape[0]
    has = lung.any(axis=0)
    k = np.arange(nz)[:, None, None]
    if sup_sign > 0:  # index grows upward: the lowest lung voxel is the first
        lo = np.where(has, np.argmax(lung, axis=0), nz)
        return k > lo[None]
    hi = np.where(has, nz - 1 - np.argmax(lung[::-1], axis=0), -1)
    return k < hi[None]


def _mediastinal_zone(lab: npt.NDArray[np.uint8], left_axis: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Voxels between the lungs' medial edges, row by row along the left-right axis.

    In each row (fixed slice and antero-posterior position) the right lung's medial edge is its
    voxel farthest toward the patient's left and the left lung's the one farthest toward the
    right; the zone is the open interval between them, or everything medial of the only lung in
    the row. Rows without lung are all zone (no pocket above or below the lungs).
    """
    ax, sign = left_axis
    moved = np.moveaxis(lab, ax, -1)
    if sign < 0:
        moved = moved[..., ::-1]  # index now increases toward the patient's left
    n = moved.shape[-1]
    pos = np.arange(n)
    r = moved == LABEL_RIGHT
    le = moved == LABEL_LEFT
    has_r, has_l = r.any(-1), le.any(-1)
    medial_r = np.where(has_r, n - 1 - np.argmax(r[..., ::-1], axis=-1), -1)  # last right voxel
    medial_l = np.where(has_l, np.argmax(le, axis=-1), n)  # first left voxel
    zone = (pos > medial_r[..., None]) & (pos < medial_l[..., None])
    zone |= ~(has_r | has_l)[..., None]
    if sign < 0:
        zone = zone[..., ::-1]
    return np.moveaxis(zone, -1, ax)
