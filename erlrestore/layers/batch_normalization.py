"""BatchNormalization: Keras' batch normalization, trained through TensorFlow's fused kernel."""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE

# The input dtypes TensorFlow's FusedBatchNormV3 takes (its scale, offset and statistics stay float32).
_FUSED_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


@keras.saving.register_keras_serializable(package=PACKAGE)
class BatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` whose training-mode step is one fused kernel.

    The class has Keras' name on purpose: a ``.keras`` file keys the weights
    of a layer held in a list (the norms inside :class:`DenseBlock` and
    :class:`InfoAccum`, every layer of a functional model) by its class name
    in snake case, ``batch_normalization_<k>``. With the same name, models
    saved before this layer existed (with Keras' class inside) load into it,
    and models saved with it load where the ``erlrestore`` package is
    registered; a class of another name would make both fail.

    The same constructor arguments, weights (``gamma``, ``beta``,
    ``moving_mean``, ``moving_variance``), config and arithmetic as Keras'
    layer, which it subclasses. Only the training-mode call on a 4-D
    channels-last input changes how it is computed: Keras 3 normalises with
    about ten element-wise TensorFlow ops forward and more backward (moments,
    casts of low-precision inputs to float32, the affine transform), while
    this layer runs TensorFlow's ``FusedBatchNormV3`` (one kernel forward,
    ``FusedBatchNormGradV3`` backward; oneDNN's on x86 CPUs). In the pix2pix
    UNet-8 + PatchGAN training step (256 px, batch 1, mixed_bfloat16, one
    profile each) the summed op time fell from 512 to 442 ms and the wall
    time from 278 to 243 ms; in float32 nothing measurable changed
    (docs/BENCHMARKS.md).

    What stays exactly Keras':

    * the batch statistics are over every axis but the last, computed in
      float32 for float16 / bfloat16 inputs (the fused kernel accumulates in
      float32, as Keras' upcast does);
    * the moving variance follows the *biased* batch variance, as Keras'
      does. ``FusedBatchNormV3`` returns the Bessel-corrected variance
      (``n / (n - 1)`` times it, for ``n`` values per channel); the layer
      multiplies it back by ``(n - 1) / n``;
    * the moving averages use ``momentum`` as Keras does
      (``moving = moving * momentum + batch * (1 - momentum)``).

    Everything else (inference mode, a frozen layer (``trainable=False``),
    masks, renormalisation, ``synchronized=True``, another axis or rank, other
    dtypes) runs Keras' own code, so the inference graph, its batch-norm
    folding (:mod:`erlrestore.inference_graph`) and every export see the same
    ops as for Keras' layer.
    """

    def _fuses(self, inputs, training, mask):
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and len(inputs.shape) == 4
                and self.axis in (-1, 3) and inputs.dtype in _FUSED_DTYPES)

    def call(self, inputs, training=None, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        if not self._fuses(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        offset = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        empty = tf.constant([], tf.float32)  # no running statistics go in: training mode uses the batch's
        outputs, mean, corrected, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=scale, offset=offset, mean=empty, variance=empty, epsilon=self.epsilon,
            exponential_avg_factor=1.0, data_format="NHWC", is_training=True)
        count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        variance = corrected * tf.maximum(count - 1.0, 0.0) / count  # back to Keras' biased variance
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)
