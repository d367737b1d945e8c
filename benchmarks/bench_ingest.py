"""Benchmark: discovery of N synthetic DICOM headers through Dask (files/s), JSON out.

Writes ``n_series`` tiny series (``n_files / n_series`` slices of 16x16 each) to a
temporary folder, then times the header-reading part of ingest (walk, Dask
tasks over folder batches, grouping and validation) on a LocalCluster, and in
this process for comparison. Usage::

    python benchmarks/bench_ingest.py --n-files 1000 --workers 2 --out benchmarks/out/ingest.json
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def write_headers(root: Path, *, n_files: int, n_series: int) -> int:
    """``n_files`` CT slices split over ``n_series`` series (one folder each); returns files written."""
    per = max(1, n_files // n_series)
    pixels = np.zeros((16, 16), np.int16).tobytes()
    written = 0
    for s in range(n_series):
        folder = root / f"subject{s:04d}" / "study" / "series"
        folder.mkdir(parents=True)
        series_uid = generate_uid(entropy_srcs=["bench", str(s)])
        for k in range(per if s < n_series - 1 else n_files - written):
            meta = FileMetaDataset()
            sop = generate_uid(entropy_srcs=["bench", str(s), str(k)])
            meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sop
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID = CTImageStorage, sop, series_uid
            ds.StudyInstanceUID = generate_uid(entropy_srcs=["bench-study", str(s)])
            ds.PatientID, ds.Modality, ds.ImageType = f"B{s:05d}", "CT", ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.StudyDate = "20200101"
            ds.ConvolutionKernel, ds.SliceThickness, ds.PixelSpacing = "B50f", "1", ["0.7", "0.7"]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [0, 0, f"{k:.1f}"]
            ds.Rows = ds.Columns = 16
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
            ds.PixelData = pixels
            ds.save_as(folder / f"{k:05d}.dcm", enforce_file_format=True)
            written += 1
    return written


def discover(root: Path, client) -> tuple[float, int]:
    from ctpheno.config.ingest import IngestConfig
    from ctpheno.ingest.catalog import build_catalog
    from ctpheno.ingest.discover import collect_records, take_inventory
    from ctpheno.ingest.pseudonym import Pseudonymizer

    t0 = time.perf_counter()
    inv = take_inventory([str(root)])
    records = collect_records([p for _, p in inv.files], client=client, batch_size=64)
    manifest, *_ = build_catalog(records, inv, Pseudonymizer(b"bench"), cfg=IngestConfig())
    return time.perf_counter() - t0, len(manifest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-files", type=int, default=1000)
    ap.add_argument("--n-series", type=int, default=25)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/ingest.json"))
    args = ap.parse_args()
    from distributed import Client, LocalCluster

    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        root = Path(tmp)
        n = write_headers(root, n_files=args.n_files, n_series=args.n_series)
        serial_s, n_series = discover(root, None)
        with (
            LocalCluster(
                n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0"
            ) as cluster,
            Client(cluster) as client,
        ):
            discover(root, client)  # warm-up: imports on the workers
            dask_s, n_series_dask = discover(root, client)
    if n_series != args.n_series or n_series_dask != args.n_series:
        raise SystemExit(f"expected {args.n_series} series, catalogued {n_series} / {n_series_dask}")
    result = {
        "benchmark": "ingest_discovery",
        "n_files": n,
        "n_series": n_series,
        "workers": args.workers,
        "dask_seconds": round(dask_s, 3),
        "dask_files_per_s": round(n / dask_s, 1),
        "in_process_seconds": round(serial_s, 3),
        "in_process_files_per_s": round(n / serial_s, 1),
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
