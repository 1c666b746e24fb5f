"""Conv2D / Conv2DTranspose: Keras' convolutions, trained in faster forms at the ends of a U-Net."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.layers import Conv2D, Conv2DTranspose
from erlrestore.layers import conv2d
from layer_testing import check_layer


def test_conv2d_standard_checks():
    check_layer(Conv2D, {"filters": 5, "kernel_size": (4, 4), "strides": (2, 2), "padding": "same", "use_bias": False},
                input_shape=(2, 8, 6, 3), expected_output_shape=(2, 4, 3, 5), model_input_shape=(None, None, 3))


def test_conv2d_transpose_standard_checks():
    check_layer(Conv2DTranspose, {"filters": 5, "kernel_size": (4, 4), "strides": (2, 2), "padding": "same"},
                input_shape=(2, 3, 2, 4), expected_output_shape=(2, 6, 4, 5), model_input_shape=(None, None, 4))


def _pair(ours_cls, keras_cls, shape, policy="float32", **kwargs):
    """Erlrestore's layer and Keras' with the same random weights, built for ``shape``."""
    ours, theirs = ours_cls(dtype=policy, **kwargs), keras_cls(dtype=policy, **kwargs)
    rng = np.random.default_rng(7)
    for layer in (ours, theirs):
        layer.build(shape)
    for mine, other in zip(ours.weights, theirs.weights):
        value = (rng.normal(size=tuple(mine.shape)) * 0.2).astype("float32")
        mine.assign(value)
        other.assign(value)
    return ours, theirs


def _step(layer, x):
    """Training-mode output and the gradients of a non-linear loss (input, then every trainable weight)."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.cast(layer(x, training=True), tf.float32)
        loss = tf.reduce_sum(y * tf.sin(y))
    return [y.numpy()] + [g.numpy() for g in tape.gradient(loss, [x, *layer.trainable_weights])]


# (input shape, padding, the form the call takes); "same" pads one pixel on each side, "valid" reads the input.
CONV_CASES = [
    ((2, 2, 2, 5), "same", "product"),
    ((1, 8, 8, 5), "same", "product"),
    ((2, 8, 4, 3), "valid", "product"),
    ((1, 64, 64, 3), "same", "space_to_depth"),
    ((1, 66, 64, 3), "valid", "space_to_depth"),
    ((1, 16, 16, 3), "same", None),  # between the two limits: Keras' call
    ((1, 7, 7, 3), "same", None),  # odd sides: "same" pads unevenly
]


@pytest.mark.parametrize("shape,padding,form", CONV_CASES)
@pytest.mark.parametrize("use_bias,activation", [(False, None), (True, "relu")])
def test_conv2d_training_step_is_keras(shape, padding, form, use_bias, activation):
    ours, theirs = _pair(Conv2D, keras.layers.Conv2D, shape, filters=6, kernel_size=4, strides=2, padding=padding,
                         use_bias=use_bias, activation=activation)
    assert conv2d._conv_form(ours, tf.zeros(shape), True) == form
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    for expected, got in zip(_step(theirs, x), _step(ours, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("shape", [(2, 1, 1, 5), (1, 2, 2, 5), (2, 3, 2, 5), (1, 8, 8, 4), (1, 9, 9, 3)])
@pytest.mark.parametrize("use_bias", [False, True])
def test_conv2d_transpose_training_step_is_keras(shape, use_bias):
    ours, theirs = _pair(Conv2DTranspose, keras.layers.Conv2DTranspose, shape, filters=6, kernel_size=4,
                         strides=2, padding="same", use_bias=use_bias)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    for expected, got in zip(_step(theirs, x), _step(ours, x)):
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(expected).max()))


@pytest.mark.parametrize("cls,keras_cls,shape", [(Conv2D, keras.layers.Conv2D, (2, 4, 4, 8)),
                                                 (Conv2D, keras.layers.Conv2D, (1, 64, 64, 3)),
                                                 (Conv2DTranspose, keras.layers.Conv2DTranspose, (2, 2, 2, 8))])
def test_mixed_bfloat16_training_step_is_keras_to_bfloat16_rounding(cls, keras_cls, shape):
    ours, theirs = _pair(cls, keras_cls, shape, policy="mixed_bfloat16", filters=4, kernel_size=4, strides=2,
                         padding="same")
    x = np.random.default_rng(2).normal(size=shape).astype("float32")
    assert ours(x, training=True).dtype == theirs(x, training=True).dtype
    for expected, got in zip(_step(theirs, x), _step(ours, x)):
        np.testing.assert_allclose(got, expected, rtol=3e-2, atol=3e-2 * max(1.0, np.abs(expected).max()))


def _op_types(layer, shape, training):
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(
        tf.TensorSpec(shape, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


def test_each_form_runs_its_ops_and_inference_runs_keras_ops():
    tiny = Conv2D(4, 4, strides=2, padding="same")
    tiny.build((1, 4, 4, 3))
    assert "MatMul" in _op_types(tiny, (1, 4, 4, 3), True)
    assert not {"Conv2D", "_MklNativeConv2D"} & _op_types(tiny, (1, 4, 4, 3), True)
    assert "MatMul" not in _op_types(tiny, (1, 4, 4, 3), False)
    assert "MatMul" not in _op_types(tiny, (1, None, None, 3), True)  # a dynamic size: Keras' call
    large = Conv2D(4, 4, strides=2, padding="same")
    large.build((1, 64, 64, 3))
    assert "SpaceToDepth" in _op_types(large, (1, 64, 64, 3), True)
    assert "SpaceToDepth" not in _op_types(large, (1, 64, 64, 3), False)
    up = Conv2DTranspose(4, 4, strides=2, padding="same")
    up.build((1, 2, 2, 3))
    assert "MatMul" in _op_types(up, (1, 2, 2, 3), True)
    assert "Conv2DBackpropInput" not in _op_types(up, (1, 2, 2, 3), True)
    assert "Conv2DBackpropInput" in _op_types(up, (1, 2, 2, 3), False)
    big = Conv2DTranspose(4, 4, strides=2, padding="same")
    big.build((1, 16, 16, 3))
    assert "MatMul" not in _op_types(big, (1, 16, 16, 3), True)


@pytest.mark.parametrize("kwargs", [{"strides": 1, "padding": "same"}, {"strides": 2, "padding": "same",
                                                                          "dilation_rate": 1, "kernel_size": 3}])
def test_other_convolutions_are_keras_calls(kwargs):
    kwargs = {"kernel_size": 4, **kwargs}
    layer = Conv2D(4, **kwargs)
    layer.build((1, 4, 4, 3))
    assert conv2d._conv_form(layer, tf.zeros((1, 4, 4, 3)), True) is None


def test_models_saved_with_keras_convolutions_load_into_these(tmp_path, monkeypatch):
    # A .keras file keys a listed layer's weights by class name (conv2d_<k>): a generator and a PatchGAN saved
    # when their convolutions were Keras' classes must load unchanged, and into erlrestore's classes.
    from erlrestore.models import pix2pix

    config = pix2pix.GeneratorConfig(levels=3, base_filters=4, max_filters=8, norm="batch")
    with monkeypatch.context() as patch:
        patch.setattr(pix2pix, "Conv2D", keras.layers.Conv2D)
        patch.setattr(pix2pix, "Conv2DTranspose", keras.layers.Conv2DTranspose)
        old = [pix2pix.build_generator(config), pix2pix.build_patchgan(base_filters=4, num_layers=3)]
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(1, 16, 16, 3)).astype("float32")
    for index, model in enumerate(old):
        assert not any(type(layer) in (Conv2D, Conv2DTranspose) for layer in model._flatten_layers())
        for weight in model.weights:
            weight.assign(rng.uniform(0.5, 1.5, size=tuple(weight.shape)).astype("float32"))
        path = str(tmp_path / f"old{index}.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        inputs = x if index == 0 else [x, x]
        np.testing.assert_array_equal(loaded(inputs, training=False), model(inputs, training=False))
    new = pix2pix.build_generator(config)
    assert {type(layer) for layer in new.layers} >= {Conv2D, Conv2DTranspose}
    new.set_weights(old[0].get_weights())
    np.testing.assert_allclose(new(x, training=True), old[0](x, training=True), rtol=1e-5, atol=1e-5)
