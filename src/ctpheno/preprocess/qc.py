"""Segmentation QC: plausibility numbers (schema QC) and a PNG montage.

The montage shows three axial slices (upper, middle, lower lung) and a coronal slice in the
lung window with the outline of each label (right lung blue, left lung orange, airways green).
Images are drawn in radiological convention (patient's right on the image's left, anterior
up, head up) from the direction matrix. It carries no text from the DICOM header (no PHI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..io.volume import Volume, axial_view
from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .maskqc import mask_qc_numbers

LABEL_COLOURS = {LABEL_RIGHT_LUNG: "#1f77ff", LABEL_LEFT_LUNG: "#ff8c00", LABEL_AIRWAYS: "#2ca02c"}

Severity = Literal["info", "warn", "exclude"]
QC_FLAG_SEVERITY: dict[str, Severity] = {
    # segmentation QC (qc/qc.parquet ``flags``)
    "volume_low": "exclude",  # lung volume implausible for an inspiratory adult scan (or a failed mask)
    "volume_high": "exclude",  # implausible: a mask leaking into the body or bowel
    "right_lung_missing": "warn",  # one-lung scans are measured (that side's rows are NaN)
    "left_lung_missing": "warn",
    "lr_ratio": "warn",  # an elevated hemidiaphragm or a lobectomy is real anatomy: look, don't gate
    "dense_mask": "warn",  # consolidation or a mass now inside the mask by design, or a leak: see the QC image
    "apex_cut": "exclude",  # coverage truncated: zonal metrics NaN, whole-lung density biased
    "base_cut": "exclude",
    "lung_body_low": "warn",  # lung lost (opacified / collapsed) or missed
    "lung_body_high": "exclude",  # the mask left the thorax
    "costal_gap": "warn",  # lesion at the chest wall cut out of the mask (or an effusion)
    "airway_disconnected": "info",  # trachea not found: masks usually still right
    # air-level sheet on the chest wall inside the mask: a pneumothorax, or confluent paraseptal emphysema,
    # which the number cannot tell apart (phantoms: 16-100 mL at 10-15 % paraseptal) -- shown, not ranked
    "pleural_air": "info",
    # QCT stage (features/qct.parquet ``qct_flags``)
    "air_unmeasured": "warn",  # no tracheal air: *_adj columns without air calibration / harmonisation
    "air_offset": "exclude",  # tracheal air beyond features.qct.calibration.max_offset_hu from -1000 HU
    "noise_high": "exclude",  # noise beyond what features.qct.harmonisation.max_sigma_mm can reach
    # airways stage (features/qct.parquet ``airway_tree_flags``): about the airway endpoints only, never
    # the density, so none excludes by default
    "airway_leak": "warn",  # the tree's leak control erased much of it: look at its QC picture
    "few_branches": "info",  # Pi10 / segmental medians NaN: too few measured branches
    "thick_slices": "info",  # slices too thick for per-branch walls: endpoints NaN by design
    "no_airway_seed": "info",  # no trachea to grow the tree from
    "airways_not_run": "info",
}
"""Severity of every QC flag: ``info`` (recorded), ``warn`` (shown first in the report), ``exclude``
(the scan is left out of the model stages by default, ``models.qc_gate``; listed with its reason in
``models/excluded_scans.parquet`` and the report). One dict for the preprocess, airways and QCT stages."""


DENSE_HU = -500
"""Mask voxels above this HU count as dense (``frac_above_minus500``, the ``dense_mask`` flag)."""


def qc_metrics(image: Volume, labels: Volume, *, min_lung_volume_ml: float = 1500.0,
               max_lung_volume_ml: float = 9000.0, max_frac_above_minus500: float = 0.25,
               min_left_right_ratio: float = 0.5, max_left_right_ratio: float = 1.6,
               min_lung_body_ratio: float = 0.1, max_lung_body_ratio: float = 0.7,
               max_envelope_gap_ml: float = 4.0, max_pleural_air_ml: float = 10.0) -> dict[str, Any]:
    """QC numbers of one segmentation (the columns of :data:`ctpheno.io.schemas.QC`, less ``scan_id``).

    ``flags`` lists every implausible finding, ``;``-separated (severities in :data:`QC_FLAG_SEVERITY`):
    ``volume_low``, ``volume_high``, ``right_lung_missing``, ``left_lung_missing``, ``lr_ratio``,
    ``dense_mask`` (more than ``max_frac_above_minus500`` of mask voxels above ``DENSE_HU``), ``apex_cut``,
    ``base_cut``, and from the mask-QC numbers of :mod:`.maskqc`: ``lung_body_low`` /
    ``lung_body_high`` (``lung_body_ratio`` outside [min, max]), ``costal_gap``
    (``envelope_gap_ml`` above the maximum), ``airway_disconnected`` (no lung joined to the
    airway label), ``pleural_air`` (``pleural_air_ml`` above the maximum).
    """
    image.check_same_geometry(labels, what="labels")
    lab = labels.array
    hu = image.array
    vml = image.voxel_volume_ml
    lung = _is_lung(lab)
    n_r = int(np.count_nonzero(lab == LABEL_RIGHT_LUNG))
    n_l = int(np.count_nonzero(lung)) - n_r
    r_ml, l_ml = n_r * vml, n_l * vml
    total = r_ml + l_ml
    dense = np.count_nonzero(lung & (hu > DENSE_HU))  # no gather of the lung's HU
    frac = float(dense / (n_r + n_l)) if (n_r + n_l) else float("nan")
    sup_ax, sup_sign = image.index_axis_superior()
    per_slice = lung.any(axis=tuple(a for a in range(3) if a != sup_ax))
    top_idx, bottom_idx = (per_slice.size - 1, 0) if sup_sign > 0 else (0, per_slice.size - 1)
    covers_apex = bool(lung.any()) and not bool(per_slice[top_idx])
    covers_base = bool(lung.any()) and not bool(per_slice[bottom_idx])
    ratio = l_ml / r_ml if r_ml > 0 else float("nan")
    flags = []
    if total < min_lung_volume_ml:
        flags.append("volume_low")
    if total > max_lung_volume_ml:
        flags.append("volume_high")
    if n_r == 0:
        flags.append("right_lung_missing")
    if n_l == 0:
        flags.append("left_lung_missing")
    if n_r and n_l and not (min_left_right_ratio <= ratio <= max_left_right_ratio):
        flags.append("lr_ratio")
    if np.isfinite(frac) and frac > max_frac_above_minus500:
        flags.append("dense_mask")
    if not covers_apex:
        flags.append("apex_cut")
    if not covers_base:
        flags.append("base_cut")
    perm, left_ax, sup = axial_view(image)
    mq = mask_qc_numbers(np.transpose(hu, perm), np.transpose(lab, perm), tuple(image.spacing_mm[a] for a in perm),
                         left_axis=left_ax, superior_axis=sup) if (n_r + n_l) else {
        "lung_body_ratio": float("nan"), "envelope_gap_ml": float("nan"), "airway_lungs_connected": 0.0,
        "pleural_air_ml": 0.0}
    if mq["lung_body_ratio"] < min_lung_body_ratio:
        flags.append("lung_body_low")
    if mq["lung_body_ratio"] > max_lung_body_ratio:
        flags.append("lung_body_high")
    if mq["envelope_gap_ml"] > max_envelope_gap_ml:
        flags.append("costal_gap")
    if mq["airway_lungs_connected"] == 0:
        flags.append("airway_disconnected")
    if mq["pleural_air_ml"] > max_pleural_air_ml:
        flags.append("pleural_air")
    unknown = set(flags) - set(QC_FLAG_SEVERITY)
    if unknown:  # every flag needs a severity (a programming error otherwise)
        raise KeyError(f"QC flags without a severity in QC_FLAG_SEVERITY: {sorted(unknown)}")
    return {**mq, "airway_lungs_connected": int(mq["airway_lungs_connected"]),
            "lung_volume_ml": float(total), "right_volume_ml": float(r_ml), "left_volume_ml": float(l_ml),
            "left_right_ratio": float(ratio), "frac_above_minus500": frac,
            "both_lungs_found": bool(n_r > 0 and n_l > 0), "covers_apex": covers_apex,
            "covers_base": covers_base, "flags": ";".join(flags)}


def _radiological(vol: Volume, arr: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Reorder ``arr`` to (superior->inferior, anterior->posterior, patient right->left)."""
    axes = [vol.index_axis_superior(), vol.index_axis_anterior(), vol.index_axis_patient_left()]
    if len({a for a, _ in axes}) != 3:
        return arr
    out = np.transpose(arr, [a for a, _ in axes])
    # want: index 0 = most superior (flip if +index is superior), anterior first, patient right first
    flips = [axes[0][1] > 0, axes[1][1] > 0, axes[2][1] < 0]
    for ax, flip in enumerate(flips):
        if flip:
            out = np.flip(out, axis=ax)
    return out


def _is_lung(labels: npt.NDArray[np.integer]) -> npt.NDArray[np.bool_]:
    """``labels`` is 1 or 2; for uint8 labels in two passes (0 wraps to 255)."""
    if labels.dtype != np.uint8:
        return np.isin(labels, (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG))
    return (labels - np.uint8(LABEL_RIGHT_LUNG)) <= np.uint8(LABEL_LEFT_LUNG - LABEL_RIGHT_LUNG)


def qc_montage(image: Volume, labels: Volume, dest: str | Path, *, title: str = "",
               qc: dict[str, Any] | None = None) -> Path:
    """Write the QC montage PNG (3 axial levels at 25/50/75 % of the lung height + 1 coronal) to ``dest``.

    With ``qc`` (the dict of :func:`qc_metrics`) a line under the images gives the volumes, the
    mask-QC numbers and the flags with their severity.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    image.check_same_geometry(labels, what="labels")
    hu = _radiological(image, image.array)
    lab = _radiological(labels, labels.array)
    sup_ax = image.index_axis_superior()[0]
    ant_ax = image.index_axis_anterior()[0]
    lr_ax = image.index_axis_patient_left()[0]
    sp = image.spacing_mm
    s_si, s_ap, s_lr = sp[sup_ax], sp[ant_ax], sp[lr_ax]
    lung = _is_lung(lab)
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    if zs.size:
        levels = [int(zs[0] + q * (zs[-1] - zs[0])) for q in (0.25, 0.5, 0.75)]
        ys = np.flatnonzero(lung.any(axis=(0, 2)))
        cor = int(0.5 * (ys[0] + ys[-1]) + 0.1 * (ys[-1] - ys[0]))
    else:
        levels = [int(hu.shape[0] * q) for q in (0.25, 0.5, 0.75)]
        cor = hu.shape[1] // 2
    fig = Figure(figsize=(16, 4.6), dpi=100)
    axs = fig.subplots(1, 4)
    panels = [(hu[k], lab[k], s_ap / s_lr, f"axial {k}") for k, name in zip(levels, ("upper", "middle", "lower"))]
    panels.append((hu[:, cor, :], lab[:, cor, :], s_si / s_lr, f"coronal {cor}"))
    for ax, (img, lb, aspect, name) in zip(axs, panels):
        ax.imshow(img, cmap="gray", vmin=-1000, vmax=200, aspect=aspect, interpolation="nearest")
        for code, colour in LABEL_COLOURS.items():
            m = (lb == code).astype(np.float32)
            if m.any():
                ax.contour(m, levels=[0.5], colors=[colour], linewidths=1.0)
        ax.set_title(name, fontsize=9, color="w")
        ax.text(0.02, 0.97, "R", color="w", transform=ax.transAxes, va="top", fontsize=10)
        ax.text(0.95, 0.97, "L", color="w", transform=ax.transAxes, va="top", fontsize=10)
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=10, color="w")
    fig.subplots_adjust(left=0.005, right=0.995, top=0.88 if title else 0.95, bottom=0.08 if qc else 0.01,
                        wspace=0.03)  # fixed: tight_layout measured every text for a fixed four-panel row
    if qc:
        flags = [f for f in str(qc.get("flags", "")).split(";") if f]
        line = (f"R {qc['right_volume_ml']:.0f} mL  L {qc['left_volume_ml']:.0f} mL  "
                f"lung/body {qc['lung_body_ratio']:.2f}  costal gap {qc['envelope_gap_ml']:.1f} mL  "
                f"airway-joined lungs {qc['airway_lungs_connected']}  pleural air {qc['pleural_air_ml']:.0f} mL  |  "
                + ("flags: " + ", ".join(f"{f} ({QC_FLAG_SEVERITY.get(f, 'info')})" for f in flags) if flags
                   else "no flags"))
        worst = max((QC_FLAG_SEVERITY.get(f, "info") for f in flags), key=("info", "warn", "exclude").index,
                    default="")
        colour = {"exclude": "#ff5050", "warn": "#ffb000"}.get(worst, "white")
        fig.text(0.01, 0.02, line, color=colour, fontsize=9, family="monospace")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp.png")
    fig.savefig(tmp, facecolor="black", pil_kwargs={"compress_level": 2})  # 1/4 of level 6's time, 8 % larger
    tmp.replace(dest)
    return dest
