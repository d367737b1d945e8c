"""docs/configuration.md and docs/artifacts.md are generated from the code and kept current."""

from __future__ import annotations

from pathlib import Path

from ctpheno.config import PipelineConfig
from ctpheno.config.docs import render_artifacts, render_markdown
from ctpheno.io.schemas import ALL_SCHEMAS

DOCS = Path(__file__).resolve().parents[2] / "docs"
HOW = "regenerate with `python -m ctpheno.config.docs` and commit"


def _fields(model, prefix=""):
    from ctpheno.config.docs import _submodel

    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        yield f"{prefix}{name}", field
        if sub is not None:
            yield from _fields(sub, f"{prefix}{name}.")


def test_every_config_field_is_documented():
    undocumented = [k for k, f in _fields(PipelineConfig) if not (f.description or "").strip()]
    assert not undocumented, f"config fields without a docstring under them: {undocumented}"
    text = render_markdown()
    assert "| `threshold_hu` | float | `-500.0` | ≥ -800, ≤ -200 |" in text
    assert "## `preprocess.segmentation`" in text and "## `cluster`" in text
    assert "| `retries` | int | `1` | ≥ 0 | How often a scan whose worker died" in text


def test_configuration_md_is_current():
    assert (DOCS / "configuration.md").read_text() == render_markdown(), f"docs/configuration.md is stale; {HOW}"


def test_artifacts_md_is_current():
    text = render_artifacts()
    for name in ALL_SCHEMAS:
        assert f"### `{name}`" in text
    assert "volumes/<scan_id>.zarr" in text and "failures.parquet" in text
    assert (DOCS / "artifacts.md").read_text() == text, f"docs/artifacts.md is stale; {HOW}"


def test_reason_codes_and_exit_codes_documented():
    """docs/ingest.md holds the reason table of ctpheno.ingest.reasons, the README the exit codes."""
    from ctpheno.exitcodes import markdown_table as exit_table
    from ctpheno.ingest.reasons import markdown_table as reason_table

    root = Path(__file__).resolve().parents[2]
    assert reason_table() in (root / "docs" / "ingest.md").read_text()
    assert exit_table() in (root / "README.md").read_text()
