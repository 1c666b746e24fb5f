"""Thin absl entry points: define flags in functions, turn them into plain
arguments, call the library.

Every tool gets its ``run`` (the console script's target) from
:func:`entry_point`, which defines the tool's flags and starts it with
:func:`run_tool` (``-h``, one-line usage errors with status 2;
:mod:`erlrestore.entry`); it reports a data or model error with
:func:`fail` (one ``error:`` line in flag spellings, status 1) and its
result with :func:`finish` (a line on stdout, status 0).

Quiet by default: importing this package (which every tool does before
anything imports TensorFlow) arranges that TensorFlow, when something first
imports it, is imported with the process's stderr pointed at /dev/null, so
its C++ start-up lines (oneDNN, CUDA, cuInit) do not show (tools that never
need TensorFlow, such as ``erlrestore-restore --backend=onnxruntime``, never
import it), and sets absl's and TensorFlow's Python logging to WARNING, so no
INFO lines (checkpointing's "Sharding callback duration"...) show either.
The tools print their own progress, results, warnings and errors. ``-v`` / ``--verbosity=N`` on the command
line, or ``ERLRESTORE_VERBOSE=1`` in the environment, keeps everything.
"""

import importlib.abc
import importlib.util
import logging as python_logging
import os
import sys

from absl import flags, logging

from erlrestore import entry, pretrained

MAX_IMAGE_PIXELS_FLAG = "max_image_pixels"


def verbose_requested(argv=None):
    """Whether the command line (``-v``, ``--v``, ``--verbosity``) or ``ERLRESTORE_VERBOSE`` asks for every log line."""
    argv = sys.argv if argv is None else argv
    if os.environ.get("ERLRESTORE_VERBOSE", "") not in ("", "0"):
        return True
    return any(arg in ("-v", "--v") or arg.startswith(("-v=", "--v=", "--verbosity")) for arg in argv[1:])




class _QuietTensorFlowLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, then its device discovery (cuInit logs there), with fd 2 at /dev/null."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        from erlrestore import runtimes  # the one stderr-muting block; imported late to keep start-up light

        module.__loader__ = module.__spec__.loader = self._loader  # the module keeps its own loader
        with runtimes.native_stderr_muted():
            self._loader.exec_module(module)
            module.config.list_physical_devices()


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    """Gives the first ``import tensorflow`` (by anything) to :class:`_QuietTensorFlowLoader`, then steps aside."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the real one, this finder being gone
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietTensorFlowLoader(spec.loader)
        return spec


def _import_tensorflow_quietly():
    """Makes TensorFlow's import, whenever something first imports it, happen with fd 2 sent to /dev/null.

    TensorFlow's C++ start-up lines are written before its log settings
    apply, so ``TF_CPP_MIN_LOG_LEVEL`` alone cannot silence them. The import
    is not done here but deferred to the first ``import tensorflow`` (a
    finder on ``sys.meta_path``), so a tool that never needs TensorFlow
    (``erlrestore-restore`` with an ONNX, OpenVINO or LiteRT model) never
    loads it, and one that does is as quiet as before.
    """
    # 3: not even TensorFlow's C++ errors (the Grappler remapper's, for one); Python exceptions still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietTensorFlowFinder())


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


def run_tool(main, module_name, argv=None):
    """The start of every tool: ``--help`` lists ``module_name``'s flags, then :func:`erlrestore.entry.run`.

    ``-h`` is ``--help`` (status 0), and a bad flag value or usage error is
    one ``error:`` line with status 2 (no usage dump).
    """
    show_flags_in_help(module_name)
    entry.run(main, argv)


def entry_point(define_flags, main, module_name, rewrite_argv=None):
    """A tool's ``run()``: calls ``define_flags()``, then :func:`run_tool` with ``main``.

    A command module ends with ``run = entry_point(define_flags, main,
    __name__)`` and calls ``run()`` under ``if __name__ == "__main__":``;
    setup.py's console scripts name that ``run`` (``erlrestore.cli.train:run``).
    ``rewrite_argv``, where given, takes ``sys.argv`` as it is when ``run()``
    is called and returns the arguments absl parses instead.
    """

    def run():
        define_flags()
        run_tool(main, module_name, argv=None if rewrite_argv is None else rewrite_argv(sys.argv))

    run.__module__, run.__qualname__ = module_name, "run"  # introspection names the tool's module
    run.__doc__ = "Defines this tool's flags and runs its main (made by erlrestore.cli.entry_point)."
    return run


def flag_settings(names, flag_values=flags.FLAGS):
    """``{name: value}`` of the parsed flags ``names``: the library keywords a tool passes on as its flags set them."""
    return {name: getattr(flag_values, name) for name in names}


def fail(error):
    """Reports a bad-input error the same way in every tool, once, in flag spellings; returns exit status 1."""
    entry.report_error(error)
    return 1


def finish(result):
    """Prints a tool's result line (``result``) on stdout and returns exit status 0: :func:`fail`'s counterpart."""
    print(result)
    return 0


def pretrained_model_help():
    """``pretrained:<name>`` and the shipped models with their task, ``erlnet-derain (derain)``, for ``--model``.

    One model a line, so that absl's wrapping of the help never splits a name at its hyphens.
    """
    if not pretrained.list():
        return "pretrained:<name> (none is shipped in this version)"
    shipped = pretrained.catalogue().replace(", ", ",\n")
    return f"pretrained:<name> (shipped in the package) with <name> one of:\n{shipped}"


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
