"""The command line from any directory: packaged defaults, --version / -h, choices, clear messages."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ctpheno.cli import app

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def phantom_file(tmp_path_factory):
    """A demo-size synthetic chest CT (NIfTI) and its true lung labels."""
    import SimpleITK as sitk

    from ctpheno.synth.phantom import make_phantom

    p = make_phantom(seed=1, size="demo")
    path = tmp_path_factory.mktemp("phantom") / "chest.nii.gz"
    sitk.WriteImage(p.image.to_sitk(), str(path))
    return path, p


@pytest.fixture
def empty_dir(tmp_path, monkeypatch):
    """An empty working directory outside the repository."""
    d = tmp_path / "empty"
    d.mkdir()
    assert REPO not in d.parents
    monkeypatch.chdir(d)
    return d


def test_version_and_help_from_the_entry_point(tmp_path):
    from ctpheno import __version__

    out = subprocess.run([sys.executable, "-m", "ctpheno", "--version"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == f"ctpheno {__version__}"
    r = CliRunner().invoke(app, ["export", "-h"])
    assert r.exit_code == 0 and "--formats" in r.output and "dicom-seg" in r.output


def test_single_scan_tools_work_from_an_empty_directory(phantom_file, empty_dir):
    import SimpleITK as sitk

    from ctpheno.config.resources import default_file
    from ctpheno.features.radiomics import extract_features, load_params
    from ctpheno.io.volume import Volume
    from ctpheno.synth.cohort import truth_metrics

    image, phantom = phantom_file
    runner = CliRunner()
    lungs = empty_dir.parent / "lungs.nii.gz"
    r = runner.invoke(app, ["segment", str(image), str(lungs)])
    assert r.exit_code == 0, r.output
    seg = sitk.GetArrayFromImage(sitk.ReadImage(str(lungs)))
    truth = truth_metrics(phantom.image.array, phantom.lungs.array, phantom.image.spacing_mm)
    volume_ml = np.isin(seg, (1, 2)).sum() * np.prod(phantom.image.spacing_mm) / 1000
    assert volume_ml == pytest.approx(truth["lung_volume_ml"], rel=0.08)

    r = runner.invoke(app, ["qct", str(image), "--mask", str(lungs), "--json"])
    assert r.exit_code == 0, r.output
    q = json.loads(r.stdout)  # the data; log lines go to stderr
    assert q["lung_volume_ml"] == pytest.approx(volume_ml, rel=1e-6)
    assert q["laa950_pct"] == pytest.approx(truth["laa950_pct"], abs=2.0)

    # default parameters = the packaged copy of config/features/radiomics.yaml
    r = runner.invoke(app, ["radiomics", str(image), str(lungs), "--label", "1", "--json"])
    assert r.exit_code == 0, r.output
    feats = json.loads(r.stdout)
    img = Volume.from_sitk(sitk.ReadImage(str(image)))
    msk = Volume.from_sitk(sitk.ReadImage(str(lungs)))
    repo_params = load_params(REPO / "config" / "features" / "radiomics.yaml")
    expected, _ = extract_features(img, msk, params=repo_params, label=1)
    assert feats.keys() == expected.keys() and len(feats) > 50
    assert all(feats[k] == pytest.approx(expected[k], rel=1e-9, nan_ok=True) for k in feats)
    assert default_file("features/radiomics.yaml").is_file()
    assert not any(empty_dir.iterdir())  # nothing was written where the user stood


def test_report_on_an_empty_workdir_says_so_without_a_cluster(empty_dir):
    r = CliRunner().invoke(app, ["report", "--workdir", "nowhere"])
    assert r.exit_code == 2
    assert "nothing to report" in r.output and "run `ctpheno run` first" in r.output
    assert "distributed" not in r.output and not (empty_dir / "nowhere").exists()


@pytest.mark.parametrize("args, choices", [
    (["segment", "in.nii.gz", "out.nii.gz", "--backend", "unet"],
     "'classic', 'lungmask', 'totalsegmentator'"),
    (["train", "--only", "clusters"], "'cluster', 'supervised'"),
    (["synth", "--out", "x", "--size", "huge"], "'demo', 'full'"),
    (["export", "--formats", "nifti,stl"], "nifti, dicom-seg, dicom-sr, ome-zarr"),
    (["run", "--stages", "ingest,segmentation"], "synth, ingest, preprocess"),
])
def test_choice_options_list_their_values(args, choices, empty_dir):
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2
    text = " ".join(re.sub("[│╭╮╰╯─]", " ", r.output).split())  # without rich's error box
    assert choices in text and "pydantic" not in text and "errors.pydantic.dev" not in text
