"""Training material for the shipped de-raining models: a photo split and a held-out rainy validation set.

    python tools/derain_training_data.py --data_root=../shared/data --output_dir=runs/derain-data

From ``<data_root>/derain-train`` (clean BSDS500 photos with every benchmark
background removed, and Garg & Nayar's rendered streak layers) it writes:

* ``clean_train/``: every photo but the last ``--holdout`` (sorted by name),
  degraded on the fly during training (``--synthetic_clean_dir``);
* ``val/``: the held-out photos with real-streak rain composited once, with a
  fixed seed (``input/`` + ``target/``), for validation while training and
  for picking the checkpoint that generalises (``best.keras``). The benchmark
  samples (rain12, rain100l-10) are never used for either.

The rain of both is ``real_heavy_rain`` with 1-12 streak layers, the veil on
``--veil_share`` of the images and a procedural layer on ``--mix_procedural``
of them: light to heavy rain from one source. Running it again with the same
flags changes nothing.
"""

import os
import shutil
import sys

from absl import app, flags

from erlrestore.data import synthetic

FLAGS = flags.FLAGS

PARAMS = {"streak_layers": (1, 12), "veil_share": 0.35, "mix_procedural": 0.3}


def define_flags():
    flags.DEFINE_string("data_root", "../shared/data", "Folder holding derain-train/.")
    flags.DEFINE_string("output_dir", "runs/derain-data", "Where clean_train/ and val/ go.")
    flags.DEFINE_integer("holdout", 24, "Photos kept out of training for validation.", lower_bound=1)
    flags.DEFINE_integer("seed", 7, "Seed of the validation rain.", lower_bound=0)


def make(data_root, output_dir, holdout, seed):
    clean = os.path.join(data_root, "derain-train", "clean")
    streaks = os.path.join(data_root, "derain-train", "streaks")
    photos = sorted(name for name in os.listdir(clean) if name.lower().endswith((".jpg", ".jpeg", ".png")))
    if len(photos) <= holdout:
        raise ValueError(f"{clean} has {len(photos)} photos; cannot hold out {holdout}")
    for part, names in (("clean_train", photos[:-holdout]), ("clean_val", photos[-holdout:])):
        folder = os.path.join(output_dir, part)
        os.makedirs(folder, exist_ok=True)
        for name in names:
            if not os.path.exists(os.path.join(folder, name)):
                shutil.copyfile(os.path.join(clean, name), os.path.join(folder, name))
    val = os.path.join(output_dir, "val")
    if not os.path.isdir(os.path.join(val, "input")):
        synthetic.synthesize_folder(val, "real_heavy_rain", clean_dir=os.path.join(output_dir, "clean_val"),
                                    seed=seed, params=dict(PARAMS, streaks=streaks))
    return os.path.join(output_dir, "clean_train"), val


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    train, val = make(FLAGS.data_root, FLAGS.output_dir, FLAGS.holdout, FLAGS.seed)
    print(f"training photos: {train}\nvalidation pairs: {val}")
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
