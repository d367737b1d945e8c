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
* ``implausible_spacing``: PixelSpacing or :math:`\\Delta` outside ``spacing_range_mm``;
  ``non_orthonormal_direction``: ImageOrientationPatient not orthonormal;
  ``zero_scale_slope``: a RescaleSlope of 0 (see :mod:`ctpheno.io.geometry`).

A multi-frame (enhanced) CT file is checked the same way, frame by frame, with the
positions, orientation and pixel spacing of its functional groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..config.ingest import IngestConfig
from ..io.geometry import (axes_orthogonal, iop_orthonormal, slice_normal, slice_order, spacing_plausible,
                           stack_spacing)
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
    A multi-frame (enhanced) file gets the same geometry checks as a series of files,
    from the positions and orientations of its functional groups.
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
    multiframe = len(recs) == 1 and (first.get("n_frames") or 1) > 1
    if multiframe:
        slices = [{**f, "rows": first["rows"], "columns": first["columns"],
                   "gantry_tilt_deg": first["gantry_tilt_deg"]} for f in first.get("frames") or []]
        if len(slices) != first["n_frames"]:
            slices = []
    else:
        slices = recs
    order = _check_stack(slices, reasons, out, cfg=cfg)
    if not multiframe and order is not None:
        geo = [r for r in recs if _placed(r)]
        paths = [geo[i]["path"] for i in order] + [r["path"] for r in recs if not _placed(r)]
    if (out["size_z"] or 0) < cfg.min_slices:
        reasons.add("too_few_slices")
    return {**out, "reasons": reasons, "paths": paths}


def _placed(r: dict[str, Any]) -> bool:
    return r.get("ipp") is not None and r.get("iop") is not None and r.get("pixel_spacing") is not None


def _check_stack(slices: Sequence[dict[str, Any]], reasons: set[str], out: dict[str, Any],
                 *, cfg: IngestConfig) -> np.ndarray | None:
    """Geometry checks of a stack of slices (files or frames); fills ``out`` and ``reasons``.

    Returns the slice order (indices into the placed slices) or None when it cannot be known.
    """
    out["size_z"] = len(slices)
    if any(r.get("rescale_slope") is not None and (not np.isfinite(r["rescale_slope"]) or r["rescale_slope"] == 0)
           for r in slices):
        reasons.add("zero_scale_slope")
    if len({(r["rows"], r["columns"]) for r in slices}) > 1:
        reasons.add("inconsistent_dimensions")
    geo = [r for r in slices if _placed(r)]
    if len(geo) < len(slices) or not geo:
        reasons.add("missing_geometry")
    if not geo:
        return None
    iops = np.asarray([r["iop"] for r in geo])
    pss = np.asarray([r["pixel_spacing"] for r in geo])
    if np.abs(iops - iops[0]).max() > 1e-4 or np.abs(pss - pss[0]).max() > 1e-4:
        reasons.add("inconsistent_dimensions")
    out["spacing_y_mm"], out["spacing_x_mm"] = float(pss[0][0]), float(pss[0][1])
    if not spacing_plausible(pss.ravel(), range_mm=cfg.spacing_range_mm):
        reasons.add("implausible_spacing")
    if not iop_orthonormal(iops[0]):
        reasons.add("non_orthonormal_direction")
    try:
        normal = slice_normal(iops[0])
    except ValueError:
        reasons.add("non_orthonormal_direction")
        return None
    orient = orientation_label(normal, max_tilt_deg=cfg.max_tilt_deg)
    out["orientation"] = orient
    if orient != "axial":
        reasons.add("non_axial")
    if abs(max((r.get("gantry_tilt_deg") or 0.0) for r in slices)) > cfg.max_tilt_deg:
        reasons.add("gantry_tilt")
    pos = np.asarray([r["ipp"] for r in geo])
    order, d = slice_order(pos, normal)
    if len(d) >= 2:
        step, problems = stack_spacing(d, tolerance=cfg.spacing_tolerance, range_mm=cfg.spacing_range_mm)
        reasons |= problems
        out["spacing_z_mm"] = step
        stack = pos[order[-1]] - pos[order[0]]
        if np.linalg.norm(stack) > 1e-6 and _angle_deg(stack, normal) > cfg.max_tilt_deg:
            reasons.add("gantry_tilt")
        out["size_z"] = len(np.unique(np.round(d, 3)))
    return order


def summarize_volume_file(record: dict[str, Any], *, cfg: IngestConfig) -> dict[str, Any]:
    """Manifest fields and reason codes of one NIfTI / NRRD / MHA file.

    The record's ``problems`` (from :func:`ctpheno.io.volcheck.validate_volume_file`: data size,
    non-finite voxels, spacing, direction, scale slope, data files outside the input) are its
    reasons; SimpleITK's geometry fills the manifest columns.
    """
    reasons: set[str] = set(record.get("problems") or [])
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
        return {**out, "reasons": reasons or {"unreadable_file"}, "paths": [record["path"]]}
    size = list(record["size_xyz"])
    spacing = list(record["spacing_xyz"])
    if len(size) == 4 and size[3] == 1:
        size, spacing = size[:3], spacing[:3]
    if len(size) != 3 or record["n_components"] != 1:
        return {**out, "reasons": reasons | {"not_3d"}, "paths": [record["path"]]}
    out.update(
        size_x=size[0],
        size_y=size[1],
        size_z=size[2],
        spacing_x_mm=spacing[0],
        spacing_y_mm=spacing[1],
        spacing_z_mm=spacing[2],
        slice_thickness_mm=spacing[2],
    )
    if not spacing_plausible(spacing, range_mm=cfg.spacing_range_mm):
        reasons.add("implausible_spacing")
    direction = np.asarray(record["direction"], dtype=float).reshape(3, 3)
    if not axes_orthogonal(direction):
        reasons.add("non_orthonormal_direction")
    orient = orientation_label(direction[:, 2], max_tilt_deg=cfg.max_tilt_deg)
    out["orientation"] = orient
    if orient != "axial":
        reasons.add("non_axial")
    if size[2] < cfg.min_slices:
        reasons.add("too_few_slices")
    return {**out, "reasons": reasons, "paths": [record["path"]]}
