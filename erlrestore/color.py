"""The one RGB -> Y (luma) conversion used by data, metrics and evaluation.

The de-raining literature reports PSNR/SSIM on the Y channel of YCbCr as
computed by MATLAB's ``rgb2ycbcr`` (ITU-R BT.601, *studio* range)::

    Y = 16 + 65.481 R + 128.553 G + 24.966 B      (R, G, B in [0, 1])

so Y lies in [16, 235] on the 0-255 scale. This is *not* ``tf.image.rgb_to_yuv``
(full range, 0.299/0.587/0.114, no offset), which changes PSNR by about
1.3 dB. Like BasicSR (``test_y_channel=True``) and unlike MATLAB on uint8
input, Y is not rounded to integers.
"""

import numpy as np
import tensorflow as tf

# BT.601 studio-range luma weights for R, G, B in [0, 1]; the result is on 0-255.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(rgb):
    """Y of ``rgb`` (..., 3) in [0, 1] as float64 on the 0-255 scale (16-235)."""
    rgb = np.asarray(rgb, dtype=np.float64)
    if rgb.shape[-1] != 3:
        raise ValueError(f"rgb_to_y expects a last axis of 3 channels, got shape {rgb.shape}")
    return rgb @ np.asarray(Y_WEIGHTS, dtype=np.float64) + Y_OFFSET


def rgb_to_y_tf(rgb):
    """TensorFlow twin of :func:`rgb_to_y`: (..., 3) in [0, 1] -> (...,) on 0-255.

    Computed in the input's float dtype (float32 in training); the NumPy
    version is the float64 reference used for reported numbers.
    """
    rgb = tf.convert_to_tensor(rgb)
    if not rgb.dtype.is_floating:
        rgb = tf.cast(rgb, tf.float32)
    weights = tf.constant(Y_WEIGHTS, dtype=rgb.dtype)
    return tf.tensordot(rgb, weights, axes=[[-1], [0]]) + tf.cast(Y_OFFSET, rgb.dtype)
