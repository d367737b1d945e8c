"""Unenhanced aortic blood (``blood_hu``): the descending aorta found on axial slices, or NaN.

The second point of a two-point HU calibration (air and blood; Parr et al., AJRCCM 2004; Stoel
& Stolk 2004) is blood in the descending aorta: a round column of 20-35 mm diameter that runs
beside the left lung, medial to it and in front of the spine, through the whole thorax. On each
of up to :data:`N_SLICES` slices between 35 % and 75 % of the lungs' height below the apex the
image is reduced to ~1.5 mm pixels and smoothed; blood-range pixels (:data:`BLOOD_RANGE_HU`,
unenhanced) are mapped by their distance to the nearest non-blood pixel, and a local maximum of
that map (the centre of an inscribed circle) is an aorta candidate when

* the circle's radius is in
  :data:`AORTA_RADIUS_MM` (the heart and liver are larger, vessels and the oesophagus smaller),
* at least :data:`MIN_RING_FREE` of a thin ring just outside that circle is not blood-range
  tissue (fat, lung, bone): a round vessel rather than a lobe of the heart or mediastinum,
* it touches the left lung (within :data:`MAX_LUNG_GAP_MM`) and lies not much further from it
  than from the right lung (:data:`SIDE_TOLERANCE_MM`).

The slices' candidates must agree: at least :data:`MIN_AGREEING_SLICES` (and half of the slices
with a candidate) within :data:`MAX_CENTRE_SHIFT_MM` of their median centre. ``blood_hu`` is
then the median HU of the full-resolution pixels deeper than 3 mm inside those circles. Anything
short of that — no lungs, contrast-enhanced blood, a truncated scan — gives NaN: a wrong blood
value would corrupt the two-point calibration, a missing one only switches it to air alone.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

BLOOD_RANGE_HU = (-10.0, 110.0)
"""Smoothed HU of unenhanced blood (and muscle; fat is below, bone and contrast above)."""
AORTA_RADIUS_MM = (7.0, 18.0)
"""Inscribed-circle radius of a descending aorta."""
RING_MM = (1.5, 3.5)
"""The ring just outside a candidate circle (distance from its edge, mm)."""
MIN_RING_FREE = 0.6
"""Fraction of that ring that must not be blood-range tissue: a round vessel, not a lobe of the
heart or mediastinum."""
SIDE_TOLERANCE_MM = 5.0
"""The aorta lies no further from the left lung than this beyond its distance to the right lung."""
MAX_LUNG_GAP_MM = 6.0
"""The aorta's edge lies this close to the left lung."""
MAX_CENTRE_SHIFT_MM = 12.0
"""Candidates of different slices agree when their centres lie this close to the median centre."""
MIN_AGREEING_SLICES = 4
"""Fewest agreeing slices for a measurement."""
N_SLICES = 8
"""Slices examined."""
COARSE_MM = 2.0
"""In-plane pixel size the search runs at."""
INNER_MARGIN_MM = 3.0
"""Pixels within this distance of the aorta's edge are left out of the median (partial volume)."""


def _slices(lung_z: npt.NDArray[np.integer], superior_last: bool | None) -> npt.NDArray[np.intp]:
    zs = np.flatnonzero(lung_z)
    if zs.size < 4:
        return zs[:0]
    lo, hi = (0.25, 0.65) if superior_last else (0.35, 0.75)
    if superior_last is None:
        lo, hi = 0.3, 0.7
    k = np.linspace(zs[0] + lo * (zs[-1] - zs[0]), zs[0] + hi * (zs[-1] - zs[0]), N_SLICES)
    return np.unique(np.round(k).astype(np.intp))


def _candidate(hu2: npt.NDArray[Any], lab2: npt.NDArray[Any], px: tuple[float, float]):
    """``(row, col, radius_mm)`` of the best aorta candidate of one slice, or None."""
    f = max(1, int(round(COARSE_MM / min(px))))
    ny, nx = (hu2.shape[0] // f) * f, (hu2.shape[1] // f) * f
    if ny == 0 or nx == 0:
        return None
    coarse = hu2[:ny, :nx].astype(np.float32).reshape(ny // f, f, nx // f, f).mean(axis=(1, 3))
    lab_c = lab2[:ny:f, :nx:f]
    cpx = (px[0] * f, px[1] * f)
    coarse = ndi.gaussian_filter(coarse, 1.0)
    blood = (coarse > BLOOD_RANGE_HU[0]) & (coarse < BLOOD_RANGE_HU[1]) & (lab_c == 0)
    if not blood.any() or not (lab_c == 2).any():
        return None
    depth = ndi.distance_transform_edt(blood, sampling=cpx)
    peaks = (depth == ndi.maximum_filter(depth, size=3)) & (depth >= AORTA_RADIUS_MM[0]) \
        & (depth <= AORTA_RADIUS_MM[1])
    if not peaks.any():
        return None
    to_left = ndi.distance_transform_edt(lab_c != 2, sampling=cpx)
    to_right = ndi.distance_transform_edt(lab_c != 1, sampling=cpx) if (lab_c == 1).any() else None
    yy, xx = np.indices(blood.shape)
    best = None
    for cy, cx in zip(*np.nonzero(peaks)):
        r = float(depth[cy, cx])
        if to_left[cy, cx] - r > MAX_LUNG_GAP_MM:
            continue
        if to_right is not None and to_left[cy, cx] > to_right[cy, cx] + SIDE_TOLERANCE_MM:
            continue
        dist = np.hypot((yy - cy) * cpx[0], (xx - cx) * cpx[1])
        ring = (dist >= r + RING_MM[0]) & (dist <= r + RING_MM[1])
        free = float(np.mean(~blood[ring])) if ring.any() else 0.0
        if free >= MIN_RING_FREE and (best is None or free > best[3]):
            best = ((cy + 0.5) * f - 0.5, (cx + 0.5) * f - 0.5, r, free)
    return None if best is None else best[:3]


def measure_blood(
    image: Any, labels: Any, prof: dict[str, npt.NDArray[Any]], spacing_mm: tuple[float, float, float],
    *, superior_last: bool | None,
) -> float:
    """Median HU of unenhanced blood in the descending aorta, or NaN (see module docstring)."""
    px = (float(spacing_mm[1]), float(spacing_mm[2]))
    found = []
    for k in _slices(prof["lung_z"], superior_last):
        hu2 = np.asarray(image[int(k)])
        cand = _candidate(hu2, np.asarray(labels[int(k)]), px)
        if cand is not None:
            found.append((int(k), *cand, hu2))
    if len(found) < MIN_AGREEING_SLICES:
        return math.nan
    centres = np.array([(c[1] * px[0], c[2] * px[1]) for c in found])
    med = np.median(centres, axis=0)
    agree = np.hypot(*(centres - med).T) <= MAX_CENTRE_SHIFT_MM
    if agree.sum() < max(MIN_AGREEING_SLICES, 0.5 * len(found)):
        return math.nan
    values = []
    for (k, cy, cx, r, hu2), ok in zip(found, agree):
        if not ok:
            continue
        yy, xx = np.ogrid[: hu2.shape[0], : hu2.shape[1]]
        inner = np.hypot((yy - cy) * px[0], (xx - cx) * px[1]) <= r - INNER_MARGIN_MM
        values.append(hu2[inner])
    v = np.concatenate(values) if values else np.zeros(0)
    return float(np.median(v)) if v.size else math.nan
