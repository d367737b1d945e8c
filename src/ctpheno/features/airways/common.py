"""Small helpers shared by the airway modules."""

from __future__ import annotations

Spacing = tuple[float, float, float]


def check_spacing(spacing_mm) -> Spacing:
    """``spacing_mm`` as three positive floats (z, y, x), or a ValueError naming what was given."""
    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise ValueError(f"spacing_mm must be three positive numbers (z, y, x) in mm; got {spacing_mm}")
    return sp  # type: ignore[return-value]
