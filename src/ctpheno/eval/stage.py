"""Report stage: ``run_report(cfg, wd, client, *, force=False)`` writes ``<workdir>/report/index.html``."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from ..config.pipeline import PipelineConfig
from ..config.public import public_config
from ..io.layout import WorkDir
from .report import build_report


@dataclass
class ReportResult:
    """Where the report went."""

    path: Path | None
    seconds: float
    synthetic: pd.DataFrame | None = None
    """Acceptance numbers against a synthetic cohort's truth (when one was generated)."""

    def summary(self) -> str:
        if not self.path:
            return "report disabled"
        txt = f"report: {self.path} ({self.seconds:.1f} s)"
        s = self.synthetic
        if s is not None and len(s):
            best = s.groupby("check")["value"].max()
            txt += "; synthetic truth: " + ", ".join(f"best {k} {v:.2f}" for k, v in best.items())
        return txt


def run_report(cfg: PipelineConfig, wd: WorkDir, client: Any = None, *, force: bool = False) -> ReportResult:
    """Build the report from whatever artifacts exist (always rebuilt: it is cheap)."""
    t0 = time.perf_counter()
    if not cfg.report.enabled:
        return ReportResult(None, 0.0)
    data = public_config(cfg)  # input paths tokenised, secrets masked
    synthetic = None
    if cfg.synth.enabled:
        from .synthetic import synthetic_acceptance

        out = cfg.synth.out if cfg.synth.out.is_absolute() else wd.root / cfg.synth.out
        synthetic = synthetic_acceptance(wd, out, cfg.paths)
    path = build_report(
        wd,
        synthetic=synthetic,
        title=cfg.report.title,
        max_qc_images=cfg.report.max_qc_images,
        ci_level=cfg.models.supervised.ci_level,
        config_yaml=yaml.safe_dump(data, sort_keys=False),
    )
    return ReportResult(path, time.perf_counter() - t0, synthetic)
