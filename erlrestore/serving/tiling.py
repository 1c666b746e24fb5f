"""Restoring a request's large images tile by tile, exactly as ``erlrestore-restore`` does.

An erlrestore SavedModel (:mod:`erlrestore.savedmodel_contract`) runs its
signatures on whole images: ``restore_bytes`` decodes, restores and encodes
each image inside the graph, so the model's activations for the whole image
are alive at once (a 2000x1500 photo took a tiny server from 1.6 GB to 8.5
GB). For such a model the server instead:

* decodes each encoded image of a ``restore_bytes`` request itself, as the
  signature does (PNG at 16 bits / 65535, other formats at 8 bits / 255;
  :func:`decode_image`), which gives exactly the values of
  :func:`erlrestore.data.image_files.read_image`;
* restores it with :func:`erlrestore.inference.restore_tiled` through the
  model's own ``serving_default`` signature, wrapped as
  ``erlrestore-restore`` wraps a SavedModel (an
  :class:`erlrestore.inference.Restorer` without a padding multiple, so tiles
  align to :data:`erlrestore.inference.DEFAULT_ALIGN` unless ``align`` says
  otherwise): the same tiles, the same blending window, the same numbers;
* encodes the result as the signature does (clip, x255 rounded half to
  even, 8-bit PNG by ``tf.io.encode_png``; :func:`encode_png`), a band of
  rows at a time, so no float64 copy of the whole image is made.

``serving_default`` requests (float batches) are restored image by image
the same way. A request is tiled when one of its images is larger than
``tile`` in either side (:class:`TileSettings`); smaller images keep going
through the signature itself, in one call, as before. The memory a tiled
image needs is the model's for one tile plus about 30 bytes per pixel of the
image (the decoded image and the blending sums of
:func:`~erlrestore.inference.restore_tiled`), never the model's activations
for the whole image.

Working scale (``work_size``, ``erlrestore-serve --work_size``): a number
of pixels makes the server restore, as ``erlrestore-restore
--work_size=<pixels>`` does, every image whose shorter side is more than
:data:`erlrestore.inference.WORK_MARGIN` times it at that shorter side and
transfer the correction back to full size (:func:`erlrestore.inference.restore_tiled`
with ``work_size``): such images take the tiled path above even when they
fit one tile, so the page and the command line give the same pixels. A
SavedModel carries no model card, so the server has no ``auto``: to match
``erlrestore-restore --model=pretrained:erlnet-derain`` (``auto`` = 321),
serve its export with ``--work_size=321``. Default: none, every image at
its own scale.

Models that do not follow the contract (other signatures, other tensor
names) are always run whole, through their signatures.
"""

import threading

import numpy as np
import tensorflow as tf

from erlrestore import inference
from erlrestore import savedmodel_contract as contract
from erlrestore.serving.limits import image_dimensions

DEFAULT_TILE = 512  # erlrestore-restore's --tile
DEFAULT_OVERLAP = 32  # erlrestore-restore's --overlap
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ENCODE_ROWS = 256  # rows rounded to 8 bits at a time by encode_png
_RESTORER_LOCK = threading.Lock()


class TileSettings:
    """How the server tiles: ``tile`` (largest tile side; None or 0: never tile), ``overlap`` and ``align``.

    ``align`` None means the model's padding multiple, which a SavedModel
    does not record, so :data:`erlrestore.inference.DEFAULT_ALIGN`, as
    ``erlrestore-restore --align=0`` uses for SavedModels. ``work_size``:
    the working scale in pixels, or None / ``"none"`` (module docstring;
    ``"auto"`` is refused: a SavedModel has no card to read it from).
    Raises ValueError for settings :func:`erlrestore.inference.check_tiling`
    or :func:`erlrestore.inference.parse_work_size` refuses.
    """

    def __init__(self, tile=DEFAULT_TILE, overlap=DEFAULT_OVERLAP, align=None, work_size=None):
        self.tile = int(tile) if tile else None
        self.overlap = int(overlap)
        self.align = int(align) if align else inference.DEFAULT_ALIGN
        if self.tile is not None:
            inference.check_tiling(self.tile, self.overlap, self.align)
        self.work_size = inference.parse_work_size(work_size)
        if self.work_size == inference.AUTO:
            raise ValueError("the server cannot use work_size auto (a SavedModel records no training scale): "
                             "give none or a number of pixels, e.g. 321 for erlnet-derain and memd-derain")

    def exceeds(self, height, width):
        """True when an image of ``height x width`` is tiled or restored at the working scale."""
        if inference.working_shape(height, width, self.work_size) is not None:
            return True
        return self.tile is not None and (height > self.tile or width > self.tile)

    def count(self, height, width):
        """Tiles (model calls at tile_batch 1) of an image of ``height x width``."""
        return inference.count_tiles(height, width, self.tile, self.overlap, self.align, work_size=self.work_size)

    def __repr__(self):
        work = "" if self.work_size is None else f", work_size={self.work_size}"
        return f"TileSettings(tile={self.tile}, overlap={self.overlap}, align={self.align}{work})"


def restorer_of(servable):
    """The :class:`erlrestore.inference.Restorer` of ``servable``'s ``serving_default``, or None off-contract.

    Made once per servable (thread-safe) and kept on it.
    """
    with _RESTORER_LOCK:
        if not hasattr(servable, "_tile_restorer"):
            servable._tile_restorer = _contract_restorer(servable)  # pylint: disable=protected-access
        return servable._tile_restorer  # pylint: disable=protected-access


def _contract_restorer(servable):
    signature = servable.signatures.get(contract.SERVING_SIGNATURE)
    if signature is None:
        return None
    spec = signature.inputs.get(contract.INPUT_KEY)
    output = signature.outputs.get(contract.OUTPUT_KEY)
    if (list(signature.inputs) != [contract.INPUT_KEY] or spec is None or output is None
            or spec.dtype != tf.float32 or output.dtype != tf.float32
            or not spec.shape.is_compatible_with([None, None, None, 3])):
        return None
    function = signature.function

    def call(batch):
        return function(**{contract.INPUT_KEY: batch})[contract.OUTPUT_KEY]

    # As erlrestore.inference loads a SavedModel for erlrestore-restore.
    return inference.Restorer(call, servable.path, multiple=None, keep_alive=servable.loaded)


def _is_bytes_signature(signature):
    return (signature.name == contract.BYTES_SIGNATURE and list(signature.inputs) == [contract.BYTES_INPUT_KEY]
            and signature.inputs[contract.BYTES_INPUT_KEY].dtype == tf.string
            and list(signature.outputs) == [contract.BYTES_OUTPUT_KEY])


def _is_images_signature(signature):
    return signature.name == contract.SERVING_SIGNATURE and list(signature.inputs) == [contract.INPUT_KEY]


class TiledRun:
    """A request that is restored tile by tile; :meth:`run` returns the signature's outputs (``{name: array}``)."""

    def __init__(self, restorer, settings, kind, array, sizes):
        self.restorer = restorer
        self.settings = settings
        self.kind = kind  # "bytes" or "images"
        self.array = array
        self.sizes = sizes  # (height, width) of each image; None where unknown (then restored whole)
        self.tiles = sum(1 if size is None else settings.count(*size) for size in sizes)

    def run(self, on_tiles=None):
        if self.kind == "images":
            return {contract.OUTPUT_KEY: self._restore_batch(on_tiles)}
        return {contract.BYTES_OUTPUT_KEY: self._restore_encoded(on_tiles)}

    def _restore(self, image, on_tiles):
        settings = self.settings
        return inference.restore_tiled(self.restorer, image, tile=settings.tile, overlap=settings.overlap,
                                       align=settings.align, on_tiles=on_tiles, work_size=settings.work_size)

    def _restore_batch(self, on_tiles):
        output = np.empty(self.array.shape, dtype=np.float32)
        for index, image in enumerate(self.array):
            output[index] = self._restore(image, on_tiles)
        return output

    def _restore_encoded(self, on_tiles):
        encoded = np.empty(self.array.shape, dtype=object)
        for index, data in enumerate(self.array):
            image = decode_image(bytes(data))
            restored = self._restore(image, on_tiles)
            del image
            encoded[index] = encode_png(restored)
        return encoded


def plan(servable, signature, arrays, settings):
    """A :class:`TiledRun` when ``arrays`` (the signature's inputs) hold an image to tile, else None.

    Only erlrestore's own signatures are tiled (``restore_bytes``, and
    ``serving_default`` on ``[N, H, W, 3]`` floats), on a model whose
    ``serving_default`` follows the contract, and only when an image is
    larger than ``settings.tile`` or is restored at the working scale
    (``settings.work_size``).
    """
    if settings is None or (settings.tile is None and getattr(settings, "work_size", None) is None):
        return None
    if _is_bytes_signature(signature):
        kind, array = "bytes", arrays[contract.BYTES_INPUT_KEY]
        if array.ndim != 1:
            return None
        sizes = []
        for data in array:
            found = _declared(data)
            sizes.append(None if found is None else (found[1], found[0]))
    elif _is_images_signature(signature):
        kind, array = "images", arrays[contract.INPUT_KEY]
        if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.float32 or 0 in array.shape:
            return None
        sizes = [array.shape[1:3]] * array.shape[0]
    else:
        return None
    if not any(size is not None and settings.exceeds(*size) for size in sizes):
        return None
    restorer = restorer_of(servable)
    if restorer is None:
        return None
    return TiledRun(restorer, settings, kind, array, sizes)


def _declared(data):
    if not isinstance(data, (bytes, bytearray, memoryview)):
        return None
    return image_dimensions(data)


def decode_image(data):
    """One encoded image as float32 ``H x W x 3`` in [0, 1], decoded as the ``restore_bytes`` signature decodes it.

    PNG (by its signature) at 16 bits divided by 65535, other formats at 8
    bits divided by 255, grey replicated and alpha dropped (``channels=3``):
    the values of :func:`erlrestore.data.image_files.read_image`. Raises
    ``tf.errors.InvalidArgumentError`` for data TensorFlow cannot decode.
    """
    if data.startswith(_PNG_SIGNATURE):
        pixels, scale = tf.io.decode_png(data, channels=3, dtype=tf.uint16), 65535.0
    else:
        pixels, scale = tf.io.decode_image(data, channels=3, dtype=tf.uint8, expand_animations=False), 255.0
    image = pixels.numpy().astype(np.float32)
    del pixels
    image /= np.float32(scale)
    return image


def encode_png(image):
    """float ``H x W x 3`` in [0, 1] -> 8-bit PNG bytes, as the ``restore_bytes`` signature encodes.

    Clipped, scaled by 255 in float64 and rounded half to even (``np.rint``,
    like ``tf.round`` and :func:`erlrestore.data.image_files.write_image`),
    ``_ENCODE_ROWS`` rows at a time; then ``tf.io.encode_png``.
    """
    levels = np.empty(image.shape, dtype=np.uint8)
    for top in range(0, image.shape[0], _ENCODE_ROWS):
        band = np.clip(image[top : top + _ENCODE_ROWS], 0.0, 1.0).astype(np.float64)
        band *= 255.0
        levels[top : top + _ENCODE_ROWS] = np.rint(band, out=band)
    return tf.io.encode_png(levels).numpy()
