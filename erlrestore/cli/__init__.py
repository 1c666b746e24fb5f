"""Thin absl entry points: define flags in functions, turn them into plain
arguments, call the library.

Quiet by default: importing this package (which every tool does before
anything imports TensorFlow) imports TensorFlow with the process's stderr
pointed at /dev/null, so its C++ start-up lines (oneDNN, CUDA, cuInit) do
not show, and sets absl's and TensorFlow's Python logging to WARNING, so no
INFO lines (checkpointing's "Sharding callback duration"...) show either.
The tools print their own progress, results, warnings and errors. ``-v`` / ``--verbosity=N`` on the command
line, or ``ERLRESTORE_VERBOSE=1`` in the environment, keeps everything.
"""

import logging as python_logging
import os
import sys

from absl import flags, logging

MAX_IMAGE_PIXELS_FLAG = "max_image_pixels"


def verbose_requested(argv=None):
    """Whether the command line (``-v``, ``--v``, ``--verbosity``) or ``ERLRESTORE_VERBOSE`` asks for every log line."""
    argv = sys.argv if argv is None else argv
    if os.environ.get("ERLRESTORE_VERBOSE", "") not in ("", "0"):
        return True
    return any(arg in ("-v", "--v") or arg.startswith(("-v=", "--v=", "--verbosity")) for arg in argv[1:])


def _import_tensorflow_quietly():
    """Imports TensorFlow and initialises its devices with file descriptor 2 sent to /dev/null.

    TensorFlow's C++ start-up lines are written before its log settings
    apply, so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot silence them.
    """
    # 3: not even TensorFlow's C++ errors (the Grappler remapper's, for one); Python exceptions still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        import tensorflow as tf

        tf.config.list_physical_devices()  # device discovery logs (cuInit) happen here
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet():
    """Quiet defaults for a command-line tool (see the module docstring); a no-op when verbosity is asked for."""
    if verbose_requested():
        return
    _import_tensorflow_quietly()
    logging.set_verbosity(logging.WARNING)  # the tools print their own progress; INFO lines with -v
    python_logging.getLogger("tensorflow").setLevel(python_logging.WARNING)  # "INFO:tensorflow:Assets written"


quiet()


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
    from erlrestore.data import image_files

    if MAX_IMAGE_PIXELS_FLAG not in flags.FLAGS:
        flags.DEFINE_integer(
            MAX_IMAGE_PIXELS_FLAG,
            image_files.DEFAULT_MAX_PIXELS,
            "Refuse image files whose header declares more pixels (width x height) than this, before "
            "decoding them (decompression bombs); 0: no limit.",
            lower_bound=0,
        )


def apply_max_image_pixels():
    """Sets erlrestore.data.image_files's pixel limit from ``--max_image_pixels``."""
    from erlrestore.data import image_files

    image_files.set_max_pixels(flags.FLAGS[MAX_IMAGE_PIXELS_FLAG].value)
