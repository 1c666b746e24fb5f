"""erlrestore-metrics: PSNR/SSIM (Y channel, or RGB) between paired folders of images.

    erlrestore-metrics --input_dir=results --target_dir=clean [--crop_border=N] [--csv=out.csv]
    erlrestore-metrics --input_dir=rain12            # a folder holding rain/ and norain/
    erlrestore-metrics --input_dir=denoised --target_dir=clean --channel=rgb
    erlrestore-metrics --pairs=pairs.csv             # input,target lines, for names no layout pairs

Files are paired by the benchmark layouts of ``erlrestore.data.pairing``,
or as ``--pairs`` lists them.
``--channel=y`` (the default) measures on the BT.601 Y channel, as the
de-raining literature does; ``--channel=rgb`` on the three RGB channels, as
de-noising and de-hazing papers do (PSNR over all channels, SSIM averaged
over the channels; see ``erlrestore.metrics``).

The last line on stdout is always ``n=<N> psnr_y=<x.xxxx> ssim_y=<x.xxxxx>``
with ``--channel=y``, and ``n=<N> psnr_rgb=<x.xxxx> ssim_rgb=<x.xxxxx>``
with ``--channel=rgb``; the CSV columns are named the same way.
"""


from absl import app, flags, logging

from erlrestore.cli import apply_max_image_pixels, define_max_image_pixels_flag, entry_point, fail, finish

from erlrestore import evaluation, metrics
from erlrestore.cli import pairing_flags
from erlrestore.data import image_files

FLAGS = flags.FLAGS


def define_flags():
    pairing_flags.define_flags(__name__, input_help="Degraded or restored images (or one folder holding both sets).",
                               target_help="Clean reference images; omit when --input_dir holds both sets.")
    flags.DEFINE_integer("crop_border", 0, "Pixels removed from every side before measuring.", lower_bound=0)
    flags.DEFINE_enum("channel", "y", metrics.CHANNELS, "Measure on the BT.601 Y channel (de-raining papers) or on "
                      "RGB (de-noising/de-hazing papers); names the numbers psnr_y/ssim_y or psnr_rgb/ssim_rgb.")
    flags.DEFINE_string("csv", None, "Write per-image values to this CSV file.")
    flags.DEFINE_integer("workers", 0, "Decoding threads (0: one per CPU, at most 8).", lower_bound=0)
    define_max_image_pixels_flag()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    apply_max_image_pixels()
    try:
        pairs = pairing_flags.pairs_from_flags()
        scores, summary = evaluation.measure_pairs(pairs, FLAGS.crop_border, workers=FLAGS.workers or None,
                                                   channel=FLAGS.channel)
    except (image_files.DataError, ValueError) as error:
        return fail(error)
    if FLAGS.csv:
        evaluation.write_csv(FLAGS.csv, scores)
        logging.info("wrote %d rows to %s", len(scores), FLAGS.csv)
    return finish(summary.line())


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
