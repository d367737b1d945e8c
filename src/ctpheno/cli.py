"""Command-line interface (``ctpheno``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from . import exitcodes
from .clicommon import (ConfigOpt, DownloadOpt, ForceOpt, InputListOpt, SetOpt, WorkdirOpt, load_cli_config,
                        parse_stages, run_and_report, with_input_list)
from .clierrors import ErrorHandlingGroup

app = typer.Typer(add_completion=False, no_args_is_help=True, cls=ErrorHandlingGroup,
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Quantitative chest-CT phenotyping of COPD: ingest → preprocess → features → models → report.",
                  epilog=exitcodes.help_text())


def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"ctpheno {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Quantitative chest-CT phenotyping of COPD: ingest → preprocess → features → models → report."""


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
