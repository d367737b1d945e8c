"""QC that gates: every flag has a severity; exclude-flagged density scans leave the models, listed with why."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ctpheno.features.airways.endpoints import FLAGS as AIRWAY_FLAGS
from ctpheno.features.qct import QCT_FLAGS
from ctpheno.io.layout import WorkDir
from ctpheno.io.volume import Volume
from ctpheno.preprocess.gate import excluded_scans, gate, qc_flag_table
from ctpheno.preprocess.qc import QC_FLAG_SEVERITY, qc_metrics


def test_every_flag_has_a_severity():
    lab = np.zeros((6, 20, 20), np.uint8)
    lab[:, 5:15, 2:8] = 1  # one small lung touching both end slices: many flags at once
    flags = qc_metrics(Volume(np.full(lab.shape, -850, np.int16), (5.0, 2.0, 2.0)),
                       Volume(lab, (5.0, 2.0, 2.0)))["flags"].split(";")
    assert {"volume_low", "left_lung_missing", "apex_cut", "base_cut"} <= set(flags)
    for flag in [*flags, *QCT_FLAGS, *AIRWAY_FLAGS]:
        assert QC_FLAG_SEVERITY[flag] in ("info", "warn", "exclude"), flag


def _workdir(tmp_path) -> WorkDir:
    wd = WorkDir(tmp_path / "work").ensure()
    wd.qc_table.parent.mkdir(parents=True)
    pd.DataFrame({"scan_id": ["a", "b", "c", "d", "air"],
                  "flags": ["base_cut", "lr_ratio", "apex_cut;lr_ratio", "", "volume_low"],
                  "series_role": ["density", "density", "density", "density", "airway"]}).to_parquet(wd.qc_table)
    wd.features_dir.mkdir(parents=True)
    pd.DataFrame({"scan_id": ["a", "a", "b", "c", "d"], "region": ["whole", "upper", "whole", "whole", "whole"],
                  "qct_flags": ["", "", "air_unmeasured", "apex_cut", "air_offset;noise_high"],
                  "airway_tree_flags": ["airway_leak", "airway_leak", "few_branches", "", ""]}).to_parquet(wd.qct)
    return wd


def test_flag_table_and_exclusions(tmp_path):
    wd = _workdir(tmp_path)
    flags = qc_flag_table(wd)
    assert "air" not in set(flags["scan_id"])  # the airway series does not gate its study
    assert list(flags["severity"]) == sorted(flags["severity"], key=["exclude", "warn", "info"].index)
    # coverage comes from the QCT stage (with its tolerance), not from segmentation QC's any-voxel rule
    cut = flags[flags["flag"] == "apex_cut"]
    assert list(cut["scan_id"]) == ["c"] and list(cut["source"]) == ["qct"]
    # the airway endpoints' flags are listed (airway_leak shown with the warnings) but never gate by default
    tree = flags[flags["source"] == "airways"].set_index("scan_id")
    assert tree.loc["a", "flag"] == "airway_leak" and tree.loc["a", "severity"] == "warn"
    assert tree.loc["b", "flag"] == "few_branches" and tree.loc["b", "severity"] == "info"
    ex = excluded_scans(flags).set_index("scan_id")
    assert sorted(ex.index) == ["c", "d"] and ex.loc["d", "reasons"] == "air_offset;noise_high"
    assert sorted(excluded_scans(flags, keep_flags=["apex_cut"])["scan_id"]) == ["d"]
    assert sorted(excluded_scans(flags, severities=["exclude", "warn"])["scan_id"]) == ["a", "b", "c", "d"]


def test_gate_writes_the_artifact_and_can_be_switched_off(tmp_path):
    wd = _workdir(tmp_path)
    assert gate(wd) == {"c", "d"}
    table = pd.read_parquet(wd.excluded_scans)
    assert set(table["scan_id"]) == {"c", "d"} and table["applied"].all()
    assert gate(wd, enabled=False) == set()
    assert not pd.read_parquet(wd.excluded_scans)["applied"].any()
