"""The README's main job, end to end on an embedded default.

    make demo            # or: python tools/demo.py --output_dir=demo_output

Today it synthesizes a small paired de-raining set from generated clean
images (or from ``--clean_dir``), measures the rainy inputs against the clean
images with the literature's Y-channel PSNR/SSIM, and writes a CSV.
Training, export and restoration join as those parts of erlrestore land.
"""

import os

from absl import app, flags

from erlrestore import evaluation
from erlrestore.data import pairing, synthetic

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("output_dir", "demo_output", "Where the demo writes everything.")
    flags.DEFINE_string("clean_dir", None, "Clean photos to degrade; default: generated images.")
    flags.DEFINE_integer("images", 8, "Generated clean images when --clean_dir is not given.", lower_bound=1)
    flags.DEFINE_integer("size", 256, "Side of the generated images in pixels.", lower_bound=32)
    flags.DEFINE_enum("degradation", "rain", sorted(synthetic.DEGRADATIONS), "Synthetic degradation.")
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)


def main(argv):
    del argv
    data_dir = os.path.join(FLAGS.output_dir, f"{FLAGS.degradation}_set")
    print(f"1. synthesizing a paired {FLAGS.degradation} set in {data_dir}")
    synthetic.synthesize_folder(
        data_dir,
        FLAGS.degradation,
        clean_dir=FLAGS.clean_dir,
        procedural=0 if FLAGS.clean_dir else FLAGS.images,
        size=(FLAGS.size, FLAGS.size),
        seed=FLAGS.seed,
        overwrite=True,
    )
    pairs = pairing.find_pairs(data_dir)
    print(f"2. measuring {len(pairs)} degraded inputs against their clean images (Y channel, BT.601)")
    scores, summary = evaluation.measure_pairs(pairs)
    csv_path = os.path.join(FLAGS.output_dir, "input_metrics.csv")
    evaluation.write_csv(csv_path, scores)
    print(f"   per-image values: {csv_path}")
    print(f"   degraded inputs:  {os.path.join(data_dir, 'input')}")
    print(f"   clean targets:    {os.path.join(data_dir, 'target')}")
    print(summary.line())


if __name__ == "__main__":
    define_flags()
    app.run(main)
