"""Local and fsspec (``s3://``, ``gs://``, ``memory://``) paths, treated alike.

Discovery lists and opens files through fsspec when a path is a URL and with
plain :mod:`os` calls otherwise. Pixel readers (SimpleITK, pydicom) need local
files, so :func:`local_copies` copies remote files to a temporary folder first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for ``proto://...`` paths other than ``file://``."""
    text = str(path)
    return "://" in text and not text.startswith("file://")


def strip_file_scheme(path: str) -> str:
    return path.removeprefix("file://")


def open_binary(path: str) -> IO[bytes]:
    """Open a local path or an fsspec URL for reading bytes."""
    if is_url(path):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(strip_file_scheme(path), "rb")


def list_files(root: str) -> list[str]:
    """Every file under ``root`` (any depth), or ``[root]`` when it is a file; sorted."""
    return walk(root)[0]


def walk(root: str) -> tuple[list[str], list[str]]:
    """``(files, empty_folders)`` under ``root`` (any depth); files sorted.

    Hidden files and folders (names starting with ``.``) are skipped. URLs keep
    their protocol prefix so that each entry can be opened again with fsspec.
    """
    if is_url(root):
        import fsspec

        fs, base = fsspec.core.url_to_fs(root)
        if fs.isfile(base):
            return [root], []
        found = fs.find(base)
        out = []
        for p in found:
            rel = p[len(base.rstrip("/")) + 1 :] if p.startswith(base.rstrip("/")) else p
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            out.append(p if "://" in p else fs.unstrip_protocol(p))
        return sorted(out), []
    local = Path(strip_file_scheme(root))
    if local.is_file():
        return [str(local)], []
    if not local.is_dir():
        raise FileNotFoundError(f"input {root!r} does not exist; check paths.inputs")
    out, empty = [], []
    for dirpath, dirnames, filenames in os.walk(local):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        visible = [f for f in filenames if not f.startswith(".")]
        if not visible and not dirnames:
            empty.append(dirpath)
        out.extend(os.path.join(dirpath, f) for f in visible)
    return sorted(out), sorted(empty)


def _companions(path: str) -> list[str]:
    """Files a header format points to (``.mhd`` -> its raw data file, ``.nhdr`` -> data file)."""
    low = path.lower()
    if not low.endswith((".mhd", ".nhdr")):
        return []
    with open_binary(path) as fh:
        text = fh.read(65536).decode("latin-1", errors="replace")
    key = "elementdatafile" if low.endswith(".mhd") else "data file"
    for line in text.splitlines():
        name, sep, value = line.partition("=" if low.endswith(".mhd") else ":")
        if sep and name.strip().lower() == key:
            value = value.strip()
            if value and value.upper() not in ("LOCAL", "LIST"):
                parent = path.rsplit("/", 1)[0]
                return [f"{parent}/{value}"]
    return []


@contextmanager
def local_copies(paths: Sequence[str]) -> Iterator[list[str]]:
    """Yield local paths for ``paths``, copying URLs into a temporary folder (removed after)."""
    if not any(is_url(p) for p in paths):
        yield [strip_file_scheme(p) for p in paths]
        return
    import fsspec

    tmp = tempfile.mkdtemp(prefix="ctpheno-fetch-")
    try:
        out = []
        for i, p in enumerate(paths):
            if not is_url(p):
                out.append(strip_file_scheme(p))
                continue
            name = p.rstrip("/").rsplit("/", 1)[-1] or f"file{i}"
            sub = Path(tmp) / f"{i:06d}"
            sub.mkdir()
            for src in [p, *_companions(p)]:
                dest = sub / src.rstrip("/").rsplit("/", 1)[-1]
                with fsspec.open(src, "rb") as fin, open(dest, "wb") as fout:
                    shutil.copyfileobj(fin, fout, length=1 << 20)
            out.append(str(sub / name))
        yield out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
