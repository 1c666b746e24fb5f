"""Conv2DTranspose: Keras' transposed convolution, trained as one matrix product on a tiny image.

Why and when, with the measurements: :mod:`erlrestore.layers.conv2d`.
"""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE
from erlrestore.layers.conv2d import MATMUL_MAX_TRANSPOSE_PIXELS, finish, strided_4x4

# Output phase p (row or column parity) of a 4 x 4 / stride 2 / "same" transposed convolution: the pairs
# (input offset, kernel tap) that add into output pixel 2 i + p, from input pixel i + offset.
_TRANSPOSE_TAPS = {0: ((0, 1), (-1, 3)), 1: ((0, 2), (1, 0))}


def _transpose_as_product(layer, inputs, training):
    """Whether a :class:`Conv2DTranspose` call takes the product form (odd sides too: the taps hold for any size)."""
    return (layer.output_padding is None and strided_4x4(layer, inputs, training, ("same",))
            and inputs.shape[1] * inputs.shape[2] <= MATMUL_MAX_TRANSPOSE_PIXELS)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """``keras.layers.Conv2DTranspose`` whose training-mode call on a tiny image is one matrix product.

    A 4 x 4 / stride 2 / ``"same"`` transposed convolution adds input pixel
    ``n`` times kernel tap ``t`` into output pixel ``2n + t - 1`` (per axis).
    One product of the ``(B * H * W, C)`` input with the kernel viewed as
    ``(16 filters, C)`` (its natural layout, transposed inside the product, so
    the kernel and its gradient are never copied) gives every pixel's
    contribution to every tap; output pixel ``2i + p`` then sums two of them
    per axis (``_TRANSPOSE_TAPS``): for ``p = 0`` tap 1 of pixel ``i`` and tap
    3 of pixel ``i - 1``, for ``p = 1`` tap 2 of pixel ``i`` and tap 0 of
    pixel ``i + 1``, pixels outside the image counting zero. The four phases
    are interleaved into the ``2H x 2W`` output. When this form is taken, and
    the measurements: :mod:`erlrestore.layers.conv2d`.
    """

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        if not _transpose_as_product(self, inputs, training):
            return super().call(inputs)
        _, height, width, channels = inputs.shape
        filters = self.filters
        kernel = tf.reshape(tf.cast(self.kernel, inputs.dtype), [16 * filters, channels])
        taps = tf.matmul(tf.reshape(inputs, [-1, channels]), kernel, transpose_b=True)
        taps = tf.reshape(taps, [-1, height, width, 4, 4, filters])
        taps = tf.pad(taps, [[0, 0], [1, 1], [1, 1], [0, 0], [0, 0], [0, 0]])  # pixel i at padded index i + 1

        def phase(p, q):
            total = None
            for row_offset, row_tap in _TRANSPOSE_TAPS[p]:
                for col_offset, col_tap in _TRANSPOSE_TAPS[q]:
                    term = taps[:, 1 + row_offset:1 + row_offset + height, 1 + col_offset:1 + col_offset + width,
                                row_tap, col_tap, :]
                    total = term if total is None else total + term
            return total

        rows = [tf.stack([phase(p, 0), phase(p, 1)], axis=3) for p in (0, 1)]  # (B, H, W, q, filters)
        outputs = tf.reshape(tf.stack(rows, axis=2), [-1, 2 * height, 2 * width, filters])  # (B, H, p, W, q, f)
        return finish(self, outputs)
