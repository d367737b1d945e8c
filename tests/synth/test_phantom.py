"""make_phantom: determinism, disease patterns, argument checks; NIfTI output; stage resume; CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk
from scipy import ndimage as ndi
from typer.testing import CliRunner

from ctpheno.synth import make_phantom, write_cohort


@pytest.fixture(scope="module")
def phantoms():
    return {s: make_phantom(seed=11, subtype=s, emphysema_fraction=0.2) for s in
            ("centrilobular", "panlobular", "paraseptal")}


def test_same_seed_same_pixels() -> None:
    a = make_phantom(seed=3, subtype="none", emphysema_fraction=0.0, kernel="sharp")
    b = make_phantom(seed=3, subtype="none", emphysema_fraction=0.0, kernel="sharp")
    c = make_phantom(seed=4, subtype="none", emphysema_fraction=0.0, kernel="sharp")
    assert a.image.array.dtype == np.int16 and a.lungs.array.dtype == np.uint8
    assert np.array_equal(a.image.array, b.image.array) and np.array_equal(a.labels.array, b.labels.array)
    assert a.image.array.shape != c.image.array.shape or not np.array_equal(a.image.array, c.image.array)
    assert a.image.same_geometry(a.lungs) and a.image.same_geometry(a.labels)
    axis, sign = a.image.index_axis_patient_left()
    assert (axis, sign) == (2, 1)
    x = np.argwhere(a.lungs.array == 1)[:, 2].mean(), np.argwhere(a.lungs.array == 2)[:, 2].mean()
    assert x[0] < x[1]  # right lung at low x index (toward patient right)
    nz, ny, nx = a.image.shape
    assert (ny, nx) == (128, 128) and 85 <= nz <= 135 and 2.5 <= a.image.spacing_mm[1] <= 3.0


def _zone_fractions(ph) -> tuple[float, float]:
    lung = np.isin(ph.labels.array, (1, 2, 4, 5))
    emph = ph.labels.array == 5
    zs = np.flatnonzero(lung.any(axis=(1, 2)))
    lo, hi = zs.min(), zs.max()
    third = (hi - lo) // 3
    lower = slice(lo, lo + third)
    upper = slice(hi - third, hi + 1)
    return emph[lower].sum() / lung[lower].sum(), emph[upper].sum() / lung[upper].sum()


def test_subtype_zonal_patterns(phantoms) -> None:
    lo, up = _zone_fractions(phantoms["centrilobular"])
    assert up > 1.5 * lo, "centrilobular emphysema is upper-zone predominant"
    lo, up = _zone_fractions(phantoms["panlobular"])
    assert lo > 1.5 * up, "panlobular emphysema is lower-zone predominant"
    for ph in phantoms.values():
        n_lung = np.isin(ph.lungs.array, (1, 2)).sum()
        assert (ph.labels.array == 5).sum() / n_lung == pytest.approx(0.2, abs=0.002)


def test_paraseptal_is_subpleural(phantoms) -> None:
    def mean_depth(ph) -> float:
        lung = np.isin(ph.lungs.array, (1, 2))
        depth = ndi.distance_transform_edt(lung, sampling=ph.image.spacing_mm)
        return float(depth[ph.labels.array == 5].mean())

    assert mean_depth(phantoms["paraseptal"]) < 0.5 * mean_depth(phantoms["centrilobular"])


def test_centrilobular_holes_are_small_and_many(phantoms) -> None:
    _, n_cl = ndi.label(phantoms["centrilobular"].labels.array == 5)
    _, n_pl = ndi.label(phantoms["paraseptal"].labels.array == 5)
    assert n_cl > 2 * n_pl


def test_thick_airway_walls_raise_peribronchial_density() -> None:
    thin = make_phantom(seed=5, subtype="airway", emphysema_fraction=0.0, airway_wall_mm=0.8)
    thick = make_phantom(seed=5, subtype="airway", emphysema_fraction=0.0, airway_wall_mm=2.4)
    lung = np.isin(thin.lungs.array, (1, 2))
    assert thick.image.array[lung].astype(float).mean() > thin.image.array[lung].astype(float).mean() + 3.0


@pytest.mark.parametrize(("kw", "match"), [({"size": "huge"}, "size"), ({"subtype": "bronchiectasis"}, "subtype"),
                                           ({"emphysema_fraction": 0.9}, "emphysema_fraction"),
                                           ({"airway_wall_mm": 9.0}, "airway_wall_mm"), ({"kernel": "bone"}, "kernel")])
def test_bad_arguments(kw: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_phantom(seed=1, **kw)


def _pixel_digest(folder: Path) -> dict[str, str]:
    out = {}
    for f in folder.rglob("*.dcm"):
        ds = pydicom.dcmread(f)
        out[ds.SOPInstanceUID] = hashlib.sha256(ds.PixelData).hexdigest()
    return out


def test_cohort_deterministic_sequential_vs_dask(tmp_path: Path, cohort: Path, truth: pd.DataFrame) -> None:
    """Same seed -> byte-identical pixels, whether rendered sequentially or on a Dask client."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        again = write_cohort(tmp_path / "again", n=5, seed=7, client=client, two_reconstructions=0.2)
    assert _pixel_digest(again / "images") == _pixel_digest(cohort / "images")
    assert pd.read_csv(again / "clinical.csv").equals(pd.read_csv(cohort / "clinical.csv"))


def test_nifti_cohort_and_resume(tmp_path: Path) -> None:
    out = write_cohort(tmp_path / "nii", n=2, seed=21, fmt="nifti")
    truth = pd.read_parquet(out / "truth.parquet")
    files = sorted((out / "images").glob("*.nii.gz"))
    assert len(files) == 2
    for row in truth.itertuples():
        img = sitk.ReadImage(str(out / row.image_path))
        hu = sitk.GetArrayFromImage(img)
        lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "truth" / f"{row.subject_id}_lungs.nii.gz")))
        mask = np.isin(lungs, (1, 2))
        assert hu.dtype == np.int16
        assert row.laa950_pct == 100.0 * np.count_nonzero(hu[mask] <= -950) / mask.sum()
        assert row.perc15_hu == float(np.percentile(hu[mask], 15))
        assert row.lung_volume_ml == pytest.approx(mask.sum() * np.prod(img.GetSpacing()) / 1000, rel=1e-6)
        assert row.image_path == f"images/{row.subject_id}.nii.gz"  # ingest's NIfTI id = file stem
    clin = pd.read_csv(out / "clinical.csv", dtype={"subject_id": str})
    assert list(clin.subject_id) == list(truth.subject_id)
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    write_cohort(out, n=2, seed=21, fmt="nifti")  # resume: nothing re-rendered
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    write_cohort(out, n=1, seed=22, fmt="nifti")  # another cohort in the same folder: no stale images
    new = pd.read_parquet(out / "truth.parquet")
    assert sorted(p.name for p in (out / "images").iterdir()) == [Path(new.image_path[0]).name]
    assert len(list((out / "truth").glob("*.nii.gz"))) == 2


def test_stage_and_cli(tmp_path: Path) -> None:
    from ctpheno.cli import app
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.io.layout import WorkDir
    from ctpheno.synth.cli import register
    from ctpheno.synth.stage import run_synth

    cfg = PipelineConfig.model_validate({"synth": {"n_subjects": 1, "seed": 2, "format": "nifti"}})
    wd = WorkDir(tmp_path / "work")
    res = run_synth(cfg, wd, None)
    assert res.done == ["subject-00000"] and (wd.root / "synthetic" / "clinical.csv").exists()
    assert run_synth(cfg, wd, None).skipped == ["subject-00000"]
    if "synth" not in {c.name for c in app.registered_commands}:
        register(app)
    r = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "cli"), "--n", "1", "--seed", "3",
                                 "--format", "nifti"])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "cli" / "truth.parquet").exists()
    r = CliRunner().invoke(app, ["synth", "--out", str(tmp_path / "x"), "--n", "1", "--size", "huge"])
    assert r.exit_code != 0
