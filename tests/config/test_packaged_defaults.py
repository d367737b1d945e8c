"""The default configuration ships inside the package and is the repository's config/, byte for byte."""

from __future__ import annotations

from pathlib import Path

from ctpheno.config.pipeline import load_pipeline_config
from ctpheno.config.resources import default_file, defaults_dir, radiomics_params_path

REPO_CONFIG = Path(__file__).resolve().parents[2] / "config"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_packaged_defaults_equal_the_repository_config():
    repo, packaged = _files(REPO_CONFIG), _files(defaults_dir())
    assert sorted(packaged) == sorted(repo), "copy config/ again: cp -r config/. src/ctpheno/config/defaults/"
    drifted = [name for name in repo if repo[name] != packaged[name]]
    assert not drifted, f"src/ctpheno/config/defaults/ differs from config/ in {drifted}; copy config/ again"


def test_outside_the_repository_the_packaged_pipeline_yaml_is_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = load_pipeline_config(None)
    inside = load_pipeline_config(REPO_CONFIG / "pipeline.yaml")
    # the same settings, section by section; only the radiomics parameter file's location differs
    strip = {"features": {"radiomics": {"params"}}}
    assert outside.model_dump(exclude=strip) == inside.model_dump(exclude=strip)
    assert outside.features.radiomics.params == default_file("features/radiomics.yaml")
    assert inside.features.radiomics.params == REPO_CONFIG / "features" / "radiomics.yaml"
    repo_params = REPO_CONFIG / "features" / "radiomics.yaml"
    assert radiomics_params_path(None).read_bytes() == repo_params.read_bytes()
    assert not any(tmp_path.iterdir())  # loading wrote nothing into the working directory


def test_params_named_relative_to_the_current_directory_still_load(tmp_path, monkeypatch):
    """Configs written before the include rule name the file from the working directory."""
    (tmp_path / "config" / "features").mkdir(parents=True)
    (tmp_path / "config" / "features" / "radiomics.yaml").write_bytes(
        (REPO_CONFIG / "features" / "radiomics.yaml").read_bytes())
    (tmp_path / "mine.yaml").write_text("features:\n  radiomics:\n"
                                        "    params: config/features/radiomics.yaml\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_pipeline_config(tmp_path / "mine.yaml")
    expected = tmp_path / "config" / "features" / "radiomics.yaml"
    assert Path(cfg.features.radiomics.params).resolve() == expected
