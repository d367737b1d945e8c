"""`ctpheno` commands of the train stage: ``train`` (clustering + supervised) and ``predict``."""

from __future__ import annotations

import argparse
from pathlib import Path

import typer

from ..choices import choice_enum
from ..clicommon import ConfigOpt, ForceOpt, SetOpt, WorkdirOpt, module_main, module_parser

Only = choice_enum("Only", ("cluster", "supervised"))
"""``ctpheno train --only``: one of the two model stages."""


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("train")
    def train(
        config: Path | None = ConfigOpt, workdir: Path | None = WorkdirOpt, set: list[str] | None = SetOpt,
        only: Only | None = typer.Option(None, "--only", help="Run one of the two model stages (default: both)."),
        force: bool = ForceOpt,
    ) -> None:
        """Cluster subjects and cross-validate FEV1/GOLD/progression models on the feature tables."""
        from ..clicommon import load_cli_config, run_and_report

        cfg = load_cli_config(config, set, workdir=workdir)
        names = [only.value] if only else ["cluster", "supervised"]
        run_and_report(cfg, names, force=force, command="ctpheno train")

    @app.command("predict")
    def predict(
        model: Path = typer.Option(..., "--model", "-m", help="Saved model (<workdir>/models/*.joblib)."),
        workdir: Path = typer.Option(..., "--workdir", help="Work directory with the new scans' features."),
        out: Path | None = typer.Option(
            None,
            "--out",
            help="Output table (.parquet or .csv); default <workdir>/models/predictions/<model>.parquet.",
        ),
    ) -> None:
        """Apply a saved model to every scan with features in a work directory."""
        from ..clicommon import fail
        from ..io.layout import WorkDir
        from .stage import predict_with_model

        try:
            df = predict_with_model(model, WorkDir(workdir))
        except (FileNotFoundError, ValueError) as err:
            fail(str(err))
            return
        dest = out or WorkDir(workdir).models_dir / "predictions" / f"{model.stem}.parquet"
        dest.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(dest, index=False) if dest.suffix == ".csv" else df.to_parquet(dest)
        typer.echo(f"{len(df)} predictions of {df['target'].iloc[0] if len(df) else '?'} written to {dest}")


def _model_stage_main(stage: str, argv: list[str] | None) -> int:
    """``python -m ctpheno.train.<cluster|supervised> --config FILE [--workdir DIR] [--force]``.

    ``stage`` is ``cluster`` or ``supervised``; FILE may be the pipeline YAML or the stage's own
    file (``config/models/unsupervised.yaml`` / ``supervised.yaml``).
    """
    from ..config.pipeline import load_pipeline_config
    from ..io.layout import WorkDir
    from . import cluster, supervised
    from .stage import run_clustering, run_supervised

    kernel, stage_file, run_stage = {
        "cluster": (cluster, "unsupervised", run_clustering),
        "supervised": (supervised, "supervised", run_supervised),
    }[stage]
    parser = module_parser(f"python -m ctpheno.train.{stage}", kernel.__doc__,
                           config_help=f"config/models/{stage_file}.yaml", force_help="recompute even if up to date")

    def run(args: argparse.Namespace) -> int:
        cfg = load_pipeline_config(args.config, stage_file_for=stage_file)
        print(run_stage(cfg, WorkDir(args.workdir or cfg.paths.workdir), None, force=args.force).summary())
        return 0

    return module_main(parser, run, argv)


def cluster_main(argv: list[str] | None = None) -> int:
    """``python -m ctpheno.train.cluster --config config/models/unsupervised.yaml [--workdir DIR]``."""
    return _model_stage_main("cluster", argv)


def supervised_main(argv: list[str] | None = None) -> int:
    """``python -m ctpheno.train.supervised --config config/models/supervised.yaml [--workdir DIR]``."""
    return _model_stage_main("supervised", argv)
