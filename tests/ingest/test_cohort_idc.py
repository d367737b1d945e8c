"""Cohort lists and IDC downloads through idc-index's own downloader, against a local S3 server.

moto's S3 server stands in for IDC's public bucket: it holds a small DICOM series under the
``crdc_series_uuid`` that the installed IDC index gives for LIDC-IDRI-0001's CT series, and
idc-index's s5cmd download is pointed at it (its AWS endpoint is a module-level setting).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ctpheno.cli import app
from ctpheno.io.volume import Volume

COLLECTION = "lidc_idri"


@pytest.fixture(scope="module")
def idc_bucket(tmp_path_factory):
    """A local S3 server holding LIDC-IDRI-0001's CT series (a synthetic stand-in with its instance count)."""
    import boto3
    import idc_index.index
    from moto.server import ThreadedMotoServer

    from ctpheno.ingest.idc import query_collection
    from ctpheno.synth.dicom import write_dicom_series

    series = query_collection(COLLECTION, limit_patients=1)
    assert len(series) == 1, series
    row = series.iloc[0]
    n = int(row["instanceCount"])
    hu = np.full((n, 32, 32), -1000, np.int16)
    hu[:, 8:24, 8:24] = 40
    files = write_dicom_series(Volume(hu, (1.25, 0.7, 0.7), (-11.0, -11.0, -200.0)),
                               tmp_path_factory.mktemp("upload"),
                               patient={"PatientID": "LIDC-IDRI-0001", "PatientName": "LIDC-IDRI-0001",
                                        "PatientBirthDate": "", "PatientSex": "", "PatientAge": ""},
                               uid_entropy="idc-test", rescale_intercept=-1024, manufacturer="GE",
                               scanner_model="LightSpeed", kernel_name="STANDARD", slice_thickness_mm=1.25,
                               study_date=date(2000, 1, 1))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    bucket = row["series_aws_url"].split("/")[2]
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")
    s3.create_bucket(Bucket=bucket)
    for f in files:  # public objects, as IDC's are (s5cmd runs with --no-sign-request)
        s3.put_object(Bucket=bucket, Key=f"{row['crdc_series_uuid']}/{f.name}", Body=f.read_bytes(),
                      ACL="public-read")
    mp = pytest.MonkeyPatch()
    mp.setattr(idc_index.index, "aws_endpoint_url", endpoint)
    yield {"uid": row["SeriesInstanceUID"], "files": files, "s3": s3, "bucket": bucket,
           "prefix": row["crdc_series_uuid"]}
    mp.undo()
    server.stop()


def test_ingest_idc_download_then_an_input_list_of_idc_series_and_local_paths(idc_bucket, tmp_path):
    import SimpleITK as sitk

    out, dl = tmp_path / "cohort", tmp_path / "dicom"
    r = CliRunner().invoke(app, ["ingest", "idc", "--collection", COLLECTION, "--limit", "1",
                                 "--out", str(out), "--download", str(dl)])
    assert r.exit_code == 0, r.output
    assert pd.read_csv(out / "series.csv")["SeriesInstanceUID"].tolist() == [idc_bucket["uid"]]
    got = sorted((dl / idc_bucket["uid"]).iterdir())
    assert [p.name for p in got] == sorted(f.name for f in idc_bucket["files"])
    assert all(p.read_bytes() == (idc_bucket["files"][0].parent / p.name).read_bytes() for p in got)
    assert f"downloaded 1 series into {dl}" in r.output

    # the same series named in a cohort list beside a local file (relative to the list's folder)
    local = tmp_path / "local" / "scan.nii.gz"
    local.parent.mkdir()
    sitk.WriteImage(Volume(np.full((40, 24, 24), -1000, np.int16), (2.0, 1.0, 1.0)).to_sitk(), str(local))
    cohort = tmp_path / "cohort.csv"
    cohort.write_text(f"SeriesInstanceUID\n{idc_bucket['uid']}\nlocal/scan.nii.gz\n")
    work = tmp_path / "work"
    r = CliRunner().invoke(app, ["ingest", "--input-list", str(cohort), "--workdir", str(work),
                                 "--set", "cluster.kind=synchronous"])
    assert r.exit_code == 0, r.output
    default = tmp_path / "idc" / idc_bucket["uid"]  # --download defaults to idc/ beside the list
    assert len(list(default.iterdir())) == len(got)
    man = pd.read_parquet(work / "manifest.parquet")
    assert sorted(man["format"]) == ["dicom", "nifti"]
    assert man.loc[man["format"] == "dicom", "n_files"].item() == len(idc_bucket["files"])


def test_unknown_series_uid_is_named_before_any_download(idc_bucket, tmp_path):
    from ctpheno.ingest.cohort import download_idc_series

    with pytest.raises(ValueError, match=r"1 SeriesInstanceUID\(s\) are not in the IDC index.*1\.2\.3\.4"):
        download_idc_series([idc_bucket["uid"], "1.2.3.4"], tmp_path / "dl")
    assert not (tmp_path / "dl").exists()


def test_an_incomplete_download_is_an_error_naming_the_series(idc_bucket, tmp_path):
    from ctpheno.ingest.cohort import download_idc_series

    s3, first = idc_bucket["s3"], idc_bucket["files"][0]
    key = f"{idc_bucket['prefix']}/{first.name}"
    s3.delete_object(Bucket=idc_bucket["bucket"], Key=key)  # the bucket serves one instance fewer
    try:
        n = len(idc_bucket["files"])
        expected = rf"1 IDC series incomplete .*{idc_bucket['uid']}, {n - 1} of {n}"
        with pytest.raises(RuntimeError, match=expected):
            download_idc_series([idc_bucket["uid"]], tmp_path / "dl")
    finally:
        s3.put_object(Bucket=idc_bucket["bucket"], Key=key, Body=first.read_bytes(), ACL="public-read")
