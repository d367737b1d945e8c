"""Command-line interface (``ctpheno``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import exitcodes
from .clierrors import ErrorHandlingGroup, invoked_command
from .config.pipeline import load_pipeline_config
from .errors import CTPhenoError

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=ErrorHandlingGroup,
                  help="Quantitative chest-CT phenotyping of COPD: ingest → preprocess → features → models → report.",
                  epilog=exitcodes.help_text())

ConfigOpt = typer.Option(None, "--config", "-c", help="Pipeline YAML (default: config/pipeline.yaml).")
SetOpt = typer.Option(None, "--set", help="Override a config value: section.key=value (repeatable).")
WorkdirOpt = typer.Option(None, "--workdir", help="Work directory (overrides paths.workdir).")
ForceOpt = typer.Option(False, "--force", help="Recompute scans that are already up to date.")


def load_cli_config(config: Optional[Path], sets: Optional[List[str]], *, workdir: Optional[Path] = None,
                    inputs: Optional[List[str]] = None, clinical: Optional[str] = None,
                    stage_file_for: Optional[str] = None):
    """Load the config, apply ``--set`` and the path options (which win over the file).

    The path options reach the config as data (never parsed as YAML text). A configuration
    error (unknown key, wrong type or range, missing file) ends the command with its message
    and exit code 2, before any work starts.
    """
    values: dict = {}
    if workdir is not None:
        values["paths.workdir"] = str(workdir)
    if inputs:
        values["paths.inputs"] = [str(p) for p in inputs]
    if clinical is not None:
        values["paths.clinical"] = str(clinical)
    try:
        return load_pipeline_config(config, overrides=list(sets or []), stage_file_for=stage_file_for,
                                    values=values)
    except CTPhenoError as err:
        fail(str(err))


def fail(message: str, code: int = exitcodes.USAGE) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def run_and_report(cfg, names: list[str], *, force: bool, command: str) -> None:
    """Run stages and print a summary; exit 3 when scans failed (see :mod:`ctpheno.exitcodes`).

    User and environment errors raised by the stages end the command through
    :class:`~ctpheno.clierrors.ErrorHandlingGroup` (message, exit code 2).
    """
    from .pipeline import run_stages

    results = run_stages(cfg, names, force=force, command=invoked_command(command))
    failed_scans = 0
    for name, res in results.items():
        summary = getattr(res, "summary", None)
        if callable(summary):
            typer.echo(summary())
            failed_scans += len(getattr(res, "failed", []))
    from .io.layout import WorkDir

    wd = WorkDir(cfg.paths.workdir)
    if wd.report.exists() and "report" in results:
        typer.secho(f"report: {wd.report.resolve()}", fg=typer.colors.GREEN)
    if failed_scans:
        typer.echo(f"{failed_scans} per-scan failure(s) recorded in {wd.failures}")
        raise typer.Exit(exitcodes.SCANS_FAILED)


@app.command()
def run(config: Optional[Path] = ConfigOpt, input: Optional[List[str]] = typer.Option(
            None, "--input", "-i", help="Input folder/file/URL (repeatable; overrides paths.inputs)."),
        clinical: Optional[str] = typer.Option(None, "--clinical", help="Clinical CSV/Parquet."),
        workdir: Optional[Path] = WorkdirOpt, set: Optional[List[str]] = SetOpt, force: bool = ForceOpt,
        stages: Optional[str] = typer.Option(None, "--stages", help="Comma-separated subset of stages.")) -> None:
    """Run the whole pipeline (synth → ingest → preprocess → qct → radiomics → embed → cluster →
    supervised → report) as configured."""
    from .pipeline import STAGES

    cfg = load_cli_config(config, set, workdir=workdir, inputs=input, clinical=clinical)
    if input:
        cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"enabled": False})})
    names = [s.strip() for s in stages.split(",")] if stages else list(STAGES)
    run_and_report(cfg, names, force=force, command=" ".join(sys.argv))


def _register_stage_commands() -> None:
    from .eval.cli import register as reg_eval
    from .features.cli import register as reg_features
    from .ingest.cli import register as reg_ingest
    from .preprocess.cli import register as reg_preprocess
    from .synth.cli import register as reg_synth
    from .train.cli import register as reg_train
    from .features.deep_embeddings.cli import register as reg_embed
    from .benchcli import register as reg_bench

    for reg in (reg_synth, reg_ingest, reg_preprocess, reg_features, reg_embed, reg_train, reg_eval, reg_bench):
        reg(app)


_register_stage_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
