"""Training material for the shipped de-hazing model: a scene split of real RESIDE haze pairs.

    python -m tools.dehaze_training_data --data_root=<folder holding dehaze-train/> --output_dir=runs/dehaze-data

From ``<data_root>/dehaze-train`` (RESIDE outdoor scenes, ``hazy/<id>_<A>_<beta>.jpg``
or ``hazy/<id>.jpg`` beside ``gt/<id>.jpg``) it copies, by scene id in sorted
order:

* ``train/``: every scene but the last ``2 * --holdout``, for training;
* ``val/``: the next ``--holdout`` scenes, the held-out validation pairs that
  pick ``best.keras`` while training;
* ``test/``: the last ``--holdout`` scenes, never trained or selected on:
  the model card's held-out outdoor score.

Each part keeps the ``hazy/`` + ``gt/`` layout, so ``erlrestore-train`` and
``erlrestore-evaluate`` pair it as RESIDE. Running it again changes nothing.
"""

import os
import shutil

from absl import app, flags

import erlrestore.cli  # noqa: F401  (quiet by default; imported before anything imports TensorFlow)
from erlrestore.data import pairing

FLAGS = flags.FLAGS
PARTS = ("train", "val", "test")


def define_flags():
    flags.DEFINE_string("data_root", None, "Folder holding dehaze-train/.", required=True)
    flags.DEFINE_string("output_dir", "runs/dehaze-data", "Where train/, val/ and test/ go.")
    flags.DEFINE_integer("holdout", 40, "Scenes in each of val/ and test/.", lower_bound=1)


def split(pairs, holdout):
    """{part: pairs}: the last ``holdout`` scenes test, the ``holdout`` before them val, the rest train."""
    if len(pairs) <= 2 * holdout:
        raise ValueError(f"{len(pairs)} pairs cannot give two held-out parts of {holdout}")
    pairs = sorted(pairs, key=lambda p: os.path.basename(p.target_path))
    return {"train": pairs[:-2 * holdout], "val": pairs[-2 * holdout:-holdout], "test": pairs[-holdout:]}


def make(data_root, output_dir, holdout):
    source = os.path.join(data_root, "dehaze-train")
    parts = split(pairing.find_pairs(source), holdout)
    for part, pairs in parts.items():
        for pair in pairs:
            for role, path in (("hazy", pair.input_path), ("gt", pair.target_path)):
                folder = os.path.join(output_dir, part, role)
                os.makedirs(folder, exist_ok=True)
                destination = os.path.join(folder, os.path.basename(path))
                if not os.path.exists(destination):
                    shutil.copyfile(path, destination)
    return {part: os.path.join(output_dir, part) for part in PARTS}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    for part, folder in make(FLAGS.data_root, FLAGS.output_dir, FLAGS.holdout).items():
        print(f"{part}: {folder}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
