"""`ctpheno ingest`: discover, validate and catalogue CT series; `ctpheno ingest idc`: IDC cohort query."""

from __future__ import annotations

import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("ingest")
    def ingest(
        paths: list[str] | None = typer.Argument(
            None, help="Folders/files/URLs to ingest (override paths.inputs); or `idc` for the IDC query."
        ),
        config: Path | None = typer.Option(None, "--config", "-c", help="Pipeline YAML (or an ingest YAML)."),
        sets: list[str] | None = typer.Option(
            None, "--set", help="Override a config value: section.key=value."
        ),
        workdir: Path | None = typer.Option(
            None, "--workdir", help="Work directory (overrides paths.workdir)."
        ),
        clinical: str | None = typer.Option(None, "--clinical", help="Clinical CSV/Parquet."),
        force: bool = typer.Option(
            False, "--force", help="Accepted for symmetry; ingest always re-reads headers."
        ),
        collection: str = typer.Option(
            "nlst", "--collection", help="idc: IDC collection id (nlst, lidc_idri ...)."
        ),
        limit: int | None = typer.Option(None, "--limit", min=1, help="idc: at most this many patients."),
        out: Path | None = typer.Option(None, "--out", help="idc: folder for series.csv and s5cmd manifest."),
        modality: str = typer.Option("CT", "--modality", help="idc: modality of the series to list."),
        download: Path | None = typer.Option(
            None, "--download", help="idc: also download the listed series into this folder (idc-index's "
            "downloader, one folder per SeriesInstanceUID); with --input-list: where its IDC series go."),
        input_list: Path | None = typer.Option(
            None, "--input-list", help="CSV of inputs (column `path` or `SeriesInstanceUID`, else the "
            "first): paths / URLs, or IDC SeriesInstanceUIDs downloaded first (the [idc] extra)."),
    ) -> None:
        """Discover DICOM/NIfTI/NRRD/MHA series, validate them and write manifest.parquet.

        `ctpheno ingest idc --collection nlst --limit N --out DIR [--download DIR]` instead lists a
        cohort from the offline IDC index, writes the series table and an s5cmd download manifest
        and, with --download, fetches the series through idc-index.
        """
        from ..clicommon import fail, load_cli_config, run_and_report, with_input_list
        from ..errors import CTPhenoError

        if paths and paths[0] == "idc":
            from .idc import query_collection, write_idc_outputs

            if out is None:
                fail("ctpheno ingest idc needs --out DIR")
                return
            try:
                series = query_collection(collection, limit_patients=limit, modality=modality)
            except (ValueError, CTPhenoError) as err:
                fail(str(err))
                return
            files = write_idc_outputs(series, out)
            typer.echo(
                f"{series['PatientID'].nunique()} patients, {len(series)} {modality} series from "
                f"{collection!r}; wrote {', '.join(str(f) for f in files)}"
            )
            if download is not None:
                from .cohort import download_idc_series

                try:
                    folders = download_idc_series(series["SeriesInstanceUID"].tolist(), download)
                except (ValueError, RuntimeError, CTPhenoError) as err:
                    fail(str(err))
                    return
                typer.echo(f"downloaded {len(folders)} series into {download}")
            return
        cfg = load_cli_config(
            config,
            sets,
            workdir=workdir,
            inputs=paths or None,
            clinical=clinical,
            stage_file_for="ingest"
            if config is not None and config.name != "pipeline.yaml" and _is_stage_file(config)
            else None,
        )
        cfg = with_input_list(cfg, input_list, download, paths)
        if not cfg.paths.inputs:
            fail("nothing to ingest: give PATH arguments, --input-list or set paths.inputs in the config")
            return
        cfg = cfg.model_copy(update={"synth": cfg.synth.model_copy(update={"enabled": False})})
        run_and_report(cfg, ["ingest"], force=force, command=" ".join(sys.argv))


def _is_stage_file(path: Path) -> bool:
    """True when ``path`` is an ingest-section file (no ``paths:``/``ingest:`` top-level sections)."""
    from ..config.base import read_yaml
    from ..config.ingest import IngestConfig

    try:
        data = read_yaml(path)
    except Exception:  # the loader reports the problem with the file name
        return False
    return (
        bool(data)
        and set(data) <= set(IngestConfig.model_fields) | {"paths", "cluster"}
        and "ingest" not in data
    )
