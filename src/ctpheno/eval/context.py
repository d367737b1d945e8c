"""What report sections are made of: :class:`Section`, the :class:`ReportContext` their builders
read from and write through, and :class:`Missing` (see :mod:`ctpheno.eval.report`)."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..io.layout import WorkDir
from .headline import format_number

INTERNAL_COLUMNS = ("content_hash",)
"""Columns that identify artifacts for resume, not results: never shown (they stay in the CSVs)."""


@dataclass(frozen=True)
class Missing:
    """A section's artifacts do not exist yet: say which and what produces them."""

    what: str
    fix: str


@dataclass(frozen=True)
class Section:
    """One report section: id (the HTML anchor), title, builder and template
    (default ``sections/<id>.html.j2``)."""

    id: str
    title: str
    build: Callable[["ReportContext"], "dict[str, Any] | Missing | None"]
    template: str = ""

    @property
    def template_name(self) -> str:
        return self.template or f"sections/{self.id}.html.j2"


class _WorkdirTable:
    """A table of the work directory (a :class:`WorkDir` path attribute), read once through
    :meth:`ReportContext.read`; None when it does not exist."""

    def __init__(self, path_attr: str) -> None:
        self.path_attr = path_attr
        self.__doc__ = f"``WorkDir.{path_attr}`` as a table, or None when it does not exist."

    def __get__(self, ctx: "ReportContext | None", owner: type | None = None):
        if ctx is None:
            return self
        return ctx.read(getattr(ctx.wd, self.path_attr))


@dataclass
class ReportContext:
    """What section builders read (the work directory's tables, loaded once) and write through."""

    wd: WorkDir
    synthetic: pd.DataFrame | None = None
    max_qc_images: int = 12
    ci_level: float = 0.95
    config_yaml: str | None = None
    versions: dict | None = None
    _tables: dict[str, pd.DataFrame | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fig_dir = self.wd.report_dir / "figures"
        self.tab_dir = self.wd.report_dir / "tables"
        self.fig_dir.mkdir(parents=True, exist_ok=True)
        self.tab_dir.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ inputs
    def read(self, path: Path) -> pd.DataFrame | None:
        """A Parquet table of the work directory, or None when it does not exist (read once)."""
        key = str(path)
        if key not in self._tables:
            self._tables[key] = pd.read_parquet(path) if path.is_file() else None
        return self._tables[key]

    manifest = _WorkdirTable("manifest")
    clinical = _WorkdirTable("clinical")
    qct = _WorkdirTable("qct")
    qc = _WorkdirTable("qc_table")

    def clusters(self, name: str) -> pd.DataFrame | None:
        """``models/clusters/<name>.parquet`` (selection, assignments, profiles)."""
        return self.read(self.wd.models_dir / "clusters" / f"{name}.parquet")

    def supervised(self, name: str) -> pd.DataFrame | None:
        """``models/supervised/<name>.parquet`` (metrics, comparison, predictions, importance, …)."""
        return self.read(self.wd.models_dir / "supervised" / f"{name}.parquet")

    @cached_property
    def gold(self) -> pd.Series | None:
        """GOLD stage by subject id, when the clinical table has it."""
        clin = self.clinical
        if clin is None or "gold_stage" not in clin:
            return None
        return clin.drop_duplicates("subject_id").set_index("subject_id")["gold_stage"]

    # ----------------------------------------------------------------- outputs
    def image(self, name: str, png: bytes, alt: str) -> str:
        """Save ``report/figures/<name>.png``; the ``<img>`` embedding it."""
        from markupsafe import Markup, escape

        (self.fig_dir / f"{name}.png").write_bytes(png)
        data = base64.b64encode(png).decode()
        return Markup(f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">')

    def table(self, name: str, df: pd.DataFrame, *, max_rows: int = 20, collapse: bool = False,
              summary: str | None = None) -> str:
        """Save ``report/tables/<name>.csv|parquet``; the HTML of at most ``max_rows`` rows.

        Longer tables show their first ``max_rows`` rows and a note; with ``collapse`` the table
        sits in a closed ``<details>`` block titled ``summary``. Internal columns
        (:data:`INTERNAL_COLUMNS`) are hidden.
        """
        from markupsafe import Markup, escape

        df.to_csv(self.tab_dir / f"{name}.csv", index=False)
        df.reset_index(drop=True).to_parquet(self.tab_dir / f"{name}.parquet")
        shown = df.drop(columns=[c for c in INTERNAL_COLUMNS if c in df.columns]).head(max_rows)
        html = shown.to_html(index=False, float_format=format_number, border=0, na_rep="–", escape=True)
        if len(df) > max_rows:
            html += (f'<p class="note">first {max_rows} of {len(df)} rows; all in '
                     f'tables/{escape(name)}.csv</p>')
        if collapse:
            title = escape(summary or name.replace("_", " "))
            html = f"<details><summary>{title} ({len(df)} rows)</summary>{html}</details>"
        return Markup(html)
