"""Header records: what discovery learns about each file without decoding pixels.

:func:`read_file_record` runs on Dask workers (one call per file, batched per
folder by :func:`read_records`); it returns a plain dict so it pickles cheaply.
Records still hold raw identifiers (PatientID, UIDs, dates, the path): they
live only in ingest's memory and are pseudonymised before anything is written.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

from ..io.dicomseries import floats_of, frame_geometry, join_multi
from ..io.readers import volume_format
from ..io.redact import scrub
from ..io.remote import NotRegularFileError, open_binary, os_reason

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
IMAGE_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2",  # CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT Image Storage
        "1.2.840.10008.5.1.4.1.1.4",  # MR Image Storage
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR Image Storage
        "1.2.840.10008.5.1.4.1.1.128",  # PET Image Storage
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    }
)
"""SOP classes whose instances must hold pixel data (one without is a cut-off file)."""
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def _pixel_data_check(fh: Any, ds: Any, pos: int, size: int) -> str | None:
    """Problem with the pixel data element that starts at ``pos``, or None when it looks complete."""
    if pos >= size:
        return "no_pixel_data"
    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    implicit = bool(ts.is_implicit_VR) if ts is not None else True
    little = bool(ts.is_little_endian) if ts is not None else True
    fh.seek(pos)
    head = fh.read(12)
    if len(head) < 8:
        return "truncated_file"
    fmt = "<I" if little else ">I"
    length = struct.unpack(fmt, head[4:8])[0] if implicit else struct.unpack(fmt, head[8:12])[0]
    hdr = 8 if implicit else 12
    if length == 0xFFFFFFFF:  # encapsulated (compressed) frames end with a sequence delimiter
        fh.seek(max(size - 8, 0))
        return None if fh.read(8) == _SEQ_DELIMITER else "truncated_file"
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1))
            * int(ds.BitsAllocated)
            // 8
            * frames
        )
    except (AttributeError, TypeError, ValueError):
        expected = 0
    if size - pos - hdr < min(length, expected) or length < expected:
        return "truncated_file"
    return None


def read_dicom_record(path: str) -> dict[str, Any]:
    """Header record of one DICOM file (``kind``: dicom / skip / other / error)."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        with open_binary(path) as fh:
            try:
                ds = pydicom.dcmread(fh, stop_before_pixels=True)
            except InvalidDicomError:
                return {"path": path, "kind": "other", "error": "not DICOM"}
            pos = fh.tell()
            fh.seek(0, 2)
            size = fh.tell()
            problem = _pixel_data_check(fh, ds, pos, size)
    except NotRegularFileError as err:
        return {"path": path, "kind": "error", "code": "not_regular_file", "error": os_reason(err)}
    except OSError as err:  # permission denied, I/O error: the message names the errno, not the file
        return {"path": path, "kind": "error", "code": "unreadable_file", "error": os_reason(err)}
    except (EOFError, ValueError, KeyError, TypeError, AttributeError, struct.error) as err:
        return {"path": path, "kind": "error", "code": "unreadable_header",
                "error": scrub(f"{type(err).__name__}: {err}", path)}
    meta = getattr(ds, "file_meta", None)
    sop_class = str(
        ds.get("SOPClassUID", "") or (meta.get("MediaStorageSOPClassUID", "") if meta else "") or ""
    )
    if sop_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return {"path": path, "kind": "skip", "error": "DICOMDIR"}
    sop_uid = str(
        ds.get("SOPInstanceUID", "") or (meta.get("MediaStorageSOPInstanceUID", "") if meta else "") or ""
    )
    desc = " ".join(str(ds.get(k, "") or "") for k in ("SeriesDescription", "ProtocolName")).upper()
    date = str(ds.get("AcquisitionDate", "") or ds.get("SeriesDate", "") or ds.get("StudyDate", "") or "")
    try:
        tilt = float(ds.get("GantryDetectorTilt", 0) or 0)
    except (TypeError, ValueError):
        tilt = 0.0

    def _number(key: str, kind: type = float) -> Any:
        """The element as ``kind`` (int or float); None when absent, empty or not a number."""
        try:
            v = ds.get(key)
            return kind(v) if v not in (None, "") else None
        except (TypeError, ValueError):
            return None

    rows, columns = _number("Rows", int), _number("Columns", int)
    if problem == "no_pixel_data" and ((rows and columns) or sop_class in IMAGE_SOP_CLASSES):
        problem = "truncated_file"  # an image header whose pixel data is cut off
    if problem == "truncated_file" and not ds.get("SeriesInstanceUID"):
        return {"path": path, "kind": "error", "code": "unreadable_header",
                "error": "file cut off before its SeriesInstanceUID"}
    if not (ds.get("SeriesInstanceUID") or sop_uid or ds.get("Modality") or rows):
        return {"path": path, "kind": "error", "code": "unreadable_header",
                "error": "header holds no identifying or image attributes"}
    n_frames = _number("NumberOfFrames", int) or 1
    return {
        "path": path,
        "kind": "dicom",
        "error": None,
        "problem": problem,
        "patient_id": str(ds.get("PatientID", "") or ""),
        "study_uid": str(ds.get("StudyInstanceUID", "") or ""),
        "series_uid": str(ds.get("SeriesInstanceUID", "") or ""),
        "series_number": _number("SeriesNumber", int),
        "sop_uid": sop_uid,
        "sop_class": sop_class,
        "modality": str(ds.get("Modality", "") or ""),
        "image_type": join_multi(ds.get("ImageType")).upper(),
        "body_part": str(ds.get("BodyPartExamined", "") or "").upper(),
        "kernel": join_multi(ds.get("ConvolutionKernel")),
        "manufacturer": str(ds.get("Manufacturer", "") or ""),
        "slice_thickness_mm": _number("SliceThickness"),
        "pixel_spacing": floats_of(ds.get("PixelSpacing"), 2),
        "rows": rows,
        "columns": columns,
        "n_frames": n_frames,
        "ipp": floats_of(ds.get("ImagePositionPatient"), 3),
        "iop": floats_of(ds.get("ImageOrientationPatient"), 6),
        "rescale_slope": _number("RescaleSlope"),
        "frames": frame_geometry(ds) if n_frames > 1 else None,
        "contrast": bool(str(ds.get("ContrastBolusAgent", "") or "").strip()),
        "date": date[:8],
        "expiratory": any(w in desc for w in ("EXPIR", " EXP ", "EXHAL")) or desc.startswith("EXP"),
        "gantry_tilt_deg": tilt,
    }


def read_volume_record(path: str, fmt: str) -> dict[str, Any]:
    """Header record of one NIfTI / NRRD / MHA file: its own header checks, then SimpleITK's geometry.

    The file is validated first (:func:`ctpheno.io.volcheck.validate_volume_file`: data size,
    non-finite voxels, spacing, direction, scale slope, detached data files in the header's folder);
    SimpleITK only reads the header of a file whose data files were accepted. ``problems`` holds
    the reason codes found, ``error`` a PHI-free message when the header is unusable.
    """
    import SimpleITK as sitk

    from ..io.remote import local_copies
    from ..io.volcheck import validate_volume_file

    record: dict[str, Any] = {"path": path, "kind": "volume", "fmt": fmt, "error": None, "problems": []}
    try:
        with local_copies([path]) as (local,):
            header, problems = validate_volume_file(local)
            record["problems"] = [code for code, _ in problems]
            record["detail"] = "; ".join(detail for _, detail in problems)
            blocking = {"outside_input_tree", "not_regular_file", "broken_link"}
            if header is None or blocking & set(record["problems"]):
                record["error"] = record["detail"] or "unreadable header"
                return record
            reader = sitk.ImageFileReader()
            reader.SetFileName(local)
            reader.ReadImageInformation()
            record.update(
                size_xyz=list(reader.GetSize()),
                spacing_xyz=list(reader.GetSpacing()),
                direction=list(reader.GetDirection()),
                n_components=int(reader.GetNumberOfComponents()),
            )
    except (RuntimeError, OSError) as err:
        record["error"] = "SimpleITK cannot read the header" if isinstance(err, RuntimeError) else os_reason(err)
    return record


SIDECAR_SUFFIXES = (
    ".md",
    ".txt",
    ".csv",
    ".tsv",
    ".json",
    ".yaml",
    ".yml",
    ".pdf",
    ".xml",
    ".html",
    ".htm",
    ".log",
    ".py",
    ".sh",
    ".xls",
    ".xlsx",
    ".raw",
    ".zraw",
    ".md5",
    ".sha256",
)
"""Documentation / sidecar files skipped silently (an ``.mhd``'s ``.raw`` is read through its header)."""


def read_file_record(path: str) -> dict[str, Any]:
    """Header record of any file: a volume file by extension, a sidecar skipped, else tried as DICOM."""
    if path.lower().endswith(SIDECAR_SUFFIXES) or path.rsplit("/", 1)[-1].upper() in ("LICENSE", "README"):
        return {"path": path, "kind": "skip", "error": "sidecar"}
    fmt = volume_format(path)
    if fmt is not None:
        return read_volume_record(path, fmt)
    return read_dicom_record(path)


def read_records(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Header records of a batch of files (the unit of work sent to one Dask task)."""
    return [read_file_record(p) for p in paths]
