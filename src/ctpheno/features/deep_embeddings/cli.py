"""`ctpheno embed train|extract` (also ``python -m ctpheno.features.deep_embeddings``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from ...choices import literal_choices
from ...clicommon import ForceOpt, SetOpt, WorkdirOpt
from ...config.embeddings import EmbeddingsConfig

embed_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="3D CNN embeddings: train the self-supervised encoder, extract per-scan embeddings.")

Model = literal_choices("Model", EmbeddingsConfig, "model")
ConfigOpt = typer.Option(None, "--config", "-c",
                         help="config/features/embeddings.yaml (other sections from the pipeline.yaml above it) "
                              "or a whole pipeline YAML.")


def _load(config: Optional[Path], sets: Optional[List[str]], workdir: Optional[Path]):
    from ...clicommon import load_cli_config

    stage_file = None
    if config is not None:
        from ...config.base import read_yaml

        if "paths" not in read_yaml(config) and "embeddings" not in read_yaml(config):
            stage_file = "embeddings"
    return load_cli_config(config, sets, workdir=workdir, stage_file_for=stage_file)


@embed_app.command()
def train(config: Optional[Path] = ConfigOpt, set: Optional[List[str]] = SetOpt,
          workdir: Optional[Path] = WorkdirOpt) -> None:
    """Train (or resume) the self-supervised encoder on the work directory's Zarr volumes."""
    from ...clicommon import fail
    from ...errors import CTPhenoError
    from ...io.layout import WorkDir
    from ...logs import setup_logging
    from .stage import train_from_workdir

    try:
        cfg = _load(config, set, workdir)
        setup_logging()
        path = train_from_workdir(cfg.embeddings, WorkDir(cfg.paths.workdir))
    except (CTPhenoError, FileNotFoundError, ValueError) as err:
        fail(str(err))
        return
    typer.echo(f"SSL encoder: {path} (model card: {path.parent / 'MODEL_CARD.md'})")


@embed_app.command()
def extract(config: Optional[Path] = ConfigOpt, set: Optional[List[str]] = SetOpt,
            workdir: Optional[Path] = WorkdirOpt,
            model: Optional[Model] = typer.Option(None, "--model",
                                                  help="Encoder (overrides embeddings.model)."),
            force: bool = ForceOpt) -> None:
    """Extract per-scan embeddings (training the SSL encoder first if it does not exist)."""
    from ...clicommon import fail, run_and_report
    from ...errors import CTPhenoError

    sets = list(set or [])
    if model:
        sets.append(f"embeddings.model={model.value}")
    try:
        cfg = _load(config, sets, workdir)
    except CTPhenoError as err:
        fail(str(err))
        return
    run_and_report(cfg, ["embed"], force=force, command=" ".join(sys.argv))


def register(app: typer.Typer) -> None:
    """Add ``ctpheno embed ...`` to the main app."""
    app.add_typer(embed_app, name="embed")
