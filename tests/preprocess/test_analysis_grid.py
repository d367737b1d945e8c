"""The isotropic analysis grid: PyRadiomics' own grid and resampled image, voxel for voxel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from ctpheno.errors import EmptyLungMaskError
from ctpheno.io.volume import Volume
from ctpheno.preprocess.analysis_grid import continuous_index, make_analysis_grid, resample_image


@pytest.fixture(scope="module")
def lung1(shared_data):
    import SimpleITK as sitk

    folder = shared_data / "pyradiomics_lung1"
    image = sitk.ReadImage(str(folder / "lung1_image.nrrd"))
    label = sitk.ReadImage(str(folder / "lung1_label.nrrd"))
    return image, label


def test_grid_is_pyradiomics_resampled_image_on_real_ct(lung1):
    """lung1 (0.57 x 0.57 x 5 mm) with its lesion as label 1: image, mask and geometry equal what
    PyRadiomics' resampleImage builds for ``resampledPixelSpacing [2, 2, 2]``, sitkBSpline, pad 5."""
    import SimpleITK as sitk
    from radiomics import imageoperations

    image, label = lung1
    ref_img, ref_mask = imageoperations.resampleImage(image, label, resampledPixelSpacing=[2, 2, 2],
                                                      interpolator=sitk.sitkBSpline, padDistance=5, label=1)
    img = Volume.from_sitk(image)
    lab = Volume.from_sitk(label)
    grid = make_analysis_grid(img, lab.with_array(lab.array.astype(np.uint8)),
                              lab.with_array(np.zeros(lab.shape, np.uint8)), spacing_mm=2.0, margin_mm=10.0)
    assert grid.image.shape == sitk.GetArrayViewFromImage(ref_img).shape
    assert np.allclose(grid.image.origin_mm, ref_img.GetOrigin(), atol=1e-9)
    assert grid.image.spacing_mm == (2.0, 2.0, 2.0) and grid.image.array.dtype == np.int16
    assert np.array_equal(grid.image.array, sitk.GetArrayFromImage(ref_img))
    assert np.array_equal(grid.labels.array, sitk.GetArrayFromImage(ref_mask))


def test_interpolation_matches_scipy_splines_on_random_volume():
    """Independent implementation: scipy's spline evaluation (mirror boundary), truncated to int16."""
    rng = np.random.default_rng(1)
    hu = rng.integers(-1000, 200, size=(23, 31, 29)).astype(np.int16)
    sp = (2.5, 0.7, 0.8)
    cs = [continuous_index(0, int(np.ceil(n * s / 2.0)), s, 2.0) for n, s in zip(hu.shape, sp)]
    grid = np.meshgrid(*cs, indexing="ij")
    inside = np.ones(grid[0].shape, bool)
    for c, n in zip(grid, hu.shape):
        inside &= (c >= -0.5) & (c < n - 0.5)
    for order, name in ((3, "bspline"), (1, "linear")):
        ref = ndi.map_coordinates(hu.astype(np.float64), grid, order=order, mode="mirror" if order == 3 else "nearest")
        ours = resample_image(hu, cs, interpolator=name)
        diff = np.abs(ours[inside].astype(int) - np.trunc(ref[inside]))
        assert diff.max() <= 1 and np.mean(diff > 0) < 1e-3, name  # only float ties at the truncation
        assert (ours[~inside] == -1000).all() or not (~inside).any()


def test_grid_crops_to_lungs_plus_margin_and_keeps_geometry():
    hu = np.full((40, 50, 60), -1000, np.int16)
    labels = np.zeros(hu.shape, np.uint8)
    labels[10:20, 15:30, 10:25] = 1
    labels[10:20, 15:30, 35:50] = 2
    labels[0:30, 5:8, 28:32] = 3  # airways are not part of the crop
    img = Volume(hu, (1.0, 1.0, 1.0), origin_mm=(-30.0, 12.0, 100.0))
    grid = make_analysis_grid(img, img.with_array(labels), img.with_array(labels), spacing_mm=2.0, margin_mm=4.0)
    # grid k covers native lo..hi plus 2 voxels: floor((lo - 0.5) / 2 - 2) .. ceil((hi + 0.5) / 2 + 2)
    # z 10..19 -> 2..12, y 15..29 -> 5..17, x 10..49 -> 2..27; grid voxel k sits at native 2k + 0.5
    assert grid.image.shape == (11, 13, 26)
    assert np.allclose(grid.image.origin_mm, img.index_to_physical([4.5, 10.5, 4.5]))
    assert grid.image.spacing_mm == (2.0, 2.0, 2.0) and grid.image.direction == img.direction
    # nearest neighbour, halves up (2k + 0.5 -> 2k + 1): label 1 at k with 2k + 1 in its native range
    assert np.count_nonzero(grid.labels.array == 1) == 5 * 8 * 7
    assert np.array_equal(grid.labels.array, labels[5:26:2, 11:36:2, 5:56:2])
    with pytest.raises(EmptyLungMaskError):
        make_analysis_grid(img, img.with_array(np.zeros_like(labels)), img.with_array(labels))
