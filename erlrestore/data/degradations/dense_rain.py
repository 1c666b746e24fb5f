"""Rain synthesis that covers real rain: dense streaks at the image's scale, density levels, veil and depth.

The other degradations (:mod:`erlrestore.data.degradations`) draw thin streaks of a
fixed pixel size and, except for the heavy-rain ones, no veil. Real heavy rain
(Rain100H: input Y-PSNR about 13.4 dB) is dense, long and wide streaks in
several directions that add up to a veil thickening with depth, and a
12-megapixel photo's streaks are ten times longer in pixels than those of a
320-pixel benchmark image. This module adds four degradations, registered in
``registry.DEGRADATIONS`` under these names:

* ``dense_rain``: ``O = B + R``, procedural streaks (:func:`add_dense_rain`);
* ``real_dense_rain``: ``R`` from rendered streak layers (a
  :class:`~erlrestore.data.degradations.real_streaks.StreakBank`) plus procedural ones, with
  an optional veil (:func:`add_real_dense_rain`);
* ``rain_haze``: the heavy rain model of Li, Cheong and Tan (CVPR 2019),
  ``O = T (B + R) + (1 - T) A`` with ``T = exp(-beta d)`` (:func:`add_rain_haze`);
* ``rain_cityscapes``: the depth-aware composition of Hu, Fu, Zhu and Heng
  (RainCityscapes, CVPR 2019), ``O = B (1 - R_d - V) + R_d + A V`` with
  ``R_d = R exp(-alpha max(d_1, d))`` and ``V = 1 - exp(-beta d)``
  (:func:`add_rain_cityscapes`).

Common to all of them:

* **Scale tied to the image** (``reference_size``, default 320). Streak
  lengths, widths and the real layers' ``scale`` are given in pixels of an
  image whose shorter side is ``reference_size``; the rain ``R`` is drawn on
  a canvas of that size (the image's aspect ratio) and resized to the image
  (bilinear, antialiased when shrinking). So a 3000 x 4000 photo gets streaks
  9.4 times as long and wide as a 320 x 427 one, with the same coverage, and
  the drawing costs the same at any image size. ``reference_size=0`` draws
  at the image's own pixels.
* **Density levels** (``density_level``: ``light``, ``medium``, ``heavy`` or
  ``mixed``), after the three rain-density classes of Rain1200 (Zhang and
  Patel, DID-MDN, CVPR 2018). A level is a table of ranges (``LEVELS``, below)
  for every streak parameter left at ``None``; a parameter given explicitly
  overrides the table in every level. ``mixed`` draws one of the three per
  call (per image in a ``tf.data`` map), as Rain1200 holds the three levels in
  equal parts.
* **Several directions** (``directions``: a count or a range): the ``angle``
  range is cut into that many equal sectors and each direction draws its
  angle in the middle half of its own sector, so directions are at least half
  a sector apart; streak layer ``i`` takes direction ``i mod directions`` and
  a jitter of +-3 degrees (clipped to the range).
* **Depth** (``depth``): a proxy of :func:`~erlrestore.data.degradations.haze.add_haze`
  (``"gradient"``: far at the top; ``"brightness"``; ``"uniform"``) or a real
  depth map (``[H, W]``, ``[H, W, 1]``, ``[B, H, W]`` or ``[B, H, W, 1]``,
  non-negative) of the image's height and width, e.g. recovered from a
  RESIDE pair with :func:`erlrestore.data.reside_depth.reside_depth`. A
  real map is divided by its maximum per image (only relative depth matters:
  ``beta`` and ``alpha`` are per the scene's farthest point, as for the
  proxies, whose depth runs from 0.1 to 1). A map of another height or width
  is a ValueError naming both shapes (when the shapes are known while
  tracing; otherwise the check runs in the graph and raises
  InvalidArgumentError with the same message).

Streak layers (procedural, as :func:`~erlrestore.data.degradations.rain.add_rain`
draws them: sparse drops of intensity 0.5-1 smeared by an anti-aliased line
kernel of the layer's length, width and angle, each layer saturated at 1 and
scaled by a brightness): per image a number of layers in ``streak_layers``
and per layer a coverage in ``density`` and a brightness; per call (shared by
a batch, as one storm) the lengths, widths and angles. Everything is drawn
from the stateless seed: same seed, same output, in eager mode, under
``tf.function`` and in ``tf.data``.

The levels (lengths and widths in reference pixels, ``density`` the share of
pixels one layer covers, ``brightness`` the layer's peak, drops drawing 0.5-1
of it). Light is Rain100L / Rain12-like rain (one direction, sparse, thin,
faint streaks; those sets' inputs are 29.7 / 30.1 dB Y-PSNR), heavy is
Rain100H-like (long, wide streaks in up to three directions, several layers
covering most of the image and adding up to a bright veil; 13.35 dB), medium
halfway between (about 21-22 dB). Lengths and widths were judged from
Rain100H / Rain100L samples at their 321 x 481 size; density and brightness
were then tuned on 12 derain-train photos until the mean input Y-PSNR hit
those targets (erlrestore.metrics, 8-bit images, seed 0):

======  =============  ==========  ===========  ========  =======  ==========  =======  =========
level   streak_layers  directions  density      length    width    brightness  angle    Y-PSNR
======  =============  ==========  ===========  ========  =======  ==========  =======  =========
light   1-2            1           0.015-0.04   20-60     0.8-1.5  0.25-0.5    +-20     29.4 dB
medium  2-4            1-2         0.03-0.07    30-100    1.0-2.5  0.3-0.55    +-25     21.1 dB
heavy   4-8            1-3         0.05-0.12    60-200    1.5-3.5  0.3-0.6     +-30     14.1 dB
======  =============  ==========  ===========  ========  =======  ==========  =======  =========

``real_dense_rain`` adds, per level, the rendered layers' ``streak_layers``,
``transparency`` and ``scale`` and the share of images that also get
``procedural_layers`` procedural layers (``mix_procedural``): light 1-3
layers, t 0.25-0.45, x1-2, no procedural layers (30.0 dB); medium 2-6,
0.3-0.5, x1.5-3, half of the images 1-2 procedural layers (22.5 dB); heavy
6-12, 0.35-0.6, x2-4, every image 1-3 procedural layers (13.8 dB). The
veil's ``beta`` per level (``rain_haze``, ``rain_cityscapes`` and the
optional veil of ``real_dense_rain``): light 0.05-0.3, medium 0.2-0.8, heavy
0.6-1.6.
"""

import math

import numpy as np
import tensorflow as tf

from erlrestore.data.degradations import haze, rain, real_streaks
from erlrestore.data.degradations.common import (
    _as_batch, _as_range, _as_seed, _check_int_range, _per_image, _restore_rank, _sample, _split)
from erlrestore.data.degradations.haze import _check_depth, _depth_map
from erlrestore.data.degradations.rain import _MIN_DROP_INTENSITY, _check_blur, _gaussian_1d, _line_kernels, _smear
from erlrestore.data.degradations.real_streaks import MAX_STREAK_LAYERS, _draw_real_streaks, as_streak_bank

__all__ = [
    "add_dense_rain",
    "add_real_dense_rain",
    "add_rain_haze",
    "add_rain_cityscapes",
    "LEVELS",
    "DENSITY_LEVELS",
    "DEFAULT_REFERENCE_SIZE",
]

DEFAULT_REFERENCE_SIZE = 320

# The smallest reference size accepted (besides 0, "off").
MIN_REFERENCE_SIZE = 16

# The most directions one call can draw.
MAX_DIRECTIONS = 8

# Each layer's angle is its direction's plus a uniform jitter of this many degrees either way.
_ANGLE_JITTER = 3.0

# Per-level ranges of the procedural streaks (see the module docstring for the reasons).
_PROCEDURAL_LEVELS = {
    "light": dict(streak_layers=(1, 2), directions=(1, 1), density=(0.015, 0.04), length=(20.0, 60.0),
                  width=(0.8, 1.5), brightness=(0.25, 0.5), angle=(-20.0, 20.0)),
    "medium": dict(streak_layers=(2, 4), directions=(1, 2), density=(0.03, 0.07), length=(30.0, 100.0),
                   width=(1.0, 2.5), brightness=(0.3, 0.55), angle=(-25.0, 25.0)),
    "heavy": dict(streak_layers=(4, 8), directions=(1, 3), density=(0.05, 0.12), length=(60.0, 200.0),
                  width=(1.5, 3.5), brightness=(0.3, 0.6), angle=(-30.0, 30.0)),
}

# Per-level ranges of the rendered (real) layers of real_dense_rain.
_REAL_LEVELS = {
    "light": dict(streak_layers=(1, 3), transparency=(0.25, 0.45), scale=(1.0, 2.0), mix_procedural=0.0,
                  procedural_layers=(1, 1)),
    "medium": dict(streak_layers=(2, 6), transparency=(0.3, 0.5), scale=(1.5, 3.0), mix_procedural=0.5,
                   procedural_layers=(1, 2)),
    "heavy": dict(streak_layers=(6, 12), transparency=(0.35, 0.6), scale=(2.0, 4.0), mix_procedural=1.0,
                  procedural_layers=(1, 3)),
}

# Per-level veil (rain accumulation) scattering coefficient, per unit of relative depth.
_VEIL_LEVELS = {
    "light": dict(beta=(0.05, 0.3)),
    "medium": dict(beta=(0.2, 0.8)),
    "heavy": dict(beta=(0.6, 1.6)),
}

LEVELS = tuple(_PROCEDURAL_LEVELS)
DENSITY_LEVELS = LEVELS + ("mixed",)


# ---------------------------------------------------------------------------
# Parameter checks
# ---------------------------------------------------------------------------


def check_density_level(value):
    if not isinstance(value, str) or value not in DENSITY_LEVELS:
        raise ValueError(f"density_level must be one of {', '.join(DENSITY_LEVELS)}, got {value!r}")
    return value


def check_reference_size(value):
    lo, hi = _as_range("reference_size", value, 0.0, 65536.0)
    if lo != hi:
        raise ValueError(f"reference_size must be a single number, got {value!r}")
    if 0 < lo < MIN_REFERENCE_SIZE:
        raise ValueError(f"reference_size must be 0 (sizes in the image's own pixels) or >= {MIN_REFERENCE_SIZE} "
                         f"pixels, got {value!r}")
    return lo


# The parameters declared here.
PARAM_CHECKS = {
    "density_level": check_density_level,
    "reference_size": check_reference_size,
    "directions": lambda v: _check_int_range("directions", v, 1, MAX_DIRECTIONS),
    "procedural_layers": lambda v: _check_int_range("procedural_layers", v, 1, MAX_STREAK_LAYERS),
    "rain_attenuation": lambda v: _as_range("rain_attenuation", v, 0.0),
    "min_rain_depth": lambda v: _as_range("min_rain_depth", v, 0.0, 1.0),
}

# Every parameter the level tables and overrides use: these and those the other modules declare.
_CHECKS = {**haze.PARAM_CHECKS, **rain.PARAM_CHECKS, **real_streaks.PARAM_CHECKS, **PARAM_CHECKS}


def _level_spec(table, level, overrides):
    """The level's ranges with the given (non-None) parameters checked and put in their place."""
    checks = _CHECKS
    spec = dict(table[level])
    for name, value in overrides.items():
        if value is not None:
            spec[name] = checks[name](value)
    return spec


def _check_overrides(overrides):
    checks = _CHECKS
    for name, value in overrides.items():
        if value is not None:
            checks[name](value)


def _by_level(level, level_seed, branch):
    """``branch(level_name)`` for a fixed level, or for the one ``level_seed`` draws with ``mixed``.

    Every part of one call draws with the same ``level_seed`` (``_begin``), so
    the streaks and the veil of an image come from the same level.
    """
    if level != "mixed":
        return branch(level)
    index = tf.random.stateless_uniform([], level_seed, minval=0, maxval=len(LEVELS), dtype=tf.int32)
    return tf.switch_case(index, [lambda name=name: branch(name) for name in LEVELS])


# ---------------------------------------------------------------------------
# Streaks on the reference canvas
# ---------------------------------------------------------------------------


def _canvas_size(height, width, reference_size):
    """Height and width (int32 scalars) of the canvas the rain is drawn on: shorter side ``reference_size``."""
    if not reference_size:
        return height, width
    short = tf.cast(tf.minimum(height, width), tf.float32)
    factor = reference_size / short
    canvas_h = tf.maximum(tf.cast(tf.round(tf.cast(height, tf.float32) * factor), tf.int32), 1)
    canvas_w = tf.maximum(tf.cast(tf.round(tf.cast(width, tf.float32) * factor), tf.int32), 1)
    return canvas_h, canvas_w


def _to_image(rain, height, width):
    """A ``[B, h, w, 1]`` canvas resized to ``height x width`` (bilinear, antialiased when shrinking)."""
    same = tf.logical_and(tf.equal(tf.shape(rain)[1], height), tf.equal(tf.shape(rain)[2], width))
    return tf.cond(
        same,
        lambda: tf.identity(rain),
        lambda: tf.image.resize(rain, tf.stack([height, width]), method="bilinear", antialias=True),
    )


def _uniform_int(bounds, seed, shape):
    lo, hi = bounds
    if lo == hi:
        return tf.fill(shape, tf.constant(lo, tf.int32))
    return tf.random.stateless_uniform(shape, seed, minval=lo, maxval=hi + 1, dtype=tf.int32)


def _layer_angles(spec, seed, slots):
    """``[slots]`` angles in degrees: direction ``i mod D`` of ``D`` (drawn) sector-spread directions, jittered."""
    seeds = _split(seed, 3)
    lo, hi = spec["angle"]
    count = _uniform_int(spec["directions"], seeds[0], [])
    sector = (hi - lo) / tf.cast(count, tf.float32)
    which = tf.range(slots) % count
    offset = tf.random.stateless_uniform([spec["directions"][1]], seeds[1], minval=0.25, maxval=0.75)
    base = lo + (tf.cast(which, tf.float32) + tf.gather(offset, which)) * sector
    jitter = tf.random.stateless_uniform([slots], seeds[2], minval=-_ANGLE_JITTER, maxval=_ANGLE_JITTER)
    return tf.clip_by_value(base + jitter, lo, hi)


def _procedural_rain(batch, height, width, seed, spec, blur, layers_key="streak_layers"):
    """The sum of the procedural streak layers of ``spec``, ``[B, height, width, 1]`` (drawn at that size).

    ``spec[layers_key]`` layers per image (the unused slots up to its high end
    get no drops), each covering ``density`` of the pixels; see the module
    docstring for what is drawn per image and per call.
    """
    seeds = _split(seed, 8)
    slots = spec[layers_key][1]
    count = _uniform_int(spec[layers_key], seeds[0], [batch])
    active = tf.range(slots)[tf.newaxis, :] < count[:, tf.newaxis]
    angles = _layer_angles(spec, seeds[1], slots)
    lengths = _sample(spec["length"], seeds[2], [slots])
    widths = _sample(spec["width"], seeds[3], [slots])
    blur_radius = _gaussian_1d(blur)[1] if blur > 0 else 0
    radius = int(math.ceil((spec["length"][1] + spec["width"][1]) / 2.0)) + 1 + blur_radius
    kernels = _line_kernels(lengths, angles, widths, radius, blur)
    area = tf.reduce_sum(kernels, axis=[0, 1])
    density = tf.where(active, _sample(spec["density"], seeds[4], [batch, slots]), 0.0)
    # A drop probability that makes the layer cover `density` of the pixels (see _streak_layers).
    prob = -tf.math.expm1(tf.math.log1p(-tf.minimum(density, 1.0 - 1e-7)) / area)
    prob = tf.where(density >= 1.0, tf.ones_like(prob), prob)[:, tf.newaxis, tf.newaxis, :]
    canvas = tf.stack([batch, height + 2 * radius, width + 2 * radius, slots])
    drops = tf.random.stateless_uniform(canvas, seeds[5]) < prob
    intensity = tf.random.stateless_uniform(canvas, seeds[6], minval=_MIN_DROP_INTENSITY, maxval=1.0)
    streaks = tf.clip_by_value(_smear(drops, intensity, kernels, radius), 0.0, 1.0)
    bright = _sample(spec["brightness"], seeds[7], [batch, slots])[:, tf.newaxis, tf.newaxis, :]
    return tf.reduce_sum(streaks * bright, axis=-1, keepdims=True)


def _real_layers_rain(batch, height, width, seed, bank, spec, streak_blur):
    """``sum_i t_i S_i`` of the rendered layers of ``spec``, ``[B, height, width, 1]``."""
    draws, used, planes = _draw_real_streaks(
        batch, height, width, seed, bank, spec["streak_layers"], spec["transparency"], spec["scale"], streak_blur)
    weighted = planes * tf.gather_nd(draws["transparency"], used)[:, tf.newaxis, tf.newaxis]
    rain = tf.math.unsorted_segment_sum(weighted, used[:, 0], batch)  # [B, W, H]
    return tf.transpose(rain, [0, 2, 1])[..., tf.newaxis]


def _streak_overrides(streak_layers, directions, density, length, angle, width, brightness):
    return dict(streak_layers=streak_layers, directions=directions, density=density, length=length, angle=angle,
                width=width, brightness=brightness)


def _procedural_at_scale(x, seed, level, level_seed, reference_size, blur, overrides):
    """Procedural rain for the batch ``x``, drawn on the reference canvas and resized: ``[B, H, W, 1]``."""
    shape = tf.shape(x)
    canvas_h, canvas_w = _canvas_size(shape[1], shape[2], reference_size)

    def branch(name):
        spec = _level_spec(_PROCEDURAL_LEVELS, name, overrides)
        return _procedural_rain(shape[0], canvas_h, canvas_w, seed, spec, blur)

    return _to_image(_by_level(level, level_seed, branch), shape[1], shape[2])


# ---------------------------------------------------------------------------
# Depth and veil
# ---------------------------------------------------------------------------


def _explicit_depth(x, depth, image_shape, fn_name):
    """A real depth map as float32 ``[B or 1, H, W, 1]``, divided by its maximum per image; shape-checked."""
    d = tf.convert_to_tensor(depth)
    given = d.shape
    if not (d.dtype.is_floating or d.dtype.is_integer):
        raise ValueError(f"{fn_name}: a depth map must be numbers, got dtype {d.dtype.name}")
    d = tf.cast(d, tf.float32)
    if d.shape.rank == 2 or (d.shape.rank == 3 and d.shape[-1] != 1):
        d = d[..., tf.newaxis]
    if d.shape.rank == 3:
        d = d[tf.newaxis]
    if d.shape.rank != 4:
        raise ValueError(f"{fn_name}: a depth map must be [H, W], [H, W, 1], [B, H, W] or [B, H, W, 1], "
                         f"got shape {tuple(given)}")
    mismatch = (f"{fn_name}: the depth map (shape {tuple(given)}) must have the height and width of the image "
                f"(image shape {tuple(image_shape)})")
    dims = (d.shape[1], d.shape[2], x.shape[1], x.shape[2])
    if None not in dims and dims[:2] != dims[2:]:
        raise ValueError(f"{mismatch}: the depth map is {dims[0]}x{dims[1]}, the image {dims[2]}x{dims[3]} "
                         "(height x width)")
    if None not in (d.shape[0], x.shape[0]) and d.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"{fn_name}: the depth map holds {d.shape[0]} maps for {x.shape[0]} images "
                         f"(depth shape {tuple(given)}, image shape {tuple(image_shape)})")
    values = tf.get_static_value(d)  # known in eager mode and for constants
    if values is not None:
        if not np.all(np.isfinite(values)) or values.min() < 0:
            raise ValueError(f"{fn_name}: a depth map must be finite and non-negative (min {np.nanmin(values):g})")
    if None in dims:
        check = tf.debugging.assert_equal(tf.shape(d)[1:3], tf.shape(x)[1:3], message=mismatch)
        with tf.control_dependencies([check]):
            d = tf.identity(d)
    farthest = tf.reduce_max(d, axis=[1, 2, 3], keepdims=True)
    d = tf.math.divide_no_nan(tf.maximum(d, 0.0), farthest)
    return tf.broadcast_to(d, tf.shape(x[..., :1]))


def _scene_depth(x, depth, depth_variation, seed, image_shape, fn_name):
    """Relative depth ``[B, H, W, 1]``: a proxy of _depth_map, or a real map (``_explicit_depth``)."""
    _check_depth(depth, depth_variation)
    if isinstance(depth, str):
        return _depth_map(x, depth, depth_variation, seed)
    return _explicit_depth(x, depth, image_shape, fn_name)


def _veil_beta(level, level_seed, beta, seed, batch):
    """``[B, 1, 1, 1]`` scattering coefficients: ``beta`` if given, else the level's range."""
    if beta is not None:
        return _per_image(_sample(_CHECKS["beta"](beta), seed, [batch]), batch)
    return _per_image(
        _by_level(level, level_seed, lambda name: _sample(_VEIL_LEVELS[name]["beta"], seed, [batch])),
        batch)


def _begin(clean, seed, fn_name, density_level, reference_size):
    """The checked common arguments: ``(x, rank, seed, level_seed, image_shape, level, reference_size)``."""
    image_shape = clean.shape if hasattr(clean, "shape") else np.shape(clean)
    x, rank = _as_batch(clean, fn_name)
    seed = _as_seed(seed, fn_name)
    level = check_density_level(density_level)
    reference_size = check_reference_size(reference_size)
    seeds = _split(seed, 2)
    return x, rank, seeds[0], seeds[1], image_shape, level, reference_size


# ---------------------------------------------------------------------------
# Degradations
# ---------------------------------------------------------------------------


def add_dense_rain(clean, seed, *, density_level="heavy", reference_size=DEFAULT_REFERENCE_SIZE, streak_layers=None,
                   directions=None, density=None, length=None, angle=None, width=None, brightness=None, blur=0.5):
    """Dense procedural rain in several directions at the image's scale: ``O = clip(B + R, 0, 1)``.

    ``R`` is the sum of ``streak_layers`` procedural streak layers (each
    saturated at 1 and scaled by its brightness) drawn on the reference
    canvas and resized to the image (see the module docstring).

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      density_level: ``light``, ``medium``, ``heavy`` (default) or ``mixed``:
        the ranges of every streak parameter left at None (``LEVELS`` table
        in the module docstring).
      reference_size: shorter image side (pixels) at which ``length`` and
        ``width`` hold; 0 makes them pixels of the image itself.
      streak_layers: layers per image, an integer or (low, high) range (1-32).
      directions: distinct rain directions per call (1-8), spread over ``angle``.
      density: share of the pixels each layer covers, in [0, 1].
      length, width: streak length (>= 1) and width (> 0) in reference pixels.
      angle: range of directions, degrees from vertical in [-90, 90];
        positive turns the lower end to the right.
      brightness: peak intensity of each layer (>= 0).
      blur: Gaussian sigma (reference pixels, a single number >= 0) softening
        the streaks.
    """
    x, rank, seed, level_seed, _, level, reference = _begin(clean, seed, "add_dense_rain", density_level,
                                                            reference_size)
    overrides = _streak_overrides(streak_layers, directions, density, length, angle, width, brightness)
    _check_overrides(overrides)
    blur = _check_blur(blur)
    rain = _procedural_at_scale(x, seed, level, level_seed, reference, blur, overrides)
    return _restore_rank(x + rain, rank)


def add_real_dense_rain(clean, seed, *, streaks, density_level="heavy", reference_size=DEFAULT_REFERENCE_SIZE,
                        streak_layers=None, transparency=None, scale=None, streak_blur=(0.0, 1.0),
                        mix_procedural=None, procedural_layers=None, directions=None, density=None, length=None,
                        angle=None, width=None, brightness=None, blur=0.5, veil_share=0.0, beta=None,
                        airlight=(0.7, 0.95), depth="gradient", depth_variation=0.2):
    """Rendered streak layers at the image's scale, plus procedural layers and an optional veil.

    ``R = sum_i t_i S_i (+ procedural layers)``: the layers ``S_i`` of
    ``streaks`` (a folder or a :class:`~erlrestore.data.degradations.real_streaks.StreakBank`,
    drawn as in :func:`erlrestore.data.degradations.real_streaks.add_real_rain`: a random
    layer, scale, flip, position, blur and transparency each) are rendered on
    the reference canvas, so ``scale`` is relative to an image whose shorter
    side is ``reference_size``; a share ``mix_procedural`` of the images also
    gets ``procedural_layers`` procedural layers (the streak parameters, as in
    :func:`add_dense_rain`), which bring wider streaks and more directions.
    Then ``O = B + R``, or, for a share ``veil_share`` of the images, the
    heavy rain model ``O = T (B + R) + (1 - T) A`` of :func:`add_rain_haze`.

    Args: ``streaks`` (required), ``streak_layers`` (rendered layers per image,
    1-32), ``transparency``, ``scale`` and ``streak_blur`` as in
    :func:`~erlrestore.data.degradations.real_streaks.add_real_rain`; ``mix_procedural`` (a
    probability), ``procedural_layers`` (1-32) and the streak parameters of
    :func:`add_dense_rain`; ``veil_share`` (a probability, default 0: no
    veil), ``beta`` (None: the level's), ``airlight``, ``depth`` and
    ``depth_variation`` as in :func:`add_rain_haze`. None takes the level's
    range (module docstring).
    """
    x, rank, seed, level_seed, image_shape, level, reference = _begin(clean, seed, "add_real_dense_rain",
                                                                      density_level, reference_size)
    real_overrides = dict(streak_layers=streak_layers, transparency=transparency, scale=scale,
                          mix_procedural=mix_procedural, procedural_layers=procedural_layers)
    overrides = _streak_overrides(None, directions, density, length, angle, width, brightness)
    _check_overrides(real_overrides)
    _check_overrides(overrides)
    streak_blur = _CHECKS["streak_blur"](streak_blur)
    blur = _check_blur(blur)
    veil_share = _CHECKS["veil_share"](veil_share)
    airlight = _CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    if beta is not None:
        _CHECKS["beta"](beta)
    bank = as_streak_bank(streaks)
    shape = tf.shape(x)
    batch = shape[0]
    canvas_h, canvas_w = _canvas_size(shape[1], shape[2], reference)
    seeds = _split(seed, 6)

    def branch(name):
        real = _level_spec(_REAL_LEVELS, name, real_overrides)
        rain = _real_layers_rain(batch, canvas_h, canvas_w, seeds[1], bank, real, streak_blur)
        if real["mix_procedural"] <= 0:
            return rain
        spec = _level_spec(_PROCEDURAL_LEVELS, name, overrides)
        spec["procedural_layers"] = real["procedural_layers"]
        mix_seeds = _split(seeds[2], 2)
        chosen = tf.random.stateless_uniform([batch], mix_seeds[0]) < real["mix_procedural"]

        def with_procedural():
            extra = _procedural_rain(batch, canvas_h, canvas_w, mix_seeds[1], spec, blur, "procedural_layers")
            return rain + extra * tf.cast(chosen, tf.float32)[:, tf.newaxis, tf.newaxis, tf.newaxis]

        return tf.cond(tf.reduce_any(chosen), with_procedural, lambda: rain)

    rain = _to_image(_by_level(level, level_seed, branch), shape[1], shape[2])
    out = x + rain
    if veil_share > 0:
        d = _scene_depth(x, depth, depth_variation, seeds[3], image_shape, "add_real_dense_rain")
        t = tf.exp(-_veil_beta(level, level_seed, beta, seeds[4], batch) * d)
        veil_seeds = _split(seeds[5], 2)
        veiled = tf.random.stateless_uniform([batch], veil_seeds[0]) < veil_share
        t = tf.where(veiled[:, tf.newaxis, tf.newaxis, tf.newaxis], t, tf.ones_like(t))
        a = _per_image(_sample(airlight, veil_seeds[1], [batch]), batch)
        out = t * out + (1.0 - t) * a
    return _restore_rank(out, rank)


def add_rain_haze(clean, seed, *, density_level="heavy", reference_size=DEFAULT_REFERENCE_SIZE, streak_layers=None,
                  directions=None, density=None, length=None, angle=None, width=None, brightness=None, blur=0.5,
                  beta=None, airlight=(0.7, 0.95), depth="gradient", depth_variation=0.2):
    """Heavy rain with its veil (Li, Cheong and Tan, CVPR 2019): ``O = T (B + R) + (1 - T) A``.

    ``R`` is the dense procedural rain of :func:`add_dense_rain`; the rain
    accumulation (veil) has transmission ``T = exp(-beta d)`` over the
    relative depth ``d`` (a proxy or a real depth map, module docstring), so
    it thickens with depth and the streaks fade behind it with the scene;
    ``A`` is the grey atmospheric light. ``B + R`` is not clipped before the
    veil (the model is linear in radiance); the result is.

    Args: those of :func:`add_dense_rain`, and
      beta: scattering per unit of relative depth (>= 0); None: the
        level's range (light 0.05-0.3, medium 0.2-0.8, heavy 0.6-1.6).
      airlight: ``A`` in [0, 1].
      depth: ``"gradient"`` (default), ``"brightness"``, ``"uniform"`` or a
        depth map of the image's height and width.
      depth_variation: the proxies' smooth random variation (>= 0).
    """
    x, rank, seed, level_seed, image_shape, level, reference = _begin(clean, seed, "add_rain_haze",
                                                                      density_level, reference_size)
    overrides = _streak_overrides(streak_layers, directions, density, length, angle, width, brightness)
    _check_overrides(overrides)
    blur = _check_blur(blur)
    airlight = _CHECKS["airlight"](airlight)
    seeds = _split(seed, 4)
    d = _scene_depth(x, depth, depth_variation, seeds[1], image_shape, "add_rain_haze")
    rain = _procedural_at_scale(x, seeds[0], level, level_seed, reference, blur, overrides)
    batch = tf.shape(x)[0]
    t = tf.exp(-_veil_beta(level, level_seed, beta, seeds[2], batch) * d)
    a = _per_image(_sample(airlight, seeds[3], [batch]), batch)
    return _restore_rank(t * (x + rain) + (1.0 - t) * a, rank)


def add_rain_cityscapes(clean, seed, *, density_level="medium", reference_size=DEFAULT_REFERENCE_SIZE,
                        streak_layers=None, directions=None, density=None, length=None, angle=None, width=None,
                        brightness=None, blur=0.5, beta=None, rain_attenuation=(0.3, 1.5), min_rain_depth=0.2,
                        airlight=(0.7, 0.95), depth="gradient", depth_variation=0.2):
    """Depth-aware rain and fog (Hu, Fu, Zhu and Heng, CVPR 2019, the RainCityscapes composition).

    ::

        O = B (1 - R_d - V) + R_d + A V
        R_d = R exp(-alpha max(d_1, d)),    V = 1 - exp(-beta d)

    ``R`` is the dense procedural rain of :func:`add_dense_rain` (saturated
    at 1: here it is an opacity), ``d`` the relative depth (a proxy or a real
    map, module docstring), ``V`` the fog, thicker with depth, and ``A`` the
    grey atmospheric light. Streaks are attenuated with depth: far scenery is
    hidden by fog more than by rain; nearer than ``d_1`` they keep the
    strength they have at ``d_1``. Default level: ``medium`` (RainCityscapes'
    rain is moderate; its fog does the heavy lifting).

    Args: those of :func:`add_dense_rain`, ``beta`` (None: the level's range),
    ``airlight``, ``depth``, ``depth_variation`` as in :func:`add_rain_haze`, and
      rain_attenuation: ``alpha`` (>= 0) per unit of relative depth.
      min_rain_depth: ``d_1`` in [0, 1] (relative depth).
    """
    x, rank, seed, level_seed, image_shape, level, reference = _begin(clean, seed, "add_rain_cityscapes",
                                                                      density_level, reference_size)
    overrides = _streak_overrides(streak_layers, directions, density, length, angle, width, brightness)
    _check_overrides(overrides)
    blur = _check_blur(blur)
    airlight = _CHECKS["airlight"](airlight)
    alpha = PARAM_CHECKS["rain_attenuation"](rain_attenuation)
    near = PARAM_CHECKS["min_rain_depth"](min_rain_depth)
    seeds = _split(seed, 6)
    d = _scene_depth(x, depth, depth_variation, seeds[1], image_shape, "add_rain_cityscapes")
    rain = tf.clip_by_value(_procedural_at_scale(x, seeds[0], level, level_seed, reference, blur, overrides),
                            0.0, 1.0)
    batch = tf.shape(x)[0]
    alpha = _per_image(_sample(alpha, seeds[2], [batch]), batch)
    near = _per_image(_sample(near, seeds[3], [batch]), batch)
    rain = rain * tf.exp(-alpha * tf.maximum(near, d))
    fog = 1.0 - tf.exp(-_veil_beta(level, level_seed, beta, seeds[4], batch) * d)
    a = _per_image(_sample(airlight, seeds[5], [batch]), batch)
    return _restore_rank(x * (1.0 - rain - fog) + rain + a * fog, rank)
