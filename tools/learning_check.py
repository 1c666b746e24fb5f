"""Does a recipe's training data teach anything? A plain residual CNN and the recipe's network, side by side.

    python -m tools.learning_check --train_args=--flagfile=flags/pretrained/rethinking_denoise.flags \\
        --net=plain_cnn --steps=400

Trains one network with the pixel loss (L1, Adam) on exactly the batches
``erlrestore-train`` would draw for the settings in ``--train_args`` (the
same data code, crops, augmentation and seed), and prints, every
``--report_every`` steps, the mean L1 and PSNR (RGB, on the batches just
trained on) of the network's output next to those of its input (the
identity). ``--net=recipe`` trains the recipe's own restoration network
(``final.keras`` of its model family); ``--net=plain_cnn`` trains a plain
residual CNN instead (DnCNN-like: ``--plain_depth`` 3x3 convolutions of
``--plain_width`` channels with batch norm and ReLU, output added to the
input, about 0.17 M parameters at the defaults), which separates "the network
or its objective cannot learn" from "the data carries nothing to learn"
(pairs misaligned, the same degradation on both sides, a target noisier
than its input). When the plain CNN pulls ahead of the identity and the
recipe's network does not, look at the network; when neither does in the
budget given, the budget or the data is the suspect.

This is a diagnosis, not training: nothing is saved, no run folder is made,
the default precision is float32 and the learning rate constant. The figures
it printed for the de-noising recipe are in docs/EXPERIMENTS.md.
"""

import math
import sys
import tempfile
import time

from absl import flags

from erlrestore.cli import entry_point, fail

FLAGS = flags.FLAGS

NETS = ("recipe", "plain_cnn")


def define_flags():
    flags.DEFINE_list("train_args", [], "erlrestore-train arguments that choose the data and the network, "
                      "e.g. --flagfile=flags/pretrained/rethinking_denoise.flags (comma-separated).")
    flags.DEFINE_enum("net", "plain_cnn", NETS, "recipe: the settings' restoration network; plain_cnn: a plain "
                      "residual CNN (see the module docstring).")
    flags.DEFINE_integer("steps", 400, "Optimizer steps.", lower_bound=1)
    flags.DEFINE_integer("report_every", 50, "Print the means of this many steps.", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Adam's learning rate (constant).", lower_bound=0.0)
    flags.DEFINE_integer("plain_width", 48, "Channels of the plain CNN.", lower_bound=1)
    flags.DEFINE_integer("plain_depth", 10, "3x3 convolutions of the plain CNN (at least 2).", lower_bound=2)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16"], "Keras dtype policy.")


def plain_cnn(width=48, depth=10):
    """Image [B, H, W, 3] in [0, 1] -> input + a correction made by ``depth`` 3x3 convolutions."""
    import keras

    image = keras.Input((None, None, 3), name="image")
    h = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(image)
    for _ in range(depth - 2):
        h = keras.layers.Conv2D(width, 3, padding="same", use_bias=False)(h)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
    correction = keras.layers.Conv2D(3, 3, padding="same", dtype="float32")(h)
    return keras.Model(image, keras.layers.Add(dtype="float32")([image, correction]), name="plain_cnn")


def learning_curve(train_args, net="plain_cnn", steps=400, report_every=50, learning_rate=1e-3,
                   plain_width=48, plain_depth=10, log=print):
    """Trains as the module docstring says; returns one dict per report.

    Each report: ``step``, ``l1`` and ``psnr`` of the network's output on
    the last ``report_every`` batches, ``identity_l1`` and ``identity_psnr``
    of their inputs, and ``parameters`` (the trained network's count).
    """
    import numpy as np
    import keras
    import tensorflow as tf

    from erlrestore.training import inputs, settings as train_settings

    settings = train_settings.settings_from_argv(["--model_dir=unused", *train_args])
    train_settings.check_settings(settings)
    if net == "recipe":
        model = settings.model_family.build_networks(settings)["final.keras"]
    else:
        model = plain_cnn(plain_width, plain_depth)
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step(degraded, clean):
        with tf.GradientTape() as tape:
            restored = tf.cast(model(degraded, training=True), tf.float32)
            loss = tf.reduce_mean(tf.abs(restored - clean))
        optimizer.apply(tape.gradient(loss, model.trainable_variables), model.trainable_variables)
        return (loss, tf.reduce_mean(tf.abs(degraded - clean)),
                tf.reduce_mean(tf.square(restored - clean)), tf.reduce_mean(tf.square(degraded - clean)))

    def psnr(mse):
        return 10.0 * math.log10(1.0 / max(mse, 1e-12))

    with tempfile.TemporaryDirectory() as cache_dir:
        make_dataset, _ = inputs.training_data(settings.data, cache_dir=cache_dir)
        reports, window, start = [], [], time.perf_counter()
        for i, (degraded, clean) in enumerate(make_dataset().take(steps)):
            window.append([float(v) for v in step(tf.cast(degraded, tf.float32), tf.cast(clean, tf.float32))])
            if (i + 1) % report_every == 0 or i + 1 == steps:
                l1, identity_l1, mse, identity_mse = np.mean(window, axis=0)
                report = {"step": i + 1, "l1": float(l1), "identity_l1": float(identity_l1),
                          "psnr": psnr(mse), "identity_psnr": psnr(identity_mse),
                          "parameters": model.count_params()}
                reports.append(report)
                log(f"{net} step {i + 1}: L1 {l1:.4f} (identity {identity_l1:.4f}), PSNR {report['psnr']:.2f} dB "
                    f"(identity {report['identity_psnr']:.2f} dB), "
                    f"{(time.perf_counter() - start) / (i + 1):.2f} s/step")
                window = []
    return reports


def main(argv):
    del argv
    import keras

    keras.mixed_precision.set_global_policy(FLAGS.precision)
    try:
        learning_curve(FLAGS.train_args, FLAGS.net, FLAGS.steps, FLAGS.report_every, FLAGS.learning_rate,
                       FLAGS.plain_width, FLAGS.plain_depth)
    except (ValueError, flags.Error, OSError) as error:
        return fail(error)
    return 0


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    sys.exit(run())
