"""Local and fsspec (``s3://``, ``gs://``, ``memory://``) paths, treated alike.

Discovery lists and opens files through fsspec when a path is a URL and with
plain :mod:`os` calls otherwise. Pixel readers (SimpleITK, pydicom) need local
files, so :func:`local_copies` copies remote files to a temporary folder first.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .fs import is_url


def strip_file_scheme(path: str) -> str:
    return path.removeprefix("file://")


class NotRegularFileError(OSError):
    """A path that is not a regular file (FIFO, socket, device): never read, it could block forever."""


def open_regular(path: str) -> IO[bytes]:
    """Open a local *regular* file for reading bytes; anything else raises :class:`NotRegularFileError`.

    The file is opened non-blocking (so a FIFO swapped in after the walk cannot hang the open)
    and checked with ``fstat`` before a byte is read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_kind(mode)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_binary(path: str) -> IO[bytes]:
    """Open a local regular file (:func:`open_regular`) or an fsspec URL for reading bytes."""
    if is_url(path):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open_regular(strip_file_scheme(path))


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "FIFO"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "character device"),
                       (stat.S_ISBLK, "block device"), (stat.S_ISDIR, "folder")):
        if test(mode):
            return name
    return "special file"


FS_BYTES_PREFIX = "fsbytes-b64:"
"""Marks a path stored as base64 of its file-system bytes (names that are not valid UTF-8)."""


def storable_path(path: str) -> str:
    """``path`` as text any table can hold: unchanged, or — when its name is not valid UTF-8
    (Python keeps such bytes as surrogates) — :data:`FS_BYTES_PREFIX` + base64 of its bytes."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        import base64

        return FS_BYTES_PREFIX + base64.b64encode(os.fsencode(path)).decode("ascii")


def stored_path(text: str) -> str:
    """The path :func:`storable_path` stored (other text is returned unchanged)."""
    if not text.startswith(FS_BYTES_PREFIX):
        return text
    import base64

    return os.fsdecode(base64.b64decode(text[len(FS_BYTES_PREFIX):]))


def input_tree(root: str) -> str:
    """The folder whose files an input may read: the input itself, or a file input's folder (resolved)."""
    local = strip_file_scheme(root)
    real = os.path.realpath(local)
    return real if os.path.isdir(real) else os.path.dirname(real)


def is_inside(path: str, tree: str) -> bool:
    """True when ``path`` resolves (symbolic links followed, nothing opened) inside ``tree``."""
    real = os.path.realpath(path)
    tree = os.path.realpath(tree)
    return real == tree or real.startswith(tree.rstrip(os.sep) + os.sep)


@dataclass
class Tree:
    """What :func:`walk` found under one input."""

    files: list[str] = field(default_factory=list)
    """Regular files (symbolic links only when they resolve inside the tree), sorted."""
    empty_folders: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    """``(path, reason code, PHI-free detail)`` of entries never opened: ``not_regular_file``,
    ``broken_link``, ``outside_input_tree`` (a link leaving the tree), ``unreadable_folder``."""


def classify_entry(path: str, tree: str) -> tuple[str, str] | None:
    """``(reason code, detail)`` when ``path`` must not be opened, else None; uses ``lstat``/``stat`` only."""
    try:
        st = os.lstat(path)
    except OSError as err:
        return "unreadable_file", os_reason(err)
    if stat.S_ISLNK(st.st_mode):
        if not is_inside(path, tree):
            return "outside_input_tree", "symbolic link to a file outside the input folder"
        try:
            st = os.stat(path)
        except OSError as err:
            return "broken_link", f"symbolic link to nothing ({os_reason(err)})"
    if not stat.S_ISREG(st.st_mode):
        return "not_regular_file", _kind(st.st_mode)
    return None


def os_reason(err: OSError) -> str:
    """An OS error without its file name (``errno`` name and text): safe to record past ingest."""
    name = errno.errorcode.get(err.errno or 0, "")
    text = err.strerror or type(err).__name__
    return f"{name}: {text}" if name else text


def walk(root: str) -> Tree:
    """Files, empty folders and refused entries under ``root`` (any depth); files sorted.

    Hidden files and folders (names starting with ``.``) are skipped. Only regular files are
    listed: FIFOs, sockets, devices, dangling links and links that resolve outside the input
    (see :func:`input_tree`) are reported in ``skipped`` without being opened, as are folders
    that cannot be listed. Links to folders are not followed. URLs keep their protocol prefix
    so that each entry can be opened again with fsspec (no such checks apply to them).
    """
    if is_url(root):
        import fsspec

        fs, base = fsspec.core.url_to_fs(root)
        if fs.isfile(base):
            return Tree(files=[root])
        found = fs.find(base)
        out = []
        for p in found:
            rel = p[len(base.rstrip("/")) + 1 :] if p.startswith(base.rstrip("/")) else p
            if any(part.startswith(".") for part in rel.split("/")):
                continue
            out.append(p if "://" in p else fs.unstrip_protocol(p))
        return Tree(files=sorted(out))
    local = Path(strip_file_scheme(root))
    if not os.path.lexists(local) or (local.is_symlink() and not local.exists()):
        raise FileNotFoundError(f"input {root!r} does not exist; check paths.inputs")
    tree = input_tree(str(local))
    if not local.is_dir():
        problem = classify_entry(str(local), tree)
        return Tree(skipped=[(str(local), *problem)]) if problem else Tree(files=[str(local)])
    out = Tree()

    def onerror(err: OSError) -> None:
        out.skipped.append((str(err.filename or local), "unreadable_folder", os_reason(err)))

    for dirpath, dirnames, filenames in os.walk(local, onerror=onerror):
        keep, links = [], []
        for d in sorted(dirnames):
            if d.startswith("."):
                continue
            full = os.path.join(dirpath, d)
            if os.path.islink(full):  # never followed; one leaving the tree is reported
                links.append(d)
                if not is_inside(full, tree):
                    out.skipped.append((full, "outside_input_tree", "symbolic link to a folder outside the input"))
                continue
            keep.append(d)
        dirnames[:] = keep
        visible = [f for f in filenames if not f.startswith(".")]
        if not visible and not keep and not links:
            out.empty_folders.append(dirpath)
        for f in visible:
            full = os.path.join(dirpath, f)
            problem = classify_entry(full, tree)
            if problem:
                out.skipped.append((full, *problem))
            else:
                out.files.append(full)
    out.files.sort()
    out.empty_folders.sort()
    return out


def list_files(root: str) -> list[str]:
    """Every regular file under ``root`` (any depth), or ``[root]`` when it is one; sorted (see :func:`walk`)."""
    return walk(root).files


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
