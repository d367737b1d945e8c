"""The whole-pipeline configuration and its loader.

``config/pipeline.yaml`` has one section per stage. A section may be written
inline or as a path (relative to the file) to a per-stage YAML file, e.g.
``preprocess: preprocess/nlst.yaml``. ``paths:`` may likewise point to
``paths.yml``. A per-stage file given to a stage's entry point replaces that
section of the pipeline file found beside it (searching up from the file).
"""

from __future__ import annotations

import json
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .base import StrictModel, apply_overrides, apply_values, read_yaml, validate_model
from .common import ClusterConfig, PathsConfig
from .resources import DEFAULT_PIPELINE, default_file
from .stages import (EmbeddingsConfig, ExportConfig, FeaturesConfig, IngestConfig, ModelsConfig,
                     PreprocessConfig, ReportConfig, SynthConfig)


class PipelineConfig(StrictModel):
    """Every stage's settings (``config/pipeline.yaml``)."""

    paths: PathsConfig = PathsConfig()
    """Inputs, clinical table, work directory, pseudonym salt."""
    cluster: ClusterConfig = ClusterConfig()
    """Dask execution backend."""
    synth: SynthConfig = SynthConfig()
    """Synthetic cohort (demo)."""
    ingest: IngestConfig = IngestConfig()
    """Series discovery and validation."""
    preprocess: PreprocessConfig = PreprocessConfig()
    """HU, resampling, segmentation, Zarr, QC."""
    features: FeaturesConfig = FeaturesConfig()
    """QCT metrics and radiomics."""
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    """CNN embeddings."""
    models: ModelsConfig = ModelsConfig()
    """Clustering and supervised models."""
    report: ReportConfig = ReportConfig()
    """HTML report."""
    export: ExportConfig = ExportConfig()
    """NIfTI, DICOM SEG/SR and OME-Zarr exports of the results."""


SECTION_FILES: dict[str, tuple[str, ...]] = {
    # stage entry point -> section path its per-stage file fills
    "preprocess": ("preprocess",),
    "radiomics": ("features", "radiomics"),
    "qct": ("features", "qct"),
    "airways": ("features", "airways"),
    "embeddings": ("embeddings",),
    "unsupervised": ("models", "unsupervised"),
    "supervised": ("models", "supervised"),
    "ingest": ("ingest",),
    "synth": ("synth",),
}


PYRADIOMICS_KEYS = {"imageType", "featureClass", "setting", "voxelSetting"}
"""Top-level keys of a PyRadiomics parameter file (see :func:`load_pipeline_config`)."""


def _resolve_includes(data: dict[str, Any], base_dir: Path, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "params" and isinstance(value, str):
            # PyRadiomics' own file: not a section to include, but found like one (beside the
            # file that names it), else relative to the current directory as written
            beside = (base_dir / value).resolve()
            out[key] = str(beside) if beside.is_file() else value
        elif isinstance(value, str) and value.endswith((".yaml", ".yml")):
            inc = (base_dir / value).resolve()
            if not inc.is_file():
                raise ConfigError(f"{where}: section {key!r} points to {value!r}, but {inc} does not exist")
            out[key] = _resolve_includes(read_yaml(inc), inc.parent, str(inc))
        elif isinstance(value, dict):
            out[key] = _resolve_includes(value, base_dir, where)
        else:
            out[key] = value
    return out


def find_pipeline_file(start: Path) -> Path | None:
    for d in [start.parent, *start.parents]:
        cand = d / "pipeline.yaml"
        if cand.is_file():
            return cand
    return None


def load_pipeline_config(path: str | Path | None = None, *, overrides: tuple[str, ...] | list[str] = (),
                         stage_file_for: str | None = None,
                         values: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate the pipeline configuration.

    Parameters
    ----------
    path
        ``config/pipeline.yaml``, or a per-stage file when ``stage_file_for`` names the stage.
        ``None`` uses ``config/pipeline.yaml`` under the current directory if present, else the
        packaged copy of it (:mod:`ctpheno.config.resources`), so every command has the same
        defaults from any directory.
    overrides
        ``section.key=value`` strings (``--set``; the value is YAML), applied after the file.
    values
        ``{"section.key": value}`` set as data, last (command-line paths: never parsed as YAML).
    stage_file_for
        Treat ``path`` as that stage's file (see :data:`SECTION_FILES`) and take the other
        sections from the ``pipeline.yaml`` found beside or above it. For ``radiomics``, a
        PyRadiomics parameter file (``imageType``/``featureClass``/``setting`` keys) sets
        ``features.radiomics.params`` instead of replacing the section.
    """
    data: dict[str, Any] = {}
    if path is None:
        local = Path("config/pipeline.yaml")
        path = local if local.is_file() else default_file(DEFAULT_PIPELINE)
    if path is not None:
        path = Path(path)
        if stage_file_for is not None:
            if stage_file_for not in SECTION_FILES:
                raise ValueError(f"stage_file_for={stage_file_for!r} is not a stage with its own file; "
                                 f"use one of {sorted(SECTION_FILES)}")
            section = SECTION_FILES[stage_file_for]
            stage_data = _resolve_includes(read_yaml(path), path.parent, str(path))
            pipe = find_pipeline_file(path.resolve())
            if pipe is not None and pipe.resolve() != path.resolve():
                data = _resolve_includes(read_yaml(pipe), pipe.parent, str(pipe))
            # a stage file may carry paths/cluster sections of its own
            for shared in ("paths", "cluster"):
                if shared in stage_data:
                    data[shared] = stage_data.pop(shared)
            cur = data
            for p in section[:-1]:
                cur = cur.setdefault(p, {})
            if stage_file_for == "radiomics" and PYRADIOMICS_KEYS & set(stage_data):
                # the seed's radiomics file is PyRadiomics' own parameter file: it becomes ``params``
                base = cur.get(section[-1]) if isinstance(cur.get(section[-1]), dict) else {}
                cur[section[-1]] = {**base, "params": str(path)}
            else:
                cur[section[-1]] = stage_data
            source = f"{path} (section {'.'.join(section)})"
        else:
            data = _resolve_includes(read_yaml(path), path.parent, str(path))
            source = str(path)
    if overrides:
        data = apply_overrides(data, list(overrides))
        source += f" with overrides {list(overrides)}"
    if values:
        data = apply_values(data, values)
        source += f" with command-line options {sorted(values)}"
    return validate_model(PipelineConfig, data, source=source)


def package_versions() -> dict[str, str]:
    """Versions of Python, ctpheno and the scientific stack (saved with every run)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["ctpheno", "numpy", "scipy", "SimpleITK", "pydicom", "nibabel", "dask", "distributed", "zarr",
             "scikit-image", "pandas", "pyarrow", "pydantic", "pyradiomics-bhklab", "torch", "monai",
             "scikit-learn", "lightgbm"]
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for n in names:
        try:
            out[n] = version(n)
        except PackageNotFoundError:
            out[n] = "not installed"
    return out


def save_resolved(cfg: PipelineConfig, run_dir: str | Path) -> Path:
    """Write ``config.resolved.yaml`` and ``versions.json`` into ``run_dir``.

    Secrets (the pseudonym salt) are masked and input paths tokenised
    (:func:`ctpheno.config.public.public_config`).
    """
    from ..io.tables import atomic_path
    from .public import public_config

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    data = public_config(cfg)
    with atomic_path(run_dir / "config.resolved.yaml") as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    with atomic_path(run_dir / "versions.json") as tmp:
        tmp.write_text(json.dumps({"saved": datetime.now(timezone.utc).isoformat(), **package_versions()},
                                  indent=2))
    return run_dir
