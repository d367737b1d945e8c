"""A small synthetic cohort written once per test session (DICOM, seed 7; one of its five studies holds a
smooth and a sharp reconstruction, as the demo's ``synth.two_reconstructions: 0.2`` draws)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ctpheno.synth import write_cohort

N_SUBJECTS = 5
SEED = 7


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    return write_cohort(out, n=N_SUBJECTS, seed=SEED, size="demo", fmt="dicom", two_reconstructions=0.2)


@pytest.fixture(scope="session")
def truth(cohort: Path) -> pd.DataFrame:
    return pd.read_parquet(cohort / "truth.parquet")
