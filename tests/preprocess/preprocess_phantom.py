"""The small analytic chest phantom of the preprocess tests (known answers) and Dice.

A plain module with a unique name, imported by ``conftest.py`` and the tests, so that running any
subset of the suite resolves it (``from conftest import`` can pick another folder's conftest)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctpheno.io.volume import Volume

SPACING = (2.5, 2.0, 2.0)


@dataclass(frozen=True)
class SmallPhantom:
    image: Volume
    truth: np.ndarray  # 1 right lung (incl. emphysema blob), 2 left lung, 3 trachea
    emphysema: np.ndarray
    bowel_gas: np.ndarray


def make_small_phantom(*, bridge: bool = False, flip_x: bool = False) -> SmallPhantom:
    """Body (40 HU) on a table, two ellipsoid lungs (-850 HU) with a -980 HU emphysema blob of known
    volume in the right lung, a trachea (-1000 HU) above the carina joining both lungs through main
    bronchi, bowel gas (-1000 HU) below the left lung, outside air -1000 and padding -3024 HU.

    Identity direction: array x (axis 2) increases toward the patient's left, so the right lung lies at
    small x. ``bridge`` joins the lungs anteriorly (a thin junction); ``flip_x`` stores the same patient
    with x reversed and direction column i = -x (the physical positions are unchanged).
    """
    nz, ny, nx = 80, 96, 112
    z, y, x = np.meshgrid(np.arange(nz) * SPACING[0], np.arange(ny) * SPACING[1], np.arange(nx) * SPACING[2],
                          indexing="ij")
    cy, cx = ny * SPACING[1] / 2, nx * SPACING[2] / 2
    hu = np.full((nz, ny, nx), -1000.0, np.float32)
    body = ((y - cy) / 80.0) ** 2 + ((x - cx) / 105.0) ** 2 <= 1.0
    body &= (z > 5) & (z < 195)
    hu[body] = 40.0
    table = (y > cy + 86) & (y < cy + 90)
    hu[table] = 200.0
    # lungs: ellipsoids, apex high (large z = superior in LPS with identity direction)
    zc, rz = 110.0, 70.0
    right = ((x - (cx - 45)) / 35.0) ** 2 + ((y - cy) / 55.0) ** 2 + ((z - zc) / rz) ** 2 <= 1.0
    left = ((x - (cx + 45)) / 33.0) ** 2 + ((y - cy) / 55.0) ** 2 + ((z - zc) / rz) ** 2 <= 1.0
    if bridge:
        junction = (np.abs(x - cx) <= 14) & (np.abs(y - (cy - 35)) <= 3) & (np.abs(z - zc) <= 30)
        right |= junction & (x < cx)
        left |= junction & (x >= cx)
    hu[right | left] = -850.0
    emph = ((x - (cx - 50)) ** 2 + (y - cy) ** 2 + (z - zc) ** 2) <= 15.0 ** 2
    hu[emph] = -980.0
    # vessels: bright tubes inside the lungs (must stay inside the mask)
    for dx in (-45, 45):
        ves = ((x - (cx + dx)) ** 2 + (y - (cy + 10)) ** 2 <= 3.0 ** 2) & (np.abs(z - zc) <= 40)
        hu[ves & (right | left)] = 40.0
    # trachea from the top of the lungs down to the carina, main bronchi to each lung
    trachea = ((x - cx) ** 2 + (y - (cy - 10)) ** 2 <= 8.0 ** 2) & (z >= 140) & (z < 195)
    bronchi = np.zeros_like(trachea)
    for sgn in (-1, 1):
        t = np.clip((x - cx) * sgn / 30.0, 0, 1)
        bz = 140 - 15 * t
        bronchi |= ((x - cx) * sgn >= 0) & ((x - cx) * sgn <= 30) & ((y - (cy - 10)) ** 2 + (z - bz) ** 2 <= 5.0 ** 2)
    hu[trachea | bronchi] = -1000.0
    gas = ((x - (cx + 40)) ** 2 + (y - (cy - 20)) ** 2 + (z - 22) ** 2) <= 12.0 ** 2
    hu[gas] = -1000.0
    # reconstruction circle padding
    circ = (y - cy) ** 2 + (x - cx) ** 2 > (min(cy, cx) + 20) ** 2
    hu[circ] = -3024.0
    rng = np.random.default_rng(0)
    hu = hu + rng.normal(0, 15, hu.shape).astype(np.float32)
    truth = np.zeros(hu.shape, np.uint8)
    truth[right & ~(trachea | bronchi)] = 1
    truth[left & ~(trachea | bronchi)] = 2
    truth[(trachea | bronchi) & ~(right | left)] = 3
    arr = np.rint(hu).astype(np.int16)
    direction = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    origin = (0.0, 0.0, 0.0)
    if flip_x:
        arr, truth, emph, gas = (a[:, :, ::-1].copy() for a in (arr, truth, emph, gas))
        direction = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
        origin = ((nx - 1) * SPACING[2], 0.0, 0.0)
    return SmallPhantom(Volume(arr, SPACING, origin, direction), truth, emph, gas)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.count_nonzero(a & b) / max(int(np.count_nonzero(a)) + int(np.count_nonzero(b)), 1))
