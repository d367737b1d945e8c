"""`ctpheno` commands of the eval stage: ``report``."""

from __future__ import annotations

from pathlib import Path

import typer

from ..clicommon import ConfigOpt, SetOpt, WorkdirOpt


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("report")
    def report(
        config: Path | None = ConfigOpt, workdir: Path | None = WorkdirOpt, set: list[str] | None = SetOpt,
    ) -> None:
        """Write the self-contained HTML report (<workdir>/report/index.html) and print its path."""
        from ..clicommon import fail, load_cli_config, run_and_report
        from ..io.layout import WorkDir
        from .report import has_results

        cfg = load_cli_config(config, set, workdir=workdir)
        wd = WorkDir(cfg.paths.workdir)
        if not has_results(wd):
            fail(f"nothing to report: {wd.root} holds no ctpheno results (no manifest.parquet, qc/, "
                 f"features/ or models/); run `ctpheno run` first, or point --workdir at a work directory")
            return
        run_and_report(cfg, ["report"], force=True, command="ctpheno report")
