"""Thin absl entry points: define flags in functions, turn them into plain
arguments, call the library."""

import sys

from absl import flags, logging

MAX_IMAGE_PIXELS_FLAG = "max_image_pixels"


def show_flags_in_help(module_name):
    """Makes ``--help`` list the flags ``module_name`` defines (and the shared ones of this package).

    absl's ``--help`` lists the key flags of the main module, named by
    ``sys.argv[0]``; a console script's main module is its generated
    wrapper, which defines none. Call after the flags are defined.
    """
    main = sys.argv[0]
    for module in (module_name, __name__):
        for flag in flags.FLAGS.get_flags_for_module(module):
            flags.FLAGS.register_key_flag_for_module(main, flag)


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
