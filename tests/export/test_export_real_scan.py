"""Export of a pipeline run of a real thin-slice scan (LIDC-IDRI-0314): SEG, SR, OME-Zarr, NIfTI read back.

One module-scoped run of ingest, preprocess and qct (synchronous, no QC images), then `ctpheno
export` on the default local cluster; each test reads one format back with the reader its users
have (highdicom, ome-zarr, SimpleITK) and compares it with the work directory's own artifacts.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pydicom
import pytest

from ctpheno.io.layout import WorkDir
from ctpheno.io.zarrstore import read_volume

pytestmark = pytest.mark.slow  # a module-scoped pipeline run: scheduled first (tests/conftest.py)


@pytest.fixture(scope="module")
def exported(shared_data, tmp_path_factory):
    """``ctpheno run --stages ingest,preprocess,qct`` then ``ctpheno export`` as a user runs them: in their
    own processes (the scan's arrays never load into the test process), the export on the default local
    Dask cluster."""
    series = shared_data / "lidc_idri_0314" / "dicom"
    root = tmp_path_factory.mktemp("lidc")
    wd, out = root / "work", root / "export"
    ctpheno = [sys.executable, "-m", "ctpheno"]
    for args in (["run", "--stages", "ingest,preprocess,qct", "-i", str(series), "--workdir", str(wd),
                  "--set", "cluster.kind=synchronous", "--set", "preprocess.qc_png=false"],
                 ["export", "--workdir", str(wd), "--out", str(out)]):
        done = subprocess.run([*ctpheno, *args], cwd=root, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    work = WorkDir(wd)
    scan_id = pd.read_parquet(work.qc_table)["scan_id"].item()
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted(series.glob("*.dcm"))]
    return {"wd": work, "scan": out / scan_id, "scan_id": scan_id, "headers": headers}


def _normal(headers: list) -> np.ndarray:
    iop = np.asarray(headers[0].ImageOrientationPatient, float)
    return np.cross(iop[:3], iop[3:])


def _by_position(headers: list) -> list:
    n = _normal(headers)
    return sorted(headers, key=lambda h: float(np.dot(np.asarray(h.ImagePositionPatient, float), n)))


def _labels(exported) -> np.ndarray:
    """The pipeline's labels on the source slices' grid: the store's own labels when it is the native
    grid (the default, preprocess.spacing_mm: null), nearest neighbour from an analysis grid otherwise."""
    from ctpheno.export.source import Grid, labels_on_grid

    store = read_volume(exported["wd"].volume(exported["scan_id"]), "labels")
    first, *_, last = slices = _by_position(exported["headers"])
    iop = np.asarray(first.ImageOrientationPatient, float)
    span = np.subtract(last.ImagePositionPatient, first.ImagePositionPatient, dtype=float)
    gap = float(np.dot(span, _normal(slices)))
    grid = Grid((len(slices), int(first.Rows), int(first.Columns)),
                (gap / (len(slices) - 1), *map(float, first.PixelSpacing)),
                tuple(map(float, first.ImagePositionPatient)),
                tuple(np.column_stack([iop[:3], iop[3:], _normal(slices)]).ravel()))
    return labels_on_grid(store, grid)


def test_seg_segments_reference_the_source_frames_and_equal_the_labels(exported):
    import highdicom as hd

    seg = hd.seg.segread(exported["scan"] / "seg.dcm")
    names = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert names == {1: "Right lung", 2: "Left lung", 3: "Airways", 4: "Lungs"}
    lung = seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0]
    assert (lung.CodeValue, lung.CodingSchemeDesignator) == ("39607008", "SCT")  # Lung, SNOMED CT
    assert lung.SegmentedPropertyTypeModifierCodeSequence[0].CodeMeaning == "Right"
    source = exported["headers"]
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == source[0].StudyInstanceUID and seg.PatientID == source[0].PatientID
    assert seg.FrameOfReferenceUID == source[0].FrameOfReferenceUID
    # every frame names its source slice, and lies at that slice's position
    uids = {h.SOPInstanceUID: h for h in source}
    for frame in seg.PerFrameFunctionalGroupsSequence:
        ref = frame.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        pos = frame.PlanePositionSequence[0].ImagePositionPatient
        assert np.allclose(pos, uids[ref].ImagePositionPatient, atol=1e-3)
    ordered = [h.SOPInstanceUID for h in _by_position(source)]
    masks = seg.get_pixels_by_source_instance(ordered, segment_numbers=[1, 2, 3, 4],
                                             assert_missing_frames_are_empty=True)
    labels = _labels(exported)
    for i, value in enumerate((1, 2, 3)):
        assert np.array_equal(masks[..., i] > 0, labels == value), names[i + 1]
    assert np.array_equal(masks[..., 3] > 0, np.isin(labels, (1, 2)))
    assert (labels == 1).sum() > 100_000 and (labels == 2).sum() > 100_000


def test_sr_carries_the_qct_numbers_with_units_and_references_the_seg(exported):
    import highdicom as hd

    sr = hd.sr.srread(exported["scan"] / "sr.dcm")
    seg = pydicom.dcmread(exported["scan"] / "seg.dcm", stop_before_pixels=True)
    qct = pd.read_parquet(exported["wd"].qct).set_index(["scan_id", "region"])
    numbers = {s.SegmentLabel: int(s.SegmentNumber) for s in seg.SegmentSequence}
    groups = {str(g.tracking_identifier): g for g in sr.content.get_volumetric_roi_measurement_groups()}
    assert set(groups) == {"Lungs", "Right lung", "Left lung"}
    for name, region in (("Lungs", "whole"), ("Right lung", "right"), ("Left lung", "left")):
        group = groups[name]
        ref = group.referenced_segment  # the segment of the exported SEG the numbers were measured on
        assert ref.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert list(ref.referenced_segment_numbers) == [numbers[name]]
        got = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        row = qct.loc[(exported["scan_id"], region)]
        laa = got["Percent of lung voxels at or below -950 HU (LAA-950)"]
        assert laa == (pytest.approx(row["laa950_pct"], rel=1e-12), "%")
        assert got["Volume"] == (pytest.approx(row["lung_volume_ml"], rel=1e-12), "ml")
        assert got["Mean Attenuation Coefficient"] == (pytest.approx(row["mld_hu"], rel=1e-12), "[hnsf'U]")
        assert got["15th percentile of the lung attenuation histogram (Perc15)"][0] == row["perc15_hu"]
    assert sr.PatientID == exported["headers"][0].PatientID


def test_ome_zarr_opens_with_the_ome_zarr_reader(exported):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    store = read_volume(exported["wd"].volume(exported["scan_id"]), "image")
    nodes = list(Reader(parse_url(exported["scan"] / "volumes.ome.zarr"))())
    image = nodes[0]
    assert image.metadata["axes"] == [{"name": n, "type": "space", "unit": "millimeter"} for n in "zyx"]
    scale, shift = image.metadata["coordinateTransformations"][0]
    assert scale["scale"] == pytest.approx(store.spacing_mm)
    assert shift["translation"] == pytest.approx(store.origin_mm[::-1])
    assert np.array_equal(np.asarray(image.data[0]), store.array)
    labels = {n.metadata["name"]: n for n in nodes if "properties" in n.metadata}
    assert {v["name"] for v in labels["lungs"].metadata["properties"].values()} == {"Right lung", "Left lung",
                                                                                     "Airways"}
    assert np.array_equal(np.asarray(labels["lungs"].data[0]), _labels(exported))


def test_nifti_label_maps_open_with_their_names(exported):
    import SimpleITK as sitk

    from ctpheno.export.nifti import read_label_table

    scan = exported["scan"]
    nii = sitk.ReadImage(str(scan / "lungs.nii.gz"))
    assert np.array_equal(sitk.GetArrayFromImage(nii), _labels(exported))
    first = _by_position(exported["headers"])[0]
    assert np.allclose(nii.GetOrigin(), [float(v) for v in first.ImagePositionPatient], atol=1e-3)
    assert read_label_table(scan / "lungs.itksnap.txt") == {0: "Clear Label", 1: "Right lung", 2: "Left lung",
                                                            3: "Airways"}
    slicer = sitk.ReadImage(str(scan / "lungs.seg.nrrd"))
    names = {slicer.GetMetaData(f"Segment{i}_LabelValue"): slicer.GetMetaData(f"Segment{i}_Name")
             for i in range(3)}
    assert names == {"1": "Right lung", "2": "Left lung", "3": "Airways"}
    assert read_label_table(scan / "zones.itksnap.txt")[4] == "Left upper zone"
