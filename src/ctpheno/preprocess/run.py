"""Module entry point: ``python -m ctpheno.preprocess.run --config config/preprocess/nlst.yaml``.

Runs the preprocess stage alone from the artifacts of ingest (``manifest.parquet`` and
``ingest/sources.parquet`` in the work directory): HU clipping, optional resampling, lung
segmentation (1 right, 2 left, 3 airways), lung zones, per-scan Zarr stores, QC images and
``qc/qc.parquet``. The other config sections come from the ``pipeline.yaml`` beside or above the file.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .. import exitcodes
    from ..clicommon import module_main, module_parser
    from ..config.pipeline import load_pipeline_config
    from ..pipeline import run_stages

    parser = module_parser("python -m ctpheno.preprocess.run",
                           __doc__.split("\n\n", 1)[1] if __doc__ else None,
                           config_help="preprocess YAML (config/preprocess/*.yaml) or pipeline.yaml",
                           force_help="recompute scans already preprocessed", sets=True)

    def run(args) -> int:
        values = {"paths.workdir": str(args.workdir)} if args.workdir else {}
        stage_file = not str(args.config).endswith("pipeline.yaml")
        cfg = load_pipeline_config(args.config, overrides=list(args.sets), values=values,
                                   stage_file_for="preprocess" if stage_file else None)
        res = run_stages(cfg, ["preprocess"], force=args.force, command=" ".join(sys.argv)).get("preprocess")
        if res is not None:
            print(res.summary())
        return exitcodes.SCANS_FAILED if res is not None and not res.ok else exitcodes.OK

    return module_main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
