"""Without the optional extras ctpheno imports and runs: each missing package has a clean fallback or names
its extra (`pip install 'ctpheno[...]'`), as in a fresh `pip install .`."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pandas as pd
import pytest

EXTRAS = {  # import name -> the extra that installs it (pyproject.toml)
    "umap": "umap", "idc_index": "idc", "idc_index_data": "idc", "ome_zarr": "export", "torch": "deep",
    "monai": "deep", "dask_jobqueue": "cluster", "bokeh": "cluster", "dask_kubernetes": "kubernetes",
    "s3fs": "s3", "lungmask": "lungmask", "totalsegmentator": "totalsegmentator",
}
NEEDS_TORCH = "ctpheno.features.deep_embeddings."
"""Modules of the [deep] extra's stage: imported only when the embed stage runs (skipped without torch)."""


def test_every_module_imports_without_the_extras(tmp_path):
    """A fresh interpreter in which every extra's package fails to import, as if never installed."""
    code = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        class Missing:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {sorted(EXTRAS)!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
        sys.meta_path.insert(0, Missing())
        import ctpheno
        failed = []
        for m in pkgutil.walk_packages(ctpheno.__path__, "ctpheno."):
            if m.name.endswith("__main__"):
                continue
            try:
                importlib.import_module(m.name)
            except ImportError as err:
                failed.append((m.name, str(err)))
        for name, err in failed:
            print(name, "|", err)
        from ctpheno.cli import app  # every command registers
        print("commands", len(app.registered_commands))
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    failed = [line.split(" | ")[0] for line in out.stdout.splitlines() if " | " in line]
    assert all(name.startswith(NEEDS_TORCH) for name in failed), out.stdout
    assert "commands" in out.stdout


@pytest.fixture
def missing(monkeypatch):
    """Make ``import <name>`` fail in this process for the given packages."""
    def block(*names: str) -> None:
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)
    return block


def test_cluster_map_falls_back_to_pca_without_umap(tmp_path, missing, caplog):
    from ctpheno.config.models import ModelsConfig, UnsupervisedConfig
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.train.stage import run_clustering
    from ctpheno.train.testing import write_synthetic_workdir

    missing("umap")
    wd = write_synthetic_workdir(tmp_path / "wd", n=12, seed=3)["workdir"]
    cfg = PipelineConfig(models=ModelsConfig(unsupervised=UnsupervisedConfig(
        feature_sets=["qct"], algorithms=["kmeans"], embedding_map="umap", n_bootstrap=2)))
    with caplog.at_level("INFO"):
        run_clustering(cfg, wd, None, force=True)
    assign = pd.read_parquet(wd.models_dir / "clusters" / "assignments.parquet")
    assert set(assign["map_method"]) == {"pca"} and assign[["map_x", "map_y"]].notna().all().all()
    assert "pip install 'ctpheno[umap]'" in caplog.text


def test_embed_stage_is_skipped_without_torch(missing):
    from ctpheno.pipeline import stage_runner

    missing("torch")
    result = stage_runner("embed")(None, None, None)
    expected = "embed: skipped: PyTorch is not installed (pip install 'ctpheno[deep]')"
    assert result.summary().startswith(expected)
    assert not result.failed


def test_idc_query_names_its_extra(missing):
    from ctpheno.errors import MissingExtraError
    from ctpheno.ingest.idc import query_collection

    missing("idc_index_data", "idc_index")
    with pytest.raises(MissingExtraError, match=r"pip install 'ctpheno\[idc\]'"):
        query_collection("nlst", limit_patients=1)


def test_export_leaves_ome_zarr_out_by_default_and_names_the_extra_when_asked(tmp_path, missing, caplog):
    from ctpheno.config.pipeline import PipelineConfig
    from ctpheno.errors import MissingExtraError
    from ctpheno.export.stage import run_export
    from ctpheno.io.layout import WorkDir

    missing("ome_zarr")
    wd = WorkDir(tmp_path / "empty")
    default = PipelineConfig()
    cfg = default.model_copy(update={"export": default.export.model_copy(update={"out": tmp_path / "out"})})
    asked = cfg.model_copy(update={"export": cfg.export.model_copy(update={"formats": ["ome-zarr"]})})
    with pytest.raises(MissingExtraError, match=r"OME-Zarr export needs .*pip install 'ctpheno\[export\]'"):
        run_export(asked, wd, None)
    with caplog.at_level("WARNING"), pytest.raises(Exception, match="run `ctpheno preprocess` first"):
        run_export(cfg, wd, None)  # an empty work directory: it gets as far as looking for scans
    assert "OME-Zarr left out" in caplog.text


def test_every_stage_name_resolves_to_its_runner():
    """``pipeline.STAGES`` names its runners as text: each must import and be the stage's ``run_*``."""
    from ctpheno.pipeline import STAGES, stage_runner

    for name, target in STAGES.items():
        runner = stage_runner(name)
        assert callable(runner) and runner.__name__ == target.split(":")[1], name
        assert runner.__module__ == "ctpheno." + target.split(":")[0], name
