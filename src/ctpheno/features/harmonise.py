r"""Noise / kernel harmonisation of lung density: measure the noise texture, filter down to a reference.

A sharp reconstruction kernel (Siemens B60f/B70f, GE LUNG/BONE, Philips D/L/YA, Canon FC5x)
adds high-frequency noise and edge overshoot; both widen the lung HU histogram, so LAA-950
rises and Perc15 falls (Boedeker et al., Radiology 2004; Gallardo-Estrella et al., Eur Radiol
2016: 7.7 +- 2.7 pp LAA-950 between kernels in COPDGene). Here the adjusted density (``*_adj``
columns) is measured on an image whose noise has been brought down to
``features.qct.harmonisation.reference_noise_hu`` by an in-plane Gaussian filter, when (and only
when) the measured noise exceeds it:

.. math::

    \sigma_f = \min\{\sigma \ge 0 : \sigma_n\, r(\sigma) \le \sigma_{ref}\}, \qquad
    r(\sigma)^2 = \sum_{\Delta} \rho(\Delta)\, (g_\sigma \star g_\sigma)(\Delta)

where :math:`\sigma_n` is the measured noise (``noise_hu``, tracheal air,
:mod:`ctpheno.features.calibration`), :math:`g_\sigma` the discrete in-plane Gaussian kernel that
is applied (the one ``scipy.ndimage.gaussian_filter`` uses), :math:`g \star g` its
autocorrelation and :math:`\rho(\Delta)` the in-plane **noise autocorrelation** of this scan
(the Fourier pair of its normalised noise power spectrum). :math:`r(\sigma)` is the factor by
which filtering shrinks *this scan's* noise: for white noise it falls like
:math:`1/(2\sqrt{\pi}\sigma)`, for the correlated noise of a smooth kernel much more slowly, so a
fixed filter per kernel name would over- or under-smooth; the measured :math:`\rho` makes the
filter follow the physics of the reconstruction, whatever its vendor or name.

Noise autocorrelation (:func:`noise_autocorrelation`): the difference of two adjacent slices
cancels the anatomy and keeps the noise (whose in-plane correlation is the kernel's); it is
taken only in soft tissue (-250..250 HU in both slices, eroded away from edges; no censoring at
the air floor, unlike tracheal air in scans stored with an air floor) and the masked
autocorrelation is normalised by the mask's own autocorrelation (unbiased for irregular
regions). The noise texture is summarised by the NPS mean frequency ``noise_fav_lpmm``
(Solomon, Christianson & Samei, Med Phys 2012): smooth kernels ~0.2-0.3 mm^-1, sharp lung
kernels 0.4-0.7 mm^-1.

**Kernel matching** (:mod:`ctpheno.features.kernel_fit`) lowers the target to the noise the
reference kernel would give at the scan's dose where the filtered back-projection model fits the
measured noise texture, and finds the kernel's edge boost, which the filter first undoes
(:func:`filter_components`).

Filtering is in-plane only (the kernel is an in-plane property; slice thickness sets the
through-plane response) and never sharpens: a scan at or below its target is unchanged.
Limits, measured numbers and the check on kernels outside the fitted family:
``docs/methods_features.md``.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy.fft import next_fast_len

from .kernel_fit import BOOST_EDGE_MM
from .noise_texture import NoiseTexture

GAUSS_TRUNCATE = 3.0
"""Gaussian kernels are cut at this many standard deviations (as ``scipy.ndimage`` with ``truncate``)."""
SOFT_TISSUE_HU = (-250.0, 250.0)
"""HU range of the homogeneous soft tissue (fat, muscle, blood, organs) used for the noise texture."""
MAX_LAG_PX = 20
"""Largest in-plane lag (pixels) of the measured noise autocorrelation."""
N_SLICE_PAIRS = 6
"""Adjacent-slice pairs used for the noise autocorrelation (spread over the lungs' extent)."""
MIN_TEXTURE_PIXELS = 2000
"""Fewer soft-tissue pixels than this: the noise texture is not measured (white noise assumed)."""
OUTLIER_MADS = 5.0
"""Slice-difference pixels further than this many MADs from the median are anatomy, not noise."""
LOCAL_MEAN_PX = 7
"""Box (pixels) of the local mean that tells anatomy from noise in a slice difference."""


def white_noise_texture(pixel_mm: tuple[float, float], *, max_lag_px: int = MAX_LAG_PX) -> NoiseTexture:
    """The texture of uncorrelated noise (used when none can be measured): a conservative filter."""
    rho = np.zeros((2 * max_lag_px + 1,) * 2)
    rho[max_lag_px, max_lag_px] = 1.0
    return NoiseTexture(rho, (float(pixel_mm[0]), float(pixel_mm[1])), 0)


def _pair_slices(lung_slices: npt.NDArray[np.intp], nz: int, n_pairs: int) -> list[int]:
    """Indices ``k`` (pairs ``k, k+1``) spread evenly over the lung's slices."""
    cand = lung_slices[lung_slices < nz - 1] if lung_slices.size else np.arange(nz - 1)
    if cand.size == 0:
        return []
    picks = np.unique(np.round(np.linspace(0, cand.size - 1, min(n_pairs, cand.size))).astype(int))
    return [int(cand[i]) for i in picks]


def noise_autocorrelation(
    slice_pairs: list[tuple[npt.NDArray[np.integer], npt.NDArray[np.integer]]],
    pixel_mm: tuple[float, float],
    *,
    max_lag_px: int = MAX_LAG_PX,
    soft_tissue_hu: tuple[float, float] = SOFT_TISSUE_HU,
) -> NoiseTexture:
    """Masked, normalised in-plane autocorrelation of the noise from adjacent-slice differences.

    For each pair ``(a, b)`` of adjacent axial slices, ``d = b - a`` inside the mask ``M`` of
    pixels in ``soft_tissue_hu`` in both slices (eroded by two pixels, outliers beyond
    :data:`OUTLIER_MADS` removed, mean removed). Summed over pairs,

    .. math:: R(\\Delta) = \\frac{\\sum_x d(x) d(x+\\Delta) M(x) M(x+\\Delta)}{\\sum_x M(x) M(x+\\Delta)},
              \\qquad \\rho = R / R(0),

    computed with zero-padded FFTs. The result's shape is ``(2L+1, 2L+1)``, ``L = max_lag_px``.
    """
    num = den = None
    n_pix = 0
    structure = np.ones((3, 3), bool)
    lo, hi = soft_tissue_hu
    for a, b in slice_pairs:
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        if a.shape != b.shape or a.ndim != 2:
            raise ValueError(f"slice pairs must be two 2-D arrays of one shape; got {a.shape} and {b.shape}")
        m = (a > lo) & (a < hi) & (b > lo) & (b < hi)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            continue
        crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))  # smaller FFTs
        a, b, m = a[crop], b[crop], m[crop]
        m = ndi.binary_erosion(m, structure=structure, iterations=2)
        if m.sum() < 64:
            continue
        d = b - a
        med = float(np.median(d[m]))
        mad = 1.4826 * float(np.median(np.abs(d[m] - med)))
        if mad <= 0:
            continue
        m &= np.abs(d - med) <= OUTLIER_MADS * mad
        m &= ~_anatomy(d, m)
        if m.sum() < 64:
            continue
        d = np.where(m, d - d[m].mean(), 0.0)
        shape = [next_fast_len(s + max_lag_px) for s in d.shape]
        fd = np.fft.rfft2(d, s=shape)
        fm = np.fft.rfft2(m.astype(np.float64), s=shape)
        cn = np.fft.irfft2(fd * np.conj(fd), s=shape)
        cm = np.fft.irfft2(fm * np.conj(fm), s=shape)
        lags = np.r_[-max_lag_px : max_lag_px + 1]
        sub_n = cn[np.ix_(lags % shape[0], lags % shape[1])]
        sub_m = cm[np.ix_(lags % shape[0], lags % shape[1])]
        num = sub_n if num is None else num + sub_n
        den = sub_m if den is None else den + sub_m
        n_pix += int(m.sum())
    if num is None or n_pix < MIN_TEXTURE_PIXELS:
        return white_noise_texture(pixel_mm, max_lag_px=max_lag_px)
    r = num / np.maximum(den, 1.0)
    r[den < 0.05 * den[max_lag_px, max_lag_px]] = 0.0  # lags too rarely inside the mask
    return NoiseTexture(r / r[max_lag_px, max_lag_px], (float(pixel_mm[0]), float(pixel_mm[1])), n_pix)


def _anatomy(d: npt.NDArray[np.float64], m: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Pixels whose local mean slice difference stands out: anatomy changing between the slices.

    The local mean over a :data:`LOCAL_MEAN_PX` box of noise alone scatters around zero; where it
    lies further than :data:`OUTLIER_MADS` robust SDs of that scatter, the slices differ by
    structure (an edge moving along z), not by noise.
    """
    w = ndi.uniform_filter(m.astype(np.float64), LOCAL_MEAN_PX)
    local = ndi.uniform_filter(np.where(m, d, 0.0), LOCAL_MEAN_PX) / np.maximum(w, 1e-9)
    vals = local[m]
    med = float(np.median(vals))
    mad = 1.4826 * float(np.median(np.abs(vals - med)))
    return np.abs(local - med) > OUTLIER_MADS * max(mad, 1e-9)


def scan_noise_texture(
    hu: npt.NDArray[np.integer],
    lung_slices: npt.NDArray[np.intp],
    spacing_mm: tuple[float, float, float],
    *,
    n_pairs: int = N_SLICE_PAIRS,
    max_lag_px: int = MAX_LAG_PX,
) -> NoiseTexture:
    """:func:`noise_autocorrelation` of ``n_pairs`` adjacent-slice pairs spread over ``lung_slices``.

    ``hu`` may be any array supporting ``hu[k]`` (NumPy, or dask: only the chosen slices are read).
    """
    ks = _pair_slices(np.asarray(lung_slices), int(hu.shape[0]), n_pairs)
    pairs = [(np.asarray(hu[k]), np.asarray(hu[k + 1])) for k in ks]
    return noise_autocorrelation(pairs, (float(spacing_mm[1]), float(spacing_mm[2])), max_lag_px=max_lag_px)


def gaussian_kernel1d(sigma_px: float, *, truncate: float = GAUSS_TRUNCATE) -> npt.NDArray[np.float64]:
    """The normalised 1-D Gaussian ``scipy.ndimage.gaussian_filter`` applies (radius ``int(truncate*sigma+0.5)``)."""
    if sigma_px <= 0:
        return np.ones(1)
    radius = int(truncate * float(sigma_px) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma_px)) ** 2)
    return w / w.sum()


def filter_components(sigma_mm: float, deboost: float = 0.0) -> list[tuple[float, float]]:
    """The harmonising filter as weighted in-plane Gaussians ``[(weight, sigma_mm), ...]``.

    ``(1 - g) G_sigma + g G_sqrt(sigma^2 + e^2)``: a Gaussian of ``sigma_mm`` after an inverse unsharp
    mask of weight ``g = deboost`` and width ``e`` = :data:`BOOST_EDGE_MM` (which undoes, to first
    order, a kernel boost ``beta`` when ``g = beta / (1 + beta)``). Sigma 0 is the identity.
    """
    if deboost <= 0:
        return [(1.0, sigma_mm)]
    return [(1.0 - deboost, sigma_mm), (deboost, math.hypot(sigma_mm, BOOST_EDGE_MM))]


def _kernel_px(sigma_mm: float, pixel_mm: float) -> npt.NDArray[np.float64]:
    return gaussian_kernel1d(sigma_mm / pixel_mm) if sigma_mm > 0 else np.ones(1)


def _lags(ac: npt.NDArray[np.float64], lag: int) -> npt.NDArray[np.float64]:
    """A centred correlation cut or zero-padded to lags -lag..lag (rho is taken as 0 beyond)."""
    half = ac.size // 2
    return ac[half - lag : half + lag + 1] if half > lag else np.pad(ac, lag - half)


def noise_reduction(texture: NoiseTexture, sigma_mm: float, deboost: float = 0.0) -> float:
    """Factor ``r`` by which the harmonising filter (:func:`filter_components`) scales this scan's noise SD.

    .. math:: r^2 = \sum_{i,j} w_i w_j \sum_\Delta \rho(\Delta)\, (g_i \star g_j)(\Delta)

    with the discrete separable Gaussians :math:`g_i` the filter applies.
    """
    comps = filter_components(sigma_mm, deboost)
    if sigma_mm <= 0 and deboost <= 0:
        return 1.0
    lag = texture.rho.shape[0] // 2
    total = 0.0
    for wi, si in comps:
        for wj, sj in comps:
            cy, cx = (_lags(np.correlate(_kernel_px(si, px), _kernel_px(sj, px), mode="full"), lag)
                      for px in texture.pixel_mm)
            total += wi * wj * float(np.sum(texture.rho * cy[:, None] * cx[None, :]))
    return math.sqrt(max(total, 0.0))


def harmonising_sigma_mm(
    noise_hu: float, reference_noise_hu: float, texture: NoiseTexture, *, max_sigma_mm: float,
    deboost: float = 0.0,
) -> float:
    """In-plane Gaussian sigma (mm) bringing ``noise_hu`` down to ``reference_noise_hu``.

    0 when the noise is at or below the reference (or unknown) once the de-boost (if any) is
    applied; ``inf`` when even ``max_sigma_mm`` does not reach it (the caller flags the scan and
    filters with ``max_sigma_mm``). Found by bisection on the monotone :func:`noise_reduction`
    (to 0.005 mm).
    """
    if not (math.isfinite(noise_hu) and reference_noise_hu > 0):
        return 0.0
    target = reference_noise_hu / noise_hu
    if noise_reduction(texture, 0.0, deboost) <= target:
        return 0.0
    if noise_reduction(texture, max_sigma_mm, deboost) > target:
        return math.inf
    lo, hi = 0.0, float(max_sigma_mm)
    while hi - lo > 0.005:
        mid = 0.5 * (lo + hi)
        if noise_reduction(texture, mid, deboost) > target:
            lo = mid
        else:
            hi = mid
    return hi


def filter_in_plane(
    hu: npt.NDArray[np.integer], sigma_mm: float, spacing_mm: tuple[float, float, float], deboost: float = 0.0
) -> npt.NDArray[np.float32]:
    """The harmonising filter (:func:`filter_components`) in-plane only, float32, edges 'nearest'."""
    f = np.asarray(hu, dtype=np.float32)
    out = None
    for w, s in filter_components(sigma_mm, deboost):
        if s <= 0:
            part = f.copy() if w != 1.0 else f
        else:
            sig = (0.0, s / float(spacing_mm[1]), s / float(spacing_mm[2]))
            part = ndi.gaussian_filter(f, sig, mode="nearest", truncate=GAUSS_TRUNCATE, output=np.float32)
        if w != 1.0:
            part *= np.float32(w)
        out = part if out is None else out + part
    return out


def filter_halo_px(sigma_mm: float, spacing_mm: tuple[float, float, float],
                   deboost: float = 0.0) -> tuple[int, int, int]:
    """Kernel reach in voxels (z, y, x) of :func:`filter_in_plane` (halo for blockwise filtering)."""
    widest = max(s for _, s in filter_components(sigma_mm, deboost))
    if widest <= 0:
        return (0, 0, 0)
    return (0,) + tuple(int(GAUSS_TRUNCATE * widest / float(s) + 0.5) for s in spacing_mm[1:])  # type: ignore[return-value]
