"""The in-plane noise texture of a scan: what :mod:`~ctpheno.features.harmonise` measures and
:mod:`~ctpheno.features.kernel_fit` fits its kernel model to (kept here, below both)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class NoiseTexture:
    """In-plane noise autocorrelation of one scan.

    Attributes
    ----------
    rho : ndarray, shape (2L+1, 2L+1)
        Normalised autocorrelation :math:`\\rho(\\Delta y, \\Delta x)`, ``rho[L, L] == 1``.
    pixel_mm : (float, float)
        In-plane pixel size (y, x) in mm.
    n_pixels : int
        Soft-tissue slice-difference pixels it was measured on (0: not measured, white noise assumed).
    """

    rho: npt.NDArray[np.float64]
    pixel_mm: tuple[float, float]
    n_pixels: int

    @property
    def measured(self) -> bool:
        return self.n_pixels > 0

    def fav_lpmm(self) -> float:
        """Mean spatial frequency of the noise power spectrum (mm^-1), NaN when not measured."""
        if not self.measured:
            return math.nan
        nps = np.abs(np.fft.fft2(np.fft.ifftshift(self.rho * _hann2(self.rho.shape))))
        fy = np.fft.fftfreq(self.rho.shape[0], d=self.pixel_mm[0])
        fx = np.fft.fftfreq(self.rho.shape[1], d=self.pixel_mm[1])
        f = np.hypot(fy[:, None], fx[None, :])
        return float((f * nps).sum() / nps.sum())


def _hann2(shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """Separable Hann taper centred on the zero lag (reduces leakage of the truncated autocorrelation)."""
    wy = np.hanning(shape[0] + 2)[1:-1]
    wx = np.hanning(shape[1] + 2)[1:-1]
    return wy[:, None] * wx[None, :]
