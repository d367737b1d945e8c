"""``python -m ctpheno.features.deep_embeddings [train|extract] --config ...`` (default: extract).

The same as ``ctpheno embed ...``: the main app's error handling and exit codes.
"""

import sys

from ...cli import app

args = sys.argv[1:]
if not args or args[0] not in ("train", "extract", "--help"):
    args = ["extract", *args]
app(["embed", *args], prog_name="python -m ctpheno.features.deep_embeddings")
