"""Validation of one series from its header records (pure functions, no I/O).

Slice geometry
--------------
With unit normal :math:`n = r \\times c` (ImageOrientationPatient) and slice
positions :math:`p_k` (ImagePositionPatient), the slices sit at
:math:`d_k = p_k \\cdot n`; sorted, their gaps are :math:`g_k = d_{k+1} - d_k`
and the nominal spacing is :math:`\\Delta = \\mathrm{median}(g)`.

* ``duplicate_slices``: some :math:`g_k < 10^{-3}` mm (two different instances at one position).
* ``missing_slices``: some :math:`g_k \\ge 1.5\\,\\Delta` (a slice or more is absent).
* ``nonuniform_spacing``: otherwise :math:`\\max_k |g_k - \\Delta| / \\Delta` exceeds
  ``spacing_tolerance``.
* ``gantry_tilt``: the stack direction :math:`(p_{N-1} - p_0)/\\lVert p_{N-1} - p_0 \\rVert` is more
  than ``max_tilt_deg`` from :math:`n` (sheared volume), or GantryDetectorTilt exceeds it.
* ``non_axial``: :math:`\\arccos |n_z|` exceeds ``max_tilt_deg``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config.ingest import IngestConfig
from .headers import SECONDARY_CAPTURE_PREFIX

CHEST_BODY_PARTS = frozenset(
    {
        "CHEST",
        "THORAX",
        "LUNG",
        "LUNGS",
        "CHEST_ABDOMEN",
        "CHESTABDOMEN",
        "CHEST_ABDOMEN_PELVIS",
        "CHESTABDPELVIS",
        "CAP",
        "TORSO",
        "THORAXABDOMEN",
        "THORAX_ABDOMEN",
        "WHOLEBODY",
        "WHOLE_BODY",
        "WHOLE BODY",
        "TRUNK",
        "HEART",
        "CHEST_LOW_DOSE",
        "PECHO",
        "TORAX",
        "THORAX_LUNGE",
        "LUNGE",
    }
)
"""BodyPartExamined values that include the lungs (upper-cased, exact match)."""

LOCALIZER_WORDS = ("LOCALIZER", "SCOUT", "TOPOGRAM", "SURVIEW", "SCANOGRAM")


def is_localizer(image_type: str) -> bool:
    return any(w in image_type.upper() for w in LOCALIZER_WORDS)


def orientation_label(normal: Sequence[float], *, max_tilt_deg: float) -> str:
    """``axial | coronal | sagittal`` when the normal is within ``max_tilt_deg`` of an axis, else
    ``oblique``."""
    n = np.abs(np.asarray(normal, dtype=float))
    n = n / max(np.linalg.norm(n), 1e-12)
    axis = int(np.argmax(n))
    if np.degrees(np.arccos(min(n[axis], 1.0))) > max_tilt_deg:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def is_lung_kernel(kernel: str, lung_kernels: Sequence[str]) -> bool:
    """Case-insensitive prefix match of any value of ``kernel`` against ``lung_kernels``."""
    values = [v.strip().upper() for v in kernel.split("\\") if v.strip()]
    return any(v.startswith(k.upper()) for v in values for k in lung_kernels)


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    c = abs(float(np.dot(a, b)) / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
    return float(np.degrees(np.arccos(min(c, 1.0))))


def summarize_dicom_series(records: Sequence[dict[str, Any]], *, cfg: IngestConfig) -> dict[str, Any]:
    """Manifest fields and reason codes of one DICOM series from its file records.

    Returns a dict with the manifest's geometry columns, ``reasons`` (a set of codes)
    and ``paths`` (the series' files, one per instance, in slice order when known).
    """
    reasons: set[str] = set()
    first = records[0]
    # one file per instance; a second copy of the same instance is a warning only
    unique: dict[str, dict[str, Any]] = {}
    for i, r in enumerate(records):
        key = r["sop_uid"] or f"#{i}"
        if key in unique:
            reasons.add("duplicate_files")
            continue
        unique[key] = r
    recs = list(unique.values())
    if any(r.get("problem") == "truncated_file" for r in recs):
        reasons.add("truncated_file")
    if any(r.get("problem") == "no_pixel_data" for r in recs):
        reasons.add("no_pixel_data")
    modality = first["modality"].upper()
    if modality != "CT":
        reasons.add("not_ct")
    image_type = first["image_type"]
    if is_localizer(image_type):
        reasons.add("localizer")
    if cfg.reject_derived and image_type.split("\\")[0] == "DERIVED":
        reasons.add("derived")
    if first["sop_class"].startswith(SECONDARY_CAPTURE_PREFIX):
        reasons.add("secondary_capture")
    if first["body_part"] and first["body_part"] not in CHEST_BODY_PARTS:
        reasons.add("body_part_not_chest")
    if any(r["contrast"] for r in recs):
        reasons.add("contrast_enhanced")
    if first["expiratory"]:
        reasons.add("expiratory")
    if first["kernel"] and not is_lung_kernel(first["kernel"], cfg.lung_kernels):
        reasons.add("non_lung_kernel")
    out: dict[str, Any] = {
        "modality": first["modality"],
        "image_type": image_type,
        "body_part": first["body_part"],
        "kernel": first["kernel"],
        "manufacturer": first["manufacturer"],
        "slice_thickness_mm": first["slice_thickness_mm"],
        "n_files": len(recs),
        "size_y": first["rows"],
        "size_x": first["columns"],
        "size_z": len(recs),
        "spacing_y_mm": None,
        "spacing_x_mm": None,
        "spacing_z_mm": None,
        "orientation": None,
        "contrast": any(r["contrast"] for r in recs),
    }
    paths = [r["path"] for r in recs]
    if "no_pixel_data" in reasons:
        out.update(size_y=None, size_x=None, size_z=None)
        return {**out, "reasons": reasons, "paths": paths}
    if len(recs) == 1 and (first.get("n_frames") or 1) > 1:
        # enhanced (multi-frame) CT: per-frame geometry lives in functional groups, read by SimpleITK
        out["size_z"] = int(first["n_frames"])
        if first["pixel_spacing"]:
            out["spacing_y_mm"], out["spacing_x_mm"] = map(float, first["pixel_spacing"])
        if out["size_z"] < cfg.min_slices:
            reasons.add("too_few_slices")
        return {**out, "reasons": reasons, "paths": paths}
    if len({(r["rows"], r["columns"]) for r in recs}) > 1:
        reasons.add("inconsistent_dimensions")
    geo = [
        r for r in recs if r["ipp"] is not None and r["iop"] is not None and r["pixel_spacing"] is not None
    ]
    if len(geo) < len(recs) or not geo:
        reasons.add("missing_geometry")
    if not geo:
        return {**out, "reasons": reasons, "paths": paths}
    iops = np.asarray([r["iop"] for r in geo])
    pss = np.asarray([r["pixel_spacing"] for r in geo])
    if np.abs(iops - iops[0]).max() > 1e-4 or np.abs(pss - pss[0]).max() > 1e-4:
        reasons.add("inconsistent_dimensions")
    out["spacing_y_mm"], out["spacing_x_mm"] = float(pss[0][0]), float(pss[0][1])
    normal = np.cross(iops[0][:3], iops[0][3:])
    normal = normal / max(np.linalg.norm(normal), 1e-12)
    orient = orientation_label(normal, max_tilt_deg=cfg.max_tilt_deg)
    out["orientation"] = orient
    if orient != "axial":
        reasons.add("non_axial")
    if abs(max((r["gantry_tilt_deg"] or 0.0) for r in recs)) > cfg.max_tilt_deg:
        reasons.add("gantry_tilt")
    pos = np.asarray([r["ipp"] for r in geo])
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    paths = [geo[i]["path"] for i in order] + [r["path"] for r in recs if r not in geo]
    d = dist[order]
    if len(d) >= 2:
        gaps = np.diff(d)
        if np.any(gaps < 1e-3):
            reasons.add("duplicate_slices")
        real = gaps[gaps >= 1e-3]
        if len(real):
            step = float(np.median(real))
            out["spacing_z_mm"] = step
            if np.any(real >= 1.5 * step):
                reasons.add("missing_slices")
            elif np.max(np.abs(real - step)) / step > cfg.spacing_tolerance:
                reasons.add("nonuniform_spacing")
        stack = pos[order[-1]] - pos[order[0]]
        if np.linalg.norm(stack) > 1e-6 and _angle_deg(stack, normal) > cfg.max_tilt_deg:
            reasons.add("gantry_tilt")
        out["size_z"] = len(np.unique(np.round(d, 3)))
    if (out["size_z"] or 0) < cfg.min_slices:
        reasons.add("too_few_slices")
    return {**out, "reasons": reasons, "paths": paths}


def summarize_volume_file(record: dict[str, Any], *, cfg: IngestConfig) -> dict[str, Any]:
    """Manifest fields and reason codes of one NIfTI / NRRD / MHA file."""
    reasons: set[str] = set()
    out: dict[str, Any] = {
        "modality": None,
        "image_type": None,
        "body_part": None,
        "kernel": None,
        "manufacturer": None,
        "slice_thickness_mm": None,
        "n_files": 1,
        "contrast": None,
        "size_z": None,
        "size_y": None,
        "size_x": None,
        "spacing_z_mm": None,
        "spacing_y_mm": None,
        "spacing_x_mm": None,
        "orientation": None,
    }
    if record.get("error"):
        return {**out, "reasons": {"unreadable_file"}, "paths": [record["path"]]}
    size = list(record["size_xyz"])
    spacing = list(record["spacing_xyz"])
    if len(size) == 4 and size[3] == 1:
        size, spacing = size[:3], spacing[:3]
    if len(size) != 3 or record["n_components"] != 1:
        return {**out, "reasons": {"not_3d"}, "paths": [record["path"]]}
    out.update(
        size_x=size[0],
        size_y=size[1],
        size_z=size[2],
        spacing_x_mm=spacing[0],
        spacing_y_mm=spacing[1],
        spacing_z_mm=spacing[2],
        slice_thickness_mm=spacing[2],
    )
    direction = np.asarray(record["direction"], dtype=float).reshape(3, 3)
    orient = orientation_label(direction[:, 2], max_tilt_deg=cfg.max_tilt_deg)
    out["orientation"] = orient
    if orient != "axial":
        reasons.add("non_axial")
    if size[2] < cfg.min_slices:
        reasons.add("too_few_slices")
    return {**out, "reasons": reasons, "paths": [record["path"]]}
