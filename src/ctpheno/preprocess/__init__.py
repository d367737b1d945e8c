"""Preprocess stage: HU handling, resampling, lung segmentation, zones, normalisation, QC.

Public API::

    segment_lungs(image, *, config=None) -> Volume   # uint8: 1 right, 2 left lung, 3 airways
    SEGMENTATION_BACKENDS                              # name -> backend function
    lung_zones(labels) -> Volume                       # uint8 zone codes (ZONE_CODES)
    to_hu_int16, window_normalise, zscore_in_lung, smooth_hu (+ *_dask twins)
    resample(volume, spacing_mm, *, is_label=False) -> Volume
    qc_metrics(image, labels) -> dict ; qc_montage(image, labels, dest) -> Path
"""

from .hu import (smooth_hu, smooth_hu_dask, to_hu_int16, to_hu_int16_dask, window_normalise, window_normalise_dask,
                 zscore_in_lung, zscore_in_lung_dask)
from .qc import qc_metrics, qc_montage
from .resample import resample
from .segment import SEGMENTATION_BACKENDS, segment_lungs
from .zones import lung_zones

__all__ = ["SEGMENTATION_BACKENDS", "lung_zones", "qc_metrics", "qc_montage", "resample", "segment_lungs",
           "smooth_hu", "smooth_hu_dask", "to_hu_int16", "to_hu_int16_dask", "window_normalise",
           "window_normalise_dask", "zscore_in_lung", "zscore_in_lung_dask"]
