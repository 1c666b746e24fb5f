"""The rethinking paper's Table III on a CPU budget: the generators as autoencoders.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.recon_experiment [--steps=1500] [--output_csv=table3.csv]

Table III of "Rethinking generative methods" trains each generator to
reproduce its input (clean -> clean) and reports the reconstruction
PSNR/SSIM, to show how much detail each architecture loses:

    En/Decoder 24.06 dB / 0.7194   pix2pix (UNet-8) 34.20 / 0.9802   UNet-5 34.28 / 0.9811
    UNet-5 + InfoAccum-15 42.58 / 0.9967   UNet-5 + InfoAccum-15 + SubPixUpsamp 49.41 / 0.9987

What this tool does, and how it differs from the paper:

* Models: En/Decoder-5, UNet-5, UNet-5 + InfoAccum-15 and UNet-5 +
  InfoAccum-15 + SubPixUpsamp (``erlrestore.models.pix2pix`` rows
  ``endec5``, ``unet5``, ``unet5_infoaccum15``, ``unet5_infoaccum15_subpix``),
  plus pix2pix's UNet-8 with ``--include_unet8``. Every other architecture
  setting is the row's default (batch norm, dropout 0.5 where pix2pix puts
  it: decoder blocks 6, 5, 4 of UNet-8, none in the 5-level rows; InfoAccum
  growth rate 4) except the width: ``--gen_filters``
  (default 16, a quarter of pix2pix's 64) so that the CPU can train them.
* Training: the generator alone, no discriminator, through the project's
  own path: :class:`~erlrestore.training.gan_trainer.GANTrainer` in the ``RECON``
  stage (``task="reconstruct"``: the clean image is both input and target;
  loss ``100 * L1``) under ``keras.Model.fit``. The paper trained its
  autoencoders with an MSE loss (Appendix G) inside its GAN code, on
  Rain800's clean images with 256 px crops for an unstated number of
  epochs; we use L1 here (the paper-scale flagfiles ``flags/recon_*.flags``
  of the training CLI's ``RECON`` stage use MSE, ``--pixel_loss=mse``),
  ``--crop_size`` crops (default 32), ``--steps`` steps of batch
  ``--batch_size`` each, Adam with beta_1 0.5 as the paper but a learning
  rate of ``--learning_rate`` (default 1e-3, our choice for short runs; the
  paper's 2e-4 is for runs of many epochs).
* Data: the clean images of ``--clean_dir`` (default
  ``kodak24`` under ``$ERLRESTORE_DATA_ROOT`` when set); the last ``--holdout`` of
  them (sorted by name) are held out for evaluation, the others give random
  crops. Without a folder, ``--procedural`` procedural images of
  ``--procedural_size`` px (quantised to 8 bits, like saved photos) stand in.
* Evaluation: each held-out image (its centre ``--eval_size`` crop, or the
  full image with ``--eval_size=0``) goes through the generator
  (``training=False``: dropout off, batch-norm moving statistics); the
  output is clipped and quantised to 8 bits and compared with the clean
  image by the NumPy Y-channel metrics (:func:`erlrestore.metrics.psnr_y` /
  ``ssim_y``, BT.601, no border crop); the table shows the means.
* Reproducibility: one ``--seed`` seeds Keras/NumPy/TF before each model is
  built and the crop pipeline (deterministic), so every model sees the same
  crops in the same order.

Output: a table (one row per model: parameters, PSNR, SSIM, training
seconds including the tracing of the train step), then one line saying whether the paper's ordering
``En/Decoder << UNet-5 < UNet-5+InfoAccum-15 < UNet-5+InfoAccum-15+SubPixUpsamp``
appears in PSNR, where ``<<`` means at least ``--much_lower_db`` dB lower
(our threshold; the paper's gap is 10 dB) and ``<`` strictly lower. UNet-8,
when included, is reported but not part of the check (the paper has it
about equal to UNet-5). ``--output_csv`` also writes the table as CSV.
"""

import csv
import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore import metrics
from erlrestore.data import image_files, pairing, pipeline, root, synthetic
from erlrestore.models import memd, pix2pix
from erlrestore.progress import progress
from erlrestore.training import strategies
from erlrestore.training.gan_trainer import GANTrainer

FLAGS = flags.FLAGS

DEFAULT_CLEAN_DIR = root.under_root("kodak24")

PAPER_INFO_ACCUM_LAYERS = 15


def table_rows(info_accum_layers=PAPER_INFO_ACCUM_LAYERS, include_unet8=False):
    """``(label, generator row)`` pairs in the paper's Table III order.

    ``info_accum_layers`` replaces the paper's 15 (only to make smoke tests
    fast); the labels say which was used. UNet-8 comes last when included.
    """
    ia = info_accum_layers
    rows = [
        ("En/Decoder-5", "endec5"),
        ("UNet-5", "unet5"),
        (f"UNet-5 + InfoAccum-{ia}", f"unet5_infoaccum{ia}"),
        (f"UNet-5 + InfoAccum-{ia} + SubPixUpsamp", f"unet5_infoaccum{ia}_subpix"),
    ]
    if include_unet8:
        rows.append(("pix2pix (UNet-8)", "pix2pix"))
    return rows


CSV_FIELDS = ("model", "generator", "params", "psnr_y", "ssim_y", "train_seconds", "steps", "crop_size",
              "batch_size", "gen_filters")


@dataclasses.dataclass(frozen=True)
class Result:
    """One table row."""

    model: str
    generator: str
    params: int
    psnr_y: float
    ssim_y: float
    train_seconds: float


def define_flags():
    flags.DEFINE_string("clean_dir", DEFAULT_CLEAN_DIR if os.path.isdir(DEFAULT_CLEAN_DIR) else "",
                        "Folder of clean images (default: Kodak24 when present); empty: procedural images.")
    flags.DEFINE_integer("procedural", 12, "Procedural images when --clean_dir is empty.", lower_bound=2)
    flags.DEFINE_integer("procedural_size", 96, "Side of the procedural images.", lower_bound=8)
    flags.DEFINE_integer("holdout", 4, "Last images (by name) held out for evaluation.", lower_bound=1)
    flags.DEFINE_integer("eval_size", 128, "Centre crop side of the held-out images (0: full size).", lower_bound=0)
    flags.DEFINE_integer("crop_size", 32, "Training crop side.", lower_bound=8)
    flags.DEFINE_integer("steps", 1500, "Training steps per model.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 8, "Crops per step.", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (the paper: 2e-4 for far longer runs).",
                       lower_bound=0)
    flags.DEFINE_integer("gen_filters", 16, "Generator width of the first level (paper: 64).", lower_bound=1)
    flags.DEFINE_boolean("include_unet8", False, "Also train pix2pix's UNet-8.")
    flags.DEFINE_integer("info_accum_layers", PAPER_INFO_ACCUM_LAYERS,
                         "InfoAccum layers of the InfoAccum rows (the paper: 15; smaller only for smoke tests).",
                         lower_bound=1)
    flags.DEFINE_float("much_lower_db", 3.0, "PSNR gap that counts as 'much lower' (<<) in the ordering check.",
                       lower_bound=0)
    flags.DEFINE_integer("seed", 0, "Seed of initialisation and crops.", lower_bound=0)
    flags.DEFINE_string("output_csv", "", "Also write the table to this CSV file.")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _center_crop(image, size):
    if not size:
        return image
    height, width = image.shape[:2]
    side_h, side_w = min(size, height), min(size, width)
    top, left = (height - side_h) // 2, (width - side_w) // 2
    return image[top:top + side_h, left:left + side_w]


def load_data(clean_dir, holdout, eval_size, crop_size, procedural=12, procedural_size=96, seed=0):
    """``(train_source, eval_images, description)``.

    ``train_source`` is a tf.data source of ``(clean, clean)`` full images
    for :func:`erlrestore.data.pipeline.train_dataset`; ``eval_images`` a list
    of ``(name, HxWx3 float32)`` held-out images (centre-cropped to
    ``eval_size`` when non-zero). Raises DataError when the folder holds too
    few images or a training image is smaller than the crop.
    """
    if clean_dir:
        paths = image_files.list_images(clean_dir)
        if len(paths) <= holdout:
            raise image_files.DataError(f"{clean_dir} holds {len(paths)} images; need more than --holdout={holdout} "
                               "(the rest are for training)")
        train_paths, eval_paths = paths[:-holdout], paths[-holdout:]
        train = pipeline.pairs_source([pairing.Pair(p, p) for p in train_paths], min_size=crop_size)
        eval_images = [(os.path.basename(p), _center_crop(image_files.read_image(p), eval_size)) for p in eval_paths]
        description = f"{clean_dir}: {len(train_paths)} training images, {len(eval_paths)} held out"
    else:
        if procedural <= holdout:
            raise ValueError(f"--procedural={procedural} must exceed --holdout={holdout}")
        if procedural_size < crop_size:
            raise ValueError(f"--procedural_size={procedural_size} is smaller than --crop_size={crop_size}")
        images = synthetic.procedural_images(procedural, procedural_size, procedural_size, seed=seed)
        images = (np.round(images * 255.0) / 255.0).astype(np.float32)  # 8-bit, like saved photos
        train_images = images[:-holdout]
        train = tf.data.Dataset.from_tensor_slices((train_images, train_images))
        eval_images = [(f"procedural_{i:03d}", _center_crop(images[i], eval_size))
                       for i in range(procedural - holdout, procedural)]
        description = (f"procedural {procedural_size}x{procedural_size} images: {procedural - holdout} training, "
                       f"{holdout} held out")
    return train, eval_images, description


# ---------------------------------------------------------------------------
# Training and evaluation
# ---------------------------------------------------------------------------


def quantize_8bit(image):
    """``image`` clipped to [0, 1] and rounded to 8 bits, as uint8."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def evaluate(generator, eval_images):
    """Mean Y-PSNR and Y-SSIM of the generator's 8-bit reconstructions of ``eval_images``."""
    psnrs, ssims = [], []
    for _, image in eval_images:
        output = generator(image[None], training=False).numpy()[0]
        restored = quantize_8bit(output)
        psnrs.append(metrics.psnr_y(restored, image))
        ssims.append(metrics.ssim_y(restored, image))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def train_and_evaluate(label, row, train_source, eval_images, *, gen_filters, crop_size, batch_size, steps,
                       learning_rate, seed):
    """Builds generator ``row``, trains it as an autoencoder (RECON stage), evaluates it; a :class:`Result`."""
    keras.utils.set_random_seed(seed)
    generator = pix2pix.build_generator(pix2pix.generator_config(row, base_filters=gen_filters), name=row)
    trainer = GANTrainer(generator, None, l1_weight=100.0)
    trainer.compile(g_optimizer=keras.optimizers.Adam(learning_rate, beta_1=0.5, beta_2=0.999), d_optimizer=None,
                    jit_compile=False)
    (stage,) = strategies.gan_strategy("RECON")
    trainer.set_stage(stage)
    data = pipeline.train_dataset(train_source, crop_size=crop_size, batch_size=batch_size, seed=seed,
                                  deterministic=True, cache=True)
    start = time.perf_counter()
    trainer.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)  # the pipeline shuffles
    seconds = time.perf_counter() - start
    psnr, ssim = evaluate(generator, eval_images)
    return Result(label, row, memd.count_params(generator), psnr, ssim, seconds)


def ordering_verdict(results, much_lower_db=3.0):
    """``(holds, explanation)`` for the paper's ordering in PSNR over the four Table III rows.

    ``En/Decoder-5`` at least ``much_lower_db`` below ``UNet-5``, then each of
    ``UNet-5``, ``+InfoAccum-15``, ``+SubPixUpsamp`` strictly below the next.
    ``results`` are in :func:`table_rows` order; only the first four are
    consulted (a fifth, UNet-8, is not).
    """
    if len(results) < 4:
        raise ValueError(f"ordering_verdict: needs the four Table III rows, got {len(results)} results")
    rows = results[:4]
    psnr = [r.psnr_y for r in rows]
    checks = [(psnr[1] - psnr[0] >= much_lower_db,
               f"En/Decoder << UNet-5 ({psnr[0]:.2f} vs {psnr[1]:.2f} dB, need a {much_lower_db:g} dB gap)")]
    for i in (1, 2):
        checks.append((psnr[i] < psnr[i + 1],
                       f"{rows[i].model} < {rows[i + 1].model} ({psnr[i]:.2f} vs {psnr[i + 1]:.2f} dB)"))
    failed = [text for ok, text in checks if not ok]
    return not failed, "; ".join(failed) if failed else "; ".join(text for _, text in checks)


def format_table(results):
    """The results as aligned text lines (header first)."""
    width = max(len("model"), *(len(r.model) for r in results))
    lines = [f"{'model':<{width}}  {'params':>10}  {'PSNR-Y':>7}  {'SSIM-Y':>7}  {'train s':>8}"]
    for r in results:
        lines.append(f"{r.model:<{width}}  {r.params:>10,}  {r.psnr_y:7.2f}  {r.ssim_y:7.4f}  {r.train_seconds:8.1f}")
    return lines


def write_csv(path, results, *, steps, crop_size, batch_size, gen_filters):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for r in results:
            writer.writerow({**dataclasses.asdict(r), "psnr_y": f"{r.psnr_y:.4f}", "ssim_y": f"{r.ssim_y:.6f}",
                             "train_seconds": f"{r.train_seconds:.2f}", "steps": steps, "crop_size": crop_size,
                             "batch_size": batch_size, "gen_filters": gen_filters})


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.eval_size and FLAGS.eval_size < metrics.SSIM_WINDOW:
        raise app.UsageError(f"--eval_size={FLAGS.eval_size} is smaller than the {metrics.SSIM_WINDOW}x"
                             f"{metrics.SSIM_WINDOW} SSIM window (use 0 for full images)")
    csv_folder = os.path.dirname(os.path.abspath(FLAGS.output_csv)) if FLAGS.output_csv else ""
    if csv_folder and not os.path.isdir(csv_folder):
        raise app.UsageError(f"--output_csv: folder {csv_folder} does not exist")
    try:
        train, eval_images, description = load_data(
            FLAGS.clean_dir, FLAGS.holdout, FLAGS.eval_size, FLAGS.crop_size,
            procedural=FLAGS.procedural, procedural_size=FLAGS.procedural_size, seed=FLAGS.seed)
    except ValueError as exc:  # DataError included
        raise app.UsageError(str(exc)) from None
    rows = table_rows(FLAGS.info_accum_layers, FLAGS.include_unet8)
    print(f"data: {description}; evaluation on "
          f"{'full images' if not FLAGS.eval_size else f'centre {FLAGS.eval_size} px crops'}", flush=True)
    print(f"training: RECON stage (clean -> clean, 100 * L1, no discriminator), {FLAGS.steps} steps x batch "
          f"{FLAGS.batch_size} of {FLAGS.crop_size} px crops, Adam {FLAGS.learning_rate:g} (beta_1 0.5), "
          f"gen_filters {FLAGS.gen_filters}, seed {FLAGS.seed}", flush=True)
    results = []
    for label, row in progress(rows, desc="models"):
        result = train_and_evaluate(label, row, train, eval_images, gen_filters=FLAGS.gen_filters,
                                    crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size, steps=FLAGS.steps,
                                    learning_rate=FLAGS.learning_rate, seed=FLAGS.seed)
        print(f"trained {label}: {result.psnr_y:.2f} dB, {result.ssim_y:.4f} ({result.train_seconds:.1f} s)",
              flush=True)
        results.append(result)
    for line in format_table(results):
        print(line)
    if FLAGS.output_csv:
        write_csv(FLAGS.output_csv, results, steps=FLAGS.steps, crop_size=FLAGS.crop_size,
                  batch_size=FLAGS.batch_size, gen_filters=FLAGS.gen_filters)
        print(f"csv: {FLAGS.output_csv}")
    holds, explanation = ordering_verdict(results, FLAGS.much_lower_db)
    ia = FLAGS.info_accum_layers
    print(f"paper ordering En/Decoder << UNet-5 < UNet-5+IA{ia} < UNet-5+IA{ia}+SubPix: "
          f"{'appears' if holds else 'does not appear'} ({explanation})", flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
