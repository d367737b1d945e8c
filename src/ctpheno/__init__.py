"""ctpheno: quantitative chest-CT phenotyping of COPD at population scale.

Stages (each a sub-package) talk only through the on-disk artifacts whose
schemas live in :mod:`ctpheno.io.schemas`:

``synth`` -> ``ingest`` -> ``preprocess`` -> ``features`` -> ``train`` -> ``eval``
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ctpheno")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
