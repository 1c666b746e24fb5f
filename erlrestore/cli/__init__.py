"""Thin absl entry points: define flags in functions, turn them into plain
arguments, call the library."""

import sys

from absl import logging


def fail(error):
    """Reports a bad-input error the same way in every tool; returns exit status 1."""
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    return 1
