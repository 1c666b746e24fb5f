"""Real (rendered) rain streaks: ``real_rain`` and ``real_heavy_rain``, and the streak bank they draw from.

* real rain: the additive model ``O = B + sum_i t_i S_i`` with ``k``
  *rendered* streak layers ``S_i`` taken from a folder of streak images
  (e.g. Garg and Nayar's photorealistic streak database), the way the
  de-raining literature composites its training sets;
* real heavy rain puts them behind the heavy-rain veil
  ``I = T (J + sum_i t_i S_i) + (1 - T) A``.

The streak bank and the sampling:

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
"""

import os

import numpy as np
import tensorflow as tf

from erlrestore.data import image_files
from erlrestore.data.degradations import haze
from erlrestore.data.degradations.common import (
    _as_batch,
    _as_range,
    _as_seed,
    _check_int,
    _check_int_range,
    _check_probability,
    _per_image,
    _restore_rank,
    _sample,
    _split,
)
from erlrestore.data.degradations.haze import _check_depth, _transmission
from erlrestore.data.degradations.rain import _gaussian_1d, _rain_ranges, _streak_layers
from erlrestore.data.image_files import DataError

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

# The parameters declared here (``mix_procedural`` and ``veil_share`` also serve real_dense_rain).
PARAM_CHECKS = {
    "streaks": lambda v: _check_streaks(v),
    "streak_layers": lambda v: _check_int_range("streak_layers", v, 1, MAX_STREAK_LAYERS),
    "transparency": lambda v: _as_range("transparency", v, 0.0, 1.0),
    "scale": lambda v: _as_range("scale", v, 0.0, 16.0, low_open=True),
    "streak_blur": lambda v: _as_range("streak_blur", v, 0.0, 5.0),
    "mix_procedural": lambda v: _check_probability("mix_procedural", v),
    "veil_share": lambda v: _check_probability("veil_share", v),
}


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


def _real_ranges(streak_layers, transparency, scale, streak_blur):
    return dict(
        streak_layers=PARAM_CHECKS["streak_layers"](streak_layers),
        transparency=PARAM_CHECKS["transparency"](transparency),
        scale=PARAM_CHECKS["scale"](scale),
        streak_blur=PARAM_CHECKS["streak_blur"](streak_blur),
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
    mix = PARAM_CHECKS["mix_procedural"](mix_procedural)
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
    mix = PARAM_CHECKS["mix_procedural"](mix_procedural)
    beta = haze.PARAM_CHECKS["beta"](beta)
    airlight = haze.PARAM_CHECKS["airlight"](airlight)
    _check_depth(depth, depth_variation)
    veil_share = PARAM_CHECKS["veil_share"](veil_share)
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
