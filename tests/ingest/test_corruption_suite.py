"""The corruption suite: each damaged input gets its documented reason; good series are catalogued."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from ctpheno.config.pipeline import PipelineConfig
from ctpheno.ingest.phi import find_phi
from ctpheno.ingest.reasons import REASONS
from ctpheno.ingest.stage import run_ingest
from ctpheno.io import MANIFEST, SOURCES, WorkDir, read_table
from ctpheno.io.readers import read_scan

from .conftest import NAMES


def _cfg(inputs: list[str], wd: Path, **ingest) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "paths": {"inputs": inputs, "workdir": str(wd), "pseudonym_salt": "test-salt"},
            "cluster": {"kind": "synchronous"},
            "ingest": ingest,
        }
    )


@pytest.fixture(scope="module")
def ingested(corruption_suite, tmp_path_factory):
    wd = WorkDir(tmp_path_factory.mktemp("work"))
    inputs = [str(corruption_suite.root), str(corruption_suite.root / "no-such-folder")]
    result = run_ingest(_cfg(inputs, wd.root), wd, None)
    manifest = read_table(wd.manifest, MANIFEST)
    sources = read_table(wd.sources, SOURCES)
    # the folder each scan came from, through the private sources table
    folder = {}
    for sid, paths in zip(sources["scan_id"], sources["paths"]):
        rel = Path(paths[0]).parent.relative_to(corruption_suite.root)
        folder[sid] = str(rel)
    manifest["folder"] = manifest["scan_id"].map(folder)
    return wd, result, manifest, sources


def _row(manifest: pd.DataFrame, folder: str, *, localizer: bool = False) -> pd.Series:
    rows = manifest[
        (manifest["folder"] == folder) & (manifest["reasons"].str.contains("localizer") == localizer)
    ]
    assert len(rows) == 1, rows
    return rows.iloc[0]


@pytest.mark.parametrize(
    "folder, reason",
    [
        ("truncated", "truncated_file"),
        ("missing", "missing_slices"),
        ("dup", "duplicate_slices"),
        ("mr", "not_ct"),
        ("tilt", "gantry_tilt"),
        ("short", "too_few_slices"),
        ("coronal", "non_axial"),
        ("dims", "inconsistent_dimensions"),
        ("derived", "derived"),
    ],
)
def test_each_corruption_gets_its_reason(ingested, folder, reason):
    manifest = ingested[2]
    row = _row(manifest, folder)
    assert reason in row["reasons"].split(";")
    assert REASONS[reason][0] == "reject"
    assert not row["usable"] and not row["selected"]


def test_localizer_sharing_the_series_uid_is_split_off(ingested):
    manifest = ingested[2]
    loc = _row(manifest, "good", localizer=True)
    good = _row(manifest, "good")
    assert "localizer" in loc["reasons"].split(";") and not loc["usable"]
    assert good["usable"] and good["selected"] and good["reasons"] == ""
    assert good["size_z"] == 40 and good["n_files"] == 40 and good["orientation"] == "axial"
    assert good["spacing_z_mm"] == pytest.approx(2.5) and good["spacing_x_mm"] == pytest.approx(0.75)
    assert (good["size_y"], good["size_x"]) == (32, 32)


def test_good_series_all_catalogued_and_usable(ingested):
    manifest = ingested[2]
    usable = manifest[manifest["usable"]]
    assert sorted(usable["folder"]) == ["copy", "good", "mixed", "mixed", "site1/2020/x/y"]
    # every DICOM series is one row: 14 series folders + localizer + the 2nd series in 'mixed'
    assert len(manifest) == 16
    copy = _row(manifest, "copy")
    assert copy["reasons"] == "duplicate_files" and copy["n_files"] == 40 and copy["size_z"] == 40
    assert manifest["scan_id"].str.fullmatch(r"s-[0-9a-f]{12}").all()


def test_missing_slice_geometry(ingested):
    row = _row(ingested[2], "missing")
    assert row["size_z"] == 39 and row["spacing_z_mm"] == pytest.approx(2.5)


def test_interleaved_series_split_and_selection_prefers_thin_lung_kernel(ingested):
    manifest = ingested[2]
    mixed = manifest[manifest["folder"] == "mixed"].set_index("kernel")
    assert set(mixed.index) == {"B30f", "B60f"}
    assert mixed.loc["B30f", "study_id"] == mixed.loc["B60f", "study_id"]
    assert mixed.loc["B60f", "selected"] and not mixed.loc["B30f", "selected"]
    assert mixed.loc["B30f", "reasons"] == "non_lung_kernel"
    assert mixed.loc["B60f", "size_z"] == 48 and mixed.loc["B30f", "size_z"] == 32


def test_unsortable_items_go_to_failures(ingested):
    wd = ingested[0]
    fails = pd.read_parquet(wd.failures)
    assert set(fails["stage"]) == {"ingest"}
    codes = sorted(m.split(":")[0] for m in fails["message"])
    # 'broken' (garbage after the preamble) and the slice of 'cut' that ends inside its header
    assert codes == [
        "empty_folder",
        "missing_input",
        "non_image_file",
        "unreadable_header",
        "unreadable_header",
    ]


def test_dates_become_offsets_and_ids_are_pseudonyms(ingested):
    manifest = ingested[2]
    deep = _row(manifest, "site1/2020/x/y")
    good = _row(manifest, "good")
    assert deep["subject_id"] == good["subject_id"]
    assert deep["acquisition_offset_days"] == (pd.Timestamp("2021-03-01") - pd.Timestamp("2020-01-15")).days
    assert good["acquisition_offset_days"] == 0
    assert not any("date" in c for c in manifest.columns if c != "acquisition_offset_days")


def test_sources_private_and_readable_back(ingested, corruption_suite):
    wd, _, manifest, sources = ingested
    assert stat.S_IMODE(os.stat(wd.sources).st_mode) == 0o600
    assert not (wd.root / "ingest" / ".salt").exists()  # the salt came from the config
    good = _row(manifest, "good")
    paths = sources.set_index("scan_id").loc[good["scan_id"], "paths"]
    assert len(paths) == 40
    vol = read_scan(list(paths))
    assert vol.shape == (40, 32, 32)


def test_no_phi_in_artifacts(ingested, corruption_suite):
    wd = ingested[0]
    needles = [v for trio in NAMES.values() for v in trio] + [str(corruption_suite.root)]
    assert find_phi(wd.root, needles) == []
    # ...while the private sources table does hold the raw paths (so the scanner is not blind)
    from ctpheno.ingest.phi import file_text

    assert str(corruption_suite.root).lower() in file_text(wd.sources)
    assert all(len(s) < 60 and "/" in s for s in ingested[2]["source"])


def test_find_phi_sees_png_metadata_and_parquet(tmp_path):
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt("Comment", "patient ROE^RICHARD", zip=True)
    Image.new("L", (4, 4)).save(tmp_path / "qc.png", pnginfo=info)
    pd.DataFrame({"x": ["id PAT-B-0042"] * 300}).to_parquet(tmp_path / "t.parquet", compression="zstd")
    (tmp_path / "ingest").mkdir()
    (tmp_path / "ingest" / ".salt").write_text("19480730")
    hits = {(p.name, n) for p, n in find_phi(tmp_path, ["roe^richard", "PAT-B-0042", "19480730"])}
    assert hits == {("qc.png", "roe^richard"), ("t.parquet", "pat-b-0042")}
