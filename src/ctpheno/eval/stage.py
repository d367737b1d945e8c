"""Report stage: ``run_report(cfg, wd, client, *, force=False)`` writes ``<workdir>/report/index.html``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..config.pipeline import PipelineConfig
from ..io.layout import WorkDir
from .report import build_report


@dataclass
class ReportResult:
    """Where the report went."""

    path: Path | None
    seconds: float

    def summary(self) -> str:
        return f"report: {self.path} ({self.seconds:.1f} s)" if self.path else "report disabled"


def run_report(cfg: PipelineConfig, wd: WorkDir, client: Any = None, *, force: bool = False) -> ReportResult:
    """Build the report from whatever artifacts exist (always rebuilt: it is cheap)."""
    t0 = time.perf_counter()
    if not cfg.report.enabled:
        return ReportResult(None, 0.0)
    data = cfg.model_dump(mode="json")
    data["paths"]["pseudonym_salt"] = "***" if data["paths"].get("pseudonym_salt") else None
    path = build_report(
        wd,
        title=cfg.report.title,
        max_qc_images=cfg.report.max_qc_images,
        config_yaml=yaml.safe_dump(data, sort_keys=False),
    )
    return ReportResult(path, time.perf_counter() - t0)
