"""The embed stage on Zarr stores: trains once, one row per scan and region, resumes."""

from __future__ import annotations

import pandas as pd
import pytest

from ctpheno.config import PipelineConfig
from ctpheno.features.deep_embeddings.stage import run_embeddings, ssl_dir
from ctpheno.io.layout import WorkDir
from ctpheno.io.schemas import EMBEDDINGS
from ctpheno.io.zarrstore import write_volume_store


@pytest.fixture
def wd(cohort, tmp_path):
    w = WorkDir(tmp_path / "work").ensure()
    for s in cohort[:3]:
        write_volume_store(w.volume(s.scan_id), {"image": s.hu, "labels": s.labels, "zones": s.zones}, s.volume,
                           attrs={"scan_id": s.scan_id, "content_hash": f"h-{s.scan_id}"})
    w.qc_table.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"scan_id": [s.scan_id for s in cohort[:3]]}).to_parquet(w.qc_table)
    return w


def test_stage_trains_extracts_and_resumes(wd, fast_cfg, monkeypatch):
    import torch

    from ctpheno.features.deep_embeddings.stage import training_threads

    import os

    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(7)), raising=False)
    emb = fast_cfg.model_copy(update={"epochs": 1, "train_patches_per_scan": 8, "batch_size": 8})
    cfg = PipelineConfig(embeddings=emb)
    res = run_embeddings(cfg, wd, None)
    assert threads[0] == training_threads(0) == 7  # training first, on every core given
    assert res.ok and sorted(res.done) == ["s00", "s01", "s02"]
    assert (ssl_dir(wd) / "encoder.pt").is_file() and (ssl_dir(wd) / "MODEL_CARD.md").is_file()
    df = pd.read_parquet(wd.embeddings)
    EMBEDDINGS.validate(df, where=str(wd.embeddings))
    assert set(df["region"]) == {"whole", "upper", "middle", "lower"}
    assert (df["model"] == "ssl").all()
    assert len([c for c in df.columns if c.startswith("emb_")]) == 8 * emb.width
    again = run_embeddings(cfg, wd, None)
    assert sorted(again.skipped) == ["s00", "s01", "s02"] and not again.done
    rnd = run_embeddings(PipelineConfig(embeddings=emb.model_copy(update={"model": "random"})), wd, None)
    assert sorted(rnd.done) == ["s00", "s01", "s02"]



def test_training_threads_are_the_cores_given_to_the_process(monkeypatch):
    import os

    from ctpheno.features.deep_embeddings.stage import training_threads

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert training_threads(0) == 3 and training_threads(5) == 5
