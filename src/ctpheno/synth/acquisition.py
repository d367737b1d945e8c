r"""Scan geometry, reconstruction kernel (edge response + noise power spectrum), dose and calibration.

**Kernels** (:data:`KERNEL_MODELS`, in-plane, radial frequency :math:`f` in mm\ :sup:`-1`): a
reconstruction kernel is a modulation transfer function, a Gaussian core times an
unsharp-mask boost (the edge enhancement of sharp kernels, which overshoots at edges),

.. math:: \mathrm{MTF}_k(f) = e^{-2\pi^2 s_k^2 f^2}\,\big(1 + \beta_k (1 - e^{-2\pi^2 e_k^2 f^2})\big),

applied in-plane to the noise-free image after the slice profile, in the Fourier domain (its
Gaussian core no narrower than a 0.425-pixel aperture: a point-spread function is at least one
pixel wide); on grids coarser than :data:`COARSE_GRID_MM` (the demo) the core is a spatial
Gaussian, as the generator applied it before kernels had spectra, and only the boost is spectral. Filtered back-projection gives noise whose
power spectrum is the ramp times the kernel's squared MTF (Hanson 1979; Kijewski & Judy 1987),

.. math:: \mathrm{NPS}_k(f) \propto f\, \mathrm{MTF}_k(f)^2\, e^{-2\pi^2 (a\,\Delta x)^2 f^2},

(:math:`a\Delta x` the interpolation aperture, :data:`NOISE_APERTURE_PX`), so noise is made by
filtering white noise with :math:`\sqrt{\mathrm{NPS}_k}` per slice and scaling it to

.. math:: \sigma = \sigma_{s}(q)\, \kappa_k \left(\frac{0.7 \cdot 0.7 \cdot 1.0}{\Delta x \Delta y \Delta z}\right)^{0.25},
          \qquad \sigma_s(q) = \sigma_{150}\sqrt{150 / q},

with the **dose** :math:`q` (effective mAs, log-uniform in :data:`MAS_RANGE`) setting the
smooth-kernel noise :math:`\sigma_s` at a nominal 0.7 x 0.7 x 1 mm voxel and
:math:`\kappa_k = \sqrt{\int \mathrm{NPS}_k / \int \mathrm{NPS}_{smooth}}` the kernel's noise
amplification *at the same dose*, computed from the two spectra (2.6 for ``sharp``). The
exponent 0.25 rather than the ideal 0.5 keeps visible noise on the coarse demo grid (5-11 HU
smooth, 15-30 HU sharp at ~2.7 mm voxels, as before the kernels had spectra). Every
reconstruction of one study shares its white noise (the same projections), so a smooth and a
sharp series of one phantom differ only by their kernels.

**Calibration**: each scanner model reads every CT number off by a fixed
:data:`SCANNER_AIR_OFFSET_HU` (a miscalibrated air reference; within the ACR tolerance) and
stores no value below its floor (:data:`SCANNER_FLOOR_HU`: Philips stores -1000 HU as 0 with an
unsigned pixel, as the real LIDC-IDRI scan in ``../shared/data`` does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..features.kernel_fit import fbp_nps, kernel_mtf
from .anatomy import Frame

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
HU_MIN, HU_MAX = -1024, 3071
HU_FOV_PADDING = -3024  # GE-style value outside the reconstruction circle (stored -2000, intercept -1024)


@dataclass(frozen=True)
class KernelModel:
    """In-plane MTF of a reconstruction kernel: Gaussian core ``core_mm`` times a boost ``1 + boost*(1 - G_edge)``."""

    core_mm: float
    """SD of the Gaussian core of the point-spread function (mm)."""
    boost: float
    """High-frequency gain of the unsharp mask (0: none; edge overshoot grows with it)."""
    edge_mm: float
    """SD (mm) of the unsharp mask's blur: the boost acts above ~1/(2 pi edge_mm)."""

    def mtf(self, f: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return kernel_mtf(f, self.core_mm, self.boost, self.edge_mm)


KERNEL_MODELS = {
    "smooth": KernelModel(core_mm=0.50, boost=0.0, edge_mm=0.0),  # MTF50 0.37 mm^-1 (B30f/STANDARD-like)
    "medium": KernelModel(core_mm=0.40, boost=0.3, edge_mm=0.8),
    "sharp": KernelModel(core_mm=0.30, boost=0.7, edge_mm=0.8),  # peak MTF 1.4 near 0.45 mm^-1 (B70f/LUNG-like)
}
"""Kernel classes of the generator (calibrated to published MTF50 ranges: smooth 0.3-0.4, sharp > 0.6 mm^-1)."""
NOISE_APERTURE_PX = 0.5
"""SD (pixels) of the interpolation aperture in the noise power spectrum."""
PIXEL_APERTURE_PX = 0.425
"""SD (pixels) of the in-plane system blur (one pixel FWHM: the detector/pixel aperture)."""
SIGMA_SMOOTH_150_HU = 20.0
"""Smooth-kernel noise SD at 150 effective mAs and a 0.7 x 0.7 x 1 mm voxel (standard-dose chest CT)."""
MAS_RANGE = (75.0, 300.0)
"""Effective mAs range (log-uniform): smooth-kernel noise 14-28 HU at the nominal voxel."""
NOMINAL_PIXEL_MM = 0.7
COARSE_GRID_MM = 1.5
"""Grids with coarser pixels (the demo's 2.5-3 mm) apply the kernel's Gaussian core spatially."""
VOXEL_NOISE_EXPONENT = 0.25
"""Noise SD scales as (nominal voxel / voxel)^this (see the module docstring)."""

SCANNERS = (  # manufacturer, model, smooth kernel, sharp kernel
    ("SIEMENS", "SOMATOM Definition Flash", "B31f", "B70f"),
    ("GE MEDICAL SYSTEMS", "LightSpeed VCT", "STANDARD", "LUNG"),
    ("Philips", "Brilliance 64", "B", "L"),
    ("TOSHIBA", "Aquilion ONE", "FC13", "FC52"),
)
SCANNER_AIR_OFFSET_HU = {"SIEMENS": 0.0, "GE MEDICAL SYSTEMS": -8.0, "Philips": 6.0, "TOSHIBA": -12.0}
"""Additive CT-number error of each scanner model (its air reads -1000 + offset)."""
SCANNER_FLOOR_HU = {"SIEMENS": -1024, "GE MEDICAL SYSTEMS": -1024, "Philips": -1000, "TOSHIBA": -1024}
"""Lowest CT number each scanner model stores."""
FULL_SLICE_SPACINGS_MM = (0.625, 0.75, 0.8, 1.0, 1.25)


def _model(kernel: str | KernelModel) -> KernelModel:
    return KERNEL_MODELS[kernel] if isinstance(kernel, str) else kernel


def _nps(kernel: str | KernelModel, f: npt.NDArray[np.float64], pixel_mm: float) -> npt.NDArray[np.float64]:
    return fbp_nps(f, _model(kernel).mtf(f), NOISE_APERTURE_PX * pixel_mm)


@lru_cache(maxsize=None)
def kernel_noise_factor(kernel: str | KernelModel) -> float:
    """Noise SD of ``kernel`` over that of ``smooth`` at the same dose (2-D NPS integrals, 0.7 mm pixels)."""
    n = 256
    fy = np.fft.fftfreq(n, d=NOMINAL_PIXEL_MM)
    f = np.hypot(fy[:, None], fy[None, :])
    return float(math.sqrt(_nps(kernel, f, NOMINAL_PIXEL_MM).sum() / _nps("smooth", f, NOMINAL_PIXEL_MM).sum()))


def noise_sd_hu(kernel: str | KernelModel, mas: float, spacing_mm: tuple[float, float, float]) -> float:
    """Noise SD (HU) of ``kernel`` at ``mas`` effective mAs on a grid of ``spacing_mm`` (z, y, x)."""
    dz, dy, dx = spacing_mm
    sigma = SIGMA_SMOOTH_150_HU * math.sqrt(150.0 / mas) * kernel_noise_factor(kernel)
    return sigma * (NOMINAL_PIXEL_MM * NOMINAL_PIXEL_MM * 1.0 / (dx * dy * dz)) ** VOXEL_NOISE_EXPONENT


def sample_acquisition(rng: np.random.Generator, *, size: str, kernel: str, frame: Frame,
                       p: dict[str, Any]) -> dict[str, Any]:
    """Output grid, model grid, scanner, kernel name, dose, noise and storage parameters."""
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
    mas = float(math.exp(math.log(MAS_RANGE[0]) + rng.uniform() * math.log(MAS_RANGE[1] / MAS_RANGE[0])))
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
        "kernel": kernel, "kernel_names": {"smooth": k_smooth, "sharp": k_sharp},
        "kernel_name": k_smooth if kernel == "smooth" else k_sharp,
        "mas": mas, "noise_hu": noise_sd_hu(kernel, mas, spacing),
        "air_offset_hu": SCANNER_AIR_OFFSET_HU[manufacturer], "floor_hu": SCANNER_FLOOR_HU[manufacturer],
        "fov_padding": fov_padding,
    }


def kernel_filter(shape_yx: tuple[int, int], pixel_mm: tuple[float, float],
                  kernel: str | KernelModel, *, with_core: bool = True) -> npt.NDArray[np.float64] | None:
    """rfft2-domain in-plane transfer function of the kernel: its MTF (core no narrower than the pixel
    aperture) or, with ``with_core=False``, its boost alone (None when there is nothing to apply)."""
    k = _model(kernel)
    if not with_core and k.boost <= 0:
        return None
    core = max(k.core_mm, PIXEL_APERTURE_PX * min(pixel_mm)) if with_core else 0.0
    fy = np.fft.fftfreq(shape_yx[0], d=pixel_mm[0])[:, None]
    fx = np.fft.rfftfreq(shape_yx[1], d=pixel_mm[1])[None, :]
    return KernelModel(core, k.boost, k.edge_mm).mtf(np.hypot(fy, fx))


def noise_filter(shape_yx: tuple[int, int], pixel_mm: tuple[float, float], kernel: str | KernelModel) -> npt.NDArray[np.float64]:
    """rfft2-domain amplitude filter turning unit white noise into unit-variance noise of ``kernel``'s NPS."""
    fy = np.fft.fftfreq(shape_yx[0], d=pixel_mm[0])[:, None]
    fx = np.fft.rfftfreq(shape_yx[1], d=pixel_mm[1])[None, :]
    amp = np.sqrt(_nps(kernel, np.hypot(fy, fx), min(pixel_mm)))
    # unit variance: Parseval over the full (two-sided) spectrum of the rfft half-plane
    weights = np.full(amp.shape[1], 2.0)
    weights[0] = 1.0
    if shape_yx[1] % 2 == 0:
        weights[-1] = 1.0
    power = float((amp**2 * weights[None, :]).sum()) / (shape_yx[0] * shape_yx[1])
    return amp / math.sqrt(power)


def filter_slices(vol: npt.NDArray[np.float32], transfer: npt.NDArray[np.float64], *,
                  slab: int = 16) -> npt.NDArray[np.float32]:
    """Multiply every axial slice's spectrum by ``transfer`` (rfft2 layout), in place, slab by slab."""
    for k in range(0, vol.shape[0], slab):
        part = vol[k : k + slab]
        spec = np.fft.rfft2(part, axes=(1, 2))
        spec *= transfer[None]
        part[...] = np.fft.irfft2(spec, s=part.shape[1:], axes=(1, 2)).astype(np.float32)
    return vol


def reconstruct(blurred: npt.NDArray[np.float32], white: npt.NDArray[np.float32], *, kernel: str | KernelModel,
                noise_hu: float, pixel_mm: tuple[float, float], air_offset_hu: float = 0.0,
                floor_hu: int = HU_MIN) -> npt.NDArray[np.int16]:
    """One reconstruction: ``blurred`` (noise-free, system blur applied) through ``kernel``'s MTF,
    plus ``white`` shaped by its NPS and scaled to ``noise_hu``, offset, rounded and clipped to int16."""
    shape_yx = blurred.shape[1:]
    if min(pixel_mm) > COARSE_GRID_MM:
        # coarse (demo) grid: the point-spread is the pixel aperture, a spatial Gaussian as the
        # generator always applied it there (the demo cohort's images and scores stay as they were)
        core = max(_model(kernel).core_mm, PIXEL_APERTURE_PX * min(pixel_mm))
        img = ndi.gaussian_filter(blurred, (0.0, core / pixel_mm[0], core / pixel_mm[1]), mode="nearest",
                                  output=np.float32)
        transfer = kernel_filter(shape_yx, pixel_mm, kernel, with_core=False)
    else:
        img, transfer = blurred.copy(), kernel_filter(shape_yx, pixel_mm, kernel)
    if transfer is not None:
        img = filter_slices(img, transfer)
    noise = filter_slices(white.copy(), noise_filter(shape_yx, pixel_mm, kernel))
    img += np.float32(noise_hu) * noise
    img += np.float32(air_offset_hu)
    np.rint(img, out=img)
    np.clip(img, max(HU_MIN, floor_hu), HU_MAX, out=img)
    return img.astype(np.int16)


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
            acq: dict[str, Any], rng: np.random.Generator, *, kernels: tuple[str, ...] | None = None):
    """System blur, then one reconstruction per kernel sharing one white-noise field.

    Returns ``(images, lungs uint8, labels uint8)`` on the output grid, ``images`` a dict kernel
    class -> int16 HU (default: ``acq['kernel']`` only).
    """
    shape = tuple(acq["shape"])
    dz, sy, sx = acq["spacing_mm"]
    if tuple(hu.shape) != shape:
        # the ~2.5 mm model grid is coarser than the slice profile: the trilinear upsampling is
        # the through-plane blur; the kernel and the pixel aperture act in-plane below
        hu = _upsample_linear(ndi.gaussian_filter(hu, 0.6, mode="nearest"), shape)  # anti-aliased
        lungs = _upsample_nearest(lungs, shape)
        labels = _upsample_nearest(labels, shape)
    else:
        hu = ndi.gaussian_filter(hu, (acq["slice_thickness_mm"] * FWHM_TO_SIGMA / dz, 0.0, 0.0), mode="nearest",
                                 output=np.float32)
    white = rng.standard_normal(shape, dtype=np.float32)
    images = {}
    for kernel in kernels or (acq["kernel"],):
        image = reconstruct(hu, white, kernel=kernel, noise_hu=noise_sd_hu(kernel, acq["mas"], acq["spacing_mm"]),
                            pixel_mm=(sy, sx), air_offset_hu=acq["air_offset_hu"], floor_hu=acq["floor_hu"])
        if acq["fov_padding"]:
            n = shape[1]
            jj, ii = np.mgrid[0:n, 0:n]
            r = (n - 1) / 2.0
            image[:, (jj - r) ** 2 + (ii - r) ** 2 > (r + 0.5) ** 2] = HU_FOV_PADDING
        images[kernel] = image
    return images, lungs, labels
