r"""Airway wall QCT metrics measured on the segmented central airway lumen.

COPDGene / CIP quantify airway disease by the wall of the segmented bronchi: wall
thickness, wall area percent (WA%) and Pi10 (Nakano et al., AJRCCM 2000 and 2005;
Grydeland et al., AJRCCM 2010). Here the wall is measured around the airway lumen that
preprocess labels ``3`` (trachea and extra-pulmonary main bronchi) *and its intrapulmonary
continuation* (:func:`extend_lumen`: lung voxels below ``-850`` HU connected to it, within
60 mm, leak-controlled), with a *distance-transform shell profile*: every voxel gets its
signed distance :math:`d` (mm) to the lumen surface (negative inside the lumen, from
Euclidean distance transforms with the voxel spacing, shifted by half a mean voxel so that
the surface lies at :math:`d = 0`), and the mean HU over thin shells of equal :math:`d` is the
radial profile :math:`P(d)`, averaged over the whole airway (thousands of voxels, so
noise averages out). The wall is the peak of :math:`P`; its thickness is the full
width at half maximum (FWHM, the classical airway-wall measure: Nakano 2000),
with each half-level taken against that side's own baseline because the lumen
(air, ~ -1000 HU) and the surroundings (lung ~ -850 HU, mediastinal fat ~ -100 HU)
differ:

.. math::

    P_{in} = \min_{d < 0} P(d),\quad P_{out} = \operatorname{mean}_{d \in [d_{max} - 2,\, d_{max}]} P(d),\quad
    P_{pk} = \max_{d \ge 0} P(d)

    T = d_{out}\big(\tfrac{P_{pk} + P_{out}}{2}\big) - d_{in}\big(\tfrac{P_{pk} + P_{in}}{2}\big)

(crossings found by linear interpolation on either side of the peak). With the mean
lumen radius :math:`R = 2V/S` (lumen volume :math:`V` over its marching-cubes
surface area :math:`S`, exact for a cylinder), the wall area percent of a tube is

.. math:: \mathrm{WA\%} = 100 \cdot \frac{(R + T)^2 - R^2}{(R + T)^2}.

Only lung voxels (labels 1 and 2) and the lumen enter the profile. ``pooled_airway_wall_peak_hu``
(:math:`P_{pk}`), ``airway_wall_hu`` (*upper-quartile* HU of the lung voxels with
:math:`0 < d \le 3` mm: the first voxel layers around the lumen hold the wall, partial-volume
mixed with lumen air and parenchyma; the wall-rich quarter of them tracks the wall, and a
quantile ignores the pulmonary artery beside each bronchus as long as it fills under a
quarter of the shell) and
``peribronchial_hu`` (same over :math:`0 < d \le 5` mm, cf. peribronchial density) are
reported too: below the scanner's resolution a thin wall widens to the point-spread width and
its FWHM saturates, while its peak HU keeps rising with the true thickness.
Pi10 (the square root of wall area at a 10 mm internal perimeter, regressed over
many bronchi) needs per-branch measurements (a skeletonised tree); it is not computed here.

Why the intrapulmonary continuation: label 3 stops where the main bronchi enter the lung, so
the lung voxels around it are only the few at the lung entry (about a hundred at 2.5-3 mm
voxels, mostly the bronchus's own continuing lumen). Around the continued lumen (lobar and
segmental bronchi, typically 3-20 mL of lumen) the shell holds the walls themselves. On the
60-subject synthetic cohort (2.5-3 mm voxels) this raised the Pearson R\ :sup:`2` of
``airway_wall_hu`` with the generator's wall thickness from 0.78 (mean of the shell around
label 3) to 0.89 (median of the shell around the continued lumen) and 0.96 (upper quartile:
the median saturates for the thick walls of the airway subtype); on a second cohort (30
subjects, another seed) 0.93 for the upper quartile, 0.85 for the median and 0.84 for the mean.

Accuracy (tests/features/test_airway.py): on a blurred phantom tube at 1 mm voxels the
FWHM thickness is within 0.5 mm of the true wall for walls of 1.5 to 4 mm, and
increases monotonically with the wall.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..io.zarrstore import label_box
from ..vocab import LABEL_AIRWAYS, LUNG_LABELS, Spacing, check_spacing

AIRWAY_COLUMNS = (
    "pooled_airway_wall_thickness_mm",
    "pooled_airway_wa_pct",
    "pooled_airway_lumen_radius_mm",
    "pooled_airway_wall_peak_hu",
    "airway_wall_hu",
    "peribronchial_hu",
)
"""Columns of :func:`airway_metrics` (QCT table, ``whole`` rows)."""
PROFILE_DISTANCE_MM = 10.0
"""Default radial reach of the wall profile outside the lumen."""
EXTEND_DISTANCE_MM = 60.0
"""Default reach of the lumen's continuation into the lung (:func:`extend_lumen`)."""
AIRWAY_REACH_MM = EXTEND_DISTANCE_MM + PROFILE_DISTANCE_MM
"""How far from the label-3 lumen :func:`airway_metrics` looks with its defaults: callers may
crop the image to this margin."""



def signed_distance_mm(lumen: npt.NDArray[np.bool_], spacing_mm: Spacing) -> npt.NDArray[np.float32]:
    """Signed distance (mm) to the lumen surface: negative inside ``lumen``, positive outside.

    Euclidean distance transforms of both sides, each reduced by half the mean voxel
    size so that the surface between a lumen voxel and its outside neighbour is at 0.
    """
    sp = check_spacing(spacing_mm)
    half = 0.5 * float(np.mean(sp))
    outside = ndi.distance_transform_edt(~lumen, sampling=sp)
    # inside the lumen the nearest outside voxel is never farther than its box grown by one voxel
    # (a point beyond the box moves closer when clamped onto that ring): exact on the box alone
    inside = np.zeros(lumen.shape)
    box = label_box(lumen, (1, 1, 1))
    if box is not None:
        inside[box] = ndi.distance_transform_edt(lumen[box], sampling=sp)
    return np.where(lumen, -(inside - half), outside - half).astype(np.float32)


def radial_profile(
    hu: npt.NDArray[np.integer],
    lumen: npt.NDArray[np.bool_],
    spacing_mm: Spacing,
    *,
    max_distance_mm: float = PROFILE_DISTANCE_MM,
    inner_distance_mm: float = 3.0,
    step_mm: float | None = None,
    within: npt.NDArray[np.bool_] | None = None,
    distance_mm: npt.NDArray[np.floating] | None = None,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean HU in shells of equal signed distance to the lumen surface.

    ``within`` (optional bool mask) restricts the outside voxels that count (the lumen
    always counts), e.g. to the lung so that the mediastinum does not enter the profile.
    ``distance_mm``: :func:`signed_distance_mm` of ``lumen`` when the caller already has it.

    Returns
    -------
    centres, mean_hu
        Shell centres (mm, from ``-inner_distance_mm`` to ``max_distance_mm``) and the mean
        HU of the voxels in each shell; empty shells are dropped.
    """
    if hu.shape != lumen.shape:
        raise ValueError(f"image and lumen mask differ in shape: {hu.shape} vs {lumen.shape}")
    if lumen.dtype != np.bool_:
        raise TypeError(f"lumen must be a bool array; got {lumen.dtype}. Use labels == 3")
    sp = check_spacing(spacing_mm)
    step = float(step_mm) if step_mm is not None else min(sp) / 4.0
    d = signed_distance_mm(lumen, sp) if distance_mm is None else np.asarray(distance_mm)
    if d.shape != lumen.shape:
        raise ValueError(f"distance map and lumen mask differ in shape: {d.shape} vs {lumen.shape}")
    sel = (d >= -inner_distance_mm) & (d <= max_distance_mm)
    if within is not None:
        sel &= within | lumen
    edges = np.arange(-inner_distance_mm, max_distance_mm + step, step)
    idx = np.digitize(d[sel], edges) - 1
    n = np.bincount(idx, minlength=len(edges))
    s = np.bincount(idx, weights=hu[sel].astype(np.float64), minlength=len(edges))
    wd = np.bincount(idx, weights=d[sel].astype(np.float64), minlength=len(edges))
    ok = n > 0
    return wd[ok] / n[ok], s[ok] / n[ok]


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First x where the piecewise-linear y(x) reaches ``level`` (y[0] below, rising)."""
    above = np.flatnonzero(y >= level)
    if len(above) == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[i - 1], x[i], y[i - 1], y[i]
    return float(x0 + (level - y0) * (x1 - x0) / (y1 - y0)) if y1 != y0 else float(x1)


def fwhm_wall_thickness(centres: npt.ArrayLike, mean_hu: npt.ArrayLike, *, outer_baseline_mm: float = 2.0) -> float:
    """Wall thickness (mm) as the FWHM of the wall peak of a radial profile (see module doc).

    The peak is searched at ``d >= 0``; the outer baseline is the mean of the last
    ``outer_baseline_mm`` of the profile. NaN when the profile has no lumen part or no
    peak above both baselines.
    """
    x = np.asarray(centres, float)
    y = np.asarray(mean_hu, float)
    inner, outer = x < 0, x >= 0
    if not inner.any() or outer.sum() < 3:
        return math.nan
    p_in = float(y[inner].min())
    j = int(np.flatnonzero(outer)[np.argmax(y[outer])])
    p_pk = float(y[j])
    p_out = float(y[x >= x.max() - outer_baseline_mm].mean())
    if p_pk <= max(p_in, p_out):
        return math.nan
    i0 = int(np.argmin(np.where(inner, y, np.inf)))
    d_in = _crossing(x[i0 : j + 1], y[i0 : j + 1], 0.5 * (p_pk + p_in))
    d_out = _crossing(x[j:], -y[j:], -0.5 * (p_pk + p_out))
    return d_out - d_in


def mean_lumen_radius_mm(lumen: npt.NDArray[np.bool_], spacing_mm: Spacing) -> float:
    """Mean lumen radius ``2 V / S`` (mm): volume over marching-cubes surface area (exact for a cylinder).

    A tube cut by the array border stays open there (the mask is edge-padded by one
    voxel, which marching cubes leaves uncapped, and the padded voxels count in ``V``);
    where the lumen ends inside the volume its cap counts in ``S``.
    """
    from skimage.measure import marching_cubes, mesh_surface_area

    sp = check_spacing(spacing_mm)
    if not lumen.any():
        return math.nan
    padded = np.pad(lumen, 1, mode="edge")
    verts, faces, _, _ = marching_cubes(padded.astype(np.float32), 0.5, spacing=sp)
    area = float(mesh_surface_area(verts, faces))
    vol = float(np.count_nonzero(padded)) * float(np.prod(sp))
    return 2.0 * vol / area if area > 0 else math.nan


def wall_area_pct(lumen_radius_mm: float, wall_thickness_mm: float) -> float:
    """WA% of a circular airway: ``100 ((R + T)^2 - R^2) / (R + T)^2``."""
    outer = lumen_radius_mm + wall_thickness_mm
    return 100.0 * (outer**2 - lumen_radius_mm**2) / outer**2 if outer > 0 else math.nan


EXTEND_THRESHOLDS_HU = (-850.0, -875.0, -900.0, -925.0, -950.0)
"""Thresholds tried, highest first, when continuing the lumen into the lung (:func:`extend_lumen`)."""


def extend_lumen(
    hu: npt.NDArray[np.integer],
    lumen: npt.NDArray[np.bool_],
    lung: npt.NDArray[np.bool_],
    spacing_mm: Spacing,
    *,
    thresholds_hu: tuple[float, ...] = EXTEND_THRESHOLDS_HU,
    max_distance_mm: float = EXTEND_DISTANCE_MM,
    max_extension_ml: float = 40.0,
) -> tuple[npt.NDArray[np.bool_], float]:
    """Continue an airway lumen into the lung: the intrapulmonary bronchi connected to it.

    Region growing (6-connected) from ``lumen`` through ``lung`` voxels below a threshold,
    inside the lumen's bounding box widened by ``max_distance_mm``. Leak control as in
    airway-tree segmentation (Mori et al. 1996; Kiraly et al. 2002): the thresholds are tried
    from the highest down and the first whose extension holds at most ``max_extension_ml`` of
    lung is kept — a bronchus is walled off by tissue, parenchyma or emphysema reached through
    a gap in a wall is not, and floods the box. If every threshold leaks, the lumen is returned
    unchanged.

    Returns
    -------
    extended, threshold_hu
        ``lumen`` plus the lung voxels reached (bool, same shape), and the threshold used
        (NaN when nothing was added).
    """
    sp = check_spacing(spacing_mm)
    if not (hu.shape == lumen.shape == lung.shape):
        raise ValueError(f"image, lumen and lung masks differ in shape: {hu.shape}, {lumen.shape}, {lung.shape}")
    if not lumen.any():
        return lumen.copy(), math.nan
    margin = tuple(int(math.ceil(max_distance_mm / s)) for s in sp)
    box = label_box(lumen, margin)  # type: ignore[arg-type]
    seed, img, inside = lumen[box], hu[box], lung[box] & ~lumen[box]
    voxel_ml = float(np.prod(sp)) / 1000.0
    struct = ndi.generate_binary_structure(3, 1)
    for thr in sorted(thresholds_hu, reverse=True):
        cand = inside & (img < thr)
        comp, _ = ndi.label(cand | seed, structure=struct)
        keep = np.unique(comp[seed])
        grown = np.isin(comp, keep[keep > 0]) & cand
        n = int(np.count_nonzero(grown))
        if n * voxel_ml <= max_extension_ml:
            out = lumen.copy()
            out[box] |= grown
            return out, (float(thr) if n else math.nan)
    return lumen.copy(), math.nan


def airway_metrics(
    hu: npt.NDArray[np.integer],
    labels: np.ndarray,
    spacing_mm: Spacing,
    *,
    lumen_label: int = LABEL_AIRWAYS,
    max_distance_mm: float = PROFILE_DISTANCE_MM,
    wall_shell_mm: float = 3.0,
    peribronchial_mm: float = 5.0,
    extend: bool = True,
    extend_distance_mm: float = EXTEND_DISTANCE_MM,
    max_extension_ml: float = 40.0,
) -> dict[str, float]:
    """Airway wall metrics of the lumen ``labels == lumen_label`` (columns :data:`AIRWAY_COLUMNS`).

    Parameters
    ----------
    hu
        HU image, shape (z, y, x).
    labels
        Label map on the same grid; ``lumen_label`` (default 3) marks the airway lumen.
    spacing_mm
        Voxel size (z, y, x) in mm.
    max_distance_mm
        Radial reach of the profile outside the lumen.
    wall_shell_mm
        Outer radius of the wall shell (``airway_wall_hu``, its upper-quartile HU): at CT voxel
        sizes of 0.6-3 mm it holds the first one to few voxel layers around the lumen.
    peribronchial_mm
        Outer radius of the peribronchial shell (``peribronchial_hu``).
    extend, extend_distance_mm, max_extension_ml
        Continue the lumen into the lung first (:func:`extend_lumen`); ``extend=False``
        measures around label 3 only.

    Only lung voxels (labels 1, 2; preprocess labels the walls of the bronchi inside a
    lung as lung) enter the profile and the shells, so the wall is measured where the
    airway runs in lung; the mediastinal trachea, in fat of similar density to its wall,
    does not dilute it.

    Returns
    -------
    dict
        NaN everywhere when the label map has no airway lumen (an optional structure:
        a scan cropped below the carina has none).
    """
    sp = check_spacing(spacing_mm)
    if hu.shape != labels.shape:
        raise ValueError(f"image and labels differ in shape: {hu.shape} vs {labels.shape}")
    lumen_full = labels == lumen_label
    if not lumen_full.any():
        return {c: math.nan for c in AIRWAY_COLUMNS}
    # everything below happens within reach of the lumen: crop once, not per full volume
    reach = max_distance_mm + (extend_distance_mm if extend else 0.0)
    outer = label_box(lumen_full, tuple(int(math.ceil(reach / s)) + 1 for s in sp))  # type: ignore[arg-type]
    hu_o, lumen_o = np.asarray(hu[outer]), lumen_full[outer]
    lung_o = np.isin(labels[outer], LUNG_LABELS)
    if not lung_o.any():
        return {c: math.nan for c in AIRWAY_COLUMNS}
    if extend:
        lumen_o, _ = extend_lumen(
            hu_o, lumen_o, lung_o, sp, max_distance_mm=extend_distance_mm, max_extension_ml=max_extension_ml
        )
    margin = tuple(int(math.ceil(max_distance_mm / s)) + 1 for s in sp)
    box = label_box(lumen_o, margin)  # type: ignore[arg-type]
    lumen = lumen_o[box]
    img = hu_o[box]
    lung = lung_o[box] & ~lumen
    d = signed_distance_mm(lumen, sp)
    centres, prof = radial_profile(img, lumen, sp, max_distance_mm=max_distance_mm, within=lung, distance_mm=d)
    t = fwhm_wall_thickness(centres, prof)
    r = mean_lumen_radius_mm(lumen, sp)
    wall = lung & (d > 0) & (d <= wall_shell_mm)
    shell = lung & (d > 0) & (d <= peribronchial_mm)
    return {
        "pooled_airway_wall_thickness_mm": t,
        "pooled_airway_wa_pct": wall_area_pct(r, t) if math.isfinite(t) else math.nan,
        "pooled_airway_lumen_radius_mm": r,
        "pooled_airway_wall_peak_hu": float(prof[centres >= 0].max()) if (centres >= 0).any() else math.nan,
        "airway_wall_hu": float(np.percentile(img[wall], 75)) if wall.any() else math.nan,
        "peribronchial_hu": float(img[shell].mean()) if shell.any() else math.nan,
    }


__all__ = [
    "AIRWAY_COLUMNS",
    "AIRWAY_REACH_MM",
    "EXTEND_DISTANCE_MM",
    "PROFILE_DISTANCE_MM",
    "airway_metrics",
    "extend_lumen",
    "EXTEND_THRESHOLDS_HU",
    "fwhm_wall_thickness",
    "mean_lumen_radius_mm",
    "radial_profile",
    "LUNG_LABELS",
    "signed_distance_mm",
    "wall_area_pct",
]
