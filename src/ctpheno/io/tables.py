"""Atomic Parquet/JSON writes and schema-checked reads.

Every artifact is written to a temporary name in the destination folder and
then renamed (``os.replace`` is atomic on POSIX), so an interrupted run never
leaves a half-written file that a rerun would trust.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from .schemas import TableSchema


@contextmanager
def atomic_path(dest: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_table(df: pd.DataFrame, dest: str | Path, schema: TableSchema | None = None) -> Path:
    """Validate ``df`` against ``schema`` (if given) and write it atomically as Parquet."""
    if schema is not None:
        schema.validate(df, where=str(dest))
    with atomic_path(dest, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return Path(dest)


def read_table(path: str | Path, schema: TableSchema | None = None) -> pd.DataFrame:
    """Read a Parquet table, checking it against ``schema``; a clear error if it is absent."""
    path = Path(path)
    if not path.exists():
        what = f" ({schema.name})" if schema else ""
        raise FileNotFoundError(f"{path}{what} does not exist; run the stage that writes it first")
    df = pd.read_parquet(path)
    if schema is not None:
        schema.validate(df, where=str(path))
    return df


def write_json(obj: Any, dest: str | Path) -> Path:
    with atomic_path(dest, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    return Path(dest)


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def concat_parts(parts_dir: str | Path, dest: str | Path, schema: TableSchema | None = None,
                 *, keep: set[str] | None = None) -> pd.DataFrame:
    """Consolidate per-scan part files into one table (atomically).

    ``keep`` restricts to the given scan ids (parts of scans no longer in the
    manifest are left out). Rows are sorted by the schema key for a stable file.
    """
    parts_dir = Path(parts_dir)
    files = sorted(parts_dir.glob("*.parquet")) if parts_dir.exists() else []
    if keep is not None:
        files = [f for f in files if f.stem in keep]
    frames = [pd.read_parquet(f) for f in files]
    frames = [f for f in frames if len(f)]
    if frames:
        df = pd.concat(frames, ignore_index=True)
    else:
        df = schema.empty() if schema is not None else pd.DataFrame()
    if schema is not None and schema.key and len(df):
        df = df.sort_values(list(schema.key), kind="stable").reset_index(drop=True)
    write_table(df, dest, schema)
    return df
