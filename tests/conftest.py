"""Shared test fixtures, and the `slow` marker that `make test-fast` leaves out."""

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
# The real benchmark samples live beside the checkout; a user's clone has none.
SHARED_DATA = pathlib.Path(os.environ.get("ERLRESTORE_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_configure(config):
    # `make test-fast` runs `pytest -m "not slow"`; `make test` and CI run every test.
    config.addinivalue_line(
        "markers",
        "slow: starts processes (command lines, servers, workers), injects faults or applies load; "
        "left out by `make test-fast`",
    )


@pytest.fixture
def tiny_memd_config():
    """Makes configs of the tiny MEMD of the model presets, e.g. ``tiny_memd_config("MEMD-", global_residual=False)``.

    The recipe (:data:`erlrestore.models.presets.TINY_MEMD`) is the one the
    tools' quick runs use; module-level helpers import it from there.
    """
    from erlrestore.models import memd, presets  # pylint: disable=import-outside-toplevel

    def make(variant="MEMD", **overrides):
        return memd.memd_config(variant, **{**presets.TINY_MEMD, **overrides})

    return make


@pytest.fixture
def shared_data():
    """Path to ../shared/data; skips the test when the samples are absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"benchmark samples not found at {SHARED_DATA}")
    return SHARED_DATA
