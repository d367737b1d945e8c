r"""Acquisition descriptors from the image itself: tracheal air, image noise, aortic blood; HU calibration.

Internal air calibration (Parr et al., AJRCCM 2004; Stoel & Stolk, Invest Radiol 2004; Judy
et al. for the COPDGene/CIP phantom programme) removes the scanner's CT-number offset from lung
density: the lung histogram sits 50-150 HU above air, so a scanner whose air reads 30 HU high
moves LAA-950 by several percentage points.

**Tracheal air** (``air_hu``) is measured in the tracheal lumen *away from its wall*: the lumen is
label 3 of the preprocess mask (trachea and main bronchi) restricted to the slices that hold
lung (the intrathoracic trachea) or, when the mask has no label 3 (an external lung mask),
the air column found by :func:`detect_trachea`; it is eroded by ``erosion_mm`` (default 4 mm:
beyond the partial volume of the wall and the undershoot a sharp kernel leaves inside the lumen;
on the real Philips-D scan the estimate moves by 28 HU between 1.5 and 4 mm and by < 5 HU beyond).

Scanners store a floor below which air cannot go (Philips: -1000 HU; many others: -1024 HU), so
for noisy scans a large part of the tracheal air sits *at the floor*: the plain median and SD are
then biased. The estimator is a **censored normal quantile fit** (:func:`censored_normal_fit`):
with :math:`p_c` the fraction of voxels at the floor, the empirical quantiles :math:`x_p` at 21
levels :math:`p \in [\max(0.25, p_c + 0.02),\, \max(0.75, \min(p_{lo} + 0.5, 0.95))]` are
regressed on the normal scores :math:`\Phi^{-1}(p)`:

.. math:: x_p = \mu + \sigma\, \Phi^{-1}(p),

so ``air_hu`` = :math:`\mu` (the median of the uncensored distribution) and ``noise_hu`` =
:math:`\sigma`. Without censoring the fit uses the interquartile range (a robust median and
IQR/1.349). With more than 85 % at the floor neither is estimable (NaN).

**Calibration** (:func:`calibration_map`): ``offset`` puts the measured air at -1000 HU,
:math:`x' = x + (-1000 - \mu_{air})`; ``air_blood`` is the two-point map through air and aortic
blood (reference ``blood_reference_hu``),
:math:`x' = -1000 + (x - \mu_{air})\,(b_{ref} + 1000)/(\mu_{blood} - \mu_{air})`, used only when
the blood was measured and is unenhanced.

**Aortic blood** (``blood_hu``): :func:`measure_blood`; NaN unless a descending aorta is found
consistently over several centimetres (a wrong number is worse than none).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy.stats import norm

from ..vocab import HU_AIR

TRACHEA_EROSION_MM = 4.0
"""Default distance from the tracheal wall below which lumen voxels are not used."""
MIN_AIR_VOXELS = 60
"""Fewer lumen voxels than this after erosion: the erosion is halved once, then air is unmeasured."""
MAX_CENSORED_FRACTION = 0.85
"""With more of the air at the storage floor than this, air and noise are not estimable."""
N_QUANTILES = 21
"""Quantile levels in the censored normal fit."""
AIR_THRESHOLD_HU = -500.0
"""Air/tissue threshold of the tracheal detection (the air column is -1000 +- noise)."""
TRACHEA_AREA_MM2 = (60.0, 900.0)
"""Per-slice cross-section of a trachea (adult diameters ~9-30 mm)."""
TRACHEA_MIN_LENGTH_MM = 15.0
"""A detected air column must run at least this far cranio-caudally."""
TRACHEA_MAX_OFF_MIDLINE_MM = 30.0
"""A detected air column lies this close to the midline between the lungs."""


@dataclass(frozen=True)
class AirMeasurement:
    """Tracheal air and noise of one scan (NaN when not measurable).

    ``source``: ``label`` (label 3 of the mask), ``detected`` (:func:`detect_trachea`) or ``none``.
    """

    air_hu: float
    noise_hu: float
    n_voxels: int
    censored_fraction: float
    source: str
    floor_hu: float = math.nan
    """The storage floor the air sat on (NaN: no censoring seen)."""


MIN_CENSORED_FRACTION = 0.01
"""More samples than this on the smallest value: it is a storage floor, the data are censored."""


def storage_floor(values: npt.NDArray[np.number]) -> float:
    """The smallest value when more than :data:`MIN_CENSORED_FRACTION` of ``values`` sit on it, else -inf."""
    v = np.asarray(values)
    if v.size == 0:
        return -math.inf
    lowest = float(v.min())
    return lowest if float(np.mean(v <= lowest)) > MIN_CENSORED_FRACTION else -math.inf


def censored_normal_fit(
    values: npt.NDArray[np.number], *, floor: float | None = None
) -> tuple[float, float, float]:
    """``(mu, sigma, censored_fraction)`` of samples of a normal distribution censored at ``floor``.

    ``floor`` defaults to :func:`storage_floor`. See the module docstring for the quantile levels.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size < 3:
        return math.nan, math.nan, math.nan
    if floor is None:
        floor = storage_floor(v)
    pc = float(np.mean(v <= floor))
    lo = max(0.25, pc + 0.02)
    if pc > MAX_CENSORED_FRACTION:
        return math.nan, math.nan, pc
    hi = max(0.75, min(lo + 0.5, 0.95))
    p = np.linspace(lo, hi, N_QUANTILES)
    q = np.quantile(v, p)
    sigma, mu = np.polyfit(norm.ppf(p), q, 1)
    return float(mu), float(max(sigma, 0.0)), pc


def _lung_slices(lung: npt.NDArray[np.bool_]) -> npt.NDArray[np.intp]:
    return np.flatnonzero(lung.any(axis=(1, 2)))


EDT_PIXEL_MM = 1.5
"""In-plane grid (mm, at least) of the erosion's distance transform (finer pixels are subsampled)."""


def _eroded(lumen: npt.NDArray[np.bool_], spacing_mm: tuple[float, float, float], depth_mm: float):
    """Lumen voxels farther than ``depth_mm`` from the lumen's wall.

    Euclidean distance transform on the lumen's bounding box, in-plane on every ``k``-th pixel
    (``k`` up to a :data:`EDT_PIXEL_MM` grid), nearest-neighbour back: a voxel is kept when its
    subsampled neighbourhood lies deeper than ``depth_mm`` and it is lumen itself.
    """
    if not lumen.any():
        return lumen
    idx = [np.flatnonzero(lumen.any(axis=tuple(a for a in range(3) if a != k))) for k in range(3)]
    box = tuple(slice(max(int(i[0]) - 1, 0), int(i[-1]) + 2) for i in idx)
    crop = lumen[box]
    k = max(1, int(round(EDT_PIXEL_MM / max(min(spacing_mm[1:]), 1e-6))))
    sub = crop[:, ::k, ::k]
    deep = ndi.distance_transform_edt(sub, sampling=(spacing_mm[0], spacing_mm[1] * k, spacing_mm[2] * k)) > depth_mm
    if k > 1:
        deep = np.repeat(np.repeat(deep, k, axis=1), k, axis=2)[:, : crop.shape[1], : crop.shape[2]]
    out = np.zeros_like(lumen)
    out[box] = deep & crop
    return out


def detect_trachea(
    hu: npt.NDArray[np.integer], lung: npt.NDArray[np.bool_], spacing_mm: tuple[float, float, float],
    *, superior_last: bool,
) -> npt.NDArray[np.bool_]:
    """The tracheal air column when the mask has no airway label.

    On the slices from the lungs' mid-height to the superior end of the image: air
    (< :data:`AIR_THRESHOLD_HU`) outside the lungs (dilated by one voxel), minus every 3-D
    component touching the in-plane border (outside air); the trachea is the remaining component
    with the largest volume among those with a median cross-section in :data:`TRACHEA_AREA_MM2`, a
    cranio-caudal run of at least :data:`TRACHEA_MIN_LENGTH_MM` and a centre within
    :data:`TRACHEA_MAX_OFF_MIDLINE_MM` of the midline between the lungs (oesophageal air is
    smaller; bowel gas lies below the lungs' mid-height). Empty when nothing qualifies.
    """
    out = np.zeros(hu.shape, dtype=bool)
    zs = _lung_slices(lung)
    if zs.size == 0:
        return out
    mid = int(0.5 * (zs[0] + zs[-1]))
    slab = slice(mid, hu.shape[0]) if superior_last else slice(0, mid + 1)
    sub_lung = ndi.binary_dilation(lung[slab], structure=ndi.generate_binary_structure(3, 1))
    air = (np.asarray(hu[slab]) < AIR_THRESHOLD_HU) & ~sub_lung
    lab, n = ndi.label(air, structure=ndi.generate_binary_structure(3, 1))
    if n == 0:
        return out
    edge = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(),
                                     lab[:, :, 0].ravel(), lab[:, :, -1].ravel()]))
    xs = np.flatnonzero(lung.any(axis=(0, 1)))
    mid_x = 0.5 * (xs[0] + xs[-1]) * spacing_mm[2]
    px_mm2 = spacing_mm[1] * spacing_mm[2]
    best, best_vol = 0, 0
    for i, sl in enumerate(ndi.find_objects(lab), start=1):
        if sl is None or i in edge:
            continue
        comp = lab[sl] == i
        per_slice = comp.sum(axis=(1, 2))
        rows = per_slice[per_slice > 0]
        if rows.size * spacing_mm[0] < TRACHEA_MIN_LENGTH_MM:
            continue
        area = float(np.median(rows)) * px_mm2
        cx = (sl[2].start + float(np.nonzero(comp)[2].mean())) * spacing_mm[2]
        vol = int(comp.sum())
        if (TRACHEA_AREA_MM2[0] <= area <= TRACHEA_AREA_MM2[1]
                and abs(cx - mid_x) <= TRACHEA_MAX_OFF_MIDLINE_MM and vol > best_vol):
            best, best_vol = i, vol
    if best:
        out[slab] = lab == best
    return out


def trachea_lumen(
    hu: npt.NDArray[np.integer], labels: npt.NDArray[np.integer], spacing_mm: tuple[float, float, float],
    *, airway_label: int = 3, superior_last: bool | None = None,
) -> tuple[npt.NDArray[np.bool_], str]:
    """Tracheal lumen mask and where it came from (``label``, ``detected`` or ``none``).

    Label ``airway_label`` restricted to the slices holding lung (the intrathoracic airway),
    or all of it when none of it lies there; else :func:`detect_trachea` (``superior_last``:
    whether the last slice is the most superior; needed only then).
    """
    lung = (labels == 1) | (labels == 2)
    lumen = labels == airway_label
    if lumen.any():
        zs = _lung_slices(lung)
        inside = np.zeros_like(lumen)
        if zs.size:
            inside[zs[0] : zs[-1] + 1] = lumen[zs[0] : zs[-1] + 1]
        return (inside if inside.any() else lumen), "label"
    if superior_last is None:
        return lumen, "none"
    found = detect_trachea(hu, lung, spacing_mm, superior_last=superior_last)
    return found, ("detected" if found.any() else "none")


def measure_air(
    hu: npt.NDArray[np.integer], lumen: npt.NDArray[np.bool_], spacing_mm: tuple[float, float, float],
    *, erosion_mm: float = TRACHEA_EROSION_MM, source: str = "label",
) -> AirMeasurement:
    """``air_hu`` and ``noise_hu`` of the lumen eroded by ``erosion_mm`` (see module docstring)."""
    core = _eroded(lumen, spacing_mm, erosion_mm)
    if int(core.sum()) < MIN_AIR_VOXELS:
        core = _eroded(lumen, spacing_mm, 0.5 * erosion_mm)
    n = int(core.sum())
    if n < MIN_AIR_VOXELS:
        return AirMeasurement(math.nan, math.nan, n, math.nan, "none")
    values = np.asarray(hu)[core]
    floor = storage_floor(values)
    mu, sigma, pc = censored_normal_fit(values, floor=floor)
    return AirMeasurement(mu, sigma, n, pc, source if math.isfinite(mu) else "none",
                          floor if math.isfinite(floor) else math.nan)


def calibration_map(
    air_hu: float, blood_hu: float = math.nan, *, method: str = "offset", blood_reference_hu: float = 45.0,
    max_blood_hu: float = 90.0,
) -> tuple[float, float]:
    """``(scale, offset)`` of the linear map ``x' = scale * x + offset`` (identity when air is unknown).

    ``offset``: ``x' = x - (air_hu + 1000)``; ``air_blood``: two points, air -> -1000 and blood ->
    ``blood_reference_hu``, when ``blood_hu`` is finite and at most ``max_blood_hu`` (unenhanced
    blood; contrast-enhanced blood is no reference), else the ``offset`` map.
    """
    if not math.isfinite(air_hu):
        return 1.0, 0.0
    if method not in ("offset", "air_blood"):
        raise ValueError(f"calibration method must be 'offset' or 'air_blood'; got {method!r}")
    if method == "air_blood" and math.isfinite(blood_hu) and air_hu < blood_hu <= max_blood_hu:
        scale = (blood_reference_hu - HU_AIR) / (blood_hu - air_hu)
        return scale, HU_AIR - scale * air_hu
    return 1.0, HU_AIR - air_hu
