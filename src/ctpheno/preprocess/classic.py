"""The ``classic`` lung segmentation: thresholds, connected components, region growing, watershed.

Method (all thresholds in HU; see ``docs/segmentation.md``)
------------------------------------------------------------
The coarse steps run on a grid of ~``coarse_spacing_mm`` blocks (:mod:`.grid`):

1. **Body**: the largest 3-D component of voxels above ``threshold_hu`` (-500), holes filled in
   every axial slice. Outside air, the reconstruction-circle padding and the table are outside.
2. **Air inside the body**: voxels below the threshold (optionally Otsu's threshold of the body
   HU, Otsu 1979) that lie in the filled body.
3. **Trachea and main bronchi**: the trachea is found in the upper slices as a round air region
   of 80-900 mm^2 near the body's left-right centre; it is grown in 3-D (seeded region growing)
   with thresholds rising from -980 HU to ``airway_threshold_hu``, stopping before one step adds
   more than half of the region or it passes ``airway_max_ml`` (leak control, cf. Mori et al. 1996;
   Hu, Hoffman & Reinhardt 2001). The airway region is removed (with a one-voxel margin) from
   the air mask.
4. **Lungs**: the remaining 3-D components; the largest is a lung. A second one is the other
   lung if it has at least ``min_second_lung_fraction`` of the first's volume, lies on the other
   side of the body midline and reaches the upper half of the first's cranio-caudal extent —
   bowel and stomach gas (below the lungs) fail this test.
5. **Left/right split** when the two lungs touch (anterior/posterior junction lines): erode
   until two large components on opposite sides appear (at most 12 coarse voxels); if none,
   use seeds more than 10 mm either side of the midline. A marker watershed on the HU (the
   junction line is brighter than lung; Hu et al. 2001) gives each voxel of the joined region
   to one lung. Right (1) and left (2) follow the *patient* side from the direction matrix.
6. Each lung is closed (``closing_iterations``) and its holes filled per axial slice, so vessels,
   nodules and airway walls inside it are lung; airway voxels inside a lung become lung
   (intrapulmonary bronchi are part of the lung in expert contours); the rest stay 3.

Refinement on the image grid: voxels deep inside a coarse lung (eroded by one coarse voxel) are
lung; in the one-coarse-voxel band around each lung a voxel is lung when it is below the
threshold; then holes are filled per slice again. Airways: air voxels of the (dilated) coarse
airway region that are not lung. Emphysema and bullae are air, so they stay inside the lungs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..errors import EmptyLungMaskError, NotChestCTError
from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .grid import (STRUCT_6, bbox_slices, binary_closing_padded, block_factors, block_mean, body_interior,
                   fill_holes_2d, fill_holes_3d, largest_component, midpoint_threshold, subsample_labels,
                   upsample_nearest)
from .pleura import grow_pleural_rim
from .pockets import costal_pockets, fill_costal_pockets
from .sides import MIN_MIRROR_OVERLAP, ONE_LUNG_MAX_MINOR, mirror_overlap, split_joined
from .trachea import drop_thick_leaks, find_trachea, grow_airway

ADAPTIVE_THRESHOLD_RANGE_HU = (-650.0, -350.0)
"""Otsu's threshold of the body (``adaptive_threshold``) is clipped to this range: between aerated lung
(about -850 HU) and soft tissue, whatever an unusual body histogram (much fat, dense lungs) suggests."""
SECOND_LUNG_CANDIDATES = 5
"""Air components after the largest that are examined, largest first, as the other lung."""
BOTH_SIDES_MINOR = 0.2
"""When this fraction or more of the largest air region lies on its minor side of the body midline, the
region spans both sides (two joined lungs, or one lung across the midline) and is split, not paired."""
HANGING_MINOR = 0.03
"""When the largest region is paired with a second lung but more than this fraction of it lies on the
other side, part of the other lung hangs on it: the pair is split again as one joined region."""
REFINE_THRESHOLD_SPAN_HU = (-100.0, 150.0)
"""The boundary band's intermeans threshold stays within this span around the coarse threshold (HU):
a band holding mostly vessels or mostly emphysema cannot move the lung boundary far."""
REFINE_SAMPLE_STRIDE = 7
"""Every this-many-th band voxel enters the intermeans threshold (a mean; a subsample is enough)."""
MAX_HOLE_MM2 = 400.0
"""Largest in-slice hole filled inside a lung (vessels, nodules up to ~2 cm); larger islands are the
diaphragm dome or the heart seen through a lung base, which expert contours exclude. Enclosed 3-D
cavities (a larger nodule or mass inside the lung) are filled whatever their size."""


def otsu_threshold(values: npt.NDArray[Any], *, lo: float = -1024.0, hi: float = 200.0) -> float:
    """Otsu's (1979) threshold of ``values`` restricted to [lo, hi], maximising between-class variance."""
    v = values[(values >= lo) & (values <= hi)]
    if v.size < 2:
        return float("nan")
    hist, edges = np.histogram(v, bins=256, range=(lo, hi))
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between))])


def segment_classic(hu: npt.NDArray[np.integer], spacing_mm: tuple[float, float, float], *,
                    left_axis: tuple[int, int], superior_axis: tuple[int, int], threshold_hu: float = -500.0,
                    adaptive_threshold: bool = False, airway_threshold_hu: float = -850.0,
                    airway_max_ml: float = 250.0, coarse_spacing_mm: float = 2.5, closing_iterations: int = 1,
                    min_second_lung_fraction: float = 0.12, min_chest_lung_ml: float = 400.0,
                    rim_lung_fraction: float = 0.15, rim_max_mm: float = 1.0, costal_closing_mm: float = 20.0,
                    costal_min_depth_mm: float = 5.0) -> npt.NDArray[np.uint8]:
    """Label lungs (1 right, 2 left) and trachea/main bronchi (3) in an axial HU array.

    Parameters
    ----------
    hu : ndarray (z, y, x), int16
        HU, padding already mapped to air. Axis 0 must be the cranio-caudal axis (axial slices).
    spacing_mm : (z, y, x)
    left_axis, superior_axis : (array axis, sign)
        From :meth:`Volume.index_axis_patient_left` / :meth:`Volume.index_axis_superior`.

    Returns
    -------
    ndarray (z, y, x), uint8

    Raises
    ------
    NotChestCTError
        Less than ``min_chest_lung_ml`` of lung air, or lung air only in the top slices.
    EmptyLungMaskError
        No air region inside the body at all.
    """
    if hu.ndim != 3:
        raise ValueError(f"hu must be 3-D (z, y, x); got shape {hu.shape}")
    if superior_axis[0] != 0 or left_axis[0] == 0:
        raise ValueError(f"segment_classic needs axial slices (axis 0 cranio-caudal); the superior axis is "
                         f"{superior_axis[0]} and the left axis {left_axis[0]}; reorient the volume first")
    spacing = tuple(float(s) for s in spacing_mm)
    f = block_factors(spacing, coarse_spacing_mm)
    sp_c = tuple(s * k for s, k in zip(spacing, f))
    vox_ml = float(np.prod(sp_c)) / 1000.0
    hu_c = block_mean(hu, f)
    body, air, thr = _body_and_air(hu_c, threshold_hu=threshold_hu, adaptive=adaptive_threshold)
    lateral = _lateral_mm(hu_c.shape, left_axis, sp_c)
    lat_body = lateral[body]
    centre_lat = float(np.median(lat_body))
    body_width = float(lat_body.max() - lat_body.min())
    # 3. trachea and main bronchi --------------------------------------------------------------
    seed = find_trachea(air, lateral, superior_axis[1], sp_c, centre_lat, body_width)
    airway = np.zeros_like(air)
    if seed is not None:
        airway = grow_airway(hu_c, body, seed, max_threshold=airway_threshold_hu,
                             max_voxels=airway_max_ml / vox_ml)
        airway = drop_thick_leaks(airway, seed, sp_c)
    cut = ndi.binary_dilation(airway, structure=STRUCT_6) if airway.any() else airway
    # 4.-5. the lungs among the other air components, split into right and left -----------------
    right, left = _right_and_left(air & ~cut, hu_c, lateral - centre_lat, sp_c, superior_axis[1],
                                  centre_lat=centre_lat, lat=left_axis,
                                  min_second_lung_fraction=min_second_lung_fraction)
    # restore the margin cut around the airways where it touches a lung
    ring = cut & ~airway & air
    if ring.any():
        for m in (right, left):
            m |= ring & ndi.binary_dilation(m, structure=STRUCT_6)
    # 6. closing and per-slice hole filling -----------------------------------------------------
    lab_c = _closed_and_filled(right, left, sp_c, closing_iterations=closing_iterations)
    lung_ml = float(np.count_nonzero(lab_c)) * vox_ml
    _check_chest(lab_c, lung_ml, superior_axis[1], min_chest_lung_ml=min_chest_lung_ml)
    lab_c[airway & (lab_c == 0)] = LABEL_AIRWAYS
    # 7. on the image grid: the half-maximum boundary, the partial-volume rim, then costal pockets
    # (juxtapleural lesions) found on the final boundary
    labels = _refine(hu, lab_c, f, thr, spacing)
    if rim_max_mm > 0:
        labels = grow_pleural_rim(hu, labels, spacing, lung_fraction=rim_lung_fraction, max_mm=rim_max_mm)
    if costal_closing_mm > 0:
        pockets = costal_pockets(subsample_labels(labels, f, lab_c.shape), body, sp_c, left_axis=left_axis,
                                 sup_sign=superior_axis[1], radius_mm=costal_closing_mm, min_depth_mm=costal_min_depth_mm)
        if pockets.any():
            fill_costal_pockets(labels, pockets, f, spacing)
    return labels


def _body_and_air(hu_c: npt.NDArray[np.floating], *, threshold_hu: float, adaptive: bool
                  ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], float]:
    """Steps 1-2: ``(body, air inside it, threshold)`` on the coarse grid.

    The body is the largest component above the threshold with its holes filled; with ``adaptive``
    the threshold becomes Otsu's of the body's HU within :data:`ADAPTIVE_THRESHOLD_RANGE_HU`.
    """
    thr = float(threshold_hu)
    body = body_interior(largest_component(hu_c >= thr))
    if adaptive:
        t = otsu_threshold(hu_c[body])
        thr = float(np.clip(t, *ADAPTIVE_THRESHOLD_RANGE_HU)) if np.isfinite(t) else thr
    air = (hu_c < thr) & body
    if not air.any():
        raise EmptyLungMaskError(f"no air below {thr:.0f} HU inside the body; not a chest CT or the HU are "
                                 f"not calibrated (check RescaleSlope/Intercept)")
    return body, air, thr


def _lateral_mm(shape: tuple[int, ...], left_axis: tuple[int, int],
                spacing: tuple[float, ...]) -> npt.NDArray[np.float64]:
    """Position of every voxel toward the patient's left (mm, from the array's first index), as a
    broadcast view of ``shape``."""
    lat_ax, lat_sign = left_axis
    coords = np.arange(shape[lat_ax], dtype=np.float64) * spacing[lat_ax] * lat_sign
    axes = [1, 1, 1]
    axes[lat_ax] = -1
    return np.broadcast_to(coords.reshape(axes), shape)


def _right_and_left(air: npt.NDArray[np.bool_], hu_c: npt.NDArray[np.floating], side: npt.NDArray[np.float64],
                    sp_c: tuple[float, ...], sup_sign: int, *, centre_lat: float, lat: tuple[int, int],
                    min_second_lung_fraction: float) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Steps 4-5: the right and left lung among the air components (airways removed), coarse grid.

    The largest component is a lung. A second one is the other lung when it is at least
    ``min_second_lung_fraction`` of the first, lies on the other side of the midline (``side``:
    mm toward the patient's left from it), reaches the upper half of the first and overlaps its
    mirror image (:data:`MIN_MIRROR_OVERLAP`). Without one, a region over both sides
    (:data:`BOTH_SIDES_MINOR`) is split (:func:`~ctpheno.preprocess.sides.split_joined`), else it is one lung on its side.
    """
    lab, n = ndi.label(air, structure=STRUCT_6)
    if n == 0:
        raise NotChestCTError("no air region besides the airways inside the body; the field of view holds no lungs")
    sizes = np.bincount(lab.ravel())
    sizes[0] = 0
    order = np.argsort(sizes)[::-1]
    main = lab == order[0]
    zs = np.flatnonzero(main.any(axis=(1, 2)))
    z_mid = float(zs.mean())
    main_side = float(side[main].mean())
    main_minor = min(np.count_nonzero(main & (side < 0)), np.count_nonzero(main & (side > 0))) / sizes[order[0]]
    for cand_id in order[1:1 + SECOND_LUNG_CANDIDATES]:
        if sizes[cand_id] < min_second_lung_fraction * sizes[order[0]]:
            break
        comp = lab == cand_id
        cz = np.flatnonzero(comp.any(axis=(1, 2)))
        reaches_up = cz.max() >= z_mid if sup_sign > 0 else cz.min() <= z_mid
        if (reaches_up and np.sign(float(side[comp].mean())) != np.sign(main_side) and main_minor < BOTH_SIDES_MINOR
                and mirror_overlap(comp, main, centre_lat, lat[0], lat[1], sp_c) >= MIN_MIRROR_OVERLAP):
            if main_minor > HANGING_MINOR:  # part of the other lung hangs on the main component: split both
                return split_joined(main | comp, hu_c, side, sp_c, use_erosion=False)  # type: ignore[return-value]
            return (main, comp) if main_side < 0 else (comp, main)
    split = None
    if main_minor >= BOTH_SIDES_MINOR:  # one region over both sides: joined lungs, or one lung across the midline
        split = split_joined(main, hu_c, side, sp_c, min_core_ratio=min_second_lung_fraction
                              if main_minor < ONE_LUNG_MAX_MINOR else 0.0)
    if split is not None:
        return split
    return (main, np.zeros_like(main)) if main_side < 0 else (np.zeros_like(main), main)


def _closed_and_filled(right: npt.NDArray[np.bool_], left: npt.NDArray[np.bool_], sp_c: tuple[float, ...], *,
                       closing_iterations: int) -> npt.NDArray[np.uint8]:
    """Step 6: each lung closed and its holes up to :data:`MAX_HOLE_MM2` filled per slice (and enclosed
    3-D cavities), as coarse labels 1 (right) and 2 (left); right wins where the two meet."""
    lab_c = np.zeros(right.shape, dtype=np.uint8)
    for code, m in ((LABEL_RIGHT_LUNG, right), (LABEL_LEFT_LUNG, left)):
        if m.any():
            closed = binary_closing_padded(m, iterations=closing_iterations)
            filled = fill_holes_3d(fill_holes_2d(closed, max_area_px=int(MAX_HOLE_MM2 / (sp_c[1] * sp_c[2]))))
            lab_c[filled & (lab_c == 0)] = code
    return lab_c


def _check_chest(lab_c: npt.NDArray[np.uint8], lung_ml: float, sup_sign: int, *, min_chest_lung_ml: float) -> None:
    if lung_ml < min_chest_lung_ml:
        raise NotChestCTError(f"only {lung_ml:.0f} mL of lung air found (a chest CT has > {min_chest_lung_ml:.0f} mL); "
                              f"the field of view does not contain the lungs")
    area = np.count_nonzero(lab_c, axis=(1, 2)).astype(float)
    if sup_sign < 0:
        area = area[::-1]
    nz = area.size
    top = np.flatnonzero(area > 0).max()
    if nz >= 5 and top == nz - 1 and int(np.argmax(area)) >= nz - max(2, int(round(0.1 * nz))):
        raise NotChestCTError("lung air is found only at the top of the scan, shrinking downward (the lung "
                              "bases of an abdominal scan); the field of view does not contain the lungs")


def _refine(hu: npt.NDArray[np.integer], lab_c: npt.NDArray[np.uint8], f: tuple[int, int, int],
            thr: float, spacing: tuple[float, float, float]) -> npt.NDArray[np.uint8]:
    """Coarse labels -> image grid: cores kept, the boundary band re-thresholded, small holes filled per slice.

    In the band the threshold is the intermeans threshold of the band's HU (Hu et al. 2001), i.e.
    half-way between lung and the tissue around it — where a blurred boundary crosses 50 %.
    """
    from skimage.segmentation import expand_labels

    lungs_c = np.where(lab_c == LABEL_AIRWAYS, 0, lab_c)
    core_c = np.zeros_like(lungs_c)
    if f != (1, 1, 1):
        for code in (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG):
            core_c[ndi.binary_erosion(lungs_c == code, structure=STRUCT_6)] = code
    band_c = np.zeros_like(lungs_c)
    lbox = bbox_slices(lungs_c > 0, margin=1)
    if lbox is not None:  # one voxel of growth depends on the neighbours only: the lungs' box is enough
        band_c[lbox] = expand_labels(lungs_c[lbox], distance=1)
    airway_c = ndi.binary_dilation(lab_c == LABEL_AIRWAYS, structure=STRUCT_6) & (band_c == 0)
    box = bbox_slices(band_c > 0, margin=0)
    out = np.zeros(hu.shape, dtype=np.uint8)
    if box is None:
        return out
    fbox = tuple(slice(s.start * k, min(n, s.stop * k)) for s, k, n in zip(box, f, hu.shape))
    sub_hu = hu[fbox]
    shape = sub_hu.shape
    band = upsample_nearest(band_c[box], f, shape)
    core = upsample_nearest(core_c[box], f, shape)
    airway = upsample_nearest(airway_c[box], f, shape)
    ring = (band > 0) & (core == 0)
    lo, hi = (thr + d for d in REFINE_THRESHOLD_SPAN_HU)
    t_band = (midpoint_threshold(sub_hu[ring][::REFINE_SAMPLE_STRIDE], start=thr, lo=lo, hi=hi)
              if ring.any() else thr)
    del ring
    if f == (1, 1, 1):  # no coarse core: the coarse labels are final except for the boundary threshold
        core = np.where((lungs_c[box] > 0) & ~ndi.binary_erosion(lungs_c[box] > 0, structure=STRUCT_6),
                        0, lungs_c[box]).astype(np.uint8)
    # core, then band voxels below the threshold (in place, to keep the peak memory low)
    sub = core
    low = sub_hu < t_band
    np.copyto(sub, band, where=low & (sub == 0))
    del band
    max_px = int(MAX_HOLE_MM2 / (spacing[1] * spacing[2]))
    for code in (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG):
        lbox = bbox_slices(sub == code, margin=1)
        if lbox is None:
            continue
        part = sub[lbox]
        holes = fill_holes_2d(part == code, max_area_px=max_px) & (part == 0)
        part[holes] = code
        del holes
    sub[airway & (sub_hu < thr) & (sub == 0)] = LABEL_AIRWAYS
    out[fbox] = sub
    return out
