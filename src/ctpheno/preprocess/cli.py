"""`ctpheno` commands of the preprocess stage: `preprocess` (the stage) and `segment` (one scan)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from ..choices import literal_choices
from ..clicommon import ForceOpt, SetOpt, WorkdirOpt
from ..config.preprocess import SegmentationConfig

Backend = literal_choices("Backend", SegmentationConfig, "backend")


def segment_file(input_path: str, output: Path, *, backend: str = "classic",
                 modelpath: Path | None = None) -> dict:
    """Read one scan (DICOM folder, NIfTI, NRRD, MHA), segment it, write a label NIfTI on its own grid.

    Returns the QC numbers of the result.
    """
    import SimpleITK as sitk

    from ..config.preprocess import SegmentationConfig
    from ..io.readers import read_scan
    from .hu import to_hu_int16
    from .qc import qc_metrics
    from .segment import segment_lungs

    image = read_scan(input_path)
    image = image.with_array(to_hu_int16(image.array))
    labels = segment_lungs(image, config=SegmentationConfig(backend=backend, modelpath=modelpath))
    out = labels.to_sitk()
    name = str(output)
    if not name.endswith((".nii", ".nii.gz", ".nrrd", ".mha")):
        raise ValueError(f"OUTPUT {output} must end in .nii.gz, .nii, .nrrd or .mha")
    output.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(out, name, useCompression=True)
    return qc_metrics(image, labels)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("preprocess")
    def preprocess(
        config: Path | None = typer.Option(None, "--config", "-c", help="Pipeline YAML or a preprocess YAML "
                                           "(config/preprocess/*.yaml)."),
        sets: list[str] | None = SetOpt,
        workdir: Path | None = WorkdirOpt,
        force: bool = ForceOpt,
    ) -> None:
        """HU clipping, resampling, lung segmentation, zones, Zarr volumes and QC images for every ingested scan."""
        from ..clicommon import load_cli_config, run_and_report

        stage_file = config is not None and "preprocess" in config.parts and config.name != "pipeline.yaml"
        cfg = load_cli_config(config, sets, workdir=workdir, stage_file_for="preprocess" if stage_file else None)
        run_and_report(cfg, ["preprocess"], force=force, command=" ".join(sys.argv))

    @app.command("segment")
    def segment(
        input_path: str = typer.Argument(..., metavar="INPUT", help="DICOM folder, or a NIfTI/NRRD/MHA file."),
        output: Path = typer.Argument(..., metavar="OUTPUT", help="Label file to write (.nii.gz): 0 background, "
                                      "1 right lung, 2 left lung, 3 trachea/main bronchi, on the input's grid."),
        backend: Backend = typer.Option("classic", "--backend", help="Segmentation backend (lungmask and "
                                        "totalsegmentator need their pip extras)."),
        model_path: Path | None = typer.Option(None, "--modelpath", "--model-path", help="Local weights: a "
                                               "lungmask model file or TotalSegmentator's weights folder "
                                               "(segmentation.modelpath; nothing is downloaded)."),
    ) -> None:
        """Segment the lungs of one scan and write a label NIfTI on the input's own grid."""
        from ..clicommon import fail
        from ..errors import CTPhenoError

        try:
            qc = segment_file(input_path, output, backend=backend.value, modelpath=model_path)
        except (CTPhenoError, ValueError, ImportError) as err:
            fail(str(err))
            return
        typer.echo(f"wrote {output}: right {qc['right_volume_ml']:.0f} mL, left {qc['left_volume_ml']:.0f} mL"
                   + (f", flags: {qc['flags']}" if qc["flags"] else ""))
