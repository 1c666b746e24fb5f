"""Training material for the shipped de-raining models: a photo split and a held-out rainy validation set.

    python -m tools.derain_training_data --data_root=../shared/data --output_dir=runs/derain-data

From ``<data_root>/derain-train`` (clean BSDS500 photos with every benchmark
background removed, and Garg & Nayar's rendered streak layers) it writes:

* ``streaks/``: a link to the streak layers, which the recipes read;
* ``clean_train/``: every photo but the last ``--holdout`` (sorted by name),
  degraded on the fly during training (``--synthetic_clean_dir``);
* ``val/``: the held-out photos with real-streak rain composited once, with a
  fixed seed (``input/`` + ``target/``), for validation while training and
  for picking the checkpoint that generalises (``best.keras``). The benchmark
  samples (rain12, rain100l-10) are never used for either.

The validation rain is ``--degradation`` with ``--degradation_params``, the
same flags and syntax as ``erlrestore-train`` (the recipes in
``flags/pretrained/`` give the same values to both, so validation pairs look
like the training pairs). The default is ``real_rain`` with 1-10 streak
layers at scale 1-2 and a procedural layer on half of the images: light to
heavy streaks from one source. No rain veil by default: a first run with the
veil on 35% of the images learnt to darken smooth regions of real rainy
photos (see docs/PRETRAINED.md). Running it again with the same flags changes
nothing; a different rain needs a new ``--output_dir``.

For the second, light-to-heavy stage of the shipped de-raining models
(``flags/pretrained/*_derain_finetune.flags``, issue 21) it also splits the
held-out photos in two halves, ``clean_select/`` and ``clean_score/``, and
writes, each with its own fixed seed (:data:`HELDOUT_SETS`):

* ``val-mixed/``: the training mixture (``real_dense_rain``, density
  ``mixed``, a veil on 35% of the images) on ``clean_select/``: validation
  while training and the choice of ``best.keras``;
* ``heldout-light/``, ``heldout-heavy/`` (8-10 streak layers at x2-4) and
  ``heldout-rain-haze/`` (the heavy rain model of Li et al., medium density)
  on ``clean_score/``: the model cards' scores, on photos and rain never
  used to train or to pick a checkpoint.
"""

import os
import shutil
import sys

from absl import app, flags

import erlrestore.cli  # noqa: F401  (quiet by default; imported before anything imports TensorFlow)
from erlrestore.data import root, synthetic

FLAGS = flags.FLAGS

DEFAULT_DEGRADATION = "real_rain"
DEFAULT_PARAMS = "streak_layers=1,10;scale=1,2;mix_procedural=0.5"

# (folder, half of the held-out photos, degradation, parameters, seed) of the light-to-heavy sets.
HELDOUT_SETS = (
    ("val-mixed", "clean_select", "real_dense_rain", "density_level=mixed;veil_share=0.35", 7),
    ("heldout-light", "clean_score", "real_dense_rain", "density_level=light", 23),
    ("heldout-heavy", "clean_score", "real_dense_rain", "density_level=heavy;streak_layers=8,10;scale=2,4", 21),
    ("heldout-rain-haze", "clean_score", "rain_haze", "density_level=medium", 22),
)


def define_flags():
    flags.DEFINE_string("data_root", root.data_root() or None,
                        "Folder holding derain-train/ (default: $ERLRESTORE_DATA_ROOT).")
    flags.DEFINE_string("output_dir", "runs/derain-data", "Where clean_train/ and val/ go.")
    flags.DEFINE_integer("holdout", 24, "Photos kept out of training for validation.", lower_bound=1)
    flags.DEFINE_integer("seed", 7, "Seed of the validation rain.", lower_bound=0)
    flags.DEFINE_enum("degradation", DEFAULT_DEGRADATION, ["real_rain", "real_heavy_rain"],
                      "Rain of the validation pairs (as erlrestore-train's --degradation).")
    flags.DEFINE_string("degradation_params", DEFAULT_PARAMS,
                        "Its parameters, as erlrestore-train's --degradation_params (name=value;name=low,high).")


def make(data_root, output_dir, holdout, seed, degradation=DEFAULT_DEGRADATION, degradation_params=DEFAULT_PARAMS):
    clean = os.path.join(data_root, "derain-train", "clean")
    streaks = os.path.join(data_root, "derain-train", "streaks")
    photos = sorted(name for name in os.listdir(clean) if name.lower().endswith((".jpg", ".jpeg", ".png")))
    if len(photos) <= holdout:
        raise ValueError(f"{clean} has {len(photos)} photos; cannot hold out {holdout}")
    held_out = photos[-holdout:]
    half = (holdout + 1) // 2
    parts = (("clean_train", photos[:-holdout]), ("clean_val", held_out), ("clean_select", held_out[:half]),
             ("clean_score", held_out[half:]))
    for part, names in parts:
        folder = os.path.join(output_dir, part)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            if not os.path.exists(os.path.join(folder, name)):
                shutil.copyfile(os.path.join(clean, name), os.path.join(folder, name))
    # The recipes name the streak layers through the output folder (runs/derain-data/streaks), not through
    # wherever the data root happens to be on this machine.
    link = os.path.join(output_dir, "streaks")
    if not os.path.lexists(link):
        os.symlink(os.path.abspath(streaks), link)
    val = os.path.join(output_dir, "val")
    if not os.path.isdir(os.path.join(val, "input")):
        params = dict(synthetic.parse_params(degradation_params), streaks=streaks)
        synthetic.synthesize_folder(val, degradation, clean_dir=os.path.join(output_dir, "clean_val"),
                                    seed=seed, params=params)
    for folder, clean_part, name, text, set_seed in HELDOUT_SETS:
        target = os.path.join(output_dir, folder)
        if not os.path.isdir(os.path.join(target, "input")):
            params = synthetic.parse_params(text)
            if "streaks" in synthetic.required_params(name):
                params["streaks"] = streaks
            synthetic.synthesize_folder(target, name, clean_dir=os.path.join(output_dir, clean_part),
                                        seed=set_seed, params=params)
    return os.path.join(output_dir, "clean_train"), val


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    train, val = make(FLAGS.data_root, FLAGS.output_dir, FLAGS.holdout, FLAGS.seed, FLAGS.degradation,
                      FLAGS.degradation_params)
    print(f"training photos: {train}\nvalidation pairs: {val}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
