r"""Airway branch graph: skeleton, branches, generations from the carina.

The lumen mask is thinned to a one-voxel centreline (:func:`skimage.morphology.skeletonize`,
Lee et al. 1994, the 3-D medial-axis thinning of scikit-image). Skeleton voxels with one
26-neighbour are end points, those with three or more are junction voxels; touching junction
voxels form one junction node. Removing the junction voxels cuts the skeleton into chains,
one per branch, ordered from end to end.

Clean-up (the usual skeleton pruning of airway-tree software, e.g. Palágyi et al. 2006):

* a terminal branch shorter than ``spur_factor`` times the lumen radius at its junction
  (plus one voxel) is a bump of the lumen surface, not a bronchus: removed; a junction left
  with two branches then joins them into one; repeated until nothing changes;
* an internal branch shorter than ``min_internode_mm`` is part of a trifurcation: it keeps
  its parent's generation and is not measured (``junction`` = True).

Root: the widest branch (the trachea), entered from its end with the least tree beyond it (the
top, where the image or the segmentation cuts it; skeleton stubs there do not matter). Generations
count bifurcations from there: trachea 0, main bronchi 1 (children of the carina), lobar bronchi
2, and so on (the usual Weibel-style numbering of CT airway analysis; the right intermediate
bronchus is a generation-2 branch, so "segmental" by generation is an approximation). A loop (two
branches touching) is broken by visiting branches breadth-first from the root; the extra link is
ignored. Lumen radius of a branch: median over its centreline of the distance to the nearest
non-lumen voxel (the inscribed radius, a lower bound of the lumen's own radius, used only as a
search hint).

Side: the majority lung label (1 right, 2 left) of the branch's centreline voxels; a branch
with no lung voxel (main bronchi in the mediastinum) takes the majority side of its
descendants.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi

from ...vocab import Spacing, check_spacing

STRUCT_26 = np.ones((3, 3, 3), bool)
SIDES = {1: "right", 2: "left"}

BRANCH_COLUMNS = ("branch_id", "parent_id", "generation", "side", "length_mm", "inscribed_radius_mm",
                  "n_children", "junction")


@dataclass(frozen=True)
class AirwayTree:
    """Branches of a segmented airway tree.

    Attributes
    ----------
    branches : pandas.DataFrame
        One row per branch (:data:`BRANCH_COLUMNS`), ``branch_id`` = row position; the root
        (trachea) has ``parent_id`` -1 and generation 0.
    centrelines : list of ndarray
        Per branch, its ordered centreline points (n, 3) in voxel index coordinates (z, y, x),
        from the parent junction to the far end (junction centres included at both ends).
    """

    branches: pd.DataFrame
    centrelines: list[npt.NDArray[np.float64]]

    @property
    def max_generation(self) -> int:
        return int(self.branches["generation"].max()) if len(self.branches) else -1


def _neighbour_count(skel: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    n = ndi.convolve(skel.astype(np.uint8), STRUCT_26.astype(np.uint8), mode="constant")
    return np.where(skel, n - 1, 0).astype(np.uint8)


def _order_chain(pts: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Order the voxels of a 26-connected chain from one end to the other (greedy walk)."""
    if len(pts) <= 2:
        return pts
    d = np.abs(pts[:, None, :] - pts[None, :, :]).max(-1)
    adj = (d == 1)
    deg = adj.sum(1)
    start = int(np.flatnonzero(deg == deg.min())[0])
    order = [start]
    seen = np.zeros(len(pts), bool)
    seen[start] = True
    cur = start
    for _ in range(len(pts) - 1):
        cand = np.flatnonzero(adj[cur] & ~seen)
        if len(cand) == 0:  # a small knot in the chain: jump to the nearest unvisited voxel
            rest = np.flatnonzero(~seen)
            cand = rest[[int(np.argmin(np.abs(pts[rest] - pts[cur]).sum(1)))]]
        nxt = int(cand[np.argmin(np.abs(pts[cand] - pts[cur]).sum(1))])
        order.append(nxt)
        seen[nxt] = True
        cur = nxt
    return pts[order]


@dataclass
class _Edge:
    pts: npt.NDArray[np.float64]  # ordered, node centres at the ends
    nodes: list[int]  # node ids at the ends (1 or 2; an isolated chain has 0)


def _raw_graph(skel: npt.NDArray[np.bool_]) -> tuple[list[npt.NDArray[np.float64]], list[_Edge], list[int]]:
    """Nodes (centres), edges and each node's kind (0 end point, 1 junction) of a skeleton."""
    junction = skel & (_neighbour_count(skel) >= 3)
    jlab, nj = ndi.label(junction, structure=STRUCT_26)
    centres = [np.asarray(c, float) for c in ndi.center_of_mass(junction, jlab, range(1, nj + 1))] if nj else []
    kinds = [1] * nj
    clab, _ = ndi.label(skel & ~junction, structure=STRUCT_26)
    edges: list[_Edge] = []
    hi = np.array(skel.shape)
    for i, sl in enumerate(ndi.find_objects(clab), start=1):
        pts = _order_chain(np.argwhere(clab[sl] == i) + np.array([s.start for s in sl]))
        touch = []
        for end in (pts[0], pts[-1]):
            lo, up = np.maximum(end - 1, 0), np.minimum(end + 2, hi)
            win = jlab[lo[0]:up[0], lo[1]:up[1], lo[2]:up[2]]
            touch.append([int(t) - 1 for t in np.unique(win[win > 0])])
        if len(pts) == 1:  # one voxel: its two ends are the (up to two) junctions it touches
            touch = [touch[0][:1], touch[0][1:2]]
        nodes = []
        for end, t in zip((pts[0], pts[-1]), touch):
            if t:
                nodes.append(t[0])
            else:  # a free end: a new end-point node
                centres.append(end.astype(float))
                kinds.append(0)
                nodes.append(len(centres) - 1)
        if nodes[0] == nodes[1]:  # a chain looping back to one junction: a knot, not a branch
            continue
        ends = [centres[n][None] if kinds[n] == 1 else np.zeros((0, 3)) for n in nodes]
        edges.append(_Edge(np.vstack([ends[0], pts.astype(float), ends[1]]), nodes))
    return centres, edges, kinds


def _length_mm(pts: npt.NDArray[np.float64], sp: npt.NDArray[np.float64]) -> float:
    return float(np.sqrt(((np.diff(pts, axis=0) * sp) ** 2).sum(1)).sum()) if len(pts) > 1 else 0.0


def _radius_at(dist: npt.NDArray[np.float32], pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    idx = np.clip(np.rint(pts).astype(int), 0, np.array(dist.shape) - 1)
    return dist[idx[:, 0], idx[:, 1], idx[:, 2]].astype(float)


def _prune(centres, edges: list[_Edge], kinds, dist, sp, *, spur_factor: float) -> list[_Edge]:
    """Remove short terminal spurs and join the two branches left at a junction, until stable."""
    h = float(np.mean(sp))
    while True:
        count: dict[int, int] = {}
        for e in edges:
            for n in set(e.nodes):
                count[n] = count.get(n, 0) + 1
        drop = set()
        for i, e in enumerate(edges):
            a, b = e.nodes
            free = [n for n in (a, b) if kinds[n] == 0 and count.get(n, 0) == 1]
            junc = [n for n in (a, b) if count.get(n, 0) >= 3]
            if len(free) == 1 and junc:
                r = float(_radius_at(dist, centres[junc[0]][None])[0])
                if _length_mm(e.pts, sp) < spur_factor * r + h:
                    drop.add(i)
        if not drop:
            break
        edges = [e for i, e in enumerate(edges) if i not in drop]
        edges = _join_pass_through(edges)
    return edges


def _join_pass_through(edges: list[_Edge]) -> list[_Edge]:
    """Join pairs of branches meeting at a node that no other branch touches."""
    while True:
        at: dict[int, list[int]] = {}
        for i, e in enumerate(edges):
            for n in set(e.nodes):
                at.setdefault(n, []).append(i)
        pair = next(((n, ids) for n, ids in at.items() if len(ids) == 2 and ids[0] != ids[1]), None)
        if pair is None:
            return edges
        n, (i, j) = pair
        ei, ej = edges[i], edges[j]
        pi = ei.pts if ei.nodes[-1] == n else ei.pts[::-1]
        pj = ej.pts if ej.nodes[0] == n else ej.pts[::-1]
        oi = [m for m in ei.nodes if m != n] or [n]
        oj = [m for m in ej.nodes if m != n] or [n]
        joined = _Edge(np.vstack([pi, pj[1:]]), [oi[0], oj[0]])
        edges = [e for k, e in enumerate(edges) if k not in (i, j)] + [joined]


def build_tree(lumen: npt.NDArray[np.bool_], spacing_mm: Spacing, *, labels: npt.NDArray[np.integer] | None = None,
               spur_factor: float = 1.5, min_internode_mm: float = 1.5) -> AirwayTree:
    """Skeletonise ``lumen`` and build its branch tree (see the module doc).

    Parameters
    ----------
    lumen
        bool (z, y, x) airway lumen, one connected tree (other components are ignored).
    spacing_mm
        Voxel size (z, y, x).
    labels
        Optional lung labels on the same grid (1 right, 2 left) for the ``side`` column.
    spur_factor, min_internode_mm
        Pruning of terminal spurs and of trifurcation internodes (module doc).
    """
    from skimage.morphology import skeletonize

    sp = np.asarray(check_spacing(spacing_mm))
    if lumen.dtype != np.bool_:
        raise TypeError(f"lumen must be a bool array; got {lumen.dtype}")
    if labels is not None and labels.shape != lumen.shape:
        raise ValueError(f"labels and lumen differ in shape: {labels.shape} vs {lumen.shape}")
    if not lumen.any():
        return AirwayTree(pd.DataFrame(columns=list(BRANCH_COLUMNS)), [])
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in np.nonzero(lumen))
    sub = lumen[box]
    off = np.array([s.start for s in box], float)
    dist = ndi.distance_transform_edt(sub, sampling=sp).astype(np.float32)
    skel = skeletonize(sub).astype(bool)
    centres, edges, kinds = _raw_graph(skel)
    edges = _prune(centres, edges, kinds, dist, sp, spur_factor=spur_factor)
    if not edges:
        return AirwayTree(pd.DataFrame(columns=list(BRANCH_COLUMNS)), [])
    radius = [float(np.median(_radius_at(dist, e.pts))) for e in edges]
    at: dict[int, list[int]] = {}
    for i, e in enumerate(edges):
        for n in set(e.nodes):
            at.setdefault(n, []).append(i)
    root = int(np.argmax(radius))  # the trachea: the widest branch
    e0 = edges[root]
    free0 = min(e0.nodes, key=lambda n: _reach_mm(edges, at, n, root, sp))  # its top: the smaller side
    order, parent, far, pts_out = [root], {root: -1}, {}, {}
    far[root] = next((n for n in e0.nodes if n != free0), free0)
    pts_out[root] = e0.pts if e0.nodes[0] == free0 else e0.pts[::-1]
    queue = deque([root])
    while queue:
        i = queue.popleft()
        for j in at.get(far[i], []):
            if j in parent:
                continue
            e = edges[j]
            near = far[i]
            parent[j] = i
            far[j] = next((n for n in e.nodes if n != near), near)
            pts_out[j] = e.pts if e.nodes[0] == near else e.pts[::-1]
            order.append(j)
            queue.append(j)
    index = {old: new for new, old in enumerate(order)}
    rows, lines = [], []
    gen: dict[int, int] = {}
    short: dict[int, bool] = {}
    for old in order:
        p = parent[old]
        length = _length_mm(pts_out[old], sp)
        n_children = sum(1 for j in at.get(far[old], []) if parent.get(j) == old)
        short[old] = p >= 0 and n_children > 0 and length < min_internode_mm
        gen[old] = 0 if p < 0 else gen[p] + (0 if short[p] else 1)
        rows.append({"branch_id": index[old], "parent_id": index[p] if p >= 0 else -1, "generation": gen[old],
                     "length_mm": length, "inscribed_radius_mm": radius[old], "n_children": n_children,
                     "junction": bool(short[old])})
        lines.append(pts_out[old] + off)
    df = pd.DataFrame(rows)
    df["side"] = _sides(df, lines, labels)
    return AirwayTree(df[list(BRANCH_COLUMNS)], lines)


def _reach_mm(edges: list[_Edge], at: dict[int, list[int]], start: int, skip: int, sp) -> float:
    """Total centreline length reachable from node ``start`` without crossing edge ``skip``."""
    seen_e, seen_n, stack, total = {skip}, {start}, [start], 0.0
    while stack:
        n = stack.pop()
        for j in at.get(n, []):
            if j in seen_e:
                continue
            seen_e.add(j)
            total += _length_mm(edges[j].pts, sp)
            for m in edges[j].nodes:
                if m not in seen_n:
                    seen_n.add(m)
                    stack.append(m)
    return total


def _sides(df: pd.DataFrame, lines: list[npt.NDArray[np.float64]], labels) -> list[str]:
    n = len(df)
    votes = np.zeros((n, 2))
    if labels is not None:
        for i, pts in enumerate(lines):
            idx = np.clip(np.rint(pts).astype(int), 0, np.array(labels.shape) - 1)
            lab = labels[idx[:, 0], idx[:, 1], idx[:, 2]]
            votes[i] = [np.count_nonzero(lab == 1), np.count_nonzero(lab == 2)]
    total = votes.copy()
    parent = df["parent_id"].to_numpy()
    for i in range(n - 1, 0, -1):  # children come after parents: accumulate upwards
        total[parent[i]] += total[i]
    out = []
    for i in range(n):
        v = votes[i] if votes[i].sum() > 0 else total[i]
        if i == 0 or v.sum() == 0 or (votes[i].sum() == 0 and min(v) > 0.2 * max(v)):
            out.append("")
        else:
            out.append(SIDES[1 + int(np.argmax(v))])
    return out


__all__ = ["AirwayTree", "BRANCH_COLUMNS", "build_tree"]
