"""What each exported label value means: names, display colours and SNOMED CT codes.

One table per label map of a volume store (:mod:`ctpheno.io.zarrstore`):

* ``labels``: 1 right lung, 2 left lung, 3 airways (trachea and main bronchi, the pipeline's
  extra-pulmonary airway label).
* ``zones``: thirds of each lung by volume along the cranio-caudal axis (1-3 right upper /
  middle / lower, 4-6 left). They are geometric regions, not anatomical lobes.
* ``lobes`` (only when a store holds a ``lobes`` array, e.g. from a lobe-segmentation backend):
  1 right upper, 2 right middle, 3 right lower, 4 left upper, 5 left lower lobe.

Codes follow DICOM's convention for segmentations (PS3.16 CID 7150/7151 with the laterality
modifiers of CID 244): an anatomical structure type (SNOMED CT) plus a "Right" / "Left"
modifier, e.g. *Lung* (39607008) + *Right* (24028007) for the right lung. The same names and
colours go into every format (NIfTI colour tables, Slicer ``.seg.nrrd``, DICOM SEG, OME-Zarr).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG, ZONE_CODES

SCT = "SCT"
CATEGORY_ANATOMICAL_STRUCTURE = ("91723000", SCT, "Anatomical Structure")
"""Segmented property category of every exported segment (CID 7150)."""
LATERALITY = {"right": ("24028007", SCT, "Right"), "left": ("7771000", SCT, "Left")}
"""Segmented property type modifiers (CID 244)."""
LUNG = ("39607008", SCT, "Lung")
AIRWAY = ("89187006", SCT, "Airway structure")
LOBE_TYPES = {
    "upper": ("45653009", SCT, "Upper lobe of lung"),
    "middle": ("72481006", SCT, "Middle lobe of right lung"),
    "lower": ("90572001", SCT, "Lower lobe of lung"),
}


@dataclass(frozen=True)
class LabelInfo:
    """One label value: its name, display colour and coded meaning."""

    value: int
    """Voxel value in the label map."""
    name: str
    """Human-readable name (DICOM SegmentLabel, NIfTI colour table, OME-Zarr property)."""
    rgb: tuple[int, int, int]
    """Display colour, 0-255."""
    type_code: tuple[str, str, str]
    """(code value, coding scheme, meaning) of the segmented property type."""
    laterality: str | None = None
    """``right`` / ``left`` modifier of the type, or None."""
    anatomical: bool = True
    """An anatomical structure (goes into DICOM SEG); zones are geometric and do not."""


LUNG_LABELS: tuple[LabelInfo, ...] = (
    LabelInfo(LABEL_RIGHT_LUNG, "Right lung", (128, 174, 128), LUNG, "right"),
    LabelInfo(LABEL_LEFT_LUNG, "Left lung", (241, 214, 145), LUNG, "left"),
    LabelInfo(LABEL_AIRWAYS, "Airways", (182, 228, 255), AIRWAY),
)
"""The ``labels`` array (colours from 3D Slicer's GenericAnatomyColors where one exists)."""

BOTH_LUNGS = LabelInfo(0, "Lungs", (197, 165, 145), LUNG)
"""Union of right and left lung: the region of the whole-lung QCT measurements (DICOM SEG only)."""

_ZONE_RGB = {("right", "upper"): (230, 159, 0), ("right", "middle"): (86, 180, 233),
             ("right", "lower"): (0, 158, 115), ("left", "upper"): (240, 228, 66),
             ("left", "middle"): (0, 114, 178), ("left", "lower"): (213, 94, 0)}
ZONE_LABELS: tuple[LabelInfo, ...] = tuple(
    LabelInfo(code, f"{side.capitalize()} {zone} zone", _ZONE_RGB[(side, zone)], LUNG, side, anatomical=False)
    for (side, zone), code in sorted(ZONE_CODES.items(), key=lambda kv: kv[1])
)
"""The ``zones`` array: geometric thirds of each lung (named *zone*, never *lobe*)."""

LOBE_CODES: dict[tuple[str, str], int] = {
    ("right", "upper"): 1, ("right", "middle"): 2, ("right", "lower"): 3,
    ("left", "upper"): 4, ("left", "lower"): 5,
}
"""Values of an optional ``lobes`` array in a volume store."""
_LOBE_RGB = {("right", "upper"): (177, 122, 101), ("right", "middle"): (111, 184, 210),
             ("right", "lower"): (216, 101, 79), ("left", "upper"): (221, 130, 101),
             ("left", "lower"): (220, 245, 20)}
LOBE_LABELS: tuple[LabelInfo, ...] = tuple(
    LabelInfo(code, f"{side.capitalize()} {lobe} lobe", _LOBE_RGB[(side, lobe)], LOBE_TYPES[lobe],
              None if lobe == "middle" else side)  # "middle lobe of right lung" already names its side
    for (side, lobe), code in sorted(LOBE_CODES.items(), key=lambda kv: kv[1])
)

LABEL_TABLES: dict[str, tuple[LabelInfo, ...]] = {"labels": LUNG_LABELS, "zones": ZONE_LABELS,
                                                  "lobes": LOBE_LABELS}
"""Store array name -> its label table (the arrays that are exported as label maps)."""
