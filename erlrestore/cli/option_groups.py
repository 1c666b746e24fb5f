"""The options several commands share, each declared here once.

A command calls the group for the options it takes, instead of declaring
them itself, so that a shared option has one spelling, one help text and one
default everywhere; a parameter says what really differs between commands:

* :func:`define_model_flags`: ``--model`` (required) and ``--backend``
  (erlrestore-restore, erlrestore-evaluate; erlrestore-export without
  ``--backend`` and SavedModels);
* :func:`define_tiling_flags`: ``--tile``, ``--overlap`` and, where taken,
  ``--tile_batch`` and ``--align`` (erlrestore-restore, erlrestore-evaluate,
  erlrestore-serve, tools.gallery, tools.serve_memory); the tile side's
  default is each command's own;
* :func:`define_output_flags`: ``--output_dir`` and ``--overwrite`` of the
  commands that write restored images (erlrestore-restore,
  erlrestore-evaluate, tools.classical_baselines);
* :func:`define_compare_flags`: ``--compare`` and ``--compare_max_width``
  (erlrestore-restore, erlrestore-evaluate);
* :func:`define_self_ensemble_flag`: ``--self_ensemble`` (erlrestore-restore,
  erlrestore-evaluate);
* :func:`define_work_size_flag`: ``--work_size`` (erlrestore-restore, and
  erlrestore-serve without ``auto``).

The pairing flags are :mod:`erlrestore.cli.pairing_flags`'s and
``--max_image_pixels`` is :func:`erlrestore.cli.define_max_image_pixels_flag`'s.

A flag defined here belongs to the module that calls the group (absl's
``disclaim_key_flags``), so the command's ``--help`` lists it with its own
flags. Every group takes ``flag_values`` (the global FLAGS by default).
"""

import os

from absl import app, flags

from erlrestore import backends, inference, pictures
from erlrestore.cli import pretrained_model_help

# Flags defined by this module's functions are key flags of their caller, the command.
flags.disclaim_key_flags()

BASELINE_TOO = " Applies to --baseline_model too."

# --output_dir's file names: erlrestore-restore's, and erlrestore-evaluate's (tools.classical_baselines').
NAMED_AS_INPUT = "under the input's file name, in its format"
NAMED_AS_STEM_PNG = "as <input stem>.png"

# --compare writes its strips here, inside --output_dir.
COMPARE_FOLDER = "compare"


def define_model_flags(*, saved_models=True, backend=True, baseline=False, flag_values=flags.FLAGS):
    """``--model`` (required) and ``--backend``.

    ``saved_models``: whether ``--model`` may be a SavedModel (erlrestore-export
    takes Keras models only). ``backend``: whether to define ``--backend``.
    ``baseline``: the command's ``--baseline_model`` is loaded with ``--backend`` too.
    """
    forms = "a .keras file, a training run folder (final.keras inside)"
    if saved_models:
        forms += ", a SavedModel (version or model folder)"
    flags.DEFINE_string("model", None, f"The restoration model: {forms}, or {pretrained_model_help()}.",
                        flag_values=flag_values)
    flags.mark_flag_as_required("model", flag_values=flag_values)
    if backend:
        flags.DEFINE_enum("backend", "tensorflow", list(backends.NAMES),
                          backends.backend_help() + (BASELINE_TOO if baseline else ""), flag_values=flag_values)


def define_tiling_flags(tile, *, overlap=32, tile_batch=False, align=False, zero_untiled=False, lower_bound=None,
                        flag_values=flags.FLAGS):
    """``--tile`` (default ``tile``), ``--overlap`` and, where asked for, ``--tile_batch`` and ``--align``.

    ``tile=None``: each image is restored whole unless ``--tile`` is given.
    ``zero_untiled``: ``--tile=0`` restores every image whole.
    ``lower_bound``: the least value absl accepts for --tile, --overlap and
    --align when parsing (None: the command checks them itself, see
    :func:`check_tiling_flags`).
    """
    common = dict(lower_bound=lower_bound, flag_values=flag_values)
    if tile is None:
        untiled, overlap_help = "; default: each image whole", "With --tile: least"
    else:
        untiled, overlap_help = ("; 0: never tile" if zero_untiled else ""), "Least"
    overlap_help += " overlap of neighbouring tiles in pixels (tile > 2 * overlap)."
    flags.DEFINE_integer("tile", tile, "Largest tile side in pixels: images larger than this in either side are "
                         f"restored in overlapping tiles of at most this side{untiled}.", **common)
    flags.DEFINE_integer("overlap", overlap, overlap_help, **common)
    if tile_batch:
        flags.DEFINE_integer("tile_batch", 1, "Tiles restored per model call.", flag_values=flag_values)
    if align:
        flags.DEFINE_integer("align", 0, "Tiles start at multiples of this; 0: the model's padding multiple (16 "
                             "when unknown, as for SavedModels, which do not record it).", **common)


def check_tiling_flags(tile, overlap):
    """UsageError unless ``--tile`` > 2 ``--overlap`` >= 0 (for commands that do not bound them at parsing)."""
    if overlap < 0:
        raise app.UsageError(f"--overlap must be >= 0, got {overlap}")
    if tile <= 2 * overlap:
        raise app.UsageError(f"--tile ({tile}) must be larger than twice --overlap ({overlap})")


def define_output_flags(names, *, required=False, flag_values=flags.FLAGS):
    """``--output_dir``, where restored images go (named as ``names`` says), and ``--overwrite``.

    ``names``: how the restored files are named, e.g. :data:`NAMED_AS_INPUT`
    or :data:`NAMED_AS_STEM_PNG`. ``required``: --output_dir must be given
    (otherwise nothing is written without it).
    """
    flags.DEFINE_string("output_dir", None, f"Where the restored images are written, {names}; never a folder "
                        "holding the images read.", flag_values=flag_values)
    flags.DEFINE_boolean("overwrite", False, "Replace output files already in --output_dir (the images read are "
                         "never replaced).", flag_values=flag_values)
    if required:
        flags.mark_flag_as_required("output_dir", flag_values=flag_values)


def define_compare_flags(panels, flag_values=flags.FLAGS):
    """``--compare`` (strips of the ``panels``, e.g. ``"input | restored"``) and ``--compare_max_width``."""
    flags.DEFINE_boolean("compare", False, f"Also write a labelled strip per image, {panels}, to "
                         f"<output_dir>/{COMPARE_FOLDER}/<input stem>.png (erlrestore.pictures).",
                         flag_values=flag_values)
    flags.DEFINE_integer("compare_max_width", pictures.DEFAULT_MAX_WIDTH, "With --compare: wider strips are "
                         "scaled down to this many pixels (the labels keep their size); 0: never.", lower_bound=0,
                         flag_values=flag_values)


def compare_dir(output_dir):
    """Where ``--compare`` writes its strips: ``<output_dir>/compare``."""
    return os.path.join(output_dir, COMPARE_FOLDER)


def define_self_ensemble_flag(*, baseline=False, flag_values=flags.FLAGS):
    """``--self_ensemble``; ``baseline``: the command's ``--baseline_model`` is ensembled too."""
    flags.DEFINE_boolean("self_ensemble", False, "Restore with the x8 flip/rotation self-ensemble: the 8 "
                         "flips/rotations of each image are restored (each tiled as --tile says), transformed "
                         "back and averaged (8 times the model calls)." + (BASELINE_TOO if baseline else ""),
                         flag_values=flag_values)


def define_work_size_flag(*, auto=True, flag_values=flags.FLAGS):
    """``--work_size``, the working scale (:mod:`erlrestore.inference`).

    ``auto``: the command's models may carry a card recording their training
    scale, so ``auto`` is offered and is the default; otherwise (SavedModels,
    erlrestore-serve) the default is ``none``.
    """
    if auto:
        default, forms = inference.AUTO, "auto (a shipped model's training scale from its card, else none), "
        hint = ""
    else:
        default, forms = inference.NONE, ""
        hint = " (SavedModels record no training scale: 321 for erlnet-derain / memd-derain exports)"
    flags.DEFINE_string("work_size", default, f"Working scale for large photos: {forms}none (every image at its own "
                        f"scale) or a shorter side in pixels{hint}. An image whose shorter side is more than "
                        f"{inference.WORK_MARGIN}x it is restored at it and the correction brought back to full "
                        "size.", flag_values=flag_values)
