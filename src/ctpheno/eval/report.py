"""One self-contained static HTML report (``<workdir>/report/index.html``), built from jinja2 templates.

Images are embedded as base64 PNG data URIs and styles are inline, so the file opens with no
server and makes no external request. Every table shown is also written as CSV and Parquet
under ``report/tables/`` and every figure as PNG under ``report/figures/``. Only pseudonymous
ids appear. A small inline script records, on load, how many images decoded and which sections
are empty (``data-images-loaded`` / ``data-images-total`` / ``data-empty-sections`` on ``<body>``),
for automated rendering checks.

Adding a section
----------------
A section is one builder function and one template (templates ship in the package,
``ctpheno/eval/templates/``):

1. ``def build_mysection(ctx: ReportContext) -> dict | Missing`` reads what it needs from ``ctx``
   (``ctx.read(path)``, ``ctx.manifest``, …) and returns the template's variables; tables and
   figures go through ``ctx.table(name, df)`` / ``ctx.image(name, png, alt)``, which save the CSV /
   PNG beside the report and return ready HTML. It returns ``Missing(what, fix)`` when its
   artifacts do not exist yet.
2. ``sections/mysection.html.j2`` lays out those variables (the section heading is added for it).
3. One line in :data:`ctpheno.eval.sections.SECTIONS`: ``Section("mysection", "Title",
   build_mysection)``, at the place it should appear.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.layout import WorkDir
from ..io.tables import atomic_path
from .context import Missing, ReportContext, Section
from .sections import SECTIONS


def has_results(wd: WorkDir) -> bool:
    """Whether the work directory holds anything a report can show (a table of some stage)."""
    return any(p.exists() for p in (wd.manifest, wd.qc_table, wd.qct, wd.models_dir))


def render(sections: list[tuple[Section, Any]], title: str) -> str:
    """The HTML page of built sections ``(section, variables or Missing)``."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("ctpheno.eval", "templates"), autoescape=select_autoescape(["j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, fmt="{:.3g}": "–" if v is None or pd.isna(v) else fmt.format(v)
    items = [{"id": s.id, "title": s.title, "template": s.template_name,
              "missing": v if isinstance(v, Missing) else None, "v": {} if isinstance(v, Missing) else v}
             for s, v in sections]
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return env.get_template("report.html.j2").render(title=title, stamp=stamp, sections=items)


def build_report(
    wd: WorkDir,
    *,
    synthetic: pd.DataFrame | None = None,
    title: str = "ctpheno report",
    max_qc_images: int = 12,
    ci_level: float = 0.95,
    config_yaml: str | None = None,
    versions: dict | None = None,
) -> Path:
    """Write ``wd.report`` from the work directory's artifacts; return its path.

    Missing artifacts give a sentence saying which stage produces them, never an empty section.
    """
    ctx = ReportContext(wd, synthetic=synthetic, max_qc_images=max_qc_images, ci_level=ci_level,
                        config_yaml=config_yaml, versions=versions)
    built = [(s, s.build(ctx)) for s in SECTIONS]
    html = render([(s, v) for s, v in built if v is not None], title)
    with atomic_path(wd.report) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return wd.report
