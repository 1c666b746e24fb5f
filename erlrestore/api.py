"""Restoring an image array in one call: ``erlrestore.restore(image)``.

    import erlrestore
    restored = erlrestore.restore(rainy)                      # pretrained:erlnet-derain
    restored = erlrestore.restore(rainy, model="runs/memd")   # anything erlrestore-restore takes

:func:`restore` is for people working in Python (a notebook, a script) who
hold the image as a NumPy array: it loads the model (once per model spec,
see below), tiles large images as ``erlrestore-restore`` does
(:func:`erlrestore.inference.restore_tiled`), clips to [0, 1] and gives the
result back in the caller's pixel type.

Pixel types, as the file reader reads files
(:func:`erlrestore.data.image_files.read_image`): ``uint8`` is 0-255,
``uint16`` 0-65535, floats are [0, 1]. A float array with values clearly
outside [0, 1] (beyond :data:`FLOAT_TOLERANCE`) is refused: it is almost
always 0-255 data, which the model would see as a blown-out image. Values
within the tolerance (rounding of float arithmetic) are clipped.

Model cache: a model given by its spec (``pretrained:<name>`` or a path) is
loaded on the first call and kept for the next ones, keyed by the spec (the
real path for files and folders, and ``$ERLRESTORE_PRETRAINED_DIR`` for
shipped models); a path is loaded again when its modification time changes
(a run folder whose ``final.keras`` was replaced, a SavedModel folder with
a new version). :func:`clear_cache` forgets them all. A shipped model's
restorer keeps the training scale its card records, which
``work_size="auto"`` (the default) uses for large photos. An in-memory
``keras.Model`` is used as it is (its traced function is shared by the calls,
:mod:`erlrestore.inference`).
"""

import os
import threading

import numpy as np

DEFAULT_MODEL = "pretrained:erlnet-derain"
# How far outside [0, 1] float pixels may lie (float arithmetic) before the image is refused.
FLOAT_TOLERANCE = 0.01

_SCALES = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}

_cache = {}  # key -> (modification time or None, restorer)
_cache_lock = threading.Lock()


def clear_cache():
    """Forgets every model :func:`restore` has loaded (frees their memory once nothing else holds them)."""
    with _cache_lock:
        _cache.clear()


def _cache_key(spec):
    """(key, modification time) for a model spec; the time is None for shipped models."""
    from erlrestore import pretrained

    if pretrained.is_pretrained(spec):
        return ("pretrained", pretrained.models_folder(), pretrained.name_of(spec)), None
    path = os.path.realpath(os.fspath(spec))
    try:
        modified = os.stat(path).st_mtime_ns
    except OSError:
        modified = None  # missing: the loader says so
    return ("path", path), modified


def _restorer(model):
    """The restorer for ``model`` (a spec, a ``keras.Model`` or a restorer), from the cache when loaded before."""
    from erlrestore import inference

    if not isinstance(model, (str, os.PathLike)):
        return inference.as_restorer(model)
    key, modified = _cache_key(model)
    with _cache_lock:  # one load per model, also when threads ask at once
        cached = _cache.get(key)
        if cached is not None and cached[0] == modified:
            return cached[1]
        restorer = inference.load_restorer(model)
        _cache[key] = (modified, restorer)
        return restorer


def _as_float_rgb(image):
    """``image`` (an array) as float32 H x W x 3 in [0, 1] (see the module docstring)."""
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"expected an H x W x 3 RGB image or an H x W grey one, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"the image is empty (shape {image.shape})")
    scale = _SCALES.get(image.dtype)
    if scale is not None:
        pixels = image.astype(np.float32) / np.float32(scale)
    elif np.issubdtype(image.dtype, np.floating):
        if not np.all(np.isfinite(image)):
            raise ValueError("the image contains NaN or infinite values")
        low, high = float(image.min()), float(image.max())
        if high > 1.0 + FLOAT_TOLERANCE:
            raise ValueError(
                f"float images must be in [0, 1], got values up to {high:.4g}: 0-255 data? Divide it by 255, "
                "or pass it as uint8"
            )
        if low < -FLOAT_TOLERANCE:
            raise ValueError(f"float images must be in [0, 1], got values down to {low:.4g}")
        pixels = np.clip(image, 0.0, 1.0).astype(np.float32)
    else:
        raise ValueError(f"images must be uint8, uint16 or float in [0, 1], got dtype {image.dtype}")
    if pixels.ndim == 2:  # grey: replicated to RGB, as the file reader does
        pixels = np.repeat(pixels[:, :, np.newaxis], 3, axis=2)
    return pixels


def restore(image, model=DEFAULT_MODEL, tile=512, overlap=32, self_ensemble=False, work_size="auto"):
    """Restores one image array with ``model``; returns H x W x 3 in the image's pixel type.

    Args:
      image: a NumPy array (or anything ``np.asarray`` takes), ``H x W x 3``
        RGB or ``H x W`` (or ``H x W x 1``) grey, replicated to RGB; ``uint8``
        (0-255), ``uint16`` (0-65535) or float in [0, 1].
      model: ``pretrained:<name>`` (:func:`erlrestore.pretrained.list`), any
        path ``erlrestore-restore --model`` takes (a ``.keras`` file, a
        training run folder, a SavedModel version or model folder), a
        ``keras.Model`` or a restorer (:mod:`erlrestore.inference`). Loaded
        models are cached (module docstring).
      tile: images larger than this in either side are restored in
        overlapping tiles of at most ``tile x tile`` pixels; None: always whole.
      overlap: least overlap of neighbouring tiles in pixels (``tile > 2 *
        overlap``).
      self_ensemble: average the x8 flip/rotation self-ensemble (8 times the
        model calls).
      work_size: the working scale (:mod:`erlrestore.inference`):
        ``"auto"`` (default) restores an image whose shorter side is more
        than 1.5 times the scale a shipped model was trained at (its card's
        ``trained_short_side``, 321 for the de-raining models) at that scale
        and transfers the correction back to full size; it does nothing for
        other models. ``"none"`` (or None): restore at the image's own
        scale; a number of pixels: that shorter side, for any model.

    Returns:
      The restored image, ``H x W x 3``, clipped to [0, 1]: ``uint8`` for
      ``uint8`` input, ``uint16`` for ``uint16`` (both rounded to the nearest
      level), ``float32`` for float input.

    Raises:
      ValueError for an image of another shape or pixel type, float pixels
      outside [0, 1] (0-255 data: divide by 255 or pass ``uint8``), NaN,
      bad tiling parameters or a bad ``work_size`` (checked before the model
      is loaded); DataError for a model that cannot be loaded.
    """
    from erlrestore import inference

    work_size = inference.parse_work_size(work_size)
    image = np.asarray(image)
    pixels = _as_float_rgb(image)
    restored = inference.restore_tiled(_restorer(model), pixels, tile=tile, overlap=overlap,
                                       self_ensemble=self_ensemble, work_size=work_size)
    restored = np.clip(restored, 0.0, 1.0).astype(np.float32, copy=False)
    scale = _SCALES.get(image.dtype)
    if scale is None:
        return restored
    return np.rint(restored * scale).astype(image.dtype)
