"""Module entry point: ``python -m ctpheno.preprocess.run --config config/preprocess/nlst.yaml``.

Runs the preprocess stage alone from the artifacts of ingest (``manifest.parquet`` and
``ingest/sources.parquet`` in the work directory): HU clipping, optional resampling, lung
segmentation (1 right, 2 left, 3 airways), lung zones, per-scan Zarr stores, QC images and
``qc/qc.parquet``. The other config sections come from the ``pipeline.yaml`` beside or above the file.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ctpheno.preprocess.run",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="preprocess YAML (config/preprocess/*.yaml) or pipeline.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="override a config value (repeatable)")
    parser.add_argument("--workdir", default=None, help="work directory (overrides paths.workdir)")
    parser.add_argument("--force", action="store_true", help="recompute scans already preprocessed")
    args = parser.parse_args(argv)

    from .. import exitcodes
    from ..clierrors import module_exit
    from ..config.pipeline import load_pipeline_config
    from ..pipeline import run_stages

    def run() -> int:
        values = {"paths.workdir": args.workdir} if args.workdir else {}
        stage_file = not args.config.endswith("pipeline.yaml")
        cfg = load_pipeline_config(args.config, overrides=list(args.sets), values=values,
                                   stage_file_for="preprocess" if stage_file else None)
        res = run_stages(cfg, ["preprocess"], force=args.force, command=" ".join(sys.argv)).get("preprocess")
        if res is not None:
            print(res.summary())
        return exitcodes.SCANS_FAILED if res is not None and not res.ok else exitcodes.OK

    return module_exit(run)


if __name__ == "__main__":
    sys.exit(main())
