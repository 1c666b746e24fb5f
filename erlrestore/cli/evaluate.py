"""erlrestore-evaluate: run a restoration model on a benchmark and report PSNR/SSIM (Y, or RGB).

    erlrestore-evaluate --model=erlnet.keras --input_dir=rain12          # rain/ + norain/ inside
    erlrestore-evaluate --model=erlnet.keras --input_dir=rain --target_dir=norain \\
        [--crop_border=N] [--csv=scores.csv] [--output_dir=restored/] [--noquantize]
    erlrestore-evaluate --model=erlnet.keras --baseline_model=memd.keras --input_dir=rain12
    erlrestore-evaluate --model=erlnet.keras --baseline_model=memd.keras --input_dir=Rain100H/test \\
        --rain_mask_dir=Rain100H/test_masks
    erlrestore-evaluate --model=dehaze.keras --input_dir=SOTS/indoor --channel=rgb --self_ensemble
    erlrestore-evaluate --model=savedmodels/erlnet --input_dir=Rain100H/test --tile=512 --overlap=32
    erlrestore-evaluate --model=pretrained:erlnet-derain --input_dir=rain12
    erlrestore-evaluate --model=pretrained:erlnet-derain --input_dir=rain12 --output_dir=restored --compare

``--model`` (and ``--baseline_model``) is anything ``erlrestore-restore``
takes: a ``.keras`` file, a training run folder (``final.keras`` inside), a
SavedModel version folder or model folder (the largest version), or
``pretrained:<name>``; with ``--backend=onnxruntime``, ``litert`` or
``openvino`` an ONNX, LiteRT or OpenVINO model from ``erlrestore-export``
(``erlrestore.inference.load_restorer`` loads them all, tiling alike).

Files are paired as by ``erlrestore-metrics`` (``--layout``, ``--pair_order``,
or a ``--pairs`` CSV list).
Each degraded image is restored by the model, rounded to 8 bits (as saving
the result would; ``--noquantize``, also spelled ``--no-quantize``, scores the
float output) and scored against its clean image. By default each image goes
through the model whole, as papers evaluate; ``--tile`` restores images
larger than it in overlapping tiles (``--overlap``), exactly as
``erlrestore-restore`` does, for models or machines that cannot take a whole
image at once.

``--output_dir`` writes the restored images as ``<input stem>.png`` under
the output policy of every tool (``erlrestore.outputs``): it may not be a
folder holding input or clean images, two inputs with one stem are refused,
and restored images already there are refused (the error names the first
few) unless ``--overwrite`` is given; all before the model is loaded.

With ``--baseline_model`` the baseline is evaluated too, and the ERL-Net
paper's Sec. 4.3 analyses are printed before the last line: the baseline's
summary, mIoR / mIoB of the model over the baseline, and the shares of images
the model improves (all, hard, easy). The CSV then also holds the baseline's
scores, whether each image improved, and its IoR / IoB.

mIoR / mIoB split each image into rain and background by thresholding
``|rainy - clean|`` at its mean (ERL-Net Sec. 4.3), or, with
``--rain_mask_dir``, by the benchmark's own binary rain masks (the paper does
this for Rain100H). Each image's mask is the file in that folder with the
rainy image's stem, else the clean image's stem, else the same first number
in the name (``rain-001.png`` <-> ``rainmask-001.png`` / ``1.png``); see
``evaluation.rain_mask_paths``. A pixel whose grey value (mean of the
channels, in [0, 1]) is > 0.5 is rain, the rest background. A missing,
ambiguous, unreadable or wrongly sized mask is an error naming the file.

``--norm_statistics=batch`` evaluates as pix2pix's ``test.py`` does by
default (without ``--eval``): the model is called with ``training=True``, so
batch normalisation uses each image's own statistics and, in Keras, dropout
is on too (pix2pix's noise), its masks drawn from fixed seeds set before
every call, so a score is the same in every run (``KerasRestorer``).
The default, ``running``, is Keras' inference mode (moving statistics, no
dropout; pix2pix's ``--eval``). Models without batch norm or dropout give the
same result either way. Batch statistics need a Keras model (``.keras``, run
folder or ``pretrained:``): SavedModels and ONNX, LiteRT and OpenVINO models
are frozen in inference mode and are refused. With ``--tile`` each tile is normalised by
its own statistics.

``--channel=y`` (the default) scores on the BT.601 Y channel, as the
de-raining literature does; ``--channel=rgb`` on the three RGB channels, as
de-noising and de-hazing papers do (see ``erlrestore.metrics``). It names
the numbers: ``psnr_y``/``ssim_y`` or ``psnr_rgb``/``ssim_rgb`` in the
summary lines and the CSV. The improved shares compare that channel's PSNR;
mIoR / mIoB are always on Y.

``--self_ensemble`` restores each image with the x8 geometric
self-ensemble: the model runs on the 8 flips/rotations of the degraded
image, the outputs are transformed back and averaged (8 model calls per
image; with ``--baseline_model`` the baseline is ensembled too).

``--compare`` (with ``--output_dir``) also writes, per pair, a labelled
strip input | restored | clean to ``<output_dir>/compare/<input stem>.png``
(input | baseline | restored | clean with ``--baseline_model``), each
panel's PSNR on ``--channel`` printed on it: the per-image numbers scored
(``erlrestore.pictures``). Strips wider than ``--compare_max_width``
(2400 px by default; 0: no limit) are scaled down, the labels staying
legible. They follow the output policy above.

Before the analyses of ``--baseline_model`` and the last line, two lines
give the degraded inputs' score against the clean images and the gain,
restored minus input:

    input: n=12 psnr_y=30.1354 ssim_y=0.85540
    gain: psnr_y=+3.3991 ssim_y=+0.05761

The last line on stdout is always the evaluated model's
``n=<N> psnr_y=<x.xxxx> ssim_y=<x.xxxxx>`` (``--channel=y``) or
``n=<N> psnr_rgb=<x.xxxx> ssim_rgb=<x.xxxxx>`` (``--channel=rgb``).
"""

import os

from absl import app, flags, logging

from erlrestore.cli import (apply_max_image_pixels, define_max_image_pixels_flag, entry_point, fail, finish,
                            flag_settings)

from erlrestore import evaluation, inference, metrics
from erlrestore.cli import option_groups, pairing_flags
from erlrestore.data import image_files

FLAGS = flags.FLAGS

_BOOLEAN_FLAGS = ("quantize", "self_ensemble", "overwrite")


def define_flags():
    option_groups.define_model_flags(baseline=True)
    pairing_flags.define_flags(__name__, target_help="Clean reference images; omit when --input_dir holds both sets.")
    flags.DEFINE_integer("crop_border", 0, "Pixels removed from every side before measuring.", lower_bound=0)
    flags.DEFINE_enum("channel", "y", metrics.CHANNELS, "Score on the BT.601 Y channel (de-raining papers) or on "
                      "RGB (de-noising/de-hazing papers); names the numbers psnr_y/ssim_y or psnr_rgb/ssim_rgb.")
    option_groups.define_self_ensemble_flag(baseline=True)
    flags.DEFINE_string("csv", None, "Write per-image values to this CSV file.")
    option_groups.define_output_flags(option_groups.NAMED_AS_STEM_PNG)
    option_groups.define_compare_flags("input | restored | clean with each panel's PSNR on --channel (input | "
                                       "baseline | restored | clean with --baseline_model)")
    option_groups.define_tiling_flags(None)
    flags.DEFINE_boolean(
        "quantize", True, "Round restored images to 8 bits before scoring, as saving them would."
    )
    flags.DEFINE_string(
        "baseline_model", None, "A baseline model (any --model form): adds mIoR/mIoB and improved-image shares."
    )
    flags.DEFINE_string(
        "rain_mask_dir", None, "With --baseline_model: the benchmark's binary rain masks (e.g. Rain100H's) for "
        "mIoR/mIoB instead of thresholded |rainy - clean| maps; paired by the rainy or clean image's name, "
        "else by the first number in it; grey > 0.5 is rain."
    )
    flags.DEFINE_enum(
        "norm_statistics", "running", ["running", "batch"],
        "Batch-norm statistics at evaluation: running (Keras inference mode, training=False; pix2pix's test.py "
        "--eval) or batch (the model is called with training=True: each image's own statistics, and dropout on, "
        "as pix2pix's test.py does by default; Keras models only). Applies to --baseline_model too."
    )
    flags.DEFINE_integer("workers", 0, "Threads for decoding/scoring/writing (0: one per CPU, at most 4).",
                         lower_bound=0)
    define_max_image_pixels_flag()


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
    if FLAGS.tile is not None:
        option_groups.check_tiling_flags(FLAGS.tile, FLAGS.overlap)
    if FLAGS.rain_mask_dir and not FLAGS.baseline_model:
        raise app.UsageError("--rain_mask_dir gives the rain maps of mIoR/mIoB, which compare two models; "
                             "add --baseline_model")
    if FLAGS.compare and not FLAGS.output_dir:
        raise app.UsageError("--compare writes its strips to a compare/ folder inside --output_dir; "
                             "add --output_dir")
    strips = option_groups.compare_dir(FLAGS.output_dir) if FLAGS.compare else None
    try:
        pairs = pairing_flags.pairs_from_flags()
        # Refuse outputs before the slow part.
        targets = evaluation.restored_paths(pairs, FLAGS.output_dir, FLAGS.overwrite) if FLAGS.output_dir else None
        if strips:
            evaluation.compare_paths(pairs, strips, FLAGS.output_dir, FLAGS.overwrite)
        rain_masks = evaluation.rain_mask_paths(pairs, FLAGS.rain_mask_dir) if FLAGS.rain_mask_dir else None
        batch_statistics = FLAGS.norm_statistics == "batch"

        def load(path):
            return inference.load_restorer(path, backend=FLAGS.backend, batch_statistics=batch_statistics)

        model = load(FLAGS.model)
        baseline = load(FLAGS.baseline_model) if FLAGS.baseline_model else None
        options = dict(
            flag_settings(("crop_border", "output_dir", "quantize", "channel", "self_ensemble", "tile", "overlap",
                           "overwrite", "compare_max_width")),
            workers=FLAGS.workers or None,
            training=batch_statistics,
            compare_dir=strips,
        )
        if baseline is None:
            scores, summary, _, input_summary = evaluation.evaluate_model(model, pairs, return_input=True, **options)
            comparison = None
        else:
            comparison = evaluation.compare_models(model, baseline, pairs, rain_masks=rain_masks, **options)
            scores, summary, input_summary = comparison.scores, comparison.summary, comparison.input_summary
    except (image_files.DataError, ValueError) as error:
        return fail(error)

    if FLAGS.csv:
        extra = {}
        if targets is not None:
            extra["output"] = targets
        if comparison is not None:
            channel = FLAGS.channel
            for name, _ in comparison.baseline_scores[0].metric_values() if comparison.baseline_scores else ():
                extra[f"baseline_{name}_{channel}"] = [dict(s.metric_values())[name] for s in comparison.baseline_scores]
            extra["improved"] = [
                int(s.psnr > b.psnr) for s, b in zip(comparison.scores, comparison.baseline_scores)
            ]
            extra["ior"] = [iou[0] for iou in comparison.ious]
            extra["iob"] = [iou[1] for iou in comparison.ious]
            if rain_masks is not None:
                extra["rain_mask"] = rain_masks
        evaluation.write_csv(FLAGS.csv, scores, extra_columns=extra)
        logging.info("wrote %d rows to %s", len(scores), FLAGS.csv)
    if strips:
        print(f"comparison strips in {strips}")
    print(evaluation.input_line(input_summary))
    print(evaluation.gain_line(summary, input_summary))
    if comparison is not None:
        print(f"baseline: {comparison.baseline_summary.line()}")
        print(evaluation.miou_line(comparison.miou))
        print(evaluation.improvement_line(comparison.improvement))
    return finish(summary.line())  # always last: tools parse it


def _absl_booleans(argv):
    """Accepts ``--no-<flag>`` as a spelling of absl's ``--no<flag>`` for our boolean flags."""
    spelled = {f"--no-{name}": f"--no{name}" for name in _BOOLEAN_FLAGS}
    return [spelled.get(arg, arg) for arg in argv]


run = entry_point(define_flags, main, __name__, rewrite_argv=_absl_booleans)

if __name__ == "__main__":
    run()
