"""DenseBlock: the DenseNet-style block that forms each stage of ERL-Net's MEMD."""

import keras

from erlrestore.layers._common import NORMS, PACKAGE, check_positive_int, norm_layer


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        check_positive_int(num_layers, "num_layers", "DenseBlock")
        check_positive_int(growth_rate, "growth_rate", "DenseBlock")
        if norm not in NORMS:
            raise ValueError(f"DenseBlock: norm must be one of {NORMS}, got {norm!r}")
        self.num_layers = num_layers
        self.growth_rate = growth_rate
        self.norm = norm
        self.activation = keras.activations.get(activation)

        self.norm_layers = []
        self.conv_layers = []
        for i in range(num_layers):
            if norm != "none":
                self.norm_layers.append(norm_layer(norm, f"norm_{i}", self.dtype_policy))
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
