"""``python -m ctpheno.features.deep_embeddings --config config/features/embeddings.yaml``."""

from .cli import main

main()
