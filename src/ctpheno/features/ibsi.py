"""IBSI-1 compliance of the PyRadiomics configuration: digital phantom and CT phantom configurations.

Runs PyRadiomics (through :func:`ctpheno.features.radiomics.extract_features`) on
the IBSI-1 digital phantom (no resampling, fixed bin size 1) and on the IBSI-1 CT
radiomics phantom under configurations A–E (Zwanenburg et al., IBSI manual,
"Reference data sets"; parameters in :data:`CONFIGURATIONS`), looks up each
feature's IBSI tag (:mod:`ctpheno.features.ibsi_map`) in the consensus reference
table, and writes ``docs/ibsi_compliance.md``.

A value *passes* when ``|value - reference| <= tolerance`` or when it equals the
reference at the reference's precision (IBSI publishes 3 significant digits, and
a tolerance of 0 for most digital-phantom features means exactly that).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..io.volume import Volume
from .ibsi_map import CONFIG_DEVIATIONS, IBSI_TAGS, KNOWN_DEVIATIONS, ibsi_tag_candidates
from .radiomics import extract_features, pyradiomics_version, validate_params

ALL_CLASSES = ("firstorder", "shape", "glcm", "glrlm", "glszm", "gldm", "ngtdm")


@dataclass(frozen=True)
class IBSIConfiguration:
    name: str
    """'digital' or 'A'..'E'."""
    phantom: str
    """Folder under the shared data: the digital or the CT phantom."""
    reference: str
    """zrad reference file stem."""
    setting: dict[str, Any] = field(default_factory=dict)
    """PyRadiomics settings reproducing the IBSI parameters as far as PyRadiomics can."""
    two_d: bool = False


_BASE = {"label": 1, "voxelArrayShift": 0, "additionalInfo": False}
CONFIGURATIONS: dict[str, IBSIConfiguration] = {
    "digital": IBSIConfiguration(
        "digital", "ibsi_1_digital_phantom", "digital_phantom", {**_BASE, "binWidth": 1}
    ),
    "A": IBSIConfiguration(
        "A",
        "ibsi_1_ct_radiomics_phantom",
        "config_A",
        {**_BASE, "force2D": True, "force2Ddimension": 0, "resegmentRange": [-500, 400], "binWidth": 25},
        two_d=True,
    ),
    "B": IBSIConfiguration(
        "B",
        "ibsi_1_ct_radiomics_phantom",
        "config_B",
        {
            **_BASE,
            "force2D": True,
            "force2Ddimension": 0,
            "resampledPixelSpacing": [2, 2, 0],
            "interpolator": "sitkLinear",
            "resegmentRange": [-500, 400],
            "binCount": 32,
        },
        two_d=True,
    ),
    "C": IBSIConfiguration(
        "C",
        "ibsi_1_ct_radiomics_phantom",
        "config_C",
        {
            **_BASE,
            "resampledPixelSpacing": [2, 2, 2],
            "interpolator": "sitkLinear",
            "resegmentRange": [-1000, 400],
            "binWidth": 25,
        },
    ),
    "D": IBSIConfiguration(
        "D",
        "ibsi_1_ct_radiomics_phantom",
        "config_D",
        {
            **_BASE,
            "resampledPixelSpacing": [2, 2, 2],
            "interpolator": "sitkLinear",
            "resegmentMode": "sigma",
            "resegmentRange": [-3, 3],
            "binCount": 32,
        },
    ),
    "E": IBSIConfiguration(
        "E",
        "ibsi_1_ct_radiomics_phantom",
        "config_E",
        {
            **_BASE,
            "resampledPixelSpacing": [2, 2, 2],
            "interpolator": "sitkBSpline",
            "resegmentMode": "sigma",
            "resegmentRange": [-3, 3],
            "binCount": 32,
        },
    ),
}


def load_phantom(data_dir: Path, phantom: str) -> tuple[Volume, Volume]:
    """Image and mask of an IBSI phantom (NIfTI) as Volumes."""
    import SimpleITK as sitk

    root = Path(data_dir) / phantom / "nifti"
    paths = root / "image" / "phantom.nii.gz", root / "mask" / "mask.nii.gz"
    for p in paths:
        if not p.is_file():
            raise FileNotFoundError(
                f"IBSI phantom file {p} is missing; expected the shared data folder layout "
                f"(shared/data/README.md)"
            )
    img, msk = (Volume.from_sitk(sitk.ReadImage(str(p))) for p in paths)
    return img, msk.with_array((msk.array > 0).astype("uint8"))


def read_reference(data_dir: Path, stem: str) -> dict[str, tuple[float, float]]:
    """tag -> (reference value, tolerance) from the zrad copy of the IBSI-1 table (rows with a value)."""
    path = Path(data_dir) / "ibsi_1_reference_values" / "zrad" / f"ibsi_1_reference_values_{stem}.csv"
    out = {}
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["reference value"].strip():
                out[row["tag"]] = (float(row["reference value"]), float(row["tolerance"] or 0))
    return out


def matches(value: float, reference: float, tolerance: float) -> bool:
    """IBSI match: within tolerance, or equal at the reference's 3 significant digits."""
    if not math.isfinite(value):
        return False
    if abs(value - reference) <= tolerance * (1 + 1e-9) + 1e-12:
        return True
    return float(f"{value:.3g}") == float(f"{reference:.3g}")


def run_configuration(config: IBSIConfiguration, data_dir: Path) -> pd.DataFrame:
    """One row per mapped PyRadiomics feature: feature, tag, reference, tolerance, value, pass, reason."""
    image, mask = load_phantom(data_dir, config.phantom)
    params = validate_params(
        {
            "imageType": {"Original": {}},
            "featureClass": {c: [] for c in ALL_CLASSES},
            "setting": dict(config.setting),
        },
        source=f"IBSI configuration {config.name}",
    )
    feats, _ = extract_features(image, mask, params=params, label=1)
    ref = read_reference(data_dir, config.reference)
    rows = []
    for name, value in sorted(feats.items()):
        key = name.removeprefix("original_")
        cls = key.split("_", 1)[0]
        tag = IBSI_TAGS.get(key)
        if tag is None:
            continue
        full = next((t for t in ibsi_tag_candidates(cls, tag, two_d=config.two_d) if t in ref), None)
        if full is None:
            continue
        r, tol = ref[full]
        ok = matches(value, r, tol)
        reason = (
            ""
            if ok
            else KNOWN_DEVIATIONS.get(
                tag, CONFIG_DEVIATIONS.get(config.name, "not explained by PyRadiomics' documented deviations")
            )
        )
        rows.append(
            {
                "configuration": config.name,
                "feature": name,
                "tag": full,
                "reference": r,
                "tolerance": tol,
                "value": value,
                "pass": ok,
                "reason": reason,
            }
        )
    return pd.DataFrame(rows)


def run_ibsi(data_dir: Path, configurations: list[str] | None = None) -> pd.DataFrame:
    """All configurations (default: digital, A–E) in one table."""
    names = configurations or list(CONFIGURATIONS)
    unknown = [n for n in names if n not in CONFIGURATIONS]
    if unknown:
        raise ValueError(f"unknown IBSI configurations {unknown}; choose from {list(CONFIGURATIONS)}")
    return pd.concat([run_configuration(CONFIGURATIONS[n], data_dir) for n in names], ignore_index=True)


def compliance_markdown(table: pd.DataFrame) -> str:
    """``docs/ibsi_compliance.md`` from :func:`run_ibsi`'s table."""
    lines = [
        "# IBSI-1 compliance of ctpheno's PyRadiomics features",
        "",
        f"Generated by `ctpheno ibsi --out docs/ibsi_compliance.md` with PyRadiomics {pyradiomics_version()} "
        "(do not edit by hand). Reference values: IBSI-1 consensus tables "
        "(shared/data/ibsi_1_reference_values, "
        "zrad copy). A value passes when it lies within the IBSI tolerance or equals the reference at its "
        "3 significant digits. PyRadiomics settings per configuration: "
        "`ctpheno.features.ibsi.CONFIGURATIONS`; "
        "feature-to-tag map: `ctpheno.features.ibsi_map` (see docs/ibsi_feature_map.md).",
        "",
        "| configuration | features compared | pass | fail |",
        "|---|---|---|---|",
    ]
    for name, g in table.groupby("configuration", sort=False):
        lines.append(f"| {name} | {len(g)} | {int(g['pass'].sum())} | {int((~g['pass']).sum())} |")
    lines.append("")
    for name, g in table.groupby("configuration", sort=False):
        lines += [f"## Configuration {name}", ""]
        if name in CONFIG_DEVIATIONS:
            lines += [f"Known PyRadiomics deviation: {CONFIG_DEVIATIONS[name]}", ""]
        lines += [
            "| feature | IBSI tag | reference | tolerance | value | pass | reason for failure |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in g.to_dict("records"):
            lines.append(
                f"| `{r['feature']}` | `{r['tag']}` | {r['reference']:g} | {r['tolerance']:g} | "
                f"{r['value']:.6g} | {'pass' if r['pass'] else 'FAIL'} | {r['reason']} |"
            )
        lines.append("")
    return "\n".join(lines)


def feature_map_markdown() -> str:
    """``docs/ibsi_feature_map.md``: every PyRadiomics feature and its IBSI tag."""
    lines = [
        "# PyRadiomics feature -> IBSI tag",
        "",
        "Generated from `ctpheno.features.ibsi_map.IBSI_TAGS`. Texture tags take the suffix of PyRadiomics' "
        "aggregation: GLCM/GLRLM `_3D_avg` (per-direction features averaged), GLSZM/GLDM/NGTDM `_3D`; "
        "with `force2D`, `_2_5D_avg` / `_2_5D`. '—': no IBSI counterpart.",
        "",
        "| PyRadiomics feature | IBSI tag | note |",
        "|---|---|---|",
    ]
    for name, tag in IBSI_TAGS.items():
        lines.append(
            f"| `original_{name}` | {f'`{tag}`' if tag else '—'} | {KNOWN_DEVIATIONS.get(tag or '', '')} |"
        )
    return "\n".join(lines) + "\n"
