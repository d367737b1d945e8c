"""``ctpheno run`` on one real DICOM series, then on two: exit 0 and a report that says why no model
was fitted (the cluster stage used to crash with "every feature is constant").

Both runs share one work directory, so the second only preprocesses the added series. Radiomics and
embeddings are off and preprocessing resamples to 2.5 mm to keep the test fast; the model stages
see the same one- and two-subject cohorts either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from pydicom.uid import generate_uid
from typer.testing import CliRunner

from ctpheno import exitcodes
from ctpheno.cli import app
from ctpheno.ingest.phi import find_phi
from ctpheno.io.layout import WorkDir

REPO = Path(__file__).resolve().parents[2]
FAST = ["--config", str(REPO / "config" / "pipeline.yaml"), "--set", "cluster.kind=synchronous",
        "--set", "features.radiomics.enabled=false", "--set", "embeddings.enabled=false",
        "--set", "preprocess.spacing_mm=[2.5, 2.5, 2.5]", "--set", "paths.pseudonym_salt=tiny"]


def _second_subject(lidc: Path, dest: Path, n: int = 48) -> Path:
    """The middle ``n`` slices of the LIDC series as another patient's series (pixel data untouched)."""
    files = sorted(lidc.glob("*.dcm"), key=lambda f: float(pydicom.dcmread(f, stop_before_pixels=True)
                                                          .ImagePositionPatient[2]))
    mid = len(files) // 2
    study, series = generate_uid(entropy_srcs=["tiny-study"]), generate_uid(entropy_srcs=["tiny-series"])
    dest.mkdir(parents=True)
    for k, f in enumerate(files[mid - n // 2: mid + n // 2]):
        ds = pydicom.dcmread(f)
        ds.PatientID, ds.PatientName = "TINY-SECOND-7", "SECOND^SUBJECT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f.name, "tiny"])
        ds.save_as(dest / f"{k:04d}.dcm")
    return dest


@pytest.fixture(scope="module")
def runs(shared_data, tmp_path_factory):
    lidc = shared_data / "lidc_idri_0314"
    base = tmp_path_factory.mktemp("tiny")
    wd = WorkDir(base / "work")
    one = CliRunner().invoke(app, ["run", "--input", str(lidc), "--workdir", str(wd.root), *FAST])
    report_one = wd.report.read_text() if wd.report.is_file() else ""
    skipped_one = {p.parent.name: json.loads(p.read_text()) for p in wd.models_dir.glob("*/skipped.json")}
    second = _second_subject(lidc / "dicom", base / "second")
    two = CliRunner().invoke(app, ["run", "--input", str(lidc), "--input", str(second), "--workdir", str(wd.root),
                                   *FAST])
    return {"wd": wd, "one": one, "two": two, "report_one": report_one, "skipped_one": skipped_one,
            "lidc": lidc, "second": second}


def test_one_series_exits_0_with_a_report_saying_why_no_model(runs):
    res = runs["one"]
    assert res.exit_code == exitcodes.OK, res.output
    assert runs["skipped_one"]["clusters"]["reason"] == "too few subjects for clustering: 1 (at least 6 needed)"
    assert runs["skipped_one"]["supervised"]["reason"].startswith("no clinical table")
    html = runs["report_one"]
    assert "Why no model was fitted" in html and "too few subjects for clustering: 1" in html


def test_two_series_exit_0_reusing_the_first_scan(runs):
    res, wd = runs["two"], runs["wd"]
    assert res.exit_code == exitcodes.OK, res.output
    assert "preprocess: 1 done, 1 up to date, 0 failed" in res.output
    man = pd.read_parquet(wd.manifest)
    assert man["usable"].sum() == 2 and man["subject_id"].nunique() == 2
    qct = pd.read_parquet(wd.qct).query("region == 'whole'")
    assert len(qct) == 2 and qct["lung_volume_ml"].between(500, 9000).all()
    # the second series is a 48-slice slab: the QC gate leaves it out of the models (cut lungs)
    gated = pd.read_parquet(wd.excluded_scans)
    assert len(gated) == 1 and gated["applied"].all() and "apex_cut" in gated["reasons"].item()
    html = wd.report.read_text()
    assert "Why no model was fitted" in html and "too few subjects for clustering: 1 (at least 6 needed)" in html
    skipped = json.loads((wd.models_dir / "clusters" / "skipped.json").read_text())
    assert skipped["n_subjects"] == 1 and not list((wd.models_dir / "clusters").glob("*.parquet"))


def test_no_path_or_identifier_of_the_real_series_past_ingest(runs):
    lidc, second = runs["lidc"], runs["second"]
    first = next((lidc / "dicom").glob("*.dcm"))
    ds = pydicom.dcmread(first, stop_before_pixels=True)
    needles = [str(lidc), lidc.name, str(second), first.name, "0001.dcm", str(ds.PatientID),
               "TINY-SECOND-7", "SECOND^SUBJECT", str(ds.SeriesInstanceUID)]
    assert find_phi(runs["wd"].root, needles) == []
