"""User and environment errors end every command with one message and exit code 2, never a traceback,
and never leave a half-consistent work directory."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from ctpheno import exitcodes
from ctpheno.cli import app, load_cli_config

from .conftest import SeriesSpec, write_series

FAST = ["--set", "cluster.kind=synchronous", "--set", "paths.pseudonym_salt=x", "--set", "ingest.min_slices=8"]


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("in")
    write_series(root / "s", SeriesSpec("cli", n=10, rows=16, cols=16))
    return root


def _invoke(args: list[str]):
    res = CliRunner().invoke(app, args)
    assert "Traceback" not in res.output, res.output
    return res


def test_workdir_that_is_a_file(series, tmp_path):
    blocker = tmp_path / "work"
    blocker.write_text("keep me")
    res = _invoke(["ingest", str(series), "--workdir", str(blocker), *FAST])
    assert res.exit_code == exitcodes.USAGE
    assert "exists and is not a folder" in res.output and blocker.read_text() == "keep me"


def _read_only_dir(tmp_path: Path) -> Path:
    """A folder this process cannot write: chmod 555, or for root (who ignores modes) a read-only
    system folder."""
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    for cand in ("/sys/kernel", "/proc/self"):
        try:
            with open(os.path.join(cand, ".ctpheno-probe"), "w"):
                pass
        except OSError:
            return Path(cand)
    pytest.skip("no read-only folder available to root here")


def test_read_only_workdir(series, tmp_path):
    ro = _read_only_dir(tmp_path)
    res = _invoke(["ingest", str(series), "--workdir", str(ro), *FAST])
    assert res.exit_code == exitcodes.USAGE and "cannot be written" in res.output


def test_full_disk_leaves_no_manifest_without_sources(series, tmp_path, monkeypatch):
    wd = tmp_path / "w"
    ok = _invoke(["ingest", str(series), "--workdir", str(wd), *FAST])
    assert ok.exit_code == exitcodes.OK, ok.output
    assert (wd / "manifest.parquet").exists()
    (wd / "ingest" / "sources.parquet").unlink()

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(wd / "ingest" / "sources.parquet"))

    monkeypatch.setattr("ctpheno.ingest.stage.write_private_table", no_space)
    res = _invoke(["ingest", str(series), "--workdir", str(wd), *FAST])
    assert res.exit_code == exitcodes.USAGE and "no space left" in res.output
    # the stale manifest is gone: later stages ask for ingest instead of reading missing sources
    assert not (wd / "manifest.parquet").exists() and not (wd / "ingest" / "sources.parquet").exists()
    status = [json.loads(p.read_text()) for p in sorted(wd.glob("runs/*/status.json"), key=os.path.getmtime)]
    assert [s["status"] for s in status] == ["done", "incomplete"] and status[1]["stage"] == "ingest"
    res = _invoke(["preprocess", "--workdir", str(wd), *FAST])
    assert res.exit_code == exitcodes.USAGE and "run `ctpheno ingest` first" in res.output


def test_nothing_found_at_the_input(tmp_path):
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.bin").write_bytes(b"not an image")
    res = _invoke(["run", "--input", str(empty), "--workdir", str(tmp_path / "w"), *FAST])
    assert res.exit_code == exitcodes.USAGE and "no DICOM series or NIfTI/NRRD/MHA volume found" in res.output
    assert not (tmp_path / "w" / "manifest.parquet").exists()
    fails = pd.read_parquet(tmp_path / "w" / "failures.parquet")
    assert fails["message"].str.startswith("non_image_file").all()
    res = _invoke(["run", "--input", str(tmp_path / "nope"), "--workdir", str(tmp_path / "w2"), *FAST])
    assert res.exit_code == exitcodes.USAGE and "none of the 1 input(s) exists" in res.output
    assert not (tmp_path / "w2").exists()  # refused before anything was created
    res = _invoke(["run", "--input", str(empty), "--clinical", str(tmp_path / "typo.csv"),
                   "--workdir", str(tmp_path / "w3"), *FAST])
    assert res.exit_code == exitcodes.USAGE and "clinical table" in res.output and not (tmp_path / "w3").exists()


def test_qct_mask_that_is_a_folder(series, tmp_path):
    res = _invoke(["qct", str(series / "s"), "--mask", str(tmp_path)])
    assert res.exit_code == exitcodes.USAGE and "--mask" in res.output and "not a file" in res.output


def test_command_line_values_are_data_not_yaml(tmp_path):
    cfg = load_cli_config(None, ["cluster.kind=synchronous"], workdir=Path("Z1 #note"),
                          inputs=['x", "/other'], clinical="c: d.csv")
    assert cfg.paths.inputs == ['x", "/other'] and cfg.paths.workdir == Path("Z1 #note")
    assert cfg.paths.clinical == "c: d.csv"


def test_help_documents_the_exit_codes():
    res = CliRunner().invoke(app, ["--help"])
    assert res.exit_code == 0
    text = " ".join(res.output.split())
    for code in (exitcodes.OK, exitcodes.INTERNAL, exitcodes.USAGE, exitcodes.SCANS_FAILED):
        assert f"{code} {exitcodes.MEANINGS[code].split()[0]}" in text


def test_a_bug_is_exit_code_1_with_its_traceback(series, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr("ctpheno.ingest.stage.build_catalog", broken)
    res = CliRunner().invoke(app, ["ingest", str(series), "--workdir", str(tmp_path / "w"), *FAST])
    assert res.exit_code == exitcodes.INTERNAL and "internal error: KeyError" in res.output
