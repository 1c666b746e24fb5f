"""Custom Keras layers shared by the restoration models.

Every layer here is a serializable ``keras.layers.Layer`` (registered under the
``erlrestore`` package, constructor arguments returned by ``get_config``), works
channels-last on float32 tensors and accepts dynamic spatial sizes
(``(batch, None, None, channels)``).

- :class:`DenseBlock` -- DenseNet-style block, the stage of the ERL-Net MEMD.
- :class:`FeatureFusion` -- ERL-Net's feature-fusion layer FUS (Fig. 2(c)).
- :class:`PadToMultiple` / :class:`CropToMatch` -- pad an image of any size to
  a multiple of ``2**depth`` before a U-Net and crop the result back.
- :class:`InfoAccum` -- the rethinking paper's information-accumulation module
  (dense layers with dilation-1/3/5 branches, Eq. 14).
- :class:`SubPixelUpsample` -- sub-pixel convolution up-sampling (SubPixUpsamp).
- :class:`PhaseConv2DTranspose` -- a trained transposed convolution run as a
  forward convolution and ``depth_to_space`` (the inference graph's form,
  :mod:`erlrestore.inference_graph`).

Plain Keras layers are used wherever they suffice (e.g. ``keras.layers.Add``
for the ERL-Net feature entanglement).
"""

import keras
import tensorflow as tf

# The dtype of the layers at a network's image-space ends (padding, last
# convolution, global residual, tanh, crop, logits): float32 under any
# mixed-precision policy, so outputs and losses keep full precision.
IMAGE_DTYPE = "float32"

_PACKAGE = "erlrestore"

_NORMS = ("none", "instance", "batch")
_PAD_MODES = ("REFLECT", "SYMMETRIC", "EDGE")


def _check_positive_int(value, what, owner):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {what} must be a positive integer, got {value!r}")


# PyTorch's normalisation defaults (momentum 0.1 there, 0.9 in Keras' convention; epsilon 1e-5), which the
# pix2pix generators use everywhere; InfoAccum lives inside those generators and follows them.
PYTORCH_NORM = {"momentum": 0.9, "epsilon": 1e-5}


def _norm_layer(norm, name, dtype_policy, pytorch_defaults=False):
    """The normalisation sub-layer of DenseBlock (Keras' defaults) / InfoAccum (PyTorch's): instance or batch."""
    if norm == "instance":
        epsilon = {"epsilon": PYTORCH_NORM["epsilon"]} if pytorch_defaults else {}
        return keras.layers.GroupNormalization(groups=-1, dtype=dtype_policy, name=name, **epsilon)
    settings = PYTORCH_NORM if pytorch_defaults else {}
    return keras.layers.BatchNormalization(dtype=dtype_policy, name=name, **settings)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class DenseBlock(keras.layers.Layer):
    """DenseNet-style block (Huang et al., CVPR 2017) with 3x3 convolutions.

    Layer ``i`` (0-based) sees the concatenation of the block input and the
    outputs of layers ``0..i-1`` and computes ``[norm] -> activation ->
    Conv3x3(growth_rate)`` (pre-activation, "same" padding). The block output
    is the concatenation of the input and all layer outputs, so it has
    ``C_in + num_layers * growth_rate`` channels.

    ERL-Net stacks such blocks in a U-Net but gives no block sizes; the
    defaults of the models that use this layer are our choice.

    Args:
        num_layers: number of composite layers (``L``).
        growth_rate: channels added by each layer (``k``).
        norm: ``"none"`` (default), ``"instance"`` (``GroupNormalization`` with
            one group per channel) or ``"batch"``. The default is ``"none"``
            because the ERL-Net paper trains with batch size 1, where batch
            statistics are those of a single crop.
        activation: any name or object accepted by ``keras.activations.get``.
        **kwargs: standard layer arguments (``name``, ``dtype``, ...).
    """

    def __init__(self, num_layers, growth_rate, norm="none", activation="relu", **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(num_layers, "num_layers", "DenseBlock")
        _check_positive_int(growth_rate, "growth_rate", "DenseBlock")
        if norm not in _NORMS:
            raise ValueError(f"DenseBlock: norm must be one of {_NORMS}, got {norm!r}")
        self.num_layers = num_layers
        self.growth_rate = growth_rate
        self.norm = norm
        self.activation = keras.activations.get(activation)

        self.norm_layers = []
        self.conv_layers = []
        for i in range(num_layers):
            if norm != "none":
                self.norm_layers.append(_norm_layer(norm, f"norm_{i}", self.dtype_policy))
            self.conv_layers.append(
                keras.layers.Conv2D(growth_rate, 3, padding="same", dtype=self.dtype_policy, name=f"conv_{i}")
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if channels is None:
            raise ValueError(f"DenseBlock {self.name!r}: the channel dimension of the input must be known, got {input_shape}")
        for i in range(self.num_layers):
            shape = tuple(input_shape[:-1]) + (channels + i * self.growth_rate,)
            if self.norm_layers:
                self.norm_layers[i].build(shape)
            self.conv_layers[i].build(shape)

    def call(self, inputs, training=None):
        features = [inputs]
        for i in range(self.num_layers):
            h = features[0] if i == 0 else keras.ops.concatenate(features, axis=-1)
            if self.norm_layers:
                h = self.norm_layers[i](h, training=training)
            h = self.activation(h)
            features.append(self.conv_layers[i](h))
        return keras.ops.concatenate(features, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (input_shape[-1] + self.num_layers * self.growth_rate,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "growth_rate": self.growth_rate,
                "norm": self.norm,
                "activation": keras.activations.serialize(self.activation),
            }
        )
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureFusion(keras.layers.Layer):
    """ERL-Net's feature-fusion layer FUS (Sec. 3.2, Fig. 2(c)).

    Called on a list ``[skip, decoder]`` of equally sized feature maps, right
    after a U-Net skip connection. With ``x = concat([skip, decoder])`` (``C``
    channels) it computes

    1. channel recalibration, squeeze-and-excitation style:
       ``s = sigmoid(Dense_C(relu(Dense_{C/r}(GlobalAvgPool(x)))))`` and
       ``x' = x * s``;
    2. a residual-guided combination: ``out = decoder + Conv1x1_filters(x')``.

    The paper describes FUS only as "feature map recalibration and residual
    guided layers combination"; these exact internals (SE recalibration of the
    concatenation, a 1x1 convolution, the decoder feature as the residual
    path) are our reading of its figure. With a zero 1x1 convolution FUS
    passes the decoder feature through unchanged.

    The output goes through ``tf.ensure_shape`` (an identity at run time that
    Grappler keeps). Without it, TensorFlow's oneDNN remapper (CPU) matches
    ``Conv2D + BiasAdd + Add + Relu`` from the 1x1 convolution through this
    add into the next layer's activation. It does not check that the add has
    other consumers (a DenseBlock also concatenates it), so it deletes a node
    that is still in use. The whole remapper pass then fails ("remapper
    failed: ... Mutation::Apply error: fanout ... exist for missing node
    .../fuse_<i>/add"). In forward-only graphs that leaves every convolution
    unfused. Behind the ``EnsureShape`` the remapper fuses the legal
    ``Conv2D + BiasAdd + Add`` instead. See docs/BENCHMARKS.md.

    Args:
        filters: output channels; the decoder feature (second input) must have
            exactly this many channels.
        reduction: squeeze ratio ``r`` of the SE bottleneck (hidden units
            ``max(1, C // r)``).
        **kwargs: standard layer arguments.
    """

    def __init__(self, filters, reduction=4, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(filters, "filters", "FeatureFusion")
        _check_positive_int(reduction, "reduction", "FeatureFusion")
        self.filters = filters
        self.reduction = reduction
        self.combine = keras.layers.Conv2D(filters, 1, dtype=self.dtype_policy, name="combine")

    def _split_shapes(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
            input_shape[0], (list, tuple)
        ):
            raise ValueError(
                f"FeatureFusion {self.name!r} expects a list of two inputs [skip, decoder], got shape {input_shape}"
            )
        return tuple(input_shape[0]), tuple(input_shape[1])

    def build(self, input_shape):
        skip_shape, decoder_shape = self._split_shapes(input_shape)
        if skip_shape[-1] is None or decoder_shape[-1] is None:
            raise ValueError(f"FeatureFusion {self.name!r}: channel dimensions must be known, got {input_shape}")
        if decoder_shape[-1] != self.filters:
            raise ValueError(
                f"FeatureFusion {self.name!r} (filters={self.filters}) needs the decoder feature (second input) "
                f"to have {self.filters} channels, got {decoder_shape[-1]}"
            )
        channels = skip_shape[-1] + decoder_shape[-1]
        self.squeeze = keras.layers.Dense(
            max(1, channels // self.reduction), activation="relu", dtype=self.dtype_policy, name="squeeze"
        )
        self.excite = keras.layers.Dense(channels, activation="sigmoid", dtype=self.dtype_policy, name="excite")
        self.squeeze.build((None, channels))
        self.excite.build((None, max(1, channels // self.reduction)))
        self.combine.build(decoder_shape[:-1] + (channels,))

    def call(self, inputs):
        skip, decoder = inputs
        x = keras.ops.concatenate([skip, decoder], axis=-1)
        pooled = keras.ops.mean(x, axis=(1, 2))
        scale = self.excite(self.squeeze(pooled))
        x = x * scale[:, None, None, :]
        # The EnsureShape only hides the add from the oneDNN remapper's
        # add+activation fusion (see the class docstring); the values are unchanged.
        return tf.ensure_shape(decoder + self.combine(x), decoder.shape)

    def compute_output_shape(self, input_shape):
        _, decoder_shape = self._split_shapes(input_shape)
        return decoder_shape

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "reduction": self.reduction})
        return config


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


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        _check_positive_int(multiple, "multiple", "PadToMultiple")
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CropToMatch(keras.layers.Layer):
    """Crops ``x`` to the height and width of ``reference``: call on ``[x, reference]``.

    Keeps the top-left ``H_ref x W_ref`` window of ``x`` (the inverse of
    :class:`PadToMultiple`, which pads at the bottom/right). ``x`` keeps its
    channels. Works with dynamic spatial sizes.
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


_INFO_ACCUM_ACTIVATIONS = ("leaky_relu", "relu")


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        _check_positive_int(num_layers, "num_layers", "InfoAccum")
        _check_positive_int(growth_rate, "growth_rate", "InfoAccum")
        if norm not in _NORMS:
            raise ValueError(f"InfoAccum: norm must be one of {_NORMS}, got {norm!r}")
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
                self.norm_layers.append(_norm_layer(norm, f"norm_{i}", self.dtype_policy, pytorch_defaults=True))
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


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SubPixelUpsample(keras.layers.Layer):
    """Sub-pixel convolution up-sampling (Shi et al., CVPR 2016), the paper's SubPixUpsamp.

    A ``kernel_size`` x ``kernel_size`` "same" convolution to
    ``filters * scale**2`` channels followed by ``tf.nn.depth_to_space`` with
    block size ``r = scale``: ``(B, H, W, C_in) -> (B, r*H, r*W, filters)``.
    The pixel shuffle follows TensorFlow's definition,

        ``out[b, r*h + i, r*w + j, c] = conv[b, h, w, (i*r + j) * filters + c]``,

    i.e. the channels form ``r*r`` blocks of ``filters`` channels, block
    ``i*r + j`` going to sub-pixel row ``i``, column ``j``. The rethinking
    paper's Eq. (15) (after Shi et al.) and PyTorch's ``PixelShuffle``
    (channel ``c*r*r + i*r + j``) order the channels differently; since a
    learned convolution precedes the shuffle, the orderings differ only by a
    permutation of its filters and give the same family of functions.

    Args:
        filters: output channels ``C``.
        scale: up-sampling factor ``r`` (default 2, as in the paper).
        kernel_size: size of the convolution (default 3; our choice).
        **kwargs: standard layer arguments.
    """

    def __init__(self, filters, scale=2, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        _check_positive_int(filters, "filters", "SubPixelUpsample")
        _check_positive_int(scale, "scale", "SubPixelUpsample")
        _check_positive_int(kernel_size, "kernel_size", "SubPixelUpsample")
        self.filters = filters
        self.scale = scale
        self.kernel_size = kernel_size
        self.conv = keras.layers.Conv2D(
            filters * scale * scale, kernel_size, padding="same", dtype=self.dtype_policy, name="conv"
        )

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"SubPixelUpsample {self.name!r} expects (batch, height, width, channels) with known channels, "
                f"got {input_shape}"
            )
        self.conv.build(input_shape)

    def call(self, inputs):
        return tf.nn.depth_to_space(self.conv(inputs), self.scale)

    def compute_output_shape(self, input_shape):
        def up(n):
            return None if n is None else n * self.scale

        return (input_shape[0], up(input_shape[1]), up(input_shape[2]), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update({"filters": self.filters, "scale": self.scale, "kernel_size": self.kernel_size})
        return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
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
        _check_positive_int(filters, "filters", "PhaseConv2DTranspose")
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
