"""Branching airway and vessel trees: random growth in physical space and soft rasterisation.

A tree is a list of cylinder segments ``(p0, p1, radius_mm, generation)`` in
physical (X, Y, Z) millimetres. Children follow Murray's law (radius ratio
``2**(-1/3)`` ~ 0.79 for a symmetric split) and branch at 25-45 degrees;
a child whose end point leaves the lungs is dropped. Rasterisation gives each
voxel a partial-volume *coverage* in [0, 1] from its distance to the segment
axis, so sub-voxel vessels still appear as faint dots, as on a real CT.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import numpy.typing as npt

MURRAY_RATIO = 2.0 ** (-1.0 / 3.0)


def wall_thickness_mm(radius_mm: float, airway_wall_mm: float) -> float:
    """Airway wall thickness (mm) of a bronchus of lumen radius ``radius_mm`` in a subject whose
    3 mm-radius bronchi have walls of ``airway_wall_mm``: ``w * clip(0.55 + 0.15 r, 0.5, 2.0)``.

    Thicker walls on larger airways, roughly proportional to the lumen at segmental size
    (cf. the wall-area/perimeter relation behind Pi10, Nakano 2005); the one law both phantom
    generators share, so that ``airway_wall_mm`` means the same in each.
    """
    return float(airway_wall_mm) * float(np.clip(0.55 + 0.15 * float(radius_mm), 0.5, 2.0))


@dataclass(frozen=True)
class Segment:
    p0: npt.NDArray[np.float64]
    p1: npt.NDArray[np.float64]
    radius_mm: float
    generation: int


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return v / max(float(np.sqrt(v @ v)), 1e-9)


def _cross(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """3-vector cross product (np.cross has a large per-call overhead)."""
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _rotate(v: npt.NDArray[np.float64], axis: npt.NDArray[np.float64], angle: float) -> npt.NDArray[np.float64]:
    """Rodrigues rotation of ``v`` about the unit ``axis``."""
    k = _unit(axis)
    c, s = np.cos(angle), np.sin(angle)
    return v * c + _cross(k, v) * s + k * float(k @ v) * (1 - c)


def grow_tree(start: npt.ArrayLike, direction: npt.ArrayLike, *, radius_mm: float, length_mm: float,
              rng: np.random.Generator, inside: Callable[[npt.NDArray[np.float64]], bool],
              min_radius_mm: float, max_generation: int, generation: int = 0,
              length_per_radius: float = 7.0, toward: npt.ArrayLike | None = None) -> list[Segment]:
    """Grow a bifurcating tree depth-first.

    Parameters
    ----------
    start, direction
        First segment's origin and direction (physical mm, any length).
    radius_mm, length_mm
        First segment's radius and length.
    inside
        Predicate on a point: children whose end leaves the allowed region are dropped.
    min_radius_mm, max_generation
        Stop criteria.
    toward
        Optional point the branches are gently steered toward (the lung's centre), so the
        tree fills the lung instead of running along the pleura.
    """
    segs: list[Segment] = []
    stack = [(np.asarray(start, float), _unit(np.asarray(direction, float)), float(radius_mm),
              float(length_mm), int(generation))]
    goal = None if toward is None else np.asarray(toward, float)
    while stack:
        p0, d, r, length, gen = stack.pop()
        p1 = p0 + d * length
        segs.append(Segment(p0, p1, r, gen))
        r_child = r * MURRAY_RATIO * rng.uniform(0.93, 1.05)
        if gen + 1 > max_generation or r_child < min_radius_mm:
            continue
        perp = _unit(_cross(d, rng.normal(size=3)))
        base = rng.uniform(0.0, 2 * np.pi)
        perp = _rotate(perp, d, base)
        for sgn in (1.0, -1.0):
            ang = rng.uniform(0.45, 0.8)
            cd = _rotate(d, perp, sgn * ang)
            if goal is not None and gen < 4:
                cd = _unit(cd + 0.25 * _unit(goal - p1))
            cl = max(r_child * length_per_radius * rng.uniform(0.8, 1.25), 3.0)
            end = p1 + cd * cl
            if inside(end):
                stack.append((p1, cd, r_child, cl, gen + 1))
            elif inside(p1 + cd * cl * 0.5):
                stack.append((p1, cd, r_child, cl * 0.5, gen + 1))
    return segs


def rasterize(segments: list[Segment], cover: npt.NDArray[np.float32], *, origin_mm: npt.ArrayLike,
              spacing_mm: npt.ArrayLike, extra_mm: float = 0.0,
              generation_range: tuple[int, int] | None = None) -> None:
    """Max-accumulate partial-volume coverage of ``segments`` (radius + ``extra_mm``) into ``cover``.

    ``cover`` is (nz, ny, nx); ``origin_mm`` and ``spacing_mm`` are in physical (X, Y, Z) order
    for an identity direction. Coverage ramps linearly over one voxel across the wall:
    ``c = clip((r - d) / h + 0.5, 0, 1) * min(1, 2 r / h)`` with ``d`` the distance to the segment axis and
    ``h`` the mean voxel size.
    """
    org = np.asarray(origin_mm, float)
    sp = np.asarray(spacing_mm, float)
    shape_xyz = np.array(cover.shape[::-1])
    h = float(np.mean(sp))
    for s in segments:
        if generation_range is not None and not generation_range[0] <= s.generation <= generation_range[1]:
            continue
        r = s.radius_mm + extra_mm
        reach = r + h
        lo = np.floor((np.minimum(s.p0, s.p1) - reach - org) / sp).astype(int)
        hi = np.ceil((np.maximum(s.p0, s.p1) + reach - org) / sp).astype(int) + 1
        lo = np.clip(lo, 0, shape_xyz)
        hi = np.clip(hi, 0, shape_xyz)
        if np.any(hi <= lo):
            continue
        xs = org[0] + sp[0] * np.arange(lo[0], hi[0])
        ys = org[1] + sp[1] * np.arange(lo[1], hi[1])
        zs = org[2] + sp[2] * np.arange(lo[2], hi[2])
        v = s.p1 - s.p0
        vv = max(float(v @ v), 1e-9)
        dx, dy, dz = xs[None, None, :] - s.p0[0], ys[None, :, None] - s.p0[1], zs[:, None, None] - s.p0[2]
        t = np.clip((dx * v[0] + dy * v[1] + dz * v[2]) / vv, 0.0, 1.0)
        d2 = (dx - t * v[0]) ** 2 + (dy - t * v[1]) ** 2 + (dz - t * v[2]) ** 2
        # linear ramp across the wall; a sub-voxel tube fills only ~2r/h of the voxel
        c = (np.clip((r - np.sqrt(d2)) / h + 0.5, 0.0, 1.0) * min(1.0, 2.0 * r / h)).astype(np.float32)
        view = cover[lo[2]:hi[2], lo[1]:hi[1], lo[0]:hi[0]]
        np.maximum(view, c, out=view)


def grid_lookup(mask: npt.NDArray[np.bool_], *, origin_mm: npt.ArrayLike,
                spacing_mm: npt.ArrayLike) -> Callable[[npt.NDArray[np.float64]], bool]:
    """Point predicate ``(X, Y, Z) -> mask[nearest voxel]`` (False outside the grid); identity direction,
    ``origin_mm``/``spacing_mm`` in physical (X, Y, Z) order."""
    org = np.asarray(origin_mm, float)
    sp = np.asarray(spacing_mm, float)
    hi = np.array(mask.shape[::-1]) - 1

    def inside(pt: npt.NDArray[np.float64]) -> bool:
        i = np.rint((np.asarray(pt, float) - org) / sp).astype(int)
        if np.any(i < 0) or np.any(i > hi):
            return False
        return bool(mask[i[2], i[1], i[0]])

    return inside
