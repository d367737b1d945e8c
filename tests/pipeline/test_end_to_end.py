"""The whole pipeline on a small synthetic cohort, as ``make demo`` runs it, and the PHI audit.

One module-scoped run of every stage (synth → ingest → preprocess → qct → radiomics → embed →
cluster → supervised → report) through ``ctpheno run`` on a local 2-worker Dask cluster. The
synthetic DICOM (which carries fake but realistic PatientName / PatientID / PatientBirthDate)
is written *outside* the work directory, as a user's archive would be, so every file under the
work directory is a pipeline artifact and must be free of those identifiers.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from typer.testing import CliRunner

from ctpheno.cli import app
from ctpheno.ingest.phi import file_text, find_phi
from ctpheno.io.layout import WorkDir

pytestmark = pytest.mark.slow  # a module-scoped pipeline run: scheduled first (tests/conftest.py)

REPO = Path(__file__).resolve().parents[2]
N_SUBJECTS = 8


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    wd = WorkDir(root / "work")
    archive = root / "archive"
    result = CliRunner().invoke(app, [
        "run", "--config", str(REPO / "config" / "demo.yaml"), "--workdir", str(wd.root),
        "--set", f"synth.n_subjects={N_SUBJECTS}", "--set", "synth.seed=7",
        "--set", f"synth.out={archive}", "--set", "cluster.n_workers=2",
        "--set", "features.radiomics.params=" + str(REPO / "config" / "features" / "radiomics.yaml"),
        # fewer resamples than the demo: this test checks the plumbing, tests/train the statistics
        "--set", "models.unsupervised.n_bootstrap=4", "--set", "models.supervised.n_repeats=1",
        "--set", "models.supervised.n_bootstrap=100",
        # the smallest encoder for one epoch: tests/embeddings checks that SSL training learns
        "--set", "embeddings.epochs=1", "--set", "embeddings.width=4",
        # a PCA map: UMAP's numba compilation is 15 s per process; tests/eval draws the UMAP map
        "--set", "models.unsupervised.embedding_map=pca",
    ])
    return {"wd": wd, "archive": archive, "result": result}


def test_every_stage_ran_and_wrote_its_artifact(demo_run):
    res, wd = demo_run["result"], demo_run["wd"]
    assert res.exit_code == 0, res.output
    for stage in ("synth", "ingest", "preprocess", "qct", "radiomics", "embed"):
        assert f"{stage}: " in res.output, res.output
    man = pd.read_parquet(wd.manifest)
    scans = man.loc[man["usable"] & man["selected"], "scan_id"]
    assert len(scans) == N_SUBJECTS
    qct = pd.read_parquet(wd.qct)
    assert set(qct["scan_id"]) == set(scans)
    assert set(qct["region"]) == {"whole", "right", "left", "upper", "middle", "lower"}
    assert len(pd.read_parquet(wd.radiomics)) == N_SUBJECTS
    emb = pd.read_parquet(wd.embeddings)
    assert set(emb["scan_id"]) == set(scans)
    assert emb.filter(like="emb_").notna().all().all()
    for sid in scans:
        assert wd.volume(sid).is_dir() and wd.qc_png(sid).is_file()
    assert wd.report.is_file() and str(wd.report.resolve()) in res.output
    assert any(wd.models_dir.rglob("*.joblib"))
    run_dirs = list(wd.runs_dir.iterdir())
    assert run_dirs and all((d / "config.resolved.yaml").is_file() and (d / "versions.json").is_file()
                            for d in run_dirs)


def test_qct_matches_the_generators_truth(demo_run):
    """End to end (DICOM → manifest → own segmentation → QCT), LAA-950, Perc15 and lung volume per
    subject lie between the truth on the true lung mask and on that mask plus its rim layer."""
    wd, archive = demo_run["wd"], demo_run["archive"]
    truth = pd.read_parquet(archive / "truth.parquet")
    clinical = pd.read_csv(archive / "clinical.csv", dtype={"subject_id": str})
    from ctpheno.config.common import PathsConfig
    from ctpheno.ingest.pseudonym import Pseudonymizer, resolve_salt

    pseudo = Pseudonymizer(resolve_salt(PathsConfig(), wd))
    man = pd.read_parquet(wd.manifest)
    man = man[man["usable"] & man["selected"]]
    qct = pd.read_parquet(wd.qct).query("region == 'whole'").merge(man[["scan_id", "subject_id"]], on="scan_id")
    truth["subject_id"] = [pseudo.subject(str(s)) for s in truth["subject_id"].astype(str)]
    both = qct.merge(truth, on="subject_id", suffixes=("", "_truth"))
    assert len(both) == len(clinical) == N_SUBJECTS
    # between the truth mask and the truth plus its partial-volume layer (the pleural-rim convention,
    # ctpheno.synth.cohort.rim_truth_bounds), within noise
    for metric, tol in (("laa950_pct", 0.25), ("perc15_hu", 2.0), ("lung_volume_ml", 0.0)):
        ends = both[[f"{metric}_truth", f"{metric}_rim"]]
        low, high = ends.min(axis=1) - tol, ends.max(axis=1) + tol
        assert both[metric].between(low, high).all(), both[[metric, f"{metric}_truth", f"{metric}_rim"]]


def _identifiers(archive: Path) -> list[str]:
    """Every PatientName / PatientID / PatientBirthDate of the archive, in the forms a leak takes."""
    needles: set[str] = set()
    for path in archive.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["PatientName", "PatientID", "PatientBirthDate"])
        name = str(ds.PatientName)
        family, _, given = name.partition("^")
        bd = str(ds.PatientBirthDate)
        needles |= {name, f"{family} {given}", f"{given} {family}", str(ds.PatientID), bd,
                    f"{bd[:4]}-{bd[4:6]}-{bd[6:]}"}
    return sorted(n for n in needles if n.strip())


def test_no_identifier_reaches_any_artifact(demo_run):
    wd, archive = demo_run["wd"], demo_run["archive"]
    needles = _identifiers(archive)
    assert len(needles) >= 6 * N_SUBJECTS - 2  # the archive really carries identifiers to look for
    # the scanner is not blind: the archive's own clinical table is full of raw ids
    assert find_phi(archive, needles)
    hits = []
    for path, needle in find_phi(wd.root, needles):
        if needle.isdigit():  # a raw id, not the same digits inside a longer number
            if not re.search(rf"(?<!\d){re.escape(needle)}(?!\d)", file_text(path)):
                continue
        hits.append((str(path.relative_to(wd.root)), needle))
    assert hits == []
    kinds = {p.suffix for p in wd.root.rglob("*") if p.is_file()}
    assert {".parquet", ".png", ".html", ".log", ".yaml", ".json"} <= kinds
