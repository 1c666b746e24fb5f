"""How every ``erlrestore-*`` command starts and reports errors (no TensorFlow here).

:func:`run` replaces ``absl.app.run`` for the tools. What it changes:

* ``-h`` is read as ``--help``, and the help exits with status 0 (absl
  refuses ``-h`` and exits with 1 after ``--help``).
* A bad flag value (absl's ``flags.Error``: out of range, not a number, not
  one of the choices, unknown flag, missing required flag) and an
  ``app.UsageError`` raised by the tool's ``main`` print one line,
  ``error: <message>``, and exit with status 2, instead of the tool's whole
  usage text (dozens of lines) with the message at the end.

:func:`report_error` prints a data or model error once, as ``error:
<message>``. The library raises its errors in Python's terms (``layout=``,
``overwrite=True``, ``input_dir``) because it is also used from Python; the
tools show them in the terms of their command line (``--layout=``,
``--overwrite``, ``--input_dir``): :func:`flag_spelling` translates the
keywords of :data:`KEYWORD_FLAGS`, for the flags the running tool defines.

This module imports no TensorFlow, so that ``erlrestore-client`` (REST) can
use it; ``erlrestore.cli`` builds its tools on it.
"""

import re
import sys

from absl import app, flags

# Library keyword -> the flag that sets it on the command line (the names
# coincide today; a flag named otherwise than its keyword would say so here).
# A keyword is translated only in a tool that defines its flag
# (erlrestore-train, for one, reads --train_input_dir, not --input_dir, so an
# "input_dir" there stays).
KEYWORD_FLAGS = {
    "pairs_csv": "pairs",
    "layout": "layout",
    "pair_order": "pair_order",
    "input_dir": "input_dir",
    "target_dir": "target_dir",
    "output_dir": "output_dir",
    "overwrite": "overwrite",
    "pad_small": "pad_small",
    "crop_size": "crop_size",
    "crop_border": "crop_border",
    "batch_size": "batch_size",
    "num_shards": "num_shards",
    "checkpoint_every": "checkpoint_every",
    "stop_after": "stop_after",
    "stage_steps": "stage_steps",
    "stage_epochs": "stage_epochs",
}

_QUOTED = r"'[^']*'|\"[^\"]*\""
# A keyword, not inside a word, a path or a flag, optionally with its Python value:
# True / False, or quoted strings joined by " or " (pair_order='input_left' or 'target_left').
_KEYWORD = re.compile(
    r"(?<![\w/.\-])(" + "|".join(sorted(map(re.escape, KEYWORD_FLAGS), key=len, reverse=True)) + r")"
    rf"(=(?:True\b|False\b|(?:{_QUOTED})(?: or (?:{_QUOTED}))*)?)?(?![\w/\-])"
)
_SAID_TWICE = re.compile(r"(--[\w=.\-]+) \(\1\)")  # "--overwrite (--overwrite)", once translated
_REQUIRED = re.compile(r"flag --(\w+)=None: Flag --\1 must have a value other than None\.")


def _spelled(match, flag_values):
    keyword, value = match.group(1), match.group(2)
    flag = KEYWORD_FLAGS[keyword]
    # A bare keyword without "_" ("layout") is too likely an ordinary word: only "layout=" is translated.
    if flag not in flag_values or (value is None and "_" not in keyword):
        return match.group(0)
    if value in (None, "=True"):
        return f"--{flag}"
    if value == "=False":
        return f"--no{flag}"
    if value == "=":  # "pass layout= (one of ...)"
        return f"--{flag}="
    choices = re.findall(_QUOTED, value)
    return f"--{flag}=" + " or ".join(choice[1:-1] for choice in choices)


def flag_spelling(message, flag_values=None):
    """``message`` with the library's keywords spelled as the running tool's flags (``flag_values``: absl's).

    ``layout='one_folder'`` -> ``--layout=one_folder``, ``overwrite=True`` ->
    ``--overwrite``, ``pad_small=False`` -> ``--nopad_small``, ``pass
    input_dir and target_dir`` -> ``pass --input_dir and --target_dir``;
    ``--overwrite (overwrite=True)`` says it once. Only keywords of
    :data:`KEYWORD_FLAGS` whose flag the tool defines are touched, and never
    inside a path (``/data/input_dir/``) or an existing flag.
    """
    flag_values = flags.FLAGS if flag_values is None else flag_values
    return _SAID_TWICE.sub(r"\1", _KEYWORD.sub(lambda match: _spelled(match, flag_values), str(message)))


def report_error(error):
    """Prints ``error: <message>`` to stderr, once, in flag spellings (:func:`flag_spelling`)."""
    print(f"error: {flag_spelling(error)}", file=sys.stderr, flush=True)


def _flag_error_message(error):
    """absl's flag-parsing error as one line: ``--tile=abc: ...``, ``--model is required``."""
    lines = []
    for line in str(error).splitlines():
        line = line.strip()
        required = _REQUIRED.fullmatch(line)
        if required:
            line = f"--{required.group(1)} is required"
        else:
            line = re.sub(r"^flag (--)", r"\1", line).removeprefix("ERROR:: ")
        if line:
            lines.append(line)
    return "; ".join(lines)


def _takes_a_value(arg, flag_values):
    """Whether ``arg`` is a ``--flag`` of a non-boolean flag waiting for its value as the next argument."""
    if not arg.startswith("-") or "=" in arg or arg in ("-", "--"):
        return False
    name = arg.lstrip("-")
    return name in flag_values and not flag_values[name].boolean


def short_help(argv, flag_values=None):
    """``argv`` with ``-h`` spelled ``--help`` (not after ``--``, nor as the value of ``--flag -h``)."""
    flag_values = flags.FLAGS if flag_values is None else flag_values
    argv = list(argv)
    for i in range(1, len(argv)):
        if argv[i] == "--":
            break
        if argv[i] == "-h" and not _takes_a_value(argv[i - 1], flag_values):
            argv[i] = "--help"
    return argv


def _parse_flags(argv):
    try:
        return flags.FLAGS(argv)
    except flags.Error as error:
        print(f"error: {_flag_error_message(error)}", file=sys.stderr, flush=True)
        sys.exit(2)
    except SystemExit as stop:
        # Only the help flags (--help, --helpshort, --helpfull, --helpxml) exit while flags are parsed,
        # with status 1 after printing the help, which was asked for: success.
        if stop.code == 1:
            sys.exit(0)
        raise


def _one_line_usage_errors(main):
    def main_of_a_tool(argv):
        try:
            return main(argv)
        except app.UsageError as error:
            report_error(error)
            return 2

    return main_of_a_tool


def run(main, argv=None):
    """``absl.app.run(main)`` for an ``erlrestore-*`` tool, with the changes of the module docstring.

    ``argv`` defaults to ``sys.argv``.
    """
    argv = short_help(sys.argv if argv is None else argv)
    app.run(_one_line_usage_errors(main), argv=argv, flags_parser=_parse_flags)
