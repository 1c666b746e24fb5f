"""Losses as plain functions of tensors (each returns a scalar).

ERL-Net (Wang et al., ICCV 2019):

* ``l1``: the pixel loss ``L_pre = |restored - clean|_1`` (the paper's Eq. 3
  writes the rainy image; the clean target is meant), as a mean over pixels.
* ``feature_loss``: ``L_fre = sum_l |Phi_l(x_r) + R_l(x_r) - Phi_l(x_c)|_1``
  over the entangled levels (one for CLGD, depth + 1 for MLGD), each level's
  term a mean over its elements so levels of different sizes weigh alike
  (our choice; the paper writes a plain L1 norm).
* ``L_ERL = L_pre + lambda * L_fre`` with lambda = 0.01 is assembled by the
  trainer, which owns lambda.

Means are over the local batch; under ``tf.distribute`` the trainer scales
by the replica count.
"""

import tensorflow as tf


def l1(prediction, target):
    """Mean absolute error."""
    return tf.reduce_mean(tf.abs(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def feature_loss(features, target_features):
    """Sum over levels of the mean absolute difference of feature maps."""
    if len(features) != len(target_features):
        raise ValueError(f"{len(features)} feature levels vs {len(target_features)} target levels")
    if not features:
        raise ValueError("feature_loss needs at least one level")
    return tf.add_n([l1(f, t) for f, t in zip(features, target_features)])
