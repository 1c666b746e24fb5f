"""Argument handling every degradation shares: images, seeds, ranges and sampling.

Parameters are plain Python numbers or ``(low, high)`` pairs; ``_as_range``
validates one and the ``_check_*`` helpers build the validators each
degradation module declares for its own parameters (its ``PARAM_CHECKS``
table, which :mod:`erlrestore.data.degradations.registry` collects).
"""

import math

import numpy as np
import tensorflow as tf


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


def collect_checks(*tables):
    """One ``{name: validator}`` dict from the modules' ``PARAM_CHECKS``; a name declared twice is an error."""
    merged = {}
    for table in tables:
        for name, check in table.items():
            if name in merged:
                raise RuntimeError(f"degradation parameter {name!r} is declared by two modules")
            merged[name] = check
    return merged
