r"""Airway lumen from the trachea down: adaptive-threshold region growing with leak control.

Why region growing: the lumen is air (:math:`\approx -1000` HU) inside a soft-tissue wall, so it is
the darkest connected structure of the chest; growing it from the trachea is the standard of
airway-tree software (Mori et al. 1996; Kiraly et al. 2002; Schlathölter et al. 2002; van Ginneken
et al. 2008) and needs no training data. Its one failure is the leak: where a wall is thinner than
the resolution or emphysema abuts a bronchus, the growth escapes into the parenchyma. Two
controls, one global and one per branch:

1. **Global threshold** (Kiraly et al. 2002). The image is smoothed (Gaussian of
   ``smoothing_mm``, against the noise of sharp kernels) and grown from the seed (label 3, the
   trachea and main bronchi preprocess found) through the voxels below each threshold of
   ``thresholds_hu`` in turn, lowest first; the threshold kept is the highest before the grown
   volume *explodes* — grows by more than ``explosion_ratio`` and by more than
   ``explosion_ml`` from one threshold to the next (parenchyma percolating).
2. **Front propagation with per-branch leak control** at that threshold (Schlathölter et al.
   2002; Tschirren et al. 2005). The lumen grows one 6-connected voxel layer per step; each
   step's new voxels split into connected pieces (26-connected), each remembering the piece it
   grew from. A lineage *leaks* when the pieces grown from an ancestor ``window`` steps back add
   up to more than ``growth`` times the widest piece of that lineage over the ``window`` steps
   before — a tube keeps its cross-section, a bifurcation doubles it, a leak into emphysema
   explodes. The leaking lineage is erased back to the ancestor and regrown from there with a
   threshold ``threshold_step_hu`` lower (the branch's own adaptive threshold, Mori et al. 1996),
   down to ``min_threshold_hu``, after which it stays stopped.

The result is hole-filled (3-D ``binary_fill_holes``: noise inside the trachea). Reported with
it: the global threshold, the number of leaks and the volume the leak control erased
(``leak_rejected_ml``) over the final volume (``leak_fraction``).

Growth is confined to the lungs and a ``margin_mm`` band around them and the seed (the bronchi
run through the hilum, outside the lung masks of preprocess).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ...vocab import LABEL_AIRWAYS, Spacing, check_spacing

DEFAULT_THRESHOLDS_HU = (-975.0, -950.0, -925.0, -900.0, -875.0, -850.0, -825.0)


@dataclass(frozen=True)
class LumenSegmentation:
    """Airway lumen and how it was grown.

    Attributes
    ----------
    lumen : ndarray of bool
        Same shape as the input image.
    threshold_hu : float
        Global threshold chosen (NaN when the seed could not grow).
    n_leaks : int
        Leaks detected (each erased and retried lower or stopped).
    leak_rejected_ml : float
        Volume erased by the leak control.
    volume_ml : float
        Final lumen volume.
    """

    lumen: npt.NDArray[np.bool_]
    threshold_hu: float
    n_leaks: int
    leak_rejected_ml: float
    volume_ml: float

    @property
    def leak_fraction(self) -> float:
        """Volume the leak control erased over the final lumen volume."""
        return self.leak_rejected_ml / self.volume_ml if self.volume_ml > 0 else math.nan


def _offsets(shape: tuple[int, ...], connectivity: int) -> npt.NDArray[np.int64]:
    st = ndi.generate_binary_structure(3, connectivity)
    st[1, 1, 1] = False
    strides = np.array([shape[1] * shape[2], shape[2], 1])
    return ((np.argwhere(st) - 1) @ strides).astype(np.int64)


def _pieces(idx: npt.NDArray[np.int64], half_offsets: npt.NDArray[np.int64]) -> tuple[int, npt.NDArray[np.int32]]:
    """26-connected components of the sorted flat indices ``idx``."""
    n = len(idx)
    rows, cols = [], []
    for o in half_offsets:
        j = np.minimum(np.searchsorted(idx, idx + o), n - 1)
        ok = idx[j] == idx + o
        rows.append(np.flatnonzero(ok))
        cols.append(j[ok])
    r, c = np.concatenate(rows), np.concatenate(cols)
    g = coo_matrix((np.ones(len(r), bool), (r, c)), shape=(n, n))
    return connected_components(g, directed=False)


def near(mask: npt.NDArray[np.bool_], spacing_mm: Spacing, distance_mm: float) -> npt.NDArray[np.bool_]:
    """Voxels within about ``distance_mm`` of ``mask`` (distance transform on a ~2.5 mm grid, block-max pooled)."""
    f = np.maximum(1, np.floor(2.5 / np.asarray(spacing_mm)).astype(int))
    shape = np.asarray(mask.shape)
    n = -(-shape // f)
    padded = np.zeros(n * f, bool)
    padded[: shape[0], : shape[1], : shape[2]] = mask
    coarse = padded.reshape(n[0], f[0], n[1], f[1], n[2], f[2]).any(axis=(1, 3, 5))
    far = ndi.distance_transform_edt(~coarse, sampling=np.asarray(spacing_mm) * f) <= distance_mm
    up = far.repeat(f[0], 0).repeat(f[1], 1).repeat(f[2], 2)
    return up[: shape[0], : shape[1], : shape[2]] | mask


def choose_threshold(smooth: npt.NDArray[np.float32], seed: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_],
                     *, thresholds_hu, explosion_ratio: float, explosion_ml: float, voxel_ml: float) -> float:
    """Highest threshold before the grown volume explodes (module doc, step 1); NaN if none grows."""
    best, prev = math.nan, None
    for t in sorted(thresholds_hu):
        lab, _ = ndi.label((smooth < t) & allowed | seed)
        keep = np.unique(lab[seed])
        vol = float(np.bincount(lab.ravel())[keep[keep > 0]].sum()) * voxel_ml
        if prev is not None and vol > explosion_ratio * prev and vol - prev > explosion_ml:
            break
        best, prev = float(t), vol
    return best


class _Lineages:
    """Growing arrays of front pieces: parent piece, step, size, threshold."""

    def __init__(self, thr0: float, n_seed: int) -> None:
        self.par = np.array([-1], np.int64)
        self.step = np.array([0], np.int64)
        self.size = np.array([n_seed], np.int64)
        self.thr = np.array([thr0], np.float32)

    def add(self, par, step: int, size) -> int:
        base = len(self.par)
        self.par = np.r_[self.par, par]
        self.step = np.r_[self.step, np.full(len(par), step)]
        self.size = np.r_[self.size, size]
        self.thr = np.r_[self.thr, self.thr[par]]
        return base

    def ancestor(self, ids: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
        a = ids.copy()
        for _ in range(n):
            p = self.par[a]
            a = np.where(p > 0, p, a)
        return a

    def widest_before(self, ids: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.float64]:
        ref, a = self.size[ids].astype(float), ids.copy()
        for _ in range(n):
            p = self.par[a]
            a = np.where(p > 0, p, a)
            ref = np.maximum(ref, self.size[a])
        return ref

    def descendants(self, roots: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
        tag = np.zeros(len(self.par), bool)
        tag[roots] = True
        for c in range(int(roots.min()) + 1, len(self.par)):  # pieces are numbered after their parents
            p = self.par[c]
            if p >= 0 and tag[p]:
                tag[c] = True
        tag[roots] = False
        return tag


def propagate(smooth: npt.NDArray[np.float32], seed: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_], *,
              threshold_hu: float, min_threshold_hu: float, threshold_step_hu: float, growth: float, window: int,
              min_leak_voxels: int, max_steps: int = 5000) -> tuple[npt.NDArray[np.bool_], int, int]:
    """Front propagation with per-lineage leak control (module doc, step 2).

    Arrays must have a one-voxel border of ``allowed == False`` (flat-index neighbours never wrap).
    Returns ``(lumen, n_leaks, n_erased_voxels)``.
    """
    shape = smooth.shape
    flat, ok_flat = smooth.ravel(), allowed.ravel()
    off6 = _offsets(shape, 1)
    off26 = _offsets(shape, 3)
    half = off26[off26 > 0]
    piece = np.full(flat.size, -1, np.int64)  # piece id of each accepted voxel
    seed_idx = np.flatnonzero(seed.ravel())
    piece[seed_idx] = 0
    lin = _Lineages(threshold_hu, len(seed_idx))
    nb = seed_idx[:, None] + off6[None, :]
    front = seed_idx[(ok_flat[nb] & (piece[nb] < 0)).any(1)]
    fp = np.zeros(len(front), np.int64)
    leaks = erased = 0
    for step in range(1, max_steps):
        if len(front) == 0:
            break
        cand = (front[:, None] + off6[None, :]).ravel()
        cp = np.repeat(fp, len(off6))
        keep = ok_flat[cand] & (piece[cand] == -1)
        cand, cp = cand[keep], cp[keep]
        keep = flat[cand] < lin.thr[cp]
        cand, cp = cand[keep], cp[keep]
        if len(cand) == 0:
            break
        cand, first = np.unique(cand, return_index=True)
        cp = cp[first]
        n_new, lab = _pieces(cand, half)
        parent = np.full(n_new, -1, np.int64)
        parent[lab] = cp
        sizes = np.bincount(lab, minlength=n_new)
        base = lin.add(parent, step, sizes)
        ids = lab + base
        piece[cand] = ids
        front, fp = cand, ids
        # leak test: everything grown from an ancestor `window` steps back vs the lineage's width before
        anc = lin.ancestor(np.arange(base, base + n_new), window)
        ua, inv = np.unique(anc, return_inverse=True)
        grown = np.bincount(inv, weights=sizes)
        ref = lin.widest_before(ua, window)
        leak = (grown > growth * ref) & (grown > min_leak_voxels) & (lin.step[ua] >= 1) & (step - lin.step[ua] >= window)
        if not leak.any():
            continue
        roots = ua[leak]
        dead = lin.descendants(roots)
        gone = np.flatnonzero(np.isin(piece, np.flatnonzero(dead))) if dead.any() else np.zeros(0, np.int64)
        piece[gone] = -1
        erased += len(gone)
        alive = ~dead[fp]
        front, fp = front[alive], fp[alive]
        for r in roots:
            leaks += 1
            lin.thr[r] -= threshold_step_hu
            if lin.thr[r] >= min_threshold_hu:  # regrow this branch from its ancestor, lower
                v = np.flatnonzero(piece == r)
                front = np.r_[front, v]
                fp = np.r_[fp, np.full(len(v), r)]
    return (piece >= 0).reshape(shape), leaks, erased


def segment_lumen(hu: npt.NDArray, labels: npt.NDArray[np.integer], spacing_mm: Spacing, *,
                  smoothing_mm: float = 0.5, thresholds_hu=DEFAULT_THRESHOLDS_HU, explosion_ratio: float = 1.5,
                  explosion_ml: float = 20.0, min_threshold_hu: float = -1000.0, threshold_step_hu: float = 25.0,
                  growth: float = 4.0, window_mm: float = 8.0, margin_mm: float = 10.0) -> LumenSegmentation:
    """Segment the airway lumen of a chest CT (module doc).

    Parameters
    ----------
    hu
        HU image (z, y, x).
    labels
        Lung labels on the same grid: 1 right, 2 left, 3 the extra-pulmonary airway (the seed).
    spacing_mm
        Voxel size (z, y, x) in mm.

    Returns
    -------
    LumenSegmentation
        Empty lumen (threshold NaN) when ``labels`` has no airway label.
    """
    sp = check_spacing(spacing_mm)
    if hu.shape != labels.shape:
        raise ValueError(f"image and labels differ in shape: {hu.shape} vs {labels.shape}")
    seed_full = labels == LABEL_AIRWAYS
    if not seed_full.any():
        return LumenSegmentation(np.zeros(hu.shape, bool), math.nan, 0, 0.0, 0.0)
    region = labels > 0
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(region))
    voxel_ml = float(np.prod(sp)) / 1000.0
    smooth = ndi.gaussian_filter(np.asarray(hu[box], np.float32), [smoothing_mm / s for s in sp])
    lab = labels[box]
    allowed = near(lab > 0, sp, margin_mm)
    seed = lab == LABEL_AIRWAYS
    pad = lambda a, v: np.pad(a, 1, constant_values=v)  # noqa: E731  (a border: flat neighbours never wrap)
    smooth, seed, allowed = pad(smooth, 0.0), pad(seed, False), pad(allowed, False)
    thr = choose_threshold(smooth, seed, allowed, thresholds_hu=thresholds_hu, explosion_ratio=explosion_ratio,
                           explosion_ml=explosion_ml, voxel_ml=voxel_ml)
    if not math.isfinite(thr):
        thr = float(min(thresholds_hu))
    window = max(2, int(round(window_mm / float(np.mean(sp)))))
    lumen, leaks, erased = propagate(smooth, seed, allowed, threshold_hu=thr, min_threshold_hu=min_threshold_hu,
                                     threshold_step_hu=threshold_step_hu, growth=growth, window=window,
                                     min_leak_voxels=int(math.ceil(0.05 / voxel_ml)))
    lumen = lumen[1:-1, 1:-1, 1:-1]
    out = np.zeros(hu.shape, bool)
    inner = tuple(slice(b.start + int(i.min()), b.start + int(i.max()) + 1) for b, i in zip(box, np.nonzero(lumen)))
    out[inner] = ndi.binary_fill_holes(lumen[tuple(slice(i.start - b.start, i.stop - b.start) for b, i in zip(box, inner))])
    vol = float(np.count_nonzero(out)) * voxel_ml
    return LumenSegmentation(out, thr, int(leaks), erased * voxel_ml, vol)


__all__ = ["DEFAULT_THRESHOLDS_HU", "LumenSegmentation", "choose_threshold", "propagate", "segment_lumen"]
