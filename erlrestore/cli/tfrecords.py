"""erlrestore-tfrecords: pack paired image folders into TFRecord shards.

    erlrestore-tfrecords --input_dir=rain100h/rain --target_dir=rain100h/norain \\
        --output_dir=shards/rain100h --num_shards=8 [--prefix=train]
    erlrestore-tfrecords --input_dir=rain12 --output_dir=shards/rain12   # rain/ + norain/ inside

Files are paired by ``erlrestore.data.pairing`` (all benchmark layouts);
the shards (``<prefix>-00000-of-00008.tfrecord`` ...) store both images
losslessly, see ``erlrestore.data.tfrecord``. Read them back with
``erlrestore.data.pipeline.tfrecord_source("shards/rain100h")``. The last
stdout line is ``pairs=<N> shards=<K> output_dir=<dir>``.
"""

import os

from absl import app, flags

from erlrestore.cli import fail, show_flags_in_help

from erlrestore.data import image_files, pairing, tfrecord

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("input_dir", None, "Degraded images (or one folder holding both sets).")
    flags.DEFINE_string("target_dir", None, "Clean images; omit when --input_dir holds both sets.")
    flags.DEFINE_enum("layout", "auto", pairing.LAYOUTS, "How files are paired; 'auto' detects it.")
    flags.DEFINE_enum("pair_order", "", ("",) + pairing.PAIR_ORDERS, "Half order for side_by_side images.")
    flags.DEFINE_string("output_dir", None, "Folder for the shards (created if missing).")
    flags.DEFINE_integer("num_shards", 4, "Number of shard files.")
    flags.DEFINE_string("prefix", "pairs", "Shard file-name prefix.")
    flags.mark_flags_as_required(["input_dir", "output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.num_shards < 1:
        raise app.UsageError(f"--num_shards must be >= 1, got {FLAGS.num_shards}")
    prefix = FLAGS.prefix
    if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise app.UsageError(f"--prefix must be a plain file-name prefix without '/', got {prefix!r}")
    try:
        pairs = pairing.find_pairs(
            FLAGS.input_dir, FLAGS.target_dir, layout=FLAGS.layout, pair_order=FLAGS.pair_order
        )
        paths = tfrecord.write_tfrecords(
            pairs, FLAGS.output_dir, num_shards=FLAGS.num_shards, prefix=prefix
        )
    except (image_files.DataError, ValueError) as error:
        return fail(error)
    print(f"pairs={len(pairs)} shards={len(paths)} output_dir={FLAGS.output_dir}")
    return 0


def run():
    define_flags()
    show_flags_in_help(__name__)
    app.run(main)


if __name__ == "__main__":
    run()
