r"""The kernel model behind kernel matching: fit a filtered back-projection noise model to a scan's noise texture.

An absolute noise reference brings a sharp scan to the
reference noise, not to the noise its smooth twin has at the same dose (a high-dose sharp scan
stays too noisy). Filtered back-projection makes the noise power spectrum the ramp times the
squared MTF of the kernel (Hanson 1979; Kijewski & Judy, Med Phys 1987),

.. math:: \mathrm{NPS}(f) = c\, f\, \mathrm{MTF}(f)^2\, e^{-2\pi^2 (a\Delta x)^2 f^2}, \qquad
          \mathrm{MTF}(f) = e^{-2\pi^2 s^2 f^2}\big(1 + \beta(1 - e^{-2\pi^2 e^2 f^2})\big)

(a Gaussian core ``s`` and an unsharp-mask boost ``beta``, the edge enhancement of sharp
kernels; the boost width ``e`` = 0.8 mm and the interpolation aperture ``a`` = 0.5 pixel are
fixed). ``s`` and ``beta`` are fitted by least squares to the measured autocorrelation at lags up
to :data:`FIT_LAGS_PX`; the same dose through the reference kernel (Gaussian core
``reference_core_mm``, MTF50 0.37 mm^-1 at 0.5 mm: B30f/STANDARD-like) would give the noise
:math:`\kappa \sigma_n` with :math:`\kappa^2 = \int \mathrm{NPS}_{ref} / \int \mathrm{NPS}_{fit}`
(the ramp's constant ``c`` cancels). The target is then

.. math:: \sigma_t = \min(\sigma_{ref},\ \kappa\,\sigma_n) \quad \text{if the fit holds
          (RMS residual} \le \text{MAX\_FIT\_RMS) and } \kappa < \text{KAPPA\_MATCH}, \quad
          \sigma_{ref} \text{ otherwise.}

Where the model does not hold (iterative reconstruction, overlapping slices with z-interpolation,
the real Philips-D scan in ``../shared/data``: residual 0.07) the absolute reference alone applies.

A Gaussian matched to the noise leaves a sharp kernel's boosted mid frequencies (darker hole
edges, +1-2 pp LAA-950 on low-dose phantoms); when the fit holds and finds a boost, the filter
first undoes it to first order with an inverse unsharp mask,
:math:`(1-g)\,\delta + g\,G_e` with :math:`g = \beta/(1+\beta)` (the boost
:math:`1 + \beta(1 - G_e)` times it is :math:`1 + O((\beta(1-G_e))^2)`), and the Gaussian
then brings the noise of the result to the target
(:func:`ctpheno.features.harmonise.filter_components`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .noise_texture import NoiseTexture

BOOST_EDGE_MM = 0.8
"""Width (SD, mm) of the unsharp mask of the kernel model (fixed; the boost's strength is fitted)."""
APERTURE_PX = 0.5
"""Interpolation aperture (SD, pixels) of the noise power spectrum model."""
FIT_LAGS_PX = 5
"""Lags (pixels) of the autocorrelation the kernel model is fitted to (longer lags carry anatomy)."""
MAX_FIT_RMS = 0.02
"""Largest RMS residual of the autocorrelation fit for which kernel matching is trusted."""
MIN_BOOST = 0.05
"""Fitted boosts below this are treated as none (no de-boost)."""
KAPPA_MATCH = 0.9
"""Kernel matching applies when the reference kernel would have at most this fraction of the noise."""
MODEL_GRID = 128
"""Frequency grid (per axis) on which the model spectra are evaluated."""


def kernel_mtf(f: npt.NDArray[np.float64], core_mm: float, boost: float = 0.0,
               edge_mm: float = BOOST_EDGE_MM) -> npt.NDArray[np.float64]:
    """Gaussian-core x unsharp-mask MTF of a reconstruction kernel at radial frequency ``f`` (mm^-1)."""
    g = np.exp(-2.0 * math.pi**2 * core_mm**2 * f**2)
    return g * (1.0 + boost * (1.0 - np.exp(-2.0 * math.pi**2 * edge_mm**2 * f**2)))


def fbp_nps(f: npt.NDArray[np.float64], mtf: npt.NDArray[np.float64], aperture_mm: float) -> npt.NDArray[np.float64]:
    """Filtered back-projection noise power spectrum shape: ramp x MTF^2 x interpolation aperture."""
    return f * mtf**2 * np.exp(-2.0 * math.pi**2 * aperture_mm**2 * f**2)


@dataclass(frozen=True)
class KernelFit:
    """The kernel model fitted to a scan's noise texture (see the module docstring)."""

    core_mm: float
    boost: float
    rms: float
    """RMS residual of the autocorrelation fit."""
    kappa: float
    """Noise SD through the reference kernel over this scan's, at the same dose."""

    @property
    def holds(self) -> bool:
        return math.isfinite(self.rms) and self.rms <= MAX_FIT_RMS


def _model(pixel_mm: tuple[float, float], core_mm: float, boost: float, lags: int):
    fy = np.fft.fftfreq(MODEL_GRID, d=pixel_mm[0])[:, None]
    fx = np.fft.fftfreq(MODEL_GRID, d=pixel_mm[1])[None, :]
    f = np.hypot(fy, fx)
    nps = fbp_nps(f, kernel_mtf(f, core_mm, boost), APERTURE_PX * min(pixel_mm))
    acf = np.real(np.fft.ifft2(nps))
    idx = np.r_[-lags : lags + 1] % MODEL_GRID
    return acf[np.ix_(idx, idx)] / acf[0, 0], float(nps.sum())


def fit_kernel(texture: NoiseTexture, *, reference_core_mm: float) -> KernelFit:
    """Least-squares fit of (core, boost) of the FBP model to ``texture`` and the noise ratio kappa."""
    from scipy.optimize import least_squares

    if not texture.measured:
        return KernelFit(math.nan, math.nan, math.nan, math.nan)
    lag = texture.rho.shape[0] // 2
    n = min(FIT_LAGS_PX, lag)
    meas = texture.rho[lag - n : lag + n + 1, lag - n : lag + n + 1]

    def residual(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return (_model(texture.pixel_mm, p[0], p[1], n)[0] - meas).ravel()

    res = least_squares(residual, x0=[0.4, 0.2], bounds=([0.05, 0.0], [1.5, 3.0]))
    core, boost = (float(v) for v in res.x)
    total = _model(texture.pixel_mm, core, boost, n)[1]
    ref = _model(texture.pixel_mm, reference_core_mm, 0.0, n)[1]
    return KernelFit(core, boost, float(math.sqrt(np.mean(res.fun**2))), math.sqrt(ref / total))


def target_noise_hu(noise_hu: float, reference_noise_hu: float, fit: KernelFit | None) -> float:
    """The noise the adjusted density is measured at: the reference, or lower by kernel matching."""
    if fit is not None and fit.holds and fit.kappa < KAPPA_MATCH and math.isfinite(noise_hu):
        return min(reference_noise_hu, fit.kappa * noise_hu)
    return reference_noise_hu


def deboost_weight(fit: KernelFit | None) -> float:
    """Weight ``beta / (1 + beta)`` of the inverse unsharp mask for a fitted kernel boost (0 unless the fit holds)."""
    if fit is None or not fit.holds or not math.isfinite(fit.boost) or fit.boost < MIN_BOOST:
        return 0.0
    return fit.boost / (1.0 + fit.boost)
