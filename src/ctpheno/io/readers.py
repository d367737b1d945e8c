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
  at one position, a missing slice, irregular gaps, mixed or non-orthonormal
  orientations, mixed rows/columns, implausible PixelSpacing or a RescaleSlope
  of 0 raise :class:`~ctpheno.errors.UnreadableSeriesError`.
* A multi-frame (enhanced) file is read with pydicom like a series: each frame
  is placed by its functional groups' position (see :mod:`ctpheno.io.dicomseries`).

Volume files
------------
NIfTI / NRRD / MetaImage files are checked before SimpleITK reads them
(:func:`ctpheno.io.volcheck.validate_volume_file`): the data size must match the
header (compressed streams read to the end), the spacing be plausible, the
direction orthonormal, the NIfTI scaling defined, and a detached header's data
files must lie in the header's folder (or the given ``tree``), as at ingest — never
elsewhere on the host. Floating-point voxels that are NaN or infinite are refused (counted in the
file: ITK's NIfTI reader silently turns them into 0).

Any path may be an fsspec URL (``s3://``, ``gs://``): the files are copied to
a temporary folder first. Error messages name the file by its base name only
(folder names in archives often hold patient identifiers), or by ``label``
when one is given (the pipeline passes the manifest's PHI-free ``source``).
Only regular files are opened.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UnreadableSeriesError
from ..vocab import HU_PADDING, PADDING_THRESHOLD_HU
from .dicomseries import dicom_slice_hu, join_multi, read_dicom_series
from .volume import Volume

__all__ = ["HU_PADDING", "PADDING_THRESHOLD_HU", "FORMATS", "VOLUME_SUFFIXES", "dicom_slice_hu", "join_multi",
           "read_dicom_series", "read_header", "read_scan", "read_volume_file", "volume_format"]

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
    """``Type: message`` of an exception with the file's path and folder names removed (PHI)."""
    from .dicomseries import error_text

    return error_text(err, path)


def read_header(path: str | os.PathLike[str]) -> Any:
    """Read a DICOM file's header only (``stop_before_pixels``); raise if it is not DICOM.

    Returns a :class:`pydicom.Dataset`. Raises :class:`UnreadableSeriesError` naming the
    file when it is not DICOM or its header is damaged.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .remote import open_binary

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
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], *, fmt: str | None = None,
    label: str | None = None, tree: str | None = None,
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
    label
        Names the scan in error messages instead of its files (e.g. the manifest's ``source``).
    tree
        Folder a detached volume header's data files may come from (default: the header's folder).

    Raises
    ------
    UnreadableSeriesError
        A file cannot be read or decoded, or the slices do not form one series.
    """
    from .fs import is_url
    from .remote import list_files, local_copies, stored_path

    if isinstance(paths, (str, os.PathLike)):
        items = [stored_path(str(paths))]
    else:
        items = [stored_path(str(p)) for p in paths]
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
                raise UnreadableSeriesError(f"{label or _name(p)}: folder holds no (regular) files")
            items, from_folder = listed, True
    if fmt != "dicom" and len(items) != 1:
        raise ValueError(f"read_scan: a {fmt} scan is one file; got {len(items)} paths")
    with local_copies(items) as local:
        if fmt == "dicom":
            return read_dicom_series(local, skip_non_dicom=from_folder, label=label)
        return read_volume_file(local[0], label=label, tree=tree if local[0] == items[0] else None)


def read_volume_file(path: str | os.PathLike[str], *, label: str | None = None, tree: str | None = None) -> Volume:
    """Read a NIfTI / NRRD / MHA file with SimpleITK into a Volume of int16 HU, after checking it.

    The file is validated first (see the module docstring; ``tree`` bounds where a detached
    header's data may lie, default the header's folder). Non-integer voxels are rounded;
    values outside the int16 range are clipped; NaN or infinite voxels are refused.

    Raises
    ------
    VolumeFileError
        The file fails a check; its ``code`` is the ingest reason code.
    """
    import SimpleITK as sitk

    from .volcheck import check_volume_file
    from .volheaders import VolumeFileError

    path = str(path)
    name = label or _name(path)
    if not Path(path).is_file():
        raise UnreadableSeriesError(f"{name}: file does not exist (or is not a regular file)")
    # NaN/inf are counted in the file (only floating-point data are read for it): ITK's NIfTI
    # reader turns them into 0, so the array it returns cannot show them
    check_volume_file(path, name=name, tree=tree)
    try:
        image = sitk.ReadImage(path)
    except RuntimeError as err:
        last = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
        from .redact import scrub

        raise UnreadableSeriesError(f"{name}: SimpleITK cannot read it ({scrub(last, path, token='…')})") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise UnreadableSeriesError(
            f"{name}: has {image.GetNumberOfComponentsPerPixel()} components per voxel; a CT volume has 1"
        )
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3:
        raise UnreadableSeriesError(
            f"{name}: is {image.GetDimension()}-D with size {image.GetSize()}; a CT volume is 3-D"
        )
    vol = Volume.from_sitk(image, format=volume_format(path) or "unknown")
    if np.issubdtype(vol.array.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(vol.array)))
        if bad:
            raise VolumeFileError("non_finite_voxels", f"{name}: {bad} voxel(s) are NaN or infinite (non_finite_voxels)")
    return vol.with_array(_to_int16(vol.array))


def _to_int16(arr: npt.NDArray[Any]) -> npt.NDArray[np.int16]:
    if arr.dtype == np.int16:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        arr = np.rint(arr)
    info = np.iinfo(np.int16)
    return np.clip(arr, info.min, info.max).astype(np.int16)
