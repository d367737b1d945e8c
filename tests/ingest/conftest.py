"""Tiny synthetic DICOM series (pydicom) and the corruption suite built from them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid

NAMES = {"A": ("PAT-A-0017", "DOE^JANE", "19510214"), "B": ("PAT-B-0042", "ROE^RICHARD", "19480730")}


def truth_hu(n: int, rows: int, cols: int, *, seed: int = 0) -> np.ndarray:
    """A known int16 HU volume: a smooth ramp plus per-voxel noise, air at the corners."""
    rng = np.random.default_rng(seed)
    k, j, i = np.meshgrid(np.arange(n), np.arange(rows), np.arange(cols), indexing="ij")
    hu = -900 + 20 * k + 5 * j - 3 * i + rng.integers(-40, 40, size=k.shape)
    return hu.astype(np.int16)


@dataclass
class SeriesSpec:
    entropy: str
    patient: str = "A"
    n: int = 40
    rows: int = 32
    cols: int = 32
    spacing_mm: float = 2.5
    pixel_mm: float = 0.75
    modality: str = "CT"
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL")
    iop: tuple[float, ...] = (1, 0, 0, 0, 1, 0)
    shear_y_per_slice_mm: float = 0.0
    gantry_tilt_deg: float = 0.0
    kernel: str = "B50f"
    thickness_mm: float | None = None
    description: str = "INSPIRATION CHEST"
    study: str = "s1"
    date: str = "20200115"
    intercepts: tuple[int, ...] = (-1024,)
    padding_stored: int | None = None
    series_uid: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def write_series(folder: Path, spec: SeriesSpec, *, hu: np.ndarray | None = None) -> list[Path]:
    """Write one series; files are named in REVERSE slice order so name order is never slice order."""
    folder.mkdir(parents=True, exist_ok=True)
    hu = truth_hu(spec.n, spec.rows, spec.cols) if hu is None else hu
    pid, name, birth = NAMES[spec.patient]
    study_uid = generate_uid(entropy_srcs=[spec.patient, spec.study])
    series_uid = spec.series_uid or generate_uid(entropy_srcs=[spec.entropy, "series"])
    row, col = np.asarray(spec.iop[:3], float), np.asarray(spec.iop[3:], float)
    normal = np.cross(row, col)
    paths = []
    for k in range(hu.shape[0]):
        meta = FileMetaDataset()
        sop_class = CTImageStorage if spec.modality == "CT" else MRImageStorage
        sop = generate_uid(entropy_srcs=[spec.entropy, "sop", str(k)])
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = sop_class, sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        ds.PatientID, ds.PatientName, ds.PatientBirthDate = pid, name, birth
        ds.AccessionNumber = "ACC" + pid[-4:]
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = spec.date
        ds.Modality = spec.modality
        ds.ImageType = list(spec.image_type)
        ds.SeriesDescription = spec.description
        ds.BodyPartExamined = "CHEST"
        ds.Manufacturer = "ACME"
        ds.ConvolutionKernel = spec.kernel
        ds.SliceThickness = f"{spec.thickness_mm or spec.spacing_mm:g}"
        ds.GantryDetectorTilt = f"{spec.gantry_tilt_deg:g}"
        ds.SeriesNumber = 3
        ds.InstanceNumber = k + 1
        ds.PixelSpacing = [f"{spec.pixel_mm:g}", f"{spec.pixel_mm:g}"]
        ds.ImageOrientationPatient = [f"{v:g}" for v in spec.iop]
        pos = np.array([-12.0, -12.0, -50.0]) + k * spec.spacing_mm * normal
        pos[1] += k * spec.shear_y_per_slice_mm
        ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        intercept = spec.intercepts[k % len(spec.intercepts)]
        ds.RescaleIntercept, ds.RescaleSlope = str(intercept), "1"
        stored = (hu[k].astype(np.int32) - intercept).astype(np.int16)
        if spec.padding_stored is not None:
            ds.PixelPaddingValue = spec.padding_stored
            stored[:2, :2] = spec.padding_stored
        for key, value in spec.extra.items():
            setattr(ds, key, value)
        ds.PixelData = stored.tobytes()
        path = folder / f"img{hu.shape[0] - k:04d}"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@dataclass
class Suite:
    root: Path
    folders: dict[str, Path]
    series_uids: dict[str, str]


@pytest.fixture(scope="module")
def corruption_suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    """One tree holding good series and every corruption the issue lists."""
    root = tmp_path_factory.mktemp("archive")
    f = {
        k: root / k
        for k in (
            "good",
            "mixed",
            "truncated",
            "missing",
            "dup",
            "mr",
            "tilt",
            "empty",
            "short",
            "coronal",
            "dims",
            "derived",
            "cut",
            "copy",
        )
    }
    f["deep"] = root / "site1" / "2020" / "x" / "y"
    uids = {}
    # good series A, a localizer with the SAME SeriesInstanceUID and a non-DICOM file in its folder
    write_series(f["good"], SeriesSpec("good"))
    uids["good"] = str(pydicom.dcmread(next(f["good"].iterdir())).SeriesInstanceUID)
    loc = SeriesSpec(
        "loc",
        n=1,
        rows=32,
        cols=32,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        iop=(0, 1, 0, 0, 0, -1),
        series_uid=uids["good"],
    )
    for p in write_series(root / "_tmp_loc", loc):
        shutil.move(p, f["good"] / f"loc_{p.name}")
    shutil.rmtree(root / "_tmp_loc")
    (f["good"] / "junk").write_bytes(b"\x00\x01 not an image " * 50)
    # two series interleaved in one folder (different patient B, soft kernel + lung kernel)
    write_series(
        f["mixed"] / "a",
        SeriesSpec("mixA", patient="B", kernel="B30f", thickness_mm=5.0, spacing_mm=5.0, n=32),
    )
    write_series(
        f["mixed"] / "b",
        SeriesSpec("mixB", patient="B", kernel="B60f", thickness_mm=1.25, spacing_mm=1.25, n=48),
    )
    for sub in ("a", "b"):
        for p in (f["mixed"] / sub).iterdir():
            shutil.move(p, f["mixed"] / f"{sub}_{p.name}")
        (f["mixed"] / sub).rmdir()
    # truncated file (pixel data cut)
    files = write_series(f["truncated"], SeriesSpec("trunc", study="s2"))
    data = files[10].read_bytes()
    files[10].write_bytes(data[: len(data) - 700])
    # missing slice in the middle
    files = write_series(f["missing"], SeriesSpec("miss", study="s3"))
    files[20].unlink()
    # duplicated slice: a different instance at an existing position
    files = write_series(f["dup"], SeriesSpec("dup", study="s4"))
    ds = pydicom.dcmread(files[5])
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["dup-extra"])
    ds.save_as(f["dup"] / "extra", enforce_file_format=True)
    write_series(f["mr"], SeriesSpec("mr", modality="MR", study="s5"))
    write_series(
        f["tilt"],
        SeriesSpec(
            "tilt", study="s6", shear_y_per_slice_mm=2.5 * np.tan(np.radians(15)), gantry_tilt_deg=15.0
        ),
    )
    f["empty"].mkdir()
    write_series(f["short"], SeriesSpec("short", n=10, study="s7"))
    write_series(f["coronal"], SeriesSpec("cor", study="s8", iop=(1, 0, 0, 0, 0, -1)))
    write_series(f["deep"], SeriesSpec("deep", study="s9", date="20210301"))
    # one slice with another matrix size
    files = write_series(f["dims"], SeriesSpec("dims", study="s10"))
    ds = pydicom.dcmread(files[7])
    ds.Rows = ds.Columns = 16
    ds.PixelData = np.zeros((16, 16), np.int16).tobytes()
    ds.save_as(files[7])
    # a file with a DICOM preamble whose header is garbage, and a slice cut inside its header
    (f["good"] / "broken").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x40\x00" + b"1.2" * 3)
    files = write_series(f["cut"], SeriesSpec("cut", study="s12"))
    files[3].write_bytes(files[3].read_bytes()[:600])
    # the same instance stored twice under two names: read once, a warning only
    files = write_series(f["copy"], SeriesSpec("copy", study="s13"))
    shutil.copy(files[9], f["copy"] / "copy_of_slice")
    write_series(f["derived"], SeriesSpec("derived", study="s11", image_type=("DERIVED", "SECONDARY", "MPR")))
    return Suite(root, f, uids)
