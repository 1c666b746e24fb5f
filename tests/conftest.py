"""Shared test fixtures."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
# The real benchmark samples live beside the checkout; a user's clone has none.
SHARED_DATA = pathlib.Path(os.environ.get("ERLRESTORE_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def shared_data():
    """Path to ../shared/data; skips the test when the samples are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark samples not found at {SHARED_DATA}")
    return SHARED_DATA
