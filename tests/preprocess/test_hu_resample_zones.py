"""HU handling, normalisation (in-memory vs dask), resampling geometry and lung zones."""

from __future__ import annotations

import numpy as np
import pytest

from ctpheno.io.volume import Volume
from ctpheno.vocab import ZONE_CODES
from ctpheno.preprocess import (lung_zones, resample, smooth_hu, smooth_hu_dask, to_hu_int16, to_hu_int16_dask,
                                window_normalise, window_normalise_dask, zscore_in_lung, zscore_in_lung_dask)
from ctpheno.preprocess.hu import gaussian_halo


def test_to_hu_int16_padding_and_clip():
    a = np.array([[[-3024, -2000, -1999, -1500, -1024, 0, 5000]]], dtype=np.int32)
    out = to_hu_int16(a)
    assert out.dtype == np.int16
    assert out.tolist() == [[[-1024, -1024, -1024, -1024, -1024, 0, 3071]]]
    assert to_hu_int16(np.array([[[-850.6]]]), clip_hu=(-1000, 100)).tolist() == [[[-851]]]
    with pytest.raises(ValueError, match="low < high"):
        to_hu_int16(a, clip_hu=(100, -100))
    with pytest.raises(TypeError, match="integer or float"):
        to_hu_int16(np.array([[["a"]]]))


def test_window_and_zscore():
    hu = np.array([[[-1200, -1000, -400, 200, 900]]], dtype=np.int16)
    assert np.allclose(window_normalise(hu), [[[0, 0, 0.5, 1, 1]]])
    lung = np.array([[[False, True, True, False, False]]])
    z = zscore_in_lung(hu, lung)
    assert np.allclose(z[lung], [-1, 1])  # mean -700, sd 300
    with pytest.raises(ValueError, match="differ in shape"):
        zscore_in_lung(hu, lung[..., :2])


def test_dask_twins_equal_in_memory_on_chunks_smaller_than_halo():
    da = pytest.importorskip("dask.array")
    rng = np.random.default_rng(3)
    hu = rng.integers(-3024, 3500, size=(20, 24, 28)).astype(np.int16)
    spacing = (1.0, 0.7, 0.7)
    halo = gaussian_halo(spacing, sigma_mm=1.5)
    assert halo == (6, 9, 9)
    d = da.from_array(hu, chunks=(5, 6, 7))  # every chunk is smaller than the halo
    assert np.array_equal(to_hu_int16_dask(d).compute(), to_hu_int16(hu))
    clean = to_hu_int16(hu)
    dc = da.from_array(clean, chunks=(5, 6, 7))
    assert np.allclose(window_normalise_dask(dc).compute(), window_normalise(clean))
    assert np.allclose(smooth_hu_dask(dc, spacing, sigma_mm=1.5).compute(), smooth_hu(clean, spacing, sigma_mm=1.5),
                       atol=1e-3)
    lung = clean < 0
    assert np.allclose(zscore_in_lung_dask(dc, da.from_array(lung, chunks=(5, 6, 7))).compute(),
                       zscore_in_lung(clean, lung), atol=1e-4)


def test_resample_geometry_and_labels():
    direction = (0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    arr = np.zeros((10, 20, 30), np.int16)
    arr[:, 5:15, 10:20] = 100
    vol = Volume(arr, (2.0, 0.5, 0.5), (10.0, -20.0, 30.0), direction)
    out = resample(vol, (1.0, 1.0, 1.0))
    assert out.shape == (20, 10, 15)
    assert out.origin_mm == vol.origin_mm and out.direction == vol.direction
    assert out.array.dtype == np.int16
    # the physical centre of the bright box stays where it was
    c_in = vol.index_to_physical(np.argwhere(arr == 100).mean(0))
    c_out = out.index_to_physical(np.argwhere(out.array > 50).mean(0))
    assert np.allclose(c_in[:2], c_out[:2], atol=0.6)
    lab = vol.with_array((arr > 0).astype(np.uint8) * 2)
    lout = resample(lab, (1.0, 1.0, 1.0), is_label=True)
    assert set(np.unique(lout.array)) <= {0, 2} and lout.array.dtype == np.uint8
    with pytest.raises(ValueError, match="3 positive"):
        resample(vol, (1.0, 0.0, 1.0))


@pytest.mark.parametrize("sup_sign", [1, -1])
def test_zones_are_equal_volume_thirds_top_to_bottom(sup_sign):
    lab = np.zeros((30, 8, 8), np.uint8)
    lab[2:28, 1:7, 1:4] = 1
    lab[5:25, 1:7, 4:7] = 2
    direction = (1.0, 0, 0, 0, 1.0, 0, 0, 0, float(sup_sign))
    zones = lung_zones(Volume(lab, (1.0, 1.0, 1.0), direction=direction)).array
    for code, side in ((1, "right"), (2, "left")):
        n = np.count_nonzero(lab == code)
        mean_z = []
        for part in ("upper", "middle", "lower"):
            m = zones == ZONE_CODES[(side, part)]
            assert abs(np.count_nonzero(m) - n / 3) <= 1
            assert np.all(lab[m] == code)
            mean_z.append(np.nonzero(m)[0].mean())
        # upper is superior: larger z index when +z is superior
        assert (np.diff(mean_z) < 0).all() if sup_sign > 0 else (np.diff(mean_z) > 0).all()
    assert np.array_equal(zones > 0, lab > 0)


def test_process_volume_resamples_before_segmenting(small_phantom):
    from ctpheno.config.preprocess import PreprocessConfig
    from ctpheno.preprocess.stage import process_volume

    cfg = PreprocessConfig(spacing_mm=(2.0, 2.0, 2.0))
    hu, labels, zones = process_volume(small_phantom.image, cfg)
    assert hu.spacing_mm == (2.0, 2.0, 2.0) and hu.origin_mm == small_phantom.image.origin_mm
    assert hu.array.dtype == np.int16 and labels.same_geometry(hu) and zones.same_geometry(hu)
    # lung volumes agree with the native-grid truth within 3 %
    truth_ml = [np.count_nonzero(small_phantom.truth == c) * small_phantom.image.voxel_volume_ml for c in (1, 2)]
    got_ml = [np.count_nonzero(labels.array == c) * hu.voxel_volume_ml for c in (1, 2)]
    assert np.allclose(got_ml, truth_ml, rtol=0.03)
