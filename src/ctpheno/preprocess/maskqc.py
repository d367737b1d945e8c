"""Numbers that see a wrong lung mask without truth (the mask-QC columns of schema QC).

All are computed on a grid of ~``QC_GRID_MM`` blocks (block means of the HU, block fractions of the
mask), so they cost a fraction of a second on a full-size scan.

``lung_body_ratio``
    Lung volume over the body volume in the slices that hold lung. An inspiratory chest has
    0.25-0.5; a mask that lost a lung (opacified, collapsed, or missed) or leaked out of the
    thorax falls outside (flags ``lung_body_low`` / ``lung_body_high``).
``envelope_gap_ml``
    Volume a rolling ball (radius ``ENVELOPE_BALL_MM``) adds on the *costal* side of the mask (:func:`ctpheno.preprocess.pockets.costal_pockets`): a mass or consolidation
    cut out of the lung at the chest wall leaves a concavity there (flag ``costal_gap``). The
    mediastinal side, where the hila and the heart make the lung concave, is not counted.
``airway_lungs_connected``
    How many lungs touch the extra-pulmonary airway label (3) within ``AIRWAY_TOUCH_MM``: 2 on a
    normal scan; 0 means the trachea was not found or not joined to the lungs (flag ``airway_disconnected``).
``pleural_air_ml``
    Air at the air level (< ``AIR_MARGIN_HU`` above -1000 HU, or above the trachea's own air level)
    inside the mask in components of at least ``PLEURAL_AIR_MIN_ML`` that lie along the chest wall
    as a sheet: at least ``PLEURAL_AIR_MIN_CONTACT`` of their voxels lie within two QC voxels of soft
    tissue outside the lungs. Lung, emphysema and bullae hold vessels and septa and rarely form such a sheet; a
    pneumothorax does (flag ``pleural_air``; the air is *not* removed from the mask).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .grid import STRUCT_6, block_factors, block_label_fractions, block_mean, body_interior, largest_component
from .pockets import costal_pockets

QC_GRID_MM = 4.0
"""Voxel size of the grid the mask-QC numbers are computed on."""
ENVELOPE_BALL_MM = 20.0
"""Radius of the rolling ball of ``envelope_gap_ml`` (the segmentation's default)."""
ENVELOPE_MIN_DEPTH_MM = 8.0
"""Concavities shallower than this (two QC voxels) are the ball smoothing the surface, not a gap."""
AIRWAY_TOUCH_MM = 8.0
"""A lung within this distance of the airway label counts as joined to it."""
AIR_MARGIN_HU = 40.0
"""Voxels (block means) less than this above the air level are air."""
PLEURAL_AIR_MIN_ML = 10.0
"""Smallest pleural-air component counted."""
PLEURAL_AIR_MIN_CONTACT = 0.15
"""Fraction of a component's voxels that must touch tissue outside the lungs (a sheet on the chest wall)."""


def mask_qc_numbers(hu: npt.NDArray[np.integer], labels: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float],
                    *, left_axis: tuple[int, int], superior_axis: tuple[int, int]) -> dict[str, float]:
    """The four mask-QC numbers (see the module docstring) of one scan.

    Parameters
    ----------
    hu, labels : ndarray (z, y, x)
        HU and lung labels (1 right, 2 left, 3 airways) on one grid; ``superior_axis`` must be axis 0
        for ``envelope_gap_ml`` (otherwise it is NaN).
    left_axis, superior_axis : (array axis, sign)
        From :meth:`Volume.index_axis_patient_left` / :meth:`Volume.index_axis_superior`.
    """
    f = block_factors(spacing_mm, QC_GRID_MM)
    sp = tuple(s * k for s, k in zip(spacing_mm, f))
    vox_ml = float(np.prod(sp)) / 1000.0
    hu_c = block_mean(hu, f)
    frac = block_label_fractions(labels, f, (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG, LABEL_AIRWAYS))
    right, left = frac[LABEL_RIGHT_LUNG] >= 0.5, frac[LABEL_LEFT_LUNG] >= 0.5
    airway = frac[LABEL_AIRWAYS] >= 0.25
    lung = right | left
    body = body_interior(largest_component(hu_c >= -500.0)) | lung
    ax = superior_axis[0]
    other = tuple(a for a in range(3) if a != ax)
    in_range = lung.any(axis=other)
    sel = [slice(None)] * 3
    sel[ax] = in_range
    body_ml = float(np.count_nonzero(body[tuple(sel)])) * vox_ml
    lung_ml = float(np.count_nonzero(lung)) * vox_ml
    out = {"lung_body_ratio": lung_ml / body_ml if body_ml > 0 else float("nan")}
    # envelope along the costal surface
    gap = float("nan")
    if ax == 0 and lung.any():
        lab_c = np.where(right, LABEL_RIGHT_LUNG, np.where(left, LABEL_LEFT_LUNG, np.where(airway, LABEL_AIRWAYS, 0))).astype(np.uint8)
        pockets = costal_pockets(lab_c, body, sp, left_axis=left_axis, sup_sign=superior_axis[1],
                                 radius_mm=ENVELOPE_BALL_MM, min_depth_mm=ENVELOPE_MIN_DEPTH_MM, window=False)
        gap = float(np.count_nonzero(pockets)) * vox_ml
    out["envelope_gap_ml"] = gap
    # airway connectivity
    n_conn = 0
    if airway.any():
        d = ndi.distance_transform_edt(~airway, sampling=sp)
        n_conn = int(bool((d[right] <= AIRWAY_TOUCH_MM).any())) + int(bool((d[left] <= AIRWAY_TOUCH_MM).any()))
    out["airway_lungs_connected"] = float(n_conn)
    out["pleural_air_ml"] = _pleural_air_ml(hu_c, lung, body, airway, vox_ml)
    return out


def _pleural_air_ml(hu_c: npt.NDArray[np.float32], lung: npt.NDArray[np.bool_], body: npt.NDArray[np.bool_],
                    airway: npt.NDArray[np.bool_], vox_ml: float) -> float:
    air_level = -1000.0
    if airway.any():  # the scanner's own air: the trachea's lumen (robust to an air offset)
        air_level = float(np.clip(np.percentile(hu_c[airway], 10), -1030.0, -960.0))
    air = lung & (hu_c < air_level + AIR_MARGIN_HU)
    comp, n = ndi.label(air, structure=STRUCT_6)
    if n == 0:
        return 0.0
    sizes = np.bincount(comp.ravel(), minlength=n + 1)
    tissue = body & ~lung & ~airway & (hu_c > -500.0)
    touch = air & ndi.binary_dilation(tissue, structure=STRUCT_6, iterations=2)  # across the partial-volume block
    contact = np.bincount(comp[touch], minlength=n + 1)
    ok = (sizes * vox_ml >= PLEURAL_AIR_MIN_ML) & (contact >= PLEURAL_AIR_MIN_CONTACT * sizes)
    ok[0] = False
    return float(sizes[ok].sum()) * vox_ml
