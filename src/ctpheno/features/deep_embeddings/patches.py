"""Lung-masked patches on an isotropic grid: the input of the patch encoders.

Pure NumPy/SciPy on ``(z, y, x)`` arrays with ``spacing_mm``; no I/O, no torch.

The HU window maps attenuation linearly to the unit interval,

.. math:: v = \\operatorname{clip}\\left(\\frac{\\mathrm{HU} - w_\\mathrm{lo}}{w_\\mathrm{hi} - w_\\mathrm{lo}}, 0, 1\\right),

with the default window :math:`[-1024, -400]` HU spanning air, emphysema (:math:`\\le -950` HU)
and normal parenchyma (about :math:`-850` HU) [1]_. Voxels outside the lung mask are set to 0
(air), so the encoder sees parenchyma texture only, not the chest wall or mediastinum.

References
----------
.. [1] Wang Z, et al. Optimal threshold in CT quantification of emphysema. Eur Radiol 2013;23:975-84.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ...errors import EmptyLungMaskError
from ...vocab import LUNG_LABELS

#: zone codes of :data:`ctpheno.vocab.ZONE_CODES` grouped into cranio-caudal regions
REGION_ZONES: dict[str, tuple[int, ...]] = {"upper": (1, 4), "middle": (2, 5), "lower": (3, 6)}


@dataclass(frozen=True)
class LungGrid:
    """Windowed, lung-masked image on an isotropic grid (cropped to the lungs plus a margin).

    Attributes
    ----------
    image : float32 (z, y, x)
        Window-normalised intensities in [0, 1]; 0 outside the lungs.
    lung : bool (z, y, x)
        Lung mask (labels 1 and 2; airways excluded).
    zones : uint8 (z, y, x) or None
        Zone codes 0-6 resampled with the image.
    spacing_mm : float
        Isotropic voxel size.
    """

    image: npt.NDArray[np.float32]
    lung: npt.NDArray[np.bool_]
    zones: npt.NDArray[np.uint8] | None
    spacing_mm: float


def window_hu(hu: npt.NDArray, *, hu_window: tuple[float, float] = (-1024.0, -400.0)) -> npt.NDArray[np.float32]:
    """Map HU linearly to [0, 1] over ``hu_window`` (clipped); see the module formula."""
    lo, hi = float(hu_window[0]), float(hu_window[1])
    if not hi > lo:
        raise ValueError(f"hu_window must be (low, high) with high > low; got {hu_window}")
    out = (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo)
    return np.clip(out, 0.0, 1.0, out=out)


def lung_grid(hu: npt.NDArray, labels: npt.NDArray, spacing_mm: tuple[float, float, float], *,
              zones: npt.NDArray | None = None, target_mm: float = 2.0, margin_mm: float = 32.0,
              hu_window: tuple[float, float] = (-1024.0, -400.0)) -> LungGrid:
    """Crop to the lungs, resample to ``target_mm`` isotropic voxels, window and mask.

    Parameters
    ----------
    hu : int16 (z, y, x)
        Image in HU.
    labels : uint8 (z, y, x)
        0 background, 1 right lung, 2 left lung, 3 airways (others ignored).
    spacing_mm : (z, y, x)
        Voxel size of ``hu``.
    zones : uint8 (z, y, x), optional
        Zone codes 1-6 (:data:`ctpheno.vocab.ZONE_CODES`), resampled by nearest neighbour.
    target_mm : float
        Isotropic output voxel size.
    margin_mm : float
        Margin kept around the lungs' bounding box (patches reaching past the lungs read air).
    """
    hu = np.asarray(hu)
    labels = np.asarray(labels)
    if hu.shape != labels.shape or hu.ndim != 3:
        raise ValueError(f"image and labels must be 3-D arrays of one shape; got {hu.shape} and {labels.shape}")
    if zones is not None and np.shape(zones) != hu.shape:
        raise ValueError(f"zones has shape {np.shape(zones)}, image {hu.shape}")
    sp = np.asarray(spacing_mm, dtype=float)
    if sp.shape != (3,) or not np.all(sp > 0):
        raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x); got {spacing_mm}")
    if target_mm <= 0:
        raise ValueError(f"target_mm must be positive; got {target_mm}")
    lung = np.isin(labels, LUNG_LABELS)
    if not lung.any():
        raise EmptyLungMaskError("the lung mask (labels 1, 2) is empty; no patches can be cut")
    idx = np.nonzero(lung)
    margin = np.ceil(margin_mm / sp).astype(int)
    lo = [max(int(i.min()) - m, 0) for i, m in zip(idx, margin)]
    hi = [min(int(i.max()) + 1 + m, n) for i, m, n in zip(idx, margin, hu.shape)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    factors = sp / float(target_mm)
    if np.allclose(factors, 1.0, rtol=0, atol=1e-9):  # already on the grid (e.g. the stored analysis grid)
        img, lung_r = window_hu(hu[box], hu_window=hu_window), lung[box]
        zones_r = None if zones is None else np.asarray(zones, dtype=np.uint8)[box]
    else:
        img = ndi.zoom(window_hu(hu[box], hu_window=hu_window), factors, order=1, mode="nearest", grid_mode=True)
        lung_r = ndi.zoom(lung[box].astype(np.uint8), factors, order=0, mode="nearest", grid_mode=True).astype(bool)
        zones_r = None
        if zones is not None:
            zones_r = ndi.zoom(np.asarray(zones, dtype=np.uint8)[box], factors, order=0, mode="nearest",
                               grid_mode=True)
    img = np.where(lung_r, img, np.float32(0.0)).astype(np.float32)
    return LungGrid(image=img, lung=lung_r, zones=zones_r, spacing_mm=float(target_mm))


def _lung_fraction(lung: npt.NDArray[np.bool_], patch_size: int) -> npt.NDArray[np.float32]:
    """Fraction of lung voxels in the cube of edge ``patch_size`` centred on each voxel."""
    return ndi.uniform_filter(lung.astype(np.float32), size=patch_size, mode="constant", cval=0.0)


def grid_centres(lung: npt.NDArray[np.bool_], *, patch_size: int, min_lung_fraction: float = 0.5,
                 max_patches: int | None = None, stride: int | None = None) -> npt.NDArray[np.int64]:
    """Patch centres on a regular grid (stride ``stride``, default ``patch_size // 2``: half-
    overlapping patches, so thin regions such as the lung bases get patches) inside the lungs.

    A centre is kept when it is a lung voxel and its patch is at least ``min_lung_fraction``
    lung. When more than ``max_patches`` qualify, an evenly spaced subset (in raster order)
    is kept, so the result is deterministic. Returns (N, 3) int64 (z, y, x).
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1; got {patch_size}")
    frac = _lung_fraction(lung, patch_size)
    half = patch_size // 2
    step = int(stride) if stride else max(1, patch_size // 2)
    axes = [np.arange(half % step, n, step) for n in lung.shape]
    if any(len(a) == 0 for a in axes):
        axes = [a if len(a) else np.array([n // 2]) for a, n in zip(axes, lung.shape)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij")
    c = np.stack([zz.ravel(), yy.ravel(), xx.ravel()], axis=1)
    keep = lung[c[:, 0], c[:, 1], c[:, 2]] & (frac[c[:, 0], c[:, 1], c[:, 2]] >= min_lung_fraction)
    c = c[keep]
    if max_patches is not None and len(c) > max_patches:
        c = c[np.linspace(0, len(c) - 1, max_patches).round().astype(int)]
    return c.astype(np.int64)


def candidate_centres(lung: npt.NDArray[np.bool_], *, patch_size: int, min_lung_fraction: float = 0.5,
                      max_candidates: int = 20000) -> npt.NDArray[np.int64]:
    """Every lung voxel whose patch is at least ``min_lung_fraction`` lung (evenly thinned to
    ``max_candidates``): the pool training patches are drawn from. (N, 3) int64."""
    frac = _lung_fraction(lung, patch_size)
    c = np.argwhere(lung & (frac >= min_lung_fraction))
    if len(c) == 0:
        c = np.argwhere(lung)
    if len(c) > max_candidates:
        c = c[np.linspace(0, len(c) - 1, max_candidates).round().astype(int)]
    return c.astype(np.int64)


def cut_patches(image: npt.NDArray[np.float32], centres: npt.NDArray[np.integer], *,
                patch_size: int) -> npt.NDArray[np.float32]:
    """Cubic patches of edge ``patch_size`` around ``centres`` ((N, 3) z, y, x); outside the
    array reads 0 (air). Returns (N, P, P, P) float32."""
    centres = np.asarray(centres, dtype=np.int64).reshape(-1, 3)
    p = int(patch_size)
    half = p // 2
    padded = np.pad(image, p, mode="constant", constant_values=0)
    out = np.empty((len(centres), p, p, p), dtype=np.float32)
    for n, (z, y, x) in enumerate(centres + p - half):
        out[n] = padded[z:z + p, y:y + p, x:x + p]
    return out


def patch_regions(zones: npt.NDArray[np.uint8] | None,
                  centres: npt.NDArray[np.integer]) -> dict[str, npt.NDArray[np.bool_]]:
    """Which patches belong to each region: ``whole`` (all) and, with a zone map, ``upper``
    (zones 1, 4), ``middle`` (2, 5) and ``lower`` (3, 6) by the zone code at the patch centre."""
    centres = np.asarray(centres, dtype=np.int64).reshape(-1, 3)
    out = {"whole": np.ones(len(centres), dtype=bool)}
    if zones is not None and len(centres):
        code = zones[centres[:, 0], centres[:, 1], centres[:, 2]]
        for name, codes in REGION_ZONES.items():
            out[name] = np.isin(code, codes)
    return out
