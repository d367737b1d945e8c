"""Right and left lung on the coarse grid of the ``classic`` segmentation (steps 4-5 of
:mod:`ctpheno.preprocess.classic`; also used for external binary masks): the mirror test that
pairs a second air region with the first lung, and the split of one region holding both lungs
(erosion until two cores appear on opposite sides, then a marker watershed; Hu et al. 2001)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from .grid import STRUCT_6, bbox_slices

MIDLINE_SEED_MM = 20.0
"""Air voxels of a joined lung region farther than this from the body midline seed their own side."""
NECK_HU_PER_MM = 20.0
"""Weight of the distance to the mask border in the left/right watershed elevation (HU per mm)."""
ONE_LUNG_MAX_MINOR = 0.4
"""A single air region with less than this fraction of its volume across the body midline may be one
lung crossing it (a collapsed, opacified or resected other lung); it is split only when erosion finds
two lung-sized cores on opposite sides."""
MIRROR_TOLERANCE_MM = 10.0
"""Asymmetry allowed when mirroring a second-lung candidate onto the first lung (:func:`mirror_overlap`)."""
MIN_MIRROR_OVERLAP = 0.3
"""A second-lung candidate must overlap the first lung's mirror image by at least this fraction (real scans and
phantoms: 0.97-1.0; air enclosed between the patient's back and a table pad: 0.0)."""
MAX_SPLIT_EROSIONS = 12
"""Most erosions (coarse voxels) tried to separate two lungs joined at a junction line."""
MIN_CORE_FRACTION = 0.05
"""An eroded core smaller than this fraction of the joined region is noise, not a lung's core."""
FALLBACK_SEED_MM = 10.0
"""Without an erosion split, voxels farther than this from the midline seed their side's watershed."""


def split_joined(lung: npt.NDArray[np.bool_], hu_c: npt.NDArray[np.float32], side: npt.NDArray[np.float64],
                 spacing: tuple[float, float, float], *, use_erosion: bool = True, min_core_ratio: float = 0.0,
                 ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None:
    """Split one air region holding both lungs into (patient-right, patient-left) by erosion + watershed.

    ``side`` is the signed lateral distance (mm) from the body midline, positive to the patient's left.
    With ``min_core_ratio > 0`` the region is taken for *one* lung crossing the midline (None is
    returned) unless erosion separates two cores on opposite sides, the smaller at least
    ``min_core_ratio`` of the larger: two lungs meet at thin junction lines, one lung does not
    fall apart into two lung-sized halves.
    """
    box = bbox_slices(lung, margin=_BOX_MARGIN)
    if box is None:
        return None if min_core_ratio > 0 else (lung.copy(), lung.copy())
    split = _split_box(lung[box], hu_c[box], side[box], spacing, use_erosion=use_erosion,
                       min_core_ratio=min_core_ratio)
    if split is None:
        return None
    right, left = np.zeros_like(lung), np.zeros_like(lung)
    right[box], left[box] = split
    return right, left


_BOX_MARGIN = 5
"""Margin (voxels) of the box :func:`split_joined` works in: erosion and distances need one
background voxel around the region, the HU smoothing (sigma 1, truncated at 4) four."""


def _split_box(lung: npt.NDArray[np.bool_], hu_c: npt.NDArray[np.float32], side: npt.NDArray[np.float64],
               spacing: tuple[float, float, float], *, use_erosion: bool, min_core_ratio: float,
               ) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]] | None:
    from skimage.segmentation import watershed

    markers = np.zeros(lung.shape, dtype=np.int32)
    er = lung
    total = int(lung.sum())
    for _ in range(MAX_SPLIT_EROSIONS if use_erosion else 0):
        er = ndi.binary_erosion(er, structure=STRUCT_6)
        lab, n = ndi.label(er, structure=STRUCT_6)
        if n < 2:
            if n == 0:
                break
            continue
        sizes = np.bincount(lab.ravel())
        sizes[0] = 0
        a, b = np.argsort(sizes)[::-1][:2]
        if sizes[b] < MIN_CORE_FRACTION * total:
            continue
        sa, sb = float(side[lab == a].mean()), float(side[lab == b].mean())
        if np.sign(sa) != np.sign(sb):
            if sizes[b] < min_core_ratio * sizes[a]:
                continue
            markers[lab == (a if sa < 0 else b)] = 1
            markers[lab == (b if sa < 0 else a)] = 2
            break
    if not markers.any() and min_core_ratio > 0:
        return None
    if not markers.any():  # no erosion split: seeds well away from the midline
        markers[lung & (side < -FALLBACK_SEED_MM)] = 1
        markers[lung & (side > FALLBACK_SEED_MM)] = 2
    # a lung crosses the midline by at most ~2 cm (anterior junction): voxels farther out are seeds
    # of their side, so a thin part of one lung joined to the other is not flooded from the wrong side
    markers[lung & (side < -MIDLINE_SEED_MM)] = 1
    markers[lung & (side > MIDLINE_SEED_MM)] = 2
    # elevation: bright junction lines (HU) and narrow necks (small distance to the mask border), so
    # the floods from the two seeds meet at the junction even where emphysema makes it air-filled
    depth_mm = ndi.distance_transform_edt(lung, sampling=spacing)
    elevation = ndi.gaussian_filter(hu_c, sigma=1.0) - NECK_HU_PER_MM * depth_mm
    ws = watershed(elevation, markers, mask=lung)
    return ws == 1, ws == 2


def mirror_overlap(comp: npt.NDArray[np.bool_], main: npt.NDArray[np.bool_], centre_lat: float, lat_ax: int,
                   lat_sign: int, spacing: tuple[float, float, float]) -> float:
    """Fraction of ``comp`` whose mirror image across the body midline lies within
    :data:`MIRROR_TOLERANCE_MM` of ``main``.

    The two lungs are mirror images in position, whatever their size (an elevated hemidiaphragm, a
    small lung): the other lung's mirror image overlaps the first lung almost entirely. Air that the
    body mask enclosed outside the rib cage (under the back, between the patient and the table or a
    pad, in a corner of a field of view that cuts the body) mirrors onto chest wall, not lung.
    """
    coords = list(np.nonzero(comp))
    total = max(coords[0].size, 1)
    lat_mm = coords[lat_ax] * spacing[lat_ax] * lat_sign  # the `lateral` coordinate of segment_classic
    coords[lat_ax] = np.rint((2.0 * centre_lat - lat_mm) / (spacing[lat_ax] * lat_sign)).astype(np.intp)
    ok = (coords[lat_ax] >= 0) & (coords[lat_ax] < comp.shape[lat_ax])
    coords = [c[ok] for c in coords]
    if coords[0].size == 0:
        return 0.0
    # distances to the first lung are needed at the mirrored voxels only: their box, grown by the tolerance
    reach = [int(np.ceil(MIRROR_TOLERANCE_MM / s)) for s in spacing]
    box = tuple(slice(max(0, int(c.min()) - r), min(n, int(c.max()) + 1 + r))
                for c, r, n in zip(coords, reach, comp.shape))
    if not main[box].any():
        return 0.0
    near = ndi.distance_transform_edt(~main[box], sampling=spacing) <= MIRROR_TOLERANCE_MM
    return float(np.count_nonzero(near[tuple(c - b.start for c, b in zip(coords, box))])) / total
