"""Haze: the atmospheric scattering model ``I = J t + A (1 - t)`` over a depth proxy.

``t = exp(-beta d)`` with a relative depth ``d`` from one of the built-in
proxies (``DEPTH_PROXIES``; we have no depth maps) or a depth map you pass.
The transmission and depth helpers also serve the rain veils of
:mod:`~erlrestore.data.degradations.rain`,
:mod:`~erlrestore.data.degradations.real_streaks` and
:mod:`~erlrestore.data.degradations.dense_rain`, which take the veil
parameters declared here.
"""

import tensorflow as tf

from erlrestore.data.degradations.common import (
    _as_batch, _as_range, _as_seed, _per_image, _restore_rank, _sample, _split)

# Relative depth of the nearest scene point in the built-in depth proxies
# (the farthest is 1). Keeping it above 0 means even the foreground is seen
# through some air, so a very large beta drives the whole image to the airlight.
NEAR_DEPTH = 0.1

# Side of the low-resolution noise grid that is upsampled into the smooth
# random depth variation.
_DEPTH_NOISE_GRID = 4


# The parameters declared here (the veil's too, wherever it is used).
PARAM_CHECKS = {
    "beta": lambda v: _as_range("beta", v, 0.0),
    "airlight": lambda v: _as_range("airlight", v, 0.0, 1.0),
    "depth": lambda v: _check_depth(v, 0.0),
    "depth_variation": lambda v: _as_range("depth_variation", v, 0.0),
}


DEPTH_PROXIES = ("gradient", "brightness", "uniform")


def _check_depth(depth, variation):
    if isinstance(depth, str) and depth not in DEPTH_PROXIES or isinstance(depth, (int, float)):
        raise ValueError(
            f"depth must be one of {', '.join(DEPTH_PROXIES)} or a depth map array, got {depth!r}"
        )
    _as_range("depth_variation", variation, 0.0)


def _depth_map(x, depth, variation, seed):
    """A relative depth map ``[B, H, W, 1]`` for the scattering model.

    Proxies (we have no depth):

    * ``"gradient"``: far at the top, near at the bottom, linearly from 1 on
      the top row to ``NEAR_DEPTH`` on the bottom row (outdoor photos
      usually show sky or distant scenery above the ground), plus smooth
      random variation: uniform noise in [-1, 1] on a 4 x 4 grid, upsampled
      bilinearly to the image size, times ``variation``.
    * ``"brightness"``: brighter regions are farther (sky and distant,
      already hazy-looking scenery are bright); the luma downsampled to
      16 x 16 (area average) and upsampled back, mapped to [NEAR_DEPTH, 1],
      plus the same smooth random variation.
    * ``"uniform"``: depth 1 everywhere (homogeneous haze, ``t = exp(-beta)``),
      no random variation.

    The built-in proxies are clipped to [NEAR_DEPTH, 1]. A tensor/array
    depth map (``[H, W]``, ``[H, W, 1]``, ``[B, H, W]`` or ``[B, H, W, 1]``,
    non-negative, in units of your choice: beta is per unit of it) is used
    as given.
    """
    shape = tf.shape(x)
    batch, height, width = shape[0], shape[1], shape[2]
    if not isinstance(depth, str):
        d = tf.cast(tf.convert_to_tensor(depth), tf.float32)
        if d.shape.rank == 2 or (d.shape.rank == 3 and d.shape[-1] != 1):
            d = d[..., tf.newaxis]
        if d.shape.rank == 3:
            d = d[tf.newaxis]
        if d.shape.rank != 4:
            raise ValueError(f"a depth map must be [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1], got {d.shape}")
        return tf.broadcast_to(d, [batch, height, width, 1])
    if depth == "uniform":
        return tf.ones([batch, height, width, 1], tf.float32)
    if depth == "gradient":
        rows = (tf.range(height, dtype=tf.float32) + 0.5) / tf.cast(height, tf.float32)
        base = 1.0 - (1.0 - NEAR_DEPTH) * rows  # top row ~1, bottom row ~NEAR_DEPTH
        base = tf.broadcast_to(base[tf.newaxis, :, tf.newaxis, tf.newaxis], [batch, height, width, 1])
    else:  # brightness
        luma = tf.reduce_sum(x * tf.constant([0.299, 0.587, 0.114], tf.float32), axis=-1, keepdims=True)
        small = tf.image.resize(luma, [16, 16], method="area")
        smooth = tf.image.resize(small, [height, width], method="bilinear")
        base = NEAR_DEPTH + (1.0 - NEAR_DEPTH) * smooth
    lo, hi = _as_range("depth_variation", variation, 0.0)
    seeds = _split(seed, 2)
    amount = _per_image(_sample((lo, hi), seeds[0], [batch]), batch)
    grid = tf.random.stateless_uniform(
        [batch, _DEPTH_NOISE_GRID, _DEPTH_NOISE_GRID, 1], seeds[1], minval=-1.0, maxval=1.0
    )
    noise = tf.image.resize(grid, [height, width], method="bilinear")
    return tf.clip_by_value(base + amount * noise, NEAR_DEPTH, 1.0)


def _transmission(x, seed, beta, depth, depth_variation):
    batch = tf.shape(x)[0]
    seeds = _split(seed, 2)
    b = _per_image(_sample(beta, seeds[0], [batch]), batch)
    d = _depth_map(x, depth, depth_variation, seeds[1])
    return tf.exp(-b * d)


def add_haze(clean, seed, *, beta=1.0, airlight=0.8, depth="gradient", depth_variation=0.2):
    """Adds haze with the atmospheric scattering model ``I = J t + A (1 - t)``.

    ``J`` is the clean scene, ``A`` the (grey) airlight and
    ``t = exp(-beta d)`` the transmission through scattering coefficient
    ``beta`` over relative depth ``d`` (see ``_depth_map`` for the proxies).
    ``beta = 0`` returns the input unchanged; a very large beta drives the
    image to ``A`` (the built-in proxies keep ``d >= NEAR_DEPTH``).

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      beta: scattering coefficient per unit of relative depth (>= 0); 1 gives
        a transmission from about 0.9 at the bottom to 0.37 at the top with
        the gradient proxy.
      airlight: atmospheric light A in [0, 1], the same on all channels
        (RESIDE's convention; a colour cast is not modelled).
      depth: "gradient" (default), "brightness", "uniform", or a depth map.
      depth_variation: amplitude of the smooth random depth variation (>= 0;
        unused for "uniform" and explicit depth maps).

    ``beta``, ``airlight`` and ``depth_variation`` may be (low, high) pairs,
    sampled per image from ``seed``.
    """
    x, rank = _as_batch(clean, "add_haze")
    seed = _as_seed(seed, "add_haze")
    beta = PARAM_CHECKS["beta"](beta)
    airlight = PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    seeds = _split(seed, 2)
    t = _transmission(x, seeds[0], beta, depth, depth_variation)
    a = _per_image(_sample(airlight, seeds[1], [tf.shape(x)[0]]), tf.shape(x)[0])
    return _restore_rank(x * t + a * (1.0 - t), rank)
