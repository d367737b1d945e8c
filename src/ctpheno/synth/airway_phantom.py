r"""Thin-slice airway-tree phantoms with per-branch truth: :func:`make_airway_phantom`.

The whole-chest phantom (:mod:`ctpheno.synth.phantom`) models its trees on a ~2.5 mm grid, far
too coarse for per-branch wall measurements. This phantom is a small crop around an airway
tree only, rasterised directly on a thin-slice grid (<= 1 mm), so that every branch has a
known lumen radius :math:`r` and wall thickness :math:`T` and the scan-level endpoints (Pi10,
WA %) have a truth computed from the same branches.

Geometry (physical LPS mm, identity direction; +x patient left, +z superior):

* trachea (generation 0) running down to the carina, two main bronchi (generation 1), then a
  bifurcating tree down to ``max_generation``. Each bifurcation has a major child (radius :math:`r
  \cdot U(0.80, 0.88)`, 18-32 degrees off the parent axis) and a minor child (:math:`r \cdot
  U(0.64, 0.76)`, 38-60 degrees), in a plane turned by about 90 degrees from the parent's (the
  rotation seen in human airways); branch length :math:`L = U(2.8, 3.8)` times the outer radius
  :math:`r + T` (thick-walled trees branch as deep as thin-walled ones, with longer branches).
  From generation 3 on, a minor child ends without children with probability ``end_probability``
  (0.5 by default; airway trees are asymmetric), which keeps the crop small. A child that would
  come closer than 1 mm to any other branch's or vessel's outer surface is drawn again (up to 8
  times) or dropped.
* wall thickness :math:`T = w \cdot \mathrm{clip}(0.55 + 0.15 r, 0.5, 2.0) \cdot U(0.9, 1.1)`
  (:func:`ctpheno.synth.trees.wall_thickness_mm`; ``w`` = ``airway_wall_mm``, the wall of a
  3 mm-radius bronchus, as in the cohort generator: ~1 mm without airway disease, 1.6-2.4 mm
  for the airway subtype), with a per-branch jitter so that per-branch truth is not one curve.
* a pulmonary artery beside every bronchus of generation >= 2 (radius :math:`r \cdot U(0.9, 1.2)`,
  touching the outer wall or up to 0.6 mm from it: the artery-bronchus pair every ray-based
  wall measure must cope with), parenchyma at :data:`HU_PARENCHYMA` with correlated texture,
  a soft-tissue mediastinum around the trachea and main bronchi.

Acquisition: partial-volume coverage of every tube (:func:`ctpheno.synth.trees.rasterize`),
then a Gaussian point-spread function (in-plane FWHM ``psf_fwhm_mm``, through-plane FWHM =
the slice thickness), correlated Gaussian noise of ``noise_hu``, rounding to int16.

Labels follow preprocess: 1 right lung, 2 left lung (split at the carina's x; walls, vessels
and intrapulmonary lumen are lung), 3 the lumen of the trachea and main bronchi, 0 mediastinum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi

from ..io.volume import IDENTITY_DIRECTION, Volume
from ..vocab import HU_AIR
from .acquisition import FWHM_TO_SIGMA
from .disease import smooth_noise
from .trees import Segment, _cross, _rotate, _unit, rasterize, wall_thickness_mm

HU_PARENCHYMA = -850.0
HU_WALL = 35.0
HU_BLOOD = 40.0
HU_MEDIASTINUM = 30.0
TEXTURE_HU = 15.0
"""SD of the parenchyma texture (correlation length 1.5 mm) before noise."""
MARGIN_MM = 8.0
"""Crop margin around the outermost wall or vessel surface."""
CLEARANCE_MM = 1.0
"""Least gap between the outer surfaces of two branches that do not share a junction."""
KERNELS = {"sharp": (0.8, 0.45), "smooth": (1.2, 0.9)}
"""Kernel -> (in-plane PSF FWHM in mm, noise correlation in voxels), as in :mod:`ctpheno.synth.acquisition`."""

TRUTH_COLUMNS = ("branch_id", "parent_id", "generation", "side", "lumen_radius_mm", "wall_thickness_mm",
                 "length_mm", "inner_perimeter_mm", "lumen_area_mm2", "wall_area_mm2", "wa_pct",
                 "x0_mm", "y0_mm", "z0_mm", "x1_mm", "y1_mm", "z1_mm")


@dataclass(frozen=True)
class AirwayPhantom:
    """A thin-slice airway-tree crop and its per-branch truth.

    Attributes
    ----------
    image : Volume
        int16 HU (z, y, x).
    labels : Volume
        uint8: 1 right lung, 2 left lung, 3 trachea and main-bronchus lumen, 0 mediastinum.
    branches : pandas.DataFrame
        One row per branch (:data:`TRUTH_COLUMNS`): generation 0 is the trachea; coordinates
        are the branch's axis end points in physical LPS mm.
    params : dict
        Every generation and acquisition parameter (JSON-serialisable).
    """

    image: Volume
    labels: Volume
    branches: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Branch:
    seg: Segment
    wall_mm: float
    parent: int
    side: str
    vessel: Segment | None = None


def _points(p0, p1, n: int = 24) -> npt.NDArray[np.float64]:
    return p0 + np.linspace(0.0, 1.0, n)[:, None] * (p1 - p0)


def _distance_to_segments(pts, a0, a1) -> npt.NDArray[np.float64]:
    """Least distance from the points ``pts`` (n, 3) to each segment ``a0[k] -> a1[k]`` (m, 3): shape (m,)."""
    v = a1 - a0
    vv = np.maximum((v * v).sum(-1), 1e-12)
    w = pts[None, :, :] - a0[:, None, :]
    t = np.clip((w * v[:, None, :]).sum(-1) / vv[:, None], 0.0, 1.0)
    d = w - t[..., None] * v[:, None, :]
    return np.sqrt((d * d).sum(-1)).min(1)


def _clear(p0, p1, outer_mm: float, tubes: list[tuple[Segment, float]], skip: set[int]) -> bool:
    """Whether the tube ``p0 -> p1`` of outer radius ``outer_mm`` keeps :data:`CLEARANCE_MM` from every
    tube not in ``skip`` (axes sampled every 1/23 of the length)."""
    keep = [k for k in range(len(tubes)) if k not in skip]
    if not keep:
        return True
    a0 = np.array([tubes[k][0].p0 for k in keep])
    a1 = np.array([tubes[k][0].p1 for k in keep])
    out = np.array([tubes[k][1] for k in keep])
    return bool(np.all(_distance_to_segments(_points(p0, p1), a0, a1) >= outer_mm + out + CLEARANCE_MM))


class _Tree:
    def __init__(self, rng: np.random.Generator, *, airway_wall_mm: float, max_generation: int, end_probability: float):
        self.rng = rng
        self.w = airway_wall_mm
        self.max_gen = max_generation
        self.end_probability = end_probability
        self.branches: list[_Branch] = []
        self.tubes: list[tuple[Segment, float]] = []  # (axis, outer radius) of every wall and vessel
        self.owner: list[int] = []  # branch index of each tube

    def add(self, seg: Segment, parent: int, side: str) -> int:
        wall = wall_thickness_mm(seg.radius_mm, self.w) * float(self.rng.uniform(0.9, 1.1))
        self.branches.append(_Branch(seg, wall, parent, side))
        k = len(self.branches) - 1
        self.tubes.append((seg, seg.radius_mm + wall))
        self.owner.append(k)
        if seg.generation >= 2:
            self._add_vessel(k)
        return k

    def _add_vessel(self, k: int) -> None:
        b = self.branches[k]
        d = _unit(b.seg.p1 - b.seg.p0)
        perp = _rotate(_unit(_cross(d, self.rng.normal(size=3))), d, float(self.rng.uniform(0, 2 * np.pi)))
        rv = b.seg.radius_mm * float(self.rng.uniform(0.9, 1.2))
        off = b.seg.radius_mm + b.wall_mm + rv + float(self.rng.uniform(0.0, 0.6))
        length = float(np.linalg.norm(b.seg.p1 - b.seg.p0))
        v0 = b.seg.p0 + perp * off + d * min(2.0 * b.seg.radius_mm, 0.3 * length)
        v1 = b.seg.p1 + perp * off
        related = {i for i, o in enumerate(self.owner) if o in (k, b.parent)}
        if _clear(v0, v1, rv, self.tubes, related):
            b.vessel = Segment(v0, v1, rv, b.seg.generation)
            self.tubes.append((b.vessel, rv))
            self.owner.append(k)

    def grow(self, k: int, plane: npt.NDArray[np.float64]) -> None:
        """Depth-first bifurcations below branch ``k`` (``plane``: normal of its parent's bifurcation)."""
        b = self.branches[k]
        s = b.seg
        if s.generation >= self.max_gen:
            return
        d = _unit(s.p1 - s.p0)
        rng = self.rng
        children = []
        for attempt in range(8):
            normal = _rotate(_unit(plane - d * float(plane @ d)), d, math.pi / 2 + rng.uniform(-0.5, 0.5))
            within = _unit(_cross(normal, d))  # in the new bifurcation plane, perpendicular to d
            sign = 1.0 if rng.random() < 0.5 else -1.0
            spec = [(rng.uniform(0.80, 0.88), math.radians(rng.uniform(18, 32)), sign),
                    (rng.uniform(0.64, 0.76), math.radians(rng.uniform(38, 60)), -sign)]
            children = []
            ok = True
            for ratio, angle, sg in spec:
                r = s.radius_mm * float(ratio)
                cd = _unit(d * math.cos(angle) + within * sg * math.sin(angle))
                outer = r + wall_thickness_mm(r, self.w) * 1.1
                length = outer * float(rng.uniform(2.8, 3.8))
                p1 = s.p1 + cd * length
                related = {i for i, o in enumerate(self.owner) if o in (k, b.parent)}
                start = s.p1 + cd * min(s.radius_mm + 1.0, 0.5 * length)  # past the junction
                half = s.p1 + cd * 0.6 * length  # siblings meet at the junction; apart in their distal 40 %
                if not _clear(start, p1, outer, self.tubes, related) or any(
                        _distance_to_segments(_points(half, p1), h[None], c.p1[None])[0] < outer + o for c, _, h, o in children):
                    ok = False
                    break
                children.append((Segment(s.p1.copy(), p1, r, s.generation + 1), normal, half, outer))
            if ok:
                break
        else:
            return
        for i, (seg, normal, _, _) in enumerate(children):
            kid = self.add(seg, k, b.side)
            minor = i == 1
            if minor and seg.generation >= 3 and rng.random() < self.end_probability:
                continue
            self.grow(kid, normal)


def _build_tree(rng: np.random.Generator, *, airway_wall_mm: float, max_generation: int,
                trachea_radius_mm: float, end_probability: float) -> _Tree:
    tree = _Tree(rng, airway_wall_mm=airway_wall_mm, max_generation=max_generation, end_probability=end_probability)
    r0 = float(trachea_radius_mm)
    carina = np.zeros(3)
    top = carina + np.array([0.0, 0.0, 5.0 * r0])
    tree.add(Segment(top, carina, r0, 0), -1, "")
    plane = np.array([0.0, 1.0, 0.0])  # the carina splits left-right: bifurcation-plane normal is y
    for side, sx, ang, ratio in (("right", -1.0, 28.0, 0.72), ("left", 1.0, 42.0, 0.66)):
        r = r0 * ratio
        a = math.radians(ang + rng.uniform(-4, 4))
        d = np.array([sx * math.sin(a), rng.uniform(-0.1, 0.1), -math.cos(a)])
        seg = Segment(carina.copy(), carina + _unit(d) * r * 3.5, r, 1)
        k = tree.add(seg, 0, side)
        tree.grow(k, plane)
    return tree


def pi10_truth(branches: pd.DataFrame, *, min_generation: int = 2) -> float:
    """Pi10 (mm) of a truth branch table: :func:`ctpheno.features.airways.endpoints.pi10_mm`
    over its branches of generation >= ``min_generation`` (the measurement's own selection)."""
    from ..features.airways.endpoints import pi10_mm

    sel = branches[branches["generation"] >= min_generation]
    return pi10_mm(sel["inner_perimeter_mm"].to_numpy(), sel["wall_area_mm2"].to_numpy())


def make_airway_phantom(*, seed: int, airway_wall_mm: float = 1.0, spacing_mm: tuple[float, float, float] = (0.8, 0.7, 0.7),
                        kernel: str = "sharp", noise_hu: float | None = None, max_generation: int = 7,
                        trachea_radius_mm: float = 6.5, vessels: bool = True,
                        end_probability: float = 0.5) -> AirwayPhantom:
    """Generate a thin-slice airway-tree crop with known per-branch lumen radius and wall thickness.

    Parameters
    ----------
    seed
        Seeds every random choice (same arguments, byte-identical arrays).
    airway_wall_mm
        Wall thickness of a 3 mm-radius bronchus (``w`` in the module doc), 0.3-3 mm.
    spacing_mm
        Voxel size (z, y, x); the slice thickness (through-plane PSF FWHM) is ``spacing_mm[0]``.
        Thin-slice only: every size must be <= 1.25 mm.
    kernel
        ``"sharp"`` (PSF FWHM 0.8 mm, fine noise, default SD 90 HU) or ``"smooth"`` (1.2 mm,
        correlated noise, default SD 30 HU).
    noise_hu
        Noise SD in HU (default by kernel; 0 for a noise-free image).
    max_generation
        Deepest generation grown (>= 6 for the endpoint tests; the carina's children are 1).
    trachea_radius_mm
        Lumen radius of the trachea; main bronchi are 0.66-0.72 of it.
    vessels
        Put a pulmonary artery beside each bronchus of generation >= 2.
    end_probability
        Chance that a minor child of generation >= 3 ends without children (smaller, sparser trees
        for fast tests when raised).
    """
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(0.2 <= s <= 1.25 for s in sp):
        raise ValueError(f"spacing_mm must be three sizes in [0.2, 1.25] mm (thin-slice); got {spacing_mm}")
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {tuple(KERNELS)}; got {kernel!r}")
    if not 0.3 <= float(airway_wall_mm) <= 3.0:
        raise ValueError(f"airway_wall_mm must be in [0.3, 3.0] mm; got {airway_wall_mm}")
    if not 2 <= int(max_generation) <= 10:
        raise ValueError(f"max_generation must be in [2, 10]; got {max_generation}")
    if not 0.0 <= float(end_probability) <= 1.0:
        raise ValueError(f"end_probability must be in [0, 1]; got {end_probability}")
    rng = np.random.default_rng(int(seed))
    tree = _build_tree(rng, airway_wall_mm=float(airway_wall_mm), max_generation=int(max_generation),
                       trachea_radius_mm=float(trachea_radius_mm), end_probability=float(end_probability))
    psf_mm, corr_vox = KERNELS[kernel]
    noise = float(noise_hu) if noise_hu is not None else (90.0 if kernel == "sharp" else 30.0)

    # grid: the tubes' bounding box plus a margin, top cut through the trachea (it leaves the crop)
    ends = np.array([p for s, out in tree.tubes for p in (s.p0 - out, s.p0 + out, s.p1 - out, s.p1 + out)])
    lo = ends.min(0) - MARGIN_MM
    hi = ends.max(0) + MARGIN_MM
    hi[2] = tree.branches[0].seg.p0[2] - 1.0
    sp_xyz = np.array([sp[2], sp[1], sp[0]])
    shape = tuple(int(n) for n in np.ceil((hi - lo) / sp_xyz).astype(int)[::-1] + 1)
    org = lo
    hu, labels = _render(tree, shape, org, sp_xyz, rng, vessels=vessels)

    # acquisition
    slice_mm = sp[0]
    sig = (slice_mm * FWHM_TO_SIGMA / sp[0], psf_mm * FWHM_TO_SIGMA / sp[1], psf_mm * FWHM_TO_SIGMA / sp[2])
    hu = ndi.gaussian_filter(hu, sig, mode="nearest", output=np.float32)
    if noise > 0:
        n = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), (0.0, corr_vox, corr_vox), mode="wrap")
        hu += n * np.float32(noise / max(float(n.std()), 1e-6))
    image = np.clip(np.rint(hu), -1024, 3071).astype(np.int16)

    origin = tuple(float(o) for o in org)
    meta = {"kernel": kernel, "synthetic": True}
    branches = _truth_table(tree)
    params = {"seed": int(seed), "airway_wall_mm": float(airway_wall_mm), "spacing_mm": list(sp), "kernel": kernel,
              "psf_fwhm_mm": psf_mm, "slice_thickness_mm": slice_mm, "noise_hu": noise, "max_generation": int(max_generation),
              "trachea_radius_mm": float(trachea_radius_mm), "vessels": bool(vessels),
              "end_probability": float(end_probability), "shape": list(shape),
              "n_branches": len(branches), "pi10_mm": pi10_truth(branches)}
    return AirwayPhantom(image=Volume(image, sp, origin, IDENTITY_DIRECTION, dict(meta)),
                         labels=Volume(labels, sp, origin, IDENTITY_DIRECTION, dict(meta)),
                         branches=branches, params=params)


def _render(tree: _Tree, shape, org, sp_xyz, rng: np.random.Generator, *, vessels: bool):
    """Noise-free HU model and labels on the output grid (partial-volume coverage of every tube)."""
    segs = [b.seg for b in tree.branches]
    walled = [Segment(b.seg.p0, b.seg.p1, b.seg.radius_mm + b.wall_mm, b.seg.generation) for b in tree.branches]
    kw = {"origin_mm": org, "spacing_mm": sp_xyz}
    lumen = np.zeros(shape, np.float32)
    wall = np.zeros(shape, np.float32)
    central = np.zeros(shape, np.float32)
    med = np.zeros(shape, np.float32)
    vess = np.zeros(shape, np.float32)
    rasterize(segs, lumen, **kw)
    rasterize(walled, wall, **kw)
    rasterize(segs, central, generation_range=(0, 1), **kw)
    rasterize([s for s in walled if s.generation <= 1], med, extra_mm=6.0, **kw)
    if vessels:
        rasterize([b.vessel for b in tree.branches if b.vessel is not None], vess, **kw)
    sp_zyx = sp_xyz[::-1]
    hu = HU_PARENCHYMA + TEXTURE_HU * smooth_noise(shape, 1.5 / sp_zyx, rng)
    hu = hu * (1 - med) + HU_MEDIASTINUM * med
    hu = hu * (1 - vess) + HU_BLOOD * vess
    wall = np.maximum(wall, lumen)  # area fractions: lumen, wall between, the rest outside
    hu = (hu * (1 - wall) + HU_WALL * (wall - lumen) + HU_AIR * lumen).astype(np.float32)
    labels = np.zeros(shape, np.uint8)
    x = org[0] + sp_xyz[0] * np.arange(shape[2])
    carina_x = float(tree.branches[0].seg.p1[0])
    labels[:, :, x < carina_x] = 1  # patient right: -x in LPS
    labels[:, :, x >= carina_x] = 2
    labels[med >= 0.5] = 0
    labels[central >= 0.5] = 3
    return hu, labels


def _truth_table(tree: _Tree) -> pd.DataFrame:
    rows = []
    for k, b in enumerate(tree.branches):
        r, t = b.seg.radius_mm, b.wall_mm
        outer = math.pi * (r + t) ** 2
        rows.append({"branch_id": k, "parent_id": b.parent, "generation": b.seg.generation, "side": b.side,
                     "lumen_radius_mm": r, "wall_thickness_mm": t,
                     "length_mm": float(np.linalg.norm(b.seg.p1 - b.seg.p0)),
                     "inner_perimeter_mm": 2 * math.pi * r, "lumen_area_mm2": math.pi * r * r,
                     "wall_area_mm2": outer - math.pi * r * r, "wa_pct": 100.0 * (outer - math.pi * r * r) / outer,
                     **{f"{a}{i}_mm": float(p[j]) for i, p in enumerate((b.seg.p0, b.seg.p1))
                        for j, a in enumerate("xyz")}})
    return pd.DataFrame(rows, columns=list(TRUTH_COLUMNS))


__all__ = ["AirwayPhantom", "TRUTH_COLUMNS", "make_airway_phantom", "pi10_truth"]
