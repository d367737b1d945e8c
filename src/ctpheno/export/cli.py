"""``ctpheno export``: the work directory's results as NIfTI, DICOM SEG/SR and OME-Zarr."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..config.export import EXPORT_FORMATS

def parse_formats(text: str | None) -> list[str] | None:
    """``nifti,dicom-seg`` as a list of known formats (None: the configured ones)."""
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in EXPORT_FORMATS]
    if unknown or not names:
        raise typer.BadParameter(f"{', '.join(unknown) or 'nothing'} is not an export format; choose from "
                                 f"{', '.join(EXPORT_FORMATS)} (comma-separated)", param_hint="--formats")
    return names


def register(app: typer.Typer) -> None:
    """Add ``export`` to the main app."""

    @app.command("export")
    def export(
        workdir: Path | None = typer.Option(None, "--workdir",
                                            help="Work directory (overrides paths.workdir)."),
        out: Path | None = typer.Option(None, "--out", help="Folder of the exports, one sub-folder per scan "
                                        "(default: export.out); outside the work directory."),
        formats: str | None = typer.Option(None, "--formats", help="Comma-separated subset of "
                                           f"{', '.join(EXPORT_FORMATS)} (default: all)."),
        config: Path | None = typer.Option(None, "--config", "-c", help="Pipeline YAML."),
        sets: list[str] | None = typer.Option(None, "--set",
                                              help="Override a config value: section.key=value."),
    ) -> None:
        """Export labels (NIfTI + label tables, Slicer .seg.nrrd), DICOM SEG, DICOM SR (QCT, TID 1500)
        and OME-Zarr per scan, on the original scan grid, under OUT/<scan_id>/."""
        from ..clicommon import load_cli_config, run_and_report

        chosen = parse_formats(formats)
        cfg = load_cli_config(config, sets, workdir=workdir)
        update = {"enabled": True, **({"out": out} if out is not None else {}),
                  **({"formats": chosen} if chosen is not None else {})}
        cfg = cfg.model_copy(update={"export": cfg.export.model_copy(update=update)})
        run_and_report(cfg, ["export"], force=True, command=" ".join(sys.argv))
