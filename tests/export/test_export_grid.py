"""Export from a resampled analysis grid back onto the original grid; lobes; non-DICOM sources.

A synthetic chest phantom written as a DICOM series (and as NIfTI) is run through ingest and
preprocess with ``preprocess.spacing_mm`` set, so the pipeline's labels live on a coarser grid
than the scan: the export must bring them back onto the source slices.
"""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from ctpheno.io.volume import Volume
from ctpheno.export.source import Grid, labels_on_grid

ANALYSIS_SPACING_MM = (4.0, 3.5, 3.5)
TIE = 1e-6
"""Continuous indices (voxel units) within this of a half are ties, rounded up whatever the float error."""


def _nearest_reference(labels: Volume, grid: Grid) -> np.ndarray:
    """Nearest-neighbour lookup written independently of SimpleITK: physical centre -> continuous index."""
    kk, jj, ii = np.meshgrid(*(np.arange(n) for n in grid.shape), indexing="ij")
    target = Volume(np.zeros(grid.shape, np.uint8), grid.spacing_mm, grid.origin_mm, grid.direction)
    phys = target.index_to_physical(np.stack([kk, jj, ii], axis=-1).reshape(-1, 3))
    d = labels.direction_matrix
    ijk = np.linalg.solve(d, (phys - np.asarray(labels.origin_mm)).T).T / np.asarray(labels.spacing_mm[::-1])
    zyx = np.floor(ijk[:, ::-1] + 0.5 + TIE).astype(int)  # halves round up, as ITK's nearest index does
    inside = np.all((zyx >= 0) & (zyx < np.asarray(labels.shape)), axis=1)
    out = np.zeros(len(zyx), np.uint8)
    out[inside] = labels.array[tuple(zyx[inside].T)]
    return out.reshape(grid.shape)


def test_labels_on_grid_is_nearest_neighbour_in_physical_space():
    rng = np.random.default_rng(3)
    flip = (-1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0)  # index i runs toward the patient's right
    coarse = Volume(rng.integers(0, 4, (6, 7, 8)).astype(np.uint8), (2.5, 2.0, 2.2), (30.13, -10.07, 5.11),
                    flip)
    fine = Grid((19, 23, 29), (0.7, 0.6, 0.55), (31.0, -12.0, 4.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
    out = labels_on_grid(coarse, fine)
    assert np.array_equal(out, _nearest_reference(coarse, fine))
    assert 0 < (out == 0).mean() < 1  # part of the fine grid lies outside the coarse one: background
    same = Grid.of(coarse)
    assert np.array_equal(labels_on_grid(coarse, same), coarse.array)


@pytest.fixture(scope="module")
def phantom_runs(tmp_path_factory):
    """The demo phantom as DICOM and NIfTI, ingested and preprocessed on a coarser analysis grid."""
    import SimpleITK as sitk

    from ctpheno.config.pipeline import load_pipeline_config
    from ctpheno.pipeline import run_stages
    from ctpheno.synth.dicom import write_dicom_series
    from ctpheno.synth.phantom import make_phantom

    root = tmp_path_factory.mktemp("phantom_export")
    p = make_phantom(seed=2, size="demo")
    dicom = root / "archive" / "dicom"
    write_dicom_series(p.image, dicom, patient={"PatientID": "12345678", "PatientName": "DOE^JANE",
                                                "PatientBirthDate": "19600101", "PatientSex": "F",
                                                "PatientAge": "064Y"},
                       uid_entropy="export-test", rescale_intercept=-1024, manufacturer="ACME",
                       scanner_model="CT1", kernel_name="B30f", slice_thickness_mm=p.image.spacing_mm[0],
                       study_date=date(2020, 1, 1))
    nifti = root / "archive" / "nifti" / "chest.nii.gz"
    nifti.parent.mkdir(parents=True)
    sitk.WriteImage(p.image.to_sitk(), str(nifti))
    runs = {}
    for name, source in (("dicom", dicom), ("nifti", nifti.parent)):
        cfg = load_pipeline_config(None, overrides=[
            f"paths.workdir={root / name}", f"paths.inputs=['{source}']", "cluster.kind=synchronous",
            "preprocess.qc_png=false", f"preprocess.spacing_mm={list(ANALYSIS_SPACING_MM)}",
            f"export.out={root / f'{name}-export'}", "export.enabled=true", "ingest.min_slices=30"])
        run_stages(cfg, ["ingest", "preprocess"])
        runs[name] = cfg
    return {"phantom": p, "dicom": dicom, "runs": runs}


def _add_lobes(wd, scan_id: str) -> np.ndarray:
    """Give the store a ``lobes`` array (as a lobe-segmentation backend would): upper/lower by height."""
    from ctpheno.io.zarrstore import open_volume_store, read_volume, write_volume_store

    store = wd.volume(scan_id)
    group = open_volume_store(store)
    arrays = {name: group[name][...] for name in group.array_keys()}
    labels = read_volume(store, "labels")
    z = np.arange(labels.shape[0])[:, None, None]
    upper = z >= labels.shape[0] // 2
    right, left = labels.array == 1, labels.array == 2
    lobes = np.where(right, np.where(upper, 1, 3), np.where(left, np.where(upper, 4, 5), 0))
    write_volume_store(store, {**arrays, "lobes": lobes.astype(np.uint8)}, labels, attrs=dict(group.attrs))
    return lobes


def test_dicom_export_maps_the_analysis_grid_back_onto_the_source_slices(phantom_runs):
    import highdicom as hd
    import pydicom

    from ctpheno.io.layout import WorkDir
    from ctpheno.io.zarrstore import read_volume
    from ctpheno.pipeline import run_stages

    cfg = phantom_runs["runs"]["dicom"]
    wd = WorkDir(cfg.paths.workdir)
    scan_id = pd.read_parquet(wd.qc_table)["scan_id"].item()
    store_labels = read_volume(wd.volume(scan_id), "labels")
    assert store_labels.spacing_mm == pytest.approx(ANALYSIS_SPACING_MM)  # not the scan's own grid
    lobes = _add_lobes(wd, scan_id)
    run_stages(cfg, ["export"])
    out = cfg.export.out / scan_id
    info = json.loads((out / "export.json").read_text())
    assert info["analysis_grid_resampled"] is True and "seg.dcm" in info["written"]
    assert info["skipped"] == {"dicom-sr": "no QCT rows for this scan; run the qct stage first"}

    headers = sorted((pydicom.dcmread(f, stop_before_pixels=True) for f in phantom_runs["dicom"].iterdir()),
                     key=lambda h: float(h.ImagePositionPatient[2]))
    seg = hd.seg.segread(out / "seg.dcm")
    labels = {int(s.SegmentNumber): s.SegmentLabel for s in seg.SegmentSequence}
    assert labels[9] == "Left lower lobe" and labels[6] == "Right middle lobe" and len(labels) == 9
    uids = [h.SOPInstanceUID for h in headers]
    masks = seg.get_pixels_by_source_instance(uids, segment_numbers=[1, 2, 5, 9],
                                             assert_missing_frames_are_empty=True)
    source_grid = Grid.of(phantom_runs["phantom"].image)
    expected = _nearest_reference(store_labels, source_grid)
    assert masks.shape[:3] == source_grid.shape
    assert np.array_equal(masks[..., 0] > 0, expected == 1)
    assert np.array_equal(masks[..., 1] > 0, expected == 2)
    expected_lobes = _nearest_reference(store_labels.with_array(lobes), source_grid)
    assert np.array_equal(masks[..., 2] > 0, expected_lobes == 1) and np.array_equal(masks[..., 3] > 0,
                                                                                      expected_lobes == 5)
    # the mapped lungs keep the analysis grid's volume (nearest neighbour, within partial-voxel noise)
    source_ml = (masks[..., :2] > 0).sum() * np.prod(source_grid.spacing_mm) / 1000
    store_ml = np.isin(store_labels.array, (1, 2)).sum() * np.prod(ANALYSIS_SPACING_MM) / 1000
    assert source_ml == pytest.approx(store_ml, rel=0.02)


def test_volume_file_sources_get_nifti_and_ome_zarr_and_say_why_not_dicom(phantom_runs):
    import SimpleITK as sitk

    from ctpheno.export.nifti import read_label_table
    from ctpheno.io.layout import WorkDir
    from ctpheno.pipeline import run_stages

    cfg = phantom_runs["runs"]["nifti"]
    wd = WorkDir(cfg.paths.workdir)
    run_stages(cfg, ["export"])
    scan_id = pd.read_parquet(wd.qc_table)["scan_id"].item()
    out = cfg.export.out / scan_id
    info = json.loads((out / "export.json").read_text())
    reason = "the source is nifti, not a series of single-frame DICOM images"
    assert info["skipped"] == {"dicom-seg": reason, "dicom-sr": reason}
    assert not (out / "seg.dcm").exists() and (out / "volumes.ome.zarr").is_dir()
    lungs = sitk.ReadImage(str(out / "lungs.nii.gz"))
    assert lungs.GetSize() == phantom_runs["phantom"].image.to_sitk().GetSize()  # the scan's own grid
    assert read_label_table(out / "lungs.itksnap.txt")[1] == "Right lung"


def test_dicom_exports_never_go_inside_the_work_directory(tmp_path):
    from ctpheno.config.pipeline import load_pipeline_config
    from ctpheno.errors import ConfigError
    from ctpheno.export.stage import export_out_dir
    from ctpheno.io.layout import WorkDir

    wd = WorkDir(tmp_path / "work")

    def cfg(*sets: str):
        return load_pipeline_config(None, overrides=[f"paths.workdir={wd.root}", *sets])

    with pytest.raises(ConfigError, match="export.out is not set"):
        export_out_dir(cfg(), wd, ["nifti"])
    inside = cfg(f"export.out={wd.root / 'export'}")
    with pytest.raises(ConfigError, match="inside the work directory .* dicom-seg, dicom-sr copy the source"):
        export_out_dir(inside, wd, ["nifti", "dicom-seg", "dicom-sr"])
    assert export_out_dir(inside, wd, ["nifti", "ome-zarr"]) == wd.root / "export"  # no identifiers in these
    assert export_out_dir(cfg(f"export.out={tmp_path / 'out'}"), wd, ["dicom-seg"]) == tmp_path / "out"


def test_ome_zarr_is_written_in_the_task_not_through_the_cluster(tmp_path):
    """ome-zarr computes through dask; inside a Dask task that would ship the whole volume to the scheduler."""
    from distributed import Client, LocalCluster, get_task_stream

    from ctpheno.export.labels import LUNG_LABELS
    from ctpheno.export.omezarr import write_ome_zarr

    image = Volume(np.zeros((6, 8, 10), np.int16), (2.0, 1.0, 1.0), (1.0, 2.0, 3.0))
    labels = np.zeros(image.shape, np.uint8)
    labels[2:4, 2:6, 2:8] = 1
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster):
        with get_task_stream() as stream:
            write_ome_zarr(tmp_path / "v.ome.zarr", image, {"lungs": (labels, LUNG_LABELS)})
    assert stream.data == []
    import zarr

    assert np.array_equal(zarr.open_group(str(tmp_path / "v.ome.zarr"), mode="r")["labels/lungs/s0"][...], labels)
