r"""Per-branch medians and the scan-level airway endpoints of COPD studies.

Per branch (:func:`branch_measures`): the median over its valid cross-sections (:mod:`.sections`)
of the lumen radius :math:`a` and outer radius :math:`b`, from which inner perimeter
:math:`P_i = 2\pi a`, lumen area :math:`\pi a^2`, wall area :math:`WA = \pi(b^2 - a^2)`, wall
thickness :math:`b - a` and :math:`\mathrm{WA\%} = 100\,WA/(\pi b^2)`; a branch counts as
*measured* with at least ``min_sections`` valid sections.

Per scan (:func:`scan_endpoints`, the whole-lung row of the QCT table):

``pi10_mm``
    :math:`\sqrt{WA}` of a hypothetical airway of 10 mm internal perimeter: the least-squares
    line :math:`\sqrt{WA_i} = \alpha + \beta P_{i}` over the measured branches of generation
    :math:`\ge 2` (lobar bronchi and below: intrapulmonary airways; the trachea and main bronchi
    lie in the mediastinum), evaluated at :math:`P = 10` mm (Nakano et al., AJRCCM 2005;
    Grydeland et al., AJRCCM 2010; COPDGene). NaN with fewer than ``min_branches_pi10`` measured
    branches.
``wa_pct_seg``, ``wall_thickness_seg_mm``, ``lumen_area_seg_mm2``
    Median over the measured branches of generation 3-5 — the segmental and subsegmental
    bronchi, where COPDGene and CIP report WA % (counting generations from the carina, trachea
    0; by generation, "segmental" is approximate: a right-lung segmental bronchus can be
    generation 3 or 4). NaN with fewer than ``min_branches_seg`` such branches.
``airway_count``
    Branches found in the segmented tree (trachea included, trifurcation internodes not): the
    total airway count of Kirby et al. (AJRCCM 2018), which depends on how far the segmentation
    reaches — comparable between scans of the same protocol only.
``airway_max_generation``
    Deepest generation reached.
``airway_tree_flags``
    Semicolon-separated reasons the endpoints are missing or doubtful (empty when fine):
    :data:`FLAGS`.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd

ENDPOINT_COLUMNS = ("pi10_mm", "wa_pct_seg", "wall_thickness_seg_mm", "lumen_area_seg_mm2", "airway_count",
                    "airway_max_generation")
"""Scan-level airway endpoints (QCT table, whole-lung row)."""
FLAG_COLUMN = "airway_tree_flags"
FLAGS = {
    "thick_slices": "slice thickness above the airway step's maximum: no per-branch measurement",
    "no_airway_seed": "preprocess found no trachea / main bronchi (label 3) to grow the tree from",
    "few_branches": "fewer measured branches than the endpoint needs (Pi10 or the segmental medians)",
    "airway_leak": "the tree's leak control erased more than the allowed fraction of its volume",
    "airways_not_run": "the airways stage did not run or failed for this scan",
}
"""Flag codes of ``airway_tree_flags``."""
SEGMENTAL_GENERATIONS = (3, 5)
PI10_MIN_GENERATION = 2

BRANCH_MEASURE_COLUMNS = ("n_sections", "n_sections_valid", "lumen_radius_mm", "outer_radius_mm", "wall_thickness_mm",
                          "inner_perimeter_mm", "lumen_area_mm2", "wall_area_mm2", "wa_pct", "measured")


TRIM_MADS = 3.0
TRIM_FLOOR_MM = 0.15
"""Pi10's line leaves out branches more than ``TRIM_MADS`` robust SDs (and more than ``TRIM_FLOOR_MM``
mm of :math:`\\sqrt{WA}`) off the robust (Theil-Sen) line."""


def pi10_mm(inner_perimeter_mm: npt.ArrayLike, wall_area_mm2: npt.ArrayLike) -> float:
    r"""Pi10: :math:`\sqrt{WA}` of a hypothetical airway of 10 mm internal perimeter (mm).

    Least-squares line :math:`\sqrt{WA_i} = \alpha + \beta P_i` over the branches, evaluated at
    :math:`P = 10` mm (Nakano et al. 2005; Grydeland et al. 2010), fitted on the branches within
    :data:`TRIM_MADS` robust SDs (1.4826 x median absolute deviation) of the Theil-Sen line (median of
    the pairwise slopes; Sen 1968): a lobar bronchus measured against the mediastinum or an abutting
    artery has a wall area several times the line's and, at large perimeter, would tilt a plain
    least-squares line — and hide behind it (its own residual stays small). NaN with fewer than 3
    branches or no spread of perimeters.
    """
    p = np.asarray(inner_perimeter_mm, float)
    wa = np.asarray(wall_area_mm2, float)
    ok = np.isfinite(p) & np.isfinite(wa) & (wa > 0)
    p, y = p[ok], np.sqrt(wa[ok])
    if p.size < 3 or np.ptp(p) <= 0:
        return math.nan
    i, j = np.triu_indices(p.size, 1)
    dp = p[j] - p[i]
    slope = float(np.median((y[j] - y[i])[dp != 0] / dp[dp != 0]))  # Theil-Sen: robust to outlying branches
    resid = y - slope * p
    resid -= np.median(resid)
    scale = 1.4826 * float(np.median(np.abs(resid)))
    keep = np.abs(resid) <= max(TRIM_MADS * scale, TRIM_FLOOR_MM)
    if keep.sum() < 3 or np.ptp(p[keep]) <= 0:
        keep = np.ones(p.size, bool)
    b, a = np.polyfit(p[keep], y[keep], 1)
    return float(a + 10.0 * b)


def branch_measures(branches: pd.DataFrame, sections: pd.DataFrame, *, min_sections: int = 3) -> pd.DataFrame:
    """``branches`` (the tree's table) with the per-branch medians of its valid sections (module doc)."""
    out = branches.copy()
    n_all = sections.groupby("branch_id").size() if len(sections) else pd.Series(dtype=int)
    valid = sections[sections["valid"].astype(bool)] if len(sections) else sections
    med = valid.groupby("branch_id")[["lumen_radius_mm", "outer_radius_mm"]].median() if len(valid) else None
    ids = out["branch_id"]
    out["n_sections"] = ids.map(n_all).fillna(0).astype(int)
    out["n_sections_valid"] = ids.map(valid.groupby("branch_id").size() if len(valid) else {}).fillna(0).astype(int)
    a = ids.map(med["lumen_radius_mm"]) if med is not None else pd.Series(np.nan, index=out.index)
    b = ids.map(med["outer_radius_mm"]) if med is not None else pd.Series(np.nan, index=out.index)
    out["measured"] = out["n_sections_valid"] >= min_sections
    a = a.where(out["measured"])
    b = b.where(out["measured"])
    out["lumen_radius_mm"] = a.astype(float)
    out["outer_radius_mm"] = b.astype(float)
    out["wall_thickness_mm"] = (b - a).astype(float)
    out["inner_perimeter_mm"] = (2 * np.pi * a).astype(float)
    out["lumen_area_mm2"] = (np.pi * a**2).astype(float)
    out["wall_area_mm2"] = (np.pi * (b**2 - a**2)).astype(float)
    out["wa_pct"] = (100.0 * (b**2 - a**2) / b**2).astype(float)
    return out


def scan_endpoints(measures: pd.DataFrame, *, min_branches_pi10: int = 6, min_branches_seg: int = 3) -> dict:
    """Scan-level endpoints from :func:`branch_measures` (module doc); adds ``airway_tree_flags``."""
    m = measures[measures["measured"].astype(bool)] if len(measures) else measures
    p10 = m[m["generation"] >= PI10_MIN_GENERATION] if len(m) else m
    lo, hi = SEGMENTAL_GENERATIONS
    seg = m[(m["generation"] >= lo) & (m["generation"] <= hi)] if len(m) else m
    flags = []
    out = {
        "pi10_mm": pi10_mm(p10["inner_perimeter_mm"], p10["wall_area_mm2"]) if len(p10) >= min_branches_pi10 else math.nan,
        "wa_pct_seg": float(seg["wa_pct"].median()) if len(seg) >= min_branches_seg else math.nan,
        "wall_thickness_seg_mm": float(seg["wall_thickness_mm"].median()) if len(seg) >= min_branches_seg else math.nan,
        "lumen_area_seg_mm2": float(seg["lumen_area_mm2"].median()) if len(seg) >= min_branches_seg else math.nan,
        "airway_count": int((~measures["junction"].astype(bool)).sum()) if len(measures) else 0,
        "airway_max_generation": int(measures["generation"].max()) if len(measures) else -1,
    }
    if len(p10) < min_branches_pi10 or len(seg) < min_branches_seg:
        flags.append("few_branches")
    out[FLAG_COLUMN] = ";".join(flags)
    return out


def missing_endpoints(*flags: str) -> dict:
    """Endpoints of a scan the airway step could not measure, with the reasons (codes of :data:`FLAGS`)."""
    for f in flags:
        if f not in FLAGS:
            raise ValueError(f"unknown airway flag {f!r}; known: {sorted(FLAGS)}")
    out: dict = {c: math.nan for c in ENDPOINT_COLUMNS}
    out["airway_count"] = 0
    out["airway_max_generation"] = -1
    out[FLAG_COLUMN] = ";".join(flags)
    return out


def with_endpoints(qct: pd.DataFrame, endpoints: dict | None) -> pd.DataFrame:
    """The QCT table with the airway endpoints on its ``whole`` row (NaN and no flag elsewhere).

    ``endpoints`` None (the airways stage did not run for the scan): NaN with ``airways_not_run``.
    """
    ep = missing_endpoints("airways_not_run") if endpoints is None else endpoints
    out = qct.copy()
    whole = out["region"].astype(str) == "whole"
    for c in ENDPOINT_COLUMNS:
        out[c] = np.where(whole, float(ep[c]), np.nan)
    out[FLAG_COLUMN] = pd.Series(np.where(whole, str(ep.get(FLAG_COLUMN, "")), ""), index=out.index, dtype="string")
    return out


__all__ = ["BRANCH_MEASURE_COLUMNS", "ENDPOINT_COLUMNS", "FLAGS", "FLAG_COLUMN", "branch_measures",
           "missing_endpoints", "pi10_mm", "scan_endpoints", "with_endpoints"]
