"""Pathology at the costal pleura: bites of the aerated lung filled up to the chest wall.

A juxtapleural mass, consolidation or atelectasis on the costal side replaces aerated lung by soft
tissue that touches the chest wall, so a threshold mask has a bite (a concavity) there. Expert
contours and the learned segmenters draw the lung along the parietal pleura across it.

Finding bites (:func:`costal_pockets`)
--------------------------------------
A rolling-ball closing (morphological closing with a ball of ``radius_mm``; Armato & Sensakovic
2004) fills concavities narrower than the ball. Filled voxels are kept only on the costal side: in
every axial row along the left-right axis, voxels between the two lungs' medial edges (or medial to
the only lung's edge) are mediastinum, hila, heart, spine or the other (opacified) hemithorax and are
never added. Pockets lying mostly under the lung base (no lung below them in their cranio-caudal
column: the top of the liver or spleen under a dome, see :func:`_under_lung_base`) and pockets thinner
than ``min_depth_mm`` (the ball merely smoothing the surface) are dropped; the others are filled with
the chest wall voxels next to them that the pleural line crosses.

Filling them (:func:`fill_costal_pockets`)
------------------------------------------
In every axial slice near a bite the lung is first replaced by its convex hull (the chord across the
bite's mouth from pleura to pleura). The costal surface is convex with a finite radius, so the chord
cuts off a segment of the lesion (sagitta :math:`s = w^2 / 8\\rho` for a mouth of width :math:`w`
on a wall of radius :math:`\\rho`: ~2 mm for 40 mm on 100 mm, 4 mm on the curved posterior gutter).
The pleural line is therefore continued across the mouth: a circle is fitted (least squares, Kasa
1976) to the intact costal boundary on both sides of the chord, and the voxels between the chord and
that arc are added. Fits that do not describe a convex wall (radius outside
[``ARC_MIN_RADIUS_MM``, ``ARC_MAX_RADIUS_MM``], residual above ``ARC_MAX_RMS_MM``, points on one side
only) leave the chord.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from skimage.morphology import convex_hull_image

from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .grid import STRUCT_6, bbox_slices, block_factors, block_mean, upsample_nearest
from .pleura import airway_zone

NEAR_BITE_FRACTION = 0.5
"""The hull fills only within this fraction of the ball radius of a bite the ball found (its mouth)."""
BALL_GRID_MM = 5.0
"""Voxel size of the grid on which the rolling ball looks for costal bites."""
MAX_UNDER_BASE_FRACTION = 0.5
"""A pocket with more of its voxels under the lung base (no lung below them) is the liver or spleen dome."""
FLANK_MM = 20.0
"""Intact costal boundary within this in-plane distance of a chord is fitted to continue the pleural line."""
ARC_MIN_RADIUS_MM = 25.0
"""A fitted pleural arc more curved than this is not a chest wall (a fit to the bite's own edges)."""
ARC_MAX_RADIUS_MM = 500.0
"""Flatter than this, the arc and the chord coincide within a voxel."""
ARC_MAX_RMS_MM = 1.5
"""Largest root-mean-square distance of the flank points from the fitted arc."""
ARC_LINE_RATIO = 0.5
"""The fitted arc must leave at most this fraction of a straight line's residual (a curved wall)."""
ARC_ONLY = 4
"""Bit of :func:`costal_pockets`' window labels: near a bite, but only the pleural arc may be filled there."""
ARC_TOLERANCE_PX = 1.0
"""Voxels whose centre lies within this many voxels outside the fitted arc are inside (the flank voxels
themselves straddle the pleura)."""
ARC_MAX_SAGITTA_MM = 6.0
"""Nothing farther than this outside the chord is added."""
_STRUCT_4 = ndi.generate_binary_structure(2, 1)




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
    (to be filled by :func:`fill_costal_pockets` on the image grid), ``1 | ARC_ONLY`` / ``2 | ARC_ONLY``
    where only the pleural arc may go (the rest of the window near the bites), 0 elsewhere.
    """
    out = np.zeros_like(lab_c)
    lungs = (lab_c == LABEL_RIGHT_LUNG) | (lab_c == LABEL_LEFT_LUNG)
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
    region = body[box] & (lab != LABEL_AIRWAYS) & ~_mediastinal_zone(lab, left_axis)
    added = closed & region & ~m
    if not added.any():
        return out
    comp, n = ndi.label(added, structure=STRUCT_6)
    depth, idx = ndi.distance_transform_edt(~m, sampling=spacing_c, return_indices=True)
    deepest = np.zeros(n + 1)
    np.maximum.at(deepest, comp[added], depth[added])
    # a pocket mostly under the lung base is the top of the liver or spleen under a dome, not a bite
    size = np.bincount(comp[added], minlength=n + 1)
    under = np.bincount(comp[added], weights=_under_lung_base(m, sup_sign)[added], minlength=n + 1)
    ok = (deepest >= min_depth_mm) & (under <= MAX_UNDER_BASE_FRACTION * size)
    keep = ok[comp] & added
    if not keep.any():
        return out
    owner = np.zeros_like(lab)
    owner[keep] = lab[tuple(i[keep] for i in idx)]
    sub = out[box]
    if not window:
        sub[keep] = owner[keep]
        return out
    for code in (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG):
        win = bbox_slices(owner == code, margin=0)
        if win is None:
            continue
        # the window around the bites the ball found, wide enough to hold both ends of each mouth
        win = tuple(slice(max(0, w.start - (1 if a == 0 else r)), min(nn, w.stop + (1 if a == 0 else r)))
                    for a, (w, r, nn) in enumerate(zip(win, reach, lab.shape)))
        # ... but only near a bite: a wide shallow concavity elsewhere in the window (an opacity the lung
        # drapes over, an effusion) is not a bite the ball found
        near = ndi.distance_transform_edt(~(owner[win] == code), sampling=spacing_c) <= NEAR_BITE_FRACTION * radius_mm
        free = near & (sub[win] == 0)
        sub[win][region[win] & free] = code
        # where the pleural arc may go: also rows the mediastinal rule shuts (at a bite's floor, only one
        # flank of the bite may reach a row, which puts the floor on that flank's medial side)
        sub[win][body[box][win] & (lab[win] != LABEL_AIRWAYS) & ~region[win] & free] = code | ARC_ONLY
    return out


def fill_costal_pockets(labels: npt.NDArray[np.uint8], region_c: npt.NDArray[np.uint8],
                        factors: tuple[int, int, int], spacing_mm: tuple[float, float, float]) -> npt.NDArray[np.uint8]:
    """Fill each bite found by :func:`costal_pockets` up to the pleural line across its mouth (in place).

    In every axial slice of a pocket's window the lung is replaced by its convex hull there (the
    chord), and the segment between the chord and the arc continuing the intact costal boundary is
    added (see the module docstring). Only voxels of ``region_c`` (upsampled, costal side) that are
    not labelled yet and not near the extra-pulmonary airways are added.
    """
    sp_yx = (float(spacing_mm[1]), float(spacing_mm[2]))
    for code in (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG):
        win_c = bbox_slices(region_c == code, margin=0)
        if win_c is None:
            continue
        win_c = tuple(slice(w.start, w.stop) for w in bbox_slices((region_c == code) | (region_c == code | ARC_ONLY),
                                                                  margin=0))  # type: ignore[union-attr]
        # on the image grid, with room for the flanks the pleural arc is fitted to
        pad = [0] + [int(np.ceil(FLANK_MM / (s * k))) for s, k in zip(spacing_mm[1:], factors[1:])]
        win_c = tuple(slice(max(0, w.start - p), min(n, w.stop + p)) for w, p, n in zip(win_c, pad, region_c.shape))
        win = tuple(slice(w.start * k, min(n, w.stop * k)) for w, k, n in zip(win_c, factors, labels.shape))
        part = labels[win]
        up = upsample_nearest(region_c[win_c], factors, part.shape)
        region, arc_region = up == code, (up == code) | (up == code | ARC_ONLY)
        near_airway = airway_zone(part, spacing_mm)
        if near_airway is not None:
            region &= ~near_airway
            arc_region &= ~near_airway
        own = part == code
        for k in range(part.shape[0]):
            if own[k].any() and region[k].any():
                add = _fill_slice(own[k], region[k] & (part[k] == 0), arc_region[k] & (part[k] == 0), sp_yx)
                part[k][add] = code
    return labels


def _fill_slice(own: npt.NDArray[np.bool_], free: npt.NDArray[np.bool_], free_arc: npt.NDArray[np.bool_],
                sp_yx: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """Voxels of ``free`` inside the lung's convex hull, and of ``free_arc`` between a chord across ``free``
    and the fitted pleural arc."""
    hull = convex_hull_image(own)
    add = hull & free
    edge = hull & ~ndi.binary_erosion(hull, structure=_STRUCT_4)
    edge[0, :] = edge[-1, :] = edge[:, 0] = edge[:, -1] = False  # the window's border is no pleura
    # chords: the hull's edge across a bite (the arc test below keeps those with a convex costal wall on both sides)
    chords, n = ndi.label(edge & ~own & free_arc, structure=np.ones((3, 3), bool))
    sp = np.asarray(sp_yx)
    lung_centre = np.argwhere(own).mean(axis=0) * sp
    yy = np.arange(own.shape[0])[:, None] * sp_yx[0]
    xx = np.arange(own.shape[1])[None, :] * sp_yx[1]
    # every flank voxel lies within FLANK_MM of its chord and the arc's segment within ARC_MAX_SAGITTA_MM,
    # so the distance maps are exact on the chord's box grown by FLANK_MM (and far cheaper than per slice)
    reach = [int(np.ceil(FLANK_MM / s)) + 1 for s in sp_yx]
    for i, box in enumerate(ndi.find_objects(chords), start=1):
        if box is None:
            continue
        box = tuple(slice(max(b.start - g, 0), min(b.stop + g, n_ax)) for b, g, n_ax in zip(box, reach, own.shape))
        chord = chords[box] == i
        if np.count_nonzero(chord) < 3:
            continue
        offset = np.array([b.start for b in box])
        d_chord = ndi.distance_transform_edt(~chord, sampling=sp_yx)
        flank = edge[box] & own[box] & (d_chord <= FLANK_MM)
        circle = _fit_arc((np.argwhere(flank) + offset) * sp, (np.argwhere(chord) + offset) * sp, lung_centre)
        if circle is None:
            continue
        cy, cx, r = circle
        inside = (yy[box[0]] - cy) ** 2 + (xx[:, box[1]] - cx) ** 2 <= (r + ARC_TOLERANCE_PX * min(sp_yx)) ** 2
        d_flank = ndi.distance_transform_edt(~flank, sampling=sp_yx)
        shadow = (d_chord < d_flank) & (d_chord <= ARC_MAX_SAGITTA_MM)  # beyond the chord, not beyond a flank
        add[box] |= inside & shadow & free_arc[box] & ~hull[box]
    return add


def _fit_arc(flank: npt.NDArray[np.float64], chord: npt.NDArray[np.float64], lung_centre: npt.NDArray[np.float64],
             ) -> tuple[float, float, float] | None:
    """Least-squares circle (Kasa 1976) through the flank points, or None when it is no convex chest wall.

    Points (mm, (y, x)) must lie on both sides of the chord beyond its ends; the circle's centre must be
    on the lung's side of the chord (a wall convex outward) and its radius and residual plausible.
    """
    if len(flank) < 6:
        return None
    centre = chord.mean(axis=0)
    vt = np.linalg.svd(chord - centre, full_matrices=False)[2]
    axis = vt[0]
    t_chord = (chord - centre) @ axis
    t_flank = (flank - centre) @ axis
    if not ((t_flank < t_chord.min()).sum() >= 3 and (t_flank > t_chord.max()).sum() >= 3):
        return None
    y, x = flank[:, 0], flank[:, 1]
    a = np.column_stack([y, x, np.ones_like(y)])
    sol, *_ = np.linalg.lstsq(a, -(y ** 2 + x ** 2), rcond=None)
    cy, cx = -sol[0] / 2.0, -sol[1] / 2.0
    r2 = cy ** 2 + cx ** 2 - sol[2]
    if r2 <= 0:
        return None
    r = float(np.sqrt(r2))
    rms = float(np.sqrt(np.mean((np.hypot(y - cy, x - cx) - r) ** 2)))
    if not (ARC_MIN_RADIUS_MM <= r <= ARC_MAX_RADIUS_MM) or rms > ARC_MAX_RMS_MM:
        return None
    # the wall must be curved: the circle fits the flanks clearly better than a straight line does
    line_rms = float(np.sqrt(np.linalg.eigvalsh(np.cov(flank.T))[0]))
    if rms > ARC_LINE_RATIO * line_rms:
        return None
    # the centre lies on the lung's side of the chord: the wall bulges outward across the bite
    normal = np.array([-axis[1], axis[0]])
    if float((np.array([cy, cx]) - centre) @ normal) * float((lung_centre - centre) @ normal) <= 0:
        return None
    return float(cy), float(cx), r


def _under_lung_base(lung: npt.NDArray[np.bool_], sup_sign: int) -> npt.NDArray[np.bool_]:
    """Voxels with no lung below them (caudally) in their cranio-caudal column (axis 0).

    The diaphragm is a surface over the abdomen: the liver and spleen under a dome have no lung
    below them, a costal lesion on the sloping chest wall has.
    """
    nz = lung.shape[0]
    has = lung.any(axis=0)
    k = np.arange(nz)[:, None, None]
    if sup_sign > 0:  # index grows upward: the lowest lung voxel is the first
        lo = np.where(has, np.argmax(lung, axis=0), nz)
        return ~(k > lo[None])
    hi = np.where(has, nz - 1 - np.argmax(lung[::-1], axis=0), -1)
    return ~(k < hi[None])


def _mediastinal_zone(lab: npt.NDArray[np.uint8], left_axis: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Voxels between the lungs' medial edges, row by row along the left-right axis.

    In each row (fixed slice and antero-posterior position) the right lung's medial edge is its
    voxel farthest toward the patient's left and the left lung's the one farthest toward the
    right; the zone is the open interval between them, or everything medial of the only lung in
    the slice. A row in front of or behind a lung takes that lung's medial edge from the nearest row
    of the slice that has it (the chest wall in front of and behind the lung is costal, what lies in
    front of the heart between the lungs is not). Slices without lung are all zone.
    """
    ax, sign = left_axis
    moved = np.moveaxis(lab, ax, -1)  # (slice, antero-posterior row, left-right)
    if sign < 0:
        moved = moved[..., ::-1]  # index now increases toward the patient's left
    n = moved.shape[-1]
    pos = np.arange(n)
    r = moved == LABEL_RIGHT_LUNG
    le = moved == LABEL_LEFT_LUNG
    has_r, has_l = r.any(-1), le.any(-1)
    medial_r = _nearest_row(np.where(has_r, n - 1 - np.argmax(r[..., ::-1], axis=-1), -1), has_r, -1)
    medial_l = _nearest_row(np.where(has_l, np.argmax(le, axis=-1), n), has_l, n)
    zone = (pos > medial_r[..., None]) & (pos < medial_l[..., None])
    zone |= ~(has_r | has_l).any(-1)[:, None, None]
    if sign < 0:
        zone = zone[..., ::-1]
    return np.moveaxis(zone, -1, ax)


def _nearest_row(edge: npt.NDArray[np.intp], valid: npt.NDArray[np.bool_], missing: int) -> npt.NDArray[np.intp]:
    """``edge`` (slice, row) with invalid rows taking the value of the nearest valid row of their slice."""
    out = np.full(edge.shape, missing, dtype=np.intp)
    rows = np.arange(edge.shape[1])
    for k in np.flatnonzero(valid.any(axis=1)):
        ok = np.flatnonzero(valid[k])
        near = ok[np.clip(np.searchsorted(ok, rows), 0, ok.size - 1)]
        prev = ok[np.clip(np.searchsorted(ok, rows) - 1, 0, ok.size - 1)]
        near = np.where(np.abs(prev - rows) < np.abs(near - rows), prev, near)
        out[k] = edge[k, near]
    return out
