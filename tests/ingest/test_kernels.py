"""Kernel classes and kernel-aware series choice: density on the smooth series, airway on the sharp one."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.ingest.kernels import classify_kernel
from ctpheno.ingest.roles import density_airway_pairs, select_series
from ctpheno.ingest.stage import run_ingest
from ctpheno.io.layout import WorkDir
from ctpheno.io.volume import Volume
from ctpheno.synth.dicom import write_dicom_series

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "features"))
from acquisition_phantom import SPACING, make_object, scan  # noqa: E402


@pytest.mark.parametrize("vendor, kernel, expected", [
    ("SIEMENS", "B31f", "smooth"), ("SIEMENS", "B45f", "medium"), ("SIEMENS", "B70f", "sharp"),
    ("Siemens Healthineers", "Br40d\\3", "smooth"), ("SIEMENS", "Bl57d", "sharp"), ("SIEMENS", "I70f\\2", "sharp"),
    ("SIEMENS", "Qr40", "smooth"), ("GE MEDICAL SYSTEMS", "STANDARD", "smooth"), ("GE MEDICAL SYSTEMS", "SOFT", "smooth"),
    ("GE MEDICAL SYSTEMS", "DETAIL", "medium"), ("GE MEDICAL SYSTEMS", "LUNG", "sharp"),
    ("GE MEDICAL SYSTEMS", "BONEPLUS", "sharp"), ("GE MEDICAL SYSTEMS", "EDGE", "sharp"),
    ("Philips", "B", "smooth"), ("Philips", "C", "medium"), ("Philips", "D", "sharp"), ("Philips", "L", "sharp"),
    ("Philips", "YA", "sharp"), ("TOSHIBA", "FC13", "smooth"), ("CANON MEDICAL SYSTEMS", "FC52", "sharp"),
    ("", "B30f", "smooth"), ("", "FC51", "sharp"), ("UIH", "B_SOFT_B", "unknown"), ("TOSHIBA", "FC24", "unknown"),
    ("GE MEDICAL SYSTEMS", "", "unknown"),
])
def test_kernel_table(vendor, kernel, expected):
    assert classify_kernel(vendor, kernel)[0] == expected


def _manifest(kernels, thickness=(1.0, 1.0), classes=None):
    n = len(kernels)
    return pd.DataFrame({"scan_id": [f"s{i}" for i in range(n)], "study_id": "st", "usable": True,
                         "reasons": "", "slice_thickness_mm": list(thickness), "spacing_z_mm": list(thickness),
                         "size_z": 300, "kernel": kernels, "kernel_class": classes})


def test_selection_prefers_the_smooth_series_unless_it_is_thick():
    df = _manifest(["B70f", "B31f"], classes=["sharp", "smooth"])
    assert select_series(df, rule="smooth_kernel", lung_kernels=[]).tolist() == [False, True]
    assert select_series(df, rule="thinnest_lung_kernel", lung_kernels=["B70"]).tolist() == [True, False]
    thick = _manifest(["B70f", "B31f"], thickness=(1.0, 5.0), classes=["sharp", "smooth"])
    assert select_series(thick, rule="smooth_kernel", lung_kernels=[]).tolist() == [True, False]


def _study(folder: Path, series: list[tuple[str, str, str]]) -> Path:
    """One study of the test chest phantom: (kernel class, ConvolutionKernel, Manufacturer) per series."""
    obj = make_object(seed=5)
    for i, (kernel, name, vendor) in enumerate(series):
        write_dicom_series(Volume(scan(obj, kernel), SPACING), folder / name,
                           patient={"PatientID": "1", "PatientName": "A^B", "PatientBirthDate": "19500101",
                                    "PatientSex": "F", "PatientAge": "070Y"},
                           uid_entropy="kernel-test", series_entropy=f"kernel-test/{name}", series_number=2 + i,
                           rescale_intercept=-1024, manufacturer=vendor, scanner_model="X", kernel_name=name,
                           slice_thickness_mm=1.0, study_date=date(2020, 1, 1))
    return folder


def _ingest(inputs: Path, root: Path) -> pd.DataFrame:
    wd = WorkDir(root)
    cfg = PipelineConfig.model_validate({"paths": {"inputs": [str(inputs)], "workdir": str(wd.root),
                                                   "pseudonym_salt": "x"}, "cluster": {"kind": "synchronous"}})
    run_ingest(cfg, wd, None)
    return pd.read_parquet(wd.manifest)


def test_two_reconstruction_study_density_on_smooth_airway_on_sharp(tmp_path):
    man = _ingest(_study(tmp_path / "in", [("sharp", "B70f", "SIEMENS"), ("smooth", "B31f", "SIEMENS")]),
                  tmp_path / "work")
    by = man.set_index("kernel_class")
    assert set(by.index) == {"smooth", "sharp"} and by["study_id"].nunique() == 1
    assert set(by["kernel_class_source"]) == {"header"}
    assert by.loc["smooth", "selected"] and not by.loc["sharp", "selected"]
    assert (by.loc["smooth", "series_role"], by.loc["sharp", "series_role"]) == ("density", "airway")
    assert density_airway_pairs(man) == {by.loc["smooth", "scan_id"]: by.loc["sharp", "scan_id"]}


def test_unknown_kernels_are_decided_by_measured_noise(tmp_path):
    man = _ingest(_study(tmp_path / "in", [("sharp", "XR9", "ACME"), ("smooth", "XR1", "ACME")]),  # unknown names
                  tmp_path / "work").set_index("kernel")
    assert (man.loc["XR1", "kernel_class"], man.loc["XR9", "kernel_class"]) == ("smooth", "sharp")
    assert set(man["kernel_class_source"]) == {"noise"}
    assert man.loc["XR1", "selected"] and man.loc["XR9", "series_role"] == "airway"
