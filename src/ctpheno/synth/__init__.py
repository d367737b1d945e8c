"""Synthetic COPD cohort: chest-CT phantoms with known truth, written as real DICOM.

Public API: :func:`make_phantom` / :class:`Phantom` (one scan and its truth) and
:func:`write_cohort` (a whole cohort with clinical table, truth table and label maps).
"""

from .cohort import plan_cohort, rim_truth_bounds, truth_metrics, write_cohort
from .phantom import Phantom, make_phantom

__all__ = ["Phantom", "make_phantom", "plan_cohort", "rim_truth_bounds", "truth_metrics", "write_cohort"]
