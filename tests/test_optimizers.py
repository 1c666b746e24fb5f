"""FusedAdam: Keras's Adam computed by one fused kernel per variable."""

import numpy as np
import pytest

import keras
import tensorflow as tf

from erlrestore.training.optimizers import FusedAdam


def _problem(seed=0, dtype="float32"):
    """Two variables and a loss with a non-trivial gradient (a least-squares fit)."""
    rng = np.random.default_rng(seed)
    weights = keras.Variable(rng.normal(size=(5, 3)).astype(dtype), name="w")
    bias = keras.Variable(rng.normal(size=(3,)).astype(dtype), name="b")
    x = tf.constant(rng.normal(size=(16, 5)), dtype=dtype)
    y = tf.constant(rng.normal(size=(16, 3)), dtype=dtype)

    def gradients():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.matmul(x, weights) + bias - y))
        return tape.gradient(loss, [weights, bias])

    return [weights, bias], gradients


def _train(optimizer, steps, dtype="float32"):
    variables, gradients = _problem(dtype=dtype)
    step = tf.function(lambda: optimizer.apply(gradients(), variables))
    for _ in range(steps):
        step()
    return [v.numpy() for v in variables], optimizer


@pytest.mark.parametrize("beta_1", [0.9, 0.5])
@pytest.mark.parametrize("steps, tolerance", [(1, 1e-6), (30, 2e-5)])
def test_fused_adam_follows_keras_adam(beta_1, steps, tolerance):
    """Same arithmetic, other rounding: a few float32 ulps per step (variables of magnitude ~1, lr 0.05)."""
    expected, keras_adam = _train(keras.optimizers.Adam(0.05, beta_1=beta_1), steps)
    got, optimizer = _train(FusedAdam(0.05, beta_1=beta_1), steps)
    initial, _ = _problem()
    for e, g, start in zip(expected, got, initial):
        assert np.abs(e - start.numpy()).max() > 0.04  # the variables really moved
        np.testing.assert_allclose(g, e, rtol=0, atol=tolerance)
    for e, g in zip(keras_adam.variables, optimizer.variables):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-4, atol=tolerance)
    assert int(optimizer.iterations.numpy()) == steps


def test_fused_adam_slots_restore_across_the_two_optimizers(tmp_path):
    _, keras_adam = _train(keras.optimizers.Adam(0.05), 5)
    variables, _ = _problem()
    fused = FusedAdam(0.05)
    fused.build(variables)
    checkpoint = tf.train.Checkpoint(optimizer=keras_adam)
    path = checkpoint.save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(optimizer=fused).restore(path).assert_existing_objects_matched()
    names = [[v.path.split("/", 1)[1] for v in opt.variables] for opt in (fused, keras_adam)]
    assert names[0] == names[1]
    for a, b in zip(fused.variables, keras_adam.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fused_adam_falls_back_for_amsgrad_and_bfloat16():
    expected, _ = _train(keras.optimizers.Adam(0.05, amsgrad=True), 10)
    got, _ = _train(FusedAdam(0.05, amsgrad=True), 10)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)  # the same code path: bit-equal
    expected, _ = _train(keras.optimizers.Adam(0.05), 3, dtype="bfloat16")
    got, _ = _train(FusedAdam(0.05), 3, dtype="bfloat16")
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)


def test_fused_adam_config_round_trip():
    optimizer = FusedAdam(3e-4, beta_1=0.5, beta_2=0.99, epsilon=1e-6)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is FusedAdam
    assert restored.get_config() == optimizer.get_config()
