"""Atomic Parquet/JSON writes and schema-checked reads.

Every artifact is written to a temporary name in the destination folder and
then renamed (``os.replace`` is atomic on POSIX), so an interrupted run never
leaves a half-written file that a rerun would trust. Every function also takes
an fsspec URL (``s3://bucket/work/features/qct.parquet``): the file is written
locally and uploaded in one ``put`` (see :mod:`ctpheno.io.fs`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

from . import fs
from .schemas import TableSchema


def _stem(path: str | Path) -> str:
    name = str(path).rstrip("/").rsplit("/", 1)[-1]
    return name[: -len(".parquet")] if name.endswith(".parquet") else name


@contextmanager
def atomic_path(dest: str | Path, *, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary local path; it becomes ``dest`` (a path or URL) on success."""
    with fs.atomic_output(dest, suffix=suffix) as tmp:
        yield tmp


def write_table(df: pd.DataFrame, dest: str | Path, schema: TableSchema | None = None) -> str | Path:
    """Validate ``df`` against ``schema`` (if given) and write it atomically as Parquet."""
    if schema is not None:
        schema.validate(df, where=str(dest))
    with atomic_path(dest, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)
    return dest if fs.is_url(dest) else Path(dest)


def read_table(path: str | Path, schema: TableSchema | None = None) -> pd.DataFrame:
    """Read a Parquet table, checking it against ``schema``; a clear error if it is absent."""
    if not fs.exists(path):
        what = f" ({schema.name})" if schema else ""
        raise FileNotFoundError(f"{path}{what} does not exist; run the stage that writes it first")
    with fs.open_file(path, "rb") as fh:
        df = pd.read_parquet(fh)
    if schema is not None:
        schema.validate(df, where=str(path))
    return df


def write_json(obj: Any, dest: str | Path) -> str | Path:
    """Write ``obj`` as indented JSON, atomically (path or URL)."""
    with atomic_path(dest, suffix=".json") as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    return dest if fs.is_url(dest) else Path(dest)


def read_json(path: str | Path) -> Any:
    """Read a JSON file (path or URL)."""
    with fs.open_file(path, "rb") as fh:
        return json.loads(fh.read())


def concat_parts(parts_dir: str | Path, dest: str | Path, schema: TableSchema | None = None,
                 *, keep: set[str] | None = None) -> pd.DataFrame:
    """Consolidate per-scan part files into one table (atomically).

    ``keep`` restricts to the given scan ids (parts of scans no longer in the
    manifest are left out). Rows are sorted by the schema key for a stable file.
    """
    files = fs.glob(fs.join(parts_dir, "*.parquet")) if fs.exists(parts_dir) else []
    if keep is not None:
        files = [f for f in files if _stem(f) in keep]
    frames = [read_table(f) for f in files]
    frames = [f for f in frames if len(f)]
    if frames:
        df = pd.concat(frames, ignore_index=True)
    else:
        df = schema.empty() if schema is not None else pd.DataFrame()
    if schema is not None and schema.key and len(df):
        df = df.sort_values(list(schema.key), kind="stable").reset_index(drop=True)
    write_table(df, dest, schema)
    return df


def content_keys(qc_table: str | Path) -> dict[str, str]:
    """``scan_id -> content hash`` of each preprocessed store, from the QC table (``qc/qc.parquet``).

    The hash is taken over the stored arrays (:func:`ctpheno.preprocess.stage.content_hash`), so it
    depends on the data alone, not on the pseudonym salt that names the scans. Stages that order
    scans or subjects where the order changes a result (SSL training batches, seeded CV folds,
    k-means initialisation) sort by it, so that the same data gives the same numbers under any
    salt. Empty when the table or its column is missing.
    """
    path = Path(qc_table)
    if not path.is_file():
        return {}
    qc = pd.read_parquet(path)
    if "content_hash" not in qc.columns:
        return {}
    return dict(zip(qc["scan_id"].astype(str), qc["content_hash"].astype(str)))
