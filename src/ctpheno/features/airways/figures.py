"""QC picture of the airway step: the tree coloured by generation and a cross-section gallery.

Left: coronal and axial maximum-intensity projections of the segmented lumen, each voxel
coloured by the generation of its branch (the lowest generation along the projection ray, so
the trachea and main bronchi stay on top). Right: one orthogonal cross-section per generation
(the measured branch with most valid sections, its middle section; then other well-measured
branches), resampled at 0.1 mm, with
the corrected lumen (blue) and outer wall (orange) circles and the uncorrected FWHM ones dashed —
the picture a reader checks the wall measurement against.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import ndimage as ndi

from ...vocab import Spacing
from .measure import AirwayResult, branch_label_map
from .sections import plane_basis

GALLERY_SIZE = 6
PIXEL_MM = 0.1


def generation_map(result: AirwayResult, spacing_mm: Spacing) -> npt.NDArray[np.int16]:
    """Per lumen voxel, the generation of its branch (-1 outside the lumen)."""
    if result.tree is None or result.segmentation is None:
        raise ValueError("the airway result has no tree (step skipped); nothing to draw")
    lab = branch_label_map(result.tree, result.segmentation.lumen, spacing_mm)
    gen = np.r_[-1, result.tree.branches["generation"].to_numpy()].astype(np.int16)
    return gen[lab]


def _projection(gen: npt.NDArray[np.int16], axis: int) -> npt.NDArray[np.float64]:
    big = np.int16(1000)
    g = np.where(gen >= 0, gen, big).min(axis=axis).astype(float)
    return np.where(g >= big, np.nan, g)


def gallery_sections(result: AirwayResult, *, n: int = GALLERY_SIZE) -> pd.DataFrame:
    """The sections shown: the middle valid section of the best-measured branch of each generation, then of
    the next best-measured branches, up to ``n``."""
    if result.sections is None or not len(result.sections):
        return pd.DataFrame()
    b = result.branches[result.branches["measured"]].sort_values("n_sections_valid", ascending=False)
    first = b.drop_duplicates("generation")  # one per generation, then the next best-measured branches
    best = pd.concat([first, b.drop(first.index)]).head(n).sort_values(["generation", "branch_id"])
    rows = []
    for bid in best["branch_id"]:
        s = result.sections[(result.sections["branch_id"] == bid) & result.sections["valid"]]
        rows.append(s.iloc[len(s) // 2])
    return pd.DataFrame(rows)


def section_image(image: npt.NDArray, row: pd.Series, spacing_mm: Spacing, *, half_mm: float) -> np.ndarray:
    """The oblique plane of one section (trilinear, ``PIXEL_MM`` pixels, ``2 half_mm`` wide)."""
    c = row[["z_mm", "y_mm", "x_mm"]].to_numpy(float)
    u, v = plane_basis(row[["tz", "ty", "tx"]].to_numpy(float)[None])
    g = np.arange(-half_mm, half_mm + PIXEL_MM / 2, PIXEL_MM)
    pts = c + g[:, None, None] * v[0] + g[None, :, None] * u[0]
    coords = (pts / np.asarray(spacing_mm, float)).reshape(-1, 3).T
    return ndi.map_coordinates(np.asarray(image, np.float32), coords, order=1).reshape(len(g), len(g))


def save_qc_figure(result: AirwayResult, image: npt.NDArray, spacing_mm: Spacing, path: str | Path, *,
                   title: str = "") -> Path:
    """Write the QC picture (module doc) of ``result``, measured on ``image``, to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gen = generation_map(result, spacing_mm)
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(gen >= 0))
    gen = gen[box]
    gal = gallery_sections(result)
    fig = plt.figure(figsize=(15, 7.5))
    grid = fig.add_gridspec(2, 5, width_ratios=(1.4, 1.4, 1, 1, 1))
    vmax = max(int(gen.max()), 1)
    sz, sy, sx = spacing_mm
    for k, (axis, aspect, label) in enumerate(((1, sz / sx, "coronal"), (0, sy / sx, "axial"))):
        ax = fig.add_subplot(grid[:, k])
        im = ax.imshow(_projection(gen, axis), cmap="viridis", vmin=0, vmax=vmax, origin="lower" if axis == 1 else "upper",
                       aspect=aspect, interpolation="nearest")
        ax.set_title(f"airway tree by generation ({label})", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(im, ax=fig.axes[:2], orientation="horizontal", fraction=0.04, pad=0.02, label="generation")
    theta = np.linspace(0, 2 * np.pi, 200)
    for i, (_, row) in enumerate(gal.iterrows()):
        ax = fig.add_subplot(grid[i // 3, 2 + i % 3])
        half = float(row["outer_radius_fwhm_mm"]) + 2.5
        ax.imshow(section_image(image, row, spacing_mm, half_mm=half), cmap="gray", vmin=-1000, vmax=100,
                  extent=(-half, half, -half, half), origin="lower")
        for rad, col, ls in ((row["lumen_radius_mm"], "tab:blue", "-"), (row["outer_radius_mm"], "tab:orange", "-"),
                             (row["lumen_radius_fwhm_mm"], "tab:blue", ":"),
                             (row["outer_radius_fwhm_mm"], "tab:orange", ":")):
            ax.plot(rad * np.cos(theta), rad * np.sin(theta), color=col, ls=ls, lw=1)
        g = int(result.branches.loc[result.branches["branch_id"] == row["branch_id"], "generation"].iat[0])
        t = float(row["outer_radius_mm"] - row["lumen_radius_mm"])
        ax.set_title(f"gen {g}: r {row['lumen_radius_mm']:.2f}, T {t:.2f} mm", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ep = result.endpoints
    fig.suptitle(f"{title}  Pi10 {ep['pi10_mm']:.2f} mm, WA% seg {ep['wa_pct_seg']:.1f}, "
                 f"{ep['airway_count']} branches to generation {ep['airway_max_generation']} "
                 f"(solid: blur-corrected, dotted: FWHM)", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


__all__ = ["gallery_sections", "generation_map", "save_qc_figure", "section_image"]
