"""One synthetic inspiratory chest CT with its ground truth: :func:`make_phantom`.

Pipeline of one phantom (all randomness from ``numpy.random.default_rng(seed)``):

1. habitus and organ parameters (:func:`ctpheno.synth.anatomy.sample_anatomy`);
2. the noise-free HU volume on the *model grid* — the output grid for ``demo``,
   a ~2.8 mm grid upsampled smoothly (trilinear) to 512x512 for ``full``;
3. airway tree (trachea, main/lobar bronchi, up to ~8 generations, soft-tissue
   walls of the subject's thickness) and pulmonary arteries/veins (tapering by
   Murray's law) rasterised with partial-volume coverage;
4. parenchyma: base density + anterior-posterior gravity gradient + correlated texture;
   emphysema by subtype (:mod:`ctpheno.synth.disease`);
5. acquisition (:mod:`ctpheno.synth.acquisition`): slice profile (FWHM = slice thickness),
   the kernel's in-plane MTF (edge response), noise with the kernel's power spectrum at the
   subject's dose, the scanner's CT-number offset and storage floor, rounding to int16 HU.
   ``also_kernels`` adds reconstructions of the same acquisition (same noise realisation) with
   other kernels, as a study with a smooth and a sharp series.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..io.volume import IDENTITY_DIRECTION, Volume
from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from . import anatomy as A
from .acquisition import acquire, sample_acquisition
from .disease import EMPHYSEMA_HU, SUBTYPES, emphysema_mask, smooth_noise
from .trees import Segment, grid_lookup, grow_tree, rasterize, wall_thickness_mm

Size = Literal["demo", "full"]
Subtype = Literal["none", "centrilobular", "panlobular", "paraseptal", "airway"]
Kernel = Literal["smooth", "sharp"]

LABEL_VESSEL, LABEL_EMPHYSEMA = 4, 5
"""Truth-only labels of the phantom (beside the lung labels of :mod:`ctpheno.vocab`)."""
HU_AIRWAY_WALL = 35.0


@dataclass(frozen=True)
class Phantom:
    """A synthetic chest CT and its truth.

    Attributes
    ----------
    image : Volume
        int16 HU, blurred and noisy — exactly what the writer stores (after rescaling).
    lungs : Volume
        uint8 perfect lung segmentation: 1 right lung, 2 left lung (each including its
        vessels, small airways and emphysema), 3 trachea/main bronchi lumen.
    labels : Volume
        uint8 detailed truth: 1 right lung, 2 left lung, 3 airways, 4 vessels, 5 emphysema.
    params : dict
        Every latent and acquisition parameter (JSON-serialisable).
    """

    image: Volume
    lungs: Volume
    labels: Volume
    params: dict[str, Any] = field(default_factory=dict)
    reconstructions: dict[str, Volume] = field(default_factory=dict)
    """Kernel class -> image of every reconstruction made (the primary one included)."""


def _check(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")


def make_phantom(*, seed: int, size: Size = "demo", subtype: Subtype = "centrilobular",
                 emphysema_fraction: float = 0.15, airway_wall_mm: float = 1.0,
                 kernel: Kernel = "smooth", also_kernels: tuple[str, ...] = ()) -> Phantom:
    """Generate one synthetic inspiratory chest CT with known truth.

    Parameters
    ----------
    seed
        Seeds every random choice; the same arguments give byte-identical arrays.
    size
        ``"demo"`` (128x128 in-plane, ~2.5-3 mm voxels, ~100 slices) or ``"full"``
        (512x512, 0.6-0.8 mm pixels, 300-450 slices at 0.625-1.25 mm).
    subtype
        Emphysema pattern (see :mod:`ctpheno.synth.disease`); ``"airway"`` means
        airway-predominant disease (pass a thick ``airway_wall_mm``).
    emphysema_fraction
        Fraction of the lung voxels that are emphysematous tissue (label 5), 0-0.6.
    airway_wall_mm
        Wall thickness of a bronchus of 3 mm lumen radius; it scales as
        ``0.55 + 0.15 * r`` with the lumen radius ``r`` (mm). Normal ~1 mm, airway disease 1.5-2.5 mm.
    kernel
        Reconstruction kernel: ``"smooth"`` (low, correlated noise) or ``"sharp"`` (high, fine noise,
        edge overshoot) — the ``image``.
    also_kernels
        Further reconstructions (``"smooth"``, ``"medium"``, ``"sharp"``) of the same acquisition, in
        ``reconstructions``; they do not change ``image`` (same random stream).
    """
    _check("size", size, ("demo", "full"))
    _check("subtype", subtype, SUBTYPES)
    _check("kernel", kernel, ("smooth", "sharp"))
    for k in also_kernels:
        _check("also_kernels entry", k, ("smooth", "medium", "sharp"))
    if not 0.0 <= float(emphysema_fraction) <= 0.6:
        raise ValueError(f"emphysema_fraction must be in [0, 0.6]; got {emphysema_fraction}")
    if not 0.2 <= float(airway_wall_mm) <= 4.0:
        raise ValueError(f"airway_wall_mm must be in [0.2, 4.0] mm; got {airway_wall_mm}")
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int; got {seed!r}")

    rng = np.random.default_rng(int(seed))
    p = A.sample_anatomy(rng)
    frame = A.make_frame(p)
    acq = sample_acquisition(rng, size=size, kernel=kernel, frame=frame, p=p)
    mshape, msp, morg = acq["model_shape"], acq["model_spacing_mm"], acq["model_origin_mm"]
    nz, ny, nx = mshape
    X = (morg[0] + msp[2] * np.arange(nx, dtype=np.float32))[None, None, :]
    Y = (morg[1] + msp[1] * np.arange(ny, dtype=np.float32))[None, :, None]
    Z = (morg[2] + msp[0] * np.arange(nz, dtype=np.float32))[:, None, None]

    hu, body = A.body_and_organs(X, Y, Z, p, frame, rng)
    right, left = A.lung_envelopes(X, Y, Z, p, frame)
    envelope = right | left

    # --- airway and vessel trees (physical mm) -------------------------------------------------
    org_xyz, sp_xyz = (morg[0], morg[1], morg[2]), (msp[2], msp[1], msp[0])
    deep = ndi.binary_erosion(envelope, iterations=1)  # ~2.5 mm inside the pleura
    airways, vessels = _trees(p, frame, grid_lookup(deep, origin_mm=org_xyz, spacing_mm=sp_xyz), rng)
    lumen_central = np.zeros(mshape, np.float32)
    lumen = np.zeros(mshape, np.float32)
    wall = np.zeros(mshape, np.float32)
    vess = np.zeros(mshape, np.float32)
    rasterize(airways, lumen_central, origin_mm=org_xyz, spacing_mm=sp_xyz, generation_range=(0, 1))
    rasterize(airways, lumen, origin_mm=org_xyz, spacing_mm=sp_xyz)
    walled = [replace(s, radius_mm=s.radius_mm + wall_thickness_mm(s.radius_mm, airway_wall_mm)) for s in airways]
    rasterize(walled, wall, origin_mm=org_xyz, spacing_mm=sp_xyz)
    rasterize(vessels, vess, origin_mm=org_xyz, spacing_mm=sp_xyz)

    # --- parenchyma ----------------------------------------------------------------------------
    zone = np.clip((Z - A.diaphragm_z(np.float32(0.45 * frame.ac), np.float32(frame.yc), p, frame))
                   / max(frame.z_apex - 0.0, 1.0), 0.0, 1.0).astype(np.float32)
    sp_zyx = tuple(float(s) for s in msp)
    tex = (0.7 * smooth_noise(mshape, 1.5 / np.asarray(sp_zyx), rng)
           + 0.7 * smooth_noise(mshape, 5.0 / np.asarray(sp_zyx), rng)) * p["texture_hu"]
    # sub-resolution vessels: sparse bright dots (the peaks of a fine random field)
    dots = np.clip(smooth_noise(mshape, 0.7 * 2.5 / np.asarray(sp_zyx), rng) - 2.0, 0.0, 1.5) * 260.0
    paren = p["parenchyma_hu"] + p["gravity_hu"] * (Y - frame.yc) / frame.bc + tex + dots
    f = float(emphysema_fraction)
    if subtype == "panlobular":
        paren = paren - 60.0 * f * (1.0 - zone)
    central = lumen_central >= 0.5
    candidates = envelope & (vess < 0.5) & (wall < 0.5) & ~central
    emph = emphysema_mask(subtype, f, envelope & ~central, candidates, zone, sp_zyx, rng)
    emph_tex = EMPHYSEMA_HU[subtype] + 6.0 * smooth_noise(mshape, 1.0, rng)
    if p["atelectasis_hu"] > 0:  # dependent (posterior, basal) subpleural density: still lung
        depth = ndi.distance_transform_edt(envelope, sampling=sp_zyx)
        band = np.clip(1.0 - depth / p["atelectasis_mm"], 0.0, 1.0) * (Y > frame.yc + 0.25 * frame.bc) \
            * np.clip(1.0 - 2.5 * zone, 0.0, 1.0)
        paren = paren + p["atelectasis_hu"] * band.astype(np.float32)
    lung_hu = np.where(emph, emph_tex, paren).astype(np.float32)
    hu = np.where(envelope, lung_hu, hu)
    # vessels inside the lungs, airway walls and lumens everywhere
    hu = np.where(envelope, hu * (1 - vess) + p["hu_blood"] * vess, hu)
    hu = hu * (1 - wall) + HU_AIRWAY_WALL * wall
    hu = hu * (1 - lumen) + A.HU_AIR * lumen
    hu = hu.astype(np.float32)

    # --- truth labels ---------------------------------------------------------------------------
    airway_lbl = central | ((lumen >= 0.5) & ~envelope)
    lungs = np.zeros(mshape, np.uint8)
    lungs[right] = LABEL_RIGHT_LUNG
    lungs[left] = LABEL_LEFT_LUNG
    lungs[airway_lbl] = LABEL_AIRWAYS
    labels = lungs.copy()
    labels[envelope & (vess >= 0.5) & ~airway_lbl] = LABEL_VESSEL
    labels[emph & ~airway_lbl] = LABEL_EMPHYSEMA

    images, lungs, labels = acquire(hu, lungs, labels, acq, rng,
                                    kernels=tuple(dict.fromkeys((kernel, *also_kernels))))
    image = images[kernel]
    n_lung = int(np.count_nonzero((lungs == LABEL_RIGHT_LUNG) | (lungs == LABEL_LEFT_LUNG)))
    n_emph = int(np.count_nonzero(labels == LABEL_EMPHYSEMA))
    spacing = acq["spacing_mm"]
    origin = tuple(float(o) for o in acq["origin_mm"])
    meta = {"kernel": kernel, "synthetic": True}
    vol = lambda arr: Volume(arr, spacing, origin, IDENTITY_DIRECTION, dict(meta))  # noqa: E731
    params: dict[str, Any] = {
        "seed": int(seed), "size": size, "subtype": subtype,
        "emphysema_fraction": f, "emphysema_fraction_realised": n_emph / max(n_lung, 1),
        "airway_wall_mm": float(airway_wall_mm), "kernel": kernel,
        "n_airway_segments": len(airways), "n_vessel_segments": len(vessels),
        **{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in p.items()},
        **{k: v for k, v in acq.items() if not k.startswith("model_")},
        "kernel_name_by_class": dict(acq["kernel_names"]),
    }
    params["spacing_mm"] = list(spacing)
    params["origin_mm"] = list(origin)
    params["shape"] = list(image.shape)
    params.pop("kernel_names", None)
    recons = {k: Volume(a, spacing, origin, IDENTITY_DIRECTION, {**meta, "kernel": k}) for k, a in images.items()}
    return Phantom(image=recons[kernel], lungs=vol(lungs), labels=vol(labels), params=_jsonable(params),
                   reconstructions=recons)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, (np.floating, np.integer)):
            v = v.item()
        elif isinstance(v, (tuple, np.ndarray)):
            v = [x.item() if hasattr(x, "item") else x for x in np.asarray(v).ravel()]
        out[k] = v
    return out


def _trees(p: dict[str, Any], fr: A.Frame, in_lung: Callable[[npt.NDArray[np.float64]], bool],
           rng: np.random.Generator) -> tuple[list[Segment], list[Segment]]:
    """Airway tree (trachea to ~8 generations) and pulmonary vessel trees, in physical mm."""
    ys, rs = A.spine_centre(fr)
    y_tr = ys - rs - 24.0
    r_tr = p["trachea_r_mm"]
    carina = np.array([0.0, y_tr + 4.0, fr.z_carina])
    airways = [Segment(np.array([-2.0, y_tr - 6.0, fr.z_max + 10.0]), carina, r_tr, 0)]
    vessels: list[Segment] = []
    for side in (-1.0, 1.0):  # right (X<0), left
        ang = np.deg2rad(25.0 if side < 0 else 45.0)
        length = 24.0 if side < 0 else 44.0
        d = np.array([side * np.sin(ang), 0.1, -np.cos(ang)])
        r_main = r_tr * (0.72 if side < 0 else 0.66)
        end = carina + d * length
        airways.append(Segment(carina, end, r_main, 1))
        toward = np.array([side * 0.5 * fr.ac, fr.yc + 0.1 * fr.bc, 0.45 * fr.z_apex])
        lobar = [(np.array([side * 0.8, 0.05, 0.6]), 0.78), (np.array([side * 0.35, 0.25, -0.9]), 0.85)]
        if side > 0:
            lobar.append((np.array([side * 0.6, -0.45, -0.4]), 0.7))  # lingula
        else:
            lobar.append((np.array([side * 0.55, -0.5, -0.5]), 0.68))  # middle lobe
        for direction, k in lobar:
            r0 = r_main * k
            airways += grow_tree(end, direction, radius_mm=r0, length_mm=r0 * 4.0, rng=rng, inside=in_lung,
                                 min_radius_mm=1.7, max_generation=6, generation=2, length_per_radius=5.5,
                                 toward=toward)
            # pulmonary arteries alongside the bronchi and veins from the lower hilum: a trunk from
            # the hilum to where the direction enters the lung, then a tree from there
            for off, dvec, kr in (((side * 3.0, -6.0, 4.0), (0.0, 0.0, 0.0), 1.1),
                                  ((side * 6.0, 8.0, -22.0), (0.0, 0.3, -0.2), 1.05),
                                  ((side * 2.0, -2.0, -8.0), (side * 0.2, -0.25, 0.15), 0.95)):
                start = end + np.asarray(off)
                dv = direction / np.linalg.norm(direction) + np.asarray(dvec)
                entry = _enter(start, dv, in_lung)
                if entry is None:
                    continue
                if np.linalg.norm(entry - start) > 1.0:
                    vessels.append(Segment(start, entry, r0 * kr, 2))
                vessels += grow_tree(entry, dv, radius_mm=r0 * kr, length_mm=r0 * 4.0, rng=rng, inside=in_lung,
                                     min_radius_mm=0.45, max_generation=13, generation=2, length_per_radius=8.0,
                                     toward=toward)
    return airways, vessels


def _enter(start: npt.NDArray[np.float64], direction: npt.NDArray[np.float64],
           inside: Callable[[npt.NDArray[np.float64]], bool], *, step_mm: float = 2.0,
           max_mm: float = 70.0) -> npt.NDArray[np.float64] | None:
    """First point along ``direction`` from ``start`` that lies inside the lung (None if none)."""
    d = np.asarray(direction, float) / max(float(np.linalg.norm(direction)), 1e-9)
    for t in np.arange(0.0, max_mm, step_mm):
        q = start + t * d
        if inside(q):
            return q
    return None
