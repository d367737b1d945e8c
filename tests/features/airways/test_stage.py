"""Stage ``airways`` on a small work directory, and the QCT stage carrying its endpoints."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.features.airways.stage import run_airways
from ctpheno.features.stage import run_qct
from ctpheno.io.layout import WorkDir
from ctpheno.io.volume import Volume
from ctpheno.io.zarrstore import read_volume, write_volume_store
from ctpheno.synth.airway_phantom import make_airway_phantom


def _store(wd: WorkDir, scan_id: str, image: np.ndarray, labels: np.ndarray, spacing, content: str) -> None:
    zones = np.where(labels == 1, 1, np.where(labels == 2, 4, 0)).astype(np.uint8)
    write_volume_store(wd.volume(scan_id), {"image": image, "labels": labels, "zones": zones},
                       Volume(image, spacing), chunks=(32, 32, 32), attrs={"scan_id": scan_id, "content_hash": content})


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    wd = WorkDir(tmp_path_factory.mktemp("airways") / "work").ensure()
    ph = make_airway_phantom(seed=3, max_generation=5, trachea_radius_mm=4.5, end_probability=1.0)
    _store(wd, "thin", ph.image.array, ph.labels.array, ph.image.spacing_mm, "t1")
    thick = ph.image.array[::3]  # the same chest every 2.4 mm: too thick for per-branch walls
    _store(wd, "thick", thick, ph.labels.array[::3], (2.4, *ph.image.spacing_mm[1:]), "k1")
    wd.qc_table.parent.mkdir(parents=True)
    pd.DataFrame({"scan_id": ["thin", "thick"]}).to_parquet(wd.qc_table)
    cfg = PipelineConfig.model_validate({"paths": {"workdir": str(wd.root)}, "cluster": {"kind": "synchronous"},
                                         "features": {"qct": {"regions": ["whole", "right", "left"]}}})
    res = run_airways(cfg, wd, None)
    return wd, cfg, res, ph


def test_airways_stage_writes_its_artifacts(workdir):
    wd, _, res, ph = workdir
    assert sorted(res.done) == ["thick", "thin"] and not res.failed
    tab = pd.read_parquet(wd.airways).set_index("scan_id")
    thin, thick = tab.loc["thin"], tab.loc["thick"]
    assert thick["airway_tree_flags"] == "thick_slices" and np.isnan(thick["pi10_mm"])
    assert thin["airway_tree_flags"] == "" and thin["airway_max_generation"] >= 4
    assert thin["pi10_mm"] == pytest.approx(ph.params["pi10_mm"], abs=0.15)
    br = pd.read_parquet(wd.airway_branches)
    assert set(br["scan_id"]) == {"thin"} and br["measured"].sum() == thin["n_branches_measured"]
    tree = read_volume(wd.airway_tree("thin"), "branch").array
    assert tree.shape == ph.image.shape and set(np.unique(tree)) - {0} <= set(br["branch_id"] + 1)
    assert wd.qc_airways_png("thin").stat().st_size > 10_000


def test_qct_rows_carry_the_endpoints(workdir):
    wd, cfg, _, _ = workdir
    run_qct(cfg, wd, None)
    q = pd.read_parquet(wd.qct)
    tab = pd.read_parquet(wd.airways).set_index("scan_id")
    whole = q[q["region"] == "whole"].set_index("scan_id")
    assert whole.loc["thin", "pi10_mm"] == pytest.approx(tab.loc["thin", "pi10_mm"])
    assert whole.loc["thick", "airway_tree_flags"] == "thick_slices"
    assert q.loc[q["region"] != "whole", "pi10_mm"].isna().all()
