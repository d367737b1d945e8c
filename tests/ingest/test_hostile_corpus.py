"""Every hostile case gets its documented outcome in one bounded ``ctpheno run``; nothing outside the
input is opened; no path, file name, patient name or salt reaches the work directory.

One run over the whole corpus (:mod:`.hostile_corpus`) through the command line, as a user would
start it: ingest → preprocess → qct → (skipped) models → report, radiomics and embeddings off.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from ctpheno import exitcodes
from ctpheno.cli import app
from ctpheno.ingest.phi import file_text, find_phi
from ctpheno.ingest.pseudonym import Pseudonymizer
from ctpheno.ingest.reasons import REASONS, failure_code
from ctpheno.io.remote import stored_path
from ctpheno.io import WorkDir
from ctpheno.io.readers import read_scan

from .conftest import NAMES, truth_hu
from .hostile_corpus import CASES, DENIED, LEAKY, NIFTI_SUBJECT, OpenWatch, build

SALT = "s4lt-CANARY-7f3e91"
RUN_LIMIT_S = 150
"""The whole corpus run must end within this (a FIFO used to hang ingest forever)."""
FREE_TEXT = "lives at 12 Elm Street, Springfield"


def _deny(mp: pytest.MonkeyPatch, paths: list[Path]) -> None:
    """Make ``paths`` unreadable: chmod 000, or (as root, who ignores modes) an injected EACCES."""
    if os.geteuid() != 0:
        for p in paths:
            os.chmod(p, 0)
        return
    denied = {str(p) for p in paths}
    real_open, real_scandir = os.open, os.scandir

    def fake_open(path, *args, **kwargs):
        if str(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    def fake_scandir(path="."):
        if str(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    mp.setattr(os, "open", fake_open)
    mp.setattr(os, "scandir", fake_scandir)


class CorpusTimeout(BaseException):
    """Not an OSError (as TimeoutError is): no ``except`` in the code under test may swallow it."""


def _timeout(signum, frame):
    raise CorpusTimeout(f"the corpus run took more than {RUN_LIMIT_S} s: something hangs")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    root, outside = base / f"archive_{LEAKY}", base / "outside"
    return root, outside, build(root, outside)


@pytest.fixture(scope="module")
def run(corpus, tmp_path_factory):
    root, outside, expected = corpus
    base = tmp_path_factory.mktemp("hostile-run")
    clinical = base / f"clinical_{LEAKY}.csv"
    pid = NAMES["A"][0]
    pd.DataFrame({"subject_id": [pid, "PAT-Z-9"], "age_years": [61, 70], "sex": ["f", "M"],
                  "fev1_pct_pred": [55.0, 80.0], "spirometry_date": ["2020-02-14", "2021-01-01"],
                  "patient_name": ["DOE^JANE", "ZED^ZOE"], "notes": [FREE_TEXT, ""],
                  "zip": ["02139", "10001"]}).to_csv(clinical, index=False)
    config = base / "hostile.yaml"
    config.write_text(yaml.safe_dump({
        "cluster": {"kind": "synchronous"},
        "ingest": {"min_slices": 8, "clinical_columns": {
            "age_years": {"type": "float", "min": 0, "max": 120},
            "sex": {"type": "category", "values": ["M", "F"]},
            "fev1_pct_pred": {"type": "float", "min": 0, "max": 200},
            "spirometry_date": {"type": "date"}}},
        "features": {"radiomics": {"enabled": False}},
        "embeddings": {"enabled": False},
    }))
    wd = WorkDir(base / "work")
    mp = pytest.MonkeyPatch()
    old_umask = os.umask(0o022)
    _deny(mp, [root / f"{case}__{LEAKY}" / entry for case, entry in DENIED.items()])
    watch = OpenWatch([outside, *sorted(outside.iterdir())])
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(RUN_LIMIT_S)
    try:
        result = CliRunner().invoke(app, [
            "run", "--config", str(config), "--input", str(root), "--clinical", str(clinical),
            "--workdir", str(wd.root), "--set", f"paths.pseudonym_salt={SALT}"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
        mp.undo()
        os.umask(old_umask)
        if os.geteuid() != 0:
            for case, entry in DENIED.items():
                os.chmod(root / f"{case}__{LEAKY}" / entry, 0o755)
    opened = watch.events()
    yield {"wd": wd, "result": result, "opened": opened, "watch": watch, "clinical": clinical,
           "root": root, "outside": outside, "expected": expected}
    watch.close()


def _case_of(path: str, root: Path) -> str:
    return Path(stored_path(path)).relative_to(root).parts[0].split("__")[0]


@pytest.fixture(scope="module")
def outcome(run):
    wd, root = run["wd"], run["root"]
    man = pd.read_parquet(wd.manifest)
    src = pd.read_parquet(wd.sources).set_index("scan_id")
    man["case"] = [_case_of(src.loc[s, "paths"][0], root) for s in man["scan_id"]]
    fails = pd.read_parquet(wd.failures)
    return man, fails


def test_run_ends_with_the_scans_failed_code(run):
    res = run["result"]
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    assert res.exit_code == exitcodes.SCANS_FAILED, res.output
    assert "Traceback" not in res.output


@pytest.mark.parametrize("case", CASES)
def test_every_case_gets_its_documented_outcome(run, outcome, case):
    man, fails = outcome
    want = run["expected"][case]
    if want.where == "failure":
        pseudo = Pseudonymizer(SALT.encode())
        entry = DENIED.get(case) or next(
            p.name for p in (run["root"] / f"{case}__{LEAKY}").iterdir())
        rel = f"{case}__{LEAKY}/{entry}"
        token = pseudo("folder" if want.code == "unreadable_folder" else "file", rel)
        row = fails[fails["scan_id"] == token]
        assert len(row) == 1, fails
        assert failure_code(row["message"].iloc[0]) == want.code
        assert row["source"].iloc[0] == f"input0/{token}"
        return
    rows = man[man["case"] == case]
    if case == "good_dicom":  # the CT and the SR sharing its SeriesInstanceUID: split, CT usable
        assert sorted(rows["modality"]) == ["CT", "SR"]
        assert rows.set_index("modality").loc["SR", "reasons"] == "not_ct;no_pixel_data"
        rows = rows[rows["modality"] == "CT"]
    assert len(rows) == 1, rows
    row = rows.iloc[0]
    if want.code is None:
        assert row["usable"] and row["selected"] and row["reasons"] == "", row["reasons"]
    else:
        assert want.code in row["reasons"].split(";"), row["reasons"]
        assert REASONS[want.code][0] == "reject" and not row["usable"]


@pytest.mark.parametrize("case, spacing_mm", [("good_nifti", (2.0, 0.7, 0.7)), ("good_nhdr", (2.0, 0.7, 0.7)),
                                              ("good_mha", (2.0, 0.7, 0.7)), ("good_enhanced", (2.5, 0.75, 0.75)),
                                              ("good_mhd_subfolder", (2.0, 0.7, 0.7)), ("odd_names", (2.5, 0.75, 0.75)),
                                              ("good_dicom", (2.5, 0.75, 0.75))])
def test_good_cases_read_back_exactly(run, outcome, case, spacing_mm):
    man = outcome[0]
    src = pd.read_parquet(run["wd"].sources).set_index("scan_id")
    sid = man[(man["case"] == case) & man["usable"]]["scan_id"].iloc[0]
    vol = read_scan(list(src.loc[sid, "paths"]), fmt=src.loc[sid, "format"])
    truth = truth_hu(12, 32, 32, seed=5 if case == "good_enhanced" else 0)
    np.testing.assert_array_equal(vol.array, truth)
    np.testing.assert_allclose(vol.spacing_mm, spacing_mm, atol=1e-4)


def test_no_byte_outside_the_input_was_opened(run):
    assert run["opened"] == []
    # the watcher is not blind: opening a sentinel now is seen
    (run["outside"] / "sentinel.raw").read_bytes()[:1]
    assert any(p.endswith("sentinel.raw") for p in run["watch"].events())


def _needles(run) -> list[str]:
    root = run["root"]
    names = [v for trio in NAMES.values() for v in trio] + ["MOE^MARY", "PAT-MF-0099"]
    files = sorted({p.name for p in root.rglob("*")} | {p.name for p in run["outside"].iterdir()})
    generic = {"x.nii", "x.nii.gz", "x.nrrd", "x.nhdr", "x.mhd", "x.mha", "a.raw", "mf.dcm", "scan.mha",
               "scan.nhdr", "scan.raw", "scan.mhd", "series", "inner", "IM0001", "IM0001.dcm", "gone.dcm",
               "raw", "data", "hdr"}
    return sorted({str(root), str(run["outside"]), LEAKY, NIFTI_SUBJECT, SALT, FREE_TEXT, "ZED^ZOE",
                   run["clinical"].name, str(run["clinical"]), "2020-02-14", "02139", *names,
                   *(f for f in files if f not in generic and not f.startswith("img"))})


def test_canary_finds_no_identifier_past_ingest(run):
    wd = run["wd"]
    needles = _needles(run)
    assert find_phi(wd.root, needles) == []
    # ...while the scanner is not blind: the private sources index does hold the raw paths
    assert str(run["root"]).lower() in file_text(wd.sources)
    kinds = {p.suffix for p in wd.root.rglob("*") if p.is_file()}
    assert {".parquet", ".html", ".log", ".yaml", ".json", ".txt", ".csv"} <= kinds


def test_command_and_config_record_tokens_not_paths(run):
    wd = run["wd"]
    (run_dir,) = list(wd.runs_dir.iterdir())
    command = (run_dir / "command.txt").read_text()
    assert "<input0>" in command and "<clinical>" in command and "paths.pseudonym_salt=***" in command
    assert str(run["root"]) not in command and SALT not in command
    cfg = yaml.safe_load((run_dir / "config.resolved.yaml").read_text())
    assert cfg["paths"]["inputs"] == ["<input0>"] and cfg["paths"]["clinical"] == "<clinical>"
    assert cfg["paths"]["pseudonym_salt"] == "***"


def test_clinical_table_keeps_only_allow_listed_columns(run, outcome):
    wd = run["wd"]
    clin = pd.read_parquet(wd.clinical)
    assert list(clin.columns) == ["subject_id", "age_years", "sex", "fev1_pct_pred", "spirometry_date_offset_days"]
    man = outcome[0]
    a = man[man["case"] == "good_dicom"]["subject_id"].iloc[0]
    row = clin.set_index("subject_id").loc[a]
    # the first imaging date of subject A is 2020-01-15 (acquisition_offset_days 0); spirometry 30 days later
    assert row["spirometry_date_offset_days"] == 30 and row["sex"] == "F"
    assert np.isnan(clin.set_index("subject_id").drop(index=a)["spirometry_date_offset_days"]).all()


def test_outputs_follow_the_umask_and_private_files_are_private(run):
    wd = run["wd"]
    private = {wd.sources.resolve(), (wd.root / "ingest" / ".salt").resolve()}
    modes = {p: stat.S_IMODE(p.stat().st_mode) for p in wd.root.rglob("*") if p.is_file()}
    assert len(modes) > 20
    not_group_readable = [str(p.relative_to(wd.root)) for p, m in modes.items()
                          if p.resolve() not in private and not m & stat.S_IRGRP]
    assert not_group_readable == []
    assert stat.S_IMODE(wd.sources.stat().st_mode) == 0o600


def test_status_marks_the_run_done(run):
    import json

    (run_dir,) = list(run["wd"].runs_dir.iterdir())
    status = json.loads((run_dir / "status.json").read_text())
    n_failure_cases = sum(e.where == "failure" for e in run["expected"].values())
    assert status["status"] == "done" and status["failed"]["ingest"] == n_failure_cases
