"""Read one CT scan — a DICOM series or a NIfTI/NRRD/MHA file — into a :class:`Volume` of HU.

Every reader returns HU as ``int16`` in ``(z, y, x)`` with spacing, origin and
direction equal to SimpleITK's reading of the same input (ITK/LPS convention,
see :mod:`ctpheno.io.volume`).

DICOM series
------------
* Headers and pixels through pydicom; compressed transfer syntaxes (JPEG,
  JPEG-LS, JPEG 2000, RLE) decode through pylibjpeg / its openjpeg and libjpeg
  plugins. A multi-frame file is read with SimpleITK (GDCM).
* Slices are ordered by ImagePositionPatient projected on the slice normal
  :math:`n = r \\times c` (``r``, ``c``: the row and column direction cosines of
  ImageOrientationPatient), ascending — never by file name or InstanceNumber.
* The volume origin is the first slice's position, the direction matrix has
  columns ``(r, c, n)``, the in-plane spacing is PixelSpacing (row spacing =
  y, column spacing = x) and the slice spacing is the mean distance between
  consecutive positions along ``n``, :math:`(p_{N-1} - p_0)\\cdot n / (N-1)`.
* HU are computed per slice, :math:`HU = s_k \\cdot v + b_k` with each slice's
  own RescaleSlope ``s_k`` and RescaleIntercept ``b_k``; stored values equal to
  PixelPaddingValue and HU at or below -2000 (the -2000 / -3024 "outside the
  reconstruction circle" conventions) become :data:`HU_PADDING` (-1024, air).
* A file given twice (same SOPInstanceUID) is read once; two different slices
  at one position, mixed orientations or mixed rows/columns raise
  :class:`~ctpheno.errors.UnreadableSeriesError`.

Any path may be an fsspec URL (``s3://``, ``gs://``): the files are copied to
a temporary folder first. Error messages name the file by its base name only
(folder names in archives often hold patient identifiers).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UnreadableSeriesError
from .volume import Volume

HU_PADDING = -1024
"""HU written where the scanner marked padding (outside the field of view)."""
PADDING_THRESHOLD_HU = -2000
"""HU at or below this are padding markers (-2000, -3024, ...), never tissue."""

VOLUME_SUFFIXES: dict[str, str] = {
    ".nii.gz": "nifti",
    ".nii": "nifti",
    ".nrrd": "nrrd",
    ".nhdr": "nrrd",
    ".mha": "mha",
    ".mhd": "mha",
}
"""File-name endings of single-file volume formats and their format names."""
FORMATS = ("dicom", "nifti", "nrrd", "mha")


def volume_format(path: str | os.PathLike[str]) -> str | None:
    """The volume format named by a file's extension (``nifti|nrrd|mha``), or None."""
    low = str(path).lower()
    for suffix, fmt in VOLUME_SUFFIXES.items():
        if low.endswith(suffix):
            return fmt
    return None


def _name(path: str) -> str:
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def _err(err: BaseException, path: str) -> str:
    """``Type: message`` of an exception with the file's folder path removed (PHI in folder names)."""
    text = f"{type(err).__name__}: {err}"
    folder = str(path).replace("\\", "/").rsplit("/", 1)[0]
    return text.replace(folder, "…") if folder else text


def read_header(path: str | os.PathLike[str]) -> Any:
    """Read a DICOM file's header only (``stop_before_pixels``); raise if it is not DICOM.

    Returns a :class:`pydicom.Dataset`. Raises :class:`UnreadableSeriesError` naming the
    file when it is not DICOM or its header is damaged.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from ..ingest.remote import open_binary

    try:
        with open_binary(str(path)) as fh:
            return pydicom.dcmread(fh, stop_before_pixels=True)
    except InvalidDicomError as err:
        raise UnreadableSeriesError(f"{_name(str(path))}: not a DICOM file ({err})") from None
    except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UnreadableSeriesError(
            f"{_name(str(path))}: damaged DICOM header ({_err(err, str(path))})"
        ) from None


def read_scan(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, fmt: str | None = None
) -> Volume:
    """Read one scan into a :class:`Volume` of HU (int16, (z, y, x)).

    Parameters
    ----------
    paths
        One volume file (``.nii``, ``.nii.gz``, ``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``), a folder
        holding one DICOM series (files of any name or extension; non-DICOM files are ignored),
        or an explicit list of a series' slice files in any order (e.g. ``paths`` from
        ``ingest/sources.parquet``). Local paths or fsspec URLs.
    fmt
        ``dicom | nifti | nrrd | mha``; guessed from the extension (else DICOM) when None.

    Raises
    ------
    UnreadableSeriesError
        A file cannot be read or decoded, or the slices do not form one series.
    """
    from ..ingest.remote import is_url, list_files, local_copies

    if isinstance(paths, (str, os.PathLike)):
        items = [str(paths)]
    else:
        items = [str(p) for p in paths]
    if not items:
        raise ValueError("read_scan: paths is empty; give a file, a folder or a list of slice files")
    if fmt is not None and fmt not in FORMATS:
        raise ValueError(f"read_scan: fmt must be one of {FORMATS}; got {fmt!r}")
    if fmt is None:
        fmt = volume_format(items[0]) if len(items) == 1 else None
        fmt = fmt or "dicom"
    from_folder = False
    if fmt == "dicom" and len(items) == 1:
        p = items[0]
        if (is_url(p) and not p.lower().endswith(".dcm")) or (not is_url(p) and Path(p).is_dir()):
            listed = list_files(p)
            if not listed:
                raise UnreadableSeriesError(f"{_name(p)}: folder holds no files")
            items, from_folder = listed, True
    if fmt != "dicom" and len(items) != 1:
        raise ValueError(f"read_scan: a {fmt} scan is one file; got {len(items)} paths")
    with local_copies(items) as local:
        if fmt == "dicom":
            return read_dicom_series(local, skip_non_dicom=from_folder)
        return read_volume_file(local[0])


def read_volume_file(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI / NRRD / MHA file with SimpleITK into a Volume of int16 HU.

    Non-integer voxels are rounded; values outside the int16 range are clipped.
    """
    import SimpleITK as sitk

    path = str(path)
    if not Path(path).is_file():
        raise UnreadableSeriesError(f"{_name(path)}: file does not exist")
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as err:
        last = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        folder = path.replace("\\", "/").rsplit("/", 1)[0]
        raise UnreadableSeriesError(
            f"{_name(path)}: SimpleITK cannot read it ({last.replace(folder, '…') if folder else last})"
        ) from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnreadableSeriesError(
            f"{_name(path)}: has {image.GetNumberOfComponentsPerPixel()} components "
            f"per voxel; a CT volume has 1"
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise UnreadableSeriesError(
            f"{_name(path)}: is {image.GetDimension()}-D with size {image.GetSize()}; a CT volume is 3-D"
        )
    vol = Volume.from_sitk(image, format=volume_format(path) or "unknown")
    return vol.with_array(_to_int16(vol.array))


def _to_int16(arr: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    if arr.dtype == np.int16:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
    info = np.iinfo(np.int16)
    return np.clip(arr, info.min, info.max).astype(np.int16)


def slice_normal(iop: Sequence[float]) -> npt.NDArray[np.float64]:
    """Unit normal :math:`r \\times c` of an ImageOrientationPatient (6 values)."""
    v = np.asarray([float(x) for x in iop], dtype=float)
    if v.shape != (6,):
        raise ValueError(f"ImageOrientationPatient must have 6 values; got {list(iop)}")
    n = np.cross(v[:3], v[3:])
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise ValueError(f"ImageOrientationPatient {list(iop)} has parallel row and column vectors")
    return n / norm


def dicom_slice_hu(
    raw: npt.NDArray[Any], *, slope: float, intercept: float, padding_value: int | None = None
) -> npt.NDArray[np.int16]:
    """Stored values of one slice to HU (int16), padding to :data:`HU_PADDING`.

    .. math:: HU = \\mathrm{round}(s \\cdot v + b)

    ``padding_value`` is compared with the stored values ``v`` (before rescaling).
    """
    if slope == 1.0 and float(intercept).is_integer():
        hu = raw.astype(np.int32) + int(intercept)
    else:
        hu = np.rint(raw.astype(np.float64) * slope + intercept)
    pad = hu <= PADDING_THRESHOLD_HU
    if padding_value is not None:
        pad |= raw == padding_value
    out = np.clip(hu, -32768, 32767).astype(np.int16)
    out[pad] = HU_PADDING
    return out


def _padding_value(ds: Any) -> int | None:
    value = ds.get("PixelPaddingValue")
    if value is None:
        return None
    value = int(value)
    if int(ds.get("PixelRepresentation", 0)) == 1 and value > 32767:
        value -= 65536
    return value


def join_multi(value: Any) -> str:
    """A DICOM value (single or multi-valued) as text, multiple values joined with a backslash."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _sop_uid(ds: Any) -> str:
    uid = str(ds.get("SOPInstanceUID", "") or "")
    if not uid and getattr(ds, "file_meta", None) is not None:
        uid = str(ds.file_meta.get("MediaStorageSOPInstanceUID", "") or "")
    return uid


def read_dicom_series(files: Sequence[str], *, skip_non_dicom: bool = False) -> Volume:
    """Read local DICOM slice files (any order) into a Volume of HU; see the module docstring."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    datasets: list[tuple[str, Any]] = []
    for f in files:
        try:
            # pixel data is deferred (read from the file when decoded), so only one slice's
            # pixels are in memory at a time besides the output volume
            ds = pydicom.dcmread(f, defer_size="64 KB")
        except InvalidDicomError:
            if skip_non_dicom:
                continue
            raise UnreadableSeriesError(f"{_name(f)}: not a DICOM file") from None
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UnreadableSeriesError(f"{_name(f)}: damaged DICOM file ({_err(err, f)})") from None
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            if skip_non_dicom:
                continue
            raise UnreadableSeriesError(
                f"{_name(f)}: DICOM file without pixel data (SOP class {ds.get('SOPClassUID', '?')})"
            )
        datasets.append((f, ds))
    if not datasets:
        raise UnreadableSeriesError(
            f"no DICOM image files among {len(files)} file(s) (first: {_name(files[0]) if files else '-'})"
        )
    if len(datasets) == 1 and int(datasets[0][1].get("NumberOfFrames", 1) or 1) > 1:
        return _read_multiframe(datasets[0][0])
    series = {str(ds.get("SeriesInstanceUID", "") or "") for _, ds in datasets}
    if len(series) > 1:
        raise UnreadableSeriesError(
            f"the {len(datasets)} files hold {len(series)} different series; "
            f"pass one series' files (see ingest/sources.parquet)"
        )
    # drop exact repeats of one instance (the same file listed twice)
    seen: set[str] = set()
    unique = []
    for f, ds in datasets:
        uid = _sop_uid(ds)
        if uid and uid in seen:
            continue
        seen.add(uid)
        unique.append((f, ds))
    datasets = unique
    f0, ds0 = datasets[0]
    try:
        iop0 = [float(v) for v in ds0.ImageOrientationPatient]
        normal = slice_normal(iop0)
    except (AttributeError, ValueError, TypeError) as err:
        raise UnreadableSeriesError(f"{_name(f0)}: no usable ImageOrientationPatient ({err})") from None
    positions = []
    for f, ds in datasets:
        try:
            iop = [float(v) for v in ds.ImageOrientationPatient]
            ipp = np.asarray([float(v) for v in ds.ImagePositionPatient], dtype=float)
        except (AttributeError, ValueError, TypeError):
            raise UnreadableSeriesError(
                f"{_name(f)}: missing ImagePositionPatient/ImageOrientationPatient; cannot place the slice"
            ) from None
        if not np.allclose(iop, iop0, atol=1e-4):
            raise UnreadableSeriesError(
                f"{_name(f)}: orientation {iop} differs from {iop0} in the same series"
            )
        if (int(ds.Rows), int(ds.Columns)) != (int(ds0.Rows), int(ds0.Columns)):
            raise UnreadableSeriesError(
                f"{_name(f)}: {ds.Rows}x{ds.Columns} pixels, but other slices have {ds0.Rows}x{ds0.Columns}"
            )
        positions.append(ipp)
    pos = np.asarray(positions)
    dist = pos @ normal
    order = np.argsort(dist, kind="stable")
    dist_sorted = dist[order]
    if len(dist_sorted) > 1:
        gaps = np.diff(dist_sorted)
        if np.any(gaps < 1e-3):
            k = int(np.argmin(gaps))
            raise UnreadableSeriesError(
                f"{_name(datasets[order[k]][0])} and {_name(datasets[order[k + 1]][0])} "
                f"are two different slices at the same position"
            )
        spacing_z = float((dist_sorted[-1] - dist_sorted[0]) / (len(dist_sorted) - 1))
    else:
        spacing_z = float(ds0.get("SpacingBetweenSlices", 0) or ds0.get("SliceThickness", 0) or 1.0)
    try:
        row_mm, col_mm = (float(v) for v in ds0.PixelSpacing)
    except (AttributeError, ValueError, TypeError):
        raise UnreadableSeriesError(f"{_name(f0)}: no PixelSpacing") from None
    rows, cols = int(ds0.Rows), int(ds0.Columns)
    volume = np.empty((len(order), rows, cols), dtype=np.int16)
    for z, idx in enumerate(order):
        f, ds = datasets[idx]
        try:
            raw = ds.pixel_array
        except Exception as err:  # decoder errors come in many types (missing plugin, corrupt stream)
            raise UnreadableSeriesError(
                f"{_name(f)}: pixel data cannot be decoded "
                f"(transfer syntax {ds.file_meta.get('TransferSyntaxUID', '?')}; "
                f"{_err(err, f)})"
            ) from None
        if raw.shape != (rows, cols):
            raise UnreadableSeriesError(
                f"{_name(f)}: pixel array has shape {raw.shape}; expected one {rows}x{cols} slice"
            )
        volume[z] = dicom_slice_hu(
            raw,
            slope=float(ds.get("RescaleSlope", 1) or 1),
            intercept=float(ds.get("RescaleIntercept", 0) or 0),
            padding_value=_padding_value(ds),
        )
        datasets[idx] = (f, None)  # release the decoded slice
    direction = np.column_stack([iop0[:3], iop0[3:], normal])
    meta = {
        "format": "dicom",
        "n_files": len(datasets),
        "kernel": join_multi(ds0.get("ConvolutionKernel")),
        "manufacturer": str(ds0.get("Manufacturer", "") or ""),
        "slice_thickness_mm": float(ds0.get("SliceThickness", 0) or 0) or None,
    }
    return Volume(
        array=volume,
        spacing_mm=(abs(spacing_z) or 1.0, row_mm, col_mm),
        origin_mm=tuple(float(v) for v in pos[order[0]]),
        direction=tuple(direction.ravel()),
        meta=meta,
    )


def _read_multiframe(path: str) -> Volume:
    """A multi-frame (enhanced) CT file through SimpleITK/GDCM, which applies the rescale."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(path)
    except RuntimeError as err:
        raise UnreadableSeriesError(
            f"{_name(path)}: multi-frame DICOM cannot be read ({_err(err, path)})"
        ) from None
    if image.GetDimension() != 3:
        raise UnreadableSeriesError(f"{_name(path)}: multi-frame file reads as {image.GetDimension()}-D")
    vol = Volume.from_sitk(image, format="dicom", n_files=1)
    arr = _to_int16(vol.array)
    arr[arr <= PADDING_THRESHOLD_HU] = HU_PADDING
    return vol.with_array(arr)
