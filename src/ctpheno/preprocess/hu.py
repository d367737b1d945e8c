"""HU handling and intensity normalisation, in memory and chunked (dask) twins.

Raw HU (int16, clipped, padding -> air) feed the QCT metrics; the normalised
float images (:func:`window_normalise`, :func:`zscore_in_lung`) are only for texture and
deep features and are never stored in place of the HU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..vocab import PADDING_THRESHOLD_HU


def to_hu_int16(hu: npt.NDArray[Any], *, clip_hu: tuple[int, int] = (-1024, 3071),
                copy: bool = True) -> npt.NDArray[np.int16]:
    """HU as int16: padding (<= -2000) -> ``clip_hu[0]`` (air), then clipped to ``clip_hu``, floats rounded.

    ``copy=False`` clips an int16 input in place and returns it (no second full-size array).

    .. math:: v' = \\min(\\max(v, lo), hi), \\quad v \\le -2000 \\Rightarrow v' = lo
    """
    lo, hi = int(clip_hu[0]), int(clip_hu[1])
    if lo >= hi:
        raise ValueError(f"clip_hu must be (low, high) with low < high; got {clip_hu}")
    if not (-32768 <= lo and hi <= 32767):
        raise ValueError(f"clip_hu {clip_hu} does not fit int16")
    arr = np.asarray(hu)
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"HU array must be integer or float; got {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
    pad = arr <= PADDING_THRESHOLD_HU
    if not copy and arr.dtype == np.int16 and arr.flags.writeable:
        out = np.clip(arr, lo, hi, out=arr)
    else:
        out = np.clip(arr, lo, hi).astype(np.int16)
    out[pad] = lo
    return out


def window_normalise(hu: npt.NDArray[Any], *, window_hu: tuple[float, float] = (-1000.0, 200.0)) -> npt.NDArray[np.float32]:
    """Linear window to [0, 1]: :math:`(\\mathrm{clip}(v, a, b) - a) / (b - a)` (lung window by default)."""
    a, b = float(window_hu[0]), float(window_hu[1])
    if not b > a:
        raise ValueError(f"window_hu must be (low, high) with low < high; got {window_hu}")
    return ((np.clip(np.asarray(hu, dtype=np.float32), a, b) - a) / (b - a)).astype(np.float32)


def zscore_in_lung(hu: npt.NDArray[Any], lung: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
    """Z-score with the mean and SD of the lung voxels: :math:`(v - \\mu_{lung}) / \\sigma_{lung}`."""
    from ..errors import EmptyLungMaskError

    hu = np.asarray(hu)
    if hu.shape != lung.shape:
        raise ValueError(f"image and lung mask differ in shape: {hu.shape} vs {lung.shape}")
    vals = hu[lung].astype(np.float64)
    if vals.size == 0:
        raise EmptyLungMaskError("lung mask is empty; cannot z-score inside the lung")
    sd = float(vals.std())
    return ((hu.astype(np.float32) - float(vals.mean())) / (sd if sd > 0 else 1.0)).astype(np.float32)


def smooth_hu(hu: npt.NDArray[Any], spacing_mm: tuple[float, float, float], *, sigma_mm: float = 1.0,
              truncate: float = 4.0) -> npt.NDArray[np.float32]:
    """Gaussian smoothing with ``sigma_mm`` converted to voxels per axis (noise reduction before thresholds)."""
    if sigma_mm <= 0:
        raise ValueError(f"sigma_mm must be > 0; got {sigma_mm}")
    sigma = [sigma_mm / float(s) for s in spacing_mm]
    return ndi.gaussian_filter(np.asarray(hu, dtype=np.float32), sigma=sigma, truncate=truncate, mode="nearest")


# --------------------------------------------------------------------------- dask twins
def to_hu_int16_dask(hu: Any, *, clip_hu: tuple[int, int] = (-1024, 3071)) -> Any:
    """Chunked :func:`to_hu_int16` (per-voxel, so ``map_blocks`` without halo)."""
    import dask.array as da

    return da.map_blocks(to_hu_int16, hu, clip_hu=clip_hu, dtype=np.int16, meta=np.empty((0, 0, 0), np.int16))


def window_normalise_dask(hu: Any, *, window_hu: tuple[float, float] = (-1000.0, 200.0)) -> Any:
    """Chunked :func:`window_normalise`."""
    import dask.array as da

    return da.map_blocks(window_normalise, hu, window_hu=window_hu, dtype=np.float32,
                         meta=np.empty((0, 0, 0), np.float32))


def zscore_in_lung_dask(hu: Any, lung: Any) -> Any:
    """Chunked :func:`zscore_in_lung`: global lung mean/SD first (two reductions), then per-voxel blocks."""
    import dask.array as da

    vals = hu[lung].astype(np.float64)
    mean, sd = da.compute(vals.mean(), vals.std())
    sd = float(sd) if sd > 0 else 1.0
    return da.map_blocks(lambda b: ((b.astype(np.float32) - mean) / sd).astype(np.float32), hu,
                         dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))


def gaussian_halo(spacing_mm: tuple[float, float, float], *, sigma_mm: float, truncate: float = 4.0) -> tuple[int, ...]:
    """Voxels a Gaussian kernel reaches per axis: ``int(truncate * sigma + 0.5)`` (scipy's kernel radius)."""
    return tuple(int(truncate * (sigma_mm / float(s)) + 0.5) for s in spacing_mm)


def smooth_hu_dask(hu: Any, spacing_mm: tuple[float, float, float], *, sigma_mm: float = 1.0,
                   truncate: float = 4.0) -> Any:
    """Chunked :func:`smooth_hu`: ``map_overlap`` with the halo equal to the kernel's reach, edges 'nearest'."""
    depth = gaussian_halo(spacing_mm, sigma_mm=sigma_mm, truncate=truncate)
    return hu.map_overlap(smooth_hu, depth=dict(enumerate(depth)), boundary="nearest", dtype=np.float32,
                          meta=np.empty((0, 0, 0), np.float32), spacing_mm=spacing_mm, sigma_mm=sigma_mm,
                          truncate=truncate)
