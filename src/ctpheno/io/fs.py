"""Local paths and fsspec URLs (``s3://``, ``gs://``, ``memory://``) behind one small API.

Every artifact writer goes through :func:`atomic_output`: the content is written
to a local temporary file first (with the mode a plain ``open`` would give, i.e.
``0666 & ~umask``, so outputs are as readable as the user's umask says); a local destination is then renamed into place
(``os.replace``, atomic on POSIX) and a URL destination is uploaded in one
``put`` (an object store makes a single object visible only once it is
complete). A reader therefore never sees half an artifact.

Credentials and endpoints come from the usual places (``AWS_*`` environment
variables, ``~/.aws``, instance roles) or from fsspec's configuration, e.g.
``FSSPEC_S3_ENDPOINT_URL=http://127.0.0.1:9000`` for an S3-compatible server;
being environment variables, they reach Dask workers too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator

PathLike = str | os.PathLike
DEFAULT_FILE_MODE = 0o666
"""Mode a new file gets before the umask is applied (what ``open(..., "w")`` does)."""


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``).

    ``os.umask`` can only be read by setting it, which races with other threads writing files;
    ``/proc/self/status`` reports it directly (Linux >= 4.7). Elsewhere it is set and restored.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_url(path: PathLike) -> bool:
    """True for ``proto://...`` paths other than ``file://`` (those are local): the one rule of the
    project for what goes through fsspec (``s3://``, ``gs://``, ``memory://``, fsspec's ``local://``)."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def _local(path: PathLike) -> Path:
    text = os.fspath(path)
    return Path(text[len("file://"):]) if text.startswith("file://") else Path(text)


def filesystem(path: PathLike) -> tuple[Any, str]:
    """``(fsspec filesystem, path inside it)`` for a URL (needs the filesystem's package, e.g. s3fs)."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(os.fspath(path))
    except ImportError as err:
        raise ImportError(f"{os.fspath(path)!r} needs an fsspec backend that is not installed ({err}); "
                          f"for s3:// install `pip install 'ctpheno[s3]'`") from None


def join(base: PathLike, *parts: str) -> str | Path:
    """Join path parts; URLs keep their ``scheme://`` (``Path`` would collapse the slashes)."""
    if is_url(base):
        return "/".join([os.fspath(base).rstrip("/"), *[p.strip("/") for p in parts]])
    return _local(base).joinpath(*parts)


def exists(path: PathLike) -> bool:
    """Whether a file or folder (object or prefix) exists."""
    if is_url(path):
        fs, p = filesystem(path)
        return bool(fs.exists(p))
    return _local(path).exists()


@contextmanager
def open_file(path: PathLike, mode: str = "rb") -> Iterator[IO[Any]]:
    """Open a local file or URL for reading (writes go through :func:`atomic_output`)."""
    if any(c in mode for c in "wax+"):
        raise ValueError(f"open_file is for reading, got mode={mode!r}; write with atomic_output()")
    if is_url(path):
        fs, p = filesystem(path)
        with fs.open(p, mode) as fh:
            yield fh
    else:
        with open(_local(path), mode) as fh:
            yield fh


def glob(pattern: PathLike) -> list[str | Path]:
    """Sorted matches of a glob pattern (local paths or URLs with their scheme)."""
    if is_url(pattern):
        fs, p = filesystem(pattern)
        scheme = os.fspath(pattern).split("://", 1)[0]
        return sorted(f"{scheme}://{m}" for m in fs.glob(p))
    local = _local(pattern)
    return sorted(local.parent.glob(local.name))


def remove(path: PathLike, *, recursive: bool = False) -> None:
    """Delete a file or (``recursive``) a folder; absent paths are fine."""
    if is_url(path):
        fs, p = filesystem(path)
        if fs.exists(p):
            fs.rm(p, recursive=recursive)
        return
    local = _local(path)
    if local.is_dir() and recursive:
        shutil.rmtree(local)
    elif local.exists():
        local.unlink()


@contextmanager
def atomic_output(dest: PathLike, *, suffix: str = "") -> Iterator[Path]:
    """Yield a local temporary path; on success it becomes ``dest`` in one step.

    Local: a hidden ``.<name>.*.tmp`` beside ``dest`` renamed with ``os.replace``. URL: a
    local temporary file uploaded with one ``put``. On error nothing appears at ``dest``.
    """
    if is_url(dest):
        with tempfile.TemporaryDirectory(prefix="ctpheno-upload-") as tmpdir:
            tmp = Path(tmpdir) / f"part{suffix}"
            yield tmp
            fs, p = filesystem(dest)
            parent = p.rsplit("/", 1)[0]
            if parent and parent != p:
                fs.makedirs(parent, exist_ok=True)
            fs.put_file(str(tmp), p)
        return
    dest = _local(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.fchmod(fd, DEFAULT_FILE_MODE & ~current_umask())  # mkstemp makes 0600; follow the umask
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


def put_tree(local_dir: PathLike, dest: PathLike, *, last: tuple[str, ...] = ()) -> None:
    """Upload a local folder to a URL, files named in ``last`` (relative) after all others.

    Used for Zarr stores: the root ``zarr.json`` goes last, so a store whose upload was
    interrupted has no root metadata and is not opened as a valid store.
    """
    fs, root = filesystem(dest)
    local_dir = Path(local_dir)
    files = sorted(p for p in local_dir.rglob("*") if p.is_file())
    rel = [p.relative_to(local_dir).as_posix() for p in files]
    order = [r for r in rel if r not in last] + [r for r in last if r in rel]
    for r in order:
        fs.put_file(str(local_dir / r), f"{root.rstrip('/')}/{r}")
