"""DICOM Segmentation (SEG) of the lungs and airways, frame by frame on the source series.

A BINARY segmentation (highdicom) whose frame ``k`` lies on source slice ``k``: each frame's
Source Image Sequence names that slice's SOP Instance UID, and the Referenced Series Sequence
names the source series, so a PACS or viewer shows it over the images it was derived from.
Segments, in this order (DICOM allows overlapping binary segments):

1. Right lung, 2. Left lung, 3. Airways: the pipeline's labels 1-3;
4. Lungs: right ∪ left, the region the whole-lung QCT measurements of the SR refer to;
5. … lobes, when the volume store holds a ``lobes`` array.

Each segment is coded with SNOMED CT (PS3.16 CID 7150/7151, laterality by CID 244 modifiers;
see :mod:`ctpheno.export.labels`). The object copies the patient and study attributes of the
source series (that is where it goes back to) and adds nothing else about the patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import __version__
from .labels import BOTH_LUNGS, CATEGORY_ANATOMICAL_STRUCTURE, LATERALITY, LOBE_LABELS, LUNG_LABELS, LabelInfo

SEG_SERIES_NUMBER = 9901
"""Series number of exported segmentations (high, to sort after the scanner's series)."""
MANUFACTURER = "ctpheno"
ALGORITHM_FAMILY = {"classic": "MorphologicalOperations", "lungmask": "ArtificialIntelligence",
                    "totalsegmentator": "ArtificialIntelligence"}
"""Segmentation backend -> algorithm family (PS3.16 CID 7162)."""


def coded(code: tuple[str, str, str]):
    """A highdicom CodedConcept from (value, scheme, meaning)."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=code[0], scheme_designator=code[1], meaning=code[2])


def segment_description(number: int, lab: LabelInfo, algorithm: Any):
    """highdicom SegmentDescription of one label, with its laterality modifier and display colour."""
    import highdicom as hd
    from pydicom import Dataset

    desc = hd.seg.SegmentDescription(
        segment_number=number, segment_label=lab.name,
        segmented_property_category=coded(CATEGORY_ANATOMICAL_STRUCTURE),
        segmented_property_type=coded(lab.type_code),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm,
        tracking_uid=hd.UID(), tracking_id=lab.name,
        display_color=hd.color.CIELabColor.from_rgb(*lab.rgb))
    if lab.laterality:
        mod = Dataset()
        mod.CodeValue, mod.CodingSchemeDesignator, mod.CodeMeaning = LATERALITY[lab.laterality]
        desc.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [mod]
    return desc


def segment_masks(labels: npt.NDArray[np.uint8], lobes: npt.NDArray[np.uint8] | None
                  ) -> tuple[list[LabelInfo], npt.NDArray[np.uint8]]:
    """The segments (in segment-number order) and their stacked 0/1 masks, shape (z, y, x, n_segments).

    One uint8 allocation (a whole-series SEG is the export's largest array), filled segment by segment.
    """
    infos = [*LUNG_LABELS, BOTH_LUNGS, *(LOBE_LABELS if lobes is not None else ())]
    masks = np.zeros((*labels.shape, len(infos)), dtype=np.uint8)
    for i, lab in enumerate(LUNG_LABELS):
        masks[..., i] = labels == lab.value
    masks[..., len(LUNG_LABELS)] = (labels == LUNG_LABELS[0].value) | (labels == LUNG_LABELS[1].value)
    for i, lab in enumerate(LOBE_LABELS if lobes is not None else ()):
        masks[..., len(LUNG_LABELS) + 1 + i] = lobes == lab.value
    return infos, masks


def build_segmentation(source_datasets: Sequence[Any], labels: npt.NDArray[np.uint8],
                       lobes: npt.NDArray[np.uint8] | None = None, *, backend: str = "classic",
                       uid_seed: str = ""):
    """The DICOM SEG dataset of ``labels`` (and ``lobes``) on the source series.

    Parameters
    ----------
    source_datasets
        Headers of the source slices, ``source_datasets[k]`` being slice ``k`` of ``labels``.
    labels, lobes
        uint8 (z, y, x) label maps on the source grid (:mod:`ctpheno.export.labels` codes).
    backend
        The segmentation backend that made the labels (its algorithm family is recorded).
    uid_seed
        Text from which the new Series/SOP Instance UIDs are derived (the same inputs give the
        same UIDs, so exporting twice does not create a second object in an archive).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if labels.shape[0] != len(source_datasets):
        raise ValueError(f"labels have {labels.shape[0]} slices but the source series {len(source_datasets)}")
    algorithm = hd.AlgorithmIdentificationSequence(
        name=f"ctpheno lung segmentation ({backend})", version=__version__,
        family=getattr(codes.cid7162, ALGORITHM_FAMILY.get(backend, "MorphologicalOperations")))
    infos, masks = segment_masks(labels, lobes)
    descriptions = [segment_description(i + 1, lab, algorithm) for i, lab in enumerate(infos)]
    return hd.seg.Segmentation(
        source_images=list(source_datasets), pixel_array=masks,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=descriptions,
        series_instance_uid=generate_uid(entropy_srcs=[uid_seed, "seg-series"]),
        series_number=SEG_SERIES_NUMBER, sop_instance_uid=generate_uid(entropy_srcs=[uid_seed, "seg"]),
        instance_number=1, manufacturer=MANUFACTURER, manufacturer_model_name="ctpheno",
        software_versions=__version__, device_serial_number="none",
        series_description="ctpheno lungs and airways", content_label="LUNGS",
        content_description="Lungs and airways segmented by ctpheno")
