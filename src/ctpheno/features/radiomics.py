"""Radiomics through PyRadiomics: validated parameter files, per-region extraction, captured logs.

Settings come from a PyRadiomics parameter file in PyRadiomics' own format
(``imageType``, ``featureClass``, ``setting``; e.g. ``config/features/radiomics.yaml``).
:func:`load_params` validates it *before any work* with PyRadiomics' own
schema (``radiomics.getParameterValidationFiles`` through pykwalify) plus
ctpheno's checks (known feature classes and image types, one of
``binWidth``/``binCount``, 3-element resampling spacing), and raises
:class:`~ctpheno.errors.ConfigError` naming the file.

:func:`extract_features` hands the image and a binary region mask to
``RadiomicsFeatureExtractor.execute`` untouched (geometry via
:meth:`Volume.to_sitk`). PyRadiomics logs its problems rather than raising, so
every record of level WARNING or above on the ``radiomics`` logger is
captured per call; an ERROR record or a non-finite feature value raises
:class:`~ctpheno.errors.FeatureExtractionError` with the captured messages
(the stage runner writes it to the failures table), warnings are returned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, FeatureExtractionError
from ..io.volume import Volume
from .regions import zone_region_masks

RADIOMICS_LOGGER = "radiomics"


def pyradiomics_version() -> str:
    import radiomics

    return str(radiomics.__version__)


def validate_params(params: Mapping[str, Any], *, source: str = "<params>") -> dict[str, Any]:
    """Validate a PyRadiomics parameter mapping (schema + ctpheno checks); return a normalised copy."""
    import pykwalify.core
    import radiomics

    data = copy.deepcopy(dict(params))
    pyk_log = logging.getLogger("pykwalify")
    old = pyk_log.level
    pyk_log.setLevel(logging.CRITICAL)
    try:
        schema_file, schema_funcs = radiomics.getParameterValidationFiles()
        core = pykwalify.core.Core(source_data=data, schema_files=[schema_file], extensions=[schema_funcs])
        core.validate(raise_exception=True)
    except Exception as err:  # pykwalify raises SchemaError/CoreError; message lists the paths
        msg = getattr(err, "msg", None) or str(err)
        raise ConfigError(f"PyRadiomics parameter file {source} fails PyRadiomics' schema: {msg}") from None
    finally:
        pyk_log.setLevel(old)
    classes = set(radiomics.getFeatureClasses())
    for name in data.get("featureClass") or {}:
        if name not in classes:
            raise ConfigError(
                f"{source}: featureClass {name!r} is unknown to PyRadiomics "
                f"{pyradiomics_version()}; choose from {sorted(classes)}"
            )
    types = set(radiomics.getImageTypes())
    for name in data.get("imageType") or {"Original": {}}:
        if name not in types:
            raise ConfigError(f"{source}: imageType {name!r} is unknown; choose from {sorted(types)}")
    setting = data.get("setting") or {}
    if "binWidth" in setting and "binCount" in setting:
        raise ConfigError(
            f"{source}: setting has both binWidth and binCount; keep one "
            f"(binWidth: fixed bin size in HU, binCount: fixed bin number)"
        )
    sp = setting.get("resampledPixelSpacing")
    if sp is not None and len(sp) != 3:
        raise ConfigError(
            f"{source}: setting.resampledPixelSpacing must have 3 values (x, y, z mm); got {sp}"
        )
    return data


GRID_INTERPOLATORS = {"bspline": "sitkBSpline", "linear": "sitkLinear"}
"""Analysis-grid interpolator -> the PyRadiomics ``interpolator`` setting that does the same."""


def resampled_spacing(params: Mapping[str, Any]) -> tuple[float, float, float] | None:
    """``setting.resampledPixelSpacing`` (x, y, z mm) of validated params, or None (no resampling)."""
    sp = (params.get("setting") or {}).get("resampledPixelSpacing")
    return None if sp is None else tuple(float(v) for v in sp)  # type: ignore[return-value]


def params_on_grid(params: Mapping[str, Any], *, spacing_mm: float, interpolator: str,
                   source: str = "<params>") -> dict[str, Any]:
    """Params for images already on the isotropic analysis grid: PyRadiomics' resampling off.

    The grid must be what PyRadiomics would have built: ``resampledPixelSpacing`` equal to
    ``spacing_mm`` on every axis and the same interpolator (``interpolator`` is the grid's,
    ``bspline`` or ``linear``; PyRadiomics' default is ``sitkBSpline``). Raises
    :class:`~ctpheno.errors.ConfigError` naming both settings otherwise.
    """
    sp = resampled_spacing(params)
    if sp is None or not all(abs(v - spacing_mm) < 1e-6 for v in sp):
        raise ConfigError(
            f"{source}: setting.resampledPixelSpacing is {None if sp is None else list(sp)} but the "
            f"analysis grid (preprocess.analysis_grid.spacing_mm) is {spacing_mm:g} mm; make them "
            f"equal, or set features.radiomics.resampling: pyradiomics")
    data = copy.deepcopy(dict(params))
    setting = data.setdefault("setting", {})
    asked = setting.get("interpolator", "sitkBSpline")
    if isinstance(asked, int):  # PyRadiomics also takes SimpleITK's enum value
        import SimpleITK as sitk

        asked = {int(getattr(sitk, n)): n for n in GRID_INTERPOLATORS.values()}.get(asked, asked)
    if asked != GRID_INTERPOLATORS.get(interpolator):
        raise ConfigError(
            f"{source}: setting.interpolator is {asked!r} but the analysis grid was interpolated with "
            f"{interpolator!r} (preprocess.analysis_grid.interpolator, = "
            f"{GRID_INTERPOLATORS.get(interpolator)!r}); make them agree, or set "
            f"features.radiomics.resampling: pyradiomics")
    setting.pop("resampledPixelSpacing", None)
    setting.pop("interpolator", None)
    return data


def load_params(path: str | Path) -> dict[str, Any]:
    """Read and validate a PyRadiomics parameter YAML file."""
    from ..config.base import read_yaml

    return validate_params(read_yaml(path), source=str(path))


def settings_hash(params: Mapping[str, Any]) -> str:
    """SHA-256 (16 hex) of the validated parameters and the PyRadiomics version."""
    text = json.dumps({"params": params, "pyradiomics": pyradiomics_version()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class _Capture(logging.Handler):
    """Keeps WARNING+ records of the calling thread only (a multi-threaded worker runs several scans)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.records.append(record)


def make_extractor(params: Mapping[str, Any], *, label: int | None = None):
    """A ``RadiomicsFeatureExtractor`` configured from validated ``params`` (``label`` overrides)."""
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    data = copy.deepcopy(dict(params))
    if label is not None:
        data.setdefault("setting", {})["label"] = int(label)
    import radiomics

    # warnings still reach the per-call capture handler (diagnostics table); PyRadiomics' own
    # stderr handler prints only errors, so a run's console is not flooded with its notes
    logging.getLogger(RADIOMICS_LOGGER).setLevel(logging.WARNING)
    radiomics.setVerbosity(logging.ERROR)
    return RadiomicsFeatureExtractor(data)


def extract_features(
    image: Volume, mask: Volume, *, params: Mapping[str, Any], label: int = 1, extractor: Any = None
) -> tuple[dict[str, float], dict[str, Any]]:
    """PyRadiomics features of ``label`` in ``mask`` over ``image``.

    Returns
    -------
    features
        ``{feature name: float}`` (PyRadiomics' names, e.g. ``original_glcm_Contrast``).
    diagnostics
        PyRadiomics' ``diagnostics_*`` entries (as strings) plus ``warnings`` (captured messages).

    Raises
    ------
    FeatureExtractionError
        PyRadiomics logged an error, raised, or returned a non-finite value.
    """
    image.check_same_geometry(mask, what="radiomics mask")
    lab = np.asarray(mask.array)
    if not np.any(lab == label):
        raise FeatureExtractionError(
            f"radiomics mask has no voxel with label {label} (labels present: {np.unique(lab)[:10].tolist()})"
        )
    ext = extractor if extractor is not None else make_extractor(params, label=label)
    ext.settings["label"] = int(label)
    cap = _Capture()
    logger = logging.getLogger(RADIOMICS_LOGGER)
    logger.addHandler(cap)
    try:
        result = ext.execute(image.to_sitk(), mask.to_sitk(), label=int(label))
    except Exception as err:  # PyRadiomics raises ValueError/RuntimeError/AssertionError on bad inputs
        raise FeatureExtractionError(
            f"PyRadiomics failed: {type(err).__name__}: {err}" + _log_text(cap.records)
        ) from err
    finally:
        logger.removeHandler(cap)
    errors = [r for r in cap.records if r.levelno >= logging.ERROR]
    if errors:
        raise FeatureExtractionError("PyRadiomics logged errors:" + _log_text(errors))
    feats: dict[str, float] = {}
    diag: dict[str, Any] = {}
    for key, value in result.items():
        if key.startswith("diagnostics_"):
            diag[key] = str(value)
            continue
        v = float(np.asarray(value))
        if not math.isfinite(v):
            raise FeatureExtractionError(f"PyRadiomics returned {v} for {key}" + _log_text(cap.records))
        feats[key] = v
    diag["warnings"] = "; ".join(r.getMessage() for r in cap.records)
    return feats, diag


def _log_text(records: Sequence[logging.LogRecord]) -> str:
    return "".join(f"\n  [{r.levelname}] {r.getMessage()}" for r in records)


def region_masks(labels: np.ndarray, zones: np.ndarray, regions: Sequence[str]) -> dict[str, np.ndarray]:
    """uint8 masks (1 inside) of the named regions, as in :mod:`ctpheno.features.qct`."""
    all_masks = zone_region_masks(np.asarray(labels), np.asarray(zones))
    unknown = [r for r in regions if r not in all_masks]
    if unknown:
        raise ValueError(f"unknown radiomics regions {unknown}; choose from {list(all_masks)}")
    return {r: all_masks[r].astype(np.uint8) for r in regions}


def extract_regions(
    image: Volume,
    labels: Volume,
    zones: Volume,
    *,
    params: Mapping[str, Any],
    regions: Sequence[str] = ("whole",),
    scan_id: str = "",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Wide feature table (``scan_id``, ``region``, features...) and diagnostics table of one scan."""
    ext = make_extractor(params, label=1)
    rows, diags = [], []
    for region, m in region_masks(labels.array, zones.array, regions).items():
        try:
            feats, diag = extract_features(image, labels.with_array(m), params=params, label=1, extractor=ext)
        except FeatureExtractionError as err:
            raise FeatureExtractionError(f"region {region!r}: {err}") from err
        rows.append({"scan_id": scan_id, "region": region, **feats})
        diags.append({"scan_id": scan_id, "region": region, **diag})
    df = pd.DataFrame(rows)
    df["scan_id"] = df["scan_id"].astype("string")
    df["region"] = df["region"].astype("string")
    return df, pd.DataFrame(diags).astype("string")


if __name__ == "__main__":  # ``python -m ctpheno.features.radiomics``; the entry point is in ctpheno.features.cli
    from .cli import radiomics_main
    raise SystemExit(radiomics_main())
