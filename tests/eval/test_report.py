"""The report renders in headless Chromium: every image decodes, no section is empty."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "figures" / "report_screenshot.png"
SECTIONS = ("cohort", "failures", "qc", "qct", "clusters", "models", "comparison", "importance", "run")


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(
            "Debian's chromium is required to check the report: apt-get install -y chromium "
            "(the Makefile's test target installs it)"
        )
    return exe


def _run_chromium(args: list[str], tmp: Path) -> str:
    cmd = [
        _chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp}",
        *args,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_report_is_self_contained(trained):
    html = trained["wd"].report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', html), "external reference in the report"
    assert html.count("data:image/png;base64,") >= 8
    for sid in SECTIONS:
        assert f'<section id="{sid}">' in html
    assert "EmptyLungMaskError" in html  # failures table
    tables = trained["wd"].report_dir / "tables"
    for name in ("model_metrics", "comparison", "cluster_selection", "cluster_profiles", "importance"):
        assert (tables / f"{name}.csv").is_file() and (tables / f"{name}.parquet").is_file()
    assert len(list((trained["wd"].report_dir / "figures").glob("*.png"))) >= 8


def test_report_renders_in_headless_chromium(trained, tmp_path):
    url = trained["wd"].report.resolve().as_uri()
    dom = _run_chromium(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path / "p1")
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'data-([\w-]+)="([^"]*)"', body))
    assert attrs.get("status") == "checked", body
    assert int(attrs["images-total"]) >= 8
    assert attrs["images-loaded"] == attrs["images-total"], body
    assert attrs["empty-sections"] == "", body
    shot = tmp_path / "shot.png"
    _run_chromium(
        ["--window-size=1280,4200", "--hide-scrollbars", f"--screenshot={shot}", url], tmp_path / "p2"
    )
    assert shot.stat().st_size > 50_000
    if os.environ.get("CTPHENO_UPDATE_SCREENSHOT"):  # refresh docs/ on request; a test run leaves the tree as it is
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


def test_report_lists_series_rejected_at_ingest(trained, tmp_path):
    import pandas as pd

    from ctpheno.eval.report import build_report
    from ctpheno.io.layout import WorkDir

    root = tmp_path / "wd"
    shutil.copytree(trained["wd"].root, root)
    wd = WorkDir(root)
    man = pd.read_parquet(wd.manifest)
    extra = man.iloc[[0]].assign(scan_id="s-rejected0000", usable=False, selected=False,
                                 reasons="truncated_file;missing_slices")
    pd.concat([man, extra]).to_parquet(wd.manifest)
    html = build_report(wd).read_text()
    assert "s-rejected0000" in html and "truncated_file;missing_slices" in html
    assert (wd.report_dir / "tables" / "rejected_series.csv").is_file()
