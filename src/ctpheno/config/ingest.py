"""Ingest configuration (owned by ctpheno.ingest)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveFloat, PositiveInt, confloat

from .base import StrictModel


class IngestConfig(StrictModel):
    """Discovery, validation and selection of series (``ctpheno ingest``)."""

    min_slices: PositiveInt = 30
    """Series with fewer slices are rejected (reason ``too_few_slices``)."""
    spacing_tolerance: confloat(gt=0, lt=1) = 0.1
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
