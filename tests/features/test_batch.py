"""`ctpheno radiomics --batch` writes what PyRadiomics' own batch mode writes, case by case on Dask."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ctpheno.cli import app

REPO = Path(__file__).resolve().parents[2]
PARAMS = REPO / "config" / "features" / "radiomics.yaml"


@pytest.fixture(scope="module")
def batch_file(shared_data, tmp_path_factory):
    """A PyRadiomics batch CSV on lung1: absolute and CSV-relative paths, a label, an extra column."""
    lung1 = shared_data / "pyradiomics_lung1"
    folder = tmp_path_factory.mktemp("batch")
    (folder / "cases").mkdir()
    for name in ("lung1_image.nrrd", "lung1_label.nrrd"):
        (folder / "cases" / name).symlink_to(lung1 / name)
    csv = folder / "cases.csv"
    csv.write_text("Image,Mask,Label,Note\n"
                   f"{lung1 / 'lung1_image.nrrd'},{lung1 / 'lung1_label.nrrd'},1,absolute\n"
                   "cases/lung1_image.nrrd,cases/lung1_label.nrrd,1,relative\n")
    return csv


def _pyradiomics_batch(csv: Path, out: Path) -> None:
    """PyRadiomics' batch mode as `pyradiomics cases.csv -o out.csv -f csv --param PARAMS` runs it."""
    from radiomics.scripts import PyRadiomicsCommandLine

    cli = PyRadiomicsCommandLine([str(csv), "-o", str(out), "-f", "csv", "--param", str(PARAMS)])
    try:
        assert cli.run() == 0
    finally:
        cli.args.out.close()


def test_batch_output_is_pyradiomics_batch_output(batch_file, tmp_path):
    theirs, ours = tmp_path / "theirs.csv", tmp_path / "ours.csv"
    _pyradiomics_batch(batch_file, theirs)
    r = CliRunner().invoke(app, ["radiomics", "--batch", str(batch_file), "--out", str(ours),
                                 "--params", str(PARAMS), "--set", "cluster.kind=local",
                                 "--set", "cluster.processes=false",
                                 "--set", "cluster.n_workers=2", "--set", "cluster.dashboard=false"])
    assert r.exit_code == 0, r.output
    assert "2 case(s), 0 failed" in r.output
    header, *rows = ours.read_text().splitlines()
    assert header.startswith("Image,Mask,Label,Note,diagnostics_Versions_PyRadiomics")
    assert "original_glcm_Contrast" in header and len(rows) == 2
    assert ours.read_text() == theirs.read_text()  # same columns, order, paths and values


def test_a_failing_case_is_reported_and_written_as_pyradiomics_writes_it(batch_file, tmp_path):
    bad = tmp_path / "bad.csv"
    lines = batch_file.read_text().splitlines()
    bad.write_text("\n".join([lines[0], lines[1], lines[1].replace(",1,absolute", ",,no label")]) + "\n")
    for name in ("cases",):
        (tmp_path / name).symlink_to(batch_file.parent / name)
    theirs, ours = tmp_path / "theirs.csv", tmp_path / "ours.csv"
    _pyradiomics_batch(bad, theirs)
    r = CliRunner().invoke(app, ["radiomics", "--batch", str(bad), "--out", str(ours),
                                 "--params", str(PARAMS), "--set", "cluster.kind=synchronous"])
    assert r.exit_code == 1
    assert "1 failed" in r.output and "case 2: ValueError" in r.output
    assert ours.read_text() == theirs.read_text()


def test_batch_file_without_mask_column_is_named(tmp_path):
    csv = tmp_path / "cases.csv"
    csv.write_text("Image,Segmentation\na.nrrd,b.nrrd\n")
    r = CliRunner().invoke(app, ["radiomics", "--batch", str(csv), "--out", str(tmp_path / "o.csv")])
    assert r.exit_code == 2 and "has no column Mask" in r.output
