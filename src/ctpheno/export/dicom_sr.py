"""DICOM SR measurement report (TID 1500) of a scan's QCT numbers, referencing its SEG.

One Comprehensive 3D SR per scan (highdicom): an *Imaging Measurement Report* (TID 1500)
with one *Volumetric ROI Measurements* group (TID 1411) per region of ``qct.parquet`` that has a
segment in the SEG (whole lung → "Lungs", right → "Right lung", left → "Left lung"). Each group
references its segment (Referenced Segment, with the source images of that segment's frames)
and holds TID 300 measurements with UCUM units:

=====================  ==========================================  ============
``qct.parquet``        concept                                     unit (UCUM)
=====================  ==========================================  ============
``lung_volume_ml``     SCT 118565006 Volume                         ``ml``
``mld_hu``             DCM 112181 Mean Attenuation Coefficient     ``[hnsf'U]``
``laa950_pct``         99CTPHENO LAA950 (no standard code exists)   ``%``
``perc15_hu``          99CTPHENO PERC15 (no standard code exists)   ``[hnsf'U]``
=====================  ==========================================  ============

``99CTPHENO`` is a private coding scheme (PS3.3 C.12.1.1.2 prefix "99"); its meanings spell out
the definitions (COPDGene / CIP: Regan 2010; Gevenois 1996). A value that is NaN in
``qct.parquet`` is left out rather than written as a number.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .. import __version__
from .dicom_seg import MANUFACTURER, coded
from .labels import BOTH_LUNGS, LATERALITY, LUNG, LUNG_LABELS

SR_SERIES_NUMBER = 9902
PRIVATE_SCHEME = "99CTPHENO"
UCUM = "UCUM"
MEASUREMENTS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "lung_volume_ml": (("118565006", "SCT", "Volume"), ("ml", UCUM, "milliliter")),
    "mld_hu": (("112181", "DCM", "Mean Attenuation Coefficient"), ("[hnsf'U]", UCUM, "Hounsfield unit")),
    "laa950_pct": (("LAA950", PRIVATE_SCHEME, "Percent of lung voxels at or below -950 HU (LAA-950)"),
                   ("%", UCUM, "percent")),
    "perc15_hu": (("PERC15", PRIVATE_SCHEME, "15th percentile of the lung attenuation histogram (Perc15)"),
                  ("[hnsf'U]", UCUM, "Hounsfield unit")),
}
"""QCT column -> (concept name code, unit code), each as (value, scheme, meaning)."""
REGION_SEGMENT = {"whole": BOTH_LUNGS.name, "right": LUNG_LABELS[0].name, "left": LUNG_LABELS[1].name}
"""QCT region -> the SEG segment (by label) it was measured on."""
PROCEDURE_CT_CHEST = ("24627-2", "LN", "Chest CT")


def _segment_number(seg: Any, label: str) -> int:
    for item in seg.SegmentSequence:
        if item.SegmentLabel == label:
            return int(item.SegmentNumber)
    raise ValueError(f"the segmentation has no segment labelled {label!r}")


def measurement_groups(seg: Any, qct_rows: pd.DataFrame, *, uid_seed: str = "") -> list[Any]:
    """TID 1411 groups, one per region of ``qct_rows`` (one scan's rows of ``qct.parquet``)."""
    import highdicom as hd
    from pydicom.uid import generate_uid

    algorithm = hd.sr.AlgorithmIdentification(name="ctpheno QCT", version=__version__)
    groups = []
    for region, label in REGION_SEGMENT.items():
        rows = qct_rows[qct_rows["region"] == region]
        if rows.empty:
            continue
        row = rows.iloc[0]
        measurements = [
            hd.sr.Measurement(name=coded(name), value=float(row[col]), unit=coded(unit),
                              algorithm_id=algorithm)
            for col, (name, unit) in MEASUREMENTS.items()
            if col in row and pd.notna(row[col]) and math.isfinite(float(row[col]))
        ]
        side = None if region == "whole" else coded(LATERALITY[region])
        groups.append(hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(entropy_srcs=[uid_seed, "sr-tracking", region]), identifier=label),
            referenced_segment=hd.sr.ReferencedSegment.from_segmentation(seg, _segment_number(seg, label)),
            finding_type=coded(LUNG), finding_sites=[hd.sr.FindingSite(coded(LUNG), laterality=side)],
            algorithm_id=algorithm, measurements=measurements))
    return groups


def build_report(seg: Any, source_datasets: list[Any], qct_rows: pd.DataFrame, *, uid_seed: str = ""):
    """The Comprehensive 3D SR of one scan's QCT rows, with the SEG and source headers as evidence."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    device = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["ctpheno", __version__]), name="ctpheno",
            manufacturer_name=MANUFACTURER, model_name="ctpheno"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=coded(PROCEDURE_CT_CHEST),
        imaging_measurements=measurement_groups(seg, qct_rows, uid_seed=uid_seed),
        title=codes.cid7021.ImagingMeasurementReport)
    return hd.sr.Comprehensive3DSR(
        evidence=[seg, *source_datasets], content=report[0],
        series_instance_uid=generate_uid(entropy_srcs=[uid_seed, "sr-series"]),
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=generate_uid(entropy_srcs=[uid_seed, "sr"]), instance_number=1,
        manufacturer=MANUFACTURER, series_description="ctpheno QCT measurements", is_complete=True)
