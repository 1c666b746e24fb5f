"""Generative-family benchmark: pix2pix step time, inference time, parameters and FLOPs.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tools/bench_gan.py [--crop_size=256] [--steps=10]
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tools/bench_gan.py --generator=unet5_infoaccum15_subpix

Benchmarks one generator (default ``pix2pix``: UNet-8, the rethinking
paper's baseline) with the 5-layer PatchGAN and the LSGAN loss
(``L_G = adversarial + 100 * L1``), one ``crop_size`` crop per image, batch
``--batch_size`` (pix2pix and the paper: 256 px, batch 1). It prints, one
line each:

* the machine (CPU count, platform, Python / TensorFlow / Keras versions,
  devices) and the configuration;
* the parameter counts of G and D (all weights, trainable or not);
* the training-step time: one :class:`~erlrestore.training.gan.GANTrainer`
  ``train_step`` (G and D updated from the same generated batch) wrapped in
  ``tf.function``; the median over ``--steps`` calls after the tracing call
  and ``--warmup`` untimed calls; and the steps per second;
* the generator's inference time per image (``training=False``, same
  timing rule, divided by the batch size);
* FLOPs per forward pass of G and of D, per training step and per
  inference (convention below), and the FLOP rates they imply;

and last a single JSON line with all these numbers (keys listed in
``JSON_KEYS``), for scripts.

FLOP convention (:func:`conv_flops`): one multiply-add is 2 FLOPs; only
convolutions and dense layers are counted (including the convolutions
inside ``InfoAccum``, ``SubPixelUpsample`` and ``DenseBlock``); biases,
normalisation, activations, padding, concatenation, pixel shuffles and the
optimizer update are left out (they are a few percent at most). A
``Conv2D`` costs ``2 * K_h * K_w * C_in/groups * C_out * H_out * W_out`` per
image; a ``Conv2DTranspose`` ``2 * K_h * K_w * C_in * C_out * H_in * W_in``
(each *input* pixel scatters a ``K_h x K_w x C_out`` patch); a ``Dense``
``2 * C_in * C_out`` per position. Spatial sizes are those the layers really
see (the generator pads to a multiple of ``2**levels``).

A training step is counted as ``3 F_G + 7 F_D`` where ``F_G`` / ``F_D`` are
the forward costs of G and of one D call at the crop size: G forward + its
backward (about twice the forward: gradients with respect to activations and
to weights) = ``3 F_G``; D runs forward twice (real and fake pairs,
``2 F_D``), ``L_D`` back-propagates through both calls (``2 * 2 F_D``) and
``L_G``'s adversarial term back-propagates once more through the fake call
to reach G, needing activation gradients only (``F_D``). Inference is
``F_G``.
"""

import json
import os
import platform
import sys

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore.models import memd, pix2pix
from erlrestore.training import stages
from erlrestore.training.gan import GANTrainer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_erlnet import median_seconds, random_pair_batch  # noqa: E402  (the timing helpers, shared)

FLAGS = flags.FLAGS

# Keys of the final JSON line.
JSON_KEYS = (
    "machine", "generator", "gen_filters", "levels", "disc_filters", "disc_layers", "gan_loss", "crop_size",
    "batch_size", "steps", "warmup", "g_params", "d_params", "train_step_s", "train_steps_per_s",
    "inference_s_per_image", "g_forward_flops", "d_forward_flops", "train_step_flops", "inference_flops",
    "train_gflops_per_s", "inference_gflops_per_s",
)


# ---------------------------------------------------------------------------
# FLOP counting
# ---------------------------------------------------------------------------

_COUNTED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _layer_flops(layer, input_shape, output_shape):
    """FLOPs of one call of a counted layer, from the shapes it saw (see the module docstring)."""
    kernel = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # kernel (K_h, K_w, C_out, C_in); per input pixel.
        k_h, k_w, c_out, c_in = kernel
        batch, height, width = input_shape[0], input_shape[1], input_shape[2]
        return 2 * k_h * k_w * c_in * c_out * batch * height * width
    if isinstance(layer, keras.layers.Conv2D):
        # kernel (K_h, K_w, C_in / groups, C_out); per output pixel.
        k_h, k_w, c_in_per_group, c_out = kernel
        batch, height, width = output_shape[0], output_shape[1], output_shape[2]
        return 2 * k_h * k_w * c_in_per_group * c_out * batch * height * width
    # Dense: kernel (C_in, C_out), applied at every position of the leading axes.
    c_in, c_out = kernel
    positions = int(np.prod(input_shape[:-1], dtype=np.int64))
    return 2 * c_in * c_out * positions


def _named_layers(layer, prefix=""):
    """``(path, layer)`` for every layer nested in ``layer`` (depth first), paths like ``info_accum_0/conv_3_d5``."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, path + "/")


def _concrete_shape(shape):
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"conv_flops: an input shape needs a batch axis and at least one more axis, got {shape}")
    if any(d is not None and (not isinstance(d, (int, np.integer)) or d < 1) for d in shape):
        raise ValueError(f"conv_flops: input shape dimensions must be positive integers (or None for the batch), "
                         f"got {shape}")
    if any(d is None for d in shape[1:]):
        raise ValueError(f"conv_flops: only the batch dimension may be None, got {shape}")
    return tuple(1 if d is None else int(d) for d in shape)


def conv_flops_by_layer(model, input_shape):
    """Per-call FLOPs of the convolutions and dense layers of ``model`` for an input of ``input_shape``.

    ``input_shape`` includes the batch axis (``None`` counts as 1), e.g.
    ``(1, 256, 256, 3)``; for a model with several inputs, a list of shapes.
    The shapes each layer sees are recorded by running ``model`` once on
    zeros (``training=False``), so padding, nested sublayers and every
    spatial size are exactly those of a real call; the layers' own ``call``
    is wrapped for that run only. Returns a list of ``(layer path, FLOPs)``
    in call order (a layer called twice appears twice).
    """
    if isinstance(input_shape, list):
        inputs = [np.zeros(_concrete_shape(s), np.float32) for s in input_shape]
    else:
        inputs = np.zeros(_concrete_shape(input_shape), np.float32)
    counted = [(path, layer) for path, layer in _named_layers(model) if isinstance(layer, _COUNTED)]
    records = []

    def recording(path, layer, call):
        def call_and_record(x, *args, **kwargs):
            y = call(x, *args, **kwargs)
            records.append((path, _layer_flops(layer, tuple(x.shape), tuple(y.shape))))
            return y

        return call_and_record

    try:
        for path, layer in counted:
            object.__setattr__(layer, "call", recording(path, layer, layer.call))
        model(inputs, training=False)
    finally:
        for _, layer in counted:
            layer.__dict__.pop("call", None)
    return records


def conv_flops(model, input_shape):
    """Total FLOPs of one forward pass of ``model`` on ``input_shape`` (see :func:`conv_flops_by_layer`), an int."""
    return int(sum(flops for _, flops in conv_flops_by_layer(model, input_shape)))


def training_step_flops(g_forward, d_forward):
    """FLOPs of one GAN training step: ``3 F_G + 7 F_D`` (derivation in the module docstring)."""
    return 3 * g_forward + 7 * d_forward


# ---------------------------------------------------------------------------
# Benchmark
# ---------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_string("generator", "pix2pix", "Generator row: pix2pix (UNet-8), unet5, unet5_infoaccum15, "
                        "unet5_infoaccum15_subpix, endec5, or any {unet|endec}N[_infoaccumL][_subpix].")
    flags.DEFINE_integer("gen_filters", 64, "Generator width of the first level (pix2pix: 64).", lower_bound=1)
    flags.DEFINE_integer("levels", 0, "Override the generator's levels N (0: the row's own).", lower_bound=0,
                         upper_bound=8)
    flags.DEFINE_integer("disc_filters", 64, "PatchGAN width of the first layer (pix2pix: 64).", lower_bound=1)
    flags.DEFINE_integer("disc_layers", 5, "PatchGAN layers (the paper: 5).", lower_bound=2)
    flags.DEFINE_enum("gan_loss", "lsgan", ["lsgan", "bce"], "Adversarial loss.")
    flags.DEFINE_integer("crop_size", 256, "Crop side in pixels.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 10, "Timed steps.", lower_bound=1)
    flags.DEFINE_integer("warmup", 2, "Untimed steps after tracing.", lower_bound=0)


def machine_description():
    """CPU count, platform, Python / TensorFlow / Keras versions and the devices TensorFlow sees."""
    return {
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
    }


def run_benchmark(generator="pix2pix", gen_filters=64, levels=0, disc_filters=64, disc_layers=5, gan_loss="lsgan",
                  crop_size=256, batch_size=1, steps=10, warmup=2, report=print):
    """Builds G and D, times a training step and inference, counts FLOPs; returns the JSON dict.

    ``report`` receives each human-readable line as it is produced.
    """
    overrides = {"base_filters": gen_filters}
    if levels:
        overrides["levels"] = levels
    config = pix2pix.generator_config(generator, **overrides)
    if pix2pix.patchgan_output_size(crop_size, disc_layers) < 1:
        raise ValueError(f"a {crop_size} px crop is too small for a {disc_layers}-layer PatchGAN "
                         f"(its output would be empty); use a larger crop_size or fewer disc_layers")
    machine = machine_description()
    report("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    report(f"config: {generator} {config}; PatchGAN {disc_layers} layers, {disc_filters} filters; {gan_loss}; "
           f"{crop_size}x{crop_size} crops, batch {batch_size}")

    keras.utils.set_random_seed(0)
    g = pix2pix.build_generator(config)
    d = pix2pix.build_patchgan(base_filters=disc_filters, num_layers=disc_layers, norm="batch")
    g_params, d_params = memd.count_params(g), memd.count_params(d)
    report(f"params G {g_params:>14,}")
    report(f"params D {d_params:>14,}")

    image_shape = (batch_size, crop_size, crop_size, 3)
    g_flops = conv_flops(g, image_shape)
    d_flops = conv_flops(d, [image_shape, image_shape])
    step_flops = training_step_flops(g_flops, d_flops)

    data = random_pair_batch(crop_size, batch_size)
    trainer = GANTrainer(g, d, gan_loss=gan_loss, l1_weight=100.0)
    trainer.compile(g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
                    d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5), jit_compile=False)
    trainer.set_stage(stages.gan_strategy("GAN")[0])
    trainer.reset_optimizer(2e-4)
    step = tf.function(trainer.train_step)
    step_s = median_seconds(lambda: [v.numpy() for v in step(data).values()], steps, warmup)
    infer = tf.function(lambda x: g(x, training=False))
    infer_s = median_seconds(lambda: infer(data[0]).numpy(), steps, warmup) / batch_size

    report(f"train step          {step_s * 1000:10.1f} ms   {1 / step_s:8.2f} steps/s   "
           f"{batch_size / step_s:8.2f} crops/s  (median of {steps} after {warmup} warm-up)")
    report(f"inference per image {infer_s * 1000:10.1f} ms   {1 / infer_s:8.2f} images/s")
    report(f"FLOPs G forward     {g_flops / 1e9:10.3f} G")
    report(f"FLOPs D forward     {d_flops / 1e9:10.3f} G  (one call)")
    report(f"FLOPs train step    {step_flops / 1e9:10.3f} G  (3 F_G + 7 F_D)  {step_flops / step_s / 1e9:8.1f} GFLOP/s")
    report(f"FLOPs inference     {g_flops / batch_size / 1e9:10.3f} G per image  "
           f"{g_flops / batch_size / infer_s / 1e9:8.1f} GFLOP/s")
    return {
        "machine": machine,
        "generator": generator,
        "gen_filters": gen_filters,
        "levels": config.levels,
        "disc_filters": disc_filters,
        "disc_layers": disc_layers,
        "gan_loss": gan_loss,
        "crop_size": crop_size,
        "batch_size": batch_size,
        "steps": steps,
        "warmup": warmup,
        "g_params": g_params,
        "d_params": d_params,
        "train_step_s": step_s,
        "train_steps_per_s": 1 / step_s,
        "inference_s_per_image": infer_s,
        "g_forward_flops": g_flops,
        "d_forward_flops": d_flops,
        "train_step_flops": step_flops,
        "inference_flops": g_flops // batch_size,
        "train_gflops_per_s": step_flops / step_s / 1e9,
        "inference_gflops_per_s": g_flops / batch_size / infer_s / 1e9,
    }


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")

    try:
        pix2pix.generator_config(FLAGS.generator)
    except ValueError as exc:
        raise app.UsageError(f"--generator: {exc}") from None
    if pix2pix.patchgan_output_size(FLAGS.crop_size, FLAGS.disc_layers) < 1:
        raise app.UsageError(f"--crop_size={FLAGS.crop_size} is too small for a {FLAGS.disc_layers}-layer PatchGAN "
                             f"(its output would be empty)")
    result = run_benchmark(
        generator=FLAGS.generator, gen_filters=FLAGS.gen_filters, levels=FLAGS.levels,
        disc_filters=FLAGS.disc_filters, disc_layers=FLAGS.disc_layers, gan_loss=FLAGS.gan_loss,
        crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size, steps=FLAGS.steps, warmup=FLAGS.warmup,
        report=lambda line: print(line, flush=True),
    )
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
