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
import sys
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
    ap.add_argument("--out", type=Path, required=True, help="folder for ingest.json")
    ap.add_argument("--quick", action="store_true", help="200 files instead of 1,000")
    args = ap.parse_args()
    if args.quick:
        args.n_files, args.n_series = 200, 10
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
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import write_result

    table = {"title": f"Header discovery of {n:,} synthetic DICOM files in {n_series} series",
             "columns": ["mode", "seconds", "files/s"],
             "rows": [["in process", result["in_process_seconds"], result["in_process_files_per_s"]],
                      [f"Dask, {args.workers} workers", result["dask_seconds"], result["dask_files_per_s"]]],
             "note": "local, page-cached files: Dask pays off on network/object storage, where a header "
                     "read waits on I/O"}
    print(write_result(args.out, "ingest", {"title": "Ingest discovery", "quick": args.quick,
                                            "tables": [table], "raw": result}))


if __name__ == "__main__":
    main()
