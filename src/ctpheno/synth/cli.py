"""`ctpheno synth`: write a synthetic COPD cohort (DICOM or NIfTI) with its truth."""

from __future__ import annotations

from pathlib import Path

import typer

from ..choices import literal_choices
from ..config.synth import SynthConfig

Size = literal_choices("Size", SynthConfig, "size")
Format = literal_choices("Format", SynthConfig, "format")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", help="Output folder (images/, clinical.csv, truth/ ...)."),
        n: int = typer.Option(24, "--n", min=1, help="Number of subjects."),
        seed: int = typer.Option(7, "--seed", min=0, help="Cohort seed (same seed, same pixels)."),
        size: Size = typer.Option("demo", "--size",
                                  help="demo (~128x128x100, 2.5-3 mm) or full (512x512, NLST-like)."),
        fmt: Format = typer.Option("dicom", "--format", help="Image format of the cohort."),
        force: bool = typer.Option(False, "--force", help="Re-render subjects already written."),
    ) -> None:
        """Generate a synthetic COPD cohort with known ground truth."""
        from .cohort import write_cohort

        path = write_cohort(out, n=n, seed=seed, size=size.value, fmt=fmt.value, force=force)
        typer.echo(f"wrote {n} synthetic subjects to {path}")
