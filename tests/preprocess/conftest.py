"""Fixtures of the preprocess tests (the phantom itself lives in ``preprocess_phantom.py``)."""

from __future__ import annotations

import pytest
from preprocess_phantom import SmallPhantom, make_small_phantom


@pytest.fixture(scope="session")
def small_phantom() -> SmallPhantom:
    return make_small_phantom()
