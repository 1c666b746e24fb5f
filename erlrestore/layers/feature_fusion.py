"""FeatureFusion: ERL-Net's feature-fusion layer FUS (Fig. 2(c)), after a U-Net skip connection."""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE, check_positive_int


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        check_positive_int(filters, "filters", "FeatureFusion")
        check_positive_int(reduction, "reduction", "FeatureFusion")
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
