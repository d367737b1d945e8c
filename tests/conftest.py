"""Shared fixtures: the real test data in ../shared/data and small work dirs."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the repository; fails (never skips) when absent."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real test data not found at {SHARED_DATA}: the tests expect the shared/ folder "
                    f"beside the repository (see shared/data/README.md)")
    return SHARED_DATA


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    d = tmp_path / "work"
    d.mkdir()
    return d


@pytest.fixture(scope="session")
def lidc_0314(shared_data: Path):
    """The real thin-slice scan LIDC-IDRI-0314 as a ``Volume``, decoded once per test session.

    Decoding its 275 JPEG 2000 slices costs tens of seconds; every test that needs the scan shares this
    one read-only copy (do not modify its array: derive a new ``Volume``)."""
    from ctpheno.io.readers import read_scan

    image = read_scan(shared_data / "lidc_idri_0314" / "dicom")
    image.array.setflags(write=False)
    return image


def pytest_collection_modifyitems(config, items):
    """``slow`` modules (a module-scoped pipeline run each) first, keeping the order otherwise: with
    ``pytest -n 2 --dist loadfile`` (``make test``) each worker starts on a long run and the short
    tests fill in around them, instead of one long run finishing alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
