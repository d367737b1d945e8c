"""Lung segmentation entry point and its backend registry.

``segment_lungs(image)`` returns a uint8 label :class:`Volume` on the image's grid:
0 background, 1 right lung, 2 left lung, 3 trachea / main bronchi (patient sides from the
direction matrix, never array order). Backends are plain functions in
:data:`SEGMENTATION_BACKENDS`; ``lungmask`` and ``totalsegmentator`` import their packages
lazily and never download weights.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import numpy.typing as npt

from ..config.preprocess import SegmentationConfig
from ..errors import EmptyLungMaskError, MissingExtraError
from ..io.volume import Volume, axial_view
from ..vocab import LABEL_AIRWAYS, LABEL_LEFT_LUNG, LABEL_RIGHT_LUNG
from .classic import segment_classic
from .external import to_image_grid
from .hu import to_hu_int16

Backend = Callable[[Volume, SegmentationConfig], npt.NDArray[np.uint8]]


def _classic(image: Volume, cfg: SegmentationConfig) -> npt.NDArray[np.uint8]:
    perm, left, sup = axial_view(image)
    arr = image.array
    if not (arr.dtype == np.int16 and int(arr.min()) > -2000):  # already clean int16 HU: no copy
        arr = to_hu_int16(arr)
    hu = np.transpose(arr, perm)
    spacing = tuple(image.spacing_mm[a] for a in perm)
    lab = segment_classic(np.ascontiguousarray(hu), spacing, left_axis=left, superior_axis=sup,
                          threshold_hu=cfg.threshold_hu, adaptive_threshold=cfg.adaptive_threshold,
                          airway_threshold_hu=cfg.airway_threshold_hu, airway_max_ml=cfg.airway_max_ml,
                          coarse_spacing_mm=cfg.coarse_spacing_mm, closing_iterations=cfg.closing_iterations,
                          min_second_lung_fraction=cfg.min_second_lung_fraction,
                          min_chest_lung_ml=cfg.min_chest_lung_ml, rim_lung_fraction=cfg.rim_lung_fraction,
                          rim_max_mm=cfg.rim_max_mm, costal_closing_mm=cfg.costal_closing_mm,
                          costal_min_depth_mm=cfg.costal_min_depth_mm)
    return np.ascontiguousarray(np.transpose(lab, np.argsort(perm)))


def _lungmask(image: Volume, cfg: SegmentationConfig) -> npt.NDArray[np.uint8]:
    try:
        from lungmask import LMInferer  # type: ignore[import-not-found]
    except ImportError:
        raise MissingExtraError("lungmask", "lungmask", "segmentation backend 'lungmask'") from None
    if cfg.modelpath is None or not cfg.modelpath.is_file():
        raise ValueError(f"segmentation.modelpath (--modelpath) must name a local lungmask weights file, e.g. "
                         f"unet_r231-d5d2fc3d.pth (weights are never downloaded); got {cfg.modelpath}")
    inferer = LMInferer(modelpath=str(cfg.modelpath))
    pred = np.asarray(inferer.apply(image.to_sitk()))  # lungmask: 1 right, 2 left (patient sides)
    return np.where(pred == 1, LABEL_RIGHT_LUNG, np.where(pred == 2, LABEL_LEFT_LUNG, 0)).astype(np.uint8)


def _totalsegmentator(image: Volume, cfg: SegmentationConfig) -> npt.NDArray[np.uint8]:
    try:
        import nibabel as nib  # type: ignore[import-not-found]
        from totalsegmentator.python_api import totalsegmentator  # type: ignore[import-not-found]
    except ImportError:
        raise MissingExtraError("TotalSegmentator", "totalsegmentator", "segmentation backend 'totalsegmentator'") from None
    import os
    import tempfile
    from pathlib import Path

    import SimpleITK as sitk

    if cfg.modelpath is None or not cfg.modelpath.is_dir() or not any(cfg.modelpath.iterdir()):
        raise ValueError(f"segmentation.modelpath (--modelpath) must name TotalSegmentator's local weights folder "
                         f"(weights are never downloaded); got {cfg.modelpath}")
    os.environ["TOTALSEG_WEIGHTS_PATH"] = str(cfg.modelpath)  # TotalSegmentator looks for its weights here
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "ct.nii.gz"
        sitk.WriteImage(image.to_sitk(), str(src))
        seg = totalsegmentator(nib.load(str(src)), task="total", roi_subset=[
            "lung_upper_lobe_left", "lung_lower_lobe_left", "lung_upper_lobe_right", "lung_middle_lobe_right",
            "lung_lower_lobe_right", "trachea"], ml=True, quiet=True)
        out = Path(tmp) / "seg.nii.gz"
        nib.save(seg, str(out))
        seg_vol = Volume.from_sitk(sitk.ReadImage(str(out)))

    arr = to_image_grid(image, seg_vol, what="TotalSegmentator's output").array
    # map class ids to names through TotalSegmentator's own table (ids differ between versions)
    from totalsegmentator.map_to_binary import class_map  # type: ignore[import-not-found]

    names = {v: k for k, v in class_map["total"].items()}
    out_arr = np.zeros(arr.shape, np.uint8)
    for code in np.unique(arr):
        name = names.get(int(code), "")
        if name.startswith("lung_") and name.endswith("_right"):
            out_arr[arr == code] = LABEL_RIGHT_LUNG
        elif name.startswith("lung_") and name.endswith("_left"):
            out_arr[arr == code] = LABEL_LEFT_LUNG
        elif name == "trachea":
            out_arr[arr == code] = LABEL_AIRWAYS
    return out_arr


SEGMENTATION_BACKENDS: dict[str, Backend] = {
    "classic": _classic,
    "lungmask": _lungmask,
    "totalsegmentator": _totalsegmentator,
}
"""Segmentation backends: name -> ``f(image, config) -> uint8 labels`` on the image grid."""


def segment_lungs(image: Volume, *, config: SegmentationConfig | None = None) -> Volume:
    """Segment the lungs of a chest CT.

    Parameters
    ----------
    image : Volume
        HU (any integer/float dtype; padding at or below -2000 HU is treated as air).
    config : SegmentationConfig, optional
        Backend and parameters; defaults to the ``classic`` backend.

    Returns
    -------
    Volume
        uint8 labels on ``image``'s grid: 0 background, 1 right lung, 2 left lung, 3 trachea and
        main bronchi (outside the lungs).

    Raises
    ------
    NotChestCTError
        The field of view does not contain the lungs.
    EmptyLungMaskError
        The backend found no lung voxel.
    MissingExtraError
        An optional backend's package is not installed.
    """
    if not isinstance(image, Volume):
        raise TypeError(f"image must be a ctpheno Volume; got {type(image).__name__}")
    cfg = config or SegmentationConfig()
    backend = SEGMENTATION_BACKENDS.get(cfg.backend)
    if cfg.backend == "external":
        raise ValueError("segmentation backend 'external' reads each scan's mask: run the pipeline (preprocess) "
                         "with segmentation.external.path_template, or pass --mask to `ctpheno qct`")
    if backend is None:
        raise ValueError(f"unknown segmentation backend {cfg.backend!r}; choose from {sorted(SEGMENTATION_BACKENDS)}")
    labels = backend(image, cfg)
    if labels.shape != image.shape:
        raise ValueError(f"backend {cfg.backend!r} returned shape {labels.shape}, expected {image.shape}")
    if not ((labels == LABEL_RIGHT_LUNG) | (labels == LABEL_LEFT_LUNG)).any():
        raise EmptyLungMaskError(f"backend {cfg.backend!r} found no lung voxel; check the QC image and the input HU")
    return image.with_array(labels.astype(np.uint8), segmentation_backend=cfg.backend)
