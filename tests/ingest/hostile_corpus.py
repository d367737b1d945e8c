"""The hostile-input corpus: small generated files of every damaged or dangerous kind, and the
outcome each must have (a reason code in the manifest, a failure row, or usable).

Every case lives in its own folder named like an archive that leaks identifiers
(``<case>__DOE^JOHN_1931``); the tree sits beside an ``outside/`` folder holding sentinel
files that detached headers and links point at, and that must never be opened.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import os
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from .conftest import SeriesSpec, truth_hu, write_series

N = 12
"""Slices of every phantom (the corpus runs with ``ingest.min_slices`` 8)."""
LEAKY = "DOE^JOHN_1931"
"""A patient name and birth year in every case's folder name: the canary for paths."""
NIFTI_SUBJECT = "ROE^RICHARD_19480730"
"""The good NIfTI's file name (its subject key): must not appear past ingest."""
ENHANCED_CT = "1.2.840.10008.5.1.4.1.1.2.1"
BOMB_BYTES = 64 << 20
"""Zeros appended to a small NIfTI before gzip: reading must stop one byte past the declared size."""


@dataclass(frozen=True)
class Expect:
    """Outcome of one case: where it is recorded (``manifest`` / ``failure``) and with which code;
    code None means a usable manifest row."""

    where: str
    code: str | None = None


def _volume(hu: np.ndarray, spacing=(0.7, 0.7, 2.0)) -> sitk.Image:
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing(spacing)
    return img


def _nifti_bytes(path: Path, offset: int, fmt: str, *values: float) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, offset, *values)
    path.write_bytes(bytes(data))


def write_enhanced_ct(path: Path, *, positions_mm: np.ndarray | None, iop=(1, 0, 0, 0, 1, 0),
                      hu: np.ndarray | None = None, pixel_mm: float = 0.75, entropy: str = "mf") -> np.ndarray:
    """An Enhanced CT Image Storage file: one frame per position (functional groups), HU = stored - 1024.

    ``positions_mm`` (n, 3) go to PerFrameFunctionalGroupsSequence.PlanePositionSequence; None
    writes no positions at all. Returns the HU written, frames in file order.
    """
    n = len(positions_mm) if positions_mm is not None else N
    hu = truth_hu(n, 32, 32, seed=5) if hu is None else hu
    meta = FileMetaDataset()
    sop = generate_uid(entropy_srcs=[entropy, "sop"])
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = ENHANCED_CT, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = ENHANCED_CT, sop
    ds.StudyInstanceUID = generate_uid(entropy_srcs=[entropy, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[entropy, "series"])
    ds.PatientID, ds.PatientName, ds.PatientBirthDate = "PAT-MF-0099", "MOE^MARY", "19600101"
    ds.Modality, ds.ImageType = "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BodyPartExamined, ds.Manufacturer, ds.ConvolutionKernel = "CHEST", "ACME", "B50f"
    ds.AcquisitionDate = "20200115"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns, ds.NumberOfFrames = 32, 32, n
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    shared = Dataset()
    measures, orient, rescale = Dataset(), Dataset(), Dataset()
    measures.PixelSpacing, measures.SliceThickness = [pixel_mm, pixel_mm], 2.5
    orient.ImageOrientationPatient = list(iop)
    rescale.RescaleSlope, rescale.RescaleIntercept, rescale.RescaleType = 1, -1024, "HU"
    shared.PixelMeasuresSequence = Sequence([measures])
    shared.PlaneOrientationSequence = Sequence([orient])
    shared.PixelValueTransformationSequence = Sequence([rescale])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    if positions_mm is not None:
        frames = []
        for p in positions_mm:
            item, plane = Dataset(), Dataset()
            plane.ImagePositionPatient = [f"{v:.4f}" for v in p]
            item.PlanePositionSequence = Sequence([plane])
            frames.append(item)
        ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds.PixelData = (hu.astype(np.int32) + 1024).astype(np.int16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return hu


def axial_positions(n: int = N, spacing_mm: float = 2.5) -> np.ndarray:
    return np.array([[-12.0, -12.0, -50.0 + k * spacing_mm] for k in range(n)])


def _series(folder: Path, entropy: str, **spec) -> list[Path]:
    return write_series(folder, SeriesSpec(entropy, n=N, study=entropy, **spec))


def _edit(files: list[Path], **tags) -> None:
    for f in files:
        ds = pydicom.dcmread(f)
        for k, v in tags.items():
            setattr(ds, k, v)
        ds.save_as(f)


def build(root: Path, outside: Path) -> dict[str, Expect]:
    """Write every case under ``root`` (sentinels under ``outside``); return case -> expected outcome."""
    root.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    hu = truth_hu(N, 32, 32)
    sentinel = outside / "sentinel.raw"
    sentinel.write_bytes(hu.tobytes())  # exactly the bytes a header would want: only refusal stops it
    for k in (1, 2, 3):
        (outside / f"s{k}.raw").write_bytes(hu[:4].tobytes())
    d = {case: root / f"{case}__{LEAKY}" for case in CASES}
    for folder in d.values():
        folder.mkdir()
    exp: dict[str, Expect] = {}

    # --- good inputs, which must stay usable ---------------------------------------------------
    _series(d["good_dicom"], "good")
    uid = str(pydicom.dcmread(next(d["good_dicom"].iterdir())).SeriesInstanceUID)
    sr = Dataset()  # a structured report sharing the CT's SeriesInstanceUID must not reject it
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID = generate_uid(entropy_srcs=["sr"])
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.SeriesInstanceUID, sr.Modality, sr.PatientID = uid, "SR", "PAT-A-0017"
    sr.PatientName = "DOE^JANE"
    sr.save_as(d["good_dicom"] / "report_DOE^JANE.dcm", enforce_file_format=True)
    exp["good_dicom"] = Expect("manifest")
    sitk.WriteImage(_volume(hu), str(d["good_nifti"] / f"{NIFTI_SUBJECT}.nii.gz"))
    exp["good_nifti"] = Expect("manifest")
    sitk.WriteImage(_volume(hu), str(d["good_nhdr"] / "scan.nhdr"))
    exp["good_nhdr"] = Expect("manifest")
    sitk.WriteImage(_volume(hu), str(d["good_mha"] / "scan.mha"), True)
    exp["good_mha"] = Expect("manifest")
    write_enhanced_ct(d["good_enhanced"] / "mf.dcm", positions_mm=axial_positions(), entropy="mf-good")
    exp["good_enhanced"] = Expect("manifest")
    (d["good_mhd_subfolder"] / "raw").mkdir()  # a detached header whose data sit below it: accepted
    (d["good_mhd_subfolder"] / "raw" / "scan.raw").write_bytes(hu.tobytes())
    (d["good_mhd_subfolder"] / "scan.mhd").write_text(_mhd_header() + "ElementDataFile = raw/scan.raw\n")
    exp["good_mhd_subfolder"] = Expect("manifest")
    files = _series(d["odd_names"], "odd")  # file names that are not UTF-8 and hold a newline
    os.rename(files[0], os.fsencode(d["odd_names"]) + b"/\xff\xfe IM\n0001.dcm")
    exp["odd_names"] = Expect("manifest")
    (d["nhdr_sibling"] / "data").mkdir()  # inside the input, but beside the header's folder: refused
    (d["nhdr_sibling"] / "data" / "x.raw").write_bytes(hu.tobytes())
    (d["nhdr_sibling"] / "hdr").mkdir()
    (d["nhdr_sibling"] / "hdr" / "x.nhdr").write_text(_nhdr_header(hu) + "data file: ../data/x.raw\n")
    exp["nhdr_sibling"] = Expect("manifest", "outside_input_tree")

    # --- damaged volume files --------------------------------------------------------------------
    sitk.WriteImage(_volume(hu), str(d["nii_gz_truncated"] / "x.nii.gz"))
    f = d["nii_gz_truncated"] / "x.nii.gz"
    f.write_bytes(f.read_bytes()[:-40])
    exp["nii_gz_truncated"] = Expect("manifest", "truncated_file")
    f = d["nii_declares_more"] / "x.nii"
    sitk.WriteImage(_volume(hu), str(f))
    _nifti_bytes(f, 46, "<h", 2 * N)  # dim[3]: twice the slices the file holds
    exp["nii_declares_more"] = Expect("manifest", "truncated_file")
    f = d["nii_extra_data"] / "x.nii"
    sitk.WriteImage(_volume(hu), str(f))
    f.write_bytes(f.read_bytes() + hu[:1].tobytes())
    exp["nii_extra_data"] = Expect("manifest", "data_size_mismatch")
    nan = hu.astype(np.float32)
    nan[3, 4, 5] = np.nan
    sitk.WriteImage(_volume(nan), str(d["nii_nan"] / "x.nii.gz"))
    exp["nii_nan"] = Expect("manifest", "non_finite_voxels")
    inf = hu.astype(np.float32)
    inf[1, 1, 1] = -np.inf
    sitk.WriteImage(_volume(inf), str(d["nrrd_inf"] / "x.nrrd"))
    exp["nrrd_inf"] = Expect("manifest", "non_finite_voxels")
    for case, value in (("nii_spacing_zero", 0.0), ("nii_spacing_huge", 1e4)):
        f = d[case] / "x.nii"
        sitk.WriteImage(_volume(hu), str(f))
        _nifti_bytes(f, 84, "<f", value)  # pixdim[2] (y)
        exp[case] = Expect("manifest", "implausible_spacing")
    f = d["nii_slope_zero"] / "x.nii"
    sitk.WriteImage(_volume(hu + 1024), str(f))
    _nifti_bytes(f, 112, "<ff", 0.0, -1024.0)  # scl_slope 0, scl_inter -1024
    exp["nii_slope_zero"] = Expect("manifest", "zero_scale_slope")
    f = d["nrrd_sheared"] / "x.nrrd"
    sitk.WriteImage(_volume(hu), str(f))
    f.write_bytes(f.read_bytes().replace(b"(0,0.69999999999999996,0)", b"(0.2,0.69999999999999996,0)", 1))
    exp["nrrd_sheared"] = Expect("manifest", "non_orthonormal_direction")
    f = d["nrrd_no_spacing"] / "x.nrrd"
    f.write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 32 32 12\nendian: little\nencoding: raw\n\n"
                  + hu.tobytes())
    exp["nrrd_no_spacing"] = Expect("manifest", "missing_geometry")
    f = d["nrrd_gz_truncated"] / "x.nrrd"
    sitk.WriteImage(_volume(hu), str(f), True)
    f.write_bytes(f.read_bytes()[:-30])
    exp["nrrd_gz_truncated"] = Expect("manifest", "truncated_file")
    f = d["nii_gz_corrupt"] / "x.nii.gz"
    raw = bytearray(gzip.compress(_nii_bytes(hu)))
    raw[len(raw) // 2] ^= 0xFF
    f.write_bytes(bytes(raw))
    exp["nii_gz_corrupt"] = Expect("manifest", "unreadable_file")
    bomb = _nii_bytes(hu) + bytes(BOMB_BYTES)  # 24 kB of voxels declared, 64 MB decompressed
    (d["nii_gz_bomb"] / "x.nii.gz").write_bytes(gzip.compress(bomb, compresslevel=9))
    exp["nii_gz_bomb"] = Expect("manifest", "data_size_mismatch")

    # --- detached headers pointing outside the input (the sentinel must never be opened) -----------
    header = _nhdr_header(hu)
    rel = os.path.relpath(sentinel, d["nhdr_outside"])
    (d["nhdr_outside"] / "x.nhdr").write_text(header + f"data file: {rel}\n")
    exp["nhdr_outside"] = Expect("manifest", "outside_input_tree")
    rel3 = os.path.relpath(outside, d["nhdr_pattern"])
    (d["nhdr_pattern"] / "x.nhdr").write_text(header + f"data file: {rel3}/s%d.raw 1 3 1 2\n")
    exp["nhdr_pattern"] = Expect("manifest", "outside_input_tree")
    (d["mhd_absolute"] / "x.mhd").write_text(_mhd_header() + f"ElementDataFile = {sentinel}\n")
    exp["mhd_absolute"] = Expect("manifest", "outside_input_tree")
    (d["mhd_list"] / "a.raw").write_bytes(hu[:6].tobytes())
    (d["mhd_list"] / "x.mhd").write_text(_mhd_header() + f"ElementDataFile = LIST 2\na.raw\n{sentinel}\n")
    exp["mhd_list"] = Expect("manifest", "outside_input_tree")

    # --- damaged DICOM -------------------------------------------------------------------------------
    files = _series(d["dicom_spacing_zero"], "sp0")
    _edit(files, PixelSpacing=["0", "0"])
    exp["dicom_spacing_zero"] = Expect("manifest", "implausible_spacing")
    files = _series(d["dicom_spacing_negative"], "spneg")
    _edit(files, PixelSpacing=["-0.7", "-0.7"])
    exp["dicom_spacing_negative"] = Expect("manifest", "implausible_spacing")
    _series(d["dicom_iop_skewed"], "skew", iop=(1, 0, 0, 0.26, 0.9656, 0))
    exp["dicom_iop_skewed"] = Expect("manifest", "non_orthonormal_direction")
    files = _series(d["dicom_slope_zero"], "slope0")
    _edit(files, RescaleSlope="0")
    exp["dicom_slope_zero"] = Expect("manifest", "zero_scale_slope")
    pos = axial_positions()
    pos[6:] += [0, 0, 5.0]  # a gap of three slice spacings between frames 5 and 6
    write_enhanced_ct(d["enhanced_gap"] / "mf.dcm", positions_mm=pos, entropy="mf-gap")
    exp["enhanced_gap"] = Expect("manifest", "missing_slices")
    pos = axial_positions()
    pos[7] = pos[6]
    write_enhanced_ct(d["enhanced_duplicate"] / "mf.dcm", positions_mm=pos, entropy="mf-dup")
    exp["enhanced_duplicate"] = Expect("manifest", "duplicate_slices")
    pos = axial_positions()
    pos[:, 1] += np.arange(N) * 2.5 * np.tan(np.radians(15))  # stack sheared 15 degrees
    write_enhanced_ct(d["enhanced_shear"] / "mf.dcm", positions_mm=pos, entropy="mf-shear")
    exp["enhanced_shear"] = Expect("manifest", "gantry_tilt")
    write_enhanced_ct(d["enhanced_no_positions"] / "mf.dcm", positions_mm=None, entropy="mf-nopos")
    exp["enhanced_no_positions"] = Expect("manifest", "missing_geometry")
    f = d["enhanced_forged_frames"] / "mf.dcm"  # a billion frames declared: no loop over them, no hang
    write_enhanced_ct(f, positions_mm=axial_positions(), entropy="mf-forged")
    _edit([f], NumberOfFrames=10**9)
    exp["enhanced_forged_frames"] = Expect("manifest", "truncated_file")

    # --- entries that must never be opened -------------------------------------------------------------
    os.mkfifo(d["fifo"] / "IM0001.dcm")
    exp["fifo"] = Expect("failure", "not_regular_file")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(d["socket"] / "IM0001"))
    sock.close()
    exp["socket"] = Expect("failure", "not_regular_file")
    (d["dangling_link"] / "IM0001.dcm").symlink_to(d["dangling_link"] / "gone.dcm")
    exp["dangling_link"] = Expect("failure", "broken_link")
    (d["link_outside"] / "IM0001.dcm").symlink_to(sentinel)
    exp["link_outside"] = Expect("failure", "outside_input_tree")
    (d["link_device"] / "IM0001.dcm").symlink_to("/dev/zero")
    exp["link_device"] = Expect("failure", "outside_input_tree")
    (d["folder_link_outside"] / "series").symlink_to(outside, target_is_directory=True)
    exp["folder_link_outside"] = Expect("failure", "outside_input_tree")
    (d["unreadable_file"] / "IM0001.dcm").write_bytes(b"\0" * 132)
    exp["unreadable_file"] = Expect("failure", "unreadable_file")
    (d["unreadable_folder"] / "inner").mkdir()
    (d["unreadable_folder"] / "inner" / "IM0001.dcm").write_bytes(b"\0" * 132)
    exp["unreadable_folder"] = Expect("failure", "unreadable_folder")
    assert set(exp) == set(CASES)
    return exp


CASES = (
    "good_dicom", "good_nifti", "good_nhdr", "good_mha", "good_enhanced", "good_mhd_subfolder", "odd_names",
    "nhdr_sibling",
    "nii_gz_truncated", "nii_declares_more", "nii_extra_data", "nii_nan", "nrrd_inf", "nii_spacing_zero",
    "nii_spacing_huge", "nii_slope_zero", "nrrd_sheared", "nrrd_no_spacing", "nrrd_gz_truncated",
    "nii_gz_corrupt", "nii_gz_bomb", "nhdr_outside", "nhdr_pattern", "mhd_absolute", "mhd_list",
    "dicom_spacing_zero", "dicom_spacing_negative", "dicom_iop_skewed", "dicom_slope_zero",
    "enhanced_gap", "enhanced_duplicate", "enhanced_shear", "enhanced_no_positions", "enhanced_forged_frames",
    "fifo", "socket", "dangling_link", "link_outside", "link_device", "folder_link_outside",
    "unreadable_file", "unreadable_folder",
)
"""Every case, in the order they are built."""
DENIED = {"unreadable_file": "IM0001.dcm", "unreadable_folder": "inner"}
"""Case -> the entry made unreadable (chmod 000, or an injected EACCES when running as root)."""


def _nii_bytes(hu: np.ndarray) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(np.ascontiguousarray(hu.transpose(2, 1, 0)), np.diag([0.7, 0.7, 2.0, 1.0]))
    return img.to_bytes()


def _nhdr_header(hu: np.ndarray) -> str:
    z, y, x = hu.shape
    return ("NRRD0004\ntype: short\ndimension: 3\nspace: left-posterior-superior\n"
            f"sizes: {x} {y} {z}\nspace directions: (0.7,0,0) (0,0.7,0) (0,0,2)\n"
            "endian: little\nencoding: raw\nspace origin: (0,0,0)\n")


def _mhd_header() -> str:
    return ("ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n"
            "CompressedData = False\nTransformMatrix = 1 0 0 0 1 0 0 0 1\nOffset = 0 0 0\n"
            f"ElementSpacing = 0.7 0.7 2\nDimSize = 32 32 {N}\nElementType = MET_SHORT\n")


class OpenWatch:
    """Linux inotify on files and folders: records every open or read by any code, C++ included.

    ``events()`` returns the names seen since the last call. Raises OSError where inotify is absent.
    """

    IN_ACCESS, IN_OPEN = 0x00000001, 0x00000020

    def __init__(self, paths: list[Path]) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._fd = libc.inotify_init1(os.O_NONBLOCK)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._names: dict[int, str] = {}
        for p in paths:
            wd = libc.inotify_add_watch(self._fd, str(p).encode(), self.IN_ACCESS | self.IN_OPEN)
            if wd < 0:
                raise OSError(ctypes.get_errno(), f"inotify_add_watch failed for {p}")
            self._names[wd] = str(p)

    def events(self) -> list[str]:
        out = []
        while True:
            try:
                buf = os.read(self._fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i < len(buf):
                wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16: i + 16 + length].rstrip(b"\0").decode()
                out.append(os.path.join(self._names.get(wd, "?"), name) if name else self._names.get(wd, "?"))
                i += 16 + length

    def close(self) -> None:
        os.close(self._fd)
