"""Truth values checked against the WRITTEN files with independent readers (SimpleITK, pydicom)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import UID
from scipy import ndimage as ndi

N_SUBJECTS = 5  # as in conftest.py


def read_series(folder: Path) -> sitk.Image:
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(folder))
    assert len(names) == len(list(folder.glob("*.dcm")))
    reader.SetFileNames(names)
    return reader.Execute()


def test_layout_and_tables(cohort: Path, truth: pd.DataFrame) -> None:
    clinical = pd.read_csv(cohort / "clinical.csv", dtype={"subject_id": str})
    for col in ["subject_id", "age_years", "sex", "height_cm", "pack_years", "fev1_pct_pred", "fev1_fvc",
                "gold_stage", "prism", "fev1_decline_ml_per_year"]:
        assert col in clinical.columns
    assert len(clinical) == len(truth) == N_SUBJECTS
    assert list(clinical.subject_id) == list(truth.subject_id)
    assert set(clinical.sex) <= {"M", "F"} and clinical.gold_stage.between(0, 4).all()
    for sid in truth.subject_id:
        assert (cohort / "truth" / f"{sid}.nii.gz").exists()
        assert (cohort / "truth" / f"{sid}_lungs.nii.gz").exists()
    series = sorted(p for p in (cohort / "images").iterdir() if p.is_dir())
    second = [p for p in truth.second_image_path if p]
    assert len(second) == 1 and len(series) == N_SUBJECTS + 1
    assert sorted(f"images/{p.name}" for p in series) == sorted([*truth.image_path, *second])


@pytest.mark.parametrize("i", range(N_SUBJECTS))
def test_truth_matches_written_dicom(cohort: Path, truth: pd.DataFrame, i: int) -> None:
    row = truth.iloc[i]
    img = read_series(cohort / row.image_path)
    hu = sitk.GetArrayFromImage(img)  # rescale applied by GDCM
    lungs_img = sitk.ReadImage(str(cohort / "truth" / f"{row.subject_id}_lungs.nii.gz"))
    labels_img = sitk.ReadImage(str(cohort / "truth" / f"{row.subject_id}.nii.gz"))
    for lab in (lungs_img, labels_img):  # label geometry aligned with the DICOM geometry
        assert lab.GetSize() == img.GetSize()
        np.testing.assert_allclose(lab.GetSpacing(), img.GetSpacing(), atol=1e-4)
        np.testing.assert_allclose(lab.GetOrigin(), img.GetOrigin(), atol=1e-3)
        np.testing.assert_allclose(lab.GetDirection(), img.GetDirection(), atol=1e-6)
    lungs = sitk.GetArrayFromImage(lungs_img)
    labels = sitk.GetArrayFromImage(labels_img)
    mask = np.isin(lungs, (1, 2))
    n = int(mask.sum())
    vox_ml = float(np.prod(img.GetSpacing())) / 1000.0
    assert row.lung_volume_ml == pytest.approx(n * vox_ml, rel=1e-9)
    assert row.right_lung_volume_ml == pytest.approx(int((lungs == 1).sum()) * vox_ml, rel=1e-9)
    assert row.left_lung_volume_ml == pytest.approx(int((lungs == 2).sum()) * vox_ml, rel=1e-9)
    assert 2000.0 < row.lung_volume_ml < 8500.0  # adult inspiratory total lung capacity range
    assert row.laa950_pct == 100.0 * np.count_nonzero(hu[mask] <= -950) / n
    assert row.perc15_hu == float(np.percentile(hu[mask], 15))
    # detailed labels refine the lungs map: 1/2/4/5 inside the lungs, 3 = airways in both
    assert np.array_equal(np.isin(labels, (1, 2, 4, 5)), mask)
    assert np.array_equal(labels == 3, lungs == 3)
    assert abs((labels == 5).sum() / n - row.emphysema_fraction) < 0.002
    # the emphysema truth is dark on the written image, vessels are bright
    if (labels == 5).sum() > 200:
        assert np.median(hu[labels == 5]) < -940
    assert np.median(hu[labels == 4]) > -500
    paren = np.isin(labels, (1, 2))
    assert -900 < np.median(hu[paren]) < -800


@pytest.mark.parametrize("i", range(N_SUBJECTS))
def test_right_lung_is_on_patient_right(cohort: Path, truth: pd.DataFrame, i: int) -> None:
    row = truth.iloc[i]
    img = read_series(cohort / row.image_path)
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "truth" / f"{row.subject_id}_lungs.nii.gz")))

    def centroid_lps(label: int) -> np.ndarray:
        kji = np.argwhere(lungs == label).mean(axis=0)
        return np.array(img.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in kji[::-1])))

    right, left = centroid_lps(1), centroid_lps(2)
    assert right[0] < left[0] - 60.0  # LPS +x = patient left: the right lung has the smaller x
    # airways (trachea) lie between the lungs and above the lung centroids
    trachea = centroid_lps(3)
    assert right[0] < trachea[0] < left[0] and trachea[2] > max(right[2], left[2])
    # the heads of the lungs point superior: the top lung slice is the highest z
    zs = [img.TransformIndexToPhysicalPoint((0, 0, int(k)))[2] for k in np.flatnonzero(np.isin(lungs, (1, 2)).any(axis=(1, 2)))]
    assert max(zs) - min(zs) > 180.0


def test_dicom_headers_uids_and_phi(cohort: Path, truth: pd.DataFrame) -> None:
    clinical = pd.read_csv(cohort / "clinical.csv", dtype={"subject_id": str})
    sops, series_uids, studies, intercepts = set(), set(), set(), set()
    for row in truth.itertuples():
        files = sorted((cohort / row.image_path).glob("*.dcm"))
        dss = [pydicom.dcmread(f) for f in files]
        z = [float(ds.ImagePositionPatient[2]) for ds in dss]
        assert sorted(z) != z and sorted(z, reverse=True) != z  # file names do not sort in slice order
        ds0 = dss[0]
        assert ds0.PatientID == row.subject_id and str(ds0.PatientName) and len(ds0.PatientBirthDate) == 8
        assert ds0.PatientID in set(clinical.subject_id)
        assert row.subject_id not in str(files[0]) and str(ds0.PatientName).split("^")[0] not in str(files[0])
        assert ds0.Modality == "CT" and ds0.ConvolutionKernel and ds0.Manufacturer
        assert [float(v) for v in ds0.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
        assert float(ds0.RescaleSlope) == 1.0
        intercepts.add(float(ds0.RescaleIntercept))
        assert {ds.SeriesInstanceUID for ds in dss} == {ds0.SeriesInstanceUID}
        assert len({ds.SOPInstanceUID for ds in dss}) == len(dss)
        for ds in dss:
            for uid in (ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.FrameOfReferenceUID):
                assert UID(uid).is_valid, uid
            assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        sops |= {ds.SOPInstanceUID for ds in dss}
        series_uids.add(ds0.SeriesInstanceUID)
        studies.add(ds0.StudyInstanceUID)
        assert sorted(z) == pytest.approx(np.arange(len(z)) * float(ds0.SpacingBetweenSlices) + min(z), abs=1e-3)
    assert len(series_uids) == len(studies) == len(truth)
    assert intercepts == {-1024.0, 0.0}
    assert len(sops) == sum(len(list((cohort / p).glob("*.dcm"))) for p in truth.image_path)


def test_second_reconstruction_is_the_same_acquisition_through_a_sharp_kernel(cohort: Path, truth: pd.DataFrame) -> None:
    """Same study, frame of reference and geometry; a sharp kernel name; the same lungs with more noise."""
    row = truth[truth.second_image_path != ""].iloc[0]
    a = [pydicom.dcmread(f) for f in sorted((cohort / row.image_path).glob("*.dcm"))]
    b = [pydicom.dcmread(f) for f in sorted((cohort / row.second_image_path).glob("*.dcm"))]
    assert a[0].StudyInstanceUID == b[0].StudyInstanceUID and a[0].FrameOfReferenceUID == b[0].FrameOfReferenceUID
    assert a[0].SeriesInstanceUID != b[0].SeriesInstanceUID and a[0].SeriesNumber != b[0].SeriesNumber
    assert {ds.SOPInstanceUID for ds in a}.isdisjoint({ds.SOPInstanceUID for ds in b})
    from ctpheno.ingest.kernels import classify_kernel

    assert classify_kernel(a[0].Manufacturer, a[0].ConvolutionKernel)[0] == "smooth"
    assert classify_kernel(b[0].Manufacturer, b[0].ConvolutionKernel)[0] == "sharp"
    smooth = sitk.GetArrayFromImage(read_series(cohort / row.image_path)).astype(float)
    sharp = sitk.GetArrayFromImage(read_series(cohort / row.second_image_path)).astype(float)
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "truth" / f"{row.subject_id}_lungs.nii.gz")))
    lung = np.isin(lungs, (1, 2))
    assert abs(np.median(smooth[lung]) - np.median(sharp[lung])) < 15  # same lungs
    # the sharp kernel's noise is stronger: SD of the uniform air in the tracheal lumen away from its
    # wall (inside the lungs, parenchymal texture and vessels outweigh the noise on the 2.5-3 mm demo grid)
    from scipy import ndimage as ndi

    air = ndi.binary_erosion(lungs == 3, np.ones((1, 3, 3), bool))
    assert air.sum() > 100
    assert np.std(sharp[air]) > 1.3 * np.std(smooth[air])


def test_plain_threshold_is_a_trap(cohort: Path, truth: pd.DataFrame) -> None:
    """hu < -500 without connected-component reasoning includes non-lung air in every scan."""
    for row in truth.itertuples():
        hu = sitk.GetArrayFromImage(read_series(cohort / row.image_path))
        lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(cohort / "truth" / f"{row.subject_id}_lungs.nii.gz")))
        lung = np.isin(lungs, (1, 2))
        thr = hu < -500
        dice = 2 * np.count_nonzero(thr & lung) / (thr.sum() + lung.sum())
        assert dice < 0.7, "a plain threshold should not already be a lung segmentation"
        assert np.count_nonzero(thr & (lungs == 3)) > 100  # trachea / main bronchi
        comps, n = ndi.label(thr)
        border = set(np.unique(np.concatenate([comps[:, 0].ravel(), comps[:, -1].ravel(), comps[:, :, 0].ravel(),
                                               comps[:, :, -1].ravel()]))) - {0}
        assert border, "air outside the body must reach the image border"
        sizes = ndi.sum_labels(np.ones_like(comps), comps, index=np.arange(1, n + 1))
        in_lung = ndi.maximum(lung, comps, index=np.arange(1, n + 1))
        vox_ml = float(np.prod(row_spacing(cohort, row))) / 1000.0
        internal = [c + 1 for c in range(n)
                    if c + 1 not in border and not in_lung[c] and sizes[c] * vox_ml > 3.0]
        assert internal, "expected enclosed non-lung gas (stomach/bowel) of > 3 mL"


def row_spacing(cohort: Path, row) -> tuple[float, float, float]:
    return read_series(cohort / row.image_path).GetSpacing()
