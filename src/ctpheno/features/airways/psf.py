r"""The scan's blur, measured on its own trachea: the :math:`\sigma` of the blurred-ring correction.

In-plane: the inner edge of the trachea (air against its thick, cartilage-supported wall) is a
step edge of the scanner's in-plane point-spread function — its radius (8-10 mm) is many times the
blur, so curvature is negligible (:math:`\sigma^2/2a < 0.02` mm). Along every valid ray of the
trachea's cross-sections (:mod:`.sections`), the profile is read at :math:`\Delta s \in [-1.5,
1.0]` mm around the ray's own FWHM lumen edge; the mean over rays (each aligned on the edge of its
two neighbours, so that its own noise does not sharpen the mean) is fitted with an error function
:math:`A + B\,\Phi\big((\Delta s - c)/\sigma_{xy}\big)` (:func:`scipy.optimize.curve_fit`) with
:math:`A` the median air of the trachea's centre, over the points more than :data:`CLIP_MARGIN_HU`
above it: scanners clip noisy air at their lowest value (-1024 or -1000 HU), which raises the mean
of the air side of the edge and would steepen it. The estimate includes the reconstruction kernel,
the voxel size and the trilinear sampling of the rays — everything the wall measurement sees. This
is what makes the correction follow the kernel of a scan it has never seen, instead of a table of
kernel names.

Through-plane: the slice sensitivity profile, taken as a Gaussian whose FWHM is the slice
thickness (the nominal thickness is the SSP's FWHM), plus the trilinear sampling between
slices (a triangle kernel, variance :math:`\Delta z^2/6`):
:math:`\sigma_z^2 = (\mathrm{FWHM}\to\sigma \cdot \text{thickness})^2 + \Delta z^2 / 6`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ...vocab import Spacing, check_spacing
from .graph import AirwayTree
from .sections import SectionSettings, fwhm_edges, plane_basis, sample_rays, section_frames

FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
EDGE_WINDOW_MM = (-1.5, 1.0)
"""Window around the trachea's lumen edge used for the edge-spread fit."""
MIN_EDGE_CONTRAST_HU = 500.0
"""Least wall-minus-lumen contrast of a trachea ray used for the edge fit (air against soft tissue: ~1000 HU)."""
CLIP_MARGIN_HU = 200.0
"""Edge points fitted lie this far above the air level: noisy air is clipped at the scanner's lowest HU."""
MIN_TRACHEA_RADIUS_MM = 4.0
TOP_SKIP_RADII = 1.5
"""Trachea sections start this many radii below its top end."""
"""The root branch is taken as the trachea (a step edge) only when its inscribed radius is at least this."""


def through_plane_sigma_mm(slice_thickness_mm: float, spacing_z_mm: float) -> float:
    """:math:`\\sigma_z` from the slice thickness and the slice spacing (module doc)."""
    return math.sqrt((FWHM_TO_SIGMA * slice_thickness_mm) ** 2 + spacing_z_mm**2 / 6.0)


def edge_sigma_mm(image: npt.NDArray, tree: AirwayTree, spacing_mm: Spacing, *, sigma_z_mm: float,
                  settings: SectionSettings = SectionSettings()) -> float:
    """In-plane blur SD (mm) from the trachea's lumen edge; NaN without a usable trachea.

    A tilted trachea's sections are not axial: the fitted :math:`\\sigma_{sec}` mixes in the
    through-plane blur by the mean squared z-component :math:`m` of the ray directions, so
    :math:`\\sigma_{xy}^2 = (\\sigma_{sec}^2 - m\\,\\sigma_z^2)/(1 - m)`.
    """
    from scipy.optimize import curve_fit
    from scipy.special import ndtr

    sp = check_spacing(spacing_mm)
    if not len(tree.branches):
        return math.nan
    r0 = float(tree.branches["inscribed_radius_mm"].iat[0])
    if r0 < MIN_TRACHEA_RADIUS_MM:
        return math.nan
    # away from its top (where the image or the segmentation cuts it, the skeleton bends) and from the
    # carina; cut orthogonally to the trachea's axis (its principal direction): an oblique cut would
    # stretch the edge
    line = tree.centrelines[0]
    c, _ = section_frames(line, sp, start_mm=TOP_SKIP_RADII * r0, end_mm=1.5 * r0, tangent_half_mm=r0, step_mm=1.0)
    if len(c) == 0:
        return math.nan
    pts = line * np.asarray(sp)
    axis = np.linalg.svd(pts - pts.mean(0), full_matrices=False)[2][0]
    u, v = plane_basis(np.repeat(axis[None], len(c), 0))
    ds = 0.05
    s = np.arange(0.0, 1.3 * r0 + settings.wall_search_mm + settings.outer_window_mm + 1.0, ds)
    prof = sample_rays(np.asarray(image, np.float32), c, u, v, sp, n_rays=settings.n_rays, s=s)
    # each ray is aligned on the edge of its two neighbours' mean: aligned on its own (noisy) crossing,
    # the mean profile would be sharpened by its own noise at the alignment point
    nb = 0.5 * (np.roll(prof, 1, axis=1) + np.roll(prof, -1, axis=1))
    inner, _, low, peak, _, _ = fwhm_edges(nb, s, np.full(prof.shape[:2], r0), settings)
    # only the lumen edge matters here: the mediastinum outside the trachea is no parenchyma
    ok = np.isfinite(inner) & (peak - low >= MIN_EDGE_CONTRAST_HU)
    if ok.sum() < 10:
        return math.nan
    d = np.arange(EDGE_WINDOW_MM[0], EDGE_WINDOW_MM[1] + ds / 2, ds)
    at = (inner[ok][:, None] + d[None, :]) / ds
    rows = np.repeat(np.arange(int(ok.sum())), len(d))
    vals = ndi.map_coordinates(prof[ok], np.stack([rows, at.ravel()]), order=1).reshape(-1, len(d))
    mean = vals.mean(0)
    # the lumen level from the median of the central air (the median ignores the clipping of noisy air at
    # the scanner's lowest value, which raises the mean); the fit then uses only points well above it
    air = float(np.median(prof[ok][:, s <= 0.5 * r0]))
    use = mean > air + CLIP_MARGIN_HU
    if use.sum() < 6:
        return math.nan

    def model(x, b, c0, sig):
        return air + b * ndtr((x - c0) / sig)

    try:
        popt, _ = curve_fit(model, d[use], mean[use], p0=(float(mean[-1] - air), 0.0, 0.4),
                            bounds=([0, -0.5, 0.05], [3000, 0.5, 2.0]))
    except (RuntimeError, ValueError):
        return math.nan
    m = float(np.mean(0.5 * (u[:, 0] ** 2 + v[:, 0] ** 2)))
    sec2 = float(popt[2]) ** 2
    return math.sqrt(max(sec2 - m * sigma_z_mm**2, 0.25 * sec2) / (1.0 - m))


def psf_sigma_mm(image: npt.NDArray, tree: AirwayTree, spacing_mm: Spacing, *, slice_thickness_mm: float | None = None,
                 psf_fwhm_mm: float | None = None, fallback_fwhm_mm: float = 1.0) -> tuple[float, float, float, str]:
    """PSF SD along (z, y, x) in mm and where the in-plane value came from.

    ``psf_fwhm_mm`` given: that in-plane FWHM. Otherwise the trachea's edge
    (:func:`edge_sigma_mm`); without a usable trachea, ``fallback_fwhm_mm``. The third value of the
    source string is one of ``"given"``, ``"trachea"``, ``"fallback"``.
    """
    sp = check_spacing(spacing_mm)
    thick = float(slice_thickness_mm) if slice_thickness_mm is not None else sp[0]
    sz = through_plane_sigma_mm(thick, sp[0])
    if psf_fwhm_mm is not None:
        sxy, src = FWHM_TO_SIGMA * float(psf_fwhm_mm), "given"
    else:
        sxy, src = edge_sigma_mm(image, tree, sp, sigma_z_mm=sz), "trachea"
        if not math.isfinite(sxy):
            sxy, src = FWHM_TO_SIGMA * fallback_fwhm_mm, "fallback"
    return sz, sxy, sxy, src


__all__ = ["FWHM_TO_SIGMA", "edge_sigma_mm", "psf_sigma_mm", "through_plane_sigma_mm"]
