"""tf.data pipelines for training and evaluation.

The module is organised as *sources* feeding *one* shared crop / augment /
batch path::

    pairs_source(pairs)            \\
    tfrecord_source(pattern)        >--  train_dataset(...)  -> (input, target) crops, batched
    synthetic_source(clean, deg)   /     eval_dataset(...)   -> (input, target, name), full size

A source is a ``tf.data.Dataset`` of full-size ``(input, target)`` float32
images, HxWx3 in [0, 1]; with ``with_names=True`` it yields ``(input, target,
name)`` instead, where ``name`` is a string used in error messages and by
:func:`eval_dataset`. ``train_dataset`` accepts either a list of
:class:`~erlrestore.data.pairing.Pair` (it then builds the pairs source
itself, shuffling the cheap file list rather than decoded images) or any
source dataset.

Randomness is stateless: every random decision (file order, crop offset,
flip/rotation, synthetic degradation) is drawn from seeds derived from the
pipeline ``seed``, so two datasets built with the same seed give the same
sequence of batches (``deterministic=True`` additionally pins the order of
parallel work). Iterating the *same* dataset object again (a new epoch when
``repeat=False``) draws fresh crops and a fresh order, still reproducibly.

Errors in the data surface while iterating: a :class:`DataError` raised
inside the pipeline (unreadable file, mismatched sizes, image smaller than
the crop) reaches the caller as ``tf.errors.InvalidArgumentError`` whose
message contains ``DataError: <message naming the file>``; TensorFlow maps
``ValueError`` subclasses raised in ``tf.numpy_function`` to that type.

Threading is left to tf.data's AUTOTUNE; this module never changes global
TensorFlow threading settings.
"""

import random

import numpy as np
import tensorflow as tf

from erlrestore.data.image_files import DataError, read_image
from erlrestore.data.pairing import load_pair

AUTOTUNE = tf.data.AUTOTUNE

__all__ = [
    "pairs_source",
    "tfrecord_source",
    "clean_images",
    "synthetic_source",
    "train_dataset",
    "eval_dataset",
    "pad_to_min_size",
]


# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------


def _as_float_image(array, what):
    """``array`` as a C-contiguous float32 HxWx3 array, or DataError."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise DataError(f"{what}: expected an HxWx3 image, got shape {array.shape}")
    return array


def _check_min_size(shape, min_size, what):
    """Raises DataError when an image of ``shape`` is smaller than ``min_size``."""
    if min_size and (shape[0] < min_size or shape[1] < min_size):
        raise DataError(
            f"{what}: image is {shape[0]}x{shape[1]} (HxW), smaller than the "
            f"{min_size}x{min_size} crop; use a smaller crop_size or pass "
            f"pad_small=True to reflect-pad small images"
        )


def _describe_pair(pair):
    return f"pair {pair.name!r} (input {pair.input_path}, target {pair.target_path})"


def pairs_source(pairs, *, with_names=False, shuffle=False, seed=None, min_size=None,
                 deterministic=True):
    """Decodes ``pairs`` into full-size ``(input, target)`` images.

    Each element is loaded with :func:`erlrestore.data.pairing.load_pair`
    (all layout conventions applied) inside ``tf.numpy_function``, with
    ``num_parallel_calls=AUTOTUNE``. A ``DataError`` from decoding reaches
    the caller when iterating (see the module docstring).

    Args:
      pairs: sequence of ``Pair``.
      with_names: also yield ``pair.name`` as a third (string) component.
      shuffle: shuffle the whole *file list* (not decoded images) with a
        buffer of ``len(pairs)``, reshuffled on every iteration.
      seed: seed of that shuffle (None: nondeterministic).
      min_size: when set, an image smaller than ``min_size`` in height or
        width raises a DataError naming both files (used by
        :func:`train_dataset` to refuse images smaller than the crop).
      deterministic: keep the element order of the parallel decode.
    """
    pairs = list(pairs)
    if not pairs:
        raise DataError("no image pairs given to the data pipeline")

    def load(index):
        pair = pairs[int(index)]
        what = _describe_pair(pair)
        inp, tgt = load_pair(pair)
        inp = _as_float_image(inp, what)
        tgt = _as_float_image(tgt, what)
        if inp.shape != tgt.shape:
            raise DataError(
                f"{what}: input is {inp.shape[0]}x{inp.shape[1]} but target is "
                f"{tgt.shape[0]}x{tgt.shape[1]} (HxW)"
            )
        _check_min_size(inp.shape, min_size, what)
        return inp, tgt

    names = tf.constant([str(p.name) for p in pairs])

    def decode(index):
        inp, tgt = tf.numpy_function(load, [index], (tf.float32, tf.float32), stateful=False)
        inp.set_shape([None, None, 3])
        tgt.set_shape([None, None, 3])
        if with_names:
            return inp, tgt, tf.gather(names, index)
        return inp, tgt

    ds = tf.data.Dataset.range(len(pairs))
    if shuffle:
        ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
    return ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def tfrecord_source(pattern, *, with_names=False, deterministic=True):
    """Full-size ``(input, target)`` images from TFRecord shards.

    ``pattern`` is a glob (``/data/train/pairs-*.tfrecord``) or a directory
    (all ``*.tfrecord`` files in it); see :mod:`erlrestore.data.tfrecord`.
    """
    from erlrestore.data.tfrecord import read_tfrecords

    return read_tfrecords(pattern, with_names=with_names, deterministic=deterministic)


def clean_images(clean_paths, deterministic=True):
    """Decoded clean images ``(image, path)`` in parallel, for :func:`synthetic_source`."""
    clean_paths = [str(p) for p in clean_paths]
    if not clean_paths:
        raise DataError("no clean images given to synthetic_source")

    def load(path):
        path = path.decode() if isinstance(path, bytes) else str(path)
        return _as_float_image(read_image(path), path)

    def decode(path):
        clean = tf.numpy_function(load, [path], tf.float32, stateful=False)
        clean.set_shape([None, None, 3])
        return clean, path

    ds = tf.data.Dataset.from_tensor_slices(clean_paths)
    return ds.map(decode, num_parallel_calls=AUTOTUNE, deterministic=deterministic)


def synthetic_source(clean_paths, degradation, *, seed=None, with_names=False, cache=False,
                     deterministic=True):
    """Pairs made on the fly: target = a clean image, input = ``degradation(clean)``.

    Clean images are decoded with :func:`erlrestore.data.image_files.read_image` in
    parallel; the degradation runs in the graph as ``degradation(clean,
    element_seed)`` with a shape-[2] int64 stateless seed per element. The
    element seeds come from ``tf.data.Dataset.random(seed,
    rerandomize_each_iteration=True)``: they are reproducible given ``seed``
    and different on every pass over the data, so each epoch sees fresh
    rain/haze/noise on the same clean images.

    Args:
      clean_paths: paths of clean images, or a dataset of decoded
        ``(image, path)`` from :func:`clean_images` (e.g. cached and shared
        by several pipelines).
      degradation: callable ``f(clean, seed) -> degraded`` (see
        :mod:`erlrestore.data.synthetic`, e.g. ``make_degradation("rain")``).
      seed: pipeline seed (None: nondeterministic).
      with_names: also yield the clean file's path as a third component.
      cache: cache the decoded *clean* images in memory (the degradation is
        still drawn fresh each pass).
      deterministic: keep the element order of the parallel decode.
    """
    if isinstance(clean_paths, tf.data.Dataset):
        ds = clean_paths
    else:
        ds = clean_images(clean_paths, deterministic=deterministic)
    if cache:
        ds = ds.cache()
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)

    def degrade(element, element_seed):
        clean, path = element
        degraded = tf.convert_to_tensor(degradation(clean, element_seed), dtype=tf.float32)
        degraded = tf.ensure_shape(degraded, [None, None, 3])
        if with_names:
            return degraded, clean, path
        return degraded, clean

    return tf.data.Dataset.zip((ds, seeds)).map(
        degrade, num_parallel_calls=AUTOTUNE, deterministic=deterministic
    )


# ---------------------------------------------------------------------------
# Shared crop / augment path
# ---------------------------------------------------------------------------


def _mirror_indices(length, size):
    """Indices into an axis of ``length`` that reflect-pad it to ``size``.

    The padding is split evenly before/after. Reflection excludes the edge
    pixel (numpy's ``'reflect'``) and repeats as often as needed, so it
    works even when the image is less than half the target size; a
    1-pixel axis has nothing to mirror and is edge-replicated.
    """
    pad = tf.maximum(size - length, 0)
    before = pad // 2
    positions = tf.range(-before, length + pad - before)
    period = tf.maximum(2 * (length - 1), 1)
    folded = tf.math.floormod(positions, period)
    mirrored = tf.where(folded >= length, period - folded, folded)
    return tf.where(length > 1, mirrored, tf.zeros_like(positions))


def pad_to_min_size(image, min_size):
    """Reflect-pads an HxWxC ``image`` so both sides are at least ``min_size``.

    Images already large enough are returned unchanged. See
    :func:`_mirror_indices` for the padding rule (numpy-style reflect,
    repeated for tiny images; edge replication for 1-pixel sides).
    """
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)
    rows = _mirror_indices(shape[0], min_size)
    cols = _mirror_indices(shape[1], min_size)
    return tf.gather(tf.gather(image, rows, axis=0), cols, axis=1)


def _size_check_fn(min_size):
    """numpy check for generic sources: equal input/target sizes, >= min_size.

    Returns the input's shape, which the crop then uses, so the crop cannot
    run (and fail with a less helpful message) before the check.
    """

    def check(input_shape, target_shape, name):
        name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
        what = f"element {name!r}" if name else "a source element"
        input_shape = [int(v) for v in input_shape]
        target_shape = [int(v) for v in target_shape]
        if input_shape != target_shape:
            raise DataError(
                f"{what}: input is {input_shape[0]}x{input_shape[1]} but target is "
                f"{target_shape[0]}x{target_shape[1]} (HxW)"
            )
        _check_min_size(input_shape, min_size, what)
        return np.asarray(input_shape, dtype=np.int32)

    return check


def _random_crop(image, shape, crop_size, seed):
    """One stateless random ``crop_size`` square of ``image`` (of shape ``shape``)."""
    limit = shape[:2] - crop_size + 1
    offset = tf.random.stateless_uniform([2], seed=seed, maxval=tf.int32.max, dtype=tf.int32) % limit
    return tf.slice(image, tf.concat([offset, [0]], axis=0), [crop_size, crop_size, -1])


def _split_element(element):
    """(input, target[, name]) -> (input, target, name or '')."""
    if len(element) == 3:
        return element
    if len(element) == 2:
        return element[0], element[1], tf.constant("")
    raise ValueError(
        f"a source must yield (input, target) or (input, target, name), got {len(element)} components"
    )


def _augment(patch, seed):
    """Applies one of the 8 flips/90-degree rotations to a square patch."""
    k = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=8, dtype=tf.int32)
    patch = tf.cond(k % 2 == 1, lambda: tf.image.flip_left_right(patch), lambda: patch)
    return tf.image.rot90(patch, k // 2)


def train_dataset(pairs_or_source, *, crop_size, batch_size, augment=False, shuffle_buffer=64,
                  seed=None, deterministic=False, cache=False, pad_small=False, repeat=True):
    """Batches of aligned random ``crop_size`` crops: ``(input, target)``, each BxCxCx3.

    Order of operations: source -> [cache] -> shuffle -> [repeat] -> crop
    (+ augment) -> batch -> prefetch.

    * Alignment: input and target are concatenated on the channel axis and
      cropped (and flipped/rotated) *once*, so they can never drift apart.
    * Shuffling: given a list of pairs, the whole file list is shuffled each
      epoch before decoding (``shuffle_buffer`` then only matters with
      ``cache=True``, where decoded images are shuffled after the cache).
      Given a source dataset, its full images go through a
      ``shuffle_buffer``-element shuffle. ``shuffle_buffer=0`` disables
      shuffling.
    * ``cache=True`` caches the decoded *full* images in memory, before
      any random cropping, so every epoch still draws new crops.
    * ``augment=True`` applies one of the 8 flips / 90-degree rotations
      (uniformly), identically to input and target.
    * Images smaller than the crop raise a DataError naming the file and
      its size; with ``pad_small=True`` they are reflect-padded to the crop
      size instead (:func:`pad_to_min_size`: numpy-style reflect, repeated
      for very small images, edge replication for 1-pixel sides).
    * Batches are ``drop_remainder=True`` when ``repeat`` (static batch
      size); a single pass (``repeat=False``) keeps the last partial batch.

    Args:
      pairs_or_source: list of ``Pair`` or a source dataset yielding
        ``(input, target)`` or ``(input, target, name)``.
      crop_size: side of the square crops, in pixels.
      batch_size: crops per batch.
      augment: random flips / 90-degree rotations.
      shuffle_buffer: see above.
      seed: pipeline seed; None draws one at random.
      deterministic: with a seed, two datasets built alike yield identical
        batches; False lets parallel stages return elements out of order
        (faster). ``deterministic=True`` without a seed is an error.
      cache: cache decoded full images (memory!).
      pad_small: reflect-pad images smaller than the crop instead of failing.
      repeat: repeat forever (training); False gives one pass.
    """
    crop_size = int(crop_size)
    batch_size = int(batch_size)
    if crop_size < 1:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if shuffle_buffer is None:
        shuffle_buffer = 0
    if shuffle_buffer < 0:
        raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
    if deterministic and seed is None:
        raise ValueError("deterministic=True needs a seed (seed=None draws a random one)")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    seed = int(seed)

    if isinstance(pairs_or_source, tf.data.Dataset):
        ds = pairs_or_source
        if cache:
            ds = ds.cache()
        if shuffle_buffer:
            ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        generic = True
    else:
        pairs = list(pairs_or_source)
        ds = pairs_source(
            pairs,
            shuffle=bool(shuffle_buffer) and not cache,
            seed=seed,
            min_size=None if pad_small else crop_size,
            deterministic=deterministic,
        )
        if cache:
            ds = ds.cache()
            if shuffle_buffer:
                ds = ds.shuffle(len(pairs), seed=seed, reshuffle_each_iteration=True)
        generic = False

    if repeat:
        ds = ds.repeat()
    # One independent stateless seed per element; reproducible given `seed`,
    # fresh on each pass over a non-repeated dataset.
    seeds = tf.data.Dataset.random(seed=seed + 1, rerandomize_each_iteration=True).batch(2)
    check = _size_check_fn(None if pad_small else crop_size)

    def crop(element, element_seed):
        inp, tgt, name = _split_element(element)
        if generic:
            shape = tf.numpy_function(
                check, [tf.shape(inp), tf.shape(tgt), name], tf.int32, stateful=False
            )
            shape = tf.ensure_shape(shape, [3])
            with tf.control_dependencies([shape]):
                both = tf.concat([inp, tgt], axis=-1)
        else:  # pairs_source has checked the sizes where it knows the file names
            both = tf.concat([inp, tgt], axis=-1)
            shape = tf.shape(both)
        if pad_small:
            both = pad_to_min_size(both, crop_size)
            shape = tf.maximum(shape, [crop_size, crop_size, 0])
        crop_seed, aug_seed = tf.unstack(tf.random.experimental.stateless_split(element_seed, 2))
        patch = _random_crop(both, shape, crop_size, crop_seed)
        if augment:
            patch = _augment(patch, aug_seed)
        patch = tf.ensure_shape(patch, [crop_size, crop_size, 6])
        return patch[..., :3], patch[..., 3:]

    ds = tf.data.Dataset.zip((ds, seeds))
    ds = ds.map(crop, num_parallel_calls=AUTOTUNE, deterministic=deterministic)
    ds = ds.batch(batch_size, drop_remainder=repeat)
    ds = ds.prefetch(AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return ds.with_options(options)


def eval_dataset(pairs, *, batch_size=1):
    """Full-size ``(input, target, name)`` for evaluation; never resizes.

    ``pairs`` is a list of ``Pair`` (decoded in order) or a source dataset
    yielding ``(input, target, name)``. With ``batch_size=1`` elements
    come one image at a time, batched (1xHxWx3, names of shape [1]), in
    input order. With ``batch_size > 1`` images are grouped by their size:
    ``group_by_window`` keys each element on its (height, width) as it is
    decoded and emits a batch as soon as ``batch_size`` images of one size
    have arrived; leftover groups are flushed (as smaller batches) at the
    end. Every image appears exactly once, but the order is then by
    completed group, not input order — use the names.
    """
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if isinstance(pairs, tf.data.Dataset):
        ds = pairs
        if not isinstance(ds.element_spec, tuple) or len(ds.element_spec) != 3:
            raise ValueError("eval_dataset needs a source yielding (input, target, name)")
    else:
        ds = pairs_source(list(pairs), with_names=True, deterministic=True)
    if batch_size == 1:
        return ds.batch(1).prefetch(AUTOTUNE)

    def size_key(inp, tgt, name):
        shape = tf.shape(inp, out_type=tf.int64)
        return shape[0] * (2**31) + shape[1]

    ds = ds.group_by_window(
        key_func=size_key,
        reduce_func=lambda key, window: window.batch(batch_size),
        window_size=batch_size,
    )
    return ds.prefetch(AUTOTUNE)
