r"""Self-supervised training of the patch encoder (contrastive, InfoNCE / NT-Xent).

Objective
---------
For each anchor patch (centre drawn uniformly among lung voxels of a random scan) the positive
is a second patch from the *same scan*, centred up to ``positive_shift * P`` voxels away; both
views get random flips, axis permutations (the grid is isotropic) and Gaussian noise. The other
``2B - 2`` views of the batch are negatives. With projections :math:`z_i` (L2-normalised),

.. math:: \ell_{i} = -\log \frac{\exp(z_i \cdot z_{j(i)} / \tau)}{\sum_{k \ne i} \exp(z_i \cdot z_k / \tau)}

averaged over the 2B views (SimCLR [1]_). By default (``views_per_scan`` = k > 1) each batch is
made of B / k scans with k pairs each, and the loss takes the multi-positive (supervised
contrastive [2]_) form with the *scan* as the only label: for view :math:`i` with the set
:math:`P(i)` of the other :math:`2k - 1` views of its scan,

.. math:: \ell_{i} = -\frac{1}{|P(i)|} \sum_{p \in P(i)} \log
          \frac{\exp(z_i \cdot z_p / \tau)}{\sum_{k \ne i} \exp(z_i \cdot z_k / \tau)}.

Plain pairs (k = 1) let two patches of the same scan act as negatives of each other, which pushes
apart exactly the patches that share a density and texture; with the scan as positive set the
encoder is pulled to what all patches of a lung share (emphysema extent, hole size and pattern)
and pushed away from other lungs. On a 16-scan tuning cohort this lifted the probe R2 for the
emphysema fraction from 0.57 (plain pairs) to 0.74-0.94 over three seeds; on the 48-scan probe
cohort the contrastive term alone reaches 0.84-0.89 against 0.24-0.49 for random weights
(docs/embeddings.md).
Intensities are *not* jittered, so density is never made an invariance: two patches of one lung
share their density and texture statistics but not their exact anatomy, which is what the encoder
must learn to keep and to ignore respectively.

Density target
--------------
The contrastive term alone does not have to keep the *amount* of low attenuation in a form a
linear probe can read: a random 3D CNN with mean pooling already encodes mean density about as
well (docs/embeddings.md). With ``density_weight`` :math:`\lambda > 0` a linear head :math:`g`
on each view's embedding :math:`h_i` also regresses :math:`t_i`, the cumulative histogram of the
clean (noise-free) patch's lung voxels: :math:`t_{ik}` is the fraction below the k-th edge of
``density_bins_hu`` (LAA-950 is one of them):

.. math:: \mathcal{L} = \mathcal{L}_\mathrm{con} + \lambda \, \frac{1}{2B} \sum_i
          \lVert g(h_i) - t_i \rVert_2^2 .

The target comes from the image alone (a handcrafted-feature pretext task, no labels). Because
:math:`g` is linear and the scan embedding is the mean of patch embeddings, the mean of the
patch targets -- the scan's low-attenuation fractions -- stays a linear function of the scan
embedding, which is what a linear probe reads; the head is linear rather than a softmax over
histogram bins because log-scale outputs saturate for lungs without emphysema (docs/embeddings.md).
The input noise makes it a denoising target.

Determinism and resume
----------------------
Weights are initialised from ``seed``; epoch ``e`` draws its patches and augmentations from
generators seeded with ``(seed, e)``; the learning rate is a pure function of the global step.
``torch.use_deterministic_algorithms(True)`` is set on CPU. A checkpoint (model, heads, optimiser,
epoch, loss history) is written after every epoch, so a resumed run is identical to an
uninterrupted one.

References
----------
.. [1] Chen T, et al. A simple framework for contrastive learning of visual representations. ICML 2020.
.. [2] Khosla P, et al. Supervised contrastive learning. NeurIPS 2020.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F

from ...config.embeddings import EmbeddingsConfig
from ...io.tables import atomic_path
from .encoder import DensityHead, PatchEncoder, ProjectionHead, make_encoder
from .patches import LungGrid, candidate_centres, cut_patches, window_hu

log = logging.getLogger(__name__)

ENCODER_FILE = "encoder.pt"
#: config fields that change the trained weights (hashed into the checkpoints)
TRAIN_FIELDS = ("hu_window", "spacing_mm", "patch_size", "min_lung_fraction", "width", "epochs",
                "train_patches_per_scan", "max_train_scans", "batch_size", "learning_rate", "weight_decay",
                "temperature", "positive_shift", "noise_sd", "views_per_scan", "density_weight",
                "density_bins_hu", "seed")


@dataclass(frozen=True)
class TrainingScan:
    """One scan prepared for training: its lung grid and the candidate anchor centres."""

    scan_id: str
    grid: LungGrid
    centres: npt.NDArray[np.int64]


@dataclass(frozen=True)
class TrainResult:
    """Where the trained encoder is and how training went."""

    encoder_path: Path
    losses: list[float]
    epochs_run: int
    seconds: float


def training_scan(scan_id: str, grid: LungGrid, *, patch_size: int, min_lung_fraction: float) -> TrainingScan:
    """Pair a :class:`LungGrid` with its candidate anchor centres."""
    return TrainingScan(scan_id, grid, candidate_centres(grid.lung, patch_size=patch_size,
                                                         min_lung_fraction=min_lung_fraction))


def select_device(choice: str = "auto") -> torch.device:
    """``cuda`` when requested or (``auto``) available, else ``cpu``."""
    if choice not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda; got {choice!r}")
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but torch sees no CUDA device; use device: auto or cpu")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def train_settings(cfg: EmbeddingsConfig) -> dict[str, Any]:
    """The config fields that determine the trained weights (JSON-able)."""
    data = json.loads(cfg.model_dump_json())
    return {k: data[k] for k in TRAIN_FIELDS}


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, *, temperature: float,
            groups: torch.Tensor | None = None) -> torch.Tensor:
    """Contrastive loss of paired projections (B, D); see the module formulas.

    Without ``groups``: NT-Xent / InfoNCE (the partner view is the only positive). With
    ``groups`` (B,) scan indices: supervised-contrastive form in which every other view of the
    same scan is a positive (``groups`` must give each view at least one partner, which the pair
    always does).
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = z1.shape[0]
    sim = z @ z.T / temperature
    eye = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(eye, float("-inf"))
    if groups is None:
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
        return F.cross_entropy(sim, target)
    g = torch.cat([groups, groups]).to(z.device)
    same = (g[:, None] == g[None, :]) & ~eye
    logp = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    return -(logp.masked_fill(~same, 0.0).sum(1) / same.sum(1)).mean()


def _augment(x: npt.NDArray[np.float32], rng: np.random.Generator, noise_sd: float) -> npt.NDArray[np.float32]:
    """Random flips and axis permutation per patch, then Gaussian noise; (N, P, P, P)."""
    out = np.empty_like(x)
    for n in range(len(x)):
        p = x[n]
        for ax in range(3):
            if rng.random() < 0.5:
                p = np.flip(p, axis=ax)
        out[n] = np.transpose(p, rng.permutation(3))
    if noise_sd > 0:
        out += rng.normal(0.0, noise_sd, size=out.shape).astype(np.float32)
    return out


class Views(NamedTuple):
    """One epoch of training views (see :func:`sample_pairs`)."""

    anchors: npt.NDArray[np.float32]
    """(N, 1, P, P, P) augmented anchor patches."""
    positives: npt.NDArray[np.float32]
    """(N, 1, P, P, P) augmented positive patches."""
    scan_index: npt.NDArray[np.int64]
    """(N,) index (into ``scans``) of the scan each pair comes from."""
    anchor_cdf: npt.NDArray[np.float32] | None
    """(N, K) density target of each clean anchor patch (None without ``density_edges``)."""
    positive_cdf: npt.NDArray[np.float32] | None
    """(N, K) density target of each clean positive patch."""


def patch_cdf(patches: npt.NDArray[np.float32], lung: npt.NDArray[np.bool_],
              edges: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Fraction of each patch's lung voxels below each of ``edges`` (window units).

    ``patches`` (N, P, P, P) and ``lung`` (N, P, P, P) bool; returns (N, len(edges)) float32, each
    row non-decreasing in [0, 1]. A patch without lung voxels (a positive view shifted off the lung)
    uses all its voxels.
    """
    n = len(patches)
    m = lung.reshape(n, -1)
    empty = ~m.any(axis=1)
    if empty.any():
        m = m.copy()
        m[empty] = True
    v = patches.reshape(n, -1)
    counts = m.sum(axis=1).astype(np.float64)
    out = np.stack([((v < e) & m).sum(axis=1) / counts for e in np.asarray(edges, dtype=np.float32)], axis=1)
    return out.astype(np.float32)


def density_edges(cfg: EmbeddingsConfig) -> npt.NDArray[np.float32]:
    """``cfg.density_bins_hu`` in the window units of the patches (:func:`~.patches.window_hu`)."""
    return window_hu(np.asarray(cfg.density_bins_hu), hu_window=cfg.hu_window)


def sample_pairs(scans: Sequence[TrainingScan], *, n_per_scan: int, patch_size: int, positive_shift: float,
                 noise_sd: float, rng: np.random.Generator, views_per_scan: int = 1,
                 density_edges: npt.NDArray[np.floating] | None = None) -> Views:
    """Anchor and positive views for one epoch (:class:`Views`). Pairs are shuffled in runs of
    ``views_per_scan`` anchors of one scan, so every batch (a multiple of ``views_per_scan``)
    holds whole runs. With ``density_edges`` (window units) the lung-voxel cumulative histogram of
    every clean view is returned too (:func:`patch_cdf`)."""
    if views_per_scan < 1 or n_per_scan % views_per_scan:
        raise ValueError(f"n_per_scan ({n_per_scan}) must be a multiple of views_per_scan ({views_per_scan})")
    anchors, positives, ids, cdf_a, cdf_p = [], [], [], [], []
    max_shift = int(round(positive_shift * patch_size))
    for s in scans:
        c = s.centres[rng.integers(0, len(s.centres), size=n_per_scan)]
        shift = rng.integers(-max_shift, max_shift + 1, size=c.shape) if max_shift else np.zeros_like(c)
        c2 = np.clip(c + shift, 0, np.asarray(s.grid.image.shape) - 1)
        anchors.append(cut_patches(s.grid.image, c, patch_size=patch_size))
        positives.append(cut_patches(s.grid.image, c2, patch_size=patch_size))
        ids.append(np.full(len(c), len(ids), np.int64))
        if density_edges is not None:
            lung = s.grid.lung.astype(np.float32)
            cdf_a.append(patch_cdf(anchors[-1], cut_patches(lung, c, patch_size=patch_size) > 0.5,
                                     density_edges))
            cdf_p.append(patch_cdf(positives[-1], cut_patches(lung, c2, patch_size=patch_size) > 0.5,
                                     density_edges))
    a, p, g = np.concatenate(anchors), np.concatenate(positives), np.concatenate(ids)
    runs = np.argsort(g, kind="stable").reshape(-1, views_per_scan)
    order = runs[rng.permutation(len(runs))].ravel()
    a, p = _augment(a[order], rng, noise_sd), _augment(p[order], rng, noise_sd)
    ha = np.concatenate(cdf_a)[order] if cdf_a else None
    hp = np.concatenate(cdf_p)[order] if cdf_p else None
    return Views(a[:, None], p[:, None], g[order], ha, hp)


def density_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the predicted cumulative histogram, summed over edges, averaged over rows."""
    return ((pred - target) ** 2).sum(dim=1).mean()


def _lr(step: int, total: int, base: float) -> float:
    warm = max(1, total // 20)
    if step < warm:
        return base * (step + 1) / warm
    return 0.5 * base * (1.0 + math.cos(math.pi * (step - warm) / max(1, total - warm)))


def _checkpoints(ckpt_dir: Path) -> list[Path]:
    return sorted(ckpt_dir.glob("epoch_*.pt"))


def train_encoder(scans: Sequence[TrainingScan], *, cfg: EmbeddingsConfig, out_dir: str | Path,
                  on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train the patch encoder on ``scans`` (see module docstring) and write it to ``out_dir``.

    Writes ``out_dir/checkpoints/epoch_NNN.pt`` after every epoch, then ``encoder.pt``
    (weights + settings), ``loss.csv``, ``loss.png`` and ``MODEL_CARD.md``. Resumes from the
    newest checkpoint whose settings match ``cfg``; returns at once if ``encoder.pt`` with the
    same settings exists.
    """
    if not scans:
        raise ValueError("train_encoder got no scans; preprocess the cohort first")
    out_dir = Path(out_dir)
    ckpt_dir = out_dir / "checkpoints"
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    settings = train_settings(cfg)
    final = out_dir / ENCODER_FILE
    if final.exists():
        saved = torch.load(final, map_location="cpu", weights_only=True)
        if saved.get("settings") == settings:
            log.info("SSL encoder %s is up to date", final)
            return TrainResult(final, list(saved.get("losses", [])), 0, 0.0)
    device = select_device(cfg.device)
    previous = torch.are_deterministic_algorithms_enabled()
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    try:
        return _train(scans, cfg=cfg, out_dir=out_dir, ckpt_dir=ckpt_dir, final=final, settings=settings,
                      device=device, on_epoch=on_epoch)
    finally:
        torch.use_deterministic_algorithms(previous)


_CHANNELS_LAST = torch.channels_last_3d


def _train(scans: Sequence[TrainingScan], *, cfg: EmbeddingsConfig, out_dir: Path, ckpt_dir: Path, final: Path,
           settings: dict[str, Any], device: torch.device,
           on_epoch: Callable[[int, float], None] | None) -> TrainResult:
    # channels-last activations: oneDNN's 3D convolutions (forward and backward) run ~35 % faster on CPU
    model = make_encoder(width=cfg.width, seed=cfg.seed).to(device, memory_format=_CHANNELS_LAST)
    torch.manual_seed(cfg.seed + 1)
    head = ProjectionHead(model.embedding_dim).to(device)
    edges = density_edges(cfg) if cfg.density_weight > 0 else None
    dens = DensityHead(model.embedding_dim, len(cfg.density_bins_hu)).to(device)
    params = list(model.parameters()) + list(head.parameters())
    if edges is not None:
        params += list(dens.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    n_anchor = len(scans) * cfg.train_patches_per_scan
    steps_per_epoch = max(1, n_anchor // cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    history: list[dict[str, Any]] = []
    start_epoch = 0
    for ck in reversed(_checkpoints(ckpt_dir)):
        state = torch.load(ck, map_location="cpu", weights_only=False)
        if state.get("settings") == settings and state.get("n_scans") == len(scans):
            model.load_state_dict(state["model"])
            head.load_state_dict(state["head"])
            dens.load_state_dict(state["density_head"])
            opt.load_state_dict(state["optimizer"])
            history = state["history"]
            start_epoch = state["epoch"] + 1
            log.info("resuming SSL training from %s (epoch %d of %d)", ck.name, start_epoch, cfg.epochs)
            break
    t0 = time.perf_counter()
    for epoch in range(start_epoch, cfg.epochs):
        rng = np.random.default_rng([cfg.seed, epoch])
        views = sample_pairs(scans, n_per_scan=cfg.train_patches_per_scan, patch_size=cfg.patch_size,
                             positive_shift=cfg.positive_shift, noise_sd=cfg.noise_sd, rng=rng,
                             views_per_scan=cfg.views_per_scan, density_edges=edges)
        model.train()
        head.train()
        losses = []
        te = time.perf_counter()
        for step in range(steps_per_epoch):
            gstep = epoch * steps_per_epoch + step
            lr = _lr(gstep, total, cfg.learning_rate)
            for g in opt.param_groups:
                g["lr"] = lr
            sl = slice(step * cfg.batch_size, (step + 1) * cfg.batch_size)
            ha = model(torch.from_numpy(views.anchors[sl]).to(device).contiguous(memory_format=_CHANNELS_LAST))
            hp = model(torch.from_numpy(views.positives[sl]).to(device).contiguous(memory_format=_CHANNELS_LAST))
            con = nt_xent(head(ha), head(hp), temperature=cfg.temperature,
                          groups=torch.from_numpy(views.scan_index[sl]) if cfg.views_per_scan > 1 else None)
            loss = con
            den = torch.zeros(())
            if edges is not None:
                target = torch.from_numpy(np.concatenate([views.anchor_cdf[sl], views.positive_cdf[sl]]))
                den = density_loss(dens(torch.cat([ha, hp])), target.to(device))
                loss = con + cfg.density_weight * den
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            history.append({"epoch": epoch, "step": gstep, "loss": losses[-1], "contrastive": float(con.detach()),
                            "density": float(den.detach()), "lr": lr})
        mean_loss = float(np.mean(losses))
        log.info("SSL epoch %d/%d: loss %.4f (%.1f s)", epoch + 1, cfg.epochs, mean_loss, time.perf_counter() - te)
        state = {"settings": settings, "n_scans": len(scans), "epoch": epoch, "model": model.state_dict(),
                 "head": head.state_dict(), "density_head": dens.state_dict(), "optimizer": opt.state_dict(),
                 "history": history, "epoch_seconds": time.perf_counter() - te}
        with atomic_path(ckpt_dir / f"epoch_{epoch:03d}.pt") as tmp:
            torch.save(state, tmp)
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
    seconds = time.perf_counter() - t0
    model = model.cpu().eval()
    epoch_losses = [float(np.mean([h["loss"] for h in history if h["epoch"] == e])) for e in range(cfg.epochs)]
    with atomic_path(final) as tmp:
        torch.save({"settings": settings, "state_dict": model.state_dict(), "width": cfg.width,
                    "losses": epoch_losses, "scans": [s.scan_id for s in scans]}, tmp)
    from .card import write_loss_curve, write_model_card

    write_loss_curve(history, out_dir)
    write_model_card(out_dir, settings=settings, scans=[s.scan_id for s in scans], history=history,
                     seconds=seconds, device=str(device), steps_per_epoch=steps_per_epoch)
    return TrainResult(final, epoch_losses, cfg.epochs - start_epoch, seconds)


def load_trained_encoder(path: str | Path) -> PatchEncoder:
    """The encoder saved by :func:`train_encoder`, in evaluation mode on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trained SSL encoder {path} does not exist; run `ctpheno embed train` first")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = PatchEncoder(width=int(saved["width"]))
    model.load_state_dict(saved["state_dict"], strict=True)
    return model.eval()
