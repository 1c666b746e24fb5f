"""Losses as plain functions of tensors (each returns a scalar).

ERL-Net (Wang et al., ICCV 2019):

* ``l1``: the pixel loss ``L_pre = |restored - clean|_1`` (the paper's Eq. 3
  writes the rainy image; the clean target is meant), as a mean over pixels.
* ``feature_loss``: ``L_fre = sum_l |Phi_l(x_r) + R_l(x_r) - Phi_l(x_c)|_1``
  over the entangled levels (one for CLGD, depth + 1 for MLGD), each level's
  term a mean over its elements so levels of different sizes weigh alike
  (our choice; the paper writes a plain L1 norm). ``reduction="mean_mean"``
  averages the level terms instead of summing them (``mean_sum / levels``;
  the same for CLGD's single level). See docs/EXPERIMENTS.md, "ERL-Net:
  readings of the paper".
* ``L_ERL = L_pre + lambda * L_fre`` with lambda = 0.01 is assembled by the
  trainer, which owns lambda.

GAN losses (pix2pix and the rethinking paper's Eq. 16-17) take the
discriminator's raw patch outputs (logits for BCE):

* pix2pix (BCE): ``L_D = 0.5 [BCE(D(x, y), 1) + BCE(D(x, G(x)), 0)]``,
  ``L_G = BCE(D(x, G(x)), 1) + lambda L1`` (lambda = 100);
* LSGAN: ``L_D = 0.5 E[(D(x, y) - 1)^2] + 0.5 E[D(x, G(x))^2]``,
  ``L_G = E[(D(x, G(x)) - 1)^2] + lambda L1``.

``lambda L1`` (or ``lambda MSE``, the trainer's ``pixel_loss="mse"``) is
added by the trainer; the functions here return the adversarial parts.

Means are over the local batch; under ``tf.distribute`` the trainer scales
by the replica count.
"""

import tensorflow as tf


def l1(prediction, target):
    """Mean absolute error."""
    return tf.reduce_mean(tf.abs(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def mse(prediction, target):
    """Mean squared error (the rethinking paper's Table III autoencoders train with it)."""
    return tf.reduce_mean(tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


# The generative family's pixel losses (GANTrainer's ``pixel_loss``).
PIXEL_LOSSES = {"l1": l1, "mse": mse}


# How L_fre reduces: the mean absolute difference of each level's feature
# maps, then summed ("mean_sum", the default) or averaged ("mean_mean") over the levels.
FRE_REDUCTIONS = ("mean_sum", "mean_mean")


def feature_loss(features, target_features, reduction="mean_sum"):
    """The mean absolute difference of each level's feature maps, summed (or averaged) over levels."""
    if reduction not in FRE_REDUCTIONS:
        raise ValueError(f"unknown L_fre reduction {reduction!r}; choose one of {', '.join(FRE_REDUCTIONS)}")
    if len(features) != len(target_features):
        raise ValueError(f"{len(features)} feature levels vs {len(target_features)} target levels")
    if not features:
        raise ValueError("feature_loss needs at least one level")
    total = tf.add_n([l1(f, t) for f, t in zip(features, target_features)])
    if reduction == "mean_mean":
        total = total / float(len(features))
    return total


GAN_LOSSES = ("bce", "lsgan")


def _bce_with_logits(logits, label):
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits))


def discriminator_loss(kind, real_output, fake_output):
    """The discriminator's loss on real pairs (x, y) and generated pairs (x, G(x))."""
    if kind == "bce":
        return 0.5 * (_bce_with_logits(real_output, 1.0) + _bce_with_logits(fake_output, 0.0))
    if kind == "lsgan":
        real = tf.cast(real_output, tf.float32)
        fake = tf.cast(fake_output, tf.float32)
        return 0.5 * tf.reduce_mean(tf.square(real - 1.0)) + 0.5 * tf.reduce_mean(tf.square(fake))
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")


def generator_adversarial_loss(kind, fake_output):
    """The generator's adversarial term on generated pairs (x, G(x))."""
    if kind == "bce":
        return _bce_with_logits(fake_output, 1.0)
    if kind == "lsgan":
        return tf.reduce_mean(tf.square(tf.cast(fake_output, tf.float32) - 1.0))
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {GAN_LOSSES}")
