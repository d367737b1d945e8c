"""A small thin-slice chest phantom reconstructed with the generator's kernels, for the density tests.

The noise-free object (0.7 mm pixels, 1 mm slices, 40 x 200 x 200 voxels): a soft-tissue body, two
ellipsoidal lungs whose parenchyma has a texture, vessels and emphysema holes of known size, a
tracheal air column between them and a descending aorta beside the left lung. It goes through
:func:`ctpheno.synth.acquisition.reconstruct`, so the smooth and the sharp series share the noise
realisation exactly as two reconstructions of one acquisition do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ctpheno.vocab import ZONE_CODES
from ctpheno.synth.acquisition import noise_sd_hu, reconstruct

SPACING = (1.0, 0.7, 0.7)
SHAPE = (40, 200, 200)
HU_BLOOD = 42.0


@dataclass(frozen=True)
class ChestObject:
    hu: np.ndarray
    """float32 noise-free HU (after the slice profile)."""
    labels: np.ndarray
    zones: np.ndarray
    white: np.ndarray
    """The acquisition's white noise (shared by every reconstruction)."""


def make_object(*, seed: int = 0, emphysema: float = 0.08) -> ChestObject:
    rng = np.random.default_rng(seed)
    nz, ny, nx = SHAPE
    z, y, x = np.indices(SHAPE, dtype=np.float32)
    zc = (nz - 1) / 2
    hu = np.full(SHAPE, -1000.0, np.float32)
    body = ((y - 100) / 92.0) ** 2 + ((x - 100) / 96.0) ** 2 <= 1.0
    hu[body] = 40.0
    hu[body & (((y - 100) / 84.0) ** 2 + ((x - 100) / 88.0) ** 2 > 1.0)] = -90.0  # subcutaneous fat
    lungs = {}
    for lab, cx in ((1, 58.0), (2, 142.0)):
        lungs[lab] = ((np.abs(z - zc) / 18.5) ** 4 + ((y - 100) / 62.0) ** 2 + ((x - cx) / 33.0) ** 2) <= 1.0
    lung = lungs[1] | lungs[2]
    tex = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), (1.0, 2.0, 2.0))
    tex *= 16.0 / tex.std()
    paren = -865.0 + 25.0 * (y - 100) / 62.0 + tex
    vess = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), (1.5, 1.5, 1.5))
    vess = vess > np.quantile(vess[lung], 0.95)
    holes = ndi.gaussian_filter(rng.standard_normal(SHAPE).astype(np.float32), (2.0, 3.0, 3.0))
    holes = lung & (holes > np.quantile(holes[lung], 1.0 - emphysema))
    hu[lung] = paren[lung]
    hu[lung & vess] = HU_BLOOD
    hu[holes] = -985.0 + 5.0 * tex[holes] / 16.0
    trachea = ((y - 80) ** 2 + (x - 100) ** 2) <= (11.0 / 0.7) ** 2
    hu[trachea] = -1000.0
    wall = (((y - 80) ** 2 + (x - 100) ** 2) <= (13.0 / 0.7) ** 2) & ~trachea
    hu[wall] = 50.0
    fat = ((y - 150) ** 2 + (x - 102) ** 2) <= (20.0 / 0.7) ** 2  # posterior mediastinal fat
    hu[fat & ~lung] = -90.0
    aorta = ((y - 150) ** 2 + (x - 106) ** 2) <= (12.0 / 0.7) ** 2
    hu[aorta & ~lung] = HU_BLOOD
    hu = ndi.gaussian_filter(hu, (SPACING[0] * 0.4247, 0.0, 0.0), mode="nearest").astype(np.float32)
    labels = np.zeros(SHAPE, np.uint8)
    labels[lungs[1]] = 1
    labels[lungs[2]] = 2
    labels[trachea & ~lung] = 3
    zones = np.zeros(SHAPE, np.uint8)
    for side, lab in (("right", 1), ("left", 2)):
        m = labels == lab
        zz = np.flatnonzero(m.any(axis=(1, 2)))
        edges = np.linspace(zz[-1] + 1, zz[0], 4)  # the last slice is superior: upper third at high z
        for i, level in enumerate(("upper", "middle", "lower")):
            zones[(z < edges[i]) & (z >= edges[i + 1]) & m] = ZONE_CODES[(side, level)]
    white = rng.standard_normal(SHAPE).astype(np.float32)
    return ChestObject(hu, labels, zones, white)


def scan(obj: ChestObject, kernel: str, *, mas: float = 150.0, offset_hu: float = 0.0,
         floor_hu: int = -1024) -> np.ndarray:
    """One reconstruction of ``obj`` (int16 HU) with the generator's kernel physics."""
    return reconstruct(obj.hu, obj.white, kernel=kernel, noise_hu=noise_sd_hu(kernel, mas, SPACING),
                       pixel_mm=SPACING[1:], air_offset_hu=offset_hu, floor_hu=floor_hu)


def laa950(hu: np.ndarray, labels: np.ndarray) -> float:
    """LAA-950 (%) of labels 1+2: the truth as the features stage defines it."""
    v = hu[(labels == 1) | (labels == 2)]
    return 100.0 * float(np.count_nonzero(v <= -950)) / v.size
