"""Scan a work directory's artifacts for identifiers that must never leave ingest.

:func:`find_phi` looks for each needle (case-insensitive) in every file under
the work directory: in the raw bytes, in decompressed gzip and zstd streams
(``.gz`` files, Zarr chunks), in Parquet tables (every cell, column name and metadata), and in PNG text chunks
(``tEXt``/``zTXt``/``iTXt``, including PNGs embedded in HTML as base64 data
URIs). The only files skipped are the ones that hold raw identifiers by
design: ``ingest/sources.parquet``, ``ingest/.salt`` and the optional
``ingest/pseudonym_map.csv``.
"""

from __future__ import annotations

import base64
import gzip
import io
import re
from pathlib import Path

PRIVATE_FILES = ("ingest/sources.parquet", "ingest/.salt", "ingest/pseudonym_map.csv")
"""Work-dir files allowed to hold raw identifiers (relative paths)."""
_DATA_URI = re.compile(rb"data:image/png;base64,([A-Za-z0-9+/=]+)")
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _png_text(data: bytes) -> str:
    try:
        from PIL import Image

        with Image.open(io.BytesIO(data)) as im:
            info = {**im.info, **getattr(im, "text", {})}
        return " ".join(f"{k} {v}" for k, v in info.items() if isinstance(v, (str, bytes)))
    except Exception:  # an unreadable PNG holds no text chunk we could parse; raw bytes are still searched
        return ""


def _zstd_text(data: bytes) -> str:
    try:
        from numcodecs import Zstd

        return bytes(Zstd().decode(data)).decode("latin-1")
    except Exception as err:  # noqa: BLE001 - an undecodable frame is reported, not ignored
        return f"<undecodable zstd frame {type(err).__name__}>"


def _parquet_text(path: Path) -> str:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    parts = [" ".join(table.column_names)]
    parts += [k.decode(errors="replace") + " " + v.decode(errors="replace") for k, v in meta.items()]
    parts.append(table.to_pandas().astype(str).to_csv(index=False))
    return "\n".join(parts)


def file_text(path: Path) -> str:
    """Every searchable text of one file (lower-cased)."""
    data = path.read_bytes()
    texts = [data.decode("latin-1")]
    name = path.name.lower()
    if name.endswith(".gz") or data[:2] == GZIP_MAGIC:
        try:
            texts.append(gzip.decompress(data).decode("latin-1"))
        except (OSError, EOFError):
            pass
    if data[:4] == ZSTD_MAGIC:  # Zarr chunks and zstd-compressed files, whatever their name
        texts.append(_zstd_text(data))
    if name.endswith(".parquet"):
        try:
            texts.append(_parquet_text(path))
        except Exception as err:  # noqa: BLE001 - a damaged table is reported, not ignored
            texts.append(f"<unreadable parquet {err}>")
    if name.endswith(".png"):
        texts.append(_png_text(data))
    if name.endswith((".html", ".htm", ".svg")):
        for m in _DATA_URI.finditer(data):
            try:
                texts.append(_png_text(base64.b64decode(m.group(1))))
            except ValueError:
                continue
    return "\n".join(texts).lower()


def find_phi(root: Path, needles: list[str]) -> list[tuple[Path, str]]:
    """``(file, needle)`` for every needle found in any artifact under ``root``.

    Parameters
    ----------
    root
        A work directory.
    needles
        Strings that must not appear (PatientName parts, raw PatientIDs, birth dates ...);
        empty strings are ignored.
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"find_phi: {root} is not a directory")
    wanted = sorted({n.lower() for n in needles if n and n.strip()})
    skip = {(root / p).resolve() for p in PRIVATE_FILES}
    hits: list[tuple[Path, str]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.resolve() in skip:
            continue
        text = file_text(path)
        hits += [(path, n) for n in wanted if n in text]
    return hits
