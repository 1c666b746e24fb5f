"""The options several commands share are declared once, in erlrestore.cli.option_groups.

Each command's shared options must be defined by a group function (not by a
DEFINE of the command's own), listed in the command's --help, with the
defaults below, and with the help text the group writes for the parameters
the command passes (GROUP_CALLS: where the commands really differ).
"""

import ast
import importlib.util
import json
import pathlib
import subprocess
import sys

import pytest
from absl import flags

from erlrestore.cli import option_groups

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The options the groups declare.
SHARED = ("model", "backend", "tile", "overlap", "tile_batch", "align", "output_dir", "overwrite", "self_ensemble",
          "work_size", "compare", "compare_max_width")

# Every command that takes shared options: which ones, with their defaults.
DEFAULTS = {
    "erlrestore.cli.restore": dict(model=None, backend="tensorflow", tile=512, overlap=32, tile_batch=1, align=0,
                                   output_dir=None, overwrite=False, self_ensemble=False, work_size="auto",
                                   compare=False, compare_max_width=2400),
    "erlrestore.cli.evaluate": dict(model=None, backend="tensorflow", tile=None, overlap=32, output_dir=None,
                                    overwrite=False, self_ensemble=False, compare=False, compare_max_width=2400),
    "erlrestore.cli.serve": dict(tile=512, overlap=32, align=0, work_size="none"),
    "erlrestore.cli.export": dict(model=None),
    "tools.gallery": dict(tile=512, overlap=32),
    "tools.classical_baselines": dict(output_dir=None, overwrite=False),
    "tools.bench_deploy": dict(tile=512, overlap=32, tile_batch=1),
    "erlrestore.client": dict(output_dir=None, overwrite=False),
}

# Options of a shared name that mean something else in a command, so are its own.
OWN_MEANING = {
    "tools.gallery": {"output_dir"},  # where its strips and README.md go (default docs/gallery)
}

# The group calls of each command, with the parameters where it differs from the others (--compare's panels
# are each command's own text, so --compare is checked for its origin and defaults only).
GROUP_CALLS = {
    "erlrestore.cli.restore": [
        (option_groups.define_model_flags, {}),
        (option_groups.define_output_flags, dict(names=option_groups.NAMED_AS_INPUT, required=True)),
        (option_groups.define_tiling_flags, dict(tile=512, tile_batch=True, align=True)),
        (option_groups.define_self_ensemble_flag, {}),
        (option_groups.define_work_size_flag, {}),
    ],
    "erlrestore.cli.evaluate": [
        (option_groups.define_model_flags, dict(baseline=True)),
        (option_groups.define_output_flags, dict(names=option_groups.NAMED_AS_STEM_PNG)),
        (option_groups.define_tiling_flags, dict(tile=None)),
        (option_groups.define_self_ensemble_flag, dict(baseline=True)),
    ],
    "erlrestore.cli.serve": [
        (option_groups.define_tiling_flags, dict(tile=512, align=True, zero_untiled=True, lower_bound=0)),
        (option_groups.define_work_size_flag, dict(auto=False)),
    ],
    "erlrestore.cli.export": [(option_groups.define_model_flags, dict(saved_models=False, backend=False))],
    "tools.gallery": [(option_groups.define_tiling_flags, dict(tile=512))],
    "tools.classical_baselines": [
        (option_groups.define_output_flags, dict(names=f"{option_groups.NAMED_AS_STEM_PNG} (8-bit)")),
    ],
    "tools.bench_deploy": [(option_groups.define_tiling_flags, dict(tile=512, tile_batch=True, lower_bound=0))],
    "erlrestore.client": [(option_groups.define_output_flags, dict(names=option_groups.NAMED_AS_STEM_PNG,
                                                                   required=True))],
}

# Run in a process of its own (the commands define their flags on the process-wide FLAGS): defines each
# command's flags, notes which source file called absl's DEFINE for each, prints them as JSON.
HARNESS = r"""
import importlib, json, sys
from absl import flags
from absl.flags import _defines

definers = {}
define_flag = _defines.DEFINE_flag

def noting_definer(flag, *args, **kwargs):
    frame = sys._getframe(1)
    while frame.f_globals.get("__name__", "").startswith("absl."):
        frame = frame.f_back
    definers[flag.name] = frame.f_code.co_filename
    return define_flag(flag, *args, **kwargs)

_defines.DEFINE_flag = noting_definer
flags.disclaim_key_flags()  # absl names the command, not this script, as the flags' module

def describe(flag_values, name):
    flag = flag_values[name]
    return dict(help=flag.help, default=flag.default, lower_bound=getattr(flag.parser, "lower_bound", None),
                required=any(v.message == f"Flag --{name} must have a value other than None."
                             for v in flag.validators))

FLAGS = flags.FLAGS
commands = {}
for module_name in sys.argv[1:]:
    module = importlib.import_module(module_name)
    before = set(FLAGS)
    module.define_flags()
    defined = sorted(set(FLAGS) - before)
    commands[module_name] = {
        name: dict(describe(FLAGS, name), definer=definers.get(name), module=FLAGS.find_module_defining_flag(name))
        for name in defined}
    for name in defined:  # the next command defines its own
        delattr(FLAGS, name)
print(json.dumps(commands))
"""


def _describe(flag_values, name):
    flag = flag_values[name]
    return dict(help=flag.help, default=flag.default, lower_bound=getattr(flag.parser, "lower_bound", None),
                required=any(v.message == f"Flag --{name} must have a value other than None."
                             for v in flag.validators))


def _expected(command):
    """The shared flags the command's GROUP_CALLS give, on a FlagValues of their own."""
    flag_values = flags.FlagValues()
    for define, parameters in GROUP_CALLS[command]:
        define(**parameters, flag_values=flag_values)
    return {name: _describe(flag_values, name) for name in flag_values}


def _source(module_name):
    return pathlib.Path(importlib.util.find_spec(module_name).origin)


def test_no_command_declares_a_shared_option_itself():
    for command in DEFAULTS:
        tree = ast.parse(_source(command).read_text(encoding="utf-8"))
        own = [node.args[0].value for node in ast.walk(tree)
               if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
               and node.func.attr.startswith("DEFINE") and node.args
               and isinstance(node.args[0], ast.Constant) and node.args[0].value in SHARED
               and node.args[0].value not in OWN_MEANING.get(command, ())]
        assert not own, f"{command} defines --{', --'.join(own)} itself; use erlrestore.cli.option_groups"


def test_group_flags_belong_to_the_calling_command():
    flag_values = flags.FlagValues()
    option_groups.define_tiling_flags(512, align=True, flag_values=flag_values)
    option_groups.define_model_flags(flag_values=flag_values)
    for name in ("tile", "overlap", "align", "model", "backend"):
        assert flag_values.find_module_defining_flag(name) == __name__  # so the caller's --help lists it
    assert "tile_batch" not in flag_values
    with pytest.raises(flags.IllegalFlagValueError):  # --model is required
        flag_values(["prog"])


def test_parameters_say_where_commands_differ():
    helps = {}
    for key, tile, extra in (("whole", None, {}), ("tiled", 512, {}), ("server", 512, dict(zero_untiled=True))):
        flag_values = flags.FlagValues()
        option_groups.define_tiling_flags(tile, flag_values=flag_values, **extra)
        helps[key] = flag_values["tile"].help, flag_values["overlap"].help
        assert flag_values["tile"].default == tile
    assert helps["whole"][0].endswith("; default: each image whole.")
    assert helps["whole"][1].startswith("With --tile: least overlap")
    assert helps["server"][0].endswith("; 0: never tile.") and helps["tiled"][0].endswith("this side.")
    assert helps["tiled"][1] == helps["server"][1]
    for auto, default in ((True, "auto"), (False, "none")):
        flag_values = flags.FlagValues()
        option_groups.define_work_size_flag(auto=auto, flag_values=flag_values)
        assert flag_values["work_size"].default == default
        assert ("auto (" in flag_values["work_size"].help) == auto


def test_serve_takes_its_shared_options_from_the_groups():
    from erlrestore.cli import serve  # pylint: disable=import-outside-toplevel

    flag_values = flags.FlagValues()
    serve.define_flags(flag_values)
    expected = _expected("erlrestore.cli.serve")
    for name, default in DEFAULTS["erlrestore.cli.serve"].items():
        assert flag_values.find_module_defining_flag(name) == serve.__name__
        assert _describe(flag_values, name) == expected[name]
        assert flag_values[name].default == default


@pytest.mark.slow  # one process defining every command's flags
def test_every_command_declares_shared_options_through_the_groups():
    result = subprocess.run([sys.executable, "-c", HARNESS, *DEFAULTS], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    commands = json.loads(result.stdout.strip().splitlines()[-1])
    group_file = _source("erlrestore.cli.option_groups").resolve()
    for command, defaults in DEFAULTS.items():
        defined = commands[command]
        assert {name for name in defined if name in SHARED} - OWN_MEANING.get(command, set()) == set(defaults), command
        expected = _expected(command)
        for name, default in defaults.items():
            flag = defined[name]
            assert pathlib.Path(flag["definer"]).resolve() == group_file, (command, name, flag["definer"])
            assert flag["module"] == command, (command, name)  # listed in the command's --help
            assert flag["default"] == default, (command, name)
            if name in expected:
                assert {key: flag[key] for key in expected[name]} == expected[name], (command, name)
    # The options whose help no parameter changes read the same in every command.
    for name in ("overwrite", "tile_batch", "align", "compare_max_width"):
        assert len({commands[c][name]["help"] for c in DEFAULTS if name in commands[c]}) == 1, name
