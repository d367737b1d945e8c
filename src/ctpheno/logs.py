"""Logging: rich on the console, plus one log file per run in the work directory."""

from __future__ import annotations

import logging
import secrets
import sys
from datetime import datetime, timezone
from pathlib import Path

_FMT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def setup_logging(level: int = logging.INFO, log_file: str | Path | None = None) -> None:
    """Console logging through rich, and optionally a plain-text file (appended)."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        if getattr(h, "_ctpheno", False):
            root.removeHandler(h)
    try:
        from rich.console import Console
        from rich.logging import RichHandler

        # stderr: stdout carries data (``--json``), which a log line must not break
        console: logging.Handler = RichHandler(console=Console(stderr=True), show_path=False,
                                               rich_tracebacks=False, markup=False)
        console.setFormatter(logging.Formatter("%(message)s"))
    except ImportError:  # pragma: no cover
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(_FMT))
    console.setLevel(level)
    console.addFilter(_quiet_dask)
    console._ctpheno = True  # type: ignore[attr-defined]
    root.addHandler(console)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh.setFormatter(logging.Formatter(_FMT))
        fh.setLevel(logging.DEBUG)
        fh._ctpheno = True  # type: ignore[attr-defined]
        root.addHandler(fh)
    for noisy in ("distributed", "tornado", "asyncio", "matplotlib", "radiomics", "numba", "PIL",
                  "fsspec", "botocore", "urllib3", "highdicom", "pykwalify"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


DASK_LOGGERS = ("distributed", "tornado", "bokeh")
"""Loggers whose INFO lines stay in the run log only: importing distributed resets its own level to INFO."""


def _quiet_dask(record: logging.LogRecord) -> bool:
    """Console filter: Dask's start/stop chatter (INFO) is left out, its warnings and errors are shown."""
    return record.levelno >= logging.WARNING or not record.name.startswith(DASK_LOGGERS)
