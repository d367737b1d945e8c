"""Analytic chest anatomy of the synthetic phantom (noise-free HU and tissue masks).

Every structure is a closed-form function of the physical position
``(X, Y, Z)`` in millimetres (LPS: +X patient left, +Y posterior, +Z
superior; ``X = 0`` is the midline, ``Z = 0`` the top of the right
hemidiaphragm dome). Most boundaries are 2-D in-plane fields compared with
the slice height, so the whole volume is built by broadcasting, without
Python loops over voxels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi

from ..vocab import HU_AIR

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

# Tissue densities (HU) — means; each subject jitters them (see sample_anatomy).
HU_FAT = -100.0
HU_MUSCLE = 45.0
HU_BLOOD = 40.0
HU_LIVER = 58.0
HU_SPLEEN = 48.0
HU_CANCELLOUS = 250.0
HU_CORTICAL = 750.0


def sample_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """Draw one subject's body-habitus and organ parameters (mm and HU)."""
    u = rng.uniform
    p: dict[str, float] = {
        "body_half_width_mm": u(138.0, 172.0),
        "body_half_depth_mm": u(98.0, 126.0),
        "fat_mm": u(5.0, 24.0),
        "muscle_mm": u(6.0, 11.0),
        "rib_mm": u(6.0, 9.0),
        "lung_height_mm": u(225.0, 285.0),
        "recess_depth_mm": u(45.0, 70.0),
        "left_dome_drop_mm": u(8.0, 25.0),
        "apex_curvature_mm": u(85.0, 120.0),
        "upper_taper": u(0.12, 0.25),
        "body_wobble2": u(0.0, 0.04), "body_phase2": u(0.0, 2 * np.pi),
        "body_wobble3": u(0.0, 0.025), "body_phase3": u(0.0, 2 * np.pi),
        "atelectasis_hu": float(rng.choice([0.0, u(150.0, 450.0)])),
        "atelectasis_mm": u(4.0, 12.0),
        "mediastinum_post_mm": u(18.0, 26.0),
        "mediastinum_ant_mm": float(rng.choice([0.0, 0.0, u(3.0, 8.0), u(8.0, 16.0)])),
        "hilum_bulge_mm": u(10.0, 22.0),
        "heart_x_mm": u(18.0, 35.0),
        "heart_rx_mm": u(60.0, 75.0),
        "heart_ry_mm": u(45.0, 58.0),
        "heart_rz_mm": u(50.0, 62.0),
        "heart_z_mm": u(18.0, 30.0),
        "trachea_r_mm": u(7.0, 10.0),
        "carina_below_apex_mm": u(70.0, 95.0),
        "stomach_gas_frac": u(0.25, 0.65),
        "n_bowel_gas": float(rng.integers(2, 6)),
        "table_gap_mm": u(0.0, 12.0),
        "table_curv_per_mm": u(0.0006, 0.0014),
        "hu_fat": HU_FAT + u(-15.0, 15.0),
        "hu_muscle": HU_MUSCLE + u(-8.0, 8.0),
        "hu_blood": HU_BLOOD + u(-6.0, 8.0),
        "hu_liver": HU_LIVER + u(-8.0, 8.0),
        "hu_bone": u(380.0, 650.0),
        "gravity_hu": u(15.0, 40.0),
        "parenchyma_hu": u(-880.0, -850.0),
        "texture_hu": u(10.0, 20.0),
    }
    return p


@dataclass(frozen=True)
class Frame:
    """Where the thorax sits: cavity ellipse (mm) and the heights of key levels."""

    ac: float  # cavity half-width (lateral)
    bc: float  # cavity half-depth (AP)
    yc: float  # cavity centre Y
    z_apex: float
    z_carina: float
    z_min: float
    z_max: float
    table_y: float


def make_frame(p: dict[str, Any]) -> Frame:
    """Cavity size and scan range implied by the sampled habitus."""
    wall = p["fat_mm"] + p["muscle_mm"] + p["rib_mm"]
    ac = p["body_half_width_mm"] - wall
    bc = p["body_half_depth_mm"] - wall
    z_apex = p["lung_height_mm"] - p["recess_depth_mm"]
    z_min = -p["recess_depth_mm"] - p["left_dome_drop_mm"] - 25.0
    z_max = z_apex + 22.0
    return Frame(ac=ac, bc=bc, yc=4.0, z_apex=z_apex, z_carina=z_apex - p["carina_below_apex_mm"],
                 z_min=z_min, z_max=z_max, table_y=p["body_half_depth_mm"] + p["table_gap_mm"])


def _body_level(X: FloatArray, Y: FloatArray, a: float, b: float, p: dict[str, Any]) -> FloatArray:
    """Super-ellipse level (< 1 inside): rounder front, flatter back (supine), with a low-order
    angular wobble so the outline is not a perfect geometric curve."""
    n = np.where(Y > 0, 3.2, 2.2)
    th = np.arctan2(Y, X)
    wob = 1.0 + p["body_wobble2"] * np.cos(2 * th + p["body_phase2"]) + p["body_wobble3"] * np.cos(3 * th + p["body_phase3"])
    return ((np.abs(X / a) ** n + np.abs(Y / b) ** n) / wob ** 2).astype(np.float32)


def cavity_scale(Z: FloatArray, p: dict[str, Any], f: "Frame") -> tuple[FloatArray, FloatArray]:
    """Lateral and AP scale of the thoracic cavity with height: the upper thorax is narrower."""
    t = np.clip((Z - 0.35 * f.z_apex) / (0.65 * f.z_apex + 22.0), 0.0, 1.0) ** 1.5
    return (1.0 - p["upper_taper"] * t).astype(np.float32), (1.0 - 0.4 * p["upper_taper"] * t).astype(np.float32)


def diaphragm_z(X: FloatArray, Y: FloatArray, p: dict[str, Any], f: Frame) -> FloatArray:
    """Height of the lung base (diaphragm dome and costophrenic recesses)."""
    side = np.where(X < 0, -1.0, 1.0)
    xc = side * 0.45 * f.ac
    top = np.where(X < 0, 0.0, -p["left_dome_drop_mm"])
    yy = (Y - (f.yc - 0.15 * f.bc)) / f.bc
    r2 = ((X - xc) / (0.62 * f.ac)) ** 2 + np.where(yy > 0, 1.3, 0.8) * yy ** 2
    return (top - p["recess_depth_mm"] * np.clip(r2, 0.0, 1.6) / 1.1).astype(np.float32)


def apex_z(X: FloatArray, Y: FloatArray, p: dict[str, Any], f: Frame) -> FloatArray:
    """Upper lung surface: a dome over each hemithorax (narrow apex, wide base)."""
    xa = 0.40 * f.ac
    r2 = ((np.abs(X) - xa) / (0.64 * f.ac)) ** 2 + ((Y - (f.yc + 0.2 * f.bc)) / (0.95 * f.bc)) ** 2
    return (f.z_apex - p["apex_curvature_mm"] * r2).astype(np.float32)


def mediastinum_half_width(Y: FloatArray, Z: FloatArray, p: dict[str, Any], f: Frame) -> FloatArray:
    """Half-width of the mediastinal gap between the lungs; narrows anteriorly (may be 0)."""
    t = np.clip((Y - (f.yc - f.bc)) / (2.0 * f.bc), 0.0, 1.0)
    m = p["mediastinum_ant_mm"] + (p["mediastinum_post_mm"] - p["mediastinum_ant_mm"]) * t ** 1.3
    hilum = p["hilum_bulge_mm"] * np.exp(-(((Z - f.z_carina + 25.0) / 35.0) ** 2)) \
        * np.exp(-(((Y - f.yc - 0.1 * f.bc) / (0.35 * f.bc)) ** 2))
    return (m + hilum).astype(np.float32)


def heart_level(X: FloatArray, Y: FloatArray, Z: FloatArray, p: dict[str, Any], f: Frame) -> FloatArray:
    """Ellipsoid level (< 1 inside) of heart + pericardium, anterior and to the left."""
    return (((X - p["heart_x_mm"]) / p["heart_rx_mm"]) ** 2
            + ((Y - (f.yc - 0.38 * f.bc)) / p["heart_ry_mm"]) ** 2
            + ((Z - p["heart_z_mm"]) / p["heart_rz_mm"]) ** 2).astype(np.float32)


def spine_centre(f: Frame) -> tuple[float, float]:
    """(Y, radius) of the vertebral body at X = 0."""
    return f.yc + f.bc - 8.0, 19.0


def lung_envelopes(X: FloatArray, Y: FloatArray, Z: FloatArray, p: dict[str, Any],
                   f: Frame) -> tuple[BoolArray, BoolArray]:
    """Right (X < 0) and left lung envelopes, before airways/vessels/disease.

    Shapes broadcast: ``X`` (1,1,nx), ``Y`` (1,ny,1), ``Z`` (nz,1,1) or equal-shape point arrays.
    """
    sx, sy = cavity_scale(Z, p, f)
    cav = ((X / (f.ac * sx)) ** 2 + ((Y - f.yc) / (f.bc * sy)) ** 2) < 1.0
    above = Z > diaphragm_z(X, Y, p, f)
    below = Z < apex_z(X, Y, p, f)
    m = mediastinum_half_width(Y, Z, p, f)
    heart = heart_level(X, Y, Z, p, f) < 1.0
    ys, rs = spine_centre(f)
    spine = (X ** 2 + (Y - ys) ** 2) < (rs + 6.0) ** 2
    lung = cav & above & below & ~heart & ~spine
    return lung & (X < -m), lung & (X > m)


def body_and_organs(X: FloatArray, Y: FloatArray, Z: FloatArray, p: dict[str, Any], f: Frame,
                    rng: np.random.Generator) -> tuple[FloatArray, BoolArray]:
    """Noise-free HU of everything but the lungs' content; also the body mask.

    Returns
    -------
    hu : float32 (nz, ny, nx)
    body : bool (nz, ny, nx) — inside the skin (the table is outside).
    """
    nz, ny, nx = Z.shape[0], Y.shape[1], X.shape[2]
    X2, Y2 = np.broadcast_to(X[0], (ny, nx)), np.broadcast_to(Y[0], (ny, nx))
    a, b = p["body_half_width_mm"], p["body_half_depth_mm"]
    lvl_body = _body_level(X2, Y2, a, b, p)
    wall_fat = p["fat_mm"]
    lvl_muscle = _body_level(X2, Y2, a - 1.25 * wall_fat, b - wall_fat * 0.7, p)
    body2 = lvl_body < 1.0
    muscle2 = lvl_muscle < 1.0
    sx, sy = cavity_scale(Z, p, f)
    acz, bcz = f.ac * sx, f.bc * sy
    cavity = ((X / acz) ** 2 + ((Y - f.yc) / bcz) ** 2) < 1.0
    rib_lvl = (X / (acz + p["rib_mm"])) ** 2 + ((Y - f.yc) / (bcz + p["rib_mm"])) ** 2
    ribring = (rib_lvl < 1.0) & ~cavity & ((np.abs(X) > 28.0) | (Y > f.yc))

    hu = np.full((nz, ny, nx), HU_AIR, np.float32)
    body = np.broadcast_to(body2, (nz, ny, nx)).copy()
    hu[:, body2] = p["hu_fat"]
    hu[:, muscle2] = p["hu_muscle"]
    # intermuscular fat stripes and a breast/pectoral fold anteriorly
    hu[:, muscle2 & (np.abs(lvl_muscle - 0.82) < 0.025)] = p["hu_fat"]

    # ribs: a sloped periodic pattern on the ring around the cavity (posterior ends higher)
    Zc = Z[:, 0, 0][:, None, None]
    phase = np.mod(Zc + 45.0 * (1.0 - (Y2 - f.yc) / f.bc)[None] + 7.0 * np.abs(X2 / f.ac)[None], 27.0)
    rib = (phase < 10.0) & ribring & (Zc < f.z_apex + 10.0)
    hu[rib] = p["hu_bone"]
    # scapulae: posterolateral plates in the muscle layer, upper half of the thorax
    scap2 = (np.abs(np.abs(X2) - 0.62 * a) < 0.2 * a) & (np.abs(lvl_muscle - 0.97) < 0.05) & (Y2 > 0.35 * b)
    hu[(Zc > 0.45 * f.z_apex) & scap2[None]] = p["hu_bone"] * 0.9

    # mediastinum / abdomen filling of the cavity (fat, then organs)
    hu[cavity] = p["hu_fat"] + 20.0
    # above the lung apices the cavity is neck/shoulder-girdle muscle with fat planes
    ap = (Zc > apex_z(X2, Y2, p, f)[None]) & cavity
    pix = float(X2[0, 1] - X2[0, 0])
    planes = ndi.gaussian_filter(rng.standard_normal((ny, nx)), 7.0 / pix)
    planes /= max(float(planes.std()), 1e-6)
    neck = np.where(np.abs(planes) < 0.18, p["hu_fat"], p["hu_muscle"]).astype(np.float32)
    hu[ap] = np.broadcast_to(neck, hu.shape)[ap]
    # sternum (anterior midline bone), above the xiphoid
    stern2 = (np.abs(X2) < 16.0) & (np.abs(Y2 - (f.yc - f.bc - 6.0)) < 6.5)
    hu[(Zc > -20.0) & stern2[None]] = p["hu_bone"]
    # vertebral body (cancellous with cortical rim), canal, posterior elements
    ys, rs = spine_centre(f)
    rv = np.sqrt(X2 ** 2 + (Y2 - ys) ** 2)
    hu[:, rv < rs] = HU_CANCELLOUS + 40.0
    hu[:, (rv < rs) & (rv > rs - 2.5)] = HU_CORTICAL
    canal = np.sqrt(X2 ** 2 + (Y2 - ys - rs - 9.0) ** 2) < 8.0
    posterior = (np.abs(X2) < 22.0) & (Y2 > ys + rs - 2.0) & (Y2 < ys + rs + 38.0) & ~canal
    hu[:, posterior & ((np.abs(X2) < 5.0) | (np.abs(Y2 - ys - rs - 16.0) < 6.0))] = HU_CORTICAL * 0.7
    hu[:, canal] = 15.0
    # intervertebral discs: every ~28 mm the body is soft tissue
    disc = np.mod(Zc - 5.0, 28.0) < 5.0
    hu[disc & (rv < rs)[None]] = 80.0
    # descending aorta (left of the spine), ascending aorta, oesophagus
    aorta_d = (X2 - 24.0) ** 2 + (Y2 - (ys - 18.0)) ** 2 < 13.0 ** 2
    hu[aorta_d[None] & cavity] = p["hu_blood"]
    asc = (X2 + 12.0) ** 2 + (Y2 - (f.yc - 0.35 * f.bc)) ** 2 < 15.0 ** 2
    hu[(Zc > p["heart_z_mm"] + 0.6 * p["heart_rz_mm"]) & (Zc < f.z_carina + 15.0) & asc[None]] = p["hu_blood"]
    arch_z = f.z_carina + 22.0
    arch = (np.abs(Zc - arch_z) < 13.0) & ((X2 + 12.0) * (X2 - 24.0) < 0)[None] \
        & (np.abs(Y2 - (ys - 18.0 + f.yc - 0.35 * f.bc) / 2.0) < 0.5 * (ys - 18.0 - f.yc + 0.35 * f.bc) + 13.0)[None]
    hu[arch & cavity] = p["hu_blood"]
    # great vessels of the upper mediastinum (brachiocephalic, carotid, subclavian arteries, veins)
    for gx, gy, gr in ((-14.0, -30.0, 8.0), (8.0, -26.0, 5.5), (20.0, -16.0, 6.0), (-30.0, -38.0, 8.5), (26.0, -40.0, 7.0)):
        gv = (X2 - gx) ** 2 + (Y2 - (ys - rs - 24.0 + gy)) ** 2 < gr ** 2
        hu[(Zc > arch_z + 8.0) & gv[None] & cavity] = p["hu_blood"]
    eso = (X2 - 6.0) ** 2 + (Y2 - (ys - rs - 9.0)) ** 2 < 8.0 ** 2
    hu[:, eso] = p["hu_muscle"] - 5.0

    # heart (blood pool, myocardium ~ the same without contrast) with pericardial fat rim
    hl = heart_level(X, Y, Z, p, f)
    hu[hl < 1.0] = p["hu_fat"] + 10.0
    hu[hl < 0.8] = p["hu_blood"]

    # below the diaphragm: muscle sheet, liver (right), stomach with gas cap and spleen (left)
    zd = diaphragm_z(X2, Y2, p, f)[None]
    sub = (Zc < zd) & cavity
    hu[sub & (Zc > zd - 5.0)] = p["hu_muscle"]
    deep = sub & (Zc <= zd - 5.0)
    hu[deep] = p["hu_fat"] + 70.0
    liver = deep & ((X2 < 25.0 - 0.25 * (Y2 - f.yc))[None])
    hu[liver] = p["hu_liver"]
    sp = ((X2 - 0.62 * f.ac) / 38.0) ** 2 + ((Y2 - (f.yc + 0.45 * f.bc)) / 45.0) ** 2
    hu[deep & (sp < 1.0)[None] & (Zc > zd - 80.0)] = HU_SPLEEN
    st_c = (0.42 * f.ac, f.yc - 0.2 * f.bc)
    st_top = float(np.min(diaphragm_z(np.float32(st_c[0]), np.float32(st_c[1]), p, f))) - 9.0
    st = ((X - st_c[0]) / 50.0) ** 2 + ((Y - st_c[1]) / 45.0) ** 2 + ((Z - (st_top - 40.0)) / 40.0) ** 2
    stomach = (st < 1.0) & deep
    hu[stomach & (st > 0.8)] = p["hu_muscle"]
    level_y = st_c[1] + 45.0 * (1.0 - 2.0 * p["stomach_gas_frac"])
    hu[stomach & (st <= 0.8) & (Y < level_y)] = HU_AIR
    hu[stomach & (st <= 0.8) & (Y >= level_y)] = 15.0
    # bowel (colon) gas bubbles, anterior, at least 12 mm below the diaphragm
    for _ in range(int(p["n_bowel_gas"])):
        cx = rng.uniform(-0.6, 0.7) * f.ac
        cy = f.yc + rng.uniform(-0.8, -0.2) * f.bc
        r = rng.uniform(8.0, 18.0)
        zt = float(diaphragm_z(np.float32(cx), np.float32(cy), p, f)) - 12.0 - r
        cz = rng.uniform(f.z_min, max(f.z_min + 1.0, zt))
        g = (X - cx) ** 2 + (Y - cy) ** 2 + ((Z - cz) / 1.4) ** 2
        hu[(g < r ** 2) & deep] = HU_AIR
        hu[(g >= r ** 2) & (g < (r + 2.5) ** 2) & deep] = p["hu_muscle"]

    # scanner table: curved carbon shell with a foam core, below (posterior to) the body
    tbl_y = f.table_y + p["table_curv_per_mm"] * X2 ** 2
    shell = ((np.abs(Y2 - tbl_y - 1.5) < 1.5) | (np.abs(Y2 - tbl_y - 32.0) < 2.0)) & (np.abs(X2) < 215.0)
    foam = (Y2 > tbl_y + 3.0) & (Y2 < tbl_y + 30.0) & (np.abs(X2) < 212.0)
    hu[:, foam & ~body2] = -880.0
    hu[:, shell & ~body2] = 180.0
    return hu, body
