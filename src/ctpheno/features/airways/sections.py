r"""Cross-sections orthogonal to each branch and their lumen and wall by FWHM of ray profiles.

Along each branch's centreline (smoothed over ±1 mm, resampled by arc length) a section
centre is placed every ``step_mm``, leaving out the ends near junctions (the first
:math:`r_{parent} + r` and the last :math:`2r` of a branch with children, :math:`r` of a terminal
one; :math:`r` the inscribed radius). At each centre the tangent :math:`t` (central
difference over ±max(1.5 mm, 1.5 r)) and two unit vectors :math:`u, v \perp t` span the section
plane; ``n_rays`` rays :math:`c + s(\cos\theta\,u + \sin\theta\,v)` are sampled every
``ray_step_mm`` by trilinear interpolation (:func:`scipy.ndimage.map_coordinates`, order 1).

Per ray, the full width at half maximum (Nakano et al. 2000): lumen level :math:`L` = the ray's
minimum out to its inscribed radius, wall peak :math:`P` = its maximum from there out to
``1.3 r + wall_search_mm``, outer level :math:`O` = its minimum over ``outer_window_mm`` past
the peak; the lumen edge is the first crossing of :math:`(L + P)/2` on the way out, the outer
edge the first crossing of :math:`(P + O)/2` past the peak (linear interpolation between
samples). A ray counts when :math:`P - L` and :math:`P - O` both exceed ``min_contrast_hu``
and :math:`O` is lung (below ``max_outer_hu``): a ray through an abutting artery or into the
mediastinum has no parenchyma past the wall and is dropped; so is a ray whose profile past the wall
rises again before the wall integral's reach (another structure), or that leaves the lung mask there
(the hilum and mediastinum, where no wall can be told from the tissue around it). Rays whose wall thickness is
further than ``max(0.3 mm, 30 %)`` from the section's median are outliers (an artery merged
with the wall, a neighbouring bronchus) and dropped too.

Two passes: the first re-centres the section on the centroid of its lumen edge points (the
skeleton is only voxel-accurate), the second measures. A section counts when at least
``min_valid_fraction`` of its rays do. Its FWHM radii :math:`a', b'` (medians over rays) are
then corrected for blur with the blurred-ring model (:mod:`.blur`): the section's blur
:math:`\sigma` is the scan's PSF projected on the section plane,
:math:`\sigma^2 = \tfrac12(u^\top\Sigma u + v^\top \Sigma v)` with
:math:`\Sigma = \mathrm{diag}(\sigma_z^2, \sigma_{xy}^2, \sigma_{xy}^2)`. From the corrected
radii :math:`a < b` (circle-equivalent): inner perimeter :math:`2\pi a`, lumen area
:math:`\pi a^2`, wall area :math:`\pi(b^2 - a^2)`, wall thickness :math:`b - a`, WA %
:math:`100\,(b^2 - a^2)/b^2`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi

from ...vocab import Spacing, check_spacing
from .blur import ring_profile
from .graph import AirwayTree

SECTION_COLUMNS = ("branch_id", "z_mm", "y_mm", "x_mm", "tz", "ty", "tx", "sigma_mm", "n_rays_valid", "valid",
                   "lumen_radius_fwhm_mm", "outer_radius_fwhm_mm", "lumen_radius_mm", "outer_radius_model_mm",
                   "outer_radius_mm")


@dataclass(frozen=True)
class SectionSettings:
    """Sampling and FWHM settings of :func:`measure_sections` (the defaults are the documented method)."""

    step_mm: float = 1.0
    n_rays: int = 36
    ray_step_mm: float = 0.1
    wall_search_mm: float = 3.0
    outer_window_mm: float = 3.0
    min_contrast_hu: float = 100.0
    max_outer_hu: float = -500.0
    min_valid_fraction: float = 0.5
    lumen_hu: float = -1000.0
    wall_hu: float = 40.0
    angular_smoothing: int = 1
    ray_smoothing_mm: float = 0.2


def section_frames(centreline: npt.NDArray[np.float64], spacing_mm: Spacing, *, start_mm: float, end_mm: float,
                   tangent_half_mm: float, step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Section centres (mm on the index grid, (z, y, x)) and unit tangents along a centreline.

    The centreline is smoothed (moving average over +-1 mm) and sampled every ``step_mm`` of arc
    length from ``start_mm`` to its length minus ``end_mm``; the tangent is the central difference
    over +-``tangent_half_mm``.
    """
    sp = np.asarray(spacing_mm, float)
    pts = np.asarray(centreline, float) * sp
    if len(pts) >= 2:
        seg = np.sqrt((np.diff(pts, axis=0) ** 2).sum(1))
        keep = np.r_[True, seg > 1e-9]
        pts, arc = pts[keep], np.r_[0.0, np.cumsum(seg)][keep]
    if len(pts) < 2:
        return np.zeros((0, 3)), np.zeros((0, 3))
    length = float(arc[-1])
    fine = np.arange(0.0, length + 1e-9, 0.25)
    dense = np.stack([np.interp(fine, arc, pts[:, k]) for k in range(3)], 1)
    dense = ndi.uniform_filter1d(dense, size=9, axis=0, mode="nearest")  # +-1 mm moving average
    stop = length - end_mm
    if stop < start_mm:
        return np.zeros((0, 3)), np.zeros((0, 3))
    n = int(math.floor((stop - start_mm) / step_mm)) + 1
    at = np.array([0.5 * (start_mm + stop)]) if n == 1 else np.linspace(start_mm, stop, n)
    point = lambda q: np.stack([np.interp(q, fine, dense[:, k]) for k in range(3)], 1)  # noqa: E731
    t = point(np.minimum(at + tangent_half_mm, length)) - point(np.maximum(at - tangent_half_mm, 0.0))
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-9)
    return point(at), t


def branch_frames(centreline, spacing_mm: Spacing, *, radius_mm: float, parent_radius_mm: float, has_children: bool,
                  step_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`section_frames` of a branch, clear of its junctions (module doc)."""
    return section_frames(centreline, spacing_mm, start_mm=parent_radius_mm + radius_mm,
                          end_mm=2.0 * radius_mm if has_children else radius_mm,
                          tangent_half_mm=max(1.5, 1.5 * radius_mm), step_mm=step_mm)


def plane_basis(t: npt.NDArray[np.float64]) -> tuple[np.ndarray, np.ndarray]:
    """Two unit vectors spanning the plane orthogonal to each tangent ``t`` (n, 3)."""
    ref = np.where(np.abs(t[:, :1]) < 0.9, np.array([[1.0, 0.0, 0.0]]), np.array([[0.0, 1.0, 0.0]]))
    u = np.cross(t, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(t, u)
    return u, v


def sample_rays(image: npt.NDArray, centres_mm, u, v, spacing_mm: Spacing, *, n_rays: int, s: np.ndarray,
                order: int = 1) -> np.ndarray:
    """Profiles (n_sections, n_rays, len(s)) along rays from ``centres_mm`` in the (u, v) planes
    (interpolation ``order`` 1, trilinear; 0 for masks)."""
    sp = np.asarray(spacing_mm, float)
    th = 2 * np.pi * np.arange(n_rays) / n_rays
    dirs = np.cos(th)[None, :, None] * u[:, None, :] + np.sin(th)[None, :, None] * v[:, None, :]
    pts = centres_mm[:, None, None, :] + s[None, None, :, None] * dirs[:, :, None, :]
    coords = (pts / sp).reshape(-1, 3).T
    out = ndi.map_coordinates(image, coords, order=order, mode="nearest")
    return out.reshape(len(centres_mm), n_rays, len(s))


def _crossing(p: np.ndarray, s: np.ndarray, start: np.ndarray, stop: np.ndarray, level: np.ndarray,
              rising: bool) -> np.ndarray:
    """Where ``p`` crosses ``level`` between sample indices ``start`` and ``stop`` (per row; NaN if never).

    The midpoint of the first and the last crossing (linear interpolation between samples): on a
    noisy profile the first crossing comes early and the last late by about the same amount.
    """
    idx = np.arange(p.shape[-1])
    lv = level[..., None]
    above = (p >= lv) if rising else (p <= lv)
    cross = above[..., 1:] & ~above[..., :-1]
    cross &= (idx[1:] > start[..., None]) & (idx[1:] <= stop[..., None])
    found = cross.any(-1)
    ds = s[1] - s[0]

    def at(j: np.ndarray) -> np.ndarray:  # crossing between samples j and j + 1
        p0 = np.take_along_axis(p, j[..., None], -1)[..., 0]
        p1 = np.take_along_axis(p, (j + 1)[..., None], -1)[..., 0]
        frac = np.where(p1 != p0, (level - p0) / np.where(p1 != p0, p1 - p0, 1.0), 1.0)
        return s[j] + np.clip(frac, 0.0, 1.0) * ds

    first = np.argmax(cross, -1)
    last = cross.shape[-1] - 1 - np.argmax(cross[..., ::-1], -1)
    return np.where(found, 0.5 * (at(first) + at(last)), np.nan)


def fwhm_edges(p: np.ndarray, s: np.ndarray, radius_mm: np.ndarray, cfg: SectionSettings, *,
               lumen_hu: np.ndarray | float | None = None, outer_hu: np.ndarray | None = None):
    """FWHM lumen and outer edge (mm) of each ray profile ``p[..., len(s)]`` (module doc).

    ``radius_mm`` (broadcast to ``p.shape[:-1]``) is the inscribed-radius hint of the lumen.
    ``lumen_hu``, ``outer_hu``: fixed lumen and outer levels of the half-maximum (broadcast);
    by default each ray's own minimum inside and past the wall.
    Returns ``inner, outer, lumen_level, peak, outer_level, valid``, each shaped ``p.shape[:-1]``.
    """
    ds = s[1] - s[0]
    if cfg.ray_smoothing_mm > 0:
        p = ndi.gaussian_filter1d(p, cfg.ray_smoothing_mm / ds, axis=-1, mode="nearest")
    r = np.broadcast_to(np.asarray(radius_mm, float), p.shape[:-1])
    n = p.shape[-1]
    idx = np.arange(n)
    lum_stop = np.clip(np.rint(np.maximum(r, 2 * ds) / ds).astype(int), 1, n - 1)
    i_l = np.argmin(np.where(idx <= lum_stop[..., None], p, np.inf), -1)
    low = np.take_along_axis(p, i_l[..., None], -1)[..., 0]
    pk_stop = np.clip(np.rint((1.3 * r + cfg.wall_search_mm) / ds).astype(int), 1, n - 1)
    i_p = np.argmax(np.where((idx >= i_l[..., None]) & (idx <= pk_stop[..., None]), p, -np.inf), -1)
    peak = np.take_along_axis(p, i_p[..., None], -1)[..., 0]
    o_stop = np.minimum(i_p + int(round(cfg.outer_window_mm / ds)), n - 1)
    i_o = np.argmin(np.where((idx >= i_p[..., None]) & (idx <= o_stop[..., None]), p, np.inf), -1)
    outer_level = np.take_along_axis(p, i_o[..., None], -1)[..., 0]
    if lumen_hu is not None:
        low = np.broadcast_to(np.asarray(lumen_hu, float), peak.shape)
    if outer_hu is not None:
        outer_level = np.broadcast_to(np.asarray(outer_hu, float), peak.shape)
    inner = _crossing(p, s, i_l, i_p, 0.5 * (low + peak), rising=True)
    outer = _crossing(p, s, i_p, i_o, 0.5 * (peak + outer_level), rising=False)
    valid = ((peak - low >= cfg.min_contrast_hu) & (peak - outer_level >= cfg.min_contrast_hu)
             & (outer_level <= cfg.max_outer_hu) & np.isfinite(inner) & np.isfinite(outer))
    return inner, outer, low, peak, outer_level, valid


def _robust_rays(inner: np.ndarray, outer: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Drop rays whose wall thickness is far from their section's median (module doc)."""
    t = np.where(valid, outer - inner, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(np.where(valid.any(1, keepdims=True), t, 0.0), axis=1, keepdims=True)
    tol = np.maximum(0.3, 0.3 * np.abs(med))
    return valid & (np.abs(t - med) <= tol)


def recentre(inner: np.ndarray, ok: np.ndarray, theta: np.ndarray, u: np.ndarray, v: np.ndarray, *,
             max_shift_mm: np.ndarray) -> np.ndarray:
    """Shift (mm, (n, 3)) moving each section centre onto its lumen's centre.

    Least squares over the valid rays of :math:`r_k = r_0 - e_u\\cos\\theta_k - e_v\\sin\\theta_k`
    (a circle seen from a point off its centre by :math:`(e_u, e_v)`, to first order); a proper fit
    rather than the centroid of the edge points, which a gap of dropped rays (an abutting artery)
    would pull away from the gap. Capped at ``max_shift_mm``; zero with fewer than 6 valid rays.
    """
    A = np.stack([np.ones_like(theta), -np.cos(theta), -np.sin(theta)], 1)  # (n_rays, 3)
    w = ok.astype(float)
    y = np.where(ok, inner, 0.0)
    ata = np.einsum("sk,ki,kj->sij", w, A, A)
    aty = np.einsum("sk,ki,sk->si", w, A, y)
    enough = ok.sum(1) >= 6
    ata[~enough] = np.eye(3)
    sol = np.linalg.solve(ata, aty[..., None])[..., 0]
    e = np.where(enough[:, None], sol[:, 1:], 0.0)
    shift = -(e[:, :1] * u + e[:, 1:] * v)  # (e_u, e_v): where the centre sits off the lumen's centre
    norm = np.linalg.norm(shift, axis=1, keepdims=True)
    return shift * np.minimum(1.0, np.asarray(max_shift_mm, float).reshape(-1, 1) / np.maximum(norm, 1e-9))


INTEGRAL_REACH_SIGMAS = 3.0
"""The wall-area integral runs out to the FWHM outer edge plus this many blur SDs."""


def wall_area_integral(prof: np.ndarray, s: np.ndarray, ok: np.ndarray, a: np.ndarray, reach: np.ndarray,
                       outer_hu: np.ndarray, cfg: SectionSettings) -> np.ndarray:
    """Wall area (mm^2) per section from the attenuation integral over its valid rays (module doc).

    :math:`WA = \\big(M - (H_L - H_O)\\,\\pi a^2\\big) / (H_W - H_O)` with
    :math:`M = \\frac{2\\pi}{n}\\sum_k \\int_0^{reach} (p_k(s) - H_O)\\, s\\, ds` over the ``n`` valid rays.
    """
    ds = s[1] - s[0]
    w = (s[None, None, :] <= reach[:, None, None]) * s[None, None, :] * ds
    m_k = ((prof - outer_hu[:, None, None]) * w).sum(-1)
    n = np.maximum(ok.sum(1), 1)
    m = 2 * np.pi * np.where(ok, m_k, 0.0).sum(1) / n
    return (m - (cfg.lumen_hu - outer_hu) * np.pi * a**2) / (cfg.wall_hu - outer_hu)


def invert_fwhm(a_obs: np.ndarray, b_obs: np.ndarray, sigma: np.ndarray, outer_hu: np.ndarray, cfg: SectionSettings,
                *, iterations: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """True ring radii whose model FWHM edges equal the observed ones (:mod:`.blur`), per section."""
    a, b = a_obs.copy(), b_obs.copy()
    if a.size == 0:
        return a, b
    ds = 0.02
    s = np.arange(0.0, float(np.nanmax(b_obs)) + 3.0 + cfg.outer_window_mm + ds, ds)
    for _ in range(iterations):
        prof = ring_profile(s[None, :], a[:, None], b[:, None], sigma[:, None], lumen_hu=cfg.lumen_hu,
                            wall_hu=cfg.wall_hu, outer_hu=outer_hu[:, None])
        fa, fb, *_, ok = fwhm_edges(prof, s, 0.8 * a, cfg, lumen_hu=cfg.lumen_hu, outer_hu=outer_hu)
        fa = np.where(np.isfinite(fa), fa, a)
        fb = np.where(np.isfinite(fb), fb, b)
        a = np.clip(a + (a_obs - fa), 0.1, None)
        b = np.maximum(b + (b_obs - fb), a + 0.05)
    return a, b


def measure_sections(image: npt.NDArray, tree: AirwayTree, spacing_mm: Spacing, *, sigma_zyx_mm: tuple[float, float, float],
                     settings: SectionSettings = SectionSettings(),
                     lung: npt.NDArray[np.bool_] | None = None) -> pd.DataFrame:
    """Cross-section measurements of every branch of ``tree`` on ``image`` (one row per section).

    Parameters
    ----------
    image
        HU (z, y, x) on the grid of the tree (int16 or float).
    tree
        :func:`ctpheno.features.airways.graph.build_tree` of the lumen on this grid.
    sigma_zyx_mm
        SD (mm) of the scanner's Gaussian PSF along z, y, x (:func:`.psf.psf_sigma_mm`).
    lung
        Optional lung mask on the same grid: a ray whose wall or surroundings (out to the wall
        integral's reach) leave it — into the mediastinum or the hilum — does not count.

    Returns
    -------
    pandas.DataFrame
        :data:`SECTION_COLUMNS`; radii in mm, positions in mm on the index grid.
    """
    sp = check_spacing(spacing_mm)
    cfg = settings
    img = np.asarray(image, np.float32)
    br = tree.branches
    rad = br["inscribed_radius_mm"].to_numpy(float)
    par = br["parent_id"].to_numpy(int)
    centres, tangents, owner = [], [], []
    for i, line in enumerate(tree.centrelines):
        if bool(br["junction"].iat[i]):
            continue
        c, t = branch_frames(line, sp, radius_mm=rad[i], parent_radius_mm=rad[par[i]] if par[i] >= 0 else 0.0,
                             has_children=int(br["n_children"].iat[i]) > 0, step_mm=cfg.step_mm)
        centres.append(c)
        tangents.append(t)
        owner.append(np.full(len(c), i))
    if not centres or sum(len(c) for c in centres) == 0:
        return pd.DataFrame(columns=list(SECTION_COLUMNS))
    c = np.concatenate(centres)
    t = np.concatenate(tangents)
    bid = np.concatenate(owner)
    r = np.maximum(rad[bid], 0.5 * min(sp))
    u, v = plane_basis(t)
    cov = np.diag(np.asarray(sigma_zyx_mm, float) ** 2)
    sigma = np.sqrt(0.5 * (np.einsum("ni,ij,nj->n", u, cov, u) + np.einsum("ni,ij,nj->n", v, cov, v)))
    th = 2 * np.pi * np.arange(cfg.n_rays) / cfg.n_rays
    rows = []
    for chunk in np.array_split(np.arange(len(c)), max(1, len(c) // 256)):
        s_max = float((1.3 * r[chunk] + cfg.wall_search_mm + cfg.outer_window_mm).max()) + 1.0
        s = np.arange(0.0, s_max, cfg.ray_step_mm)
        cc = c[chunk].copy()
        for _pass in range(2):
            raw = sample_rays(img, cc, u[chunk], v[chunk], sp, n_rays=cfg.n_rays, s=s)
            prof = raw
            if cfg.angular_smoothing > 0:  # average each ray with its neighbours: noise down, radial edges kept
                prof = ndi.uniform_filter1d(raw, 2 * cfg.angular_smoothing + 1, axis=1, mode="wrap")
            inner, outer, low, peak, out_lvl, ok = fwhm_edges(prof, s, r[chunk, None], cfg)
            ok = _robust_rays(inner, outer, ok)
            if _pass == 0:  # re-centre on the lumen: least-squares circle through the valid edge points
                cc = cc + recentre(inner, ok, th, u[chunk], v[chunk], max_shift_mm=0.5 * r[chunk])
        with warnings.catch_warnings():  # sections without a valid ray: NaN, dropped below
            warnings.simplefilter("ignore", RuntimeWarning)
            o_hu = np.nanmedian(np.where(ok, _baseline(prof, s, outer, cfg), np.nan), axis=1)
        # final edges against section-level levels: air and the parenchyma around the section (noise-robust)
        inner, outer, *_, ok = fwhm_edges(prof, s, r[chunk, None], cfg, lumen_hu=cfg.lumen_hu, outer_hu=o_hu[:, None])
        reach = outer + INTEGRAL_REACH_SIGMAS * sigma[chunk, None]
        ok &= np.isfinite(o_hu)[:, None] & (_tail_mean(prof, s, outer, reach) <= o_hu[:, None] + cfg.min_contrast_hu)
        if lung is not None:  # rays that leave the lung (mediastinum, hilum) before the reach
            inside = sample_rays(lung, cc, u[chunk], v[chunk], sp, n_rays=cfg.n_rays, s=s, order=0) > 0
            beyond = s[None, None, :] > inner[..., None]
            within = s[None, None, :] <= reach[..., None] + 0.5
            ok &= ~(beyond & within & ~inside).any(-1)
        ok = _robust_rays(inner, outer, ok)
        n_ok = ok.sum(1)
        good = n_ok >= cfg.min_valid_fraction * cfg.n_rays
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            a_obs = np.nanmedian(np.where(ok, inner, np.nan), axis=1)
            b_obs = np.nanmedian(np.where(ok, outer, np.nan), axis=1)
        a, b = np.full(len(chunk), np.nan), np.full(len(chunk), np.nan)
        if good.any():
            a[good], b[good] = invert_fwhm(a_obs[good], b_obs[good], sigma[chunk][good], o_hu[good], cfg)
        wa = wall_area_integral(raw, s, ok, a, b_obs + INTEGRAL_REACH_SIGMAS * sigma[chunk], o_hu, cfg)
        b_int = np.sqrt(a**2 + np.maximum(wa, 0.0) / np.pi)
        for k, j in enumerate(chunk):
            rows.append((int(bid[j]), *cc[k], *t[j], float(sigma[j]), int(n_ok[k]), bool(good[k]),
                         float(a_obs[k]), float(b_obs[k]), float(a[k]), float(b[k]), float(b_int[k])))
    return pd.DataFrame(rows, columns=list(SECTION_COLUMNS))


def _tail_mean(prof: np.ndarray, s: np.ndarray, outer: np.ndarray, reach: np.ndarray) -> np.ndarray:
    """Mean of each ray from its outer edge + 1 mm to ``reach`` (+ 0.5 mm): lung, or another structure
    (mediastinum, an abutting artery, a neighbouring bronchus) that would enter the wall integral."""
    w = (s >= outer[..., None] + 1.0) & (s <= np.maximum(reach, outer + 1.0)[..., None] + 0.5)
    with np.errstate(all="ignore"):
        return np.where(w.any(-1), (prof * w).sum(-1) / np.maximum(w.sum(-1), 1), np.inf)


def _baseline(prof: np.ndarray, s: np.ndarray, outer: np.ndarray, cfg: SectionSettings) -> np.ndarray:
    """Parenchyma level past the wall: mean of each ray over [outer edge + 0.5 mm, + outer_window_mm]."""
    lo = outer[..., None] + 0.5
    hi = outer[..., None] + cfg.outer_window_mm
    w = (s >= lo) & (s <= hi)
    with np.errstate(all="ignore"):
        return np.where(w.any(-1), (prof * w).sum(-1) / np.maximum(w.sum(-1), 1), np.nan)


__all__ = ["SECTION_COLUMNS", "SectionSettings", "recentre", "fwhm_edges", "invert_fwhm", "measure_sections", "plane_basis",
           "sample_rays", "branch_frames", "section_frames"]
