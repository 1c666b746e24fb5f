"""Restoring one image of any size: whole or in overlapping, blended tiles (:func:`restore_tiled`).

:func:`restore_tiled` runs a restorer (:mod:`erlrestore.inference.restorers`)
on one ``H x W x 3`` image, whole or in tiles (:func:`tile_grid`),
optionally as the x8 self-ensemble (:mod:`erlrestore.inference.ensemble`)
and at a working scale (:mod:`erlrestore.inference.work_scale`);
:func:`count_tiles` says how many model inputs that takes, for progress
bars.

Tiling (see :func:`tile_grid`), choices made here:

* Images no larger than ``tile`` in both sides go through in one call.
  Larger ones are cut into tiles of at most ``tile x tile`` pixels; along
  each axis the tiles start every ``stride`` pixels, and the last tile ends
  exactly at the image border. ``stride`` is ``tile - overlap`` rounded
  down to a multiple of ``align``, so neighbouring tiles overlap by at least
  ``overlap`` pixels.
* ``align``: every tile starts at a multiple of it. A U-Net that pads its
  input to a multiple of ``2**depth`` and down-samples ``depth`` times is
  only translation-equivariant for shifts by multiples of ``2**depth``, so
  tiles starting elsewhere see the image on a different down-sampling grid
  and their outputs differ from the whole-image output everywhere, not only
  near their edges. By default ``align`` is the restorer's ``multiple``
  attribute: the multiple of the model's ``PadToMultiple`` layers for Keras
  models. A SavedModel does not record it, nor does a plain function; then
  :data:`DEFAULT_ALIGN` (16) is used, which fits MEMD and ERL-Net at their
  default depth 4 and every smaller power of two (a pix2pix generator of 8
  levels needs ``align=256``). A last tile starting at an aligned position
  may be up to ``align - 1`` pixels narrower than ``tile``.
* Blending window (per tile, the outer product of one weight vector per
  axis). At a tile edge that lies inside the image, the outer quarter of
  the overlap (``overlap // 4`` pixels) gets weight 0: those pixels were
  computed next to the tile's artificial border (zero padding of the
  convolutions) and are the least accurate. The next ``overlap - 2 *
  (overlap // 4)`` pixels rise along a raised-cosine (Hann) half-window
  ``0.5 - 0.5 cos(pi (i + 0.5) / n)``, which is strictly between 0 and 1
  and complementary (``w[i] + w[n-1-i] = 1``), so two tiles overlapping by
  exactly ``overlap`` cross-fade with weights summing to 1; inward of that
  the weight is 1. Tile edges on the image border keep weight 1, so border
  pixels are always covered. Every pixel has positive total weight (the
  overlap is at least twice the zero margin). The result equals the
  whole-image output wherever the model's receptive-field radius is at most
  ``overlap // 4`` (and tiles are aligned); a model with global operations
  (squeeze-and-excitation pooling, instance normalisation) can only be
  approximated, and the cross-fade hides the remaining seams.
* Memory: the restored tiles are accumulated, weighted, into a float32
  ``H x W x 3`` sum and a float32 ``H x W`` weight sum, which are divided at
  the end; the model only ever sees ``tile_batch`` tiles at a time.
"""

import dataclasses
from typing import Optional

import numpy as np

from erlrestore.inference import ensemble
from erlrestore.inference.checks import check_image, check_int, run_restorer
from erlrestore.inference.work_scale import resolve_work_size, to_working_scale, transfer_correction, working_shape

# Tile alignment when the restorer's padding multiple is unknown (module docstring).
DEFAULT_ALIGN = 16



@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of :func:`tile_grid`: rows ``y0:y1``, columns ``x0:x1`` and its blending weight."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray  # float32 (y1 - y0) x (x1 - x0), >= 0


def check_tiling(tile, overlap, align=1):
    """Validates tiling parameters; returns the stride between tile starts.

    Each public entry point checks its parameters once, here, on entry
    (:func:`tile_grid`, :func:`count_tiles`, :func:`restore_tiled`, and
    :func:`~erlrestore.inference.restore_file` /
    :func:`~erlrestore.inference.restore_paths` through
    :func:`checked_tiling`); the work they hand on is not checked again.

    Raises:
      ValueError unless ``tile > 2 * overlap >= 0``, ``align >= 1`` and
      ``tile - overlap >= align`` (else no aligned stride fits).
    """
    overlap = check_int(overlap, "overlap", 0)
    tile = check_int(tile, "tile", 1)
    align = check_int(align, "align", 1)
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    stride = (tile - overlap) // align * align
    if stride < 1:
        raise ValueError(
            f"tile - overlap ({tile - overlap}) is smaller than the alignment {align} (the model's "
            f"padding multiple); use a tile of at least {align + overlap} pixels"
        )
    return stride


def _segments(size, tile, stride, align):
    """``[(start, end), ...]`` along one axis of ``size`` pixels (see the module docstring)."""
    if size <= tile:
        return [(0, size)]
    starts = list(range(0, size - tile, stride))
    last = -(-(size - tile) // align) * align  # the first aligned start whose tile reaches no further than size
    return [(start, start + tile) for start in starts] + [(last, size)]


def _ramp(length):
    """Raised-cosine rise of ``length`` values, strictly inside (0, 1), ``r[i] + r[-1-i] = 1``."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)


def _axis_weights(start, end, size, overlap):
    """The window of one segment ``start:end`` of an axis of ``size`` pixels."""
    weights = np.ones(end - start, dtype=np.float64)
    margin = overlap // 4
    rise = _ramp(overlap - 2 * margin)
    if start > 0:  # inner edge: drop the margin, then rise
        weights[:margin] = 0.0
        weights[margin : margin + rise.size] *= rise
    if end < size:
        weights[weights.size - margin :] = 0.0
        weights[weights.size - margin - rise.size : weights.size - margin] *= rise[::-1]
    return weights


def tile_grid(height, width, tile=512, overlap=32, align=1):
    """The tiles :func:`restore_tiled` uses for an image of ``height x width``, with their weights.

    A generator of :class:`Tile`, row by row. Tiles are at most ``tile`` pixels
    on each side, start at multiples of ``align``, overlap their neighbours
    by at least ``overlap`` pixels and end exactly at the image border (see
    the module docstring for the window). An image no larger than ``tile``
    in both sides is one tile of weight 1.

    Raises:
      ValueError for bad sizes or tiling parameters (:func:`check_tiling`),
      when called (before the first tile is asked for).
    """
    stride = check_tiling(tile, overlap, align)
    tiling = CheckedTiling(int(tile), int(overlap), int(align), stride)
    return _grid(check_int(height, "height", 1), check_int(width, "width", 1), tiling)


def _grid(height, width, tiling):
    """:func:`tile_grid` for checked sizes and a checked :class:`CheckedTiling` (tile not None)."""
    tile, overlap, align, stride = tiling.tile, tiling.overlap, tiling.align, tiling.stride
    rows = [(y0, y1, _axis_weights(y0, y1, height, overlap)) for y0, y1 in _segments(height, tile, stride, align)]
    cols = [(x0, x1, _axis_weights(x0, x1, width, overlap)) for x0, x1 in _segments(width, tile, stride, align)]
    for y0, y1, wy in rows:
        for x0, x1, wx in cols:
            yield Tile(y0, y1, x0, x1, np.outer(wy, wx).astype(np.float32))


@dataclasses.dataclass(frozen=True)
class CheckedTiling:
    """Tiling parameters that passed :func:`checked_tiling`, with the stride they give.

    ``tile`` None: never tile (``stride`` is then None and ``overlap`` is
    not used). The functions taking one do not check it again.
    """

    tile: Optional[int]
    overlap: int
    align: int
    stride: Optional[int]
    tile_batch: int = 1


def checked_tiling(restorer, tile=512, overlap=32, align=None, tile_batch=1):
    """Checks tiling parameters once (:func:`check_tiling`, ``tile_batch >= 1``); returns a :class:`CheckedTiling`.

    ``align`` None is the restorer's padding multiple
    (:func:`default_align`). :func:`restore_tiled` and
    :func:`~erlrestore.inference.restore_paths` call it on entry, so a
    folder of images is checked once, not once per image or tile.

    Raises:
      ValueError as :func:`check_tiling`, or for ``tile_batch < 1``.
    """
    align = default_align(restorer, align)
    tile_batch = check_int(tile_batch, "tile_batch", 1)
    if tile is None:  # never tiled: overlap and align are not used
        return CheckedTiling(None, overlap, align, None, tile_batch)
    stride = check_tiling(tile, overlap, align)
    return CheckedTiling(int(tile), int(overlap), int(align), stride, tile_batch)


def count_tiles(height, width, tile=512, overlap=32, align=1, self_ensemble=False, work_size=None):
    """How many tiles (model inputs) :func:`restore_tiled` restores for a ``height x width`` image.

    The number of :func:`tile_grid` tiles (1 for an image no larger than
    ``tile``, or for ``tile=None``); with ``self_ensemble``, the sum over the
    8 transforms (4 of them see the image turned, ``width x height``).
    ``work_size`` (pixels or None, already resolved:
    :func:`~erlrestore.inference.work_scale.resolve_work_size`) counts the
    tiles of the image at its working scale
    (:func:`~erlrestore.inference.work_scale.working_shape`).
    Progress bars count these. Raises ValueError as :func:`tile_grid`.
    """
    height = check_int(height, "height", 1)
    width = check_int(width, "width", 1)
    return count_checked_tiles(height, width, checked_tiling(None, tile, overlap, align), self_ensemble, work_size)


def count_checked_tiles(height, width, tiling, self_ensemble=False, work_size=None):
    """:func:`count_tiles` with a :class:`CheckedTiling` (from :func:`checked_tiling`), not checked again."""
    def one(h, w):
        if tiling.tile is None or (h <= tiling.tile and w <= tiling.tile):
            return 1
        return (len(_segments(h, tiling.tile, tiling.stride, tiling.align))
                * len(_segments(w, tiling.tile, tiling.stride, tiling.align)))

    height, width = working_shape(height, width, work_size) or (height, width)
    if self_ensemble:
        return 4 * one(height, width) + 4 * one(width, height)
    return one(height, width)


def default_align(restorer, align=None):
    """``align`` when given, else the restorer's padding multiple, else :data:`DEFAULT_ALIGN`."""
    if align is not None:
        return align
    return getattr(restorer, "multiple", None) or DEFAULT_ALIGN


def restore_tiled(restorer, image, tile=512, overlap=32, align=None, tile_batch=1, self_ensemble=False,
                  on_tiles=None, work_size=None):
    """Restores one ``H x W x 3`` image of any size; returns float32 ``H x W x 3`` in [0, 1].

    Args:
      restorer: a callable on float32 ``[B, h, w, 3]`` batches returning the
        same shape (a :class:`~erlrestore.inference.restorers.Restorer`, or any
        function).
      image: the degraded image, float values in [0, 1].
      tile: largest tile side; an image no larger in both sides is restored
        in one call. None: never tile, the whole image goes through in one
        call (``overlap`` and ``align`` are then unused).
      overlap: least overlap of neighbouring tiles (pixels); the window
        discards ``overlap // 4`` pixels at inner tile edges and cross-fades
        over the rest (module docstring).
      align: tiles start at multiples of this; ``None``: the restorer's
        ``multiple`` attribute, or :data:`DEFAULT_ALIGN` when it has none.
      tile_batch: up to this many tiles of one size go to the restorer per
        call (faster on accelerators; memory grows with it).
      self_ensemble: average the x8 flip/rotation self-ensemble; with tiling
        the whole tiled restoration of each transformed image is ensembled
        (:mod:`erlrestore.inference.ensemble`). 8 times the model calls.
      on_tiles: called after each model call with the number of tiles it
        restored (progress; they add up to :func:`count_tiles`).
      work_size: the working scale (:mod:`erlrestore.inference.work_scale`): ``"auto"`` (the
        restorer's ``trained_short_side``, from a shipped model's card),
        None / ``"none"`` (the image's own scale, the default) or a shorter
        side in pixels. An image whose shorter side is more than
        :data:`~erlrestore.inference.work_scale.WORK_MARGIN` times the working size is shrunk to it,
        restored (tiled, ensembled, as asked) and the model's correction
        brought back to full size
        (:func:`~erlrestore.inference.work_scale.transfer_correction`).

    Raises:
      ValueError for a bad image, bad tiling parameters (``tile > 2 *
      overlap >= 0`` is required), a bad ``work_size`` or a restorer that
      changes the shape. The parameters are checked once, on entry
      (:func:`checked_tiling`).
    """
    image = check_image(image)
    tiling = checked_tiling(restorer, tile, overlap, align, tile_batch)
    return restore_checked(restorer, image, tiling, self_ensemble, on_tiles, resolve_work_size(work_size, restorer))


def restore_checked(restorer, image, tiling, self_ensemble=False, on_tiles=None, work_size=None):
    """:func:`restore_tiled` with checked arguments, which it does not check again.

    ``image``: float32 ``H x W x 3`` (:func:`~erlrestore.inference.checks.check_image`);
    ``tiling``: a :class:`CheckedTiling` (:func:`checked_tiling`);
    ``work_size``: pixels or None (resolved,
    :func:`~erlrestore.inference.work_scale.resolve_work_size`).
    """
    height, width = image.shape[:2]
    shape = working_shape(height, width, work_size)
    if shape is not None:
        small = to_working_scale(image, shape)
        restored = restore_checked(restorer, small, tiling, self_ensemble, on_tiles)
        return transfer_correction(image, small, restored)
    tile, tile_batch = tiling.tile, tiling.tile_batch
    whole = tile is None or (height <= tile and width <= tile)
    if self_ensemble:
        if whole:
            return ensemble.ensemble_in_one_call(restorer, image, tile_batch, on_tiles)
        return ensemble.self_ensemble(lambda moved: restore_checked(restorer, moved, tiling, on_tiles=on_tiles), image)
    if whole:
        restored = np.clip(run_restorer(restorer, image[np.newaxis])[0], 0.0, 1.0)
        if on_tiles is not None:
            on_tiles(1)
        return restored

    total = np.zeros(image.shape, dtype=np.float32)
    weight_sum = np.zeros(image.shape[:2], dtype=np.float32)
    pending = []

    def flush():
        batch = np.stack([image[t.y0 : t.y1, t.x0 : t.x1] for t in pending])
        for t, restored in zip(pending, run_restorer(restorer, batch)):
            total[t.y0 : t.y1, t.x0 : t.x1] += restored * t.weight[:, :, np.newaxis]
            weight_sum[t.y0 : t.y1, t.x0 : t.x1] += t.weight
        if on_tiles is not None:
            on_tiles(len(pending))
        pending.clear()

    for t in _grid(height, width, tiling):
        if pending and (len(pending) == tile_batch or t.weight.shape != pending[0].weight.shape):
            flush()
        pending.append(t)
    flush()
    total /= weight_sum[:, :, np.newaxis]
    return np.clip(total, 0.0, 1.0, out=total)
