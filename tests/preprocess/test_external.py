"""Masks from other tools: physical-grid matching, label maps, binary split, the optional backends' wiring."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import SimpleITK as sitk

from preprocess_phantom import dice
from ctpheno.config.preprocess import ExternalMaskConfig, SegmentationConfig
from ctpheno.io.volume import Volume
from ctpheno.preprocess import segment_lungs
from ctpheno.preprocess.external import map_labels, split_lungs, to_image_grid


def _reoriented(vol: Volume) -> Volume:
    """The same physical voxels stored the way a RAS NIfTI writer does: x and y reversed."""
    arr = vol.array[:, ::-1, ::-1].copy()
    d = np.asarray(vol.direction, float).reshape(3, 3).copy()
    d[:, 0] *= -1
    d[:, 1] *= -1
    origin = vol.index_to_physical([0, vol.shape[1] - 1, vol.shape[2] - 1])
    return Volume(arr, vol.spacing_mm, tuple(origin), tuple(d.ravel()))


def test_mask_in_another_axis_order_is_put_on_the_image_grid(small_phantom):
    img = small_phantom.image
    truth = img.with_array(small_phantom.truth)
    flipped = _reoriented(truth)
    assert not flipped.same_geometry(img)
    back = to_image_grid(img, flipped)
    assert np.array_equal(back.array, small_phantom.truth)


def test_mask_on_another_grid_is_refused_with_the_mismatch(small_phantom):
    img = small_phantom.image
    shifted = Volume(small_phantom.truth, img.spacing_mm, (0.9, 0.0, 0.0), img.direction)
    with pytest.raises(ValueError, match="not on the image's voxel grid.*offset by 0.45 voxel"):
        to_image_grid(img, shifted)
    coarse = Volume(small_phantom.truth[::2], (5.0, 2.0, 2.0), img.origin_mm, img.direction)
    with pytest.raises(ValueError, match=r"spacing \(5.0, 2.0, 2.0\)"):
        to_image_grid(img, coarse)


def test_binary_mask_is_split_into_right_and_left(small_phantom):
    img = small_phantom.image
    binary = np.isin(small_phantom.truth, (1, 2)).astype(np.uint8)
    labels, lobes = map_labels(img, img.with_array(binary), ExternalMaskConfig(label_map={1: "lung"}))
    assert lobes is None
    assert dice(labels.array == 1, small_phantom.truth == 1) >= 0.99
    assert dice(labels.array == 2, small_phantom.truth == 2) >= 0.99
    # stored mirrored (direction -x): sides still follow the patient
    from preprocess_phantom import make_small_phantom

    fl = make_small_phantom(flip_x=True)
    split = split_lungs(fl.image, np.isin(fl.truth, (1, 2)))
    assert dice(split == 1, fl.truth == 1) >= 0.99


def test_totalsegmentator_lobes_map_to_lungs_and_lobe_map(small_phantom):
    img = small_phantom.image
    t = small_phantom.truth
    z = np.arange(t.shape[0])[:, None, None]
    ts = np.zeros(t.shape, np.uint8)
    ts[(t == 1) & (z >= 45)] = 12  # right upper
    ts[(t == 1) & (z < 45)] = 14  # right lower
    ts[(t == 2) & (z >= 45)] = 10
    ts[(t == 2) & (z < 45)] = 11
    ts[t == 3] = 16
    labels, lobes = map_labels(img, img.with_array(ts), ExternalMaskConfig(preset="totalsegmentator"))
    assert np.array_equal(labels.array, t)
    assert set(np.unique(lobes.array)) == {0, 1, 3, 4, 5}  # no middle lobe drawn here
    assert np.array_equal(lobes.array == 4, ts == 10)
    with pytest.raises(ValueError, match=r"labels \[7\] are not in the label map"):
        map_labels(img, img.with_array(np.where(t == 1, 7, t).astype(np.uint8)))


def test_lungmask_backend_wiring_with_a_fake_model(small_phantom, tmp_path, monkeypatch):
    """lungmask is optional and its weights are never downloaded: a fake package checks the wiring."""
    seen = {}

    class FakeInferer:
        def __init__(self, modelpath=None, **kw):
            seen["modelpath"] = modelpath

        def apply(self, image):
            seen["size"] = image.GetSize()
            return small_phantom.truth.copy()  # lungmask R231: 1 right, 2 left

    monkeypatch.setitem(sys.modules, "lungmask", types.SimpleNamespace(LMInferer=FakeInferer))
    weights = tmp_path / "unet_r231.pth"
    with pytest.raises(ValueError, match="local lungmask weights file"):
        segment_lungs(small_phantom.image, config=SegmentationConfig(backend="lungmask", modelpath=weights))
    weights.write_bytes(b"fake")
    lab = segment_lungs(small_phantom.image, config=SegmentationConfig(backend="lungmask", modelpath=weights))
    assert seen["modelpath"] == str(weights) and seen["size"] == small_phantom.image.shape[::-1]
    assert np.array_equal(lab.array, np.where(small_phantom.truth == 3, 0, small_phantom.truth))


def test_cli_segment_and_qct_with_a_reoriented_binary_mask(small_phantom, tmp_path):
    from typer.testing import CliRunner

    from ctpheno.cli import app

    img_path = tmp_path / "ct.nii.gz"
    sitk.WriteImage(small_phantom.image.to_sitk(), str(img_path))
    binary = small_phantom.image.with_array(np.isin(small_phantom.truth, (1, 2)).astype(np.uint8))
    mask_path = tmp_path / "lungs.nii.gz"
    sitk.WriteImage(_reoriented(binary).to_sitk(), str(mask_path))
    runner = CliRunner()
    res = runner.invoke(app, ["qct", str(img_path), "--mask", str(mask_path), "--json"])
    assert res.exit_code == 0, res.output
    import json

    out = json.loads(res.output)
    vml = small_phantom.image.voxel_volume_ml
    assert out["right_lung_volume_ml"] == pytest.approx(np.count_nonzero(small_phantom.truth == 1) * vml, rel=0.01)
    res = runner.invoke(app, ["segment", str(img_path), str(tmp_path / "o.nii.gz"), "--backend", "lungmask",
                              "--modelpath", str(tmp_path / "missing.pth")])
    assert res.exit_code != 0
    assert "lungmask" in res.output


def test_damaged_mask_file_is_refused_without_its_path(tmp_path):
    """A truncated .nii.gz mask is refused as input volumes are (not zero-filled), named by its label."""
    from ctpheno.io.volheaders import VolumeFileError
    from ctpheno.preprocess.external import read_mask

    folder = tmp_path / "DOE^JOHN_1931"
    folder.mkdir()
    good = folder / "mask.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((20, 32, 32), np.uint8)), str(good))
    assert read_mask(good).array.sum() == 20 * 32 * 32
    data = good.read_bytes()
    bad = folder / "cut.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(VolumeFileError) as err:
        read_mask(bad, label="external mask of s-1")
    assert "external mask of s-1" in str(err.value)
    assert "DOE" not in str(err.value) and "cut.nii" not in str(err.value)
