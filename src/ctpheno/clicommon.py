"""What every entry point shares: the common options, loading the configuration, running stages,
error messages and exit codes.

The ``ctpheno`` commands (``ctpheno.cli`` and each stage's ``cli.py``) and the ``python -m``
module entry points (``ctpheno.preprocess.run``, ``ctpheno.features.radiomics``,
``ctpheno.train.cluster`` / ``supervised``) take their options, configuration and error handling
from here, so a user error gives the same ``error: ...`` line and exit code (:mod:`ctpheno.exitcodes`)
whichever way a stage is started. How exceptions become codes is :mod:`ctpheno.clierrors`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable, List, Optional

import typer

from . import exitcodes
from .clierrors import invoked_command, module_exit
from .config.pipeline import load_pipeline_config
from .errors import CTPhenoError

ConfigOpt = typer.Option(None, "--config", "-c", help="Pipeline YAML (default: ./config/pipeline.yaml if "
                         "present, else the packaged copy of it).")
SetOpt = typer.Option(None, "--set", help="Override a config value: section.key=value (repeatable).")
WorkdirOpt = typer.Option(None, "--workdir", help="Work directory (overrides paths.workdir).")
ForceOpt = typer.Option(False, "--force", help="Recompute what is up to date (inputs and configuration unchanged).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON object.")


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


def echo_values(values: dict, *, as_json: bool, width: int, spec: str = "", header: str | None = None) -> None:
    """Print a command's named values: one JSON object with ``--json``, else ``header`` and one
    ``name value`` line each (names padded to ``width``, values formatted with ``spec``)."""
    if as_json:
        typer.echo(json.dumps(values))
        return
    if header:
        typer.echo(header)
    for key, value in values.items():
        typer.echo(f"{key:{width}s} {value:{spec}}")


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


def module_parser(prog: str, description: str | None, *, config_help: str,
                  force_help: str = "recompute scans that are up to date",
                  sets: bool = False) -> argparse.ArgumentParser:
    """The parser of a ``python -m ctpheno.<stage>`` entry point: ``--config FILE [--set K=V]
    [--workdir DIR] [--force]`` (``--config`` required; ``--set`` only with ``sets``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, type=Path, help=config_help)
    if sets:
        parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                            help="override a config value (repeatable)")
    parser.add_argument("--workdir", type=Path, default=None, help="work directory (overrides paths.workdir)")
    parser.add_argument("--force", action="store_true", help=force_help)
    return parser


def module_main(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int | None],
                argv: list[str] | None = None) -> int:
    """Parse ``argv`` with ``parser`` and run ``run(args)``; its exit code, or its exception's
    (the messages and codes of the ``ctpheno`` commands, :func:`ctpheno.clierrors.module_exit`)."""
    args = parser.parse_args(argv)
    return module_exit(lambda: run(args))
