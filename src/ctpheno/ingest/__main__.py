"""``python -m ctpheno.ingest --config config/pipeline.yaml`` — the same as ``ctpheno ingest``."""

from __future__ import annotations

import sys

from ..cli import app

if __name__ == "__main__":
    app(args=["ingest", *sys.argv[1:]], prog_name="python -m ctpheno.ingest")
