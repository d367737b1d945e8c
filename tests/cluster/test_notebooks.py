"""The notebooks execute (nbclient) on a tiny work directory with real QCT numbers."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from ctpheno.io.layout import WorkDir
from ctpheno.io.schemas import QCT
from ctpheno.io.tables import write_table

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").rglob("*.ipynb"))


@pytest.fixture(scope="module")
def tiny_workdir(tmp_path_factory) -> Path:
    """QCT table of two small synthetic phantoms (truth lung masks), written as a run would."""
    import pandas as pd

    from ctpheno.features.airways import with_endpoints
    from ctpheno.features.qct import qct_metrics
    from ctpheno.preprocess import lung_zones
    from ctpheno.synth import make_phantom

    wd = WorkDir(tmp_path_factory.mktemp("nbwork"))
    frames = []
    for seed in (1, 2):
        ph = make_phantom(seed=seed, size="demo", emphysema_fraction=0.1 * seed)
        zones = lung_zones(ph.lungs)
        df = qct_metrics(ph.image.array, ph.lungs.array, zones.array, ph.image.spacing_mm, scan_id=f"scan{seed}")
        frames.append(with_endpoints(df, None))  # the QCT stage's airway columns (NaN: no airways stage)
    write_table(pd.concat(frames, ignore_index=True), wd.qct, QCT)
    return wd.root


def test_notebooks_are_stripped():
    assert len(NOTEBOOKS) >= 3
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert all(not c.outputs and c.execution_count is None for c in code), f"{path} has outputs"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_executes(path, tiny_workdir, monkeypatch):
    monkeypatch.setenv("CTPHENO_WORKDIR", str(tiny_workdir))
    monkeypatch.setenv("CTPHENO_DEMO_WORKERS", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Traceback" not in text
    if "exploration" in str(path) or "modeling" in str(path):
        assert str(tiny_workdir) in text  # it read the work dir it was given
        assert "qct.parquet is not there yet" not in text


def test_markdown_cells_are_clean_and_the_default_workdir_is_make_demos():
    import re

    import yaml

    repo = Path(__file__).resolve().parents[2]
    demo_workdir = yaml.safe_load((repo / "config" / "demo.yaml").read_text())["paths"]["workdir"]
    readers = 0
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
        assert not any(re.match(r"MD\S", text) for text in markdown), f"{path}: stray 'MD' in a markdown cell"
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        default = re.search(r'"CTPHENO_WORKDIR", "([^"]+)"', code)
        if default:  # relative to the notebook's folder, the default is where `make demo` writes
            readers += 1
            assert (path.parent / default.group(1)).resolve() == (repo / demo_workdir).resolve(), path
    assert readers >= 2
