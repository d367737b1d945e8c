"""Figure for the docs: axial + coronal slices of one phantom per subtype beside a real chest CT."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..io.volume import Volume
from .disease import SUBTYPES
from .phantom import make_phantom

WINDOW_HU = (-1000, 200)
FRACTION = {"none": 0.0, "centrilobular": 0.2, "panlobular": 0.25, "paraseptal": 0.1, "airway": 0.02}


def _slices(vol: Volume, *, z_frac: float) -> tuple[np.ndarray, np.ndarray, float]:
    """(axial, coronal with the head up, coronal aspect ratio) of an identity-direction volume."""
    a = vol.array
    axial = a[int(round(z_frac * (a.shape[0] - 1)))]
    coronal = a[:, int(a.shape[1] * 0.55), :][::-1]
    return axial, coronal, vol.spacing_mm[0] / vol.spacing_mm[2]


def make_figure(out_png: Path, *, real_image: Path, seed: int = 7) -> Path:
    """Write the comparison figure (matplotlib, window -1000..200 HU)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import SimpleITK as sitk

    real = Volume.from_sitk(sitk.ReadImage(str(real_image)))
    cols = [("real CT (pyradiomics lung1)", real, 0.5)]
    for i, s in enumerate(SUBTYPES):
        ph = make_phantom(seed=seed + i, subtype=s, emphysema_fraction=FRACTION[s],
                          airway_wall_mm=2.2 if s == "airway" else 1.0, kernel="sharp" if s == "paraseptal" else "smooth")
        cols.append((f"synthetic: {s}", ph.image, 0.62))
    fig, axes = plt.subplots(2, len(cols), figsize=(3.2 * len(cols), 6.6))
    for j, (title, vol, zf) in enumerate(cols):
        ax_, cor, aspect = _slices(vol, z_frac=zf)
        axes[0, j].imshow(ax_, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1])
        axes[1, j].imshow(cor, cmap="gray", vmin=WINDOW_HU[0], vmax=WINDOW_HU[1], aspect=aspect)
        axes[0, j].set_title(title, fontsize=9)
        for a in axes[:, j]:
            a.set_xticks([]), a.set_yticks([])
    axes[0, 0].set_ylabel("axial")
    axes[1, 0].set_ylabel("coronal")
    fig.suptitle(f"Synthetic phantoms (demo size) vs a real chest CT, window {WINDOW_HU[0]}..{WINDOW_HU[1]} HU", fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
