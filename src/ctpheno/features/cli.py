"""`ctpheno` commands of the features stage: features, qct, radiomics, ibsi."""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional

import typer

from ..clicommon import ConfigOpt, ForceOpt, JsonOpt, SetOpt, WorkdirOpt, echo_values


def _jsonable(value):
    if value is None or type(value).__name__ == "NAType":  # pandas' missing value of nullable columns
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def qct_single(input_path: str, mask_path: Optional[str] = None, *, mask_labels: Optional[str] = None,
               airways: bool = True) -> dict:
    """QCT metrics of one scan file/folder as a flat dict.

    Keys: the whole-lung columns of the QCT table (``lung_volume_ml``, ``laa950_pct``,
    ``laa950_adj_pct``, ..., the airway endpoints ``pi10_mm`` ... measured here unless ``airways``
    is False), the scan-level descriptors once (``air_hu``, ``noise_hu``, ``blood_hu``,
    ``kernel_class``, ``qct_flags``, ...) and, for every other region, ``<region>_<column>``
    (``upper_laa950_pct``, ``right_perc15_adj_hu``, ...). Non-finite values are written as
    ``null`` (NaN) or ``"inf"``.
    A mask from another tool is taken on the scan's physical grid (array order may differ), binary
    masks are split into right and left, and ``mask_labels="totalsegmentator"`` maps its lobe labels.
    """
    import numpy as np

    from ..ingest.kernels import classify_kernel
    from ..io.readers import read_scan
    from ..preprocess.zones import lung_zones
    from .airways import measure_airways, with_endpoints
    from .qct import SCAN_COLUMNS, qct_metrics

    if mask_path is not None and not Path(mask_path).is_file():
        raise ValueError(f"--mask {mask_path}: not a file; give a label image (NIfTI/NRRD/MHA) on the scan's grid")
    image = read_scan(input_path)
    if mask_path is None:
        from ..preprocess import segment_lungs

        labels = segment_lungs(image)
    else:
        from ..config.preprocess import ExternalMaskConfig
        from ..preprocess.external import map_labels, read_mask, to_image_grid

        mask = to_image_grid(image, read_mask(mask_path, label=f"--mask {Path(mask_path).name}"),
                             what=f"mask {Path(mask_path).name}")
        values = set(np.unique(mask.array).tolist()) - {0}
        cfg = ExternalMaskConfig(preset=mask_labels) if mask_labels else (
            ExternalMaskConfig(label_map={1: "lung"}) if values == {1} else ExternalMaskConfig())
        labels, _ = map_labels(image, mask, cfg)
    zones = lung_zones(labels)
    sup_axis, sup_sign = image.index_axis_superior()
    df = qct_metrics(image.array, labels.array, zones.array, image.spacing_mm,
                     kernel_class=classify_kernel(image.meta.get("manufacturer"), image.meta.get("kernel"))[0],
                     superior_last=(sup_sign > 0) if sup_axis == 0 else None)
    df = with_endpoints(df, measure_airways(image.array, labels.array, image.spacing_mm,
                                            slice_thickness_mm=image.meta.get("slice_thickness_mm")).endpoints
                        if airways else None)
    out: dict = {}
    for row in df.to_dict("records"):
        region = row.pop("region")
        row.pop("scan_id", None)
        for key, value in row.items():
            if key in SCAN_COLUMNS:
                if region == "whole" or key not in out:
                    out[key] = _jsonable(value)
                continue
            out[key if region == "whole" else f"{region}_{key}"] = _jsonable(value)
    return out


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main app."""

    @app.command("features")
    def features(
        config: Optional[Path] = ConfigOpt, workdir: Optional[Path] = WorkdirOpt,
        set: Optional[List[str]] = SetOpt, force: bool = ForceOpt,
    ) -> None:
        """Run the airways, qct and radiomics stages on the preprocessed scans of the work directory."""
        from ..clicommon import load_cli_config, run_and_report

        cfg = load_cli_config(config, set, workdir=workdir)
        run_and_report(cfg, ["airways", "qct", "radiomics"], force=force, command="ctpheno features")

    @app.command("qct")
    def qct(
        input: str = typer.Argument(..., help="Scan: DICOM folder, NIfTI/NRRD/MHA file."),
        mask: Optional[str] = typer.Option(None, "--mask", help="Label image on the scan's physical grid "
                                           "(1 right lung, 2 left lung, 3 airways; a binary mask is split into "
                                           "right and left); segmented when omitted."),
        mask_labels: Optional[str] = typer.Option(None, "--mask-labels", help="Label convention of --mask: "
                                                  "totalsegmentator (lobes 10-14, trachea 16)."),
        as_json: bool = JsonOpt,
        airways: bool = typer.Option(True, "--airways/--no-airways",
                                     help="Measure the airway tree (Pi10, WA %% seg ...; thin slices only)."),
    ) -> None:
        """QCT metrics (LAA-950, Perc15, MLD, LAC, Pi10 ...) of one scan, whole lung and per region."""
        from ..clicommon import fail
        from ..errors import CTPhenoError

        try:
            out = qct_single(input, mask, mask_labels=mask_labels, airways=airways)
        except (CTPhenoError, ValueError, FileNotFoundError) as err:
            fail(str(err))
            return
        echo_values(out, as_json=as_json, width=40)

    @app.command("radiomics")
    def radiomics(
        image: Optional[Path] = typer.Argument(None, help="Image file (NIfTI/NRRD/MHA)."),
        mask: Optional[Path] = typer.Argument(None, help="Label image on the same grid."),
        params: Optional[Path] = typer.Option(None, "--params", help="PyRadiomics parameter YAML (PyRadiomics' "
                                              "format; default: the packaged copy of config/features/radiomics.yaml)."),
        label: Optional[int] = typer.Option(None, "--label",
                                            help="Label value (default: the params file's setting.label, else 1)."),
        as_json: bool = JsonOpt,
        batch: Optional[Path] = typer.Option(
            None, "--batch", help="PyRadiomics batch CSV (columns Image, Mask, optional Label): every case "
            "on the configured Dask cluster, output as `pyradiomics cases.csv -o out.csv -f csv` writes it."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="--batch: output CSV."),
        config: Optional[Path] = typer.Option(None, "--config", "-c", help="--batch: pipeline YAML (its "
                                              "cluster section)."),
        sets: Optional[List[str]] = typer.Option(None, "--set",
                                                 help="--batch: section.key=value (repeatable)."),
    ) -> None:
        """PyRadiomics features of one image and mask (or of a PyRadiomics batch file with --batch),
        with ctpheno's validation and error capture."""
        import SimpleITK as sitk

        from ..clicommon import fail
        from ..config.resources import radiomics_params_path
        from ..errors import CTPhenoError
        from ..io.volume import Volume
        from .radiomics import extract_features, load_params, pyradiomics_version, settings_hash

        params_path = radiomics_params_path(params)
        if batch is not None:
            _radiomics_batch(batch, out, params_path, config, sets)
            return
        if image is None or mask is None:
            fail("give IMAGE and MASK, or --batch cases.csv --out features.csv")
            return
        try:
            p = load_params(params_path)
            lab = label if label is not None else int((p.get("setting") or {}).get("label", 1))
            img = Volume.from_sitk(sitk.ReadImage(str(image)))
            msk = Volume.from_sitk(sitk.ReadImage(str(mask)))
            feats, diag = extract_features(img, msk, params=p, label=lab)
        except (CTPhenoError, ValueError, RuntimeError) as err:
            fail(str(err))
            return
        echo_values(feats, as_json=as_json, width=60, spec=".8g",
                    header=f"# PyRadiomics {pyradiomics_version()}, settings hash {settings_hash(p)}")
        if not as_json and diag.get("warnings"):
            typer.echo(f"# warnings: {diag['warnings']}")

    @app.command("ibsi")
    def ibsi(
        out: Path = typer.Option(
            Path("docs/ibsi_compliance.md"), "--out", help="Compliance table (Markdown)."
        ),
        feature_map: Path = typer.Option(
            Path("docs/ibsi_feature_map.md"), "--map-out", help="PyRadiomics -> IBSI tag table (Markdown)."
        ),
        data: Path = typer.Option(Path("../shared/data"), "--data", help="Folder holding ibsi_1_* data."),
        configurations: str = typer.Option(
            "digital,A,B,C,D,E", "--configurations", help="Comma-separated subset of digital,A,B,C,D,E."
        ),
    ) -> None:
        """Run PyRadiomics on the IBSI-1 phantoms and write the compliance table."""
        from .ibsi import compliance_markdown, feature_map_markdown, run_ibsi

        table = run_ibsi(data, [c.strip() for c in configurations.split(",") if c.strip()])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(compliance_markdown(table))
        feature_map.write_text(feature_map_markdown())
        for name, g in table.groupby("configuration", sort=False):
            typer.echo(f"{name}: {int(g['pass'].sum())}/{len(g)} pass")
        typer.echo(f"wrote {out} and {feature_map}")


def _radiomics_batch(batch: Path, out: Optional[Path], params_path: Path, config: Optional[Path],
                     sets: Optional[List[str]]) -> None:
    """``ctpheno radiomics --batch``: PyRadiomics' batch mode, one Dask task per case."""
    from ..clicommon import fail, load_cli_config
    from ..cluster.client import open_client
    from ..errors import CTPhenoError
    from ..logs import setup_logging
    from .batch import read_cases, run_batch, write_batch_csv
    from .radiomics import load_params

    if out is None:
        fail("--batch needs --out features.csv")
        return
    cfg = load_cli_config(config, sets)
    try:
        load_params(params_path)  # PyRadiomics' schema and ctpheno's checks, before any case runs
        cases = read_cases(batch)
    except (CTPhenoError, ValueError, FileNotFoundError) as err:
        fail(str(err))
        return
    setup_logging()
    with open_client(cfg.cluster) as client:
        result = run_batch(cases, params_path, client)
    write_batch_csv(result.rows, out)
    typer.echo(f"wrote {out}: {len(result.rows)} case(s), {len(result.failed)} failed")
    for row, message in result.failed:
        typer.echo(f"case {row}: {message}", err=True)
    if result.failed:
        raise typer.Exit(1)


def radiomics_main(argv: list[str] | None = None) -> int:
    """``python -m ctpheno.features.radiomics --config PARAMS.yaml [--workdir W] [--force]``.

    ``--config`` is a PyRadiomics parameter file; it becomes ``features.radiomics.params`` and
    the other settings come from the ``pipeline.yaml`` found beside or above it
    (``load_pipeline_config(..., stage_file_for="radiomics")``), or defaults;
    ``--workdir`` overrides ``paths.workdir``.
    """
    from .. import exitcodes
    from ..clicommon import module_main, module_parser
    from ..cluster.client import open_client
    from ..config.pipeline import load_pipeline_config
    from ..io.layout import WorkDir
    from .radiomics import load_params
    from .stage import run_radiomics

    parser = module_parser("python -m ctpheno.features.radiomics",
                           "Run the radiomics stage with a PyRadiomics parameter file.",
                           config_help="PyRadiomics parameter YAML")

    def run(args) -> int:
        load_params(args.config)  # fail early, naming the file
        values = {"paths.workdir": str(args.workdir)} if args.workdir is not None else {}
        # the PyRadiomics file becomes features.radiomics.params; other sections from pipeline.yaml above it
        cfg = load_pipeline_config(args.config, values=values, stage_file_for="radiomics")
        with open_client(cfg.cluster) as client:
            res = run_radiomics(cfg, WorkDir(cfg.paths.workdir), client, force=args.force)
        print(res.summary())
        return exitcodes.OK if res.ok else exitcodes.SCANS_FAILED

    return module_main(parser, run, argv)
