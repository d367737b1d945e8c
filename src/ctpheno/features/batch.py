"""PyRadiomics' batch mode on the Dask cluster: ``ctpheno radiomics --batch cases.csv --out features.csv``.

The input is PyRadiomics' own batch file (``pyradiomics cases.csv``): a CSV with columns
``Image`` and ``Mask`` (paths, relative ones read from the CSV file's folder), optional ``Label``
and ``Label_channel``, and any other columns, which are copied to the output. The output has
exactly the columns and values of ``pyradiomics cases.csv -o out.csv -f csv``: each case's input
columns (paths made absolute), then PyRadiomics' ``diagnostics_*`` and feature columns in the
order the first case produced them, then columns only later cases produced, sorted.

Cases run as Dask tasks on the configured cluster (PyRadiomics' own ``--jobs`` uses one
machine's processes). A case that fails keeps its input columns and leaves the rest empty, as
in PyRadiomics, and is also reported (:class:`BatchResult`), never silently.
"""

from __future__ import annotations

import copy
import csv
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REQUIRED_COLUMNS = ("Image", "Mask")


@dataclass
class BatchResult:
    """Rows of the output, in case order, and the cases that failed (row number, message)."""

    rows: list[OrderedDict] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)


def read_cases(batch_csv: str | Path) -> list[OrderedDict]:
    """The cases of a PyRadiomics batch file, with Image/Mask resolved as PyRadiomics resolves them."""
    batch_csv = Path(batch_csv)
    if not batch_csv.is_file():
        raise FileNotFoundError(f"--batch: {batch_csv} does not exist")
    start = os.path.dirname(str(batch_csv))
    with batch_csv.open(newline="") as fh:
        reader = csv.DictReader(fh, lineterminator="\n")
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"--batch: {batch_csv.name} has no column {' or '.join(missing)}; a PyRadiomics "
                             f"batch file has columns Image, Mask and optionally Label")
        cases = []
        for row in reader:
            if row["Image"] is None or row["Mask"] is None:
                continue  # PyRadiomics skips rows without both paths
            for key in REQUIRED_COLUMNS:
                if not os.path.isabs(row[key]):
                    row[key] = os.path.abspath(os.path.join(start, row[key]))
            cases.append(OrderedDict(row))
    if not cases:
        raise ValueError(f"--batch: {batch_csv.name} lists no case")
    return cases


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, str) else value


def extract_case(case: OrderedDict, extractor: Any) -> tuple[OrderedDict, str | None]:
    """PyRadiomics on one case as its batch script runs it; returns (row, error message or None).

    ``extractor`` is copied first: worker threads of one process may run several cases at once.
    """
    row = OrderedDict(case)
    try:
        own = copy.deepcopy(extractor)
        row.update(own.execute(case["Image"], case["Mask"], _optional_int(case.get("Label")),
                               _optional_int(case.get("Label_channel"))))
        return row, None
    except Exception as err:  # noqa: BLE001 - reported per case, as PyRadiomics' batch mode does
        return row, f"{type(err).__name__}: {err}"


def run_batch(cases: list[OrderedDict], params_path: str | Path, client: Any = None) -> BatchResult:
    """Extract every case (as Dask tasks when ``client`` is given); rows come back in case order.

    The extractor is built once, here, from the parameter file, as PyRadiomics' batch script builds it
    (its YAML loader is not thread-safe), and travels to the workers with the tasks.
    """
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    extractor = RadiomicsFeatureExtractor(str(params_path))
    if client is None:
        outs = [extract_case(c, extractor) for c in cases]
    else:
        shared = client.scatter(extractor, broadcast=True)
        outs = client.gather(client.map(extract_case, cases, extractor=shared, pure=False))
    result = BatchResult()
    for i, (row, err) in enumerate(outs, start=1):
        result.rows.append(row)
        if err is not None:
            result.failed.append((i, err))
    return result


def write_batch_csv(rows: list[OrderedDict], out: str | Path) -> Path:
    """Write rows with PyRadiomics' header rule (first case's keys, then later-only keys sorted)."""
    extra: set[str] = set()
    for row in rows[1:]:
        extra.update(row.keys())
    extra -= set(rows[0].keys())
    headers = list(rows[0].keys()) + sorted(extra)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, headers, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return out
