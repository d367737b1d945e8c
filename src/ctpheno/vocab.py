"""The project's vocabulary: the constants and types every layer shares, defined once.

Hounsfield units
----------------
The Hounsfield scale fixes air at :data:`HU_AIR` = -1000 and water at :data:`HU_WATER` = 0.
Scanners mark voxels outside the reconstructed field of view with values far below air
(-2000, -3024); anything at or below :data:`PADDING_THRESHOLD_HU` is such a marker, never
tissue, and readers write :data:`HU_PADDING` (-1024, the bottom of the 12-bit CT range) there.

Labels and zones
----------------
Lung labels (``labels`` array of every volume store): 0 background, :data:`LABEL_RIGHT_LUNG`
= 1 and :data:`LABEL_LEFT_LUNG` = 2 (the patient's sides), :data:`LABEL_AIRWAYS` = 3 (trachea
and bronchi). Zone codes (``zones`` array): :data:`ZONE_CODES`, each lung cut in height thirds;
the regions features are reported on: :data:`REGIONS`.

Geometry
--------
Arrays are ``(z, y, x)``; :data:`Spacing` is the voxel size in mm in the same order, checked by
:func:`check_spacing`.
"""

from __future__ import annotations

from typing import Any, Literal

HU_AIR = -1000
"""HU of air (definition of the Hounsfield scale)."""
HU_WATER = 0
"""HU of water (definition of the Hounsfield scale)."""
HU_PADDING = -1024
"""HU written where the scanner marked padding (outside the field of view)."""
PADDING_THRESHOLD_HU = -2000
"""HU at or below this are padding markers (-2000, -3024 outside the reconstruction circle), never tissue."""

LABEL_BACKGROUND = 0
LABEL_RIGHT_LUNG = 1
LABEL_LEFT_LUNG = 2
LABEL_AIRWAYS = 3
LUNG_LABELS = (LABEL_RIGHT_LUNG, LABEL_LEFT_LUNG)
"""The labels that are lung parenchyma (the airways are not)."""
ZONE_CODES = {
    ("right", "upper"): 1, ("right", "middle"): 2, ("right", "lower"): 3,
    ("left", "upper"): 4, ("left", "middle"): 5, ("left", "lower"): 6,
}
"""(side, height third) -> zone code; 0 outside the lungs."""
Region = Literal["whole", "right", "left", "upper", "middle", "lower"]
"""A lung region features are reported on: both lungs, one side, or one height third of both."""
REGIONS: tuple[Region, ...] = ("whole", "right", "left", "upper", "middle", "lower")
"""The regions, in report order."""

Spacing = tuple[float, float, float]
"""Voxel size in mm, (z, y, x)."""


def check_spacing(spacing_mm: Any) -> Spacing:
    """``spacing_mm`` as three positive floats (z, y, x), or a ValueError naming what was given."""
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise ValueError(f"spacing_mm must be three positive numbers (z, y, x) in mm; got {spacing_mm}")
    return sp  # type: ignore[return-value]
