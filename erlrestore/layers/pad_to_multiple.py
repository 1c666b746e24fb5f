"""PadToMultiple: pads an image of any size to a multiple of ``2**depth`` before a U-Net."""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE, check_positive_int

_PAD_MODES = ("REFLECT", "SYMMETRIC", "EDGE")


def _pad_indices(size, pad, mode):
    """Gather indices that extend ``range(size)`` by ``pad`` entries at the end.

    ``REFLECT`` mirrors without repeating the edge (needs ``pad <= size - 1``),
    ``SYMMETRIC`` mirrors repeating it (needs ``pad <= size``), ``EDGE``
    repeats the last entry. When the requested mode needs a larger ``size``,
    the next mode in that list that fits is used.
    """
    positions = tf.range(size + pad)
    reflect = 2 * (size - 1) - positions
    symmetric = 2 * size - 1 - positions
    edge = tf.fill(tf.shape(positions), size - 1)
    if mode == "REFLECT":
        fill = tf.where(pad <= size - 1, reflect, tf.where(pad <= size, symmetric, edge))
    elif mode == "SYMMETRIC":
        fill = tf.where(pad <= size, symmetric, edge)
    else:
        fill = edge
    return tf.where(positions < size, positions, fill)


@keras.saving.register_keras_serializable(package=PACKAGE)
class PadToMultiple(keras.layers.Layer):
    """Pads height and width at the bottom/right up to a multiple of ``multiple``.

    A U-Net with ``d`` 2x down-sampling levels needs sizes divisible by
    ``2**d``; pad with this layer, run the network, and crop back with
    :class:`CropToMatch`. Works with dynamic spatial sizes.

    Args:
        multiple: positive integer.
        mode: ``"REFLECT"`` (default; mirror without repeating the border
            row/column), ``"SYMMETRIC"`` (mirror repeating it) or ``"EDGE"``
            (repeat the border). A mirror needs the image to be large enough:
            per axis, ``REFLECT`` falls back to ``SYMMETRIC`` when the pad
            equals the size and to ``EDGE`` when it exceeds it; ``SYMMETRIC``
            falls back to ``EDGE`` when the pad exceeds the size. (This only
            happens for images smaller than ``multiple``.)
        **kwargs: standard layer arguments.
    """

    def __init__(self, multiple, mode="REFLECT", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(multiple, "multiple", "PadToMultiple")
        if not isinstance(mode, str) or mode.upper() not in _PAD_MODES:
            raise ValueError(f"PadToMultiple: mode must be one of {_PAD_MODES}, got {mode!r}")
        self.multiple = multiple
        self.mode = mode.upper()

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(f"PadToMultiple {self.name!r} expects (batch, height, width, channels), got {input_shape}")

    def call(self, inputs):
        shape = tf.shape(inputs)
        x = inputs
        for axis in (1, 2):
            size = shape[axis]
            # Non-negative operands only: ``(-size) % multiple`` gives the same in TF, but
            # converters (tf2onnx for ONNX) lower integer FloorMod to a truncating division,
            # which made the pad negative (a 321x481 image came back 320x480).
            pad = (self.multiple - size % self.multiple) % self.multiple
            x = tf.gather(x, _pad_indices(size, pad, self.mode), axis=axis)
        return x

    def compute_output_shape(self, input_shape):
        def padded(n):
            return None if n is None else -(-n // self.multiple) * self.multiple

        return (input_shape[0], padded(input_shape[1]), padded(input_shape[2]), input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update({"multiple": self.multiple, "mode": self.mode})
        return config
