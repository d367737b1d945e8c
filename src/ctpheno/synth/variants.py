"""Controlled pathology variants of a real chest CT: masses, white-out, emphysema, effusion.

Each function takes a real scan (HU, ``(z, y, x)`` with axis 0 cranio-caudal) and a lung mask of it
(1 right, 2 left; e.g. the segmentation of the unmodified scan or an expert contour) and returns a
modified copy of the HU together with the truth of what was changed. The change is built like the
scanner would have seen it:

* the pathology's occupancy of every voxel is computed on ``SUPERSAMPLE``\\ :sup:`3` sub-voxels
  (exact partial volume; Glover & Pelc 1980), then blurred by a Gaussian point-spread function of
  ``psf_fwhm_mm`` (the scan's own edge blur), giving a weight :math:`w \\in [0, 1]`;
* the new HU is the mixture :math:`h' = (1 - w)\\,h + w\\,(\\mu + n)`, where :math:`\\mu` is the
  pathology's HU and :math:`n` is noise of the scan's own standard deviation (measured in its
  homogeneous soft tissue by :func:`scan_noise_hu`), correlated over ``noise_corr_mm`` like a
  reconstruction kernel's noise.

These variants are the project's stand-in for expert-contoured real scans with controlled changes:
away from the change, the truth is the unmodified scan's mask; at the change, it is known by
construction (a mass inside the lung envelope is lung, an opacified lung is not, emphysema is lung,
an effusion is not).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

SUPERSAMPLE = 3
"""Sub-voxels per voxel edge for the occupancy of a sphere."""
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
Where = Literal["lateral", "anterior", "posterior", "apex", "base"]
WHERES: tuple[Where, ...] = ("lateral", "anterior", "posterior", "apex", "base")
"""Positions on the costal pleura of :func:`costal_point`."""
_HEIGHT = {"lateral": 0.5, "anterior": 0.5, "posterior": 0.4, "apex": 0.85, "base": 0.25}
"""Height of each position, as a fraction of the lung's cranio-caudal extent (0 = lowest slice)."""
BASE_COSTAL_MM = 10.0
"""The ``base`` point has lung this far below it: it lies on the costal wall, not on the diaphragm's dome."""


@dataclass(frozen=True)
class Variant:
    """A modified scan and what was changed.

    Attributes
    ----------
    hu : ndarray (z, y, x), int16
        The modified HU.
    changed : ndarray of bool
        Voxels that hold at least half of the pathology (:math:`w \\ge 0.5`).
    """

    hu: npt.NDArray[np.int16]
    changed: npt.NDArray[np.bool_]


def scan_noise_hu(hu: npt.NDArray[np.integer], spacing_mm: tuple[float, float, float]) -> float:
    """Noise standard deviation (HU) of a scan, measured in its homogeneous soft tissue.

    Voxels whose 5x5x5 neighbourhood lies entirely within [-150, 200] HU (muscle, liver, heart,
    blood; no edge) are kept; the noise is the median absolute deviation of the residual from the
    3x3x3 local mean, scaled to a standard deviation (x 1.4826) and corrected for the mean's own
    share of the noise (:math:`\\sqrt{27/26}`, white-noise approximation).
    """
    sub = hu[:, ::2, ::2] if min(spacing_mm[1:]) < 1.0 else hu  # plenty of voxels either way
    h = sub.astype(np.float32)
    tissue = (h > -150) & (h < 200)
    homog = ndi.minimum_filter(tissue.view(np.uint8), size=5).astype(bool)
    if np.count_nonzero(homog) < 1000:
        raise ValueError("no homogeneous soft tissue (5x5x5 voxels within [-150, 200] HU) to measure the noise")
    resid = (h - ndi.uniform_filter(h, size=3))[homog]
    mad = float(np.median(np.abs(resid - np.median(resid))))
    return 1.4826 * mad * float(np.sqrt(27.0 / 26.0))


def _noise(shape: tuple[int, ...], sigma_hu: float, spacing_mm: tuple[float, float, float], corr_mm: float,
           rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Gaussian noise of standard deviation ``sigma_hu``, correlated by a Gaussian of ``corr_mm`` (sigma)."""
    n = rng.standard_normal(shape).astype(np.float32)
    if corr_mm > 0:
        n = ndi.gaussian_filter(n, [corr_mm / s for s in spacing_mm])
        n /= max(float(n.std()), 1e-6)
    return n * np.float32(sigma_hu)


def _blend(hu: npt.NDArray[np.integer], w: npt.NDArray[np.float32], box: tuple[slice, ...], level_hu: float,
           noise: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    out = hu.astype(np.int16, copy=True)
    sub = out[box].astype(np.float32)
    out[box] = np.clip(np.rint((1.0 - w) * sub + w * (level_hu + noise)), -1024, 3071).astype(np.int16)
    return out


def sphere_weight(shape: tuple[int, int, int], spacing_mm: tuple[float, float, float],
                  centre_zyx: tuple[float, float, float], radius_mm: float, *, psf_fwhm_mm: float,
                  ) -> tuple[npt.NDArray[np.float32], tuple[slice, ...]]:
    """Blurred occupancy of a sphere (centre in voxel indices), on its bounding box.

    Returns the weight :math:`w` (0..1) on the box and the box (slices into an array of ``shape``).
    """
    sp = np.asarray(spacing_mm, float)
    reach = radius_mm + 2.0 * psf_fwhm_mm
    box = tuple(slice(max(0, int(np.floor(c - reach / s))), min(n, int(np.ceil(c + reach / s)) + 1))
                for c, s, n in zip(centre_zyx, sp, shape))
    k = SUPERSAMPLE
    offs = (np.arange(k) + 0.5) / k - 0.5
    axes = [((np.arange(b.start, b.stop)[:, None] + offs[None, :]).ravel() - c) * s
            for b, c, s in zip(box, centre_zyx, sp)]
    d2 = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    occ = (d2 <= radius_mm ** 2).astype(np.float32)
    n = [b.stop - b.start for b in box]
    occ = occ.reshape(n[0], k, n[1], k, n[2], k).mean(axis=(1, 3, 5))
    return blur_psf(occ, spacing_mm, psf_fwhm_mm), box


def blur_psf(a: npt.NDArray[np.float32], spacing_mm: tuple[float, float, float], psf_fwhm_mm: float,
             ) -> npt.NDArray[np.float32]:
    """Gaussian point-spread function of FWHM ``psf_fwhm_mm`` in every direction."""
    if psf_fwhm_mm <= 0:
        return a.astype(np.float32)
    return ndi.gaussian_filter(a.astype(np.float32), [psf_fwhm_mm * FWHM_TO_SIGMA / s for s in spacing_mm],
                               mode="nearest")


def costal_point(lung: npt.NDArray[np.bool_], spacing_mm: tuple[float, float, float], where: Where, *,
                 lateral_sign: int, anterior_axis: tuple[int, int] = (1, -1), left_axis: tuple[int, int] = (2, 1),
                 ) -> tuple[tuple[int, int, int], npt.NDArray[np.float64]]:
    """A point on the costal pleura of one lung and the unit outward direction there (voxel units).

    Parameters
    ----------
    lung : ndarray of bool (z, y, x)
        One lung; axis 0 is cranio-caudal with the index growing downward or upward (the lowest and
        highest slices are found from the mask itself through ``_HEIGHT`` fractions of its extent,
        counted from the slice with the larger area — the base).
    where
        ``lateral`` (outermost voxel at the lung's antero-posterior centre), ``anterior`` /
        ``posterior`` (front/back-most voxel at the lung's lateral centre), ``apex`` / ``base``
        (outermost lateral-posterior voxel near the top / bottom; at the base, one with lung
        ``BASE_COSTAL_MM`` below it, so on the costal wall rather than on the diaphragm).
    lateral_sign
        +1 for the left lung (its costal side is toward the patient's left), -1 for the right.
    anterior_axis, left_axis : (array axis, sign)
        Directions of the patient's front and left in the array (identity LPS: (1, -1), (2, +1)).
    """
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    area = lung[zs].sum(axis=(1, 2))
    base_first = np.argmax(area) < zs.size / 2  # larger cross-sections toward the base
    lat = np.zeros(2)
    lat[left_axis[0] - 1] = left_axis[1] * lateral_sign
    ant = np.zeros(2)
    ant[anterior_axis[0] - 1] = anterior_axis[1]
    if where in ("lateral", "apex", "base"):
        d = lat if where == "lateral" else (lat - 0.5 * ant) / np.hypot(1.0, 0.5)
    else:
        d = ant if where == "anterior" else -ant
    below = int(round(BASE_COSTAL_MM / spacing_mm[0])) * (1 if base_first else -1)
    first = None
    # the base point climbs (5 % of the height at a time) until it lies on the costal wall, not on the dome
    for frac in [_HEIGHT[where]] if where != "base" else [_HEIGHT[where] + 0.05 * i for i in range(6)]:
        k = int(zs[0] + (frac if base_first else 1.0 - frac) * (zs[-1] - zs[0]))
        ys, xs = np.nonzero(lung[k])
        yx = np.stack([ys, xs], axis=1).astype(float)
        centre = yx.mean(axis=0)
        # within 3 mm of the ray from the cross-section's centre (lateral, apex, base), or at the lung's
        # lateral centre, half-way between its medial and costal edges (anterior, posterior)
        across = np.array([-d[1], d[0]]) if where in ("lateral", "apex", "base") else lat
        band = np.abs((yx - centre) @ across) <= 3.0 / min(spacing_mm[1:])
        cand = yx[band] if band.any() else yx
        p = cand[int(np.argmax(cand @ d))]
        point = (k, int(p[0]), int(p[1]))
        first = first or point
        if where != "base" or (0 <= k - below < lung.shape[0] and lung[k - below, point[1], point[2]]):
            return point, np.array([0.0, d[0], d[1]])
    return first, np.array([0.0, d[0], d[1]])  # type: ignore[return-value]


def inject_mass(hu: npt.NDArray[np.integer], spacing_mm: tuple[float, float, float],
                centre_zyx: tuple[float, float, float], radius_mm: float, *, level_hu: float = 40.0,
                noise_hu: float = 0.0, psf_fwhm_mm: float = 1.0, noise_corr_mm: float = 0.4,
                rng: np.random.Generator | None = None) -> Variant:
    """A soft-tissue sphere of ``radius_mm`` at ``centre_zyx`` (voxel indices), mixed into the scan."""
    rng = rng or np.random.default_rng(0)
    w, box = sphere_weight(hu.shape, spacing_mm, centre_zyx, radius_mm, psf_fwhm_mm=psf_fwhm_mm)
    out = _blend(hu, w, box, level_hu, _noise(w.shape, noise_hu, spacing_mm, noise_corr_mm, rng))
    changed = np.zeros(hu.shape, bool)
    changed[box] = w >= 0.5
    return Variant(out, changed)


def juxtapleural_mass(hu: npt.NDArray[np.integer], lungs: npt.NDArray[np.uint8],
                      spacing_mm: tuple[float, float, float], *, code: int, where: Where, radius_mm: float,
                      inset: float = 0.5, level_hu: float = 40.0, noise_hu: float = 0.0, psf_fwhm_mm: float = 1.0,
                      anterior_axis: tuple[int, int] = (1, -1), left_axis: tuple[int, int] = (2, 1),
                      rng: np.random.Generator | None = None) -> Variant:
    """A mass on the costal pleura of lung ``code`` (1 right, 2 left) at ``where``.

    The sphere's centre lies ``inset * radius_mm`` inside the lung from the pleural point of
    :func:`costal_point`, so the mass abuts the chest wall over a broad contact (``inset`` 0: a
    hemisphere in the lung, 1: a sphere tangent to the pleura).
    """
    p, d = costal_point(lungs == code, spacing_mm, where, lateral_sign=1 if code == 2 else -1,
                        anterior_axis=anterior_axis, left_axis=left_axis)
    step = inset * radius_mm / np.asarray(spacing_mm)
    centre = tuple(float(c - s * di) for c, s, di in zip(p, step, d))
    return inject_mass(hu, spacing_mm, centre, radius_mm, level_hu=level_hu, noise_hu=noise_hu,  # type: ignore[arg-type]
                       psf_fwhm_mm=psf_fwhm_mm, rng=rng)


def opacify_lung(hu: npt.NDArray[np.integer], lungs: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float],
                 *, code: int, level_hu: float = 35.0, noise_hu: float = 0.0, psf_fwhm_mm: float = 1.0,
                 noise_corr_mm: float = 0.4, rng: np.random.Generator | None = None) -> Variant:
    """White-out of lung ``code``: all its voxels become soft tissue (consolidation / atelectasis + fluid)."""
    rng = rng or np.random.default_rng(0)
    m = lungs == code
    box = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in ndi.find_objects(m.view(np.uint8))[0])
    w = blur_psf(m[box].astype(np.float32), spacing_mm, psf_fwhm_mm)
    out = _blend(hu, w, box, level_hu, _noise(w.shape, noise_hu, spacing_mm, noise_corr_mm, rng))
    changed = np.zeros(hu.shape, bool)
    changed[box] = w >= 0.5
    return Variant(out, changed)


def inject_emphysema(hu: npt.NDArray[np.integer], lungs: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float],
                     *, n_blobs: int = 30, radius_mm: tuple[float, float] = (4.0, 15.0),
                     level_hu: tuple[float, float] = (-990.0, -960.0), pleural_fraction: float = 0.4,
                     noise_hu: float = 0.0, psf_fwhm_mm: float = 1.0, noise_corr_mm: float = 0.4,
                     rng: np.random.Generator | None = None) -> Variant:
    """Emphysema: irregular blobs (3 overlapping spheres each) of -990...-960 HU inside the lungs.

    A ``pleural_fraction`` of the blobs are centred on the lung's edge (subpleural / paraseptal,
    touching the pleura); the others anywhere inside. A blob replaces lung only in the lung minus its
    outermost voxel layer, so the pleura and the partial-volume rim stay (destroyed lung, intact pleura).
    """
    rng = rng or np.random.default_rng(0)
    lung = np.isin(lungs, (1, 2))
    inner = ndi.binary_erosion(lung)
    edge = lung & ~inner
    pts_in = np.argwhere(ndi.binary_erosion(lung, iterations=3))
    pts_edge = np.argwhere(edge)
    out = hu.astype(np.int16, copy=True)
    changed = np.zeros(hu.shape, bool)
    sp = np.asarray(spacing_mm, float)
    for i in range(n_blobs):
        pool = pts_edge if rng.random() < pleural_fraction else pts_in
        c0 = pool[rng.integers(len(pool))].astype(float)
        r = float(rng.uniform(*radius_mm))
        lvl = float(rng.uniform(*level_hu))
        w_all = np.zeros(hu.shape, np.float32)
        for _ in range(3):
            c = c0 + rng.normal(0.0, 0.4 * r, 3) / sp
            rr = r * float(rng.uniform(0.6, 1.0))
            w, box = sphere_weight(hu.shape, spacing_mm, tuple(c), rr, psf_fwhm_mm=0.0)  # type: ignore[arg-type]
            w_all[box] = np.maximum(w_all[box], w)
        box = ndi.find_objects((w_all > 0).view(np.uint8))[0]
        box = tuple(slice(max(0, s.start - 3), min(n, s.stop + 3)) for s, n in zip(box, hu.shape))
        w = blur_psf(w_all[box] * inner[box], spacing_mm, psf_fwhm_mm) * lung[box]
        noise = _noise(w.shape, noise_hu, spacing_mm, noise_corr_mm, rng)
        sub = out[box].astype(np.float32)
        out[box] = np.clip(np.rint((1.0 - w) * sub + w * (lvl + noise)), -1024, 3071).astype(np.int16)
        changed[box] |= w >= 0.5
    return Variant(out, changed)


def pleural_effusion(hu: npt.NDArray[np.integer], lungs: npt.NDArray[np.uint8], spacing_mm: tuple[float, float, float],
                     *, code: int, depth_mm: float = 30.0, level_hu: float = 10.0, noise_hu: float = 0.0,
                     psf_fwhm_mm: float = 1.0, noise_corr_mm: float = 0.4, posterior_axis: tuple[int, int] = (1, 1),
                     rng: np.random.Generator | None = None) -> Variant:
    """A dependent (supine: posterior) effusion of lung ``code``: fluid replaces the lung's most posterior part.

    In every axial slice the fluid fills the lung up to ``depth_mm`` in front of its most posterior
    point, thinning toward the apex (full depth at the base, zero at the top) so that it is a
    crescent in the sagittal and axial views and a meniscus against the lung — the lung is
    compressed (its volume shrinks by the fluid's), as a free effusion does.
    """
    rng = rng or np.random.default_rng(0)
    m = lungs == code
    ax, sign = posterior_axis
    zs = np.flatnonzero(m.any(axis=(1, 2)))
    area = m[zs].sum(axis=(1, 2))
    base_first = np.argmax(area) < zs.size / 2
    pos = np.arange(m.shape[ax], dtype=float) * spacing_mm[ax] * sign  # mm toward the back
    shape = [1, 1]
    shape[ax - 1] = -1
    pos2 = pos.reshape(shape)
    fluid = np.zeros(m.shape, bool)
    for k in zs:
        t = (k - zs[0]) / max(zs[-1] - zs[0], 1)
        height = t if base_first else 1.0 - t
        d = depth_mm * max(0.0, 1.0 - height / 0.7)  # up to 70 % of the lung's height
        if d <= 0 or not m[k].any():
            continue
        back = np.where(m[k], pos2, -np.inf).max()
        fluid[k] = m[k] & (pos2 >= back - d)
    w = blur_psf(fluid.astype(np.float32), spacing_mm, psf_fwhm_mm)
    box = tuple(slice(None) for _ in range(3))
    out = _blend(hu, w, box, level_hu, _noise(w.shape, noise_hu, spacing_mm, noise_corr_mm, rng))
    return Variant(out, fluid)
