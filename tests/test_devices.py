"""erlrestore.training.devices: distribution, precision and XLA choices, and mixed-precision training."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.models import presets
from erlrestore.training import devices, experiment, inputs, strategies

TINY_ERL = experiment.TrainSettings(
    model_dir="unused", model="ERLNet", **presets.TINY_MEMD, stage_steps=(1,),
    data=inputs.DataSettings(procedural=2, crop_size=32, batch_size=2),
)
TINY_GAN = experiment.TrainSettings(
    model_dir="unused", model="UNet", levels=3, gen_filters=4, d_filters=4, d_layers=3, gan_loss="lsgan",
    stage_steps=(1,), data=inputs.DataSettings(procedural=2, crop_size=32, batch_size=2),
)


def _batch(seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(0, 1, (2, 32, 32, 3)).astype("float32")
    return tf.constant(np.clip(clean + 0.1, 0, 1)), tf.constant(clean)


def test_choices_resolve_and_bad_names_fail_clearly(monkeypatch):
    assert devices.resolve_precision("float32") == "float32"
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: True)
    assert devices.resolve_precision("auto", kind="CPU") == "mixed_bfloat16"
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: False)
    assert devices.resolve_precision("auto", kind="CPU") == "float32"
    assert devices.resolve_precision("auto", kind="TPU") == "mixed_bfloat16"
    assert devices.resolve_jit_compile("auto") is False
    assert devices.resolve_jit_compile("on") is True
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        devices.resolve_precision("fp8")
    with pytest.raises(ValueError, match="unknown jit_compile"):
        devices.resolve_jit_compile("yes")
    with pytest.raises(ValueError, match="unknown distribution strategy 'horovod'"):
        devices.make_distribution("horovod")
    with pytest.raises(ValueError, match="--devices applies to the mirrored strategy only"):
        devices.make_distribution("default", devices=("/cpu:0",))
    with pytest.raises(ValueError, match="unknown devices"):
        devices.make_distribution("mirrored", devices=("/gpu:7",))


def test_default_distribution_is_the_chief_on_one_replica():
    distribution = devices.make_distribution("default")
    assert distribution.num_replicas_in_sync == 1
    assert devices.is_chief(distribution) and devices.worker_id(distribution) == 0


@pytest.mark.parametrize("raw, message", [
    ("", "needs the cluster in the TF_CONFIG"),
    ("{not json", "not a usable cluster spec"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "not a usable cluster spec"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}', "lists no workers"),
])
def test_multi_worker_needs_a_valid_tf_config(monkeypatch, raw, message):
    monkeypatch.setenv("TF_CONFIG", raw)
    with pytest.raises(ValueError, match=message):
        devices.make_distribution("multi_worker_mirrored")


def test_check_settings_rejects_bad_device_choices():
    for field, value in (("precision", "half"), ("jit_compile", "maybe"), ("distribution_strategy", "ps")):
        with pytest.raises(ValueError):
            experiment.check_settings(dataclasses.replace(TINY_ERL, **{field: value}))
    with pytest.raises(ValueError, match="stop_after"):
        experiment.check_settings(dataclasses.replace(TINY_ERL, stop_after=-1))


def test_mixed_bfloat16_trains_in_bfloat16_with_float32_image_ends_and_saves_float32():
    settings = dataclasses.replace(TINY_ERL, precision="mixed_bfloat16")
    trainer, networks = experiment.build_trainer(settings)
    net = networks["final.keras"]
    assert keras.config.dtype_policy().name == "float32"  # the global policy is left alone
    assert net.get_layer("men").get_layer("stem").compute_dtype == "bfloat16"
    assert all(net.get_layer(name).compute_dtype == "float32" for name in ("pad", "global_residual", "crop"))
    assert all(w.dtype == "float32" for w in net.weights)
    restored = net(_batch()[0])
    assert restored.dtype == tf.float32
    trainer.set_stage(strategies.strategy("MA_D")[0])
    trainer.reset_optimizer(1e-3)
    before = [np.array(w) for w in net.weights]
    logs = trainer.train_step(_batch())
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(before, net.weights))
    twins = experiment.float32_networks(settings, networks)
    twin = twins["final.keras"]
    assert all(layer.dtype_policy.name == "float32" for layer in twin.layers)
    for a, b in zip(net.get_weights(), twin.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_mixed_float16_gan_scales_both_losses_and_keeps_the_scale_across_stage_resets():
    settings = dataclasses.replace(TINY_GAN, precision="mixed_float16")
    trainer, networks = experiment.build_trainer(settings)
    assert isinstance(trainer.g_optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(trainer.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert networks["discriminator.keras"].get_layer("logits").compute_dtype == "float32"
    trainer.set_stage(strategies.gan_strategy("GAN")[0])
    trainer.reset_optimizer(2e-4)
    g_before = [np.array(w) for w in networks["final.keras"].trainable_weights]
    d_before = [np.array(w) for w in networks["discriminator.keras"].trainable_weights]
    logs = trainer.train_step(_batch())
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(a, np.array(b)) for a, b in zip(g_before, networks["final.keras"].trainable_weights))
    assert any(not np.array_equal(a, np.array(b))
               for a, b in zip(d_before, networks["discriminator.keras"].trainable_weights))
    scale = float(trainer.g_optimizer.dynamic_scale)
    assert scale > 1
    trainer.reset_optimizer(1e-4)  # a new stage: moments zeroed, loss scale kept
    assert float(trainer.g_optimizer.dynamic_scale) == scale
    assert int(trainer.g_optimizer.inner_optimizer.iterations) == 0
    assert float(trainer.g_optimizer.learning_rate) == pytest.approx(1e-4)


def test_xla_on_compiles_the_train_step():
    trainer, _ = experiment.build_trainer(dataclasses.replace(TINY_ERL, model="MEMD", jit_compile="on"))
    assert trainer.jit_compile is True
    trainer.set_stage(strategies.strategy("MEMD")[0])
    trainer.reset_optimizer(1e-3)
    history = trainer.fit(tf.data.Dataset.from_tensors(_batch()).repeat(), steps_per_epoch=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][-1])
