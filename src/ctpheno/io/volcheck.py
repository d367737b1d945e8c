"""Is a NIfTI / NRRD / MetaImage file safe to read? Checks run before SimpleITK sees it.

:func:`validate_volume_file` returns reason codes (:mod:`ctpheno.ingest.reasons`) for:

* ``outside_input_tree``: a detached header's data file (every name of a ``LIST`` or pattern)
  resolves outside the header's own folder (and its subfolders) — refused, never opened. The
  header's folder rather than the whole input, so that ingest and the reader (which knows no
  input) apply the same rule and a scan accepted at ingest is never refused when read;
* ``not_regular_file`` / ``broken_link`` / ``unreadable_file``: a data file that is a FIFO,
  device or dangling link, or cannot be opened;
* ``truncated_file`` / ``data_size_mismatch``: the decoded voxel bytes are fewer / more than the
  header declares (:math:`\\prod \\mathrm{sizes} \\times` bytes per value). Compressed streams
  are read to their end — a gzip/zlib/bzip2 stream cut short is truncated, not zero-filled —
  and reading stops one byte past the declared size, so a decompression bomb costs nothing;
* ``non_finite_voxels``: NaN or ±inf among floating-point voxels (counted while streaming);
* ``missing_geometry``, ``implausible_spacing``, ``non_orthonormal_direction``,
  ``zero_scale_slope``, ``not_3d``: header claims that would be read as something else
  (see :mod:`ctpheno.io.geometry`). A NIfTI ``scl_slope`` of 0 (or NaN) with a zero
  intercept means "unscaled" (NIfTI-1 standard); with a non-zero intercept ITK would apply it
  with a slope of 1, so the file is refused.
"""

from __future__ import annotations

import bz2
import gzip
import os
import zlib
from collections.abc import Iterator
from typing import IO

import numpy as np

from .geometry import SPACING_RANGE_MM, axes_orthogonal, spacing_plausible
from .redact import scrub
from .volheaders import VolumeFileError, VolumeHeader, read_volume_header

CHUNK_BYTES = 1 << 22
"""Bytes decoded per step while streaming a data file (4 MiB)."""
MAX_LINE = 1 << 16
"""Longest line skipped by NRRD ``line skip``."""

Problem = tuple[str, str]
"""(reason code, PHI-free detail)."""


def header_problems(h: VolumeHeader, *, spacing_range_mm: tuple[float, float] = SPACING_RANGE_MM) -> list[Problem]:
    """Problems of the header's own claims (no data read)."""
    out: list[Problem] = []
    if any(s <= 0 for s in h.shape):
        out.append(("not_3d", f"a dimension of size 0 in {h.shape}"))
    if h.spacing is None:
        out.append(("missing_geometry", "the header gives no voxel spacing (it would be read as 1 mm)"))
    elif not spacing_plausible(h.spacing, range_mm=spacing_range_mm):
        shown = ", ".join(f"{v:.4g}" for v in h.spacing)
        out.append(("implausible_spacing", f"voxel spacing ({shown}) mm outside {spacing_range_mm[0]}-"
                                           f"{spacing_range_mm[1]} mm"))
    if h.axes is not None and not axes_orthogonal(h.axes):
        out.append(("non_orthonormal_direction", "the header's axis directions are not orthogonal (sheared)"))
    if h.slope is not None:
        slope, inter = h.slope, h.intercept if h.intercept is not None else 0.0
        unscaled = not np.isfinite(slope) or slope == 0
        if (unscaled and np.isfinite(inter) and inter != 0) or (not unscaled and not np.isfinite(inter)):
            out.append(("zero_scale_slope", f"scale slope {slope:g} with intercept {inter:g}: the "
                                            "scaling is undefined (ITK would apply a slope of 1)"))
    return out


def data_file_problems(h: VolumeHeader, header_path: str, tree: str) -> list[Problem]:
    """Data files outside ``tree`` or not regular files; nothing is opened."""
    from .remote import classify_entry, is_inside

    for f in h.data_files:
        if os.path.realpath(f) == os.path.realpath(header_path):
            continue
        if not is_inside(f, tree):
            return [("outside_input_tree", f"the header's data file lies outside its folder "
                                           f"({len(h.data_files)} data file(s) named); refused, not opened")]
    for f in h.data_files:
        if os.path.realpath(f) != os.path.realpath(header_path):
            problem = classify_entry(f, tree)
            if problem is not None:
                code = "unreadable_file" if problem[0] == "outside_input_tree" else problem[0]
                return [(code, f"data file: {problem[1]}")]
    return []


def _skip(stream: IO[bytes], n: int) -> int:
    """Read and drop ``n`` bytes; returns how many were there."""
    left = n
    while left > 0:
        got = stream.read(min(left, CHUNK_BYTES))
        if not got:
            break
        left -= len(got)
    return n - left


def _zlib_chunks(fh: IO[bytes]) -> Iterator[bytes]:
    d = zlib.decompressobj()
    while True:
        raw = fh.read(CHUNK_BYTES)
        if not raw:
            break
        yield d.decompress(raw)
        if d.eof:
            return
    if not d.eof:
        raise EOFError("zlib stream ended before its end-of-stream marker")


def _chunks(fh: IO[bytes], encoding: str) -> Iterator[bytes]:
    if encoding == "zlib":
        yield from _zlib_chunks(fh)
        return
    stream: IO[bytes] = {"gzip": lambda: gzip.GzipFile(fileobj=fh), "bzip2": lambda: bz2.BZ2File(fh),
                         "raw": lambda: fh}[encoding]()
    while True:
        got = stream.read(CHUNK_BYTES)
        if not got:
            return
        yield got


class _Counter:
    """Counts decoded bytes (up to a budget) and non-finite floating-point values."""

    def __init__(self, dtype: np.dtype, budget: int, check_finite: bool) -> None:
        self.dtype, self.budget = dtype, budget
        self.check = check_finite and dtype.kind == "f"
        self.n = self.nonfinite = 0
        self._carry = b""

    def feed(self, data: bytes) -> bool:
        """Add bytes; False once more than the budget was seen (stop reading)."""
        take = data[: max(self.budget + 1 - self.n, 0)]
        self.n += len(take)
        if self.check:
            buf = self._carry + take
            k = len(buf) - len(buf) % self.dtype.itemsize
            self.nonfinite += int(np.count_nonzero(~np.isfinite(np.frombuffer(buf[:k], self.dtype))))
            self._carry = buf[k:]
        return self.n <= self.budget


def _count_ascii(fh: IO[bytes], budget: int) -> tuple[int, int]:
    """(values, non-finite values) of whitespace-separated text, stopping past ``budget`` values."""
    n = bad = 0
    carry = ""
    while n <= budget:
        raw = fh.read(CHUNK_BYTES)
        text = carry + raw.decode("latin-1")
        tokens = text.split()
        carry = tokens.pop() if raw and tokens and not text[-1].isspace() else ""
        if tokens:
            try:
                vals = np.asarray(tokens, dtype=float)
            except ValueError:
                raise VolumeFileError("unreadable_file", "ASCII voxel data holds a non-number") from None
            n += vals.size
            bad += int(np.count_nonzero(~np.isfinite(vals)))
        if not raw:
            break
    return n, bad


def count_data(h: VolumeHeader, *, check_finite: bool) -> tuple[int, int]:
    """``(decoded size, non-finite values)`` of the voxel data; the size is in bytes (values for ASCII).

    Reading stops one unit past the declared size. Raises :class:`VolumeFileError` for a
    compressed stream that is cut short (``truncated_file``) or corrupt (``unreadable_file``).
    """
    from .remote import open_regular

    per_file = -(-h.n_bytes // len(h.data_files))
    ascii_ = h.encoding == "ascii"
    budget = h.n_values if ascii_ else h.n_bytes
    total = nonfinite = 0
    counter = _Counter(h.dtype, h.n_bytes, check_finite)
    for f in h.data_files:
        with open_regular(f) as fh:
            size = os.fstat(fh.fileno()).st_size
            if h.file_offset == -1:  # raw data at the end of the file
                fh.seek(max(size - per_file, 0))
            elif h.file_offset:
                fh.seek(h.file_offset)
            for _ in range(h.line_skip):
                fh.readline(MAX_LINE)
            if ascii_:
                n, bad = _count_ascii(fh, budget - total)
                total, nonfinite = total + n, nonfinite + bad
                continue
            if h.encoding == "raw" and not counter.check and h.line_skip == 0 and h.file_offset != -1:
                counter.n += max(size - h.file_offset - h.data_offset, 0)  # no need to read: stat it
                continue
            try:
                chunks = _chunks(fh, h.encoding)
                skipped = 0
                for data in chunks:
                    if skipped < h.data_offset:
                        drop = min(h.data_offset - skipped, len(data))
                        skipped += drop
                        data = data[drop:]
                    if data and not counter.feed(data):
                        break
            except EOFError:
                raise VolumeFileError("truncated_file", f"{h.encoding} stream is cut short (incomplete copy)") from None
            except (zlib.error, gzip.BadGzipFile, OSError) as err:
                raise VolumeFileError("unreadable_file", f"{h.encoding} stream is corrupt "
                                                         f"({type(err).__name__})") from None
    if ascii_:
        return total, nonfinite
    return counter.n, counter.nonfinite


def data_problems(h: VolumeHeader, *, check_finite: bool) -> list[Problem]:
    """Size and value problems of the voxel data (reads compressed or floating-point data)."""
    try:
        n, bad = count_data(h, check_finite=check_finite)
    except VolumeFileError as err:
        return [(err.code, str(err))]
    want = h.n_values if h.encoding == "ascii" else h.n_bytes
    unit = "values" if h.encoding == "ascii" else "bytes"
    if n < want:
        return [("truncated_file", f"voxel data hold {n} of the {want} {unit} the header declares")]
    if n > want and h.file_offset != -1:
        return [("data_size_mismatch", f"voxel data hold more than the {want} {unit} the header declares")]
    if bad:
        return [("non_finite_voxels", f"{bad} voxel(s) are NaN or infinite")]
    return []


def header_folder(path: str) -> str:
    """The folder a detached header's data files must lie in: the header's own (resolved)."""
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def validate_volume_file(path: str, *, tree: str | None = None, check_finite: bool = True,
                         spacing_range_mm: tuple[float, float] = SPACING_RANGE_MM
                         ) -> tuple[VolumeHeader | None, list[Problem]]:
    """``(header, problems)`` of one volume file; no problem means SimpleITK may read it.

    ``tree`` is the folder the file's data may come from (default :func:`header_folder`).
    Nothing outside it is opened.
    """
    try:
        h = read_volume_header(path)
    except VolumeFileError as err:
        return None, [(err.code, str(err))]
    outside = data_file_problems(h, path, tree or header_folder(path))
    if outside:
        return h, outside
    problems = header_problems(h, spacing_range_mm=spacing_range_mm)
    if not any(code == "not_3d" for code, _ in problems):
        problems += data_problems(h, check_finite=check_finite)
    return h, problems


def check_volume_file(path: str, *, name: str, tree: str | None = None) -> None:
    """Raise :class:`~ctpheno.io.volheaders.VolumeFileError` for the first problem
    :func:`validate_volume_file` finds, as ``"<name>: <detail> (<code>)"`` with the file's own path
    scrubbed from the detail (callers name files by a PHI-free ``name``); nothing when the file is fine."""
    _, problems = validate_volume_file(path, tree=tree)
    if problems:
        code, detail = problems[0]
        raise VolumeFileError(code, f"{name}: {scrub(detail, path, token='…')} ({code})")
