"""Small phantoms with known answers for the features tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ctpheno.vocab import ZONE_CODES


@dataclass(frozen=True)
class LungPhantom:
    hu: np.ndarray
    labels: np.ndarray
    zones: np.ndarray
    spacing_mm: tuple[float, float, float]
    blob: np.ndarray
    """The -980 HU emphysema blob (inside the right lung's upper zone)."""


def make_lung_phantom(
    shape=(48, 40, 56), spacing_mm=(1.25, 0.8, 0.8), *, noise_hu: float = 0.0, seed: int = 0
) -> LungPhantom:
    """Two ellipsoid lungs at -850 HU (body -> 40 HU) with a -980 HU ball in the right upper lung.

    Patient right lies at low x here (the tests only need labels 1/2, not geometry).
    Zones: equal thirds in z of each lung's extent (upper = low z).
    """
    z, y, x = np.indices(shape, dtype=np.float64)
    cz, cy = shape[0] / 2, shape[1] / 2
    right = ((z - cz) / (0.42 * shape[0])) ** 2 + ((y - cy) / (0.4 * shape[1])) ** 2 + (
        (x - 0.28 * shape[2]) / (0.2 * shape[2])
    ) ** 2 <= 1
    left = ((z - cz) / (0.42 * shape[0])) ** 2 + ((y - cy) / (0.4 * shape[1])) ** 2 + (
        (x - 0.72 * shape[2]) / (0.2 * shape[2])
    ) ** 2 <= 1
    labels = np.zeros(shape, np.uint8)
    labels[right] = 1
    labels[left] = 2
    # an airway tube at -1000 HU inside the left lung's centre: label 3, must be excluded
    airway = ((y - cy) ** 2 + (x - 0.72 * shape[2]) ** 2 <= 2.0) & left
    labels[airway] = 3
    hu = np.full(shape, 40.0)
    hu[right | left] = -850.0
    blob = ((z - 0.3 * shape[0]) ** 2 + (y - cy) ** 2 + (x - 0.28 * shape[2]) ** 2) <= 5.0**2
    blob &= labels == 1
    hu[blob] = -980.0
    hu[airway] = -1000.0
    if noise_hu:
        hu += np.random.default_rng(seed).normal(0.0, noise_hu, shape)
    hu = np.round(hu).astype(np.int16)
    zones = np.zeros(shape, np.uint8)
    for side, lab in (("right", 1), ("left", 2)):
        m = labels == lab
        zz = np.nonzero(m.any(axis=(1, 2)))[0]
        edges = np.linspace(zz[0], zz[-1] + 1, 4)
        for i, level in enumerate(("upper", "middle", "lower")):
            sl = (z >= edges[i]) & (z < edges[i + 1]) & m
            zones[sl] = ZONE_CODES[(side, level)]
    return LungPhantom(hu, labels, zones, tuple(spacing_mm), blob)


@pytest.fixture(scope="module")
def lung_phantom() -> LungPhantom:
    return make_lung_phantom()


@pytest.fixture(scope="module")
def noisy_phantom() -> LungPhantom:
    return make_lung_phantom(noise_hu=60.0, seed=3)
