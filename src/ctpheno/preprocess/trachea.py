"""Trachea and main bronchi of the ``classic`` segmentation, on its coarse grid (step 3 of
:mod:`ctpheno.preprocess.classic`): a seed in the upper slices, seeded region growing with leak
control, and removal of the thick leaks (bullae, emphysema) that joined the region anyway."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from .grid import STRUCT_6, STRUCT_INPLANE, bbox_slices

TRACHEA_AREA_MM2 = (80.0, 900.0)
"""Cross-section range of a trachea (adult diameters ~10-30 mm)."""
LEAK_STEP_FRACTION = 0.5
"""Airway growth stops before a threshold step (:data:`AIRWAY_STEP_HU`) that adds more than this fraction
of the region (a leak)."""
LEAK_BALL_FRACTION = 0.8
"""Airway parts below the trachea wider than a ball of this fraction of the trachea's radius are leaks."""
SEED_CAPTURED = 0.8
"""The airway region holds the trachea seed's lumen when it has this fraction of its cores (leak control starts)."""
TRACHEA_SEARCH_FRACTION = 0.4
"""The trachea is looked for in this top fraction of the slices (above the carina in a chest CT)."""
TRACHEA_MAX_OFFSET = 0.12
"""Largest distance of the trachea's centre from the body's left-right midline, as a fraction of the body width."""
TRACHEA_MAX_EXTENT_MM = 40.0
"""Largest left-right extent of a trachea cross-section (adult diameters are at most ~30 mm)."""
TRACHEA_MAX_SHIFT_MM = 10.0
"""Largest move of the trachea's centre between consecutive slices of one seed run."""
AIRWAY_START_HU = -980.0
"""First threshold of the airway growth: only the lumen's air."""
AIRWAY_STEP_HU = 20.0
"""Threshold step of the airway growth."""


def find_trachea(air: npt.NDArray[np.bool_], lateral: npt.NDArray[np.float64], sup_sign: int,
                 spacing: tuple[float, float, float], centre_lat: float, body_width: float,
                 ) -> npt.NDArray[np.bool_] | None:
    """Seed mask of the trachea: the longest run of consecutive upper slices
    (:data:`TRACHEA_SEARCH_FRACTION`) holding a round mid-line air region of trachea size whose
    centre moves less than :data:`TRACHEA_MAX_SHIFT_MM` between slices.

    A run rather than one slice, so a seed in the larynx (which thresholding at coarse resolution
    cannot follow through the glottis) is backed up by the trachea below it.
    """
    nz = air.shape[0]
    top = max(1, int(np.ceil(TRACHEA_SEARCH_FRACTION * nz)))
    order = list(range(nz - 1, -1, -1) if sup_sign > 0 else range(nz))[:top]
    pix_mm2 = spacing[1] * spacing[2]
    rows = np.arange(air.shape[1], dtype=np.float64)[:, None] * spacing[1]
    found: list[tuple[int, npt.NDArray[np.bool_], tuple[float, float]]] = []
    for k in order:
        lab, n = ndi.label(air[k])
        if n == 0:
            continue
        sizes = np.bincount(lab.ravel())[1:] * pix_mm2
        best, best_d = None, np.inf
        for i in np.flatnonzero((sizes >= TRACHEA_AREA_MM2[0]) & (sizes <= TRACHEA_AREA_MM2[1])):
            comp = lab == i + 1
            lat = lateral[k][comp]
            d = abs(float(lat.mean()) - centre_lat)
            extent = float(lat.max() - lat.min()) + spacing[2]  # lateral is in mm already
            if d < TRACHEA_MAX_OFFSET * body_width and extent < TRACHEA_MAX_EXTENT_MM and d < best_d:
                best, best_d = comp, d
        if best is not None:
            centre = (float(np.broadcast_to(rows, best.shape)[best].mean()), float(lateral[k][best].mean()))
            found.append((k, best, centre))
    if not found:
        return None
    runs: list[list[tuple[int, npt.NDArray[np.bool_], tuple[float, float]]]] = [[found[0]]]
    for item in found[1:]:
        prev = runs[-1][-1]
        shift_mm = np.hypot(item[2][0] - prev[2][0], item[2][1] - prev[2][1])
        if abs(item[0] - prev[0]) == 1 and shift_mm < TRACHEA_MAX_SHIFT_MM:
            runs[-1].append(item)
        else:
            runs.append([item])
    run = max(runs, key=len)
    seed = np.zeros_like(air)
    for k, comp, _ in run:
        seed[k] = comp
    return seed


def grow_airway(hu_c: npt.NDArray[np.float32], body: npt.NDArray[np.bool_], seed: npt.NDArray[np.bool_], *,
                max_threshold: float, max_voxels: float) -> npt.NDArray[np.bool_]:
    """Seeded region growing with thresholds rising from :data:`AIRWAY_START_HU` to ``max_threshold``
    in :data:`AIRWAY_STEP_HU` steps, with leak control.

    A leak is an explosion of the region (Mori et al. 1996): once the region holds the lumen of the
    trachea seed (:data:`SEED_CAPTURED` of its cross-sections' cores, the partial-volume edge
    eroded), one step may add at most :data:`LEAK_STEP_FRACTION` of it: airways grow by a few per
    cent to a few tens of per cent per step, emphysema or a bulla touching a bronchus about
    doubles the region at once (docs/segmentation.md). The growth also stops before the region
    passes ``max_voxels``.
    """
    best = np.zeros_like(seed)
    prev, captured = 0, False
    lumen = ndi.binary_erosion(seed, structure=STRUCT_INPLANE)
    if not lumen.any():
        lumen = seed
    n_lumen = int(np.count_nonzero(lumen))
    for thr in np.arange(AIRWAY_START_HU, max_threshold + 1e-6, AIRWAY_STEP_HU):
        lab, _ = ndi.label((hu_c < thr) & body, structure=STRUCT_6)
        ids = np.unique(lab[seed & (lab > 0)])
        if ids.size == 0:
            continue
        region = _members(lab, ids)
        n = int(region.sum())
        if n > max_voxels or (captured and n - prev > LEAK_STEP_FRACTION * prev):
            break
        best, prev = region, n
        captured = np.count_nonzero(region & lumen) >= SEED_CAPTURED * n_lumen
    return best


def _members(lab: npt.NDArray[np.integer], ids: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """``np.isin(lab, ids)`` for a label image, by table look-up (several times faster)."""
    table = np.zeros(int(lab.max()) + 1, dtype=bool)
    table[ids] = True
    return table[lab]


def drop_thick_leaks(airway: npt.NDArray[np.bool_], seed: npt.NDArray[np.bool_],
                     spacing: tuple[float, float, float]) -> npt.NDArray[np.bool_]:
    """Remove from the airway region the parts wider than the bronchi that are not the trachea.

    Below the trachea no airway is as wide as the trachea (main bronchi: 0.6-0.8 of its diameter), but a
    bulla or emphysema touching a bronchus is at the lumen's HU and joins the region. A morphological
    opening with a ball of ``LEAK_BALL_FRACTION`` of the trachea's radius (from the seed's cross-sections)
    keeps the trachea and such blobs and removes every bronchus; the opened parts not connected to the
    trachea seed are leaks, and go back to the air the lungs are made of.
    """
    if not airway.any() or not seed.any():
        return airway
    areas = np.count_nonzero(seed, axis=(1, 2))
    radius_mm = float(np.sqrt(np.median(areas[areas > 0]) * spacing[1] * spacing[2] / np.pi))
    r0 = LEAK_BALL_FRACTION * radius_mm
    box = bbox_slices(airway, margin=int(np.ceil(r0 / min(spacing))) + 1)
    sub = airway[box]  # type: ignore[index]
    core = ndi.distance_transform_edt(sub, sampling=spacing) > r0
    if not core.any():
        return airway
    opened = (ndi.distance_transform_edt(~core, sampling=spacing) <= r0) & sub
    lab, n = ndi.label(opened, structure=STRUCT_6)
    trachea = np.unique(lab[seed[box] & opened])  # type: ignore[index]
    leak = (lab > 0) & ~_members(lab, trachea)
    if not leak.any():
        return airway
    out = airway.copy()
    out[box] &= ~leak  # type: ignore[index]
    return out
