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
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Quantitative chest-CT phenotyping of COPD: ingest → preprocess → features → models → report.",
                  epilog=exitcodes.help_text())

ConfigOpt = typer.Option(None, "--config", "-c", help="Pipeline YAML (default: ./config/pipeline.yaml if "
                         "present, else the packaged copy of it).")
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


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"ctpheno {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Quantitative chest-CT phenotyping of COPD: ingest → preprocess → features → models → report."""


InputListOpt = typer.Option(None, "--input-list", help="CSV of inputs, one per row (column `path` or "
                            "`SeriesInstanceUID`, else the first column): local paths / URLs, or IDC "
                            "SeriesInstanceUIDs, downloaded first through idc-index (the [idc] extra).")
DownloadOpt = typer.Option(None, "--download", help="Folder for the IDC series of --input-list "
                           "(default: idc/ beside the list).")


def parse_stages(text: Optional[str]) -> list[str]:
    """``--stages a,b`` as a list, every name checked against the pipeline's stages (all when empty)."""
    from .pipeline import STAGES

    if not text:
        return list(STAGES)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        fail(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    return names


def with_input_list(cfg, input_list: Optional[Path], download: Optional[Path], given: Optional[List[str]]):
    """``cfg`` whose inputs are ``given`` plus the inputs of ``--input-list`` (its IDC series downloaded
    first, after the configuration was validated); ``cfg`` unchanged without a list."""
    if input_list is None:
        return cfg
    from .ingest.cohort import resolve_input_list

    try:
        listed = resolve_input_list(input_list, download_dir=download)
    except (CTPhenoError, ValueError, FileNotFoundError, RuntimeError) as err:
        fail(str(err))
        return cfg
    paths = cfg.paths.model_copy(update={"inputs": [*(given or []), *listed]})
    return cfg.model_copy(update={"paths": paths})


@app.command()
def run(config: Optional[Path] = ConfigOpt, input: Optional[List[str]] = typer.Option(
            None, "--input", "-i", help="Input folder/file/URL (repeatable; overrides paths.inputs)."),
        input_list: Optional[Path] = InputListOpt, download: Optional[Path] = DownloadOpt,
        clinical: Optional[str] = typer.Option(None, "--clinical", help="Clinical CSV/Parquet."),
        workdir: Optional[Path] = WorkdirOpt, set: Optional[List[str]] = SetOpt, force: bool = ForceOpt,
        stages: Optional[str] = typer.Option(
            None, "--stages", help="Comma-separated subset of: synth, ingest, preprocess, qct, radiomics, "
            "embed, cluster, supervised, report, export (export runs when named here or enabled in the "
            "config).")) -> None:
    """Run the whole pipeline (synth → ingest → preprocess → qct → radiomics → embed → cluster →
    supervised → report [→ export]) as configured."""
    names = parse_stages(stages)
    cfg = load_cli_config(config, set, workdir=workdir, inputs=input, clinical=clinical)
    cfg = with_input_list(cfg, input_list, download, input)
    if input or input_list:
        cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"enabled": False})})
    if stages and "export" in names:
        cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update={"enabled": True})})
    run_and_report(cfg, names, force=force, command=" ".join(sys.argv))


def _register_stage_commands() -> None:
    from .eval.cli import register as reg_eval
    from .export.cli import register as reg_export
    from .features.cli import register as reg_features
    from .ingest.cli import register as reg_ingest
    from .preprocess.cli import register as reg_preprocess
    from .synth.cli import register as reg_synth
    from .train.cli import register as reg_train
    from .features.deep_embeddings.cli import register as reg_embed
    from .benchcli import register as reg_bench

    for reg in (reg_synth, reg_ingest, reg_preprocess, reg_features, reg_embed, reg_train, reg_eval, reg_export,
                reg_bench):
        reg(app)


_register_stage_commands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
