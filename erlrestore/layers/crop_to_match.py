"""CropToMatch: crops a U-Net's output back to the size of its input (undoes PadToMultiple)."""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class CropToMatch(keras.layers.Layer):
    """Crops ``x`` to the height and width of ``reference``: call on ``[x, reference]``.

    Keeps the top-left ``H_ref x W_ref`` window of ``x`` (the inverse of
    :class:`PadToMultiple`, which pads at the bottom/right). ``x`` keeps its
    channels. Works with dynamic spatial sizes.

    It takes only the standard layer arguments, so it keeps the ``get_config``
    Keras gives every layer (the captured constructor arguments, with
    ``autocast`` and ``activity_regularizer``): the configs shipped in
    :mod:`erlrestore.pretrained` hold exactly that, which an override would
    change.
    """

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(f"CropToMatch {self.name!r} expects a list [x, reference], got shape {input_shape}")
        return tuple(input_shape[0]), tuple(input_shape[1])

    def build(self, input_shape):
        x_shape, ref_shape = self._split_shapes(input_shape)
        if len(x_shape) != 4 or len(ref_shape) != 4:
            raise ValueError(f"CropToMatch {self.name!r} expects two 4-D (batch, H, W, C) inputs, got {input_shape}")

    def call(self, inputs):
        x, reference = inputs
        ref_shape = tf.shape(reference)
        return x[:, : ref_shape[1], : ref_shape[2], :]

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = self._split_shapes(input_shape)
        return (x_shape[0], ref_shape[1], ref_shape[2], x_shape[3])

