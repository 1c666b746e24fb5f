"""The pairing flags of the tools that read image pairs, declared once.

``erlrestore-metrics``, ``erlrestore-evaluate`` and ``erlrestore-tfrecords``
call :func:`define_flags` for ``--input_dir``, ``--target_dir``,
``--layout``, ``--pair_order`` and ``--pairs``, and :func:`pairs_from_flags`
for the pairs they name. Training declares the same settings through
``erlrestore.training.inputs.DataSettings``. What the flags mean is
``erlrestore.data.pairing``'s.

The flags belong to the calling tool's module (``module_name``), so its
``--help`` lists them with its own flags.
"""

from absl import app, flags

from erlrestore.data import pairing

INPUT_HELP = "Degraded images (or one folder holding both sets)."
TARGET_HELP = "Clean images; omit when --input_dir holds both sets."
PAIRS_HELP = ("A CSV file of input,target lines (paths relative to its folder, or absolute; optional header, "
              "# comments) pairing images named in any way; instead of --input_dir.")


def define_flags(module_name, *, input_help=INPUT_HELP, target_help=TARGET_HELP, flag_values=flags.FLAGS):
    """Defines the pairing flags for the tool ``module_name``; exactly one of --input_dir / --pairs is required."""
    common = dict(flag_values=flag_values, module_name=module_name)
    flags.DEFINE_string("input_dir", None, input_help, **common)
    flags.DEFINE_string("target_dir", None, target_help, **common)
    flags.DEFINE_enum("layout", "auto", pairing.LAYOUTS, "How files are paired; 'auto' detects it.", **common)
    flags.DEFINE_enum("pair_order", "", ("",) + pairing.PAIR_ORDERS, "Half order for side_by_side images.", **common)
    flags.DEFINE_string("pairs", None, PAIRS_HELP, **common)
    flags.register_multi_flags_validator(
        ["input_dir", "pairs"], lambda values: (values["input_dir"] is None) != (values["pairs"] is None),
        message="give either --input_dir (a folder of images) or --pairs (a CSV file of input,target lines)",
        flag_values=flag_values)


def pairs_from_flags(flag_values=flags.FLAGS):
    """The pairs the parsed flags name (``pairing.find_pairs``).

    Raises app.UsageError when --pairs comes with --target_dir, --layout or
    --pair_order (the CSV file pairs the images itself), and
    ``image_files.DataError`` for files that do not pair.
    """
    if flag_values.pairs:
        extra = [f"--{name}" for name in ("target_dir", "layout", "pair_order")
                 if flag_values[name].value != flag_values[name].default]
        if extra:
            raise app.UsageError(f"--pairs={flag_values.pairs} lists the pairs itself; drop {', '.join(extra)}")
        return pairing.find_pairs(pairs_csv=flag_values.pairs)
    return pairing.find_pairs(flag_values.input_dir, flag_values.target_dir,
                              layout=flag_values.layout, pair_order=flag_values.pair_order)
