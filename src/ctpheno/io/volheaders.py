"""Headers of single-file volume formats read without SimpleITK: NIfTI-1/2, NRRD, MetaImage.

SimpleITK reads these formats forgivingly: a pixdim of 0 becomes 1 mm, a NIfTI scale slope of
0 is applied as 1 (with its intercept), and a detached header (``.nhdr`` ``data file:``,
``.mhd`` ``ElementDataFile``) is followed wherever it points. :func:`read_volume_header`
therefore parses the header itself — bounded to :data:`MAX_HEADER_BYTES`, opening regular
files only — into a :class:`VolumeHeader` that says where the voxel bytes are and what the
header claims, so that :mod:`ctpheno.io.volcheck` can validate both before SimpleITK reads
anything. Only the header file is opened here; data files are located, never opened.

Formats: NIfTI-1 and NIfTI-2 (``.nii``, ``.nii.gz``; nibabel parses the header block), NRRD
(``.nrrd`` attached, ``.nhdr`` detached, encodings raw/gzip/bzip2/ascii; ``data file`` as one
name, ``LIST`` or a ``%d`` pattern), MetaImage (``.mha`` / ``.mhd``; ``ElementDataFile`` as
``LOCAL``, one name, ``LIST`` or a pattern; ``CompressedData`` as zlib).
"""

from __future__ import annotations

import gzip
import io
import os
import re
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..errors import UnreadableSeriesError

MAX_HEADER_BYTES = 1 << 20
"""Longest header read (1 MiB); real NRRD/MetaImage headers are a few hundred bytes."""
MAX_DATA_FILES = 100_000
"""Most data files a detached header may list (one per slice of a very long series)."""

NRRD_TYPES: dict[str, str] = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int",
                     "int64", "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}
"""NRRD ``type`` names (NRRD0005 specification) -> NumPy type codes."""
NRRD_ENCODINGS = {"raw": "raw", "txt": "ascii", "text": "ascii", "ascii": "ascii", "gz": "gzip",
                  "gzip": "gzip", "bz2": "bzip2", "bzip2": "bzip2"}
NIFTI_UNIT_MM = {"meter": 1000.0, "mm": 1.0, "micron": 1e-3}
"""Millimetres per NIfTI spatial unit (``xyzt_units``); an unknown unit is taken as mm, as ITK does."""
MET_TYPES = {"MET_CHAR": "i1", "MET_UCHAR": "u1", "MET_SHORT": "i2", "MET_USHORT": "u2", "MET_INT": "i4",
             "MET_UINT": "u4", "MET_LONG": "i4", "MET_ULONG": "u4", "MET_LONG_LONG": "i8",
             "MET_ULONG_LONG": "u8", "MET_FLOAT": "f4", "MET_DOUBLE": "f8"}
"""MetaImage ``ElementType`` -> NumPy type codes (MetaIO's ``MET_ValueTypeSize``)."""


class VolumeFileError(UnreadableSeriesError):
    """A volume file that must not be read; ``code`` is its reason code (:mod:`ctpheno.ingest.reasons`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class VolumeHeader:
    """What a volume file's header claims, and where its voxel bytes are.

    ``shape`` is in file order (fastest axis first: x, y, z[, ...]), components included.
    ``spacing`` and ``axes`` cover the spatial axes only (``axes``: one column per axis,
    scaled by the spacing as the header writes it, None when the header gives none).
    """

    format: str
    shape: tuple[int, ...]
    dtype: np.dtype
    spacing: tuple[float, ...] | None
    axes: npt.NDArray[np.float64] | None
    data_files: tuple[str, ...]
    encoding: str = "raw"
    """raw | gzip | bzip2 | zlib | ascii."""
    file_offset: int = 0
    """Bytes skipped in each data file before decoding (an attached header's length); -1: the data
    are the last bytes of the file."""
    data_offset: int = 0
    """Bytes skipped in the decoded stream of each file (NIfTI ``vox_offset``, NRRD ``byte skip``)."""
    line_skip: int = 0
    """Lines skipped in each data file before anything else (NRRD ``line skip``)."""
    slope: float | None = None
    intercept: float | None = None

    @property
    def n_values(self) -> int:
        return int(np.prod(self.shape, dtype=object))

    @property
    def n_bytes(self) -> int:
        return self.n_values * self.dtype.itemsize


def _open_header(path: str) -> io.BufferedIOBase:
    from .remote import open_regular

    return open_regular(path)


def _text_lines(path: str, *, stop_at_blank: bool) -> tuple[list[str], int]:
    """Header lines and the header's length in bytes (through the blank line when ``stop_at_blank``)."""
    with _open_header(path) as fh:
        block = fh.read(MAX_HEADER_BYTES + 1)
    if stop_at_blank:
        end = block.find(b"\n\n")
        end_crlf = block.find(b"\r\n\r\n")
        if end_crlf >= 0 and (end < 0 or end_crlf < end):
            length = end_crlf + 4
        elif end >= 0:
            length = end + 2
        else:
            raise VolumeFileError("unreadable_file", "header has no end (no blank line within 1 MiB)")
        block = block[:length]
    elif len(block) > MAX_HEADER_BYTES:
        raise VolumeFileError("unreadable_file", "detached header is longer than 1 MiB")
    else:
        length = len(block)
    return block.decode("latin-1").splitlines(), length


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.replace("(", " ").replace(")", " ").replace(",", " ").split()]


def _expand(value: str, folder: str, rest: list[str]) -> tuple[str, ...]:
    """Data file names of a ``data file`` / ``ElementDataFile`` value: one name, LIST or a pattern."""
    parts = value.split()
    if parts and parts[0].upper() == "LIST":
        names = [ln.strip() for ln in rest if ln.strip()]
    elif len(parts) >= 4 and "%" in parts[0]:
        try:
            lo, hi, step = int(parts[1]), int(parts[2]), int(parts[3])
        except ValueError:
            raise VolumeFileError("unreadable_file", "data file pattern with non-integer range") from None
        if step == 0 or (hi - lo) // step + 1 > MAX_DATA_FILES or (hi - lo) * step < 0:
            raise VolumeFileError("unreadable_file", "data file pattern with an invalid or huge range")
        try:
            names = [parts[0] % i for i in range(lo, hi + (1 if step > 0 else -1), step)]
        except (TypeError, ValueError):
            raise VolumeFileError("unreadable_file", "data file pattern is not a printf pattern") from None
    else:
        names = [value.strip()]
    if not names or len(names) > MAX_DATA_FILES:
        raise VolumeFileError("unreadable_file", "detached header lists no (or too many) data files")
    return tuple(os.path.join(folder, n) for n in names)


def _nifti(path: str) -> VolumeHeader:
    import nibabel as nib

    from .remote import open_regular

    gz = path.lower().endswith(".gz")
    try:
        with open_regular(path) as raw:
            fh = gzip.GzipFile(fileobj=raw) if gz else raw
            block = fh.read(540)
    except EOFError:
        raise VolumeFileError("truncated_file", "gzip stream ends inside the NIfTI header") from None
    except (gzip.BadGzipFile, zlib.error):
        raise VolumeFileError("unreadable_file", "not a valid gzip stream") from None
    size = int.from_bytes(block[:4], "little") if len(block) >= 4 else 0
    size_be = int.from_bytes(block[:4], "big") if len(block) >= 4 else 0
    klass = nib.Nifti2Header if 540 in (size, size_be) else nib.Nifti1Header
    if len(block) < klass.sizeof_hdr:
        raise VolumeFileError("truncated_file", "file ends inside its NIfTI header")
    try:
        hdr = klass.from_fileobj(io.BytesIO(block), check=False)
        magic = bytes(hdr["magic"]).rstrip(b"\0")
        if magic not in (b"n+1", b"n+2"):
            raise ValueError(f"magic {magic!r}")
        shape = tuple(int(v) for v in hdr.get_data_shape())
        dtype = hdr.get_data_dtype()
        offset = int(hdr.get_data_offset())
    except Exception as err:  # noqa: BLE001 - nibabel raises many types on garbage headers
        raise VolumeFileError("unreadable_file", f"not a valid single-file NIfTI header ({type(err).__name__})") from None
    unit = NIFTI_UNIT_MM.get(hdr.get_xyzt_units()[0], 1.0)  # ITK converts meters and microns to mm
    pixdim = [float(v) * unit for v in hdr["pixdim"][1:4]]
    axes = None
    if int(hdr["sform_code"]) > 0:
        axes = np.asarray(hdr.get_sform(), float)[:3, :3]
    elif int(hdr["qform_code"]) > 0:
        axes = np.asarray(hdr.get_qform(), float)[:3, :3]
    return VolumeHeader("nifti", shape, dtype, tuple(pixdim[: min(3, len(shape))]), axes, (path,),
                        encoding="gzip" if gz else "raw", data_offset=offset,
                        slope=float(hdr["scl_slope"]), intercept=float(hdr["scl_inter"]))


def _nrrd(path: str) -> VolumeHeader:
    detached = path.lower().endswith(".nhdr")
    lines, length = _text_lines(path, stop_at_blank=not detached)
    if not lines or not lines[0].startswith("NRRD000"):
        raise VolumeFileError("unreadable_file", "not a NRRD header (no NRRD000x magic)")
    fields: dict[str, str] = {}
    rest: list[str] = []
    for k, line in enumerate(lines[1:], start=1):
        if not line.strip() or line.startswith("#") or ":=" in line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise VolumeFileError("unreadable_file", "NRRD header line without a field name")
        key = " ".join(key.strip().lower().split())
        fields["data file" if key == "datafile" else key] = value.strip()
        if key in ("data file", "datafile"):
            rest = lines[k + 1:]
            break
    try:
        sizes = tuple(int(v) for v in fields["sizes"].split())
        code = NRRD_TYPES[" ".join(fields["type"].lower().split())]
    except KeyError as err:
        raise VolumeFileError("unreadable_file", f"NRRD header lacks or misstates {err}") from None
    except ValueError:
        raise VolumeFileError("unreadable_file", "NRRD sizes are not integers") from None
    encoding = NRRD_ENCODINGS.get(fields.get("encoding", "").lower())
    if encoding is None:
        raise VolumeFileError("unreadable_file", f"unsupported NRRD encoding {fields.get('encoding', '')!r}")
    dtype = np.dtype(code).newbyteorder(">" if fields.get("endian", "little").lower() == "big" else "<")
    axes, spacing = _nrrd_geometry(fields, len(sizes))
    if "data file" in fields:
        files = _expand(fields["data file"], os.path.dirname(path), rest)
        file_offset = 0
    elif detached:
        raise VolumeFileError("unreadable_file", "detached NRRD header (.nhdr) without a data file field")
    else:
        files, file_offset = (path,), length
    try:
        skip = int(fields.get("byte skip", "0"))
        line_skip = int(fields.get("line skip", "0"))
    except ValueError:
        raise VolumeFileError("unreadable_file", "NRRD byte/line skip is not an integer") from None
    if skip < -1 or line_skip < 0 or (skip == -1 and encoding != "raw"):
        raise VolumeFileError("unreadable_file", "NRRD byte skip -1 is only valid for raw encoding")
    if skip == -1:
        file_offset, skip = -1, 0
    return VolumeHeader("nrrd", sizes, dtype, spacing, axes, files, encoding=encoding, file_offset=file_offset,
                        data_offset=skip, line_skip=line_skip)


def _nrrd_geometry(fields: dict[str, str], ndim: int) -> tuple[npt.NDArray[np.float64] | None, tuple[float, ...] | None]:
    """Axis vectors (columns) and spacings of the spatial axes, from space directions or spacings."""
    if "space directions" in fields:
        vectors = []
        for vec, _none in re.findall(r"\(([^)]*)\)|(none)", fields["space directions"], flags=re.IGNORECASE):
            if not vec:
                continue
            try:
                vectors.append(_floats(vec))
            except ValueError:
                raise VolumeFileError("unreadable_file", "NRRD space directions are not numbers") from None
        if not vectors or len({len(v) for v in vectors}) != 1:
            raise VolumeFileError("unreadable_file", "NRRD space directions are malformed")
        axes = np.asarray(vectors, float).T
        return axes, tuple(float(v) for v in np.linalg.norm(axes, axis=0))
    if "spacings" in fields:
        vals = [float(v) for v in fields["spacings"].replace("nan", "NaN").split() if v.lower() != "nan"]
        return None, tuple(vals[:3]) if vals else None
    return None, None


def _metaimage(path: str) -> VolumeHeader:
    lines, _ = _text_lines(path, stop_at_blank=False) if path.lower().endswith(".mhd") else (None, 0)
    if lines is None:  # .mha: the header ends at ElementDataFile; read just enough of the file
        with _open_header(path) as fh:
            block = fh.read(MAX_HEADER_BYTES)
        lines = block.decode("latin-1").splitlines(keepends=True)
    fields: dict[str, str] = {}
    length = 0
    rest: list[str] = []
    for k, line in enumerate(lines):
        length += len(line.encode("latin-1"))
        key, sep, value = line.partition("=")
        if not sep:
            if line.strip():
                raise VolumeFileError("unreadable_file", "MetaImage header line without '='")
            continue
        key = key.strip().lower()
        fields[key] = value.strip()
        if key == "elementdatafile":
            rest = [ln.strip() for ln in lines[k + 1:]]
            break
    else:
        raise VolumeFileError("unreadable_file", "MetaImage header has no ElementDataFile line")
    try:
        shape = tuple(int(v) for v in fields["dimsize"].split())
        etype = fields["elementtype"].upper().removesuffix("_ARRAY")
        code = MET_TYPES[etype]
        channels = int(fields.get("elementnumberofchannels", "1"))
        header_size = int(fields.get("headersize", "0"))
    except (KeyError, ValueError) as err:
        raise VolumeFileError("unreadable_file", f"MetaImage header lacks or misstates {err}") from None
    msb = fields.get("binarydatabyteordermsb", fields.get("elementbyteordermsb", "False")).lower() == "true"
    dtype = np.dtype(code).newbyteorder(">" if msb else "<")
    spacing_text = fields.get("elementspacing") or fields.get("elementsize")
    spacing = tuple(_floats(spacing_text)) if spacing_text else None
    matrix = fields.get("transformmatrix") or fields.get("rotation") or fields.get("orientation")
    axes = None
    if matrix:
        vals = _floats(matrix)
        n = int(round(len(vals) ** 0.5))
        if n * n != len(vals):
            raise VolumeFileError("unreadable_file", "MetaImage TransformMatrix is not square")
        axes = np.asarray(vals, float).reshape(n, n).T
    value = fields["elementdatafile"]
    if value.upper() == "LOCAL":
        if path.lower().endswith(".mhd"):
            raise VolumeFileError("unreadable_file", "a .mhd header must name its data file (not LOCAL)")
        files, file_offset = (path,), length
    else:
        files, file_offset = _expand(value, os.path.dirname(path), rest), 0
    if header_size == -1:
        file_offset = -1
    elif header_size > 0:
        file_offset += header_size
    if fields.get("compresseddata", "false").lower() == "true":
        encoding = "zlib"
        if file_offset == -1:
            raise VolumeFileError("unreadable_file", "HeaderSize -1 is not valid for compressed MetaImage data")
    elif fields.get("binarydata", "true").lower() == "false":
        encoding = "ascii"
    else:
        encoding = "raw"
    return VolumeHeader("mha", shape + ((channels,) if channels > 1 else ()), dtype, spacing, axes, files,
                        encoding=encoding, file_offset=file_offset)


def read_volume_header(path: str) -> VolumeHeader:
    """Parse the header of a ``.nii[.gz]``, ``.nrrd``/``.nhdr`` or ``.mha``/``.mhd`` file.

    Raises
    ------
    VolumeFileError
        The header is damaged, of an unsupported kind, or the file is not a regular file.
    """
    low = str(path).lower()
    try:
        if low.endswith((".nii", ".nii.gz")):
            return _nifti(str(path))
        if low.endswith((".nrrd", ".nhdr")):
            return _nrrd(str(path))
        if low.endswith((".mha", ".mhd")):
            return _metaimage(str(path))
    except VolumeFileError:
        raise
    except OSError as err:
        from .remote import NotRegularFileError, os_reason

        code = "not_regular_file" if isinstance(err, NotRegularFileError) else "unreadable_file"
        raise VolumeFileError(code, f"header cannot be read ({os_reason(err)})") from None
    raise ValueError("read_volume_header: not a .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file name")
