"""Offline IDC cohort query and the dataset presets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ctpheno.config.base import load_model
from ctpheno.config.ingest import IngestConfig
from ctpheno.ingest.idc import query_collection, write_idc_outputs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


NLST_CT_PATIENTS = (25_000, 27_000)
"""NLST's CT arm randomised 26,722 participants (NLST Research Team, NEJM 2011;365:395-409); IDC
holds the CT of about 26,250 of them (26,254 in idc-index-data 25), whatever the release."""


def test_nlst_counts_in_bundled_index(no_network):
    import pyarrow.parquet as pq

    from ctpheno.ingest.idc import index_path

    series = query_collection("nlst")
    # the same rows counted independently, from the whole index with pandas (any idc-index-data release)
    index = pq.read_table(index_path(), columns=["collection_id", "Modality", "PatientID"]).to_pandas()
    nlst_ct = index[(index["collection_id"] == "nlst") & (index["Modality"] == "CT")]
    assert len(series) == len(nlst_ct) and series["PatientID"].nunique() == nlst_ct["PatientID"].nunique()
    assert NLST_CT_PATIENTS[0] <= series["PatientID"].nunique() <= NLST_CT_PATIENTS[1]
    assert len(series) >= 4 * series["PatientID"].nunique()  # up to 3 screening rounds, several reconstructions
    assert set(series["Modality"]) == {"CT"}
    assert series["series_aws_url"].str.startswith("s3://").all()


def test_limit_and_s5cmd_manifest(no_network, tmp_path):
    series = query_collection("NLST", limit_patients=2)
    assert series["PatientID"].nunique() == 2
    assert series["PatientID"].tolist() == sorted(series["PatientID"].tolist())
    csv, manifest = write_idc_outputs(series, tmp_path)
    lines = manifest.read_text().splitlines()
    assert len(lines) == len(series)
    uuid = series["crdc_series_uuid"].iloc[0]
    assert lines[0] == f'cp {series["series_aws_url"].iloc[0]} "{tmp_path}/dicom/{uuid}/"'
    assert series["series_aws_url"].iloc[0] == f"s3://idc-open-data/{uuid}/*"
    assert csv.read_text().count("\n") == len(series) + 1


def test_unknown_collection_names_alternatives(no_network):
    with pytest.raises(ValueError, match="has no CT series.*similar ids"):
        query_collection("nlsx")


@pytest.mark.parametrize("name", ["nlst", "copdgene", "lidc-idri"])
def test_presets_are_valid_ingest_configs(name):
    cfg = load_model(IngestConfig, REPO / "config" / "datasets" / f"{name}.yaml", prefix="ingest")
    assert cfg.dataset == name
    assert cfg.clinical_id_column
