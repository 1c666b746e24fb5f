"""Procedural rain streaks: ``rain`` (``O = B + S``) and ``heavy_rain`` (Li, Cheong and Tan, CVPR 2019).

* rain: the linear additive model ``O = B + S`` with one achromatic streak
  layer ``S``: sparse random drops smeared by an anti-aliased line
  (motion-blur) kernel.
* heavy rain: ``I = T (J + sum_i S_i) + (1 - T) A`` with several streak
  layers behind the rain veil of :mod:`~erlrestore.data.degradations.haze`.

The streak machinery here (``_streak_layers``, ``_line_kernels``, ``_smear``)
also draws the procedural layers of the real-streak and dense-rain
degradations, which take the streak parameters declared here.
"""

import math

import numpy as np
import tensorflow as tf

from erlrestore.data.degradations import haze
from erlrestore.data.degradations.common import (
    _as_batch,
    _as_range,
    _as_seed,
    _check_int,
    _per_image,
    _restore_rank,
    _sample,
    _split,
)
from erlrestore.data.degradations.haze import _check_depth, _transmission

# Streak drops have a random intensity in [_MIN_DROP_INTENSITY, 1] (drops at
# different distances and sizes are not equally bright).
_MIN_DROP_INTENSITY = 0.5

# Streak smearing (``_smear``) scatters the sparse drops while the number of
# (drop, kernel tap) products is at most this many times the canvas size, and
# uses an FFT correlation above it (dense rain). The break-even point of the
# two, measured on a 2-vCPU AMD EPYC VM with TF 2.21 CPU for 320x480 to
# 1024x1024 images and 10-40 px streaks, lies near 1.
_SCATTER_MAX_WORK = 1.0

# An FFT-correlated streak layer is set to exactly 0 below this value: there
# no drop reaches the pixel (up to the FFT's round-off, about 1e-6) or its
# contribution is invisible, and zeros stay zeros as with a direct sum.
_FFT_ZERO = 1e-5


# The parameters declared here: one procedural streak layer (per layer with ``layers``).
PARAM_CHECKS = {
    "density": lambda v: _as_range("density", v, 0.0, 1.0),
    "length": lambda v: _as_range("length", v, 1.0),
    "angle": lambda v: _as_range("angle", v, -90.0, 90.0),
    "width": lambda v: _as_range("width", v, 0.0, low_open=True),
    "brightness": lambda v: _as_range("brightness", v, 0.0),
    "blur": lambda v: _check_blur(v),
    "layers": lambda v: _check_int("layers", v, 1),
}


def _gaussian_1d(sigma):
    radius = max(1, int(math.ceil(3.0 * sigma)))
    r = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (r / sigma) ** 2)
    return (g / g.sum()).astype(np.float32), radius


def _line_kernels(lengths, angles_deg, widths, radius, blur):
    """Anti-aliased line (motion-blur) kernels, one per streak layer.

    Returns a ``[k, k, n]`` float32 tensor, ``k = 2 * radius + 1``. Kernel
    ``i`` holds, for every pixel centre, how much of it a segment of length
    ``lengths[i]`` and width ``widths[i]`` through the kernel centre covers:
    ``clip((width + 1) / 2 - distance_to_the_axis_segment, 0, 1)``. The axis
    segment is ``length - 1`` long, so a vertical kernel of length L and width
    1 sums to exactly L. The direction is ``angles_deg[i]`` degrees from
    vertical, positive turning the lower end to the right (+x). With
    ``blur > 0`` the kernel is convolved with a Gaussian of that sigma
    (pixels), which softens the streak edges (defocus) and keeps its sum.
    """
    r = tf.range(-radius, radius + 1, dtype=tf.float32)
    yy, xx = tf.meshgrid(r, r, indexing="ij")
    yy, xx = yy[..., tf.newaxis], xx[..., tf.newaxis]
    theta = angles_deg * (math.pi / 180.0)
    dx, dy = tf.sin(theta), tf.cos(theta)
    half = tf.maximum(lengths - 1.0, 0.0) / 2.0
    along = tf.clip_by_value(xx * dx + yy * dy, -half, half)
    dist = tf.sqrt(tf.square(xx - along * dx) + tf.square(yy - along * dy))
    kernels = tf.clip_by_value((widths + 1.0) / 2.0 - dist, 0.0, 1.0)
    if blur > 0:
        g, _ = _gaussian_1d(blur)
        n = tf.shape(kernels)[-1]
        k4 = kernels[tf.newaxis]
        gy = tf.tile(tf.reshape(g, [-1, 1, 1, 1]), [1, 1, n, 1])
        gx = tf.tile(tf.reshape(g, [1, -1, 1, 1]), [1, 1, n, 1])
        k4 = tf.nn.depthwise_conv2d(k4, gy, [1, 1, 1, 1], "SAME")
        k4 = tf.nn.depthwise_conv2d(k4, gx, [1, 1, 1, 1], "SAME")
        kernels = k4[0]
    return kernels


def _fft_lengths():
    """The 5-smooth numbers (2^a 3^b 5^c) up to 2^24: FFT lengths TensorFlow transforms fast."""
    limit, out = 1 << 24, []
    p2 = 1
    while p2 <= limit:
        p3 = p2
        while p3 <= limit:
            p5 = p3
            while p5 <= limit:
                out.append(p5)
                p5 *= 5
            p3 *= 3
        p2 *= 2
    return np.array(sorted(out), np.int32)


_FFT_LENGTHS = _fft_lengths()


def _fft_length(n):
    """The smallest fast FFT length >= ``n`` (a scalar int32 tensor); ``n`` itself past the table."""
    table = tf.constant(_FFT_LENGTHS)
    pos = tf.searchsorted(table, tf.reshape(n, [1]), side="left")[0]
    return tf.where(pos < tf.size(table), tf.gather(table, tf.minimum(pos, tf.size(table) - 1)), n)


def _smear_sparse(hit, intensity, kernels, radius):
    """``_smear`` as a sum over the drops: each adds its weighted kernel taps to the output.

    With the drops at flat positions ``p`` of the ``[B, Hp, Wp, L]`` canvas,
    the 'VALID' correlation output pixel ``(b, i, j, l)`` for ``j < W`` sits at
    the canvas' own flat position ``q = ((b Hp + i) Wp + j) L + l`` and receives
    drop ``p = q + (dy Wp + dx) L`` through tap ``(dy, dx)``; ``j + dx`` never
    passes the canvas row, so the flat arithmetic is exact for every output we
    keep. Targets below 0 are dropped by ``unsorted_segment_sum``; the others
    land in the canvas-shaped sum, of which ``[:H, :W]`` is returned. Only the
    nonzero taps of each layer's kernel are used (a line kernel is mostly 0).
    """
    shape = tf.shape(hit, out_type=tf.int64)
    layers, canvas_w = shape[3], shape[2]
    flat_hit = tf.reshape(hit, [-1])
    pos = tf.where(flat_hit)[:, 0]  # [N] flat canvas positions of the drops, in order
    values = tf.gather(tf.reshape(intensity, [-1]), pos)
    layer = pos % layers

    # Per-layer tables of the nonzero taps, padded to the longest with weight 0.
    by_layer = tf.transpose(kernels, [2, 0, 1])  # [L, k, k]
    taps = tf.where(by_layer > 0)  # [M, 3]: (layer, dy, dx), grouped by layer
    counts = tf.reduce_sum(tf.cast(by_layer > 0, tf.int64), axis=[1, 2])
    slot = tf.range(tf.shape(taps, out_type=tf.int64)[0]) - tf.gather(
        tf.cumsum(counts, exclusive=True), taps[:, 0]
    )
    table_shape = tf.stack([layers, tf.reduce_max(counts)])
    cells = tf.stack([taps[:, 0], slot], axis=1)
    weights = tf.scatter_nd(cells, tf.gather_nd(by_layer, taps), table_shape)
    offsets = tf.scatter_nd(cells, (taps[:, 1] * canvas_w + taps[:, 2]) * layers, table_shape)

    target = pos[:, tf.newaxis] - tf.gather(offsets, layer)  # [N, T]
    update = values[:, tf.newaxis] * tf.gather(weights, layer)
    total = tf.math.unsorted_segment_sum(
        tf.reshape(update, [-1]), tf.reshape(target, [-1]), tf.reduce_prod(shape)
    )
    out = tf.reshape(total, shape)
    return out[:, : shape[1] - 2 * radius, : shape[2] - 2 * radius, :]


def _smear_fft(hit, intensity, kernels, radius):
    """``_smear`` as a circular correlation through 2-D real FFTs.

    A 'VALID' output ``(i, j)`` reads the canvas at ``(i + dy, j + dx)``, never
    past its last row or column, so a circular correlation over any period
    at least the canvas size gives the same values there: the canvas is
    zero-padded only up to the next fast FFT length (``_fft_length``). Values
    at or below ``_FFT_ZERO`` are set to 0.
    """
    drops = tf.where(hit, intensity, tf.zeros_like(intensity))
    shape = tf.shape(drops)
    lengths = tf.stack([_fft_length(shape[1]), _fft_length(shape[2])])
    canvas_f = tf.signal.rfft2d(tf.transpose(drops, [0, 3, 1, 2]), fft_length=lengths)
    kernel_f = tf.signal.rfft2d(tf.transpose(kernels, [2, 0, 1]), fft_length=lengths)
    out = tf.signal.irfft2d(canvas_f * tf.math.conj(kernel_f), fft_length=lengths)
    out = tf.transpose(out[:, :, : shape[1] - 2 * radius, : shape[2] - 2 * radius], [0, 2, 3, 1])
    return tf.where(out > _FFT_ZERO, out, tf.zeros_like(out))


def _smear(hit, intensity, kernels, radius):
    """The drops ``where(hit, intensity, 0)`` ('VALID'-)correlated with one kernel per layer.

    ``hit`` and ``intensity`` are ``[B, H + 2 r, W + 2 r, L]`` canvases and
    ``kernels`` is ``[2 r + 1, 2 r + 1, L]``; the result ``[B, H, W, L]`` is
    the depthwise convolution ``tf.nn.depthwise_conv2d(drops, kernels, 'VALID')``
    computed without its dense ``(2 r + 1)^2`` multiply-adds per pixel: a
    scatter of the few drops' nonzero taps when rain is sparse (the usual case)
    and an FFT correlation when it is dense. Both equal the direct sum up to
    float32 round-off.
    """
    taps = tf.reduce_max(tf.reduce_sum(tf.cast(kernels > 0, tf.int64), axis=[0, 1]))
    work = tf.math.count_nonzero(hit) * taps
    budget = tf.cast(_SCATTER_MAX_WORK * tf.cast(tf.size(hit, out_type=tf.int64), tf.float64), tf.int64)
    return tf.cond(
        work <= budget,
        lambda: _smear_sparse(hit, intensity, kernels, radius),
        lambda: _smear_fft(hit, intensity, kernels, radius),
    )


def _streak_layers(batch, height, width, seed, *, layers, density, length, angle, streak_width,
                   brightness, blur):
    """``layers`` achromatic rain-streak layers, a ``[B, H, W, layers]`` tensor in [0, brightness].

    Each layer: Bernoulli "drops" with a random intensity in [0.5, 1] on a
    canvas padded by the kernel radius, smeared by the layer's line kernel
    (a depthwise correlation, 'VALID': one kernel per layer; see ``_smear``
    for how it is computed), saturated at 1 where streaks overlap, scaled by
    ``brightness``. The canvas padding plus the 'VALID' correlation keeps
    streaks as dense at the borders as in the middle.

    ``density`` is the fraction of pixels the layer covers. For a kernel of
    area ``a`` (the sum of its coverage values) a drop probability
    ``p = 1 - (1 - density) ** (1 / a)`` makes a pixel's chance of lying on
    no streak ``(1 - p) ** a = 1 - density``.
    """
    seeds = _split(seed, 7)
    max_len, max_width = length[1], streak_width[1]
    blur_radius = _gaussian_1d(blur)[1] if blur > 0 else 0
    radius = int(math.ceil((max_len + max_width) / 2.0)) + 1 + blur_radius
    lengths = _sample(length, seeds[0], [layers])
    angles = _sample(angle, seeds[1], [layers])
    widths = _sample(streak_width, seeds[2], [layers])
    kernels = _line_kernels(lengths, angles, widths, radius, blur)  # [k, k, n]
    area = tf.reduce_sum(kernels, axis=[0, 1])  # [n]

    dens = _sample(density, seeds[3], [batch, layers])
    # 1 - (1 - d) ** (1 / a), written with log1p/expm1 for small densities.
    prob = -tf.math.expm1(tf.math.log1p(-tf.minimum(dens, 1.0 - 1e-7)) / area)
    prob = tf.where(dens >= 1.0, tf.ones_like(prob), prob)
    prob = prob[:, tf.newaxis, tf.newaxis, :]
    canvas = [batch, height + 2 * radius, width + 2 * radius, layers]
    u = tf.random.stateless_uniform(canvas, seeds[4], dtype=tf.float32)
    intensity = tf.random.stateless_uniform(canvas, seeds[5], minval=_MIN_DROP_INTENSITY, maxval=1.0)
    streaks = _smear(u < prob, intensity, kernels, radius)
    streaks = tf.clip_by_value(streaks, 0.0, 1.0)
    bright = _sample(brightness, seeds[6], [batch, layers])[:, tf.newaxis, tf.newaxis, :]
    return streaks * bright


def _rain_ranges(density, length, angle, width, brightness, blur, layers=1):
    return dict(
        density=PARAM_CHECKS["density"](density),
        length=PARAM_CHECKS["length"](length),
        angle=PARAM_CHECKS["angle"](angle),
        streak_width=PARAM_CHECKS["width"](width),
        brightness=PARAM_CHECKS["brightness"](brightness),
        blur=_check_blur(blur),
        layers=_check_int("layers", layers, 1),
    )


def _check_blur(blur):
    lo, hi = _as_range("blur", blur, 0.0)
    if lo != hi:
        raise ValueError(f"blur must be a single number, got {blur!r}")
    return lo


def add_rain(clean, seed, *, density=0.05, length=20, angle=-10, width=1, brightness=0.8, blur=0.5):
    """Adds rain streaks with the linear additive model ``O = B + S``.

    ``B`` is the clean background and ``S`` one streak layer, the same on all
    three channels (rain is achromatic: streaks are bright, colourless light).
    ``S`` is built from sparse random drops smeared by a line (motion-blur)
    kernel in a depthwise convolution, saturated at 1 where streaks overlap
    and scaled by ``brightness``; see ``_streak_layers``. The result is
    clipped to [0, 1], so ``O >= B`` everywhere.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      density: fraction of pixels covered by streaks, in [0, 1] (the drop
        probability is derived from it and the kernel's area).
      length: streak length in pixels (>= 1).
      angle: streak direction in degrees from vertical, in [-90, 90];
        positive turns the lower end to the right, so the default -10 is
        rain blown slightly to the left.
      width: streak width in pixels (> 0).
      brightness: peak streak intensity added to the background (>= 0).
      blur: sigma in pixels of a Gaussian defocus of the streaks (>= 0, a
        single number; 0 gives hard anti-aliased lines).

    Any of density/length/angle/width/brightness may be a (low, high) pair
    sampled from ``seed`` (see the module docstring).
    """
    x, rank = _as_batch(clean, "add_rain")
    seed = _as_seed(seed, "add_rain")
    ranges = _rain_ranges(density, length, angle, width, brightness, blur)
    shape = tf.shape(x)
    streaks = _streak_layers(shape[0], shape[1], shape[2], seed, **ranges)
    return _restore_rank(x + streaks, rank)


def add_heavy_rain(clean, seed, *, layers=3, density=0.03, length=(15, 35), angle=(-20, 0),
                   width=(1, 2), brightness=(0.5, 0.9), blur=0.7, beta=(0.8, 1.6),
                   airlight=(0.7, 0.9), depth="gradient", depth_variation=0.2):
    """Adds heavy rain: streaks plus the rain veil (Li, Cheong and Tan, CVPR 2019).

    The model of "Heavy Rain Image Restoration: Integrating Physics Model and
    Conditional Adversarial Learning"::

        I = T * (J + sum_i S_i) + (1 - T) * A

    ``S_i`` are ``layers`` independent streak layers (as in :func:`add_rain`;
    each layer draws its own length, angle and width from the ranges, so
    layers differ in direction and scale), ``T = exp(-beta d)`` the
    transmission of the rain-accumulation veil with the depth proxies of
    :func:`add_haze`, and ``A`` the grey atmospheric light. Streaks are
    attenuated by ``T`` with the scene. ``J + sum S_i`` is not clipped before
    attenuation (the model is linear in radiance); only the result is.

    Args:
      layers: number of streak layers (>= 1).
      density, length, angle, width, brightness, blur: per layer, as in
        :func:`add_rain` (density is each layer's coverage).
      beta, airlight, depth, depth_variation: as in :func:`add_haze`.

    The defaults (ranges) give a different storm for every seed.
    """
    x, rank = _as_batch(clean, "add_heavy_rain")
    seed = _as_seed(seed, "add_heavy_rain")
    ranges = _rain_ranges(density, length, angle, width, brightness, blur, layers)
    beta = haze.PARAM_CHECKS["beta"](beta)
    airlight = haze.PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    seeds = _split(seed, 3)
    shape = tf.shape(x)
    streaks = _streak_layers(shape[0], shape[1], shape[2], seeds[0], **ranges)
    total = tf.reduce_sum(streaks, axis=-1, keepdims=True)
    t = _transmission(x, seeds[1], beta, depth, depth_variation)
    a = _per_image(_sample(airlight, seeds[2], [shape[0]]), shape[0])
    return _restore_rank(t * (x + total) + (1.0 - t) * a, rank)
