"""The working scale (``work_size``): large photos restored at the scale a model was trained at.

Used by :func:`erlrestore.inference.restore_tiled` and through it by
``erlrestore-restore --work_size``, ``erlrestore.restore(...,
work_size=...)`` and ``erlrestore-serve --work_size``. A model learns
rain streaks, haze or noise at the scale of its training photos, and on a
much larger photo (8 megapixels of a scene it saw at 481 x 321) the same
streaks are several times wider than anything it saw: it blurs them instead
of removing them and adds thin artifacts of its own. With a working size,
an image whose shorter side is more than :data:`WORK_MARGIN` (1.5) times it
is shrunk by area averaging (:func:`to_working_scale`) so that its shorter
side is the working size, restored there (tiled and ensembled as asked),
and brought back by correction transfer (:func:`transfer_correction`):
``output = input + upsample(restored_small - input_small)``, the difference
upsampled bicubically and the sum clipped to [0, 1]. Choices made here:

* Transferring the correction rather than upsampling the restored image
  keeps the photo's own fine detail wherever the model changed nothing
  (an identity model gives back the input exactly); only what the model
  removes, which at this scale is smooth, is upsampled.
* The margin: below 1.5 times the working size the scale is close to the
  training scale (random crops and the spread of streak widths in training
  cover it), and shrinking would throw away detail for little gain, so the
  image is restored as it is. Above it the image is always shrunk to the
  working size exactly.
* ``work_size="auto"`` is the restorer's ``trained_short_side``, which
  :func:`erlrestore.inference.load_restorer` reads from a shipped model's card
  (:func:`erlrestore.pretrained.trained_short_side`; 321 for the de-raining
  models trained on BSDS500 photos); any other model has none, so ``auto``
  does nothing for it, nor for a shipped card without the field. ``none``
  (None, the library functions' default) restores at the image's own scale;
  a number of pixels sets the working size for any model.
  ``erlrestore-restore`` and :func:`erlrestore.restore` default to
  ``auto``; ``erlrestore-serve``, whose SavedModels carry no card, to
  ``none``.
"""

import numpy as np

from erlrestore.inference.checks import check_int

# Only images whose shorter side exceeds the working size by more than this factor are restored at the working scale.
WORK_MARGIN = 1.5
WORK_SIZE_FORMS = "auto, none, or a whole number of pixels >= 1 (e.g. 321)"
AUTO, NONE = "auto", "none"


def parse_work_size(value):
    """``value`` (an argument or flag value) as ``"auto"``, None or a whole number of pixels.

    Accepted: ``"auto"``; None or ``"none"`` (today's behaviour: no working
    scale); an integer >= 1 or a string of digits. Case and surrounding
    spaces are ignored. Raises ValueError listing the valid forms
    (:data:`WORK_SIZE_FORMS`) otherwise.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in (AUTO, NONE):
            return None if text == NONE else AUTO
        if text.isascii() and text.isdigit() and int(text) >= 1:
            return int(text)
    elif not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1:
        return int(value)
    raise ValueError(f"work_size must be {WORK_SIZE_FORMS}; got {value!r}")


def resolve_work_size(work_size, restorer=None):
    """The working size in pixels (or None) that ``work_size`` means for ``restorer``.

    ``"auto"`` is the restorer's ``trained_short_side`` (a shipped model's
    card, :func:`erlrestore.pretrained.trained_short_side`), None for any
    other restorer; ``"none"`` / None is None; a number is itself.
    ValueError as :func:`parse_work_size`.
    """
    work_size = parse_work_size(work_size)
    if work_size == AUTO:
        return getattr(restorer, "trained_short_side", None)
    return work_size


def working_shape(height, width, work_size, margin=WORK_MARGIN):
    """``(h, w)`` a ``height x width`` image is restored at, or None to restore it at its own size.

    None unless ``work_size`` is a number of pixels and the shorter side is
    more than ``margin`` times it; then the shorter side becomes exactly
    ``work_size`` and the other side keeps the aspect ratio (rounded, at
    least 1).
    """
    height = check_int(height, "height", 1)
    width = check_int(width, "width", 1)
    if work_size is None:
        return None
    work_size = check_int(work_size, "work_size", 1)
    short = min(height, width)
    if short <= margin * work_size:
        return None
    scale = work_size / short
    small_h = work_size if height == short else max(1, round(height * scale))
    small_w = work_size if width == short else max(1, round(width * scale))
    return small_h, small_w


def to_working_scale(image, shape):
    """``image`` shrunk to ``shape`` (h, w) by area averaging (float32; each output pixel is the mean it covers)."""
    import cv2  # pylint: disable=import-outside-toplevel

    height, width = shape
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def transfer_correction(image, small, restored_small):
    """The correction the model made at the working scale, applied to the full-size ``image``.

    ``image + upsample(restored_small - small)``, the difference upsampled
    bicubically to ``image``'s size, clipped to [0, 1] (float32). Where the
    model changed nothing the photo keeps every pixel, its fine detail
    included; only what the model removed (or added) is brought back up.
    """
    import cv2  # pylint: disable=import-outside-toplevel

    height, width = image.shape[:2]
    correction = np.asarray(restored_small, dtype=np.float32) - np.asarray(small, dtype=np.float32)
    output = cv2.resize(correction, (width, height), interpolation=cv2.INTER_CUBIC)
    output += image
    return np.clip(output, 0.0, 1.0, out=output)
