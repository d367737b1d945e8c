"""Shared fixtures: a small synthetic cohort with known emphysema truth, and a fast SSL config."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from ctpheno.config.embeddings import EmbeddingsConfig

SUBTYPES = ("none", "centrilobular", "panlobular", "paraseptal")
N_PER_SUBTYPE = 4

#: a short SSL run (well under a minute on 2 CPU cores) that still learns density/texture
FAST = dict(patch_size=16, spacing_mm=3.0, width=8, epochs=8, learning_rate=5e-3, train_patches_per_scan=32, batch_size=32,
            extract_patches_per_scan=128, seed=0, device="cpu")


@dataclass
class Scan:
    scan_id: str
    hu: np.ndarray
    labels: np.ndarray
    zones: np.ndarray
    spacing_mm: tuple[float, float, float]
    subtype: str
    fraction: float
    volume: object


def thirds_zones(labels: np.ndarray, superior_axis: int, superior_sign: int) -> np.ndarray:
    """Zone codes 1-6 by equal thirds of each lung's cranio-caudal extent (test stand-in for
    preprocess's zone map; codes as ctpheno.io.zarrstore.ZONE_CODES)."""
    lab = np.moveaxis(labels, superior_axis, 0)
    if superior_sign < 0:
        lab = lab[::-1]
    zones = np.zeros(lab.shape, np.uint8)
    for side, base in ((1, 0), (2, 3)):
        m = lab == side
        rows = np.nonzero(m.any(axis=(1, 2)))[0]
        cuts = np.linspace(rows.min(), rows.max() + 1, 4).round().astype(int)
        for k, code in enumerate((3, 2, 1)):  # inferior third = lower (3), ..., superior = upper (1)
            sl = slice(cuts[k], cuts[k + 1])
            zones[sl][m[sl]] = base + code
    if superior_sign < 0:
        zones = zones[::-1]
    return np.ascontiguousarray(np.moveaxis(zones, 0, superior_axis))


def make_scan(i: int, subtype: str, fraction: float) -> Scan:
    from ctpheno.synth import make_phantom

    p = make_phantom(seed=500 + i, size="demo", subtype=subtype, emphysema_fraction=fraction)
    ax, sign = p.image.index_axis_superior()
    labels = p.lungs.array
    return Scan(f"s{i:02d}", p.image.array, labels, thirds_zones(labels, ax, sign), p.image.spacing_mm,
                subtype, float(p.params.get("emphysema_fraction_realised", fraction)), p.image)


@pytest.fixture(scope="session")
def cohort() -> list[Scan]:
    """16 demo-size phantoms: 4 subtypes x 4, emphysema fraction 0 (none) or 0.05-0.40."""
    rng = np.random.default_rng(2024)
    scans = []
    for i in range(N_PER_SUBTYPE * len(SUBTYPES)):
        sub = SUBTYPES[i % len(SUBTYPES)]
        frac = 0.0 if sub == "none" else float(rng.uniform(0.05, 0.40))
        scans.append(make_scan(i, sub, frac))
    return scans


@pytest.fixture(scope="session")
def fast_cfg() -> EmbeddingsConfig:
    return EmbeddingsConfig(**FAST)
