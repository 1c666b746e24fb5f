"""InfoAccum: the rethinking paper's information-accumulation module (dilation-1/3/5 dense layers, Eq. 14).

The module-level helpers compute its dilated convolutions as one matrix product per dense layer
(see the class docstring).
"""

import keras
import tensorflow as tf

from erlrestore.layers._common import NORMS, PACKAGE, check_positive_int, norm_layer

_INFO_ACCUM_ACTIVATIONS = ("leaky_relu", "relu")


@keras.saving.register_keras_serializable(package=PACKAGE)
class InfoAccum(keras.layers.Layer):
    """The InfoAccum module of "Rethinking generative methods" (Appendix C, Eq. 14).

    ``num_layers`` dense layers; layer ``l`` maps ``x_{l-1}`` to
    ``x_l = concat([x_{l-1}, F_l(x_{l-1}), G_l(x_{l-1}), H_l(x_{l-1})])`` where
    ``F``, ``G`` and ``H`` are composite functions ``norm -> activation ->
    Conv3x3(growth_rate)`` with dilation rates 1, 3 and 5 ("same" padding, so
    the spatial size is kept). The block input is passed through unchanged as
    the first ``C_in`` channels of the output, which has
    ``C_in + 3 * growth_rate * num_layers`` channels.

    Our choices where the paper is silent:

    - ``growth_rate=4`` (the paper: "a relatively small value"); with the
      paper's InfoAccum-15 on an RGB image the output has 3 + 180 channels.
    - ``F_l``, ``G_l`` and ``H_l`` share one normalisation and activation
      (they read the same ``x_{l-1}``) and differ in their dilated
      convolutions; separate normalisations would differ only in their affine
      parameters and cost three times the activation memory.
    - ``norm="instance"`` (``GroupNormalization`` with one group per channel)
      and ``activation="leaky_relu"`` (slope 0.2, as pix2pix's encoder).
    - The normalisation follows the generator around it (PyTorch's defaults:
      batch-norm momentum 0.9 in Keras' terms, epsilon 1e-5), not Keras'
      (0.99, 1e-3): with Keras' momentum the moving statistics lagged the
      weights so far that test-mode scores sat 2.5-3 dB below training-mode
      ones in short runs.

    How it is computed. The weights are those of the plain formulation: each
    dense layer owns a normalisation sub-layer ``norm_{l}`` and three
    ``Conv2D`` sub-layers ``conv_{l}_d{d}`` (kernel ``(3, 3, C_l, g)`` and
    bias), so checkpoints and saved models are unaffected. ``call`` does not
    run them as layers, though: a 3x3 convolution to ``g = 4`` channels on a
    full-resolution map is far from matrix-shaped (and TensorFlow's CPU
    kernels run each dilated one through ``space_to_batch``), so the block
    does the same multiply-adds as one matrix product per dense layer:

    - inside the block the features are channels-first, ``(N, C, H*W)``
      (one transpose on entry and one on exit), so that a layer's input is a
      ``C_l x H*W`` matrix and appending channels is a contiguous copy;
    - the 27 taps of the layer's three kernels form one ``(C_l, 27 g)``
      matrix ``W``, and ``W^T h`` gives every tap's contribution at every
      pixel (108 rows for g = 4);
    - a branch of dilation ``d`` is the sum of its 9 tap planes ``(ky, kx)``
      shifted by ``((ky - 1) d, (kx - 1) d)``, zeros entering at the border:
      exactly the "same" dilated convolution. The sum is accumulated in
      float32 under a 16-bit policy too (as the convolution kernels
      accumulate), and its gradient -- the opposite shifts -- is written out
      (:func:`_shifted_tap_sum`) instead of TensorFlow's full-size gradient of
      every slice;
    - a channel never changes once produced, so its normalisation statistics
      (per sample for instance norm; over the batch for batch norm in
      training) are computed once and shared by all later layers; each layer
      applies its own ``gamma``/``beta`` as one per-channel scale and shift
      before the activation, in float32 as ``GroupNormalization`` and
      ``BatchNormalization`` do. Batch norm updates each layer's moving mean
      and variance as ``BatchNormalization`` does and uses them when not
      training (or when frozen).

    The output and the gradients are those of the layer-by-layer formulation
    up to float rounding (the tests compare the two, and against
    ``tf.nn.conv2d`` with dilations). ``tools/bench_infoaccum.py`` times
    them: InfoAccum-15 on a 256x256 RGB input on 2 AVX-512 CPU cores ran
    about 2.5x faster forward and 2.7x per training step in float32, 2.2x and
    2.4x under ``mixed_bfloat16``.

    Args:
        num_layers: number of dense layers ``L`` (the "15" of InfoAccum-15).
        growth_rate: filters of each of the three convolutions of a layer.
        norm: ``"instance"`` (default), ``"batch"`` or ``"none"``.
        activation: ``"leaky_relu"`` (default, negative slope 0.2) or ``"relu"``.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).
    """

    DILATIONS = (1, 3, 5)

    def __init__(self, num_layers, growth_rate=4, norm="instance", activation="leaky_relu", **kwargs):
        super().__init__(**kwargs)
        check_positive_int(num_layers, "num_layers", "InfoAccum")
        check_positive_int(growth_rate, "growth_rate", "InfoAccum")
        if norm not in NORMS:
            raise ValueError(f"InfoAccum: norm must be one of {NORMS}, got {norm!r}")
        if activation not in _INFO_ACCUM_ACTIVATIONS:
            raise ValueError(f"InfoAccum: activation must be one of {_INFO_ACCUM_ACTIVATIONS}, got {activation!r}")
        self.num_layers = num_layers
        self.growth_rate = growth_rate
        self.norm = norm
        self.activation = activation
        self._activation_fn = keras.activations.get(activation)

        self.norm_layers = []
        self.conv_layers = []  # conv_layers[l] = [F_l conv, G_l conv, H_l conv]
        for i in range(num_layers):
            if norm != "none":
                self.norm_layers.append(norm_layer(norm, f"norm_{i}", self.dtype_policy, pytorch_defaults=True))
            self.conv_layers.append(
                [
                    keras.layers.Conv2D(
                        growth_rate,
                        3,
                        padding="same",
                        dilation_rate=d,
                        dtype=self.dtype_policy,
                        name=f"conv_{i}_d{d}",
                    )
                    for d in self.DILATIONS
                ]
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"InfoAccum {self.name!r}: the channel dimension of the input must be known, got {input_shape}")
        step = len(self.DILATIONS) * self.growth_rate
        for i in range(self.num_layers):
            shape = tuple(input_shape[:-1]) + (channels + i * step,)
            if self.norm_layers:
                self.norm_layers[i].build(shape)
            for conv in self.conv_layers[i]:
                conv.build(shape)

    def call(self, inputs, training=None):
        dtype = inputs.dtype
        wide = _accumulation_dtype(dtype)
        dynamic = tf.shape(inputs)
        batch, height, width = (inputs.shape[k] if inputs.shape[k] is not None else dynamic[k] for k in range(3))
        pixels = height * width
        # (N, H, W, C) -> (N, C, H*W): each channel one contiguous row.
        features = tf.reshape(tf.transpose(inputs, [0, 3, 1, 2]), [batch, inputs.shape[-1], pixels])
        batch_statistics = self.norm == "instance" or (
            self.norm == "batch" and bool(training) and any(layer.trainable for layer in self.norm_layers)
        )
        # Per-channel statistics of each block of channels, computed once (a channel never changes).
        axes = [2] if self.norm == "instance" else [0, 2]
        means, variances = [], []

        def add_statistics(chunk):
            mean, variance = tf.nn.moments(tf.cast(chunk, wide), axes=axes, keepdims=True)
            means.append(mean)
            variances.append(variance)

        if batch_statistics:
            add_statistics(features)
        step = len(self.DILATIONS) * self.growth_rate
        for i in range(self.num_layers):
            h = features
            if self.norm_layers:
                scale, shift = self._scale_and_shift(i, means, variances, training, wide)
                h = tf.cast(tf.cast(features, wide) * scale + shift, dtype)
            h = self._activation_fn(h)
            convs = self.conv_layers[i]
            kernel = _tap_matrix([conv.kernel for conv in convs], dtype)  # (C_l, 27 g)
            taps = tf.matmul(kernel[None], h, adjoint_a=True)  # (N, 27 g, H*W)
            taps = tf.reshape(taps, [batch, 9 * step, height, width])
            new = _shifted_tap_sum(taps, height, width, self.DILATIONS, self.growth_rate)  # (N, 3 g, H, W)
            bias = tf.concat([tf.cast(conv.bias, new.dtype) for conv in convs], axis=0)
            new = tf.cast(tf.reshape(new, [batch, step, pixels]) + bias[:, None], dtype)
            if batch_statistics:
                add_statistics(new)
            features = tf.concat([features, new], axis=1)
        channels = inputs.shape[-1] + step * self.num_layers
        return tf.transpose(tf.reshape(features, [batch, channels, height, width]), [0, 2, 3, 1])

    def _scale_and_shift(self, i, means, variances, training, dtype):
        """Layer ``i``'s normalisation as ``x * scale + shift``, both ``(N or 1, C_i, 1)`` in ``dtype``.

        The same arithmetic as ``GroupNormalization`` / ``BatchNormalization``
        (``scale = gamma / sqrt(var + eps)``, ``shift = beta - mean * scale``);
        batch norm in training also updates the layer's moving statistics as
        ``BatchNormalization`` does.
        """
        layer = self.norm_layers[i]
        if self.norm == "batch" and not (training and layer.trainable):
            mean = tf.reshape(tf.cast(layer.moving_mean, dtype), [1, -1, 1])
            variance = tf.reshape(tf.cast(layer.moving_variance, dtype), [1, -1, 1])
        else:
            mean = means[0] if len(means) == 1 else tf.concat(means, axis=1)
            variance = variances[0] if len(variances) == 1 else tf.concat(variances, axis=1)
            if self.norm == "batch":
                momentum = layer.momentum
                layer.moving_mean.assign(
                    tf.cast(layer.moving_mean, dtype) * momentum + tf.reshape(mean, [-1]) * (1.0 - momentum)
                )
                layer.moving_variance.assign(
                    tf.cast(layer.moving_variance, dtype) * momentum + tf.reshape(variance, [-1]) * (1.0 - momentum)
                )
        scale = tf.math.rsqrt(variance + layer.epsilon)
        if layer.scale:
            scale = scale * tf.reshape(tf.cast(layer.gamma, dtype), [1, -1, 1])
        shift = -mean * scale
        if layer.center:
            shift = shift + tf.reshape(tf.cast(layer.beta, dtype), [1, -1, 1])
        return scale, shift

    def conv_input_shapes(self, input_shape):
        """``[(conv, shape)]``: each ``Conv2D`` sub-layer with the shape of the features its kernel is applied to.

        ``call`` evaluates the kernels as matrix products rather than by
        calling these layers; the multiply-adds are those of the direct
        convolutions on these shapes (``tools.benchmark`` counts FLOPs so).
        """
        step = len(self.DILATIONS) * self.growth_rate
        return [
            (conv, tuple(input_shape[:-1]) + (input_shape[-1] + i * step,))
            for i, convs in enumerate(self.conv_layers)
            for conv in convs
        ]

    def compute_output_shape(self, input_shape):
        extra = len(self.DILATIONS) * self.growth_rate * self.num_layers
        return tuple(input_shape[:-1]) + (input_shape[-1] + extra,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "growth_rate": self.growth_rate,
                "norm": self.norm,
                "activation": self.activation,
            }
        )
        return config


def _accumulation_dtype(dtype):
    """float32 for a 16-bit float dtype (sums and statistics are kept wider), else the dtype itself."""
    dtype = tf.as_dtype(dtype)
    return tf.float32 if dtype in (tf.float16, tf.bfloat16) else dtype


def _tap_matrix(kernels, dtype):
    """Kernels ``(3, 3, C, g)`` of the dilations, in order -> one ``(C, 9 * len(kernels) * g)`` matrix.

    Column block ``9 j + 3 ky + kx`` (``g`` columns) is tap ``(ky, kx)`` of kernel ``j``.
    """
    stacked = tf.stack([tf.cast(kernel, dtype) for kernel in kernels])  # (J, 3, 3, C, g)
    channels, growth = stacked.shape[3], stacked.shape[4]
    return tf.reshape(tf.transpose(stacked, [3, 0, 1, 2, 4]), [channels, 9 * len(kernels) * growth])


def _shifted_tap_sum(taps, height, width, dilations, growth):
    """The "same" dilated 3x3 convolutions from their per-tap products.

    ``taps``: ``(N, 9 J g, H, W)``, channel block ``9 j + 3 ky + kx`` holding
    tap ``(ky, kx)`` of kernel ``j`` applied at every pixel. Returns
    ``(N, J g, H, W)``: block ``j`` is ``out[y, x] = sum_{ky, kx} taps[y +
    (ky - 1) d_j, x + (kx - 1) d_j]``, zero outside the image, accumulated in
    :func:`_accumulation_dtype`. The gradient is the adjoint written out:
    each tap's gradient is the upstream gradient shifted back, one slice each.
    """
    pad = max(dilations)
    wide = _accumulation_dtype(taps.dtype)
    offsets = [(j, d, ky, kx) for j, d in enumerate(dilations) for ky in range(3) for kx in range(3)]

    def window(tensor, channel, dy, dx):
        # Rows/columns pad + dy .. pad + dy + H of the padded planes: the planes shifted by (dy, dx).
        return tensor[:, channel : channel + growth, pad + dy : pad + dy + height, pad + dx : pad + dx + width]

    @tf.custom_gradient
    def shifted_sum(taps):
        padded = tf.pad(taps, [[0, 0], [0, 0], [pad, pad], [pad, pad]])
        sums = []
        for j, d in enumerate(dilations):
            terms = [
                tf.cast(window(padded, (9 * j + 3 * ky + kx) * growth, (ky - 1) * d, (kx - 1) * d), wide)
                for ky in range(3)
                for kx in range(3)
            ]
            sums.append(tf.add_n(terms))

        def gradient(upstream):
            padded_up = tf.pad(tf.cast(upstream, taps.dtype), [[0, 0], [0, 0], [pad, pad], [pad, pad]])
            return tf.concat(
                [window(padded_up, j * growth, -(ky - 1) * d, -(kx - 1) * d) for j, d, ky, kx in offsets], axis=1
            )

        return tf.concat(sums, axis=1), gradient

    return shifted_sum(taps)
