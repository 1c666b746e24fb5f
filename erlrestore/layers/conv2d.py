"""Conv2D: Keras' convolution, trained in faster forms at the ends of a U-Net (and what Conv2DTranspose shares).

The U-Net of pix2pix halves its image eight times: at 256 px its innermost
encoder convolutions read 8 x 8 to 2 x 2 images and its innermost decoder
convolutions 1 x 1 to 8 x 8, through 4 x 4 kernels of up to 1024 x 512
channels. There a convolution is a handful of output pixels times a kernel of
8 M values, and oneDNN's convolution kernels (the weight gradient above all)
run far from what the arithmetic needs; the same arithmetic as one matrix
product over gathered pixels is several times faster. At the other end, a
strided 4 x 4 convolution of a large image runs faster as ``space_to_depth``
followed by a stride-1 2 x 2 convolution. Measured on the 2-vCPU VM
(TensorFlow 2.21, float32, batch 1, forward + both gradients, medians of 15
calls, every other process stopped; ``C -> F`` channels):

=========================  ============  =========  ===============
layer                      input         Keras      this layer
=========================  ============  =========  ===============
Conv2D 3 -> 64             256 x 256      2.6 ms     2.0 ms (s2d)
Conv2D 64 -> 128           128 x 128     14.7 ms     9.2 ms (s2d)
Conv2D 128 -> 256          64 x 64       11.8 ms    10.1 ms (s2d)
Conv2D 256 -> 512          32 x 32       13.6 ms    13.5 ms (s2d)
Conv2D 512 -> 512          16 x 16        9.7 ms    11.9 ms (s2d)
Conv2D 512 -> 512          8 x 8          7.5 ms     6.3 ms (product)
Conv2D 512 -> 512          4 x 4         11.8 ms     2.3 ms (product)
Conv2D 512 -> 512          2 x 2          5.9 ms     2.2 ms (product)
Conv2DTranspose 512 -> 512   1 x 1        4.0 ms     1.9 ms (product)
Conv2DTranspose 1024 -> 512  2 x 2       28.4 ms     5.5 ms (product)
Conv2DTranspose 1024 -> 512  4 x 4       33.5 ms    12.2 ms (product)
Conv2DTranspose 1024 -> 512  8 x 8       35.3 ms    21.3 ms (product)
Conv2DTranspose 1024 -> 256  16 x 16     26.7 ms    29.6 ms (product)
=========================  ============  =========  ===============

Hence the limits below: the product form for inputs of at most
:data:`MATMUL_MAX_CONV_PIXELS` / :data:`MATMUL_MAX_TRANSPOSE_PIXELS` pixels,
the space-to-depth form for ``Conv2D`` inputs of at least
:data:`SPACE_TO_DEPTH_MIN_CONV_PIXELS`, Keras' own call (oneDNN's strided
kernels) in between. A transposed convolution run as four phase
convolutions (as :class:`erlrestore.layers.PhaseConv2DTranspose` does for
inference) was slower at every size measured (16 to 128 px), so large
transposed convolutions stay Keras'.

The classes keep Keras' names, as :class:`erlrestore.layers.BatchNormalization`
does and for the same reason (a ``.keras`` file keys listed layers' weights by
class name): models saved with Keras' convolutions load into these and back.
Weights, config and results are Keras' (to float rounding: the sums run in
another order). Only a **training-mode** call (``training=True``) of a
4 x 4 / stride 2 convolution (``"same"``, or ``"valid"`` for ``Conv2D``),
undilated, ungrouped, channels-last, on an input of static height and width
(even, for ``Conv2D``) takes a faster form; every other call, inference
included, is Keras' own code, so the inference graph
(:mod:`erlrestore.inference_graph`) and every export see the same ops as
before.
"""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE

# Input sizes (height x width) at which a training-mode call takes a faster form (see the table above).
MATMUL_MAX_CONV_PIXELS = 64
MATMUL_MAX_TRANSPOSE_PIXELS = 64
SPACE_TO_DEPTH_MIN_CONV_PIXELS = 64 * 64


def strided_4x4(layer, inputs, training, paddings):
    """Whether a call is a training-mode 4 x 4 / stride 2 convolution of a static-size image the faster forms take."""
    shape = inputs.shape
    return (bool(training) and len(shape) == 4 and shape[1] is not None and shape[2] is not None
            and layer.data_format == "channels_last" and tuple(layer.kernel_size) == (4, 4)
            and tuple(layer.strides) == (2, 2) and layer.padding in paddings
            and tuple(layer.dilation_rate) == (1, 1) and getattr(layer, "groups", 1) == 1)


def _conv_form(layer, inputs, training):
    """The form a :class:`Conv2D` call takes: "product", "space_to_depth", or None for Keras' own call."""
    if not strided_4x4(layer, inputs, training, ("same", "valid")):
        return None
    height, width = inputs.shape[1], inputs.shape[2]
    if height % 2 or width % 2 or min(height, width) < (2 if layer.padding == "same" else 4):
        return None  # an odd side: "same" pads unevenly, and the output pixels do not tile the input by 2
    if height * width <= MATMUL_MAX_CONV_PIXELS:
        return "product"
    return "space_to_depth" if height * width >= SPACE_TO_DEPTH_MIN_CONV_PIXELS else None


def finish(layer, outputs):
    """``outputs`` of a faster form plus the layer's bias, through its activation, as Keras' call ends."""
    if layer.use_bias:
        outputs = outputs + tf.cast(layer.bias, outputs.dtype)
    return outputs if layer.activation is None else layer.activation(outputs)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Conv2D(keras.layers.Conv2D):
    """``keras.layers.Conv2D`` whose training-mode call takes a faster form at the ends of a U-Net.

    Both forms compute a 4 x 4 / stride 2 convolution of the padded input
    (``"same"`` pads one pixel on each side of an even image, ``"valid"``
    none; PatchGAN pads with a layer of its own): output pixel ``(i, j)``
    reads padded rows ``2i..2i+3`` and columns ``2j..2j+3``.

    * **Tiny image** (at most :data:`MATMUL_MAX_CONV_PIXELS` input pixels):
      sixteen strided slices of the padded input, concatenated on the channel
      axis in the kernel's ``(row, column, channel)`` order, make a
      ``(B * H' * W', 16 C)`` matrix; one product with the kernel reshaped to
      ``(16 C, filters)`` is the output.
    * **Large image** (at least :data:`SPACE_TO_DEPTH_MIN_CONV_PIXELS`):
      ``tf.nn.space_to_depth`` by 2 turns the padded input into a
      ``(H/2, W/2, 4 C)`` image whose channel ``(p, q, c)`` is pixel
      ``(2i + p, 2j + q)``; the kernel, regrouped the same way to
      ``(2, 2, 4 C, filters)`` (tap ``2a + p`` becomes tap ``a`` of group
      ``p``), convolves it with stride 1, which oneDNN runs faster than the
      strided convolution (forward and both gradients).

    See the module docstring for the measurements and when a form is taken.
    """

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        form = _conv_form(self, inputs, training)
        if form is None:
            return super().call(inputs)
        padded = tf.pad(inputs, [[0, 0], [1, 1], [1, 1], [0, 0]]) if self.padding == "same" else inputs
        return finish(self, self._as_product(padded) if form == "product" else self._as_space_to_depth(padded))

    def _as_product(self, padded):
        _, height, width, channels = padded.shape
        rows, cols = (height - 4) // 2 + 1, (width - 4) // 2 + 1
        patches = tf.concat([padded[:, r:r + 2 * rows:2, c:c + 2 * cols:2, :] for r in range(4) for c in range(4)],
                            axis=-1)
        kernel = tf.reshape(tf.cast(self.kernel, padded.dtype), [16 * channels, self.filters])
        outputs = tf.matmul(tf.reshape(patches, [-1, 16 * channels]), kernel)
        return tf.reshape(outputs, [-1, rows, cols, self.filters])

    def _as_space_to_depth(self, padded):
        channels = padded.shape[-1]
        kernel = tf.reshape(tf.cast(self.kernel, padded.dtype), [2, 2, 2, 2, channels, self.filters])  # a p b q c f
        kernel = tf.reshape(tf.transpose(kernel, [0, 2, 1, 3, 4, 5]), [2, 2, 4 * channels, self.filters])
        return tf.nn.conv2d(tf.nn.space_to_depth(padded, 2), kernel, strides=1, padding="VALID")
