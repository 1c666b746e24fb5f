"""Tests for the generative-family layers InfoAccum and SubPixelUpsample."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.layers import InfoAccum, SubPixelUpsample
from layer_testing import check_layer


def _conv(x, conv, dilation=1):
    """Reference 'same' convolution with a Conv2D layer's weights."""
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in conv.weights)
    return tf.nn.conv2d(x, kernel, strides=1, padding="SAME", dilations=dilation).numpy() + bias


# ----------------------------------------------------------------- InfoAccum


@pytest.mark.parametrize(
    "norm, activation", [("instance", "leaky_relu"), ("batch", "relu"), ("none", "leaky_relu")]
)
def test_info_accum_standard_checks(norm, activation):
    check_layer(
        InfoAccum,
        {"num_layers": 2, "growth_rate": 3, "norm": norm, "activation": activation},
        input_shape=(2, 12, 11, 3),
        expected_output_shape=(2, 12, 11, 3 + 3 * 3 * 2),
        model_input_shape=(None, None, 3),
    )


@pytest.mark.parametrize("channels, layers, growth", [(3, 1, 1), (3, 15, 4), (5, 3, 2)])
def test_info_accum_channel_count(channels, layers, growth):
    block = InfoAccum(layers, growth_rate=growth)
    out = block(np.zeros((1, 7, 9, channels), "float32"))
    assert out.shape == (1, 7, 9, channels + 3 * growth * layers)
    assert block.compute_output_shape((None, None, None, channels)) == (None, None, None, channels + 3 * growth * layers)


def test_info_accum_defaults_are_documented_choices():
    block = InfoAccum(15)
    assert (block.growth_rate, block.norm, block.activation) == (4, "instance", "leaky_relu")
    assert block.compute_output_shape((1, 8, 8, 3)) == (1, 8, 8, 183)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
def test_info_accum_passes_input_through_exactly(norm):
    x = np.random.default_rng(3).normal(size=(2, 10, 9, 4)).astype("float32")
    block = InfoAccum(3, growth_rate=2, norm=norm)
    out = keras.ops.convert_to_numpy(block(x, training=True))
    np.testing.assert_array_equal(out[..., :4], x)
    assert out.shape[-1] == 4 + 3 * 3 * 2


def test_info_accum_matches_reference_dilated_branches():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1, 13, 12, 3)).astype("float32")
    block = InfoAccum(2, growth_rate=2, norm="none", activation="relu")
    block(x)
    for weight in block.weights:
        weight.assign(rng.normal(0, 0.3, size=tuple(weight.shape)).astype("float32"))
    out = keras.ops.convert_to_numpy(block(x))
    # Layer 0: F, G, H on relu(x) with dilation 1, 3, 5.
    h0 = np.maximum(x, 0)
    layer0 = [_conv(h0, conv, d) for conv, d in zip(block.conv_layers[0], (1, 3, 5))]
    x1 = np.concatenate([x] + layer0, axis=-1)
    np.testing.assert_allclose(out[..., :9], x1, atol=1e-5)
    # Layer 1 reads the whole concatenation x1.
    h1 = np.maximum(x1, 0)
    layer1 = [_conv(h1, conv, d) for conv, d in zip(block.conv_layers[1], (1, 3, 5))]
    np.testing.assert_allclose(out, np.concatenate([x1] + layer1, axis=-1), atol=1e-5)
    # The dilation really differs: a dilation-1 conv with G's kernel gives another result.
    assert not np.allclose(layer0[1], _conv(h0, block.conv_layers[0][1], 1), atol=1e-3)


def _direct_info_accum(block, x, training):
    """InfoAccum as the paper writes it: each dense layer calls its norm layer and three dilated Conv2D layers."""
    for i in range(block.num_layers):
        h = block.norm_layers[i](x, training=training) if block.norm_layers else x
        h = block._activation_fn(h)
        x = keras.ops.concatenate([x] + [conv(h) for conv in block.conv_layers[i]], axis=-1)
    return x


def _twin_info_accums(x, seed, **kwargs):
    """Two built InfoAccum blocks with the same random weights (moving variances positive)."""
    rng = np.random.default_rng(seed)
    blocks = [InfoAccum(**kwargs) for _ in range(2)]
    for block in blocks:
        block(x)
    for first, second in zip(blocks[0].weights, blocks[1].weights):
        shape = tuple(first.shape)
        value = rng.uniform(0.5, 1.5, shape) if "moving_variance" in first.path else rng.normal(0.0, 0.3, shape)
        first.assign(value.astype("float32"))
        second.assign(value.astype("float32"))
    return blocks


def _output_and_gradients(call, block, x, upstream):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = call(x)
        loss = tf.reduce_sum(tf.cast(out, tf.float32) * upstream)
    gradients = tape.gradient(loss, [x] + block.trainable_weights)
    return out.numpy(), [g.numpy() for g in gradients]


@pytest.mark.parametrize(
    "norm, activation, training",
    [("instance", "leaky_relu", True), ("batch", "leaky_relu", True), ("batch", "leaky_relu", False),
     ("none", "relu", True)],
)
def test_info_accum_equals_the_direct_dilated_convolutions(norm, activation, training):
    # The block computes its convolutions as one matrix product and shifted sums, and its norms
    # from statistics shared across layers; output, gradients (input and every weight) and batch
    # norm's moving statistics must be those of the layer-by-layer formulation.
    rng = np.random.default_rng(11)
    x = rng.normal(0.5, 1.0, size=(2, 20, 24, 5)).astype("float32")
    block, reference = _twin_info_accums(x, 12, num_layers=2, growth_rate=3, norm=norm, activation=activation)
    upstream = tf.constant(rng.normal(size=(2, 20, 24, 5 + 2 * 9)).astype("float32"))
    out, grads = _output_and_gradients(lambda t: block(t, training=training), block, x, upstream)
    ref_out, ref_grads = _output_and_gradients(
        lambda t: _direct_info_accum(reference, t, training), reference, x, upstream)
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=1e-5)
    names = ["input"] + [w.path for w in block.trainable_weights]
    assert len(grads) == len(ref_grads) == (1 + 2 * (2 if norm != "none" else 0) + 2 * 3 * 2)
    for name, grad, ref in zip(names, grads, ref_grads):
        assert np.max(np.abs(grad - ref)) <= 1e-4 * np.max(np.abs(ref)), name
    for mine, theirs in zip(block.non_trainable_weights, reference.non_trainable_weights):
        np.testing.assert_allclose(mine.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-6, err_msg=mine.path)
    if norm == "batch" and training:  # the moving statistics did move
        assert not np.allclose(block.norm_layers[1].moving_mean.numpy(), 0.0)


def test_info_accum_frozen_batch_norm_uses_moving_statistics():
    x = np.random.default_rng(4).normal(size=(2, 9, 7, 3)).astype("float32")
    block, reference = _twin_info_accums(x, 5, num_layers=2, growth_rate=2, norm="batch")
    block.trainable = reference.trainable = False
    before = [w.numpy() for w in block.non_trainable_weights]
    out = keras.ops.convert_to_numpy(block(x, training=True))
    np.testing.assert_allclose(out, keras.ops.convert_to_numpy(_direct_info_accum(reference, x, True)), atol=1e-5)
    for old, w in zip(before, block.non_trainable_weights):
        np.testing.assert_array_equal(old, w.numpy())


def test_info_accum_mixed_bfloat16_stays_close_to_float32():
    x = np.random.default_rng(2).normal(size=(1, 16, 12, 3)).astype("float32")
    block = InfoAccum(3, norm="instance", dtype="mixed_bfloat16")
    reference = InfoAccum(3, norm="instance")
    block(x)
    reference(x)
    for a, b in zip(block.weights, reference.weights):
        a.assign(b.numpy())
    out = block(x, training=True)
    assert out.dtype == tf.bfloat16
    ref = keras.ops.convert_to_numpy(reference(x, training=True))
    error = np.abs(keras.ops.convert_to_numpy(tf.cast(out, tf.float32)) - ref)
    assert error.max() <= 2e-2 * np.abs(ref).max()


def test_info_accum_variables_are_the_direct_layers():
    # Checkpoints and .keras files from the layer-by-layer formulation load: same paths, shapes, order.
    block = InfoAccum(2, growth_rate=3, norm="batch", name="ia")
    block(np.zeros((1, 8, 8, 5), "float32"))
    expected = []
    for i, channels in enumerate((5, 14)):
        norm_weights = ("gamma", "beta", "moving_mean", "moving_variance")
        expected += [(f"ia/norm_{i}/{name}", (channels,)) for name in norm_weights]
        for d in (1, 3, 5):
            expected += [(f"ia/conv_{i}_d{d}/kernel", (3, 3, channels, 3)), (f"ia/conv_{i}_d{d}/bias", (3,))]
    assert [(w.path, tuple(w.shape)) for w in block.weights] == expected


def test_info_accum_leaky_relu_slope_is_0_2():
    x = -np.ones((1, 5, 5, 1), "float32")
    block = InfoAccum(1, growth_rate=1, norm="none", activation="leaky_relu")
    block(x)
    for conv in block.conv_layers[0]:
        kernel = np.zeros((3, 3, 1, 1), "float32")
        kernel[1, 1, 0, 0] = 1.0
        conv.set_weights([kernel, np.zeros(1, "float32")])
    out = keras.ops.convert_to_numpy(block(x))
    np.testing.assert_allclose(out[..., 1:], np.full((1, 5, 5, 3), -0.2), atol=1e-6)


def test_info_accum_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"InfoAccum: norm must be one of \('none', 'instance', 'batch'\), got 'layer'"):
        InfoAccum(2, norm="layer")
    with pytest.raises(ValueError, match=r"InfoAccum: activation must be one of \('leaky_relu', 'relu'\), got 'tanh'"):
        InfoAccum(2, activation="tanh")
    with pytest.raises(ValueError, match="InfoAccum: num_layers must be a positive integer, got 0"):
        InfoAccum(0)
    with pytest.raises(ValueError, match="InfoAccum: growth_rate must be a positive integer, got 2.0"):
        InfoAccum(2, growth_rate=2.0)


# ---------------------------------------------------------- SubPixelUpsample


@pytest.mark.parametrize("filters, scale, kernel_size", [(4, 2, 3), (3, 3, 1)])
def test_subpixel_standard_checks(filters, scale, kernel_size):
    check_layer(
        SubPixelUpsample,
        {"filters": filters, "scale": scale, "kernel_size": kernel_size},
        input_shape=(2, 5, 7, 6),
        expected_output_shape=(2, 5 * scale, 7 * scale, filters),
        model_input_shape=(None, None, 6),
    )


def test_subpixel_shape_and_dynamic_shape():
    layer = SubPixelUpsample(5)
    out = layer(np.zeros((1, 9, 4, 7), "float32"))
    assert out.shape == (1, 18, 8, 5)
    assert layer.compute_output_shape((None, None, 4, 7)) == (None, None, 8, 5)
    assert layer.conv.filters == 5 * 4 and layer.conv.kernel_size == (3, 3)


def _identity_shuffle(filters, scale):
    """A SubPixelUpsample whose 1x1 conv is the identity: output = pixel shuffle of the input."""
    depth = filters * scale * scale
    layer = SubPixelUpsample(filters, scale=scale, kernel_size=1)
    layer(np.zeros((1, 1, 1, depth), "float32"))
    layer.conv.set_weights([np.eye(depth, dtype="float32")[None, None], np.zeros(depth, "float32")])
    return layer


def test_subpixel_shuffle_places_channel_blocks_as_tensorflow_defines():
    # One pixel, 4 channels, r = 2, 1 output channel: channel i*r + j goes to (i, j).
    layer = _identity_shuffle(filters=1, scale=2)
    x = np.array([10.0, 11.0, 12.0, 13.0], "float32").reshape(1, 1, 1, 4)
    out = keras.ops.convert_to_numpy(layer(x))
    np.testing.assert_array_equal(out[0, :, :, 0], [[10.0, 11.0], [12.0, 13.0]])

    # Two pixels (1 x 2), 8 channels = 4 blocks of 2 output channels:
    # out[r*h + i, r*w + j, c] = in[h, w, (i*r + j) * 2 + c].
    layer = _identity_shuffle(filters=2, scale=2)
    x = np.arange(16, dtype="float32").reshape(1, 1, 2, 8)
    out = keras.ops.convert_to_numpy(layer(x))[0]
    expected = np.array(
        [
            [[0, 1], [2, 3], [8, 9], [10, 11]],
            [[4, 5], [6, 7], [12, 13], [14, 15]],
        ],
        "float32",
    )
    np.testing.assert_array_equal(out, expected)


def test_subpixel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="SubPixelUpsample: scale must be a positive integer, got 0"):
        SubPixelUpsample(3, scale=0)
    with pytest.raises(ValueError, match="SubPixelUpsample: filters must be a positive integer, got -1"):
        SubPixelUpsample(-1)


def test_info_accum_sums_its_taps_in_float32_under_mixed_bfloat16():
    # Inputs and kernels exact in bfloat16, one input channel, kernels powers of two: every tap product is exact
    # in bfloat16 and every 9-tap sum exact in float32. Summed in float32, the bfloat16 output is that exact sum
    # rounded once, bit for bit; summed in bfloat16 (a rounding after every addition) it is not.
    rng = np.random.default_rng(3)

    def bfloat16(values):
        return tf.cast(tf.cast(values, tf.bfloat16), tf.float32).numpy()

    x = bfloat16(rng.uniform(0.5, 2.0, (2, 20, 24, 1)))
    block = InfoAccum(1, growth_rate=4, norm="none", activation="relu", dtype="mixed_bfloat16")
    reference = InfoAccum(1, growth_rate=4, norm="none", activation="relu")
    block(x)
    reference(x)
    for mine, theirs in zip(block.weights, reference.weights):
        shape = tuple(mine.shape)
        value = rng.choice([-1.0, -0.5, -0.25, 0.25, 0.5, 1.0], shape) if "kernel" in mine.path else np.zeros(shape)
        mine.assign(value.astype("float32"))
        theirs.assign(value.astype("float32"))
    out = block(x)
    assert out.dtype == tf.bfloat16
    exact = keras.ops.convert_to_numpy(reference(x))
    for j, conv in enumerate(reference.conv_layers[0]):  # the float32 reference is exact: float64 agrees
        direct = tf.nn.conv2d(x.astype("float64"), conv.kernel.numpy().astype("float64"), 1, "SAME",
                              dilations=conv.dilation_rate).numpy()
        np.testing.assert_array_equal(exact[..., 1 + 4 * j:1 + 4 * (j + 1)], direct)
    np.testing.assert_array_equal(tf.cast(out, tf.float32).numpy(), bfloat16(exact))
