"""Read a DICOM series — single-frame files or one multi-frame (enhanced) file — into HU.

Both kinds become a list of slices (position, orientation, pixel spacing, rescale, pixels) and
go through one :func:`stack_slices`, so an enhanced CT file gets exactly the geometry a series of
files gets: frames placed by their PlanePositionSequence, the slice spacing measured from those
positions (never assumed 1 mm: the median gap along the slice normal, the manifest's
``spacing_z_mm``), and the same refusals. A series is refused
(:class:`~ctpheno.errors.UnreadableSeriesError`) when

* ImageOrientationPatient differs between slices or is not orthonormal (a shear the volume's
  direction matrix could not represent);
* rows/columns or PixelSpacing differ between slices, or PixelSpacing is implausible;
* two slices share a position, one is missing, or the gaps vary beyond
  :data:`~ctpheno.io.geometry.SPACING_TOLERANCE` (:func:`~ctpheno.io.geometry.stack_spacing`);
* a RescaleSlope is 0 or not a number (the HU cannot be recovered), or floating-point pixel
  data hold NaN or infinity;
* a multi-frame file does not say where its frames are (no per-frame functional groups).

Messages name a slice by its file's base name, or — when the caller passes ``label`` (the
pipeline passes the manifest's PHI-free ``source``) — as ``<label> file k of n``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import UnreadableSeriesError
from ..vocab import HU_PADDING, PADDING_THRESHOLD_HU
from .geometry import iop_orthonormal, slice_normal, slice_order, spacing_plausible, stack_spacing
from .volume import Volume


def base_name(path: str) -> str:
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


def error_text(err: BaseException, path: str) -> str:
    """``Type: message`` of an exception with the file's path and folder names removed."""
    from .redact import scrub

    return scrub(f"{type(err).__name__}: {err}", str(path), token="…")


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


def join_multi(value: Any) -> str:
    """A DICOM value (single or multi-valued) as text, multiple values joined with a backslash."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


@dataclass
class Slice:
    """One image plane of a series, its geometry and how to get its stored values."""

    name: str
    ipp: npt.NDArray[np.float64] | None
    iop: list[float] | None
    pixel_spacing: tuple[float, float] | None
    rows: int
    columns: int
    slope: float
    intercept: float
    padding: int | None
    pixels: Callable[[], npt.NDArray[Any]]


def _number(value: Any, default: float) -> float:
    """A DS value as float; absent means ``default`` (a present 0 stays 0 and is refused later)."""
    if value is None or value == "":
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def floats_of(value: Any, n: int) -> list[float] | None:
    """A multi-valued DICOM attribute as ``n`` floats, or None when absent, malformed or of another length."""
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def _functional(item: Any, shared: Any, sequence: str, attribute: str) -> Any:
    """An attribute of a functional-group macro: the frame's own item first, then the shared one."""
    for group in (item, shared):
        if group is None:
            continue
        seq = group.get(sequence)
        if seq and attribute in seq[0]:
            return seq[0].get(attribute)
    return None


def frame_geometry(ds: Any) -> list[dict[str, Any]]:
    """Per-frame geometry of a multi-frame (enhanced) image from its functional groups.

    One dict per frame: ``ipp`` (PlanePositionSequence), ``iop`` (PlaneOrientationSequence),
    ``pixel_spacing`` (PixelMeasuresSequence), ``rescale_slope`` / ``rescale_intercept``
    (PixelValueTransformationSequence, else the top-level attributes); each taken from the
    frame's PerFrameFunctionalGroupsSequence item, else from SharedFunctionalGroupsSequence, else
    (orientation, spacing, rescale only) from the top level. A value the file does not give is None.
    An empty list when the per-frame groups do not describe exactly NumberOfFrames frames (a frame
    cannot be placed without its own item; this also bounds the work a forged NumberOfFrames causes).
    """
    n = int(ds.get("NumberOfFrames", 1) or 1)
    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per = ds.get("PerFrameFunctionalGroupsSequence") or []
    if len(per) != n:
        return []
    frames = []
    for k in range(n):
        item = per[k] if k < len(per) else None

        def pick(seq: str, attr: str, top: str | None = None, item: Any = item) -> Any:
            value = _functional(item, shared, seq, attr)
            return ds.get(top) if value is None and top else value

        slope = pick("PixelValueTransformationSequence", "RescaleSlope", "RescaleSlope")
        intercept = pick("PixelValueTransformationSequence", "RescaleIntercept", "RescaleIntercept")
        frames.append({
            "ipp": floats_of(pick("PlanePositionSequence", "ImagePositionPatient"), 3),
            "iop": floats_of(pick("PlaneOrientationSequence", "ImageOrientationPatient", "ImageOrientationPatient"), 6),
            "pixel_spacing": floats_of(pick("PixelMeasuresSequence", "PixelSpacing", "PixelSpacing"), 2),
            "rescale_slope": _optional_number(slope),
            "rescale_intercept": _optional_number(intercept),
        })
    return frames


def _optional_number(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _padding_value(ds: Any) -> int | None:
    value = ds.get("PixelPaddingValue")
    if value is None:
        return None
    value = int(value)
    if int(ds.get("PixelRepresentation", 0)) == 1 and value > 32767:
        value -= 65536
    return value


def _decode(ds: Any, name: str, path: str) -> npt.NDArray[Any]:
    try:
        return ds.pixel_array
    except Exception as err:  # decoder errors come in many types (missing plugin, corrupt stream)
        raise UnreadableSeriesError(
            f"{name}: pixel data cannot be decoded (transfer syntax "
            f"{ds.file_meta.get('TransferSyntaxUID', '?')}; {error_text(err, path)})"
        ) from None


def _file_slices(path: str, ds: Any, name: str) -> list[Slice]:
    """The slices of one file: itself, or each frame of a multi-frame file."""
    n = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    padding = _padding_value(ds)
    if n == 1:
        ps = floats_of(ds.get("PixelSpacing"), 2)
        ipp = floats_of(ds.get("ImagePositionPatient"), 3)
        return [Slice(name, np.asarray(ipp) if ipp else None, floats_of(ds.get("ImageOrientationPatient"), 6),
                      tuple(ps) if ps else None, rows, cols, _number(ds.get("RescaleSlope"), 1.0),
                      _number(ds.get("RescaleIntercept"), 0.0), padding, lambda: _decode(ds, name, path))]
    frames = frame_geometry(ds)
    if not frames or any(f["ipp"] is None for f in frames):
        raise UnreadableSeriesError(
            f"{name}: multi-frame file without per-frame positions (PlanePositionSequence in its "
            "functional groups); its frames cannot be placed"
        )
    cache: dict[str, npt.NDArray[Any]] = {}

    def frame(k: int) -> npt.NDArray[Any]:
        if "all" not in cache:
            cache["all"] = _decode(ds, name, path)
        return cache["all"][k]

    return [Slice(f"{name} frame {k + 1}", np.asarray(f["ipp"]), f["iop"],
                  tuple(f["pixel_spacing"]) if f["pixel_spacing"] else None, rows, cols,
                  1.0 if f["rescale_slope"] is None else f["rescale_slope"],
                  0.0 if f["rescale_intercept"] is None else f["rescale_intercept"], padding,
                  lambda k=k: frame(k)) for k, f in enumerate(frames)]


def _released() -> npt.NDArray[Any]:
    raise RuntimeError("slice pixels were already read")


def stack_slices(slices: Sequence[Slice], meta: dict[str, Any], *, single_slice_mm: float | None = None) -> Volume:
    """Check the slices' geometry (see the module docstring) and stack them into a Volume of HU.

    Each slice's pixels are read once and released. ``single_slice_mm`` is the slice spacing of
    a one-slice series (SpacingBetweenSlices or SliceThickness; 1 mm when absent).
    """
    s0 = slices[0]
    if s0.iop is None:
        raise UnreadableSeriesError(f"{s0.name}: no usable ImageOrientationPatient; cannot place the slice")
    if not iop_orthonormal(s0.iop):
        raise UnreadableSeriesError(f"{s0.name}: ImageOrientationPatient {s0.iop} is not orthonormal")
    r, c = np.asarray(s0.iop[:3], dtype=float), np.asarray(s0.iop[3:], dtype=float)
    normal = slice_normal(s0.iop)
    for s in slices:
        if s.ipp is None or s.iop is None:
            raise UnreadableSeriesError(
                f"{s.name}: missing ImagePositionPatient/ImageOrientationPatient; cannot place the slice")
        if not np.allclose(s.iop, s0.iop, atol=1e-4):
            raise UnreadableSeriesError(f"{s.name}: orientation {s.iop} differs from {s0.iop} in the same series")
        if (s.rows, s.columns) != (s0.rows, s0.columns):
            raise UnreadableSeriesError(
                f"{s.name}: {s.rows}x{s.columns} pixels, but other slices have {s0.rows}x{s0.columns}")
        if s.pixel_spacing is None or not spacing_plausible(s.pixel_spacing):
            raise UnreadableSeriesError(f"{s.name}: PixelSpacing {s.pixel_spacing} missing or implausible")
        if not np.allclose(s.pixel_spacing, s0.pixel_spacing, atol=1e-4):
            raise UnreadableSeriesError(f"{s.name}: PixelSpacing differs from the other slices'")
        if not np.isfinite(s.slope) or s.slope == 0 or not np.isfinite(s.intercept):
            raise UnreadableSeriesError(f"{s.name}: RescaleSlope {s.slope:g} / intercept {s.intercept:g} "
                                        "cannot give HU")
    pos = np.asarray([s.ipp for s in slices])
    order, d = slice_order(pos, normal)
    if len(d) > 1:
        step, problems = stack_spacing(d)
        if "duplicate_slices" in problems:
            k = int(np.argmin(np.diff(d)))
            raise UnreadableSeriesError(
                f"{slices[order[k]].name} and {slices[order[k + 1]].name} are two different slices at the same position")
        if problems:
            raise UnreadableSeriesError(
                f"{s0.name}: irregular slice positions ({', '.join(sorted(problems))}; median gap "
                f"{step if step is not None else float('nan'):.3g} mm); the series cannot be read as one volume")
        spacing_z = float(step)  # the median gap, as the manifest's spacing_z_mm (ingest validation)
    else:
        spacing_z = float(single_slice_mm or 1.0)
    rows, cols = s0.rows, s0.columns
    volume = np.empty((len(order), rows, cols), dtype=np.int16)
    for z, idx in enumerate(order):
        s = slices[idx]
        raw = s.pixels()
        s.pixels = _released  # drop the dataset (and its decoded pixels) as soon as it is used
        if raw.shape != (rows, cols):
            raise UnreadableSeriesError(
                f"{s.name}: pixel array has shape {raw.shape}; expected one {rows}x{cols} slice")
        if raw.dtype.kind == "f" and not np.all(np.isfinite(raw)):  # Float Pixel Data
            raise UnreadableSeriesError(f"{s.name}: NaN or infinite pixel values (non_finite_voxels)")
        volume[z] = dicom_slice_hu(raw, slope=s.slope, intercept=s.intercept, padding_value=s.padding)
    return Volume(
        array=volume,
        spacing_mm=(abs(spacing_z) or 1.0, s0.pixel_spacing[0], s0.pixel_spacing[1]),
        origin_mm=tuple(float(v) for v in pos[order[0]]),
        direction=tuple(np.column_stack([r, c, normal]).ravel()),
        meta=meta,
    )


def _is_regular(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def read_dicom_series(files: Sequence[str], *, skip_non_dicom: bool = False, label: str | None = None) -> Volume:
    """Read local DICOM files of one series (any order; or one multi-frame file) into a Volume of HU.

    ``label`` names the series in messages instead of its files' names (see the module docstring).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    def name_of(k: int, f: str) -> str:
        return f"{label} file {k + 1} of {len(files)}" if label else base_name(f)

    datasets: list[tuple[str, str, Any]] = []
    for k, f in enumerate(files):
        if not _is_regular(f):
            raise UnreadableSeriesError(f"{name_of(k, f)}: not a regular file (or missing); never opened")
        try:
            # pixel data is deferred (read from the file when decoded), so only one slice's
            # pixels are in memory at a time besides the output volume
            ds = pydicom.dcmread(f, defer_size="64 KB")
        except InvalidDicomError:
            if skip_non_dicom:
                continue
            raise UnreadableSeriesError(f"{name_of(k, f)}: not a DICOM file") from None
        except (OSError, EOFError, ValueError, KeyError, TypeError, AttributeError) as err:
            raise UnreadableSeriesError(f"{name_of(k, f)}: damaged DICOM file ({error_text(err, f)})") from None
        if "PixelData" not in ds and "FloatPixelData" not in ds:
            if skip_non_dicom:
                continue
            raise UnreadableSeriesError(
                f"{name_of(k, f)}: DICOM file without pixel data (SOP class {ds.get('SOPClassUID', '?')})")
        datasets.append((f, name_of(k, f), ds))
    if not datasets:
        first = (label or base_name(files[0])) if files else "-"
        raise UnreadableSeriesError(f"no DICOM image files among {len(files)} file(s) (first: {first})")
    series = {str(ds.get("SeriesInstanceUID", "") or "") for _, _, ds in datasets}
    if len(series) > 1:
        raise UnreadableSeriesError(
            f"the {len(datasets)} files hold {len(series)} different series; "
            f"pass one series' files (see ingest/sources.parquet)"
        )
    seen: set[str] = set()  # drop exact repeats of one instance (the same file listed twice)
    unique = []
    for f, name, ds in datasets:
        uid = str(ds.get("SOPInstanceUID", "") or "") or str(
            getattr(ds, "file_meta", {}).get("MediaStorageSOPInstanceUID", "") or "")
        if uid and uid in seen:
            continue
        seen.add(uid)
        unique.append((f, name, ds))
    multiframe = [u for u in unique if int(u[2].get("NumberOfFrames", 1) or 1) > 1]
    if multiframe and len(unique) > 1:
        raise UnreadableSeriesError(f"{multiframe[0][1]}: a multi-frame file mixed with other files of its series")
    ds0 = unique[0][2]
    meta = {
        "format": "dicom",
        "n_files": len(unique),
        "kernel": join_multi(ds0.get("ConvolutionKernel")),
        "manufacturer": str(ds0.get("Manufacturer", "") or ""),
        "slice_thickness_mm": float(ds0.get("SliceThickness", 0) or 0) or None,
    }
    single = float(ds0.get("SpacingBetweenSlices", 0) or ds0.get("SliceThickness", 0) or 0) or None
    slices = [s for f, name, ds in unique for s in _file_slices(f, ds, name)]
    del datasets, unique, ds0  # each dataset now lives only in its slice's pixel reader
    return stack_slices(slices, meta, single_slice_mm=single)
