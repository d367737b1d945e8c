"""Parquet tables and Zarr stores on S3 (a local moto server), through ctpheno.io.fs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import s3fs

from ctpheno.io import fs
from ctpheno.io.schemas import FAILURES
from ctpheno.io.tables import concat_parts, read_json, read_table, write_json, write_table
from ctpheno.io.volume import Volume
from ctpheno.io.zarrstore import open_volume_store, read_dask, read_volume, store_attrs, write_volume_store


def _raw_fs(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)


def test_fs_helpers_on_s3_and_local(s3_server, s3_bucket, tmp_path):
    url = fs.join(s3_bucket, "a", "b.txt")
    assert url == f"{s3_bucket}/a/b.txt" and fs.is_url(url) and not fs.is_url(tmp_path)
    assert not fs.exists(url)
    with fs.atomic_output(url) as tmp:
        tmp.write_text("hello")
    assert fs.exists(url)
    # the object is really on the server (a separate client sees it)
    assert _raw_fs(s3_server).cat_file(url.removeprefix("s3://")) == b"hello"
    with fs.open_file(url) as fh:
        assert fh.read() == b"hello"
    with pytest.raises(RuntimeError):
        with fs.atomic_output(fs.join(s3_bucket, "a", "never.txt")) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert not fs.exists(fs.join(s3_bucket, "a", "never.txt"))
    assert fs.glob(fs.join(s3_bucket, "a", "*.txt")) == [url]
    fs.remove(url)
    assert not fs.exists(url)
    with pytest.raises(ValueError, match="mode='w'"):
        with fs.open_file(url, "w"):
            pass
    local = fs.join(tmp_path, "x.txt")
    with fs.atomic_output(local) as tmp:
        tmp.write_text("x")
    assert fs.exists(local) and list(tmp_path.iterdir()) == [local]


def test_parquet_tables_on_s3(s3_server, s3_bucket):
    df = pd.DataFrame({"scan_id": ["b", "a"], "stage": ["qct", "qct"], "error_type": ["E", "F"],
                       "message": ["m1", "m2"], "source": ["", ""], "attempts": pd.array([1, 2], "Int64"),
                       "timestamp": ["2026-01-01T00:00:00", "2026-01-01T00:00:01"]})
    url = f"{s3_bucket}/work/failures.parquet"
    write_table(df, url, FAILURES)
    back = read_table(url, FAILURES)
    pd.testing.assert_frame_equal(back, df)
    with _raw_fs(s3_server).open(url.removeprefix("s3://"), "rb") as fh:  # a plain Parquet object
        pd.testing.assert_frame_equal(pd.read_parquet(fh), df)
    with pytest.raises(FileNotFoundError, match=r"missing\.parquet \(failures\) does not exist"):
        read_table(f"{s3_bucket}/work/missing.parquet", FAILURES)
    parts = f"{s3_bucket}/work/parts/qct"
    write_table(df.iloc[[0]], f"{parts}/b.parquet")
    write_table(df.iloc[[1]], f"{parts}/a.parquet")
    write_table(df.iloc[[1]], f"{parts}/gone.parquet")
    out = concat_parts(parts, f"{s3_bucket}/work/all.parquet", FAILURES, keep={"a", "b"})
    assert list(out["scan_id"]) == ["a", "b"]
    assert list(read_table(f"{s3_bucket}/work/all.parquet")["scan_id"]) == ["a", "b"]
    write_json({"k": [1, 2]}, f"{s3_bucket}/work/state/x.json")
    assert read_json(f"{s3_bucket}/work/state/x.json") == {"k": [1, 2]}


def test_zarr_store_on_s3(s3_server, s3_bucket):
    rng = np.random.default_rng(0)
    image = rng.integers(-1024, 400, size=(20, 30, 40), dtype=np.int16)
    labels = (image > 0).astype(np.uint8)
    geom = Volume(image, spacing_mm=(2.5, 0.7, 0.7), origin_mm=(1.0, -2.0, 3.0))
    url = f"{s3_bucket}/work/volumes/s1.zarr"
    assert write_volume_store(url, {"image": image, "labels": labels}, geom, chunks=(8, 16, 16),
                              attrs={"scan_id": "s1"}) == url
    vol = read_volume(url, "image")
    np.testing.assert_array_equal(vol.array, image)
    assert vol.spacing_mm == geom.spacing_mm and vol.origin_mm == geom.origin_mm
    np.testing.assert_array_equal(read_dask(url, "labels").compute(), labels)
    assert read_dask(url, "labels").chunks[0] == (8, 8, 4)
    assert store_attrs(url)["scan_id"] == "s1"
    keys = _raw_fs(s3_server).find(url.removeprefix("s3://"))
    assert any(k.endswith("/image/zarr.json") for k in keys) and not any(".tmp" in k for k in keys)
    # overwriting replaces the store; stale arrays do not survive
    write_volume_store(url, {"image": image[:, :, ::-1]}, geom)
    assert sorted(open_volume_store(url).array_keys()) == ["image"]
    np.testing.assert_array_equal(read_volume(url).array, image[:, :, ::-1])


def test_store_without_root_metadata_is_not_opened(s3_server, s3_bucket):
    """An upload interrupted before the root zarr.json (written last) leaves nothing readable."""
    image = np.zeros((4, 4, 4), np.int16)
    url = f"{s3_bucket}/work/volumes/cut.zarr"
    write_volume_store(url, {"image": image}, Volume(image, spacing_mm=(1.0, 1.0, 1.0)))
    _raw_fs(s3_server).rm(f"{url.removeprefix('s3://')}/zarr.json")
    with pytest.raises(FileNotFoundError, match=r"cut\.zarr does not exist \(no zarr\.json\)"):
        open_volume_store(url)


def test_stage_table_consolidated_to_s3(s3_server, s3_bucket, tmp_path):
    """A stage run locally can publish its consolidated table straight to the bucket."""
    from ctpheno.cluster import ScanTask, run_stage
    from ctpheno.cluster.testing import toy_scan, toy_value

    tasks = [ScanTask(f"s{i}", {"out_dir": str(tmp_path / "out")}) for i in range(3)]
    url = f"{s3_bucket}/work/features/toy.parquet"
    res = run_stage(toy_scan, tasks, stage="toy", workdir=tmp_path / "work", output=url, progress=False)
    assert sorted(res.done) == ["s0", "s1", "s2"]
    table = read_table(url)
    assert list(table["scan_id"]) == ["s0", "s1", "s2"]
    np.testing.assert_allclose(table["value"], [toy_value(s) for s in table["scan_id"]])
