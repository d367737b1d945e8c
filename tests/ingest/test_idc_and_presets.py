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


def test_nlst_counts_in_bundled_index(no_network):
    series = query_collection("nlst")
    # numbers of the bundled idc-index-data release (the issue quotes them for NLST)
    assert series["PatientID"].nunique() == 26254
    assert len(series) == 203111
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
