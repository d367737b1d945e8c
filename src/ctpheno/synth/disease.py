"""Emphysema patterns by subtype, placed to an exact extent inside the lungs.

Each subtype defines a *score* field over the lung voxels; the emphysema mask
is the top ``f`` fraction of that score (a quantile threshold), so the
label-5 volume is exactly ``round(f * n_lung)`` voxels whatever the pattern.

* ``centrilobular`` — fine-grained noise (correlation length ~ 3 mm) plus an
  upper-zone bias: many small holes, apical predominance.
* ``panlobular`` — coarse noise (~ 8 mm) plus a lower-zone bias, and a diffuse
  density loss of the surrounding parenchyma in the lower zones.
* ``paraseptal`` — subpleural: high score within ~ 10 mm of the pleura, coarse
  blobs (bullae), mild upper-zone bias.
* ``none`` / ``airway`` — the same fine pattern as centrilobular at the small
  extents those subjects are given.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

SUBTYPES = ("none", "centrilobular", "panlobular", "paraseptal", "airway")

# HU of emphysematous lung (before blur and noise) per subtype
EMPHYSEMA_HU = {"none": -1000.0, "centrilobular": -1000.0, "panlobular": -992.0,
                "paraseptal": -1008.0, "airway": -1000.0}


def smooth_noise(shape: tuple[int, ...], sigma_vox: npt.ArrayLike, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """Unit-variance Gaussian random field with Gaussian correlation ``sigma_vox`` (per axis)."""
    g = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma_vox, mode="wrap")
    return (g / max(float(g.std()), 1e-6)).astype(np.float32)


def emphysema_mask(subtype: str, fraction: float, lung: npt.NDArray[np.bool_], candidates: npt.NDArray[np.bool_],
                   zone: npt.NDArray[np.float32], spacing_mm: tuple[float, float, float],
                   rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Boolean emphysema mask with ``count = round(fraction * count(lung))`` voxels among ``candidates``.

    Parameters
    ----------
    zone : float32, broadcastable to the volume
        Relative height in the lung, 0 at the base and 1 at the apex.
    spacing_mm : (z, y, x)
    """
    if subtype not in SUBTYPES:
        raise ValueError(f"subtype must be one of {SUBTYPES}; got {subtype!r}")
    if not 0.0 <= fraction <= 0.6:
        raise ValueError(f"emphysema_fraction must be in [0, 0.6]; got {fraction}")
    n_target = int(round(fraction * int(np.count_nonzero(lung))))
    out = np.zeros(lung.shape, bool)
    if n_target == 0:
        return out
    sp = np.asarray(spacing_mm, float)
    fine = 3.0 / sp
    coarse = 8.0 / sp
    if subtype == "panlobular":
        score = smooth_noise(lung.shape, coarse, rng) + 2.2 * (1.0 - zone)
    elif subtype == "paraseptal":
        depth = ndi.distance_transform_edt(lung, sampling=sp).astype(np.float32)
        score = 0.9 * smooth_noise(lung.shape, 6.0 / sp, rng) - depth / 4.0 + 0.6 * zone
    else:
        score = smooth_noise(lung.shape, fine, rng) + 0.5 * smooth_noise(lung.shape, coarse, rng) + 2.0 * zone
    vals = score[candidates]
    n_target = min(n_target, vals.size)
    if n_target == 0:
        return out
    thr = np.partition(vals, vals.size - n_target)[vals.size - n_target]
    out[candidates] = vals >= thr
    return out
