"""Resampling to a target spacing with SimpleITK (geometry kept exact)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..io.volume import Volume


def resample(volume: Volume, spacing_mm: Sequence[float], *, is_label: bool = False,
             default_hu: int = -1024) -> Volume:
    """Resample ``volume`` to ``spacing_mm`` (z, y, x) covering the same physical extent.

    The origin stays the centre of voxel [0, 0, 0], the direction is unchanged and the new size is
    :math:`n' = \\lceil n s / s' \\rceil` (rounded to the nearest voxel when within 1e-3). Images
    use linear interpolation and are rounded back to int16 (outside -> ``default_hu``, air); label
    maps use label-Gaussian interpolation when available (SimpleITK ``sitkLabelGaussian``,
    smooth but label-valued), else nearest neighbour, and keep their dtype.
    """
    import SimpleITK as sitk

    sp = tuple(float(s) for s in spacing_mm)
    if len(sp) != 3 or not all(s > 0 for s in sp):
        raise ValueError(f"spacing_mm must be 3 positive numbers (z, y, x); got {spacing_mm}")
    src = volume.to_sitk()
    size_zyx = []
    for n, s_old, s_new in zip(volume.shape, volume.spacing_mm, sp):
        exact = n * s_old / s_new
        size_zyx.append(max(1, int(round(exact)) if abs(exact - round(exact)) < 1e-3 else int(np.ceil(exact))))
    f = sitk.ResampleImageFilter()
    f.SetOutputSpacing(sp[::-1])
    f.SetSize([int(v) for v in size_zyx[::-1]])
    f.SetOutputOrigin(volume.origin_mm)
    f.SetOutputDirection(volume.direction)
    if is_label:
        f.SetInterpolator(sitk.sitkLabelGaussian if hasattr(sitk, "sitkLabelGaussian") else sitk.sitkNearestNeighbor)
        f.SetDefaultPixelValue(0)
        out = f.Execute(src)
        arr = sitk.GetArrayFromImage(out).astype(volume.array.dtype)
    else:
        f.SetInterpolator(sitk.sitkLinear)
        f.SetDefaultPixelValue(float(default_hu))
        f.SetOutputPixelType(sitk.sitkFloat32)
        out = f.Execute(src)
        arr = np.clip(np.rint(sitk.GetArrayFromImage(out)), -32768, 32767).astype(np.int16)
    return Volume(arr, sp, volume.origin_mm, volume.direction, dict(volume.meta))
