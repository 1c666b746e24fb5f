"""Restoring images of any size with a trained model: loading, tiling, files.

:func:`load_restorer` turns a saved model (a ``.keras`` file, a training run
folder, or a TF Serving SavedModel) into a :class:`Restorer`, a callable on
float32 ``[B, H, W, 3]`` batches in [0, 1]. :func:`restore_tiled` runs it on
one image of any size in overlapping tiles, :func:`restore_file` on one file
and :func:`restore_paths` on files and folders (the ``erlrestore-restore``
tool).

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

x8 self-ensemble (``self_ensemble=True``; :func:`self_ensemble`,
:data:`ENSEMBLE_TRANSFORMS`), the geometric ensemble of EDSR/RCAN
(``forward_x8``): the model restores the 8 flips/rotations of the image (the
identity, rotations by 90, 180 and 270 degrees, and the same four after a
horizontal flip), each output is transformed back and the 8 are averaged.
Choices made here:

* With tiling, the WHOLE tiled restoration is ensembled (not each tile):
  each of the 8 transformed images is tiled on its own, with tiles aligned
  to the transformed image's origin as for any image, and restored exactly
  as :func:`restore_tiled` would restore it; the 8 results are transformed
  back and averaged. The result is therefore the ensemble of the 8
  whole-image restorations wherever tiling itself equals the whole-image
  restoration (module docstring above), and a U-Net's down-sampling grid
  stays anchored to each transformed image's corner, as it would be without
  tiling. (Ensembling each tile instead would anchor a flipped tile's grid
  at the tile's far edge, which is not on the transformed image's grid.)
  Rotations swap height and width, so a non-square image gives tiles of
  the swapped shape for four of the transforms.
* An image no larger than ``tile`` in both sides is restored in one call
  per transform, the transforms of equal shape batched ``tile_batch`` at a
  time (4 + 4 for a non-square image).
* Each transform's output is clipped to [0, 1] (every restorer output is)
  before the average, and the average is accumulated in float32 in the
  order of :data:`ENSEMBLE_TRANSFORMS`. It costs 8 times the model calls;
  the extra memory is two ``H x W x 3`` float32 images (the transformed
  input and the running sum) beside one tiled restoration.

Files (:func:`restore_file`): the output keeps the input's format, chosen by
the output's extension (the same as the input's in :func:`restore_paths`):
PNG and TIFF inputs with more than 8 bits per sample (16-bit, or
floating-point TIFF) are written with 16 bits, 8-bit ones with 8; JPEG is
written with quality 95 and BMP with 8 bits. The bit depth is read from the
file header (PNG ``IHDR``, TIFF ``BitsPerSample``). Writing is atomic
(:func:`erlrestore.data.io.write_image`).
"""

import dataclasses
import math
import os

import numpy as np
import tensorflow as tf

from erlrestore import pretrained
from erlrestore.data import io
from erlrestore.progress import progress

# The serving signature of erlrestore's SavedModels (erlrestore/export.py).
SIGNATURE = "serving_default"
INPUT_KEY = "images"
OUTPUT_KEY = "restored"

_BATCH_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32)

# Tile alignment when the restorer's padding multiple is unknown (module docstring).
DEFAULT_ALIGN = 16


class Restorer:
    """A restoration model as a callable on float32 ``[B, H, W, 3]`` batches in [0, 1].

    Calling it returns a NumPy float32 array of the batch's shape, clipped to
    [0, 1]. The model runs inside one ``tf.function`` whose input signature
    has dynamic batch, height and width, so tiles and images of different
    sizes reuse one trace.

    Attributes:
      source: where the model was loaded from (a path), or a description.
      multiple: the model pads its input to a multiple of this (None when
        unknown, as for SavedModels); :func:`restore_tiled` aligns tiles to it.
    """

    def __init__(self, function, source, multiple=None, keep_alive=None):
        """Wraps ``function`` (tensor ``[B, H, W, 3]`` -> tensor of the same shape)."""
        self.source = source
        self.multiple = None if multiple is None else int(multiple)
        self._keep_alive = keep_alive  # the Keras model / loaded SavedModel the function uses

        @tf.function(input_signature=[_BATCH_SPEC])
        def restore(batch):
            return tf.clip_by_value(tf.cast(function(batch), tf.float32), 0.0, 1.0)

        self._function = restore

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"a restorer takes a [B, H, W, 3] batch, got shape {batch.shape}")
        output = self._function(tf.constant(batch))
        output = np.asarray(output)
        if output.shape != batch.shape:
            raise ValueError(
                f"the model from {self.source} turned a batch of shape {batch.shape} into shape "
                f"{output.shape}; a restoration model must keep the size"
            )
        return output

    def __repr__(self):
        return f"Restorer(source={self.source!r}, multiple={self.multiple})"


def _pad_multiple(model):
    """The least common multiple of the ``multiple`` of every PadToMultiple layer in ``model`` (None if none)."""
    from erlrestore.layers import PadToMultiple

    result = None
    stack = [model]
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, PadToMultiple):
            result = math.lcm(result or 1, int(layer.multiple))
        stack.extend(getattr(layer, "layers", None) or [])
    return result


def restorer_from_model(model, source=None):
    """A :class:`Restorer` around an in-memory Keras model (run with ``training=False``)."""
    source = source or f"Keras model {model.name!r}"

    def call(batch):
        output = model(batch, training=False)
        if isinstance(output, (list, tuple)):
            raise ValueError(f"{source} returns {len(output)} outputs; expected one restored image")
        return output

    return Restorer(call, source, multiple=_pad_multiple(model), keep_alive=model)


def _load_keras(path):
    from erlrestore import evaluation  # imports erlrestore.layers, registering the custom layers

    return restorer_from_model(evaluation.load_model(path), source=path)


def _load_savedmodel(path):
    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TF raises many types for a bad SavedModel.
        raise io.DataError(f"could not load SavedModel {path}: {type(error).__name__}: {error}") from error
    signatures = getattr(loaded, "signatures", {})
    if SIGNATURE not in signatures:
        raise io.DataError(
            f"SavedModel {path} has no {SIGNATURE!r} signature (it has: {', '.join(sorted(signatures)) or 'none'})"
        )
    function = signatures[SIGNATURE]
    inputs = function.structured_input_signature[1]
    if INPUT_KEY not in inputs:
        raise io.DataError(
            f"the {SIGNATURE!r} signature of SavedModel {path} takes {sorted(inputs)}, not {INPUT_KEY!r}"
        )
    outputs = function.structured_outputs
    if OUTPUT_KEY not in outputs:
        raise io.DataError(
            f"the {SIGNATURE!r} signature of SavedModel {path} returns {sorted(outputs)}, not {OUTPUT_KEY!r}"
        )

    def call(batch):
        return function(**{INPUT_KEY: batch})[OUTPUT_KEY]

    return Restorer(call, path, multiple=None, keep_alive=loaded)


def _latest_version(path, marker="saved_model.pb"):
    """The largest integer-named sub-folder of ``path`` that holds ``marker``, or None."""
    versions = []
    for name in os.listdir(path):
        if name.isdigit() and os.path.isfile(os.path.join(path, name, marker)):
            versions.append(int(name))
    if not versions:
        return None
    best = max(versions)
    # Keep the folder's own spelling (e.g. "007").
    return next(
        os.path.join(path, name)
        for name in os.listdir(path)
        if name.isdigit() and int(name) == best and os.path.isfile(os.path.join(path, name, marker))
    )


# --------------------------------------------------------------------------
# ONNX models (erlrestore-export --format=onnx) run with onnxruntime.
# --------------------------------------------------------------------------

BACKENDS = ("tensorflow", "onnxruntime")
ONNX_FILE = "model.onnx"  # erlrestore.export.ONNX_FILE
ONNX_MULTIPLE_KEY = "erlrestore.multiple"  # erlrestore.export.ONNX_MULTIPLE_KEY


class OnnxRestorer:
    """A :class:`Restorer`-compatible callable running an ONNX model with onnxruntime (CPU).

    Takes and returns float32 ``[B, H, W, 3]`` NumPy batches in [0, 1]
    (clipped), like :class:`Restorer`. ``multiple`` is read from the model's
    metadata (written by :func:`erlrestore.export.export_onnx`), else None.
    """

    def __init__(self, path, threads=None):
        try:
            import onnxruntime
        except ImportError as error:
            raise io.DataError(
                f"--backend=onnxruntime needs onnxruntime ({error}); install it with pip install 'erlrestore[onnx]'"
            ) from error
        self.source = path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise io.DataError(f"could not load ONNX model {path}: {type(error).__name__}: {error}") from error
        inputs = [i.name for i in self._session.get_inputs()]
        outputs = [o.name for o in self._session.get_outputs()]
        if inputs != [INPUT_KEY]:
            raise io.DataError(f"ONNX model {path} takes inputs {inputs}, not [{INPUT_KEY!r}]")
        if OUTPUT_KEY not in outputs:
            raise io.DataError(f"ONNX model {path} returns {outputs}, not {OUTPUT_KEY!r}")
        metadata = self._session.get_modelmeta().custom_metadata_map
        try:
            self.multiple = int(metadata[ONNX_MULTIPLE_KEY])
        except (KeyError, ValueError):
            self.multiple = None

    def __call__(self, batch):
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(f"a restorer takes a [B, H, W, 3] batch, got shape {batch.shape}")
        output = self._session.run([OUTPUT_KEY], {INPUT_KEY: batch})[0]
        output = np.clip(np.asarray(output, dtype=np.float32), 0.0, 1.0)
        if output.shape != batch.shape:
            raise ValueError(
                f"the model from {self.source} turned a batch of shape {batch.shape} into shape "
                f"{output.shape}; a restoration model must keep the size"
            )
        return output

    def __repr__(self):
        return f"OnnxRestorer(source={self.source!r}, multiple={self.multiple})"


def _onnx_file(path):
    """The model.onnx that ``path`` names (the file, a version folder or a model folder), or None."""
    if os.path.isfile(path):
        return path if path.lower().endswith(".onnx") else None
    if os.path.isfile(os.path.join(path, ONNX_FILE)):
        return os.path.join(path, ONNX_FILE)
    version = _latest_version(path, ONNX_FILE)
    return None if version is None else os.path.join(version, ONNX_FILE)


def load_restorer(path, backend="tensorflow"):
    """Loads a restoration model from ``path`` as a :class:`Restorer`.

    ``path`` may be:

    * ``pretrained:<name>``, a model shipped in the package
      (:mod:`erlrestore.pretrained`);
    * a ``.keras`` (or ``.h5``) model file;
    * a training run folder (``erlrestore-train``'s ``--model_dir``), which
      holds ``final.keras``;
    * a SavedModel version folder (holding ``saved_model.pb``), run through
      its ``serving_default`` signature (``images`` -> ``restored``);
    * a SavedModel model folder of integer-named version folders (TF
      Serving's layout); the largest version is loaded.

    A folder that is both (``saved_model.pb`` and ``final.keras``) is read
    as a SavedModel.

    With ``backend="onnxruntime"``, ``path`` must instead be a ``.onnx``
    file, an ONNX version folder holding ``model.onnx`` or a model folder
    of such version folders (the largest is used), as written by
    ``erlrestore-export --format=onnx``; it is run by onnxruntime on the CPU
    (:class:`OnnxRestorer`, as many threads as CPUs). Keras models and
    SavedModels are not converted on the fly: export them first.

    Raises:
      DataError naming ``path`` when it does not exist, is none of the
      above, or cannot be loaded.
      ValueError for an unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "onnxruntime":
        return _load_onnx(path)
    if pretrained.is_pretrained(path):
        return restorer_from_model(pretrained.load(path), source=path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise io.DataError(f"model path {path} does not exist")
    if os.path.isfile(path):
        if os.path.splitext(path)[1].lower() == ".onnx":
            raise io.DataError(f"model file {path} is an ONNX model: run it with --backend=onnxruntime")
        if os.path.splitext(path)[1].lower() not in (".keras", ".h5"):
            raise io.DataError(
                f"model file {path} is not a .keras or .h5 file (give a .keras file, a training run "
                "folder or a SavedModel folder)"
            )
        return _load_keras(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return _load_savedmodel(path)
    final = os.path.join(path, "final.keras")
    if os.path.isfile(final):
        return _load_keras(final)
    version = _latest_version(path)
    if version is not None:
        return _load_savedmodel(version)
    if _onnx_file(path) is not None:
        raise io.DataError(f"folder {path} holds an ONNX model: run it with --backend=onnxruntime")
    raise io.DataError(
        f"no model found in folder {path}: expected final.keras (a training run), saved_model.pb "
        "(a SavedModel version) or integer-named version folders holding saved_model.pb"
    )


def _load_onnx(path):
    if pretrained.is_pretrained(path):
        raise io.DataError(
            f"{path} is a Keras model: --backend=onnxruntime runs ONNX models only; export it first "
            "with erlrestore-export --format=onnx"
        )
    path = os.fspath(path)
    if not os.path.exists(path):
        raise io.DataError(f"model path {path} does not exist")
    model_file = _onnx_file(path)
    if model_file is None:
        raise io.DataError(
            f"--backend=onnxruntime runs ONNX models only, and {path} is not a .onnx file nor a folder "
            f"holding {ONNX_FILE} (or integer-named version folders holding it); export a Keras model or "
            "SavedModel first with erlrestore-export --format=onnx, or use --backend=tensorflow"
        )
    return OnnxRestorer(model_file)


# --------------------------------------------------------------------------
# x8 self-ensemble.
# --------------------------------------------------------------------------

# (horizontal flip first?, quarter turns counter-clockwise) of each transform:
# the identity, the three rotations, and the same four after a horizontal flip.
ENSEMBLE_TRANSFORMS = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def transform_image(image, transform, axes=(0, 1)):
    """``image`` flipped horizontally (when ``transform[0]``), then rotated by ``transform[1]`` quarter turns.

    ``axes`` are the (height, width) axes: ``(0, 1)`` for ``H x W x C``,
    ``(1, 2)`` for a ``[B, H, W, C]`` batch. Returns a view.
    """
    flip, turns = transform
    if flip:
        image = np.flip(image, axis=axes[1])
    return np.rot90(image, turns, axes=axes)


def untransform_image(image, transform, axes=(0, 1)):
    """The inverse of :func:`transform_image`: ``untransform_image(transform_image(x, t), t) == x``."""
    flip, turns = transform
    image = np.rot90(image, -turns, axes=axes)
    if flip:
        image = np.flip(image, axis=axes[1])
    return image


def self_ensemble(restore, image):
    """The x8 self-ensemble of ``restore`` on one ``H x W x 3`` image (module docstring).

    Args:
      restore: a function from one ``h x w x 3`` float32 image to the
        restored image of the same shape (it is called with ``h x w`` and
        with ``w x h`` images).
      image: the degraded image.

    Returns:
      float32 ``H x W x 3``: the mean over :data:`ENSEMBLE_TRANSFORMS` of
      ``untransform_image(restore(transform_image(image, t)), t)``.

    Raises:
      ValueError when ``restore`` changes a transformed image's shape.
    """
    image = _check_image(image)
    total = np.zeros(image.shape, dtype=np.float32)
    for transform in ENSEMBLE_TRANSFORMS:
        moved = np.ascontiguousarray(transform_image(image, transform))
        restored = np.asarray(restore(moved), dtype=np.float32)
        if restored.shape != moved.shape:
            raise ValueError(
                f"self-ensemble: restoring a transformed image of shape {moved.shape} gave shape {restored.shape}"
            )
        total += untransform_image(restored, transform)
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total


_self_ensemble = self_ensemble  # restore_tiled's argument of that name hides the function there


def _ensemble_in_one_call(restorer, image, tile_batch):
    """:func:`self_ensemble` of an image that fits one tile, equal-shape transforms batched."""
    total = np.zeros(image.shape, dtype=np.float32)
    groups = {}
    for transform in ENSEMBLE_TRANSFORMS:
        groups.setdefault(transform[1] % 2, []).append(transform)
    for transforms in groups.values():
        for start in range(0, len(transforms), tile_batch):
            chunk = transforms[start : start + tile_batch]
            batch = np.stack([transform_image(image, t) for t in chunk])
            for transform, restored in zip(chunk, _run(restorer, batch)):
                total += untransform_image(np.clip(restored, 0.0, 1.0), transform)
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total


# --------------------------------------------------------------------------
# Tiling.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of :func:`tile_grid`: rows ``y0:y1``, columns ``x0:x1`` and its blending weight."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray  # float32 (y1 - y0) x (x1 - x0), >= 0


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_tiling(tile, overlap, align=1):
    """Validates tiling parameters; returns the stride between tile starts.

    Raises:
      ValueError unless ``tile > 2 * overlap >= 0``, ``align >= 1`` and
      ``tile - overlap >= align`` (else no aligned stride fits).
    """
    overlap = _check_int(overlap, "overlap", 0)
    tile = _check_int(tile, "tile", 1)
    align = _check_int(align, "align", 1)
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
      ValueError for bad sizes or tiling parameters (:func:`check_tiling`).
    """
    stride = check_tiling(tile, overlap, align)
    height = _check_int(height, "height", 1)
    width = _check_int(width, "width", 1)
    rows = [(y0, y1, _axis_weights(y0, y1, height, overlap)) for y0, y1 in _segments(height, tile, stride, align)]
    cols = [(x0, x1, _axis_weights(x0, x1, width, overlap)) for x0, x1 in _segments(width, tile, stride, align)]
    for y0, y1, wy in rows:
        for x0, x1, wx in cols:
            yield Tile(y0, y1, x0, x1, np.outer(wy, wx).astype(np.float32))


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def _run(restorer, batch):
    output = np.asarray(restorer(batch), dtype=np.float32)
    if output.shape != batch.shape:
        raise ValueError(f"the restorer turned a batch of shape {batch.shape} into shape {output.shape}")
    return output


def _default_align(restorer, align):
    if align is not None:
        return align
    return getattr(restorer, "multiple", None) or DEFAULT_ALIGN


def restore_tiled(restorer, image, tile=512, overlap=32, align=None, tile_batch=1, self_ensemble=False):
    """Restores one ``H x W x 3`` image of any size; returns float32 ``H x W x 3`` in [0, 1].

    Args:
      restorer: a callable on float32 ``[B, h, w, 3]`` batches returning the
        same shape (a :class:`Restorer`, or any function).
      image: the degraded image, float values in [0, 1].
      tile: largest tile side; an image no larger in both sides is restored
        in one call.
      overlap: least overlap of neighbouring tiles (pixels); the window
        discards ``overlap // 4`` pixels at inner tile edges and cross-fades
        over the rest (module docstring).
      align: tiles start at multiples of this; ``None``: the restorer's
        ``multiple`` attribute, or :data:`DEFAULT_ALIGN` when it has none.
      tile_batch: up to this many tiles of one size go to the restorer per
        call (faster on accelerators; memory grows with it).
      self_ensemble: average the x8 flip/rotation self-ensemble; with tiling
        the whole tiled restoration of each transformed image is ensembled
        (module docstring). 8 times the model calls.

    Raises:
      ValueError for a bad image, bad tiling parameters (``tile > 2 *
      overlap >= 0`` is required) or a restorer that changes the shape.
    """
    image = _check_image(image)
    align = _default_align(restorer, align)
    tile_batch = _check_int(tile_batch, "tile_batch", 1)
    check_tiling(tile, overlap, align)
    height, width = image.shape[:2]
    if self_ensemble:
        if height <= tile and width <= tile:
            return _ensemble_in_one_call(restorer, image, tile_batch)
        return _self_ensemble(
            lambda moved: restore_tiled(restorer, moved, tile, overlap, align, tile_batch), image
        )
    if height <= tile and width <= tile:
        return np.clip(_run(restorer, image[np.newaxis])[0], 0.0, 1.0)

    total = np.zeros(image.shape, dtype=np.float32)
    weight_sum = np.zeros(image.shape[:2], dtype=np.float32)
    pending = []

    def flush():
        batch = np.stack([image[t.y0 : t.y1, t.x0 : t.x1] for t in pending])
        for t, restored in zip(pending, _run(restorer, batch)):
            total[t.y0 : t.y1, t.x0 : t.x1] += restored * t.weight[:, :, np.newaxis]
            weight_sum[t.y0 : t.y1, t.x0 : t.x1] += t.weight
        pending.clear()

    for t in tile_grid(height, width, tile, overlap, align):
        if pending and (len(pending) == tile_batch or t.weight.shape != pending[0].weight.shape):
            flush()
        pending.append(t)
    flush()
    total /= weight_sum[:, :, np.newaxis]
    return np.clip(total, 0.0, 1.0, out=total)


# --------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------


def _tiff_bits(data):
    """Largest BitsPerSample of a classic TIFF's first image, or None when it cannot be read."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return None
    if int.from_bytes(data[2:4], "little" if order == "<" else "big") != 42:
        return None  # BigTIFF or not a TIFF
    byteorder = "little" if order == "<" else "big"

    def number(offset, size):
        return int.from_bytes(data[offset : offset + size], byteorder)

    ifd = number(4, 4)
    if ifd + 2 > len(data):
        return None
    for index in range(number(ifd, 2)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(data):
            return None
        if number(entry, 2) != 258:  # BitsPerSample (SHORT)
            continue
        count = number(entry + 4, 4)
        offset = entry + 8 if count <= 2 else number(entry + 8, 4)
        values = [number(offset + 2 * i, 2) for i in range(min(count, 8))]
        return max(values) if values else None
    return 1  # no BitsPerSample tag: the TIFF default is 1 bit


def source_bit_depth(path):
    """8 or 16: the bit depth :func:`restore_file` writes for an input file ``path``.

    16 for PNG with 16-bit samples and TIFF with more than 8 bits per sample
    (16-bit integers or floats), read from the header; 8 otherwise (JPEG,
    BMP, 8-bit or lower PNG/TIFF). A TIFF header that cannot be parsed
    (e.g. BigTIFF) gives 16, which loses nothing.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".png", ".tif", ".tiff"):
        return 8
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if ext == ".png":
        # Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4), then the bit depth.
        return 16 if len(head) > 24 and head[24] == 16 else 8
    bits = _tiff_bits(head)
    if bits is None:
        with open(path, "rb") as handle:
            bits = _tiff_bits(handle.read())
    return 16 if bits is None or bits > 8 else 8


def restore_file(restorer, input_path, output_path, tile=512, overlap=32, align=None, tile_batch=1,
                 self_ensemble=False):
    """Restores the image file ``input_path`` into ``output_path`` (atomically).

    The format follows ``output_path``'s extension; the bit depth follows the
    input (:func:`source_bit_depth`; 16-bit only where the output format
    holds it), JPEG is written with quality 95. ``self_ensemble``: see
    :func:`restore_tiled`. Returns ``output_path``.

    Raises:
      DataError when the input cannot be read (naming it) or when
      ``output_path`` is the input file itself; ValueError for bad tiling
      parameters.
    """
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if _same_file(input_path, output_path):
        raise io.DataError(f"output {output_path} is the input file {input_path}; inputs are never overwritten")
    image = io.read_image(input_path)
    restored = restore_tiled(restorer, image, tile=tile, overlap=overlap, align=align, tile_batch=tile_batch,
                             self_ensemble=self_ensemble)
    bit_depth = source_bit_depth(input_path)
    if os.path.splitext(output_path)[1].lower() not in (".png", ".tif", ".tiff"):
        bit_depth = 8
    io.write_image(output_path, restored, bit_depth=bit_depth, jpeg_quality=95)
    return output_path


def _same_file(a, b):
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)  # also catches hard links
    except OSError:
        return False


def _collect_inputs(inputs):
    """``inputs`` (a path or paths: files and folders) -> [(input file, its folder or None)]."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            files.extend((path, item) for path in io.list_images(item))
        elif os.path.isfile(item):
            if not io.is_image_file(item):
                raise io.DataError(
                    f"input {item} is not an image file (extensions: {', '.join(io.IMAGE_EXTENSIONS)})"
                )
            files.append((item, None))
        else:
            raise io.DataError(f"input {item} does not exist")
    if not files:
        raise io.DataError("no input images given")
    return files


def output_paths(inputs, output_dir, overwrite=False):
    """``[(input file, output file), ...]`` for :func:`restore_paths`; outputs keep the input names.

    Raises:
      DataError (before anything is written) when ``output_dir`` is an input
      folder, an output would be an input file (also through links), two
      inputs share a file name, or (without ``overwrite``) outputs already
      exist; or when an input does not exist / is not an image.
    """
    output_dir = os.fspath(output_dir)
    files = _collect_inputs(inputs)
    real_out = os.path.realpath(output_dir)
    for _, folder in files:
        if folder is not None and os.path.realpath(folder) == real_out:
            raise io.DataError(
                f"output folder {output_dir} is the input folder {folder}; write restored images to a "
                "different folder (inputs are never overwritten)"
            )
    pairs, by_name = [], {}
    for path, _ in files:
        name = os.path.basename(path)
        if name in by_name and not _same_file(by_name[name], path):
            raise io.DataError(f"inputs {by_name[name]} and {path} share the name {name!r} in {output_dir}")
        if name in by_name:
            continue  # the same file given twice
        by_name[name] = path
        pairs.append((path, os.path.join(output_dir, name)))
    input_files = [path for path, _ in pairs]
    for path, out in pairs:
        for source in input_files:
            if _same_file(out, source):
                raise io.DataError(
                    f"output {out} would overwrite the input {source}; choose another --output_dir "
                    "(inputs are never overwritten)"
                )
    if not overwrite:
        existing = [out for _, out in pairs if os.path.lexists(out)]
        if existing:
            raise io.DataError(
                f"{len(existing)} output file(s) already exist (first: {existing[0]}); allow "
                "overwriting them (--overwrite) or choose another output folder"
            )
    return pairs


def restore_paths(
    restorer, inputs, output_dir, tile=512, overlap=32, align=None, tile_batch=1, overwrite=False, show_progress=True,
    self_ensemble=False,
):
    """Restores image files and folders into ``output_dir``, keeping the file names.

    Args:
      restorer: see :func:`restore_tiled`.
      inputs: an image file or a folder (its images, not recursive), or a
        list of them.
      output_dir: created when missing; never an input folder.
      tile, overlap, align, tile_batch: see :func:`restore_tiled`.
      overwrite: replace existing output files (inputs are never replaced).
      show_progress: draw a progress bar on stderr.
      self_ensemble: restore with the x8 self-ensemble (module docstring).

    Returns:
      ``(written, failures)``: output paths written, and ``(input path,
      message)`` for each file that could not be restored (unreadable, a
      model error); the others are still restored.

    Raises:
      DataError / ValueError before anything is written, for the refusals
      of :func:`output_paths` and bad tiling parameters.
    """
    check_tiling(tile, overlap, _default_align(restorer, align))
    _check_int(tile_batch, "tile_batch", 1)
    pairs = output_paths(inputs, output_dir, overwrite=overwrite)
    os.makedirs(output_dir, exist_ok=True)
    written, failures = [], []
    items = progress(pairs, total=len(pairs), desc="restoring") if show_progress else pairs
    for source, target in items:
        try:
            written.append(restore_file(restorer, source, target, tile, overlap, align, tile_batch,
                                        self_ensemble=self_ensemble))
        except (ValueError, OSError, tf.errors.OpError) as error:
            message = str(error) if isinstance(error, io.DataError) else f"{type(error).__name__}: {error}"
            failures.append((source, message))
    return written, failures
