"""Reason codes of the manifest's ``reasons`` column — the documented list.

A series is ``usable`` when none of its reasons has severity ``reject``;
``warn`` reasons are kept for the record (and used by the selection rule) but
do not exclude the series. ``reasons`` holds the codes joined with ``;`` in
the order of this table.
"""

from __future__ import annotations

from typing import Literal

Severity = Literal["reject", "warn"]

REASONS: dict[str, tuple[Severity, str]] = {
    "unreadable_file": (
        "reject",
        "a file of the series (or the volume file, or its data file) cannot be read or decoded: "
        "permission denied, I/O error, corrupt compressed stream",
    ),
    "truncated_file": (
        "reject",
        "a file is shorter than its pixel data requires (incomplete copy/download); for volume files "
        "the decoded voxel data are fewer than the header declares, gzip/zlib/bzip2 streams read to their end",
    ),
    "data_size_mismatch": (
        "reject",
        "a volume file's voxel data are longer than its header declares (wrong dimensions or type)",
    ),
    "non_finite_voxels": ("reject", "NaN or infinite voxel values (floating-point volume files)"),
    "implausible_spacing": (
        "reject",
        "pixel spacing, slice spacing or a volume file's voxel size is zero, negative, not a number "
        "or outside ingest.spacing_range_mm (default 0.1-20 mm)",
    ),
    "zero_scale_slope": (
        "reject",
        "RescaleSlope of 0 or not a number (DICOM), or a NIfTI scl_slope of 0/NaN with a non-zero "
        "intercept: the stored values cannot be turned into HU",
    ),
    "non_orthonormal_direction": (
        "reject",
        "ImageOrientationPatient (or a volume file's direction / axis vectors) not orthonormal within "
        "0.01: a sheared or degenerate grid that readers would silently straighten",
    ),
    "outside_input_tree": (
        "reject",
        "a detached header's data file (.nhdr 'data file', .mhd ElementDataFile, including LIST and "
        "patterns) resolves outside the header's folder, or a symbolic link outside the input folder: "
        "refused, never opened",
    ),
    "not_ct": ("reject", "Modality is not CT"),
    "localizer": ("reject", "ImageType marks a localizer / scout / topogram"),
    "derived": ("reject", "ImageType is DERIVED (reformat, MIP, projection), not an original reconstruction"),
    "secondary_capture": ("reject", "Secondary Capture SOP class (screenshots, dose reports)"),
    "not_3d": ("reject", "a volume file that is not a 3-D scalar image"),
    "missing_geometry": ("reject", "ImagePositionPatient / ImageOrientationPatient / PixelSpacing missing"),
    "inconsistent_dimensions": ("reject", "slices differ in rows/columns, pixel spacing or orientation"),
    "duplicate_slices": ("reject", "two or more different slices at the same position"),
    "no_pixel_data": (
        "reject",
        "DICOM objects without pixels (structure sets, reports, presentation states)",
    ),
    "too_few_slices": ("reject", "fewer slices than ingest.min_slices"),
    "missing_slices": ("reject", "a gap between consecutive slices of about twice the slice spacing or more"),
    "nonuniform_spacing": ("reject", "slice spacing varies by more than ingest.spacing_tolerance"),
    "gantry_tilt": (
        "reject",
        "slices are stacked off their normal (GantryDetectorTilt or sheared positions) "
        "by more than ingest.max_tilt_deg",
    ),
    "non_axial": (
        "reject",
        "slice normal is more than ingest.max_tilt_deg from the patient's z axis "
        "(coronal, sagittal or oblique)",
    ),
    "body_part_not_chest": (
        "warn",
        "BodyPartExamined names a region other than the chest (the pixel-based "
        "field-of-view check is done in preprocess)",
    ),
    "contrast_enhanced": ("warn", "ContrastBolusAgent is set: densitometry is biased upward"),
    "expiratory": ("warn", "series description says expiration; inspiratory series are preferred"),
    "non_lung_kernel": (
        "warn",
        "kernel is not a lung/sharp kernel (ingest.lung_kernels): right for density, which the "
        "smooth_kernel rule measures on the smoothest reconstruction, but airway walls are blurred on it; "
        "when the study has no sharp reconstruction, airway measures use this one",
    ),
    "duplicate_files": (
        "warn",
        "the same instance (SOPInstanceUID) is stored in more than one file; it is read once",
    ),
    "non_image_file": (
        "reject",
        "a file that is neither DICOM nor a supported volume format "
        "(recorded in failures.parquet, never in the manifest)",
    ),
    "unreadable_header": (
        "reject",
        "a file whose header cannot be parsed, so it cannot be grouped into a series "
        "(recorded in failures.parquet)",
    ),
    "missing_input": (
        "reject",
        "an entry of paths.inputs that does not exist (recorded in failures.parquet)",
    ),
    "empty_folder": ("reject", "a folder without any file (recorded in failures.parquet)"),
    "not_regular_file": (
        "reject",
        "a FIFO, socket or device in the input: never opened (reading could block forever); "
        "recorded in failures.parquet",
    ),
    "broken_link": ("reject", "a symbolic link to nothing (recorded in failures.parquet)"),
    "unreadable_folder": (
        "reject",
        "a folder that cannot be listed, e.g. permission denied (recorded in failures.parquet)",
    ),
}
"""code -> (severity, meaning)."""

ORDER = {code: i for i, code in enumerate(REASONS)}
NOTED_ONLY = frozenset({"non_image_file", "empty_folder"})
"""Codes recorded in ``failures.parquet`` that are not failures of a scan (they do not make
``ctpheno`` exit with :data:`ctpheno.exitcodes.SCANS_FAILED`)."""


def failure_code(message: str) -> str:
    """The reason code an ingest failure message starts with (``code: text``)."""
    return message.split(":", 1)[0].strip()


def is_rejection(code: str) -> bool:
    """True if ``code`` excludes a series from analysis."""
    if code not in REASONS:
        raise ValueError(f"unknown reason code {code!r}; documented codes: {sorted(REASONS)}")
    return REASONS[code][0] == "reject"


def join_reasons(codes: set[str] | list[str]) -> str:
    """Codes in documented order, joined with ``;`` (empty string for none)."""
    for c in codes:
        if c not in REASONS:
            raise ValueError(f"unknown reason code {c!r}; add it to ctpheno.ingest.reasons.REASONS")
    return ";".join(sorted(set(codes), key=ORDER.__getitem__))


def markdown_table() -> str:
    """The reason table for the documentation."""
    rows = ["| code | severity | meaning |", "|---|---|---|"]
    rows += [f"| `{c}` | {s} | {m} |" for c, (s, m) in REASONS.items()]
    return "\n".join(rows) + "\n"
