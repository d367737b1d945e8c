"""Write a synthetic CT volume as a DICOM series (pydicom), one file per slice.

The geometry is LPS with an identity direction: ImageOrientationPatient
``[1, 0, 0, 0, 1, 0]`` (rows run to the patient's left, columns posterior),
ImagePositionPatient of slice ``k`` = ``origin + k * dz`` along +z (head).
InstanceNumber counts from the head down, as a cranio-caudal helical scan
numbers its images. File names are opaque hashes, so sorting them does not
give slice order (real archives do not either). UIDs come from
:func:`pydicom.uid.generate_uid` with a deterministic entropy source, so the
same seed writes the same UIDs, and distinct seeds/subjects distinct ones.
"""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from ..io.volume import Volume

IMPLEMENTATION_UID = "1.2.826.0.1.3680043.8.498.1"


def opaque_name(*parts: Any, n: int = 16) -> str:
    """A deterministic, meaningless file-name-safe token."""
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:n]


def write_dicom_series(image: Volume, folder: Path, *, patient: dict[str, str], uid_entropy: str,
                       rescale_intercept: int, manufacturer: str, scanner_model: str, kernel_name: str,
                       slice_thickness_mm: float, study_date: date, pixel_padding_hu: int | None = None,
                       series_entropy: str | None = None, series_number: int = 2) -> list[Path]:
    """Write ``image`` (int16 HU, identity direction) as one CT series in ``folder``.

    Parameters
    ----------
    patient
        ``PatientID``, ``PatientName``, ``PatientBirthDate`` (YYYYMMDD), ``PatientSex``, ``PatientAge``.
    uid_entropy
        Deterministic entropy (e.g. ``"<seed>/<index>"``) for the Study/Series/SOP/FoR UIDs.
    series_entropy, series_number
        A second reconstruction of the same study (same Study and Frame of Reference UIDs) gets its
        own entropy for the Series/SOP UIDs and file names, and its own SeriesNumber.
    rescale_intercept
        ``-1024`` (stored = HU + 1024) or ``0`` (stored = HU); slope is always 1.
    pixel_padding_hu
        HU value marking pixels outside the reconstruction circle (written as PixelPaddingValue).
    """
    if not np.allclose(image.direction, (1, 0, 0, 0, 1, 0, 0, 0, 1)):
        raise ValueError(f"write_dicom_series expects an identity direction; got {image.direction}")
    if rescale_intercept not in (-1024, 0):
        raise ValueError(f"rescale_intercept must be -1024 or 0; got {rescale_intercept}")
    hu = np.asarray(image.array)
    if hu.dtype != np.int16:
        raise TypeError(f"image must be int16 HU; got {hu.dtype}")
    stored = (hu.astype(np.int32) - rescale_intercept)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError(f"HU range {hu.min()}..{hu.max()} does not fit int16 with intercept {rescale_intercept}")
    stored = stored.astype(np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    nz, ny, nx = hu.shape
    dz, dy, dx = image.spacing_mm
    ox, oy, oz = image.origin_mm
    study_uid = generate_uid(entropy_srcs=[uid_entropy, "study"])
    own = series_entropy or uid_entropy
    series_uid = generate_uid(entropy_srcs=[own, "series"])
    for_uid = generate_uid(entropy_srcs=[uid_entropy, "frame-of-reference"])
    sdate = study_date.strftime("%Y%m%d")
    paths: list[Path] = []
    for k in range(nz):
        sop_uid = generate_uid(entropy_srcs=[own, "sop", str(k)])
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_UID
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = sop_uid
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = for_uid
        ds.Modality = "CT"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.PatientID = patient["PatientID"]
        ds.PatientName = patient["PatientName"]
        ds.PatientBirthDate = patient["PatientBirthDate"]
        ds.PatientSex = patient["PatientSex"]
        ds.PatientAge = patient["PatientAge"]
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = sdate
        ds.StudyTime = ds.SeriesTime = "101500"
        ds.ContentTime = f"1016{k % 60:02d}"
        ds.AccessionNumber = opaque_name(uid_entropy, "acc", n=10).upper()
        ds.StudyID = "1"
        ds.SeriesNumber = series_number
        ds.InstanceNumber = nz - k  # head first: image 1 is the most superior
        ds.StudyDescription = "CT CHEST WO CONTRAST"
        ds.SeriesDescription = f"INSPIRATION {slice_thickness_mm:g}mm {kernel_name}"
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "HFS"
        ds.Manufacturer = manufacturer
        ds.ManufacturerModelName = scanner_model
        ds.ConvolutionKernel = kernel_name
        ds.KVP = 120
        ds.SliceThickness = f"{slice_thickness_mm:g}"
        ds.SpacingBetweenSlices = f"{dz:g}"
        ds.PixelSpacing = [f"{dy:.10g}", f"{dx:.10g}"]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [f"{ox:.6f}", f"{oy:.6f}", f"{oz + k * dz:.6f}"]
        ds.SliceLocation = f"{oz + k * dz:.6f}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = ny, nx
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = str(rescale_intercept)
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.WindowCenter, ds.WindowWidth = "-600", "1500"
        if pixel_padding_hu is not None:
            ds.PixelPaddingValue = int(pixel_padding_hu - rescale_intercept)
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        path = folder / f"{opaque_name(own, 'file', k, n=12)}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def fake_patient(rng: np.random.Generator, *, age_years: int, sex: str, study_date: date) -> dict[str, str]:
    """Fake but realistic identifiers: an 8-digit MRN, a name, a birth date consistent with the age."""
    first_m = ["JAMES", "ROBERT", "JOHN", "MICHAEL", "DAVID", "WILLIAM", "RICHARD", "THOMAS", "CHARLES", "GARY"]
    first_f = ["MARY", "PATRICIA", "LINDA", "BARBARA", "ELIZABETH", "SUSAN", "JESSICA", "KAREN", "NANCY", "BETTY"]
    last = ["SMITH", "JOHNSON", "WILLIAMS", "BROWN", "JONES", "MILLER", "DAVIS", "GARCIA", "WILSON", "MOORE",
            "TAYLOR", "ANDERSON", "THOMAS", "JACKSON", "WHITE", "HARRIS", "MARTIN", "THOMPSON", "CLARK", "LEWIS"]
    first = first_m if sex == "M" else first_f
    birth = study_date - timedelta(days=int(age_years * 365.25 + rng.integers(0, 365)))
    return {
        "PatientID": str(int(rng.integers(10_000_000, 99_999_999))),
        "PatientName": f"{last[int(rng.integers(len(last)))]}^{first[int(rng.integers(len(first)))]}",
        "PatientBirthDate": birth.strftime("%Y%m%d"),
        "PatientSex": sex,
        "PatientAge": f"{int(age_years):03d}Y",
    }

