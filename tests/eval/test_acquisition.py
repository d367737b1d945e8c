"""Report pieces on acquisition: density by scanner / kernel / thickness, flagged scans first, gated scans."""

from __future__ import annotations

import pandas as pd
import pytest

from ctpheno.eval.acquisition import build_acquisition, density_by_acquisition, flagged_first
from ctpheno.io.layout import WorkDir
from ctpheno.preprocess.gate import gate, qc_flag_table


def _tables():
    qct = pd.DataFrame({
        "scan_id": ["a", "b", "c", "d", "a"], "region": ["whole"] * 4 + ["upper"],
        "laa950_pct": [5.0, 15.0, 6.0, 16.0, 1.0], "laa950_adj_pct": [5.0, 6.0, 5.5, 6.5, 1.0],
        "perc15_hu": [-920.0, -950.0, -921.0, -952.0, 0.0], "perc15_adj_hu": [-920.0, -922.0, -921.0, -923.0, 0.0],
        "kernel_class": ["smooth", "sharp", "smooth", "sharp", "smooth"],
        "qct_flags": ["", "", "air_offset", "", ""],
    })
    man = pd.DataFrame({"scan_id": list("abcd"), "manufacturer": ["SIEMENS", "SIEMENS", "GE", "GE"],
                        "slice_thickness_mm": [1.0, 1.0, 2.0, None], "spacing_z_mm": [1.0, 1.0, 2.0, 3.0]})
    return qct, man


def test_density_by_kernel_shows_the_confounder_and_its_removal():
    qct, man = _tables()
    t = density_by_acquisition(qct, man).set_index(["factor", "level"])
    assert t.loc[("kernel_class", "sharp"), "n"] == 2
    assert t.loc[("kernel_class", "sharp"), "laa950_pct_mean"] == pytest.approx(15.5)
    assert t.loc[("kernel_class", "sharp"), "laa950_adj_pct_mean"] == pytest.approx(6.25)
    assert t.loc[("manufacturer", "GE"), "perc15_adj_hu_mean"] == pytest.approx(-922.0)
    assert t.loc[("slice_thickness", "> 2.5 mm"), "n"] == 1  # thickness missing: slice spacing used
    assert set(t.index.get_level_values(0)) == {"manufacturer", "kernel_class", "slice_thickness"}


def test_section_lists_flags_first_and_the_gated_scans(tmp_path):
    from ctpheno.eval.report import ReportContext

    qct, man = _tables()
    wd = WorkDir(tmp_path / "w").ensure()
    wd.features_dir.mkdir()
    qct.to_parquet(wd.qct)
    man.to_parquet(wd.manifest)
    wd.qc_table.parent.mkdir()
    qc = pd.DataFrame({"scan_id": list("abcd"), "flags": ["", "lr_ratio", "", "volume_low"]})
    qc.to_parquet(wd.qc_table)
    assert list(flagged_first(qc, qc_flag_table(wd))["scan_id"]) == ["c", "d", "b", "a"]
    gate(wd)
    v = build_acquisition(ReportContext(wd))
    assert 'src="data:image/png;base64,' in v["figure"]
    assert v["n_flagged"] == 3 and v["n_excluded"] == 2 and v["applied"]
    assert (wd.report_dir / "tables" / "excluded_scans.csv").is_file()
    assert len(pd.read_csv(wd.report_dir / "tables" / "qc_flags.csv")) == 3
