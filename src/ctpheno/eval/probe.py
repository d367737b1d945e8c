"""Linear probes of scan embeddings against phantom truth: the embeddings acceptance protocol.

A *linear probe* asks how much of a known quantity a frozen representation holds in linearly
readable form. The protocol (used by ``tests/embeddings/test_probe.py`` and
``benchmarks/bench_embeddings.py``, reported in docs/embeddings.md and docs/results.md):

* **Cohort.** :func:`phantom_cohort`: demo-size phantoms from :func:`ctpheno.synth.make_phantom`,
  the four emphysema subtypes in turn (``none``, ``centrilobular``, ``panlobular``,
  ``paraseptal``), emphysema fraction 0 for ``none`` and uniform 0.05-0.40 otherwise, from one
  seeded stream (a longer cohort extends a shorter one); zones from
  :func:`ctpheno.preprocess.lung_zones` on the phantom's true lung labels.
* **Probes.** Emphysema fraction: ridge regression (penalty by efficient leave-one-out over
  :math:`10^{-3} \\ldots 10^{3}`) on the standardised whole-lung embedding, scored by
  :math:`R^2` of the out-of-fold predictions. Subtype: logistic regression (C = 1) on the
  standardised concatenated whole + upper + middle + lower embeddings, scored by accuracy.
  Both by 4-fold cross-validation (stratified for the subtype) repeated over shuffles, averaged.

Scaling and penalty are fitted inside each training fold only (scikit-learn pipelines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import numpy.typing as npt

from ..features.deep_embeddings.patches import REGION_ZONES

if TYPE_CHECKING:
    from ..config.embeddings import EmbeddingsConfig
    from ..features.deep_embeddings.ssl import TrainResult

SUBTYPES = ("none", "centrilobular", "panlobular", "paraseptal")
REGIONS = ("whole", *REGION_ZONES)
#: a short SSL run (about 25 s of training for 48 scans on 2 CPU cores) used by the probe test and benchmark
PROBE_SSL = dict(patch_size=16, spacing_mm=3.0, width=8, epochs=8, learning_rate=5e-3, train_patches_per_scan=32,
                 batch_size=32, extract_patches_per_scan=128, seed=0, device="cpu")


@dataclass
class PhantomScan:
    """One probe phantom: image, labels and zones (z, y, x) with its truth."""

    scan_id: str
    hu: npt.NDArray[np.int16]
    labels: npt.NDArray[np.uint8]
    zones: npt.NDArray[np.uint8]
    spacing_mm: tuple[float, float, float]
    subtype: str
    fraction: float
    volume: object


@dataclass(frozen=True)
class ProbeScores:
    """Cross-validated probe scores (means over the shuffles)."""

    fraction_r2: float
    subtype_accuracy: float


def cohort_plan(n: int, *, seed: int = 2024) -> list[tuple[str, float]]:
    """(subtype, emphysema fraction) of the first ``n`` phantoms (see module docstring)."""
    rng = np.random.default_rng(seed)
    plan = []
    for i in range(n):
        sub = SUBTYPES[i % len(SUBTYPES)]
        plan.append((sub, 0.0 if sub == "none" else float(rng.uniform(0.05, 0.40))))
    return plan


def phantom_scan(i: int, subtype: str, fraction: float, *, seed_base: int = 500) -> PhantomScan:
    """Phantom ``i`` of a probe cohort (phantom seed ``seed_base + i``)."""
    from ..preprocess import lung_zones
    from ..synth import make_phantom

    p = make_phantom(seed=seed_base + i, size="demo", subtype=subtype, emphysema_fraction=fraction)
    labels = p.lungs.array
    zones = np.asarray(lung_zones(p.lungs).array)
    return PhantomScan(f"s{i:02d}", p.image.array, labels, zones, p.image.spacing_mm, subtype,
                       float(p.params.get("emphysema_fraction_realised", fraction)), p.image)


def _phantom_job(job: tuple[int, str, float]) -> PhantomScan:
    return phantom_scan(*job)


def phantom_cohort(n: int, *, start: int = 0, seed: int = 2024, workers: int | None = None) -> list[PhantomScan]:
    """Phantoms ``start`` ... ``n - 1`` of the probe cohort of :func:`cohort_plan`.

    ``workers`` > 1 generates them in that many processes (default: the usable cores, at most 4);
    the result does not depend on it (each phantom has its own seed).
    """
    import os

    jobs = [(i, sub, frac) for i, (sub, frac) in enumerate(cohort_plan(n, seed=seed)) if i >= start]
    if workers is None:
        workers = min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    if workers <= 1 or len(jobs) < 4:
        return [_phantom_job(j) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_phantom_job, jobs))


def train_probe_encoder(cohort: Sequence[PhantomScan], cfg: EmbeddingsConfig, out_dir: str | Path) -> TrainResult:
    """Train the SSL patch encoder on ``cohort`` (no labels) into ``out_dir``; the ``TrainResult``."""
    from ..features.deep_embeddings.patches import lung_grid
    from ..features.deep_embeddings.ssl import train_encoder, training_scan

    scans = [training_scan(s.scan_id, lung_grid(s.hu, s.labels, s.spacing_mm, target_mm=cfg.spacing_mm,
                                                margin_mm=24.0, hu_window=cfg.hu_window),
                           patch_size=cfg.patch_size, min_lung_fraction=cfg.min_lung_fraction) for s in cohort]
    return train_encoder(scans, cfg=cfg, out_dir=out_dir)


def embed_cohort(cohort: Sequence[PhantomScan], cfg: EmbeddingsConfig,
                 checkpoint: str | Path | None = None) -> list[dict[str, npt.NDArray[np.float32]]]:
    """Per-scan region embeddings of ``cohort`` with the encoder ``cfg.model`` names."""
    from ..features.deep_embeddings.extract import embed_lungs, load_encoder

    enc = load_encoder(cfg, checkpoint=checkpoint)
    return [embed_lungs(s.hu, s.labels, s.spacing_mm, encoder=enc, cfg=cfg, zones=s.zones) for s in cohort]


def probe_scores(embeddings: Sequence[dict[str, npt.NDArray[np.floating]]], fraction: npt.ArrayLike,
                 subtype: npt.ArrayLike, *, shuffles: int = 5, folds: int = 4) -> ProbeScores:
    """Linear-probe scores of per-scan embeddings (region name -> vector, as ``embed_lungs`` returns).

    Every scan needs the ``whole`` region; the subtype probe also uses ``upper``, ``middle`` and
    ``lower``.
    """
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(fraction, dtype=float)
    labels = np.asarray(subtype)
    if len(embeddings) != len(y) or len(y) != len(labels):
        raise ValueError(f"{len(embeddings)} embeddings, {len(y)} fractions and {len(labels)} subtypes differ")
    x = np.stack([e["whole"] for e in embeddings])
    xz = np.stack([np.concatenate([e[r] for r in REGIONS]) for e in embeddings])
    r2s, accs = [], []
    for rep in range(shuffles):
        ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13)))
        pred = cross_val_predict(ridge, x, y, cv=KFold(folds, shuffle=True, random_state=rep))
        r2s.append(1.0 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))
        logit = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
        lab_pred = cross_val_predict(logit, xz, labels, cv=StratifiedKFold(folds, shuffle=True, random_state=rep))
        accs.append(np.mean(lab_pred == labels))
    return ProbeScores(float(np.mean(r2s)), float(np.mean(accs)))


__all__ = ["PROBE_SSL", "PhantomScan", "ProbeScores", "cohort_plan", "embed_cohort", "phantom_cohort",
           "phantom_scan", "probe_scores", "train_probe_encoder"]
