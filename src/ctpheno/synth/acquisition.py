"""Scan geometry, reconstruction blur and noise of a synthetic acquisition.

Noise model: zero-mean Gaussian noise with spatial correlation set by the
kernel, standard deviation

.. math:: \\sigma = \\sigma_{ref} \\left(\\frac{0.7 \\cdot 0.7 \\cdot 1.0}{\\Delta x \\Delta y \\Delta z}\\right)^{0.4}

with :math:`\\sigma_{ref}` drawn in 30-45 HU (smooth kernel) or 90-130 HU
(sharp kernel) for a 0.7x0.7x1 mm voxel (the exponent 0.4 rather than the
ideal 0.5 keeps some visible noise on the coarse demo grid). The blur is a
Gaussian point-spread function with in-plane FWHM 1.2 mm (smooth) / 0.8 mm
(sharp) but at least one pixel, and through-plane FWHM equal to the slice
thickness (partial-volume averaging over the slab).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from .anatomy import Frame

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
HU_MIN, HU_MAX = -1024, 3071
HU_FOV_PADDING = -3024  # GE-style value outside the reconstruction circle (stored -2000, intercept -1024)

SCANNERS = (  # manufacturer, model, smooth kernel, sharp kernel
    ("SIEMENS", "SOMATOM Definition Flash", "B31f", "B70f"),
    ("GE MEDICAL SYSTEMS", "LightSpeed VCT", "STANDARD", "LUNG"),
    ("Philips", "Brilliance 64", "B", "L"),
    ("TOSHIBA", "Aquilion ONE", "FC13", "FC52"),
)
FULL_SLICE_SPACINGS_MM = (0.625, 0.75, 0.8, 1.0, 1.25)


def sample_acquisition(rng: np.random.Generator, *, size: str, kernel: str, frame: Frame,
                       p: dict[str, Any]) -> dict[str, Any]:
    """Output grid, model grid, scanner, kernel name, noise and storage parameters."""
    hx = p["body_half_width_mm"] + 12.0
    y_lo, y_hi = -p["body_half_depth_mm"] - 14.0, frame.table_y + 38.0
    fov_need = max(2.0 * hx, y_hi - y_lo)
    coverage = frame.z_max - frame.z_min
    if size == "demo":
        n_xy = 128
        sxy = float(np.clip(fov_need / n_xy, 2.5, 3.0))
        dz = float(rng.choice([2.5, 2.75, 3.0]))
        nz = int(math.ceil(coverage / dz)) + 1
        model_shape, model_sp = (nz, n_xy, n_xy), (dz, sxy, sxy)
    else:
        n_xy = 512
        sxy = float(np.clip(fov_need / n_xy, 0.6, 0.8))
        ok = [s for s in FULL_SLICE_SPACINGS_MM if 300 <= coverage / s + 1 <= 450]
        dz = float(rng.choice(ok)) if ok else float(coverage / 440.0)
        nz = int(math.ceil(coverage / dz)) + 1
        kz = max(1, int(round(2.5 / dz)))
        mz = int(math.ceil(nz / kz))
        model_shape = (mz, 128, 128)
        model_sp = (nz * dz / mz, sxy * n_xy / 128, sxy * n_xy / 128)
    # pixel sizes on a 1/512 mm grid and positions on a 1/64 mm grid: exact in float32 (NIfTI)
    # and in the decimal strings of DICOM, so volumes agree to the last bit across formats
    sxy = round(sxy * 512.0) / 512.0
    x_c = float(rng.uniform(-10.0, 10.0))
    y_c = 0.5 * (y_lo + y_hi)
    # physical centre of voxel 0 of the output grid, in phantom coordinates
    o_x = x_c - 0.5 * (n_xy - 1) * sxy
    o_y = y_c - 0.5 * (n_xy - 1) * sxy
    o_z = frame.z_min
    spacing = (dz, sxy, sxy)
    # model grid spans the same extent (pixel edges aligned)
    m_org = (o_x - 0.5 * sxy + 0.5 * model_sp[2], o_y - 0.5 * sxy + 0.5 * model_sp[1],
             o_z - 0.5 * dz + 0.5 * model_sp[0])
    manufacturer, model, k_smooth, k_sharp = SCANNERS[int(rng.integers(len(SCANNERS)))]
    sigma_ref = float(rng.uniform(30.0, 45.0) if kernel == "smooth" else rng.uniform(90.0, 130.0))
    noise_hu = sigma_ref * (0.49 / (sxy * sxy * dz)) ** 0.4
    # scanner position of the phantom frame: isocentre at the FOV centre, table at some z
    shift = (-x_c, -y_c, float(np.round(rng.uniform(-450.0, -150.0), 1)))
    origin = tuple(round((o + d) * 64.0) / 64.0 for o, d in zip((o_x, o_y, o_z), shift))
    fov_padding = manufacturer.startswith("GE") and bool(rng.random() < 0.5)
    return {
        "shape": (nz, n_xy, n_xy), "spacing_mm": spacing,
        "origin_mm": origin,
        "phantom_to_physical_mm": shift,
        "model_shape": model_shape, "model_spacing_mm": model_sp, "model_origin_mm": m_org,
        "slice_thickness_mm": dz, "manufacturer": manufacturer, "scanner_model": model,
        "kernel_name": k_smooth if kernel == "smooth" else k_sharp,
        "noise_sigma_ref_hu": sigma_ref, "noise_hu": float(noise_hu),
        "psf_fwhm_mm": max(1.2 if kernel == "smooth" else 0.8, sxy),
        "noise_corr_vox": 0.9 if kernel == "smooth" else 0.45,
        "fov_padding": fov_padding,
    }


def _source_coords(n_in: int, n_out: int) -> npt.NDArray[np.float64]:
    """Input-index coordinates of output voxel centres when both grids span the same extent."""
    return np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1.0)


def _upsample_linear(arr: npt.NDArray[np.float32], shape: tuple[int, int, int]) -> npt.NDArray[np.float32]:
    """Separable trilinear resize (pixel edges aligned); cheaper than ``ndi.zoom`` on 10^8 voxels."""
    out = arr
    for axis in (2, 1):
        u = _source_coords(out.shape[axis], shape[axis])
        i0 = np.floor(u).astype(np.intp)
        i1 = np.minimum(i0 + 1, out.shape[axis] - 1)
        w = (u - i0).astype(np.float32)
        wshape = [1, 1, 1]
        wshape[axis] = -1
        w = w.reshape(wshape)
        out = np.take(out, i0, axis=axis) * (1 - w) + np.take(out, i1, axis=axis) * w
    u = _source_coords(out.shape[0], shape[0])
    i0 = np.floor(u).astype(np.intp)
    i1 = np.minimum(i0 + 1, out.shape[0] - 1)
    w = (u - i0).astype(np.float32)
    res = np.empty(shape, np.float32)
    for k in range(shape[0]):
        np.add(out[i0[k]] * (1 - w[k]), out[i1[k]] * w[k], out=res[k])
    return res


def _upsample_nearest(arr: npt.NDArray[Any], shape: tuple[int, int, int]) -> npt.NDArray[Any]:
    idx = [np.minimum(np.floor((np.arange(t) + 0.5) * (s / t)).astype(np.intp), s - 1)
           for s, t in zip(arr.shape, shape)]
    return arr[np.ix_(*idx)]


def acquire(hu: npt.NDArray[np.float32], lungs: npt.NDArray[np.uint8], labels: npt.NDArray[np.uint8],
            acq: dict[str, Any], rng: np.random.Generator):
    """Blur, add noise and quantise; upsample from the model grid when it is coarser.

    Returns ``(image int16 HU, lungs uint8, labels uint8)`` on the output grid.
    """
    shape = tuple(acq["shape"])
    dz, sy, sx = acq["spacing_mm"]
    if tuple(hu.shape) != shape:
        # the ~2.5 mm model grid is coarser than the PSF and the slice profile: the trilinear
        # upsampling is the blur, no further filtering is needed
        hu = _upsample_linear(ndi.gaussian_filter(hu, 0.6, mode="nearest"), shape)  # anti-aliased
        lungs = _upsample_nearest(lungs, shape)
        labels = _upsample_nearest(labels, shape)
        sig = (0.0, 0.0, 0.0)
    else:
        s_xy = acq["psf_fwhm_mm"] * FWHM_TO_SIGMA / sx
        sig = (acq["slice_thickness_mm"] * FWHM_TO_SIGMA / dz, s_xy, s_xy)
    if any(s > 0 for s in sig):
        hu = ndi.gaussian_filter(hu, sig, mode="nearest", output=np.float32)
    c = acq["noise_corr_vox"]
    noise = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0.0, c, c), mode="wrap")
    noise *= np.float32(acq["noise_hu"] / max(float(noise[:: max(1, shape[0] // 16)].std()), 1e-6))
    hu += noise
    np.rint(hu, out=hu)
    np.clip(hu, HU_MIN, HU_MAX, out=hu)
    image = hu.astype(np.int16)
    if acq["fov_padding"]:
        n = shape[1]
        jj, ii = np.mgrid[0:n, 0:n]
        r = (n - 1) / 2.0
        outside = (jj - r) ** 2 + (ii - r) ** 2 > (r + 0.5) ** 2
        image[:, outside] = HU_FOV_PADDING
    return image, lungs, labels
