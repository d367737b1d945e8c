"""Chest phantoms with pathology at the lung border and a physically built partial-volume rim.

:func:`make_pathology_phantom` draws a small chest (body, chest wall, mediastinum, heart, liver
dome, trachea and main bronchi, two lungs with vessels) from closed-form geometry and acquires
it like a scanner:

1. every output voxel is split into ``supersample`` sub-voxels (3 in-plane x 2 through-plane by
   default) at which the tissue is looked up; the voxel's HU is the mean over its sub-voxels,
   i.e. exact partial-volume mixing of the materials (Glover & Pelc 1980);
2. a Gaussian point-spread function (in-plane FWHM ``psf_fwhm_mm``) blurs the mixed image;
3. Gaussian noise of ``noise_hu`` is added and the result is rounded to int16.

The truth comes from the same sub-voxels *before* blur and noise: the lung fraction
:math:`\\phi` of every voxel (the share of its sub-voxels inside the lung envelope). A voxel is
lung in the truth when :math:`\\phi \\ge` ``truth_min_fraction`` (0.1): the contour is drawn on
the pleura, so every voxel it crosses that holds a tenth or more of lung is in — the
partial-volume rim convention of expert contours and of lungmask/TotalSegmentator.

Pathology switches (all default off):

``mass_mm``
    Radius of a soft-tissue sphere centred on the right lung's lateral costal pleura
    (juxtapleural mass). The part inside the lung envelope is lung in the truth.
``opacified``
    ``"left"`` or ``"right"``: that lung is fully opacified (consolidation / atelectasis,
    35 HU); the expected mask holds only the other lung.
``herniation_mm``
    The right lung crosses the midline anteriorly by this much (with ``opacified="left"``:
    one lung across the midline, which must not be split).
``pleural_air_mm``
    Thickness of a layer of pleural air (pneumothorax) between the right lung and its lateral
    chest wall; the lung is bounded by a 1 mm visceral pleura. Truth: the air is not lung.
``effusion_mm``
    Largest thickness of a free pleural effusion (fluid, ``HU_FLUID``) of the right lung: a dependent
    crescent along the posterior half of the costal pleura, ``effusion_mm`` thick at the lung base and
    thinning to nothing at 60 % of the lung's height. The lung is compressed (it ends at the fluid).
    Truth: the fluid is not lung.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..io.volume import IDENTITY_DIRECTION, Volume
from ..vocab import HU_AIR

HU_FAT, HU_MUSCLE, HU_BLOOD, HU_LIVER, HU_LUNG = -100.0, 40.0, 40.0, 58.0, -850.0
HU_CONSOLIDATION = 35.0
HU_FLUID = 10.0
"""Serous pleural fluid (transudate 0-20 HU)."""
HU_TABLE = 200.0
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
TRUTH_MIN_FRACTION = 0.1
"""A voxel holding at least this fraction of lung is lung in the truth (rim included)."""


@dataclass(frozen=True)
class PathologyPhantom:
    """A small chest CT with one pathology at the lung border, and its truth."""

    image: Volume
    """int16 HU, identity direction (array x = patient left)."""
    lungs: Volume
    """uint8 truth: 1 right lung, 2 left lung (lung fraction >= ``truth_min_fraction``), 3 trachea and
    main bronchi lumen outside the lungs."""
    fraction: npt.NDArray[np.float32]
    """(z, y, x) lung fraction of every voxel (0..1) before blur and noise."""
    marks: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    """Voxels of the pathology (``mass``, ``pleural_air``, ``opacified``, ``herniation``, ``effusion``)
    where present, as bool arrays."""
    params: dict[str, Any] = field(default_factory=dict)
    """The phantom's geometry and acquisition parameters (JSON-serialisable)."""


def _plane_constants(X: npt.NDArray[np.float32], Y: npt.NDArray[np.float32], p: dict[str, Any]) -> dict[str, Any]:
    """The height-independent part of every axial plane: body, chest wall, table, spine, HU background."""
    a, b = p["body_half_width_mm"], p["body_half_depth_mm"]
    hu = np.full(X.shape, HU_AIR, np.float32)
    body = (X / a) ** 2 + (Y / b) ** 2 < 1.0
    hu[body] = HU_FAT
    muscle = (X / (a - 14.0)) ** 2 + (Y / (b - 10.0)) ** 2 < 1.0
    hu[muscle] = HU_MUSCLE
    hu[(Y > b + 4.0) & (Y < b + 12.0) & (np.abs(X) < a + 20.0)] = HU_TABLE
    bc0 = p["cavity_half_depth_mm"]
    return {"hu": hu, "body": body, "muscle": muscle, "absX": np.abs(X), "X2": X ** 2,
            "spine": X ** 2 + (Y - bc0 + 12.0) ** 2 < 26.0 ** 2}


def _tissue(X: npt.NDArray[np.float32], Y: npt.NDArray[np.float32], z: float, p: dict[str, Any],
            c: dict[str, Any]) -> tuple[npt.NDArray[np.float32], dict[str, npt.NDArray[np.bool_]]]:
    """HU and named region masks of one fine axial plane at height ``z`` (mm, 0 = lung base dome)."""
    hu = c["hu"].copy()
    body, muscle, absX, spine = c["body"], c["muscle"], c["absX"], c["spine"]
    # thoracic cavity: narrower toward the apex
    t = float(np.clip(z / p["lung_height_mm"], 0.0, 1.0))
    ac, bc = p["cavity_half_width_mm"] * (1.0 - 0.25 * t ** 2), p["cavity_half_depth_mm"] * (1.0 - 0.1 * t ** 2)
    cavity = (X / ac) ** 2 + (Y / bc) ** 2 < 1.0
    hu[cavity] = HU_MUSCLE - 5.0  # mediastinal soft tissue
    q = ((absX - 0.45 * ac) / ac) ** 2 + ((Y - 10.0) / bc) ** 2
    dome = -30.0 + 30.0 * np.exp(-4.94 * q) - np.where(X > 0, 8.0, 0.0)  # left dome slightly lower
    apex = p["lung_height_mm"] - 60.0 * q
    heart = ((X - 22.0) / 62.0) ** 2 + ((Y + 0.35 * bc) / 48.0) ** 2 + ((z - 35.0) / 55.0) ** 2 < 1.0
    media = 14.0 + 10.0 * np.clip((Y + bc) / (2 * bc), 0.0, 1.0) \
        + 12.0 * np.exp(-(((z - 0.55 * p["lung_height_mm"]) / 25.0) ** 2) - ((Y / 25.0) ** 2))  # hila
    env = cavity & (z > dome) & (z < apex) & ~heart & ~spine
    right = env & (X < -media)
    left = env & (X > media)
    herniation = np.zeros_like(right)
    if p["herniation_mm"] > 0:  # the right lung reaches across the midline in front of the heart
        herniation = env & ~right & (X < p["herniation_mm"]) & (Y < -0.45 * bc) & (z > 0.3 * p["lung_height_mm"])
        right = right | herniation
        left = left & ~herniation
    hu[heart] = HU_BLOOD
    hu[spine & cavity] = 250.0
    hu[cavity & (z <= dome)] = HU_LIVER
    hu[right | left] = HU_LUNG + 35.0 * Y[right | left] / bc  # dependent (posterior) density gradient
    # two vessel tubes per lung, within the lung only
    for sx in (-1.0, 1.0):
        for dx, dy in ((0.55, -0.2), (0.7, 0.35)):
            ves = (X - sx * dx * ac) ** 2 + (Y - dy * bc) ** 2 < 3.0 ** 2
            hu[ves & (right | left)] = HU_BLOOD
    marks: dict[str, npt.NDArray[np.bool_]] = {}
    if p["mass_mm"] > 0:
        mx = -ac
        mass = (X - mx) ** 2 + Y ** 2 + (z - 0.45 * p["lung_height_mm"]) ** 2 < p["mass_mm"] ** 2
        hu[mass & (right | muscle)] = HU_MUSCLE
        marks["mass"] = mass & right
    if p["effusion_mm"] > 0:
        th = p["effusion_mm"] * max(0.0, 1.0 - z / (0.6 * p["lung_height_mm"]))
        fluid = right & (Y > 0) & (np.sqrt((X / ac) ** 2 + (Y / bc) ** 2) > 1.0 - th / bc)
        hu[fluid] = HU_FLUID
        right = right & ~fluid
        marks["effusion"] = fluid
    if p["pleural_air_mm"] > 0:
        th = p["pleural_air_mm"]
        inner = ((X / (ac - th)) ** 2 + (Y / bc) ** 2 < 1.0) | (X > -0.4 * ac)
        air = right & ~inner
        pleura = right & inner & ~(((X / (ac - th - 1.0)) ** 2 + (Y / bc) ** 2 < 1.0) | (X > -0.4 * ac))
        hu[air] = HU_AIR
        hu[pleura] = HU_MUSCLE
        right = right & inner
        marks["pleural_air"] = air
    if p["opacified"] in ("left", "right"):
        gone = left if p["opacified"] == "left" else right
        hu[gone] = HU_CONSOLIDATION
        marks["opacified"] = gone
        if p["opacified"] == "left":
            left = np.zeros_like(left)
        else:
            right = np.zeros_like(right)
    marks["herniation"] = herniation
    # trachea above the carina, main bronchi to the hila (air in a soft-tissue wall)
    zc = 0.62 * p["lung_height_mm"]
    ty = -0.25 * bc
    if z >= zc:
        r2 = c["X2"] + (Y - ty) ** 2
        hu[(r2 < 11.0 ** 2) & body] = HU_MUSCLE
        trach = r2 < 9.0 ** 2
        hu[trach] = HU_AIR
    else:
        trach = np.zeros_like(right)
        for sx in (-1.0, 1.0):
            u = np.clip((X * sx) / 30.0, 0.0, 1.0)
            bz = zc - 15.0 * u
            tube = (X * sx >= 0) & (X * sx <= 32.0) & ((Y - ty) ** 2 + (z - bz) ** 2 < 6.0 ** 2)
            if p["opacified"] == ("left" if sx > 0 else "right"):
                continue
            hu[tube] = HU_AIR
            trach |= tube & ~(right | left)
    return hu, {"right": right, "left": left, "airway": trach, **marks}


def make_pathology_phantom(*, mass_mm: float = 0.0, opacified: Optional[Literal["left", "right"]] = None,
                           herniation_mm: float = 0.0, pleural_air_mm: float = 0.0, effusion_mm: float = 0.0,
                           spacing_mm: tuple[float, float, float] = (3.0, 2.5, 2.5),
                           shape: tuple[int, int, int] = (64, 116, 128), psf_fwhm_mm: float = 2.5,
                           noise_hu: float = 20.0, supersample: tuple[int, int] = (2, 3),
                           truth_min_fraction: float = TRUTH_MIN_FRACTION, seed: int = 0) -> PathologyPhantom:
    """Build the phantom (see the module docstring); every argument is in mm or HU.

    ``supersample = (through-plane, in-plane)`` sub-voxels per voxel edge.
    """
    if opacified not in (None, "left", "right"):
        raise ValueError(f"opacified must be None, 'left' or 'right'; got {opacified!r}")
    if min(mass_mm, herniation_mm, pleural_air_mm, effusion_mm) < 0:
        raise ValueError("mass_mm, herniation_mm, pleural_air_mm and effusion_mm must be >= 0")
    nz, ny, nx = shape
    dz, dy, dx = spacing_mm
    kz, kxy = supersample
    p: dict[str, Any] = {"body_half_width_mm": 150.0, "body_half_depth_mm": 110.0, "cavity_half_width_mm": 118.0,
                         "cavity_half_depth_mm": 82.0, "lung_height_mm": nz * dz - 75.0, "mass_mm": float(mass_mm),
                         "opacified": opacified, "herniation_mm": float(herniation_mm),
                         "pleural_air_mm": float(pleural_air_mm), "effusion_mm": float(effusion_mm)}
    # fine in-plane coordinates (sub-voxel centres), centred on the body
    fx = ((np.arange(nx * kxy) + 0.5) / kxy - 0.5 - (nx - 1) / 2.0) * dx
    fy = ((np.arange(ny * kxy) + 0.5) / kxy - 0.5 - (ny - 1) / 2.0) * dy + 6.0
    X, Y = np.meshgrid(fx.astype(np.float32), fy.astype(np.float32), indexing="xy")
    names = ["right", "left", "airway", "mass", "pleural_air", "opacified", "herniation", "effusion"]
    acc = np.zeros((1 + len(names), nz, ny, nx), np.float32)  # HU, then the fraction of each region
    const = _plane_constants(X, Y, p)
    z0 = -45.0  # the first slice lies below the lung bases
    for k in range(nz):
        fine = np.zeros((1 + len(names), ny * kxy, nx * kxy), np.float32)
        for s in range(kz):
            h, m = _tissue(X, Y, z0 + (k + (s + 0.5) / kz - 0.5) * dz, p, const)
            fine[0] += h
            for i, name in enumerate(names):
                if name in m:
                    fine[1 + i] += m[name]
        acc[:, k] = fine.reshape(-1, ny, kxy, nx, kxy).sum(axis=(2, 4)) / (kz * kxy * kxy)
    hu = acc[0]
    frac = dict(zip(names, acc[1:]))
    sig = (0.0, psf_fwhm_mm * FWHM_TO_SIGMA / dy, psf_fwhm_mm * FWHM_TO_SIGMA / dx)
    hu = ndi.gaussian_filter(hu, sig, mode="nearest")
    rng = np.random.default_rng(seed)
    hu += rng.normal(0.0, noise_hu, shape).astype(np.float32)
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)
    lung_frac = frac["right"] + frac["left"]
    truth = np.zeros(shape, np.uint8)
    truth[(lung_frac >= truth_min_fraction) & (frac["right"] >= frac["left"])] = 1
    truth[(lung_frac >= truth_min_fraction) & (frac["left"] > frac["right"])] = 2
    truth[(truth == 0) & (frac["airway"] >= 0.5)] = 3
    origin = (-(nx - 1) / 2.0 * dx, -(ny - 1) / 2.0 * dy + 6.0, z0)
    vol = lambda a: Volume(a, spacing_mm, origin, IDENTITY_DIRECTION, {"synthetic": True})  # noqa: E731
    out_marks = {name: frac[name] >= 0.5 for name in names[3:] if (frac[name] >= 0.5).any()}
    return PathologyPhantom(vol(image), vol(truth), lung_frac, out_marks,
                            {**p, "spacing_mm": list(spacing_mm), "psf_fwhm_mm": psf_fwhm_mm, "noise_hu": noise_hu,
                             "truth_min_fraction": truth_min_fraction})
