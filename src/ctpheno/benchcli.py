"""``ctpheno bench``: runs the benchmark suite (see benchmarks/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(out: Path = typer.Option(Path("benchmarks/out"), help="Folder for JSON results."),
              results: Path = typer.Option(Path("docs/results.md"), help="Markdown results page to regenerate."),
              quick: bool = typer.Option(False, help="Smaller sizes, for a smoke run.")) -> None:
        """Measure throughput, memory and scaling; regenerate docs/results.md."""
        script = Path("benchmarks/run_all.py")
        if not script.exists():
            typer.secho(f"{script} not found; run from the repository root", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        cmd = [sys.executable, str(script), "--out", str(out), "--results", str(results)]
        if quick:
            cmd.append("--quick")
        raise typer.Exit(subprocess.call(cmd))
