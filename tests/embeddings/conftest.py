"""Shared fixtures: synthetic phantoms with known emphysema truth, and a fast SSL config.

The phantoms and the probe protocol are ``ctpheno.eval.probe`` (also used by the embeddings
benchmark), so the test and docs/results.md measure the same thing.
"""

from __future__ import annotations

import pytest

from ctpheno.config.embeddings import EmbeddingsConfig
from ctpheno.eval.probe import PROBE_SSL, PhantomScan, phantom_cohort

N_SCANS = 16
PROBE_N_SCANS = 48


@pytest.fixture(scope="session")
def cohort() -> list[PhantomScan]:
    """16 demo-size phantoms: 4 subtypes x 4, emphysema fraction 0 (none) or 0.05-0.40."""
    return phantom_cohort(N_SCANS)


@pytest.fixture(scope="session")
def probe_cohort(cohort) -> list[PhantomScan]:
    """48 demo-size phantoms (4 subtypes x 12) for the linear-probe acceptance: ``cohort`` plus 32 more
    from the same plan. With 16 scans a probe is fitted on 12 -- fewer scans than embedding
    dimensions -- and its R2 swings with the split and the seed more than any objective moves it."""
    return list(cohort) + phantom_cohort(PROBE_N_SCANS, start=N_SCANS)


@pytest.fixture(scope="session")
def fast_cfg() -> EmbeddingsConfig:
    """A short SSL run (well under a minute on 2 CPU cores) that still learns density/texture."""
    return EmbeddingsConfig(**PROBE_SSL)
