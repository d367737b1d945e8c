"""The default configuration files shipped inside the package.

``src/ctpheno/config/defaults/`` is a byte-for-byte copy of the repository's user-facing
``config/`` folder (a test keeps the two identical), read through :mod:`importlib.resources`
so that every command finds its defaults from any working directory, in an installed wheel
as in a source checkout.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

DEFAULTS_PACKAGE = "ctpheno.config"
DEFAULTS_FOLDER = "defaults"
DEFAULT_PIPELINE = "pipeline.yaml"
DEFAULT_RADIOMICS_PARAMS = "features/radiomics.yaml"


def defaults_dir() -> Path:
    """Folder of the packaged default configuration (the copy of ``config/``)."""
    return Path(str(files(DEFAULTS_PACKAGE).joinpath(DEFAULTS_FOLDER)))


def default_file(relative: str) -> Path:
    """A packaged default file by its path relative to ``config/`` (``"features/radiomics.yaml"``).

    Raises FileNotFoundError naming the packaged files when ``relative`` is not one of them.
    """
    path = defaults_dir() / relative
    if not path.is_file():
        known = sorted(str(p.relative_to(defaults_dir())) for p in defaults_dir().rglob("*.y*ml"))
        raise FileNotFoundError(f"no packaged default configuration {relative!r}; packaged: {known}")
    return path


def radiomics_params_path(params: str | Path | None) -> Path:
    """The PyRadiomics parameter file to use: ``params`` as given, or the packaged default when None."""
    return default_file(DEFAULT_RADIOMICS_PARAMS) if params is None else Path(params)
