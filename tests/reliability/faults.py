"""Bad inputs derived from copies of a good synthetic DICOM series (the fault-injection cohort).

Each derived series gets fresh Patient/Study/Series/SOP/Frame-of-Reference UIDs, so ingest sees a
new subject and study (the series-selection rule never weighs it against its source) and no
instance is a duplicate of the original's.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import generate_uid

TOTALSEG_DICOM = "totalsegmentator_ct_dicom/dicom"
"""The real 20-slice upper-abdomen series of ``/work/shared/data`` (not a chest CT)."""

UID_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def read_series(folder: Path) -> list[pydicom.Dataset]:
    """All slices of a one-series folder, inferior to superior (ImagePositionPatient z)."""
    slices = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    if not slices:
        raise FileNotFoundError(f"no *.dcm file in {folder}")
    return sorted(slices, key=lambda ds: float(ds.ImagePositionPatient[2]))


def _renew_identity(ds: pydicom.Dataset, case: str) -> None:
    for tag in UID_TAGS:
        if tag in ds:
            setattr(ds, tag, generate_uid(entropy_srcs=[case, str(getattr(ds, tag))]))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientID = f"FAULT-{case.upper()}"
    ds.PatientName = f"FAULT^{case.upper()}"


def _write(slices: list[pydicom.Dataset], dest: Path, case: str) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, ds in enumerate(slices):
        _renew_identity(ds, case)
        path = dest / f"{case}-{k:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def truncated_series(src: Path, dest: Path) -> Path:
    """A good series whose middle file is cut to 60 % of its bytes (an incomplete copy)."""
    paths = _write(read_series(src), dest, "truncated")
    victim = paths[len(paths) // 2]
    data = victim.read_bytes()
    victim.write_bytes(data[: int(0.6 * len(data))])
    return victim


def missing_slice_series(src: Path, dest: Path) -> None:
    """A good series with the middle slice removed (a gap of twice the slice spacing)."""
    slices = read_series(src)
    del slices[len(slices) // 2]
    _write(slices, dest, "missing")


def mr_series(src: Path, dest: Path) -> None:
    """A good series relabelled as MR (Modality and SOP class)."""
    slices = read_series(src)
    for ds in slices:
        ds.Modality = "MR"
        ds.SOPClassUID = pydicom.uid.MRImageStorage
        ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.MRImageStorage
    _write(slices, dest, "mr")


def soft_tissue_series(src: Path, dest: Path, *, hu: int = 40) -> None:
    """A good series with every pixel set to ``hu`` (soft tissue): no air, so no lung mask."""
    slices = read_series(src)
    for ds in slices:
        stored = int(round((hu - float(ds.RescaleIntercept)) / float(ds.RescaleSlope)))
        arr = np.full((int(ds.Rows), int(ds.Columns)), stored, dtype=ds.pixel_array.dtype)
        ds.PixelData = arr.tobytes()
        for tag in ("PixelPaddingValue", "SmallestImagePixelValue", "LargestImagePixelValue"):
            if tag in ds:
                delattr(ds, tag)
    _write(slices, dest, "empty")


def upsampled_series(src: Path, dest: Path, *, inplane: int, z: int) -> tuple[int, int, int]:
    """A good series repeated ``inplane`` x in rows/columns and ``z`` x in slices (spacings divided
    accordingly): the same anatomy at a finer grid, a much larger scan. Returns its (z, y, x) size."""
    slices = read_series(src)
    dz = float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2])
    out = []
    for ds in slices:
        arr = np.repeat(np.repeat(ds.pixel_array, inplane, axis=0), inplane, axis=1)
        for j in range(z):
            new = copy.deepcopy(ds)
            new.Rows, new.Columns = arr.shape
            new.PixelSpacing = [float(v) / inplane for v in ds.PixelSpacing]
            pos = [float(v) for v in ds.ImagePositionPatient]
            pos[2] += j * dz / z
            new.ImagePositionPatient = pos
            new.SliceThickness = float(ds.get("SliceThickness", abs(dz))) / z
            new.PixelData = np.ascontiguousarray(arr).tobytes()
            new.SOPInstanceUID = generate_uid(entropy_srcs=["big", str(ds.SOPInstanceUID), str(j)])
            out.append(new)
    for k, ds in enumerate(out):
        ds.InstanceNumber = len(out) - k
    _write(out, dest, "big")
    return len(out), int(out[0].Rows), int(out[0].Columns)


def copy_real_abdomen(shared_data: Path, dest: Path) -> None:
    """Copy the real upper-abdomen series (read-only source) into the input tree."""
    shutil.copytree(shared_data / TOTALSEG_DICOM, dest)
