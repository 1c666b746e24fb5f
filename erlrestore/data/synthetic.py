"""Synthetic degradations (rain, real-streak rain, heavy rain, haze, noise) in TensorFlow.

One implementation serves tests, demos, the ``erlrestore-synth`` tool and
training on your own clean photos (``pipeline.synthetic_source``): every
degradation is a pure TensorFlow function ::

    degraded = add_rain(clean, seed, density=0.05, ...)

* ``clean``: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1] (the rank
  must be known when the function is traced; height and width may be
  dynamic, as in a ``tf.data`` pipeline of decoded files).
* ``seed``: a shape-[2] integer tensor, list or array, the seed of
  TensorFlow's *stateless* random ops. The same ``(clean, seed, params)``
  always gives the same result, and the functions keep no Python state, so
  they run eagerly, under ``tf.function`` and inside ``tf.data.Dataset.map``.
  A single image and a batch of one with the same seed give the same result.
* The result has the input's shape, is float32 and is clipped to [0, 1].

Parameters are Python numbers or ``(low, high)`` pairs. A pair is sampled
uniformly from the seed: *per image* for photometric quantities (density,
brightness, beta, airlight, sigma, peak) and *per call* for the streak
geometry (length, angle, width), so all images of one batch share a rain
direction, as one scene does. In a ``tf.data`` pipeline each element is its
own call, so every image gets its own geometry.

Models (the details each function's docstring gives):

* rain: linear additive ``O = B + S`` with one achromatic streak layer ``S``.
* haze: atmospheric scattering ``I = J t + A (1 - t)``, ``t = exp(-beta d)``
  with a depth proxy ``d`` (we have no depth maps).
* heavy rain (Li, Cheong and Tan, CVPR 2019):
  ``I = T (J + sum_i S_i) + (1 - T) A`` with several streak layers.
* Gaussian noise, sigma on the 0-255 scale (the denoising literature's
  convention); Poisson-Gaussian noise (shot noise + read noise, Foi et al.).
* real rain (``real_rain``): the additive model ``O = B + sum_i t_i S_i``
  with ``k`` *rendered* streak layers ``S_i`` taken from a folder of streak
  images (e.g. Garg and Nayar's photorealistic streak database), the way
  the de-raining literature composites its training sets; ``real_heavy_rain``
  puts them behind the heavy-rain veil ``I = T (J + sum_i t_i S_i) + (1 - T) A``.

Real streaks (``add_real_rain``, ``add_real_heavy_rain``):

* The folder (``streaks=``, ``--streak_dir`` on the command lines) is decoded
  once into a :class:`StreakBank`, an in-memory uint8 stack of grey layers
  zero-padded to the largest height and width, each addressed within its own
  size (Garg-Nayar: 825 layers of 320 x 536-600 px, 158 MB). Grey PNGs are
  expected; RGB files are converted to grey (BT.601 luma); ``load_streaks``
  can keep an evenly spaced subset (``max_layers``). A missing or empty
  folder, an unreadable or truncated file and a layer under
  ``MIN_STREAK_SIZE`` (32) px on a side are DataErrors naming the folder or
  file. ``make_degradation`` loads the folder once; the stack is captured by
  the graph (never embedded as a constant), so it works inside ``tf.data``.
* Everything is drawn per image (images of a batch get independent rain).
  Per image: ``k`` uniform in ``streak_layers`` (default 1-4, light to
  moderate rain; ``real_heavy_rain`` 4-12, dense rain). Per layer: a uniform
  pick among the bank's layers, a scale in ``scale`` (default 1-3: the
  rendered streaks are 10-40 px long at 320 px high; literature composites
  often up-scale up to x4), a horizontal flip with probability 1/2 (which
  mirrors the streak direction), a random whole-pixel position (a
  crop of the scaled layer where it covers the image, else the layer tiled
  with a random phase, so any image size works), a Gaussian blur sigma in
  ``streak_blur`` (default 0-1 px) and a transparency ``t_i`` in
  ``transparency`` (default 0.25-0.45).
* ``mix_procedural`` (a probability; 0 for ``real_rain``, 0.5 for
  ``real_heavy_rain``) adds one procedural streak layer of ``add_rain`` to
  that share of the images, which widens the range of directions and shapes.
* Vectorised: all used layers of a batch are rendered together by gathers
  (bilinear, separable) and one depthwise blur, so the cost follows the
  number of layers drawn. :func:`real_streak_layers` returns the layers and
  every draw (a hook for tests and diagnostics).

``procedural_images`` draws clean-looking synthetic photos for demos and tests,
and ``synthesize_folder`` (behind the ``erlrestore-synth`` console script)
writes a paired ``input/`` + ``target/`` folder set.
"""

import inspect
import math
import os

import numpy as np
import tensorflow as tf

from erlrestore.data import camera_noise
from erlrestore.data import rain_synthesis
from erlrestore.data import image_files
from erlrestore.data.image_files import DataError
from erlrestore.progress import progress

__all__ = [
    "add_rain",
    "add_haze",
    "add_heavy_rain",
    "add_real_rain",
    "add_real_heavy_rain",
    "real_streak_layers",
    "load_streaks",
    "StreakBank",
    "add_gaussian_noise",
    "add_poisson_gaussian_noise",
    "DEGRADATIONS",
    "make_degradation",
    "check_params",
    "required_params",
    "procedural_images",
    "derive_seed",
    "synthesize_folder",
]

# Relative depth of the nearest scene point in the built-in depth proxies
# (the farthest is 1). Keeping it above 0 means even the foreground is seen
# through some air, so a very large beta drives the whole image to the airlight.
NEAR_DEPTH = 0.1

# Side of the low-resolution noise grid that is upsampled into the smooth
# random depth variation.
_DEPTH_NOISE_GRID = 4

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

# synthesize_folder: copy k of image i uses the seed (seed, i * MAX_COPIES + k).
MAX_COPIES = 10_000


# ---------------------------------------------------------------------------
# Argument handling
# ---------------------------------------------------------------------------


def _as_batch(clean, fn_name):
    """Converts ``clean`` to a float32 [B, H, W, 3] tensor; returns it and the input rank."""
    x = tf.convert_to_tensor(clean)
    if not x.dtype.is_floating:
        raise ValueError(
            f"{fn_name} expects float images in [0, 1], got dtype {x.dtype.name}; convert "
            "integer images first (e.g. tf.image.convert_image_dtype)"
        )
    x = tf.cast(x, tf.float32)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"{fn_name} expects an [H, W, 3] image or a [B, H, W, 3] batch, got shape {x.shape}"
        )
    if x.shape[-1] is not None and x.shape[-1] != 3:
        raise ValueError(f"{fn_name} expects 3 (RGB) channels last, got shape {x.shape}")
    if rank == 3:
        x = x[tf.newaxis]
    return x, rank


def _restore_rank(batch, rank):
    out = tf.clip_by_value(batch, 0.0, 1.0)
    return out[0] if rank == 3 else out


def _as_seed(seed, fn_name):
    """The stateless seed as a shape-[2] int64 tensor."""
    s = tf.convert_to_tensor(seed)
    if not s.dtype.is_integer:
        raise ValueError(f"{fn_name}: seed must be a shape-[2] integer tensor, got dtype {s.dtype.name}")
    if s.shape.rank is not None and s.shape.as_list() not in ([2], [None]):
        raise ValueError(f"{fn_name}: seed must have shape [2], got {s.shape}")
    return tf.cast(s, tf.int64)


def _split(seed, count):
    """``count`` independent shape-[2] seeds derived from ``seed`` (rows of a [count, 2] tensor)."""
    return tf.random.experimental.stateless_split(seed, num=count)


def _as_range(name, value, low=None, high=None, low_open=False):
    """Validates a number or (low, high) pair; returns (low, high) floats."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a number or a (low, high) pair, got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        lo = hi = float(value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value
    ):
        lo, hi = float(value[0]), float(value[1])
        if lo > hi:
            raise ValueError(f"{name} range must be (low, high) with low <= high, got {value!r}")
    else:
        raise ValueError(f"{name} must be a number or a (low, high) pair of numbers, got {value!r}")
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name} must be finite, got {value!r}")
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
        if lo < low or (low_open and lo <= low):
            raise ValueError(f"{name} must be {bounds[-1]}, got {value!r}")
    if high is not None and hi > high:
        raise ValueError(f"{name} must be <= {high:g}, got {value!r}")
    return lo, hi


def _check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _sample(bounds, seed, shape):
    """A float32 tensor of ``shape``: the constant ``low`` or uniform in [low, high)."""
    lo, hi = bounds
    if lo == hi:
        return tf.fill(shape, tf.constant(lo, tf.float32))
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi, dtype=tf.float32)


def _per_image(value, shape_batch):
    return tf.reshape(value, [shape_batch, 1, 1, 1])


# ---------------------------------------------------------------------------
# Rain streaks
# ---------------------------------------------------------------------------


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
        density=_PARAM_CHECKS["density"](density),
        length=_PARAM_CHECKS["length"](length),
        angle=_PARAM_CHECKS["angle"](angle),
        streak_width=_PARAM_CHECKS["width"](width),
        brightness=_PARAM_CHECKS["brightness"](brightness),
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


# ---------------------------------------------------------------------------
# Haze
# ---------------------------------------------------------------------------

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
    beta = _PARAM_CHECKS["beta"](beta)
    airlight = _PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    seeds = _split(seed, 2)
    t = _transmission(x, seeds[0], beta, depth, depth_variation)
    a = _per_image(_sample(airlight, seeds[1], [tf.shape(x)[0]]), tf.shape(x)[0])
    return _restore_rank(x * t + a * (1.0 - t), rank)


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
    beta = _PARAM_CHECKS["beta"](beta)
    airlight = _PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    seeds = _split(seed, 3)
    shape = tf.shape(x)
    streaks = _streak_layers(shape[0], shape[1], shape[2], seeds[0], **ranges)
    total = tf.reduce_sum(streaks, axis=-1, keepdims=True)
    t = _transmission(x, seeds[1], beta, depth, depth_variation)
    a = _per_image(_sample(airlight, seeds[2], [shape[0]]), shape[0])
    return _restore_rank(t * (x + total) + (1.0 - t) * a, rank)


# ---------------------------------------------------------------------------
# Real (rendered) rain-streak layers
# ---------------------------------------------------------------------------

# Streak layers smaller than this (height or width, pixels) are refused: tiled
# over a photo they repeat visibly, and a folder of tiny files is more likely
# the wrong folder than a streak database.
MIN_STREAK_SIZE = 32

# The most layers one image can get (``streak_layers``' high end). Every used
# layer costs a few [H, W] float32 planes while it is rendered.
MAX_STREAK_LAYERS = 32

# Grey from RGB streak layers: ITU-R BT.601 luma.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _streak_grey(image):
    """A float32 [H, W, 3] RGB image in [0, 1] (read_image's output) as grey uint8 [H, W].

    Grey files come out of read_image as three equal channels and are kept
    as they are; colour layers are converted with BT.601 luma weights.
    """
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2]):
        grey = image[..., 0]
    else:
        grey = image @ _LUMA
    return np.rint(np.clip(grey, 0.0, 1.0) * 255.0).astype(np.uint8)


class StreakBank:
    """Rain-streak layers decoded once and held in memory as one uint8 stack.

    ``layers`` is a uint8 numpy array ``[N, H_max, W_max]``: layer ``i``
    fills ``layers[i, :sizes[i, 0], :sizes[i, 1]]`` and the rest is zero padding
    up to the largest height and width (the 825 Garg-Nayar layers of
    ``derain-train/streaks``, 320 px high and 536-600 px wide, take
    825 x 320 x 600 bytes = 158 MB). Sampling never reads the padding: every
    layer is addressed within its own size (``sizes``, int32 ``[N, 2]``,
    height and width). ``names`` says where each layer came from and
    ``source`` the folder (or ``"<arrays>"``).

    Build one with :func:`load_streaks` (a folder) or from arrays:
    ``StreakBank([a, b, ...])`` takes 2-D grey or ``[H, W, 3]`` RGB arrays,
    uint8 or float in [0, 1] (RGB is converted to grey with BT.601 luma
    weights, float is rounded to 8 bits). A layer smaller than
    ``min_size`` on either side, or not an image array, raises DataError
    naming it.
    """

    def __init__(self, images, names=None, *, source="<arrays>", min_size=MIN_STREAK_SIZE):
        images = list(images)
        if not images:
            raise DataError(f"no rain-streak layers in {source}")
        names = [f"layer {i}" for i in range(len(images))] if names is None else [str(n) for n in names]
        if len(names) != len(images):
            raise ValueError(f"{len(names)} names for {len(images)} streak layers")
        greys = []
        for name, image in zip(names, images):
            array = np.asarray(image)
            if array.ndim == 3 and array.shape[-1] == 1:
                array = array[..., 0]
            if array.ndim == 3 and array.shape[-1] == 3:
                if array.dtype == np.uint8:
                    array = array.astype(np.float32) / np.float32(255.0)
                array = _streak_grey(array.astype(np.float32))
            elif array.ndim != 2:
                raise DataError(f"rain-streak layer {name} has shape {array.shape}; expected a grey [H, W] or "
                                "RGB [H, W, 3] image")
            elif array.dtype != np.uint8:
                if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
                    raise DataError(f"rain-streak layer {name} must be uint8 or finite floats in [0, 1], "
                                    f"got dtype {array.dtype}")
                array = np.rint(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
            height, width = array.shape
            if height < min_size or width < min_size:
                raise DataError(
                    f"rain-streak layer {name} is {width}x{height} pixels (width x height); layers must be at "
                    f"least {min_size}x{min_size}"
                )
            greys.append(array)
        sizes = np.array([g.shape for g in greys], np.int32)
        stack = np.zeros((len(greys), int(sizes[:, 0].max()), int(sizes[:, 1].max())), np.uint8)
        for i, grey in enumerate(greys):
            stack[i, : grey.shape[0], : grey.shape[1]] = grey
        self.layers = stack
        self.sizes = sizes
        self.names = tuple(names)
        self.source = str(source)
        self._tensors = None

    @property
    def count(self):
        return int(self.layers.shape[0])

    def tensors(self):
        """``(layers, sizes)`` as host-memory (CPU) tensors, made once.

        Made eagerly even when first asked for inside a ``tf.function`` or a
        ``tf.data`` map (``tf.init_scope``), so graphs capture the one copy
        instead of embedding a constant.
        """
        if self._tensors is None:
            with tf.init_scope(), tf.device("/CPU:0"):
                self._tensors = (tf.constant(self.layers), tf.constant(self.sizes))
        return self._tensors

    def __repr__(self):
        return (f"StreakBank({self.source!r}: {self.count} layers, up to {self.layers.shape[1]}x"
                f"{self.layers.shape[2]} px, {self.layers.nbytes / 1e6:.0f} MB)")


def load_streaks(folder, max_layers=0, *, min_size=MIN_STREAK_SIZE):
    """Decodes the rain-streak images of ``folder`` into a :class:`StreakBank`.

    Every image file directly in ``folder`` (the extensions of
    :func:`erlrestore.data.image_files.list_images`) is one layer, read with
    :func:`erlrestore.data.image_files.read_image`: 8-bit grey PNGs are expected;
    RGB layers are converted to grey (BT.601 luma), alpha is dropped and 16-bit
    files are rounded to 8 bits. ``max_layers > 0`` keeps that many, evenly
    spaced in sorted file order (so a cap still spans every drop and kind of
    a database sorted by name); 0 keeps all.

    Raises DataError naming the folder or file for a missing folder, a
    folder without images, an unreadable, truncated or undecodable image, and
    a layer smaller than ``min_size`` pixels on a side.
    """
    folder = os.fspath(folder)
    max_layers = _check_int("max_layers", max_layers, 0)
    try:
        paths = image_files.list_images(folder)
    except DataError as error:
        raise DataError(f"rain-streak folder: {error}") from None
    if 0 < max_layers < len(paths):
        paths = [paths[(i * len(paths)) // max_layers] for i in range(max_layers)]
    images = []
    for path in paths:
        try:
            images.append(_streak_grey(image_files.read_image(path)))
        except DataError as error:
            raise DataError(f"bad rain-streak layer in {folder}: {error}") from None
    return StreakBank(images, paths, source=folder, min_size=min_size)


def _check_streaks(value):
    if isinstance(value, StreakBank):
        return value
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        return value
    raise ValueError(
        f"streaks must be a folder of rain-streak images or a StreakBank (load_streaks), got {value!r}"
    )


def as_streak_bank(streaks):
    """``streaks`` as a :class:`StreakBank`: itself, or a folder loaded with :func:`load_streaks`."""
    _check_streaks(streaks)
    return streaks if isinstance(streaks, StreakBank) else load_streaks(streaks)


def _check_int_range(name, value, low, high):
    """An integer or (low, high) pair of integers (integral floats accepted) as an (int, int) pair."""
    lo, hi = _as_range(name, value, low, high)
    if lo != int(lo) or hi != int(hi):
        raise ValueError(f"{name} must be an integer or a (low, high) pair of integers, got {value!r}")
    return int(lo), int(hi)


def _check_probability(name, value):
    lo, hi = _as_range(name, value, 0.0, 1.0)
    if lo != hi:
        raise ValueError(f"{name} must be a single probability in [0, 1], got {value!r}")
    return lo


def _real_ranges(streak_layers, transparency, scale, streak_blur):
    return dict(
        streak_layers=_PARAM_CHECKS["streak_layers"](streak_layers),
        transparency=_PARAM_CHECKS["transparency"](transparency),
        scale=_PARAM_CHECKS["scale"](scale),
        streak_blur=_PARAM_CHECKS["streak_blur"](streak_blur),
    )


def _axis_sampling(out_len, length, scale, phase, flip=None):
    """Source indices and weights along one axis for ``real_streak_layers``.

    Slot ``m`` shows its layer (``length[m]`` pixels along this axis) scaled
    by ``scale[m]``: output pixel ``p`` (of ``out_len``) samples the layer at
    ``(offset + p + 0.5) / scale - 0.5`` (pixel centres), bilinearly between
    the two returned indices. ``offset`` is a whole number of output pixels
    drawn from ``phase`` in [0, 1): where the scaled layer covers the output
    it is a random crop that stays inside the layer (indices clamped at the
    edges), else a random phase of the layer tiled periodically (indices
    wrap). A whole offset keeps ``scale == 1`` an exact copy (weights 0).
    ``flip`` mirrors the indices (a horizontally flipped layer).

    Returns ``(i0, i1, weight_of_i1)``, ``[M, out_len]`` each.
    """
    n = tf.cast(length, tf.float32)
    span = scale * n
    out = tf.cast(out_len, tf.float32)
    fits = span >= out
    room = tf.where(fits, tf.floor(span - out) + 1.0, tf.maximum(tf.floor(span), 1.0))
    offset = tf.floor(phase * room)
    pos = tf.range(out_len, dtype=tf.float32)
    src = (offset[:, tf.newaxis] + pos[tf.newaxis, :] + 0.5) / scale[:, tf.newaxis] - 0.5
    base = tf.floor(src)
    frac = src - base
    i0 = tf.cast(base, tf.int32)
    i1 = i0 + 1
    size = length[:, tf.newaxis]
    wrap0, wrap1 = tf.math.floormod(i0, size), tf.math.floormod(i1, size)
    clamp0, clamp1 = tf.clip_by_value(i0, 0, size - 1), tf.clip_by_value(i1, 0, size - 1)
    i0 = tf.where(fits[:, tf.newaxis], clamp0, wrap0)
    i1 = tf.where(fits[:, tf.newaxis], clamp1, wrap1)
    if flip is not None:
        i0 = tf.where(flip[:, tf.newaxis], size - 1 - i0, i0)
        i1 = tf.where(flip[:, tf.newaxis], size - 1 - i1, i1)
    return i0, i1, frac


def _draw_real_streaks(batch, height, width, seed, streaks, streak_layers, transparency, scale, streak_blur):
    """The draws of ``real_streak_layers`` and the rendered used layers.

    Returns ``(draws, used, planes)``: ``draws`` the dict of per-slot draws
    (``[B, K]``, see ``real_streak_layers``), ``used`` the ``[M, 2]``
    (image, slot) pairs of the used slots in row-major order, and ``planes``
    their layers, float32 ``[M, W, H]`` (transposed: the cheap layout of the
    column gather). Only used slots are rendered, so the cost follows ``k``.
    """
    bank = as_streak_bank(streaks)
    ranges = _real_ranges(streak_layers, transparency, scale, streak_blur)
    (k_lo, k_hi), blur = ranges["streak_layers"], ranges["streak_blur"]
    layers_t, sizes_t = bank.tensors()
    seeds = _split(seed, 7)
    slots = k_hi
    if k_lo == k_hi:
        count = tf.fill([batch], tf.constant(k_hi, tf.int32))
    else:
        count = tf.random.stateless_uniform([batch], seeds[0], minval=k_lo, maxval=k_hi + 1, dtype=tf.int32)
    active = tf.range(slots)[tf.newaxis, :] < count[:, tf.newaxis]
    draws = dict(
        count=count,
        index=tf.random.stateless_uniform([batch, slots], seeds[1], minval=0, maxval=bank.count, dtype=tf.int32),
        scale=_sample(ranges["scale"], seeds[2], [batch, slots]),
        flip=tf.random.stateless_uniform([batch, slots], seeds[3]) < 0.5,
        transparency=tf.where(active, _sample(ranges["transparency"], seeds[4], [batch, slots]), 0.0),
        sigma=_sample(blur, seeds[5], [batch, slots]),
    )
    phase = tf.random.stateless_uniform([batch, slots, 2], seeds[6])
    used = tf.cast(tf.where(active), tf.int32)  # [M, 2]
    m_index = tf.gather_nd(draws["index"], used)
    m_scale = tf.gather_nd(draws["scale"], used)
    m_phase = tf.gather_nd(phase, used)

    radius = _gaussian_1d(blur[1])[1] if blur[1] > 0 else 0
    out_h, out_w = height + 2 * radius, width + 2 * radius
    sizes = tf.gather(sizes_t, m_index)
    r0, r1, fy = _axis_sampling(out_h, sizes[:, 0], m_scale, m_phase[:, 0])
    c0, c1, fx = _axis_sampling(out_w, sizes[:, 1], m_scale, m_phase[:, 1], tf.gather_nd(draws["flip"], used))
    with tf.device(layers_t.device):  # gather next to the bank, never copy it to an accelerator
        which = tf.broadcast_to(m_index[:, tf.newaxis], tf.shape(r0))
        top = tf.gather_nd(layers_t, tf.stack([which, r0], axis=-1))  # [M, out_h, W_max] uint8
        bottom = tf.gather_nd(layers_t, tf.stack([which, r1], axis=-1))
    # Rows first, then transposed so the column gather reads whole rows (a last-axis gather is slow).
    fy = fy[:, tf.newaxis, :]
    rows = (tf.cast(tf.transpose(top, [0, 2, 1]), tf.float32) * (1.0 - fy)
            + tf.cast(tf.transpose(bottom, [0, 2, 1]), tf.float32) * fy)  # [M, W_max, out_h]
    fx = fx[:, :, tf.newaxis]
    left = tf.gather(rows, c0, axis=1, batch_dims=1)
    right = tf.gather(rows, c1, axis=1, batch_dims=1)
    planes = (left * (1.0 - fx) + right * fx) / 255.0  # [M, out_w, out_h]
    if radius:
        taps = tf.range(-radius, radius + 1, dtype=tf.float32)
        s = tf.maximum(tf.reshape(tf.gather_nd(draws["sigma"], used), [-1, 1]), 1e-6)  # sigma 0: a delta
        g = tf.exp(-0.5 * tf.square(taps[tf.newaxis, :] / s))
        g = tf.transpose(g / tf.reduce_sum(g, axis=1, keepdims=True))  # [taps, M]
        x = tf.transpose(planes, [1, 2, 0])[tf.newaxis]  # [1, out_w, out_h, M]
        x = tf.nn.depthwise_conv2d(x, g[:, tf.newaxis, :, tf.newaxis], [1, 1, 1, 1], "VALID")
        x = tf.nn.depthwise_conv2d(x, g[tf.newaxis, :, :, tf.newaxis], [1, 1, 1, 1], "VALID")
        planes = tf.transpose(x[0], [2, 0, 1])  # [M, W, H]
    return draws, used, tf.clip_by_value(planes, 0.0, 1.0)


def real_streak_layers(batch, height, width, seed, streaks, *, streak_layers=(1, 4), transparency=(0.25, 0.45),
                       scale=(1, 3), streak_blur=(0, 1)):
    """Samples the real streak layers of a batch (the part of :func:`add_real_rain` before compositing).

    Each image ``b`` has ``K`` slots (``K`` = the high end of
    ``streak_layers``) of which the first ``count[b]`` (uniform in the
    ``streak_layers`` range) are used. Every slot draws, independently and
    uniformly: a layer of the bank, a scale, a horizontal flip (probability
    1/2), a position (see ``_axis_sampling``: a random crop of the scaled
    layer where it covers the image, else the layer tiled with a random
    phase), a Gaussian blur sigma (pixels of the output) and a transparency.
    The scaled layer is resampled bilinearly (scale 1 at a whole-pixel
    position copies the pixels exactly); the blur is separable, over a margin
    of the layer around the image, so borders are blurred like the middle.
    All of it is per image: images of a batch get independent rain.

    Returns a dict of tensors:
      ``layers``: float32 ``[B, H, W, K]`` in [0, 1], the used slots' grey
        layers ``S_i`` (0 in unused slots, which are not rendered);
      ``transparency``: float32 ``[B, K]``, ``t_i`` (0 in unused slots);
      ``count``: int32 ``[B]``, the layers used ``k``;
      ``index``: int32 ``[B, K]``, the bank layer of each slot;
      ``scale``, ``sigma``: float32 ``[B, K]``; ``flip``: bool ``[B, K]``.

    ``add_real_rain(clean, seed, ...)`` adds exactly ``sum_i t_i S_i`` (the
    sum over the last axis) of ``real_streak_layers(..., seed, ...)`` with
    the same seed and ranges, plus its optional procedural layer.
    ``streaks`` is a :class:`StreakBank` (a folder path is loaded on every
    call; load it once with :func:`load_streaks`).
    """
    seed = _as_seed(seed, "real_streak_layers")
    draws, used, planes = _draw_real_streaks(batch, height, width, seed, streaks, streak_layers, transparency,
                                             scale, streak_blur)
    slots = draws["index"].shape[1]
    dense = tf.scatter_nd(used, planes, tf.stack([batch, slots, width, height]))
    return dict(layers=tf.transpose(dense, [0, 3, 2, 1]), **draws)


def _real_rain(x, seed, bank, real, mix, procedural):
    """The rain ``sum_i t_i S_i`` (+ the procedural layer of the images that draw it), ``[B, H, W, 1]``."""
    shape = tf.shape(x)
    draws, used, planes = _draw_real_streaks(shape[0], shape[1], shape[2], seed, bank, **real)
    weighted = planes * tf.gather_nd(draws["transparency"], used)[:, tf.newaxis, tf.newaxis]
    rain = tf.math.unsorted_segment_sum(weighted, used[:, 0], shape[0])  # [B, W, H]
    rain = tf.transpose(rain, [0, 2, 1])[..., tf.newaxis]
    if mix > 0:
        seeds = _split(tf.random.experimental.stateless_fold_in(seed, 1), 2)
        chosen = tf.random.stateless_uniform([shape[0]], seeds[0]) < mix

        def add_procedural():
            streaks = _streak_layers(shape[0], shape[1], shape[2], seeds[1], **procedural)
            return rain + streaks * tf.cast(chosen, tf.float32)[:, tf.newaxis, tf.newaxis, tf.newaxis]

        rain = tf.cond(tf.reduce_any(chosen), add_procedural, lambda: rain)
    return rain


def add_real_rain(clean, seed, *, streaks, streak_layers=(1, 4), transparency=(0.25, 0.45), scale=(1, 3),
                  streak_blur=(0, 1), mix_procedural=0.0, density=(0.005, 0.03), length=(15, 40),
                  angle=(-15, 15), width=(1, 2), brightness=(0.3, 0.7), blur=0.5):
    """Adds rendered (real) rain streaks: ``O = clip(B + sum_i t_i S_i, 0, 1)``.

    ``S_i`` are ``k`` layers from a folder of rendered streak images (e.g.
    Garg and Nayar's database in ``derain-train/streaks``), each picked at
    random, up-scaled, flipped, positioned and blurred at random (see
    :func:`real_streak_layers`), and added to all three channels with
    transparency ``t_i``. Optionally (``mix_procedural``) an image also gets
    one procedural streak layer of :func:`add_rain` on top, which widens the
    range of streak shapes and directions.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1], any size
        (layers are cropped, or tiled when the image is larger).
      seed: shape-[2] integer stateless seed.
      streaks: a folder of streak images or a :class:`StreakBank`
        (:func:`load_streaks`; :func:`make_degradation` loads a folder
        once). Required.
      streak_layers: ``k``, the layers per image (integer, or a (low, high)
        pair sampled per image, both ends included; at most
        ``MAX_STREAK_LAYERS``). 1-2 is light rain, 8 or more dense rain.
      transparency: ``t_i`` in [0, 1], drawn per layer (default
        [0.25, 0.45], the usual range of the compositing literature).
      scale: up-scaling of the layers (> 0), drawn per layer; 1 keeps the
        rendered streaks (about 10-40 px long in the 320-px-high layers),
        3 makes them three times as long and wide. Below 1 the resampling is
        bilinear without anti-aliasing (thin streaks alias); prefer >= 1.
      streak_blur: Gaussian sigma in output pixels (>= 0), drawn per layer:
        slight defocus.
      mix_procedural: probability in [0, 1] that an image also gets one
        procedural streak layer (drawn per image; 0: never).
      density, length, angle, width, brightness, blur: that procedural
        layer, as in :func:`add_rain` (used only with ``mix_procedural``).

    Every range is sampled from ``seed`` per image (per layer for the layer
    parameters); the procedural layer's geometry is per call, as in
    :func:`add_rain`.
    """
    x, rank = _as_batch(clean, "add_real_rain")
    seed = _as_seed(seed, "add_real_rain")
    real = _real_ranges(streak_layers, transparency, scale, streak_blur)
    procedural = _rain_ranges(density, length, angle, width, brightness, blur)
    mix = _PARAM_CHECKS["mix_procedural"](mix_procedural)
    bank = as_streak_bank(streaks)
    return _restore_rank(x + _real_rain(x, seed, bank, real, mix, procedural), rank)


def add_real_heavy_rain(clean, seed, *, streaks, streak_layers=(4, 12), transparency=(0.25, 0.45),
                        scale=(1, 3), streak_blur=(0, 1), mix_procedural=0.5, density=(0.005, 0.03),
                        length=(15, 40), angle=(-15, 15), width=(1, 2), brightness=(0.3, 0.7), blur=0.5,
                        beta=(0.3, 1.0), airlight=(0.7, 0.9), depth="gradient", depth_variation=0.2,
                        veil_share=1.0):
    """Heavy real rain: :func:`add_real_rain`'s streaks behind the rain veil of :func:`add_heavy_rain`.

    ``I = T (J + sum_i t_i S_i) + (1 - T) A``: the streaks (more layers by
    default, half of the images with a procedural layer too) are attenuated
    with the scene by the veil's transmission ``T = exp(-beta d)`` (the
    depth proxies of :func:`add_haze`) and the grey atmospheric light ``A``
    fills in. The defaults make a milder veil than :func:`add_heavy_rain`'s
    (beta 0.3-1.0 rather than 0.8-1.6).

    Args: those of :func:`add_real_rain`, ``beta``, ``airlight``, ``depth``,
    ``depth_variation`` as in :func:`add_haze`, and ``veil_share``: the
    probability that an image gets the veil at all (drawn per image; the
    others are plain real rain, ``T = 1``). With a wide ``streak_layers``
    range and ``veil_share < 1`` one source covers light to heavy rain.
    """
    x, rank = _as_batch(clean, "add_real_heavy_rain")
    seed = _as_seed(seed, "add_real_heavy_rain")
    real = _real_ranges(streak_layers, transparency, scale, streak_blur)
    procedural = _rain_ranges(density, length, angle, width, brightness, blur)
    mix = _PARAM_CHECKS["mix_procedural"](mix_procedural)
    beta = _PARAM_CHECKS["beta"](beta)
    airlight = _PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    veil_share = _PARAM_CHECKS["veil_share"](veil_share)
    bank = as_streak_bank(streaks)
    seeds = _split(seed, 3)
    rain = _real_rain(x, seeds[0], bank, real, mix, procedural)
    t = _transmission(x, seeds[1], beta, depth, depth_variation)
    batch = tf.shape(x)[0]
    if veil_share < 1:
        veiled = tf.random.stateless_uniform([batch], tf.random.experimental.stateless_fold_in(seeds[2], 1))
        t = tf.where((veiled < veil_share)[:, tf.newaxis, tf.newaxis, tf.newaxis], t, tf.ones_like(t))
    a = _per_image(_sample(airlight, seeds[2], [batch]), batch)
    return _restore_rank(t * (x + rain) + (1.0 - t) * a, rank)


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------


def add_gaussian_noise(clean, seed, *, sigma=25.0):
    """Adds white Gaussian noise, independent per pixel and channel.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      sigma: standard deviation on the 0-255 scale (>= 0), the denoising
        literature's convention (sigma = 15, 25, 50); the noise added to
        [0, 1] images has std ``sigma / 255``. A (low, high) pair is sampled
        per image (blind denoising).

    The result is clipped to [0, 1], which lowers the effective std near
    black and white.
    """
    x, rank = _as_batch(clean, "add_gaussian_noise")
    seed = _as_seed(seed, "add_gaussian_noise")
    sigma = _as_range("sigma", sigma, 0.0)
    seeds = _split(seed, 2)
    batch = tf.shape(x)[0]
    std = _per_image(_sample(sigma, seeds[0], [batch]), batch) / 255.0
    noise = tf.random.stateless_normal(tf.shape(x), seeds[1], dtype=tf.float32)
    return _restore_rank(x + std * noise, rank)


def add_poisson_gaussian_noise(clean, seed, *, peak=50.0, sigma=5.0):
    """Adds signal-dependent Poisson-Gaussian noise (shot noise + read noise).

    The sensor model of Foi et al. (2008)::

        y = Poisson(peak * x) / peak + N(0, (sigma / 255)^2)

    ``peak`` is the expected photon count of a white pixel (smaller is
    darker light and noisier); the shot noise has variance ``x / peak``. The
    Poisson counts are *sampled exactly* with ``tf.random.stateless_poisson``
    (no Gaussian approximation), independently per pixel and channel, then
    Gaussian read noise with std ``sigma / 255`` is added. Result clipped.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      peak: photons at white (> 0); a (low, high) pair is sampled per image.
      sigma: read-noise std on the 0-255 scale (>= 0); may be a pair.
    """
    x, rank = _as_batch(clean, "add_poisson_gaussian_noise")
    seed = _as_seed(seed, "add_poisson_gaussian_noise")
    peak = _as_range("peak", peak, 0.0, low_open=True)
    sigma = _as_range("sigma", sigma, 0.0)
    seeds = _split(seed, 4)
    batch = tf.shape(x)[0]
    photons = _per_image(_sample(peak, seeds[0], [batch]), batch)
    std = _per_image(_sample(sigma, seeds[1], [batch]), batch) / 255.0
    lam = tf.maximum(x, 0.0) * photons
    counts = tf.random.stateless_poisson(tf.shape(x), seeds[2], lam, dtype=tf.float32)
    read = tf.random.stateless_normal(tf.shape(x), seeds[3], dtype=tf.float32)
    return _restore_rank(counts / photons + std * read, rank)


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------

# One validator per parameter name; a name means the same in every degradation.
_PARAM_CHECKS = {
    "density": lambda v: _as_range("density", v, 0.0, 1.0),
    "length": lambda v: _as_range("length", v, 1.0),
    "angle": lambda v: _as_range("angle", v, -90.0, 90.0),
    "width": lambda v: _as_range("width", v, 0.0, low_open=True),
    "brightness": lambda v: _as_range("brightness", v, 0.0),
    "blur": lambda v: _check_blur(v),
    "layers": lambda v: _check_int("layers", v, 1),
    "beta": lambda v: _as_range("beta", v, 0.0),
    "airlight": lambda v: _as_range("airlight", v, 0.0, 1.0),
    "depth": lambda v: _check_depth(v, 0.0),
    "depth_variation": lambda v: _as_range("depth_variation", v, 0.0),
    "sigma": lambda v: _as_range("sigma", v, 0.0),
    "peak": lambda v: _as_range("peak", v, 0.0, low_open=True),
    "streaks": lambda v: _check_streaks(v),
    "streak_layers": lambda v: _check_int_range("streak_layers", v, 1, MAX_STREAK_LAYERS),
    "transparency": lambda v: _as_range("transparency", v, 0.0, 1.0),
    "scale": lambda v: _as_range("scale", v, 0.0, 16.0, low_open=True),
    "streak_blur": lambda v: _as_range("streak_blur", v, 0.0, 5.0),
    "mix_procedural": lambda v: _check_probability("mix_procedural", v),
    "veil_share": lambda v: _check_probability("veil_share", v),
    "gaussian_share": lambda v: _check_probability("gaussian_share", v),
    "read_sigma": lambda v: _as_range("read_sigma", v, 0.0),
    "spatial_correlation": lambda v: _check_probability("spatial_correlation", v),
    "channel_correlation": lambda v: _check_probability("channel_correlation", v),
    "jpeg_quality": lambda v: _as_range("jpeg_quality", v, 1.0, 100.0),
    "density_level": lambda v: rain_synthesis.check_density_level(v),
    "reference_size": lambda v: rain_synthesis.check_reference_size(v),
    "directions": lambda v: rain_synthesis.check_directions(v),
    "procedural_layers": lambda v: rain_synthesis.check_procedural_layers(v),
    "rain_attenuation": lambda v: rain_synthesis.check_rain_attenuation(v),
    "min_rain_depth": lambda v: rain_synthesis.check_min_rain_depth(v),
}


def parse_params(text):
    """Degradation parameters from text: ``"name=value;name=low,high;..."`` -> dict.

    Values are numbers, ``low,high`` pairs (a range) or words (``depth=gradient``);
    the training command's ``--degradation_params`` uses this. Whether the
    names and values suit a degradation is :func:`check_params`' job.
    """
    params = {}
    for item in filter(None, (part.strip() for part in (text or "").split(";"))):
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"degradation parameters look like name=value;name=low,high, got {item!r}")
        parts = [_number(v.strip()) for v in value.split(",")]
        if len(parts) > 2:
            raise ValueError(f"{name}: a value or a low,high pair, got {value!r}")
        params[name] = parts[0] if len(parts) == 1 else tuple(parts)
    return params


def _number(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text

DEGRADATIONS = {
    "rain": add_rain,
    "heavy_rain": add_heavy_rain,
    "haze": add_haze,
    "gaussian_noise": add_gaussian_noise,
    "poisson_gaussian_noise": add_poisson_gaussian_noise,
    "real_rain": add_real_rain,
    "real_heavy_rain": add_real_heavy_rain,
    "camera_noise": camera_noise.add_camera_noise,
    "dense_rain": rain_synthesis.add_dense_rain,
    "real_dense_rain": rain_synthesis.add_real_dense_rain,
    "rain_haze": rain_synthesis.add_rain_haze,
    "rain_cityscapes": rain_synthesis.add_rain_cityscapes,
}

# How to give a required parameter, for the error when it is missing.
_REQUIRED_HELP = {
    "streaks": "a folder of rain-streak images (erlrestore-synth / erlrestore-train: --streak_dir) or a StreakBank",
}


def degradation_params(name):
    """The keyword parameters of degradation ``name`` and their defaults, as a dict.

    A required parameter (``streaks`` of the real-streak degradations) has
    the default ``inspect.Parameter.empty``; see :func:`required_params`.
    """
    fn = _lookup(name)
    return {
        p.name: p.default
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def _lookup(name):
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; valid names: {', '.join(DEGRADATIONS)}")
    return DEGRADATIONS[name]


def required_params(name):
    """The parameters degradation ``name`` cannot do without (``("streaks",)`` for real_rain), a tuple."""
    return tuple(k for k, v in degradation_params(name).items() if v is inspect.Parameter.empty)


def check_params(name, **params):
    """Raises ValueError for an unknown degradation, unknown parameters or bad values.

    Loads nothing (a ``streaks`` folder is only checked to be a path) and
    does not require the required parameters: it validates flags one at a
    time.
    """
    _lookup(name)
    valid = degradation_params(name)
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {', '.join(unknown)} for degradation {name!r}; "
            f"valid parameters: {', '.join(valid)}"
        )
    for key, value in params.items():
        _PARAM_CHECKS[key](value)


def make_degradation(name, **params):
    """``degrade(clean, seed)`` applying degradation ``name`` with ``params``.

    Unknown names and parameters raise ValueError listing the valid ones;
    parameter values are checked here too, so mistakes surface before a
    pipeline starts, and so is a missing required parameter. A ``streaks``
    folder is loaded here, once (:func:`load_streaks`; DataError naming the
    folder or file for a bad one), and the loaded :class:`StreakBank` is
    what ``degrade`` uses and ``degrade.params`` holds.
    """
    fn = _lookup(name)
    check_params(name, **params)  # check values now, not at the first batch
    missing = [key for key in required_params(name) if key not in params]
    if missing:
        raise ValueError(f"degradation {name!r} needs " + "; ".join(
            f"{key}= ({_REQUIRED_HELP.get(key, 'no default')})" for key in missing))
    if "streaks" in params:
        params["streaks"] = as_streak_bank(params["streaks"])

    def degrade(clean, seed):
        return fn(clean, seed, **params)

    degrade.__name__ = f"{name}_degradation"
    degrade.__doc__ = f"{fn.__name__}(clean, seed, **{params!r})"
    degrade.name = name
    degrade.params = dict(params)
    return degrade


# ---------------------------------------------------------------------------
# Procedural clean images
# ---------------------------------------------------------------------------


def _procedural_image(seed, index, height, width):
    """One synthetic "photo"; depends only on (seed, index, height, width)."""
    rng = np.random.default_rng([seed, index])
    scale = float(max(height, width))
    yy, xx = np.meshgrid(
        (np.arange(height) + 0.5) / scale, (np.arange(width) + 0.5) / scale, indexing="ij"
    )
    # Background: a two-colour gradient along a random direction ...
    c0, c1 = rng.uniform(0.1, 0.9, size=(2, 3))
    phi = rng.uniform(0, 2 * np.pi)
    s = xx * np.cos(phi) + yy * np.sin(phi)
    s = (s - s.min()) / max(s.max() - s.min(), 1e-9)
    image = c0 * (1 - s[..., None]) + c1 * s[..., None]
    # ... with soft low-frequency shading.
    for _ in range(2):
        f = rng.uniform(0.5, 2.0, size=2) * 2 * np.pi
        image += rng.uniform(0.03, 0.08) * np.sin(f[0] * xx + f[1] * yy + rng.uniform(0, 6.3))[..., None]

    # Shapes with anti-aliased edges: alpha = clip(0.5 - signed distance in pixels, 0, 1).
    for _ in range(int(rng.integers(3, 7))):
        kind = rng.choice(["disk", "ellipse", "rectangle"])
        cx, cy = rng.uniform(0.05, 0.95, size=2) * np.array([width, height]) / scale
        size = rng.uniform(0.08, 0.3)
        rot = rng.uniform(0, np.pi)
        qx = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
        qy = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
        if kind == "disk":
            sd = np.hypot(qx, qy) - size
        elif kind == "ellipse":
            a, b = size, size * rng.uniform(0.3, 0.9)
            sd = (np.hypot(qx / a, qy / b) - 1.0) * b
        else:
            a, b = size, size * rng.uniform(0.3, 1.0)
            sd = np.maximum(np.abs(qx) - a, np.abs(qy) - b)
        alpha = np.clip(0.5 - sd * scale, 0.0, 1.0)[..., None]
        colour = rng.uniform(0.05, 0.95, size=3)
        shade = 1.0 + 0.25 * np.clip(qy / size, -1, 1)[..., None]  # lit from one side
        fill = colour * shade
        texture = rng.choice(["flat", "stripes", "checker"])
        period = rng.uniform(3.0, 10.0) / scale  # pixels -> normalised units
        if texture == "stripes":
            fill = fill * (1.0 + 0.2 * np.sin(2 * np.pi * qx / period))[..., None]
        elif texture == "checker":
            check = (np.floor(qx / period) + np.floor(qy / period)) % 2
            fill = fill * (0.85 + 0.3 * check)[..., None]
        image = image * (1 - alpha) + fill * alpha
    # Fine, low-amplitude texture (paper/film grain look), smooth enough to stay "clean".
    grain = rng.normal(0.0, 1.0, size=(height, width, 1))
    grain = 0.25 * (grain + np.roll(grain, 1, 0) + np.roll(grain, 1, 1) + np.roll(grain, (1, 1), (0, 1)))
    image += 0.01 * grain
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def procedural_images(count, height, width, seed=0):
    """``count`` clean-looking synthetic photos, ``[count, height, width, 3]`` float32 in [0, 1].

    Each has a two-colour background gradient with soft shading, 3-6 shapes
    (disks, ellipses, rotated rectangles) with anti-aliased edges, side
    shading and stripe/checker textures, and faint smoothed grain. NumPy,
    deterministic: image ``i`` depends only on ``(seed, i, height, width)``,
    so ``procedural_images(5, ...)[:2]`` equals ``procedural_images(2, ...)``.
    ``seed`` is a non-negative integer.
    """
    count = _check_int("count", count, 0)
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    seed = _check_int("seed", seed, 0)
    out = np.empty((count, height, width, 3), np.float32)
    for i in range(count):
        out[i] = _procedural_image(seed, i, height, width)
    return out


# ---------------------------------------------------------------------------
# Paired folder synthesis (erlrestore-synth)
# ---------------------------------------------------------------------------


def derive_seed(seed, index, copy=0):
    """The stateless seed ``[seed, index * MAX_COPIES + copy]`` of copy ``copy`` of image ``index``.

    A given image and copy gets the same degradation whatever the number of
    copies requested, so a run with more copies extends a smaller one.
    """
    if not 0 <= copy < MAX_COPIES:
        raise ValueError(f"copy must be in [0, {MAX_COPIES}), got {copy}")
    return np.array([seed, index * MAX_COPIES + copy], dtype=np.int64)


def _check_output_dir(output_dir, overwrite):
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise DataError(f"output folder {output_dir} exists and is not a folder")
        entries = os.listdir(output_dir)
        if entries and not overwrite:
            raise DataError(
                f"output folder {output_dir} is not empty ({len(entries)} entries); choose an empty "
                "folder or pass overwrite=True (--overwrite) to write into it"
            )


def _clean_sources(clean_dir, procedural, size, seed):
    """(names, loader) where loader(i) returns clean image i."""
    if (clean_dir is None) == (not procedural):
        raise ValueError("give exactly one of clean_dir and procedural (a number of images > 0)")
    if clean_dir is not None:
        paths = image_files.list_images(clean_dir)
        stems = {}
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem in stems:
                raise DataError(
                    f"{stems[stem]} and {path} have the same name stem {stem!r}; both would be "
                    f"written as {stem}.png"
                )
            stems[stem] = path
        return list(stems), lambda i: image_files.read_image(paths[i])
    count = _check_int("procedural", procedural, 1)
    height, width = size
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    digits = max(4, len(str(count - 1)))
    names = [f"procedural_{i:0{digits}d}" for i in range(count)]
    return names, lambda i: _procedural_image(seed, i, height, width)


def synthesize_folder(output_dir, degradation, *, clean_dir=None, procedural=0, size=(256, 256),
                      params=None, seed=0, copies=1, overwrite=False, bit_depth=8,
                      show_progress=True):
    """Writes a paired data set in the ``folders`` layout and returns its pairs.

    For every clean image (the images of ``clean_dir``, or ``procedural``
    generated ones of ``size = (height, width)``) and every copy ``k`` it
    writes ``output_dir/target/<name>.png`` (the clean image) and
    ``output_dir/input/<name>.png`` (the degraded one), where ``<name>`` is
    the clean file's stem, or ``<stem>_<k>`` (k zero-padded, from 0) when
    ``copies > 1``. Copy ``k`` of image ``i`` (in sorted file order) uses
    the seed :func:`derive_seed` ``(seed, i, k)``; procedural image ``i`` is
    ``procedural_images(..., seed)[i]``.

    Args:
      output_dir: destination folder; created if missing. A non-empty folder
        raises DataError unless ``overwrite`` (then files with the same names
        are replaced and other files are left alone).
      degradation: a name in DEGRADATIONS.
      clean_dir / procedural: the clean source (exactly one).
      size: (height, width) of procedural images.
      params: degradation parameters (see make_degradation).
      seed: non-negative integer base seed.
      copies: degraded variants per clean image (1 to MAX_COPIES).
      bit_depth: 8 or 16 bits per channel in the PNGs.
      show_progress: draw a progress bar on stderr.

    Returns:
      The list of ``(input_path, target_path)`` written, in order.

    Raises:
      ValueError for bad arguments (unknown degradation or parameter), and
      DataError (naming the file or folder) for unreadable clean images,
      clashing names or a non-empty output folder.
    """
    output_dir = os.fspath(output_dir)
    seed = _check_int("seed", seed, 0)
    copies = _check_int("copies", copies, 1)
    if copies > MAX_COPIES:
        raise ValueError(f"copies must be <= {MAX_COPIES}, got {copies}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    degrade = make_degradation(degradation, **(params or {}))
    names, load = _clean_sources(clean_dir, procedural, size, seed)
    _check_output_dir(output_dir, overwrite)

    # One trace for all image sizes; the seed is a tensor so it never retraces.
    graph_fn = tf.function(
        degrade,
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([2], tf.int64),
        ],
    )
    input_dir = os.path.join(output_dir, "input")
    target_dir = os.path.join(output_dir, "target")
    os.makedirs(input_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    digits = len(str(copies - 1))
    written = []
    items = range(len(names))
    if show_progress:
        items = progress(items, total=len(names), desc=f"synth {degradation}")
    for i in items:
        clean = load(i)
        for k in range(copies):
            name = names[i] if copies == 1 else f"{names[i]}_{k:0{digits}d}"
            degraded = graph_fn(tf.constant(clean), tf.constant(derive_seed(seed, i, k))).numpy()
            input_path = os.path.join(input_dir, name + ".png")
            target_path = os.path.join(target_dir, name + ".png")
            image_files.write_image(target_path, clean, bit_depth)
            image_files.write_image(input_path, degraded, bit_depth)
            written.append((input_path, target_path))
    return written
