"""erlrestore-tfrecords: pack paired image folders into TFRecord shards.

    erlrestore-tfrecords --input_dir=rain100h/rain --target_dir=rain100h/norain \\
        --output_dir=shards/rain100h --num_shards=8 [--prefix=train]
    erlrestore-tfrecords --input_dir=rain12 --output_dir=shards/rain12   # rain/ + norain/ inside
    erlrestore-tfrecords --pairs=pairs.csv --output_dir=shards/mine      # input,target lines

Files are paired by ``erlrestore.data.pairing`` (all benchmark layouts, or
a ``--pairs`` list);
the shards (``<prefix>-00000-of-00008.tfrecord`` ...) store both images
losslessly, see ``erlrestore.data.tfrecord``. Read them back with
``erlrestore.data.pipeline.tfrecord_source("shards/rain100h")``. The last
stdout line is ``pairs=<N> shards=<K> output_dir=<dir>``.
"""

import os

from absl import app, flags

from erlrestore.cli import entry_point, fail, finish

from erlrestore.cli import pairing_flags
from erlrestore.data import image_files, tfrecord

FLAGS = flags.FLAGS


def define_flags():
    pairing_flags.define_flags(__name__)
    flags.DEFINE_string("output_dir", None, "Folder for the shards (created if missing).")
    flags.DEFINE_integer("num_shards", 4, "Number of shard files.")
    flags.DEFINE_string("prefix", "pairs", "Shard file-name prefix.")
    flags.mark_flags_as_required(["output_dir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.num_shards < 1:
        raise app.UsageError(f"--num_shards must be >= 1, got {FLAGS.num_shards}")
    prefix = FLAGS.prefix
    if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise app.UsageError(f"--prefix must be a plain file-name prefix without '/', got {prefix!r}")
    try:
        pairs = pairing_flags.pairs_from_flags()
        paths = tfrecord.write_tfrecords(
            pairs, FLAGS.output_dir, num_shards=FLAGS.num_shards, prefix=prefix
        )
    except (image_files.DataError, ValueError) as error:
        return fail(error)
    return finish(f"pairs={len(pairs)} shards={len(paths)} output_dir={FLAGS.output_dir}")


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
