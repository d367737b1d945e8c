"""Loss curve (CSV + PNG) and model card written beside the trained encoder's weights."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from ...io.tables import atomic_path


def write_loss_curve(history: Sequence[dict[str, Any]], out_dir: str | Path) -> tuple[Path, Path]:
    """``loss.csv`` (epoch, step, loss, contrastive, density, lr) and ``loss.png`` (per-step total
    loss, epoch means, and the epoch means of the two terms)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    df = pd.DataFrame(list(history), columns=["epoch", "step", "loss", "contrastive", "density", "lr"])
    csv = out_dir / "loss.csv"
    with atomic_path(csv) as tmp:
        df.to_csv(tmp, index=False)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot(df["step"], df["loss"], lw=0.8, alpha=0.6, label="step")
    means = df.groupby("epoch").agg(step=("step", "max"), loss=("loss", "mean"), con=("contrastive", "mean"),
                                    den=("density", "mean"))
    ax.plot(means["step"], means["loss"], "o-", label="total, epoch mean")
    ax.plot(means["step"], means["con"], "s--", ms=3, label="InfoNCE term")
    if means["den"].abs().sum() > 0:
        ax.plot(means["step"], means["den"], "^--", ms=3, label="density term")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("SSL patch encoder: training loss")
    ax.legend()
    fig.tight_layout()
    png = out_dir / "loss.png"
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return csv, png


def _density_text(settings: dict[str, Any]) -> str:
    if not settings.get("density_weight"):
        return "No auxiliary density term (`density_weight` 0): the objective is contrastive only."
    edges = ", ".join(f"{e:g}" for e in settings["density_bins_hu"])
    return (f"Plus, with weight {settings['density_weight']:g}, a density term: a linear head on each view's "
            f"embedding regresses the cumulative histogram of the clean patch's lung voxels (fraction below "
            f"each of {edges} HU; squared error), a target computed from the image alone.")


def write_model_card(out_dir: str | Path, *, settings: dict[str, Any], scans: Sequence[str],
                     history: Sequence[dict[str, Any]], seconds: float, device: str,
                     steps_per_epoch: int) -> Path:
    """``MODEL_CARD.md``: data, objective, hyper-parameters and the loss curve."""
    import torch

    out_dir = Path(out_dir)
    epochs = sorted({int(h["epoch"]) for h in history})
    rows = "\n".join(f"| {e + 1} | {np.mean([h['loss'] for h in history if h['epoch'] == e]):.4f} |"
                     for e in epochs)
    hp = "\n".join(f"| `{k}` | `{json.dumps(v)}` |" for k, v in settings.items())
    text = f"""# Model card: ctpheno SSL lung-patch encoder

Written {datetime.now(timezone.utc).isoformat(timespec='seconds')} by `ctpheno embed train`
(torch {torch.__version__}, device `{device}`, {seconds:.1f} s of training in this run).

## Model
A small 3D CNN (`ctpheno.features.deep_embeddings.encoder.PatchEncoder`, width {settings['width']},
embedding dimension {8 * settings['width']}) mapping a {settings['patch_size']}^3 patch at
{settings['spacing_mm']} mm isotropic to a vector (spatial mean of the last stage). A scan's
embedding is the mean of its patch embeddings over the whole lung and per zone
(upper = zones 1+4, middle = 2+5, lower = 3+6).

## Data
{len(scans)} scans (lung-masked, HU window {settings['hu_window'][0]:g}...{settings['hu_window'][1]:g}
-> 0...1, outside the lungs = 0), {settings['train_patches_per_scan']} anchor patches per scan per epoch,
centres drawn among lung voxels whose patch is at least {settings['min_lung_fraction']:g} lung.
No labels of any kind are used. Scan ids: {', '.join(list(scans)[:12])}{' ...' if len(scans) > 12 else ''}.

## Objective
Contrastive InfoNCE / NT-Xent (SimCLR, Chen et al. ICML 2020), temperature {settings['temperature']},
in the multi-positive (supervised-contrastive, Khosla et al. NeurIPS 2020) form with the scan as
the only "label": each batch holds {settings['views_per_scan']} anchor/positive pairs per scan and
all views of one scan are positives of each other (views of other scans are negatives). The
positive of an anchor is a patch of the same scan centred up to
{settings['positive_shift']:g} x patch edge away; views get random flips, axis permutations and
Gaussian noise (SD {settings['noise_sd']}) — no intensity jitter, so density is kept.
{_density_text(settings)}
AdamW, cosine learning-rate decay, {steps_per_epoch} steps per epoch of {settings['batch_size']} pairs.

## Hyper-parameters
| setting | value |
|---|---|
{hp}

## Loss curve
![loss](loss.png) (per step in `loss.csv`)

| epoch | mean loss |
|---|---|
{rows}

## Intended use and limits
Features for linear probes, clustering and comparison with radiomics in ctpheno. Trained on the
cohort at hand only; not a diagnostic device. Deterministic on CPU for a fixed seed.
"""
    path = out_dir / "MODEL_CARD.md"
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path
