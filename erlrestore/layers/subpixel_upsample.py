"""SubPixelUpsample: sub-pixel convolution up-sampling (the rethinking paper's SubPixUpsamp)."""

import keras
import tensorflow as tf

from erlrestore.layers._common import PACKAGE, check_positive_int


@keras.saving.register_keras_serializable(package=PACKAGE)
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
        check_positive_int(filters, "filters", "SubPixelUpsample")
        check_positive_int(scale, "scale", "SubPixelUpsample")
        check_positive_int(kernel_size, "kernel_size", "SubPixelUpsample")
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
