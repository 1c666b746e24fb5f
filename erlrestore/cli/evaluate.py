"""erlrestore-evaluate: run a restoration model on a benchmark and report Y-PSNR/SSIM.

    erlrestore-evaluate --model=erlnet.keras --input_dir=rain12          # rain/ + norain/ inside
    erlrestore-evaluate --model=erlnet.keras --input_dir=rain --target_dir=norain \\
        [--crop_border=N] [--csv=scores.csv] [--output_dir=restored/] [--noquantize]
    erlrestore-evaluate --model=erlnet.keras --baseline_model=memd.keras --input_dir=rain12

Files are paired as by ``erlrestore-metrics`` (``--layout``, ``--pair_order``).
Each degraded image is restored by the model, rounded to 8 bits (as saving
the result would; ``--noquantize``, also spelled ``--no-quantize``, scores the
float output) and scored against its clean image. ``--output_dir`` writes the
restored images as ``<input stem>.png``; it may not be a folder holding input
or clean images.

With ``--baseline_model`` the baseline is evaluated too, and the ERL-Net
paper's Sec. 4.3 analyses are printed before the last line: the baseline's
summary, mIoR / mIoB of the model over the baseline, and the shares of images
the model improves (all, hard, easy). The CSV then also holds the baseline's
scores, whether each image improved, and its IoR / IoB.

The last line on stdout is always the evaluated model's
``n=<N> psnr_y=<x.xxxx> ssim_y=<x.xxxxx>``.
"""

import os
import sys

from absl import app, flags, logging

from erlrestore.cli import apply_max_image_pixels, define_max_image_pixels_flag, fail

from erlrestore import evaluation
from erlrestore.data import io, pairing

FLAGS = flags.FLAGS

_BOOLEAN_FLAGS = ("quantize",)


def define_flags():
    flags.DEFINE_string("model", None, "The restoration model to evaluate (a .keras file).")
    flags.DEFINE_string("input_dir", None, "Degraded images (or one folder holding both sets).")
    flags.DEFINE_string("target_dir", None, "Clean reference images; omit when --input_dir holds both sets.")
    flags.DEFINE_enum("layout", "auto", pairing.LAYOUTS, "How files are paired; 'auto' detects it.")
    flags.DEFINE_enum("pair_order", "", ["", "input_left", "target_left"], "Half order for side_by_side images.")
    flags.DEFINE_integer("crop_border", 0, "Pixels removed from every side before measuring.", lower_bound=0)
    flags.DEFINE_string("csv", None, "Write per-image values to this CSV file.")
    flags.DEFINE_string("output_dir", None, "Write the restored images here as <input stem>.png.")
    flags.DEFINE_boolean(
        "quantize", True, "Round restored images to 8 bits before scoring, as saving them would."
    )
    flags.DEFINE_string(
        "baseline_model", None, "A baseline model (.keras): adds mIoR/mIoB and improved-image shares."
    )
    flags.DEFINE_integer("workers", 0, "Threads for decoding/scoring/writing (0: one per CPU, at most 4).",
                         lower_bound=0)
    define_max_image_pixels_flag()
    flags.mark_flag_as_required("model")
    flags.mark_flag_as_required("input_dir")


def _same_folder(a, b):
    return os.path.realpath(a) == os.path.realpath(b)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    apply_max_image_pixels()
    if FLAGS.output_dir:
        for name in ("input_dir", "target_dir"):
            folder = getattr(FLAGS, name)
            if folder and _same_folder(FLAGS.output_dir, folder):
                raise app.UsageError(
                    f"--output_dir={FLAGS.output_dir} is the --{name} folder; restored images must go "
                    "to a different folder (inputs are never overwritten)"
                )
    try:
        pairs = pairing.find_pairs(
            FLAGS.input_dir, FLAGS.target_dir, layout=FLAGS.layout, pair_order=FLAGS.pair_order
        )
        if FLAGS.output_dir:
            evaluation.output_paths(pairs, FLAGS.output_dir)  # refuse before the slow part
        model = evaluation.load_model(FLAGS.model)
        baseline = evaluation.load_model(FLAGS.baseline_model) if FLAGS.baseline_model else None
        options = dict(
            crop_border=FLAGS.crop_border,
            output_dir=FLAGS.output_dir,
            quantize=FLAGS.quantize,
            workers=FLAGS.workers or None,
        )
        if baseline is None:
            scores, summary = evaluation.evaluate_model(model, pairs, **options)
            comparison = None
        else:
            comparison = evaluation.compare_models(model, baseline, pairs, **options)
            scores, summary = comparison.scores, comparison.summary
    except (io.DataError, ValueError) as error:
        return fail(error)

    if FLAGS.csv:
        extra = {}
        if FLAGS.output_dir:
            extra["output"] = evaluation.output_paths(pairs, FLAGS.output_dir)
        if comparison is not None:
            extra["baseline_psnr_y"] = [s.psnr_y for s in comparison.baseline_scores]
            extra["baseline_ssim_y"] = [s.ssim_y for s in comparison.baseline_scores]
            extra["improved"] = [
                int(s.psnr_y > b.psnr_y) for s, b in zip(comparison.scores, comparison.baseline_scores)
            ]
            extra["ior"] = [iou[0] for iou in comparison.ious]
            extra["iob"] = [iou[1] for iou in comparison.ious]
        evaluation.write_csv(FLAGS.csv, scores, extra_columns=extra)
        logging.info("wrote %d rows to %s", len(scores), FLAGS.csv)
    if comparison is not None:
        print(f"baseline: {comparison.baseline_summary.line()}")
        print(evaluation.miou_line(comparison.miou))
        print(evaluation.improvement_line(comparison.improvement))
    print(summary.line())
    return 0


def _absl_booleans(argv):
    """Accepts ``--no-<flag>`` as a spelling of absl's ``--no<flag>`` for our boolean flags."""
    spelled = {f"--no-{name}": f"--no{name}" for name in _BOOLEAN_FLAGS}
    return [spelled.get(arg, arg) for arg in argv]


def run():
    define_flags()
    app.run(main, argv=_absl_booleans(sys.argv))


if __name__ == "__main__":
    run()
