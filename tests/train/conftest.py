"""Synthetic work directories with known latents (subtype, emphysema fraction, wall thickness)."""

from __future__ import annotations

import pytest

from ctpheno.train.features import assemble_cohort
from ctpheno.train.testing import write_synthetic_workdir


@pytest.fixture(scope="package")
def synth60(tmp_path_factory):
    """60 subjects, 12 per subtype; returns the writer's info dict plus the assembled cohort."""
    info = write_synthetic_workdir(tmp_path_factory.mktemp("synth60"), n=60, seed=3)
    info["cohort"] = assemble_cohort(info["workdir"])
    return info
