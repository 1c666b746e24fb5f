"""PhaseConv2DTranspose: a trained transposed convolution run as a forward convolution and depth_to_space.

:func:`phase_form_applies` says which transposed convolutions it computes and :func:`phase_kernel`
converts their kernels (:mod:`erlrestore.inference_graph` uses both).
"""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE, check_positive_int


@keras.saving.register_keras_serializable(package=PACKAGE)
class PhaseConv2DTranspose(keras.layers.Layer):
    """A stride-``s`` transposed convolution computed as a plain convolution and ``depth_to_space``.

    The inference form of the two transposed convolutions the models use
    (:func:`erlrestore.inference_graph.optimize_for_inference` builds it from a
    trained ``keras.layers.Conv2DTranspose``; training keeps Keras's layer):

    - ``kernel_size == strides`` (MEMD's 2x2 up-sampling, no overlap): each
      input pixel fills its own ``s x s`` output block, so the layer is a 1x1
      convolution to ``s*s*filters`` channels followed by
      ``depth_to_space(s)``.
    - ``kernel_size == 4, strides == 2, "same"`` (pix2pix's decoder): output
      row ``2m + a`` reads input rows ``m - 1, m`` (``a = 0``, kernel taps 3
      and 1) or ``m, m + 1`` (``a = 1``, taps 2 and 0), and the same along
      columns. So one 2x2 "valid" convolution of the input padded by one
      pixel, to ``4*filters`` channels (the four phases ``(a, b)``),
      computes every output; phase ``(a, b)`` is read at offset ``(a, b)``
      and ``depth_to_space(2)`` interleaves the phases.

    Both do exactly the multiply-adds of the transposed convolution (the
    second on ``(H+1) x (W+1)`` positions instead of ``H x W``), as a
    forward convolution: on TensorFlow's oneDNN CPU kernels this is faster
    than ``Conv2DBackpropInput``, most of all for the deep levels with few
    pixels and for few output channels (docs/BENCHMARKS.md).

    Weights: ``kernel`` of shape ``(k', k', C_in, s*s*filters)`` with
    ``k' = 1`` or ``2``, channel block ``i*s + j`` holding output phase
    ``(i, j)``; ``bias`` of shape ``(filters,)`` when ``use_bias``.
    :func:`phase_kernel` converts a ``Conv2DTranspose`` kernel.

    Args:
        filters: output channels.
        kernel_size: the transposed convolution's kernel size (``strides`` or 4).
        strides: its stride (2 when ``kernel_size`` is 4).
        use_bias: whether a bias is added.
        **kwargs: standard layer arguments.
    """

    def __init__(self, filters, kernel_size=4, strides=2, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        check_positive_int(filters, "filters", "PhaseConv2DTranspose")
        if not phase_form_applies(kernel_size, strides):
            raise ValueError(
                "PhaseConv2DTranspose: kernel_size must equal strides, or be 4 with strides 2; "
                f"got kernel_size={kernel_size}, strides={strides}"
            )
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"PhaseConv2DTranspose {self.name!r} expects (batch, height, width, channels) with known channels, "
                f"got {input_shape}"
            )
        window = 1 if self.kernel_size == self.strides else 2
        self.kernel = self.add_weight(
            name="kernel", shape=(window, window, input_shape[-1], self.strides**2 * self.filters),
            initializer="glorot_uniform",
        )
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") if self.use_bias else None

    def call(self, inputs):
        kernel = keras.ops.cast(self.kernel, self.compute_dtype)
        if self.kernel_size == self.strides:
            phases = tf.nn.conv2d(inputs, kernel, 1, "VALID")
        else:
            height, width = tf.shape(inputs)[1], tf.shape(inputs)[2]
            padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]])
            every = tf.nn.conv2d(padded, kernel, 1, "VALID")
            n = self.filters
            phases = tf.concat(
                [every[:, a : a + height, b : b + width, (2 * a + b) * n : (2 * a + b + 1) * n]
                 for a in (0, 1) for b in (0, 1)],
                axis=-1,
            )
        outputs = tf.nn.depth_to_space(phases, self.strides)
        # Slicing with dynamic bounds can leave even the channel count unknown to shape inference (seen when
        # a SavedModel traces (None, None, None, 3) images); layers after this one need it.
        outputs.set_shape([None, None, None, self.filters])
        if self.bias is not None:
            outputs = tf.nn.bias_add(outputs, keras.ops.cast(self.bias, self.compute_dtype))
        return outputs

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else n * self.strides

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"filters": self.filters, "kernel_size": self.kernel_size, "strides": self.strides, "use_bias": self.use_bias}
        )
        return config


def phase_form_applies(kernel_size, strides):
    """Whether :class:`PhaseConv2DTranspose` computes a transposed convolution of this kernel size and stride."""
    return kernel_size == strides or (kernel_size == 4 and strides == 2)


# For kernel 4 / stride 2: output phase a (row 2m + a) reads the padded input's
# window rows (m, m + 1), i.e. original rows (m - 1, m) for a = 0 and (m, m + 1)
# for a = 1 after the offset; these are the transposed kernel's taps per window row.
_PHASE_TAPS = {0: (3, 1), 1: (2, 0)}


def phase_kernel(kernel, strides):
    """A ``Conv2DTranspose`` kernel ``(k, k, filters, C_in)`` -> the :class:`PhaseConv2DTranspose` kernel (numpy)."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    kernel = np.asarray(kernel)
    size, _, filters, channels = kernel.shape
    if size == strides:
        # block (i*s + j) of the 1x1 kernel is tap (i, j), transposed to (C_in, filters)
        blocks = [kernel[i, j].T for i in range(strides) for j in range(strides)]
        return np.concatenate(blocks, axis=-1)[None, None]
    out = np.zeros((2, 2, channels, 4 * filters), kernel.dtype)
    for a in (0, 1):
        for b in (0, 1):
            block = slice((2 * a + b) * filters, (2 * a + b + 1) * filters)
            for r, tap_r in enumerate(_PHASE_TAPS[a]):
                for c, tap_c in enumerate(_PHASE_TAPS[b]):
                    out[r, c, :, block] = kernel[tap_r, tap_c].T
    return out
