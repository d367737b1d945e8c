"""Airway tree and per-branch airway measures: Pi10, segmental WA %, lumen and wall by generation.

Pipeline of one scan (:func:`measure_airways`):

1. :mod:`.segment` — the lumen grown from the trachea with a global explosion test and per-branch
   leak control;
2. :mod:`.graph` — skeleton, branch graph, generations from the carina;
3. :mod:`.psf` — the scan's blur, measured on its trachea;
4. :mod:`.sections` — cross-sections orthogonal to each branch, FWHM of ray profiles, corrected
   for blur with the blurred-ring model of :mod:`.blur`;
5. :mod:`.endpoints` — per-branch medians, Pi10, segmental medians, airway count;
6. :mod:`.figures` — the QC picture (tree by generation, cross-section gallery).

The pipeline stage (:mod:`.stage`) maps it over preprocessed scans; the QCT stage puts the
endpoints on the whole-lung row of ``qct.parquet``.
"""

from .endpoints import ENDPOINT_COLUMNS, FLAG_COLUMN, FLAGS, pi10_mm, with_endpoints
from .measure import AirwayResult, branch_label_map, measure_airways

__all__ = ["AirwayResult", "ENDPOINT_COLUMNS", "FLAGS", "FLAG_COLUMN", "branch_label_map", "measure_airways",
           "pi10_mm", "with_endpoints"]
