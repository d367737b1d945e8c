"""Ingest configuration (owned by ctpheno.ingest)."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveFloat, PositiveInt, confloat, model_validator

from ..io.geometry import SPACING_RANGE_MM, SPACING_TOLERANCE
from .base import StrictModel


class ClinicalColumn(StrictModel):
    """One column of the clinical table that ingest keeps (``ingest.clinical_columns``)."""

    type: Literal["float", "int", "category", "bool", "date"]
    """``float``/``int``: numbers (``int``: whole numbers; both stored as float64 so missing is NaN);
    ``category``: one of ``values`` (case-insensitive, stored upper-case); ``bool``: true/false,
    yes/no, 1/0; ``date``: converted to ``<column>_offset_days``, days from the subject's first
    dated imaging series (the origin of the manifest's ``acquisition_offset_days``), the date
    itself is dropped."""
    min: Optional[float] = None
    """Smallest allowed value (numbers), inclusive."""
    max: Optional[float] = None
    """Largest allowed value (numbers), inclusive."""
    values: Optional[list[str]] = None
    """Allowed values of a ``category`` column."""

    @model_validator(mode="after")
    def _consistent(self) -> "ClinicalColumn":
        if self.type == "category" and not self.values:
            raise ValueError("a category column needs its allowed values (values: [...])")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _number(lo: float, hi: float, kind: str = "float") -> ClinicalColumn:
    return ClinicalColumn(type=kind, min=lo, max=hi)


DEFAULT_CLINICAL_COLUMNS: dict[str, ClinicalColumn] = {
    "age_years": _number(0, 120),
    "sex": ClinicalColumn(type="category", values=["M", "F", "O", "U"]),
    "height_cm": _number(50, 250),
    "weight_kg": _number(10, 400),
    "pack_years": _number(0, 300),
    "fev1_pct_pred": _number(0, 200),
    "fev1_fvc": _number(0, 1.2),
    "fev1_l": _number(0, 10),
    "fvc_l": _number(0, 12),
    "gold_stage": _number(0, 4, "int"),
    "prism": ClinicalColumn(type="bool"),
    "fev1_decline_ml_per_year": _number(-1000, 1000),
}
"""The clinical columns kept by default: the model targets and covariates, with plausible ranges."""


class IngestConfig(StrictModel):
    """Discovery, validation and selection of series (``ctpheno ingest``)."""

    min_slices: PositiveInt = 30
    """Series with fewer slices are rejected (reason ``too_few_slices``)."""
    spacing_tolerance: confloat(gt=0, lt=1) = SPACING_TOLERANCE
    """Relative tolerance on slice spacing before a series is flagged non-uniform / missing slices."""
    max_tilt_deg: confloat(ge=0, le=45) = 1.0
    """Gantry tilt / obliquity above this (degrees) is rejected."""
    selection: Literal["smooth_kernel", "thinnest_lung_kernel", "thinnest", "most_slices", "all"] = "smooth_kernel"
    """Rule picking the series whose density is measured in each study (``smooth_kernel``: inspiratory,
    at most ``max_density_slice_mm`` thick, the smoothest kernel class, then the thinnest;
    ``thinnest_lung_kernel``: the former rule, which prefers the sharp reconstruction and biases density)."""
    max_density_slice_mm: PositiveFloat = 3.2
    """``smooth_kernel``: series with thicker slices are chosen for density only when no thinner one exists."""
    airway_series: bool = True
    """Keep the study's sharpest other inspiratory reconstruction (when strictly sharper than the density
    series) for the airway measures: preprocess processes it too (manifest ``series_role = airway``)."""
    lung_kernels: list[str] = Field(
        default_factory=lambda: [
            "B45",
            "B46",
            "B50",
            "B60",
            "B70",
            "I50",
            "I70",
            "BR60",
            "BL57",
            "LUNG",
            "BONE",
            "D",
            "YA",
            "YB",
            "FC51",
            "FC52",
            "FC53",
            "FC55",
            "FC56",
            "L",
            "SHARP",
        ]
    )
    """Kernel names (prefix match, case-insensitive) counted as lung/sharp kernels (the
    ``thinnest_lung_kernel`` rule and the ``non_lung_kernel`` reason; kernel classes come from
    :mod:`ctpheno.ingest.kernels`)."""
    clinical_id_column: str = "subject_id"
    """Column of the clinical table holding the subject identifier (raw; pseudonymised on ingest)."""
    clinical_columns: dict[str, ClinicalColumn] = Field(
        default_factory=lambda: {k: v.model_copy() for k, v in DEFAULT_CLINICAL_COLUMNS.items()})
    """Allow-list of clinical columns, with their types and ranges: every other column (free text,
    names, addresses, raw dates …) is dropped at ingest. Default: age_years, sex, height_cm,
    weight_kg, pack_years, fev1_pct_pred, fev1_fvc, fev1_l, fvc_l, gold_stage, prism,
    fev1_decline_ml_per_year (ranges in ``docs/ingest.md``)."""
    spacing_range_mm: tuple[PositiveFloat, PositiveFloat] = SPACING_RANGE_MM
    """Plausible voxel size (mm, inclusive): pixel spacing, slice spacing or a volume file's spacing
    outside it is rejected (``implausible_spacing``)."""
    write_pseudonym_map: bool = False
    """Write ``pseudonym_map.csv`` (raw id -> pseudonym) with 0600 permissions, outside the artifacts."""
    dataset: Literal["generic", "nlst", "copdgene", "lidc-idri", "synthetic"] = "generic"
    """Dataset preset (folder layout / id conventions)."""
    reject_derived: bool = True
    """Reject ImageType DERIVED series (reformats, MIPs); set False for archives that mark every
    reconstruction as derived."""
    batch_size: PositiveInt = 256
    """Files per header-reading task (discovery runs one Dask task per batch of files from the same
    folders)."""

    @model_validator(mode="after")
    def _spacing_range(self) -> "IngestConfig":
        lo, hi = self.spacing_range_mm
        if lo >= hi:
            raise ValueError(f"spacing_range_mm must be (low, high) with low < high; got {self.spacing_range_mm}")
        return self
