"""run_ingest on the synthetic cohort's DICOM + clinical.csv: join, pseudonyms, PHI, Dask, CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
import yaml

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.errors import ClinicalTableError
from ctpheno.ingest.clinical import check_clinical
from ctpheno.ingest.phi import find_phi
from ctpheno.ingest.stage import clinical_join_path, pseudonym_map_path, run_ingest
from ctpheno.io import MANIFEST, WorkDir, read_table
from ctpheno.io.readers import read_scan

SYNTH_CLINICAL = [
    "subject_id",
    "age_years",
    "sex",
    "height_cm",
    "pack_years",
    "fev1_pct_pred",
    "fev1_fvc",
    "gold_stage",
    "prism",
    "fev1_decline_ml_per_year",
]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    from ctpheno.synth.cohort import write_cohort

    return write_cohort(tmp_path_factory.mktemp("cohort"), n=2, seed=11, size="demo", fmt="dicom")


@pytest.fixture(scope="module")
def phi_needles(cohort) -> list[str]:
    out = []
    for folder in sorted((cohort / "images").iterdir()):
        ds = pydicom.dcmread(next(folder.iterdir()), stop_before_pixels=True)
        out += [
            str(ds.PatientID),
            str(ds.PatientBirthDate),
            str(ds.AccessionNumber),
            *str(ds.PatientName).split("^"),
            str(ds.StudyInstanceUID),
            str(ds.SeriesInstanceUID),
        ]
    return out


def _cfg(cohort: Path, wd: Path, *, clinical: Path | None = None, salt: str | None = "s3cret", **ingest):
    paths = {
        "inputs": [str(cohort / "images")],
        "workdir": str(wd),
        "clinical": str(clinical or cohort / "clinical.csv"),
        "pseudonym_salt": salt,
    }
    return PipelineConfig.model_validate(
        {"paths": paths, "cluster": {"kind": "synchronous"}, "ingest": ingest}
    )


@pytest.fixture(scope="module")
def ingested(cohort, tmp_path_factory):
    wd = WorkDir(tmp_path_factory.mktemp("work"))
    run_ingest(_cfg(cohort, wd.root, write_pseudonym_map=True), wd, None)
    return wd


def test_cohort_series_usable_and_read_like_simpleitk(ingested):
    wd = ingested
    manifest = read_table(wd.manifest, MANIFEST)
    assert len(manifest) == 2 and manifest["usable"].all() and manifest["selected"].all()
    assert set(manifest["modality"]) == {"CT"} and set(manifest["orientation"]) == {"axial"}
    sources = pd.read_parquet(wd.sources).set_index("scan_id")
    for sid in manifest["scan_id"]:
        paths = list(sources.loc[sid, "paths"])
        vol = read_scan(paths)
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(Path(paths[0]).parent)))
        img = reader.Execute()
        np.testing.assert_array_equal(vol.array, sitk.GetArrayFromImage(img))
        np.testing.assert_allclose(vol.spacing_mm, img.GetSpacing()[::-1], atol=1e-6)
        np.testing.assert_allclose(vol.origin_mm, img.GetOrigin(), atol=1e-6)
        row = manifest.set_index("scan_id").loc[sid]
        assert row["size_z"] == vol.shape[0] and row["spacing_z_mm"] == pytest.approx(vol.spacing_mm[0])


def test_clinical_join_uses_the_manifest_pseudonyms(ingested, cohort):
    wd = ingested
    manifest = read_table(wd.manifest, MANIFEST)
    clinical = pd.read_parquet(wd.clinical)
    raw = pd.read_csv(cohort / "clinical.csv", dtype={"subject_id": str})
    assert list(clinical.columns)[: len(SYNTH_CLINICAL)] == SYNTH_CLINICAL
    assert set(clinical["subject_id"]) == set(manifest["subject_id"])
    assert clinical["subject_id"].str.fullmatch(r"p-[0-9a-f]{12}").all()
    pd.testing.assert_series_equal(clinical["fev1_pct_pred"], raw["fev1_pct_pred"])
    join = pd.read_parquet(clinical_join_path(wd))
    assert join["has_images"].all() and join["has_clinical"].all() and (join["n_usable"] == 1).all()
    mapping = pseudonym_map_path(wd)
    assert stat.S_IMODE(os.stat(mapping).st_mode) == 0o600
    pairs = pd.read_csv(mapping, dtype=str)
    assert set(pairs["raw_id"]) == set(raw["subject_id"])


def test_no_phi_in_ingest_artifacts(ingested, phi_needles):
    assert find_phi(ingested.root, phi_needles) == []
    # the scanner is not blind: the mapping file holds the raw ids and is only skipped by name
    from ctpheno.ingest.phi import file_text

    assert phi_needles[0].lower() in file_text(pseudonym_map_path(ingested))


def test_unmatched_subjects_reported_and_bad_clinical_recorded(cohort, tmp_path):
    raw = pd.read_csv(cohort / "clinical.csv", dtype={"subject_id": str})
    extra = pd.concat([raw.iloc[:1], raw.iloc[:1].assign(subject_id="99999999")]).reset_index(drop=True)
    extra.to_csv(tmp_path / "c.csv", index=False)
    wd = WorkDir(tmp_path / "w1")
    run_ingest(_cfg(cohort, wd.root, clinical=tmp_path / "c.csv"), wd, None)
    join = pd.read_parquet(clinical_join_path(wd))
    assert int((~join["has_images"]).sum()) == 1 and int((~join["has_clinical"]).sum()) == 1
    bad = raw.assign(gold_stage=[7] + [0] * (len(raw) - 1))
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ClinicalTableError, match=r"gold_stage.*outside \[0, 4\]"):
        check_clinical(bad, id_column="subject_id")
    wd2 = WorkDir(tmp_path / "w2")
    res = run_ingest(_cfg(cohort, wd2.root, clinical=tmp_path / "bad.csv"), wd2, None)
    fails = pd.read_parquet(wd2.failures)
    assert fails.loc[fails["scan_id"] == "clinical", "error_type"].tolist() == ["ClinicalTableError"]
    row = fails[fails["scan_id"] == "clinical"].iloc[0]  # names the column and row, not the file or value
    assert row["source"] == "clinical" and "bad.csv" not in row["message"] and "row 1" in row["message"]
    assert len(res.done) == 2 and not wd2.clinical.exists()
    with pytest.raises(ClinicalTableError, match="as a ratio"):
        check_clinical(raw.assign(fev1_fvc=raw["fev1_fvc"] * 100), id_column="subject_id")


def test_workdir_salt_is_private_and_stable(cohort, tmp_path, monkeypatch):
    monkeypatch.delenv("CTPHENO_SALT", raising=False)
    wd = WorkDir(tmp_path / "w")
    ids1 = run_ingest(_cfg(cohort, wd.root, salt=None), wd, None).table["scan_id"].tolist()
    salt = wd.root / "ingest" / ".salt"
    assert stat.S_IMODE(os.stat(salt).st_mode) == 0o600 and len(salt.read_bytes()) == 64
    ids2 = run_ingest(_cfg(cohort, wd.root, salt=None), wd, None).table["scan_id"].tolist()
    assert ids1 == ids2
    monkeypatch.setenv("CTPHENO_SALT", "from-env")
    ids3 = run_ingest(_cfg(cohort, wd.root, salt=None), wd, None).table["scan_id"].tolist()
    assert set(ids3).isdisjoint(ids1)


def test_dask_discovery_matches_in_process(cohort, ingested, tmp_path):
    from distributed import Client, LocalCluster

    wd = WorkDir(tmp_path / "w")
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster,
        Client(cluster) as client,
    ):
        run_ingest(_cfg(cohort, wd.root, write_pseudonym_map=True, batch_size=7), wd, client)
    a = read_table(wd.manifest, MANIFEST)
    b = read_table(ingested.manifest, MANIFEST)
    pd.testing.assert_frame_equal(a, b)


def test_cli_and_module_entry_points(cohort, tmp_path):
    from typer.testing import CliRunner

    from ctpheno.cli import app

    wd = tmp_path / "cli"
    res = CliRunner().invoke(
        app,
        [
            "ingest",
            str(cohort / "images"),
            "--workdir",
            str(wd),
            "--set",
            "cluster.kind=synchronous",
            "--set",
            "paths.pseudonym_salt=x",
        ],
    )
    assert res.exit_code == 0, res.output
    assert len(pd.read_parquet(wd / "manifest.parquet")) == 2
    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "paths": {
                    "inputs": [str(cohort / "images")],
                    "workdir": str(tmp_path / "mod"),
                    "clinical": str(cohort / "clinical.csv"),
                    "pseudonym_salt": "x",
                },
                "cluster": {"kind": "synchronous"},
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "ctpheno.ingest", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = pd.read_parquet(tmp_path / "mod" / "manifest.parquet")
    b = pd.read_parquet(wd / "manifest.parquet")
    assert a["scan_id"].tolist() == b["scan_id"].tolist()
    assert (tmp_path / "mod" / "clinical.parquet").exists()
