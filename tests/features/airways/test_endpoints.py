"""Pi10 and the scan endpoints from per-branch measurements with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ctpheno.features.airways.endpoints import (FLAG_COLUMN, branch_measures, missing_endpoints, pi10_mm,
                                                scan_endpoints, with_endpoints)


def test_pi10_is_the_line_at_10_mm_and_ignores_a_mismeasured_branch():
    pi = np.array([6.0, 8.0, 9.0, 11.0, 13.0, 16.0, 20.0])
    root_wa = 1.2 + 0.2 * pi  # sqrt(WA) = 1.2 + 0.2 Pi: Pi10 = 3.2 mm
    assert pi10_mm(pi, root_wa**2) == pytest.approx(3.2)
    bad = root_wa.copy()
    bad[-1] += 2.5  # a lobar bronchus measured against the mediastinum
    assert pi10_mm(pi, bad**2) == pytest.approx(3.2, abs=1e-9)
    assert np.polyval(np.polyfit(pi, bad, 1), 10.0) > 3.25  # plain least squares would be tilted by it
    assert math.isnan(pi10_mm([10.0, 10.0, 10.0], [9.0, 9.0, 9.0])) and math.isnan(pi10_mm([8.0, 12.0], [9.0, 16.0]))


def _measures():
    tree = pd.DataFrame({"branch_id": range(9), "parent_id": [-1, 0, 0, 1, 1, 2, 2, 3, 6],
                         "generation": [0, 1, 1, 2, 3, 3, 4, 6, 5], "junction": [False] * 8 + [True]})
    # branch k: lumen radius r_k, outer radius r_k + 1 in 4 valid sections (branch 8, an internode: none)
    r = {0: 8.0, 1: 5.0, 2: 5.0, 3: 3.0, 4: 2.0, 5: 2.5, 6: 1.5, 7: 0.5, 8: 1.0}
    rows = [dict(branch_id=k, valid=k != 8, lumen_radius_mm=r[k], outer_radius_mm=r[k] + 1.0) for k in r for _ in range(4)]
    return branch_measures(tree, pd.DataFrame(rows), min_sections=3)


def test_branch_measures_and_segmental_medians():
    m = _measures()
    assert m.loc[8, "n_sections"] == 4 and m.loc[8, "n_sections_valid"] == 0 and not m.loc[8, "measured"]
    row = m.loc[4]  # a = 2, b = 3
    assert row["wall_thickness_mm"] == pytest.approx(1.0)
    assert row["wall_area_mm2"] == pytest.approx(np.pi * 5.0)
    assert row["wa_pct"] == pytest.approx(100 * 5.0 / 9.0)
    assert row["inner_perimeter_mm"] == pytest.approx(4 * np.pi)
    ep = scan_endpoints(m, min_branches_pi10=3, min_branches_seg=3)
    seg = m.loc[[4, 5, 6]]  # measured generation 3-5 branches (not 7: generation 6)
    assert ep["wa_pct_seg"] == pytest.approx(seg["wa_pct"].median())
    assert ep["lumen_area_seg_mm2"] == pytest.approx(seg["lumen_area_mm2"].median())
    assert ep["wall_thickness_seg_mm"] == pytest.approx(1.0)
    assert ep["airway_count"] == 8 and ep["airway_max_generation"] == 6 and ep[FLAG_COLUMN] == ""
    # Pi10 over generation >= 2: branches 3-7
    g2 = m.loc[[3, 4, 5, 6, 7]]
    assert ep["pi10_mm"] == pytest.approx(pi10_mm(g2["inner_perimeter_mm"], g2["wall_area_mm2"]))
    few = scan_endpoints(m, min_branches_pi10=6, min_branches_seg=4)
    assert math.isnan(few["pi10_mm"]) and math.isnan(few["wa_pct_seg"]) and few[FLAG_COLUMN] == "few_branches"


def test_endpoints_go_on_the_whole_lung_row():
    qct = pd.DataFrame({"scan_id": ["s"] * 3, "region": ["whole", "upper", "lower"], "laa950_pct": [1.0, 2.0, 0.5]})
    ep = scan_endpoints(_measures(), min_branches_pi10=3)
    out = with_endpoints(qct, ep)
    assert out.loc[0, "pi10_mm"] == pytest.approx(ep["pi10_mm"]) and out.loc[1:, "pi10_mm"].isna().all()
    assert list(out[FLAG_COLUMN]) == ["", "", ""]
    missing = with_endpoints(qct, None)
    assert missing.loc[0, FLAG_COLUMN] == "airways_not_run" and missing["wa_pct_seg"].isna().all()
    assert missing_endpoints("thick_slices")[FLAG_COLUMN] == "thick_slices"
    with pytest.raises(ValueError, match="unknown airway flag"):
        missing_endpoints("thin")
