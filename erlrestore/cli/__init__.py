"""Thin absl entry points: define flags in functions, turn them into plain
arguments, call the library."""

import sys

from absl import flags, logging

MAX_IMAGE_PIXELS_FLAG = "max_image_pixels"


def fail(error):
    """Reports a bad-input error the same way in every tool; returns exit status 1."""
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    return 1


def define_max_image_pixels_flag():
    """Defines ``--max_image_pixels`` (once per process) for tools that read image files."""
    from erlrestore.data import io

    if MAX_IMAGE_PIXELS_FLAG not in flags.FLAGS:
        flags.DEFINE_integer(
            MAX_IMAGE_PIXELS_FLAG,
            io.DEFAULT_MAX_PIXELS,
            "Refuse image files whose header declares more pixels (width x height) than this, before "
            "decoding them (decompression bombs); 0: no limit.",
            lower_bound=0,
        )


def apply_max_image_pixels():
    """Sets erlrestore.data.io's pixel limit from ``--max_image_pixels``."""
    from erlrestore.data import io

    io.set_max_pixels(flags.FLAGS[MAX_IMAGE_PIXELS_FLAG].value)
