"""BatchNormalization: Keras' batch normalization, computed by TensorFlow's fused kernel in training."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.layers import BatchNormalization
from layer_testing import check_layer


def test_batch_normalization_standard_checks():
    check_layer(
        BatchNormalization,
        {"momentum": 0.9, "epsilon": 1e-5},
        input_shape=(2, 6, 5, 4),
        expected_output_shape=(2, 6, 5, 4),
        model_input_shape=(None, None, 4),
    )


def _pair(policy, channels, **kwargs):
    """A Keras layer and a fused one with the same (non-trivial) weights."""
    keras_bn = keras.layers.BatchNormalization(dtype=policy, **kwargs)
    fused_bn = BatchNormalization(dtype=policy, **kwargs)
    rng = np.random.default_rng(3)
    for layer in (keras_bn, fused_bn):
        layer.build((None, None, None, channels))
    for weights in zip(keras_bn.weights, fused_bn.weights):
        value = rng.uniform(0.5, 2.0, size=tuple(weights[0].shape)).astype("float32")
        for weight in weights:
            weight.assign(value)
    return keras_bn, fused_bn


def _step(layer, x):
    """Training-mode output, gradients of a weighted sum (input and trainable weights) and the moving statistics."""
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * tf.sin(3.0 * x))
    grads = tape.gradient(loss, [x, *layer.trainable_weights])
    return ([tf.cast(y, tf.float32).numpy()] + [g.numpy() for g in grads]
            + [layer.moving_mean.numpy(), layer.moving_variance.numpy()])


# (policy, tolerance): bfloat16 outputs round to 8 bits of mantissa, so both layers agree to a bfloat16 step.
POLICIES = [("float32", 2e-5), ("mixed_bfloat16", 2e-2), ("mixed_float16", 2e-3)]


@pytest.mark.parametrize("policy,tolerance", POLICIES)
@pytest.mark.parametrize("shape", [(4, 9, 7, 5), (1, 2, 2, 5), (1, 1, 1, 5)])
@pytest.mark.parametrize("kwargs", [{"momentum": 0.9, "epsilon": 1e-5}, {"center": False}, {"scale": False}])
def test_training_step_is_keras_batch_norm(policy, tolerance, shape, kwargs):
    # The same outputs, gradients and moving statistics as Keras' layer, two steps running; at (1, 2, 2) the
    # biased variance (n = 4) differs from FusedBatchNormV3's Bessel-corrected one by 4/3, at (1, 1, 1) n = 1.
    keras_bn, fused_bn = _pair(policy, shape[-1], **kwargs)
    if shape[:-1] == (1, 1, 1):
        # One value per channel: x - mean is rounding noise (~1e-7 |x|), which 1 / sqrt(epsilon) = 316 amplifies.
        tolerance = max(tolerance, 1e-3)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = (rng.normal(size=shape) * 3.0 + 1.0).astype("float32")
        for expected, got in zip(_step(keras_bn, x), _step(fused_bn, x)):
            np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    assert fused_bn(x, training=True).dtype == keras_bn(x, training=True).dtype


def _op_types(layer, x, training):
    graph = tf.function(lambda t: layer(t, training=training)).get_concrete_function(
        tf.TensorSpec(x.shape, tf.float32)).graph
    return {op.type for op in graph.get_operations()}


def test_training_mode_runs_the_fused_kernel_and_inference_keras_ops():
    layer = BatchNormalization()
    x = np.zeros((2, 4, 4, 3), "float32")
    layer(x)
    assert "FusedBatchNormV3" in _op_types(layer, x, True)
    assert "FusedBatchNormV3" not in _op_types(layer, x, False)  # inference: Keras' ops, which export folds
    layer.trainable = False  # a frozen layer normalises with its moving statistics, as Keras' does
    assert "FusedBatchNormV3" not in _op_types(layer, x, True)


@pytest.mark.parametrize("case", ["rank2", "mask", "frozen", "axis1"])
def test_what_it_does_not_fuse_is_keras_batch_norm(case):
    shape = {"rank2": (6, 4), "axis1": (2, 4, 3, 3)}.get(case, (2, 3, 3, 4))
    kwargs = {"axis": 1} if case == "axis1" else {}
    keras_bn = keras.layers.BatchNormalization(**kwargs)
    fused_bn = BatchNormalization(**kwargs)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    mask = np.ones(shape[:-1], bool) if case == "mask" else None
    for layer in (keras_bn, fused_bn):
        layer.build(shape)
        layer.trainable = case != "frozen"
    expected = keras_bn(x, training=True, mask=mask)
    np.testing.assert_allclose(fused_bn(x, training=True, mask=mask), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(fused_bn.moving_variance.numpy(), keras_bn.moving_variance.numpy(), rtol=1e-6)


def test_models_saved_with_keras_batch_norm_load_into_this_one(tmp_path, monkeypatch):
    # A .keras file keys a listed layer's weights by its class name (batch_normalization_<k>): a generator saved
    # when its norms (InfoAccum's nested ones, the functional model's own) were Keras' class must load unchanged.
    from erlrestore.layers import batch_normalization
    from erlrestore.models import pix2pix

    config = pix2pix.GeneratorConfig(levels=3, base_filters=4, max_filters=8, norm="batch", info_accum_layers=2,
                                     info_accum_growth=3)
    with monkeypatch.context() as patch:
        patch.setattr(batch_normalization, "BatchNormalization", keras.layers.BatchNormalization)
        patch.setattr(pix2pix, "BatchNormalization", keras.layers.BatchNormalization)
        old = pix2pix.build_generator(config)
        assert not any(type(layer) is BatchNormalization for layer in old._flatten_layers())
    rng = np.random.default_rng(0)
    for weight in old.weights:
        weight.assign(rng.uniform(0.5, 1.5, size=tuple(weight.shape)).astype("float32"))
    path = str(tmp_path / "old.keras")
    old.save(path)
    loaded = keras.models.load_model(path)
    nested = [layer for layer in loaded._flatten_layers() if type(layer) is BatchNormalization]
    assert nested, "InfoAccum rebuilds its norms as erlrestore's layer"
    x = rng.uniform(0.0, 1.0, size=(1, 16, 16, 3)).astype("float32")
    np.testing.assert_array_equal(loaded(x, training=False), old(x, training=False))
