"""GAN training: one real G+D step per loss, stage kinds, and resume of both optimizers."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from erlrestore import losses
from erlrestore.models import pix2pix
from erlrestore.training import run, strategies
from erlrestore.training.gan_trainer import GANTrainer


class InputRecorder(keras.Model):
    """Runs ``generator`` and keeps every batch it is fed (eager calls only)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator
        self.fed = []

    def call(self, images, training=False):
        self.fed.append(keras.ops.convert_to_numpy(images))
        return self.generator(images, training=training)


def tiny_gan(gan_loss="lsgan", seed=0, dropout=0.5, record_generator_inputs=False):
    keras.utils.set_random_seed(seed)
    generator = pix2pix.build_generator(
        pix2pix.GeneratorConfig(levels=3, base_filters=4, info_accum_layers=2, subpixel=True, dropout=dropout)
    )
    if record_generator_inputs:
        generator = InputRecorder(generator)
    discriminator = pix2pix.build_patchgan(base_filters=4)
    trainer = GANTrainer(generator, discriminator, gan_loss=gan_loss)
    trainer.compile(
        g_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        d_optimizer=keras.optimizers.Adam(2e-4, beta_1=0.5),
        jit_compile=False,
    )
    trainer.reset_optimizer(2e-4)
    return trainer


def tiny_data(size=32, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.random((4, size, size, 3)).astype("float32")
    degraded = np.clip(clean + 0.3 * rng.random(clean.shape), 0, 1).astype("float32")
    return tf.data.Dataset.from_tensor_slices((degraded, clean)).repeat().batch(2)


def snapshot(model):
    return [w.numpy().copy() for w in model.trainable_weights]


def changed(before, model):
    return any(not np.array_equal(a, b.numpy()) for a, b in zip(before, model.trainable_weights))


@pytest.mark.parametrize("gan_loss", losses.GAN_LOSSES)
def test_one_real_step_updates_generator_and_discriminator(gan_loss):
    trainer = tiny_gan(gan_loss)
    trainer.set_stage(strategies.gan_strategy("GAN")[0])
    g_before, d_before = snapshot(trainer.generator), snapshot(trainer.discriminator)
    history = trainer.fit(tiny_data(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False).history
    assert changed(g_before, trainer.generator) and changed(d_before, trainer.discriminator)
    assert set(history) == {"g_loss", "g_adv", "g_l1", "d_loss"}
    values = {k: v[0] for k, v in history.items()}
    assert all(np.isfinite(v) for v in values.values())
    assert values["g_loss"] == pytest.approx(values["g_adv"] + 100.0 * values["g_l1"], rel=1e-5)


@pytest.mark.parametrize(
    "strategy,g_changes,d_changes",
    [("L1", True, False), ("RECON", True, False), ("DPRE_GAN", False, True)],
)
def test_stage_kinds_train_the_right_networks(strategy, g_changes, d_changes):
    trainer = tiny_gan()
    trainer.set_stage(strategies.gan_strategy(strategy)[0])
    g_before, d_before = snapshot(trainer.generator), snapshot(trainer.discriminator)
    trainer.fit(tiny_data(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    assert changed(g_before, trainer.generator) == g_changes
    assert changed(d_before, trainer.discriminator) == d_changes


def test_reconstruction_stage_learns_clean_to_clean():
    """task='reconstruct' feeds the clean image to G: the L1 is G(clean) against the input itself."""
    # No dropout: G's training-mode forward pass is deterministic. G records what it is fed.
    trainer = tiny_gan(dropout=0.0, record_generator_inputs=True)
    trainer.set_stage(strategies.gan_strategy("RECON")[0])
    rng = np.random.default_rng(1)
    clean = rng.random((2, 32, 32, 3)).astype("float32")
    degraded = 1.0 - clean  # the degraded images must not be used
    # The step's L1 comes from G before its update: computed here first.
    expected = float(losses.l1(trainer.generator(clean, training=True), clean))
    trainer.generator.fed.clear()
    logs = trainer.train_step((tf.constant(degraded), tf.constant(clean)))
    assert len(trainer.generator.fed) == 1  # the step's one forward pass of G ...
    np.testing.assert_array_equal(trainer.generator.fed[0], clean)  # ... on the clean images
    assert float(logs["g_l1"]) == pytest.approx(expected, abs=1e-5)


def test_gan_losses_by_hand():
    real, fake = tf.constant([[2.0, 0.0]]), tf.constant([[0.0, -1.0]])
    assert float(losses.discriminator_loss("lsgan", real, fake)) == pytest.approx(0.5 * (1 + 1) / 2 + 0.5 * (0 + 1) / 2)
    assert float(losses.generator_adversarial_loss("lsgan", fake)) == pytest.approx((1 + 4) / 2)
    softplus = lambda v: np.log1p(np.exp(v))  # BCE(logit, 1) = softplus(-logit), BCE(logit, 0) = softplus(logit)
    d_bce = 0.5 * ((softplus(-2.0) + softplus(0.0)) / 2 + (softplus(0.0) + softplus(-1.0)) / 2)
    assert float(losses.discriminator_loss("bce", real, fake)) == pytest.approx(d_bce, rel=1e-6)
    assert float(losses.generator_adversarial_loss("bce", fake)) == pytest.approx((softplus(0.0) + softplus(1.0)) / 2, rel=1e-6)
    with pytest.raises(ValueError, match="unknown GAN loss"):
        losses.discriminator_loss("wgan", real, fake)


def test_checkpoint_holds_both_networks_and_both_optimizers(tmp_path):
    plans = [run.StagePlan(stage, 3) for stage in strategies.gan_strategy("RECON_GAN")]
    trainer = tiny_gan()
    run.Run(trainer, str(tmp_path)).run(plans[:1] + [run.StagePlan(plans[1].stage, 2)], tiny_data(),
                                         learning_rate=2e-4, checkpoint_every=2, verbose=0)
    fresh = tiny_gan(seed=3)
    resumed = run.Run(fresh, str(tmp_path))
    assert resumed.restore() == (2, 0)
    assert int(fresh.g_optimizer.iterations.numpy()) == 2 and int(fresh.d_optimizer.iterations.numpy()) == 2
    for a, b in zip(trainer.discriminator.weights, fresh.discriminator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(trainer.generator.weights, fresh.generator.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


# ------------------------------------------------ pix2pix's update order


def order_gan(seed=0, lr=0.5, l1_weight=1.0, pixel_loss="l1"):
    """A deterministic tiny GAN (instance norm, no dropout) with plain SGD on both networks."""
    keras.utils.set_random_seed(seed)
    generator = pix2pix.build_generator(
        pix2pix.GeneratorConfig(levels=2, base_filters=4, max_filters=8, norm="instance", dropout=0.0)
    )
    discriminator = pix2pix.build_patchgan(base_filters=4, num_layers=3, norm="none")
    trainer = GANTrainer(generator, discriminator, gan_loss="lsgan", l1_weight=l1_weight, pixel_loss=pixel_loss)
    trainer.compile(g_optimizer=keras.optimizers.SGD(lr), d_optimizer=keras.optimizers.SGD(lr), jit_compile=False)
    trainer.reset_optimizer(lr)
    return trainer


def _copy(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


def _reference_step(generator, discriminator, source, clean, lr, l1_weight, update_d_first):
    """One SGD step by hand; returns (new generator weights, new discriminator weights)."""
    source, clean = tf.constant(source), tf.constant(clean)
    generated = generator(source, training=True)
    with tf.GradientTape() as tape:
        real = discriminator([source, clean], training=True)
        fake = discriminator([source, tf.stop_gradient(generated)], training=True)
        d_loss = losses.discriminator_loss("lsgan", real, fake)
    d_vars = discriminator.trainable_variables
    d_new = [v.numpy() - lr * g.numpy() for v, g in zip(d_vars, tape.gradient(d_loss, d_vars))]
    if update_d_first:
        for variable, value in zip(d_vars, d_new):
            variable.assign(value)
    with tf.GradientTape() as tape:
        generated = generator(source, training=True)
        g_loss = (losses.generator_adversarial_loss("lsgan", discriminator([source, generated], training=True))
                  + l1_weight * losses.l1(generated, clean))
    g_vars = generator.trainable_variables
    g_new = [v.numpy() - lr * g.numpy() for v, g in zip(g_vars, tape.gradient(g_loss, g_vars))]
    return g_new, d_new


@pytest.mark.parametrize("mode", ["eager", "fit", "fit_xla"])
def test_train_step_updates_discriminator_first_then_generator_against_the_updated_one(mode):
    """pix2pix's optimize_parameters: G forward; D step on (real, fake.detach()); G's loss from the updated D.

    Also through ``fit`` (a traced step, with and without XLA), where only the
    ordering of the discriminator's update before its next read keeps it so."""
    lr, l1_weight = 0.5, 1.0
    trainer = order_gan(lr=lr, l1_weight=l1_weight)
    if mode == "fit_xla":
        trainer.compile(g_optimizer=keras.optimizers.SGD(lr), d_optimizer=keras.optimizers.SGD(lr), jit_compile=True)
        trainer.reset_optimizer(lr)
    trainer.set_stage(strategies.gan_strategy("GAN")[0])
    rng = np.random.default_rng(3)
    clean = rng.random((2, 16, 16, 3)).astype("float32")
    degraded = np.clip(clean + 0.3 * rng.random(clean.shape), 0, 1).astype("float32")
    expected_g, expected_d = _reference_step(_copy(trainer.generator), _copy(trainer.discriminator),
                                             degraded, clean, lr, l1_weight, update_d_first=True)
    old_order_g, _ = _reference_step(_copy(trainer.generator), _copy(trainer.discriminator),
                                     degraded, clean, lr, l1_weight, update_d_first=False)
    if mode == "eager":
        trainer.train_step((tf.constant(degraded), tf.constant(clean)))
    else:
        batch = tf.data.Dataset.from_tensors((degraded, clean)).repeat()
        trainer.fit(batch, steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    got_g = [v.numpy() for v in trainer.generator.trainable_variables]
    got_d = [v.numpy() for v in trainer.discriminator.trainable_variables]
    for got, want in zip(got_d, expected_d):
        np.testing.assert_allclose(got, want, atol=1e-5)
    for got, want in zip(got_g, expected_g):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # The old order (both losses from one D forward pass before either update) gives other weights.
    old_gap = max(float(np.abs(got - old).max()) for got, old in zip(got_g, old_order_g))
    assert old_gap > 1e-3


# ------------------------------------------------------- pixel loss choice


def test_mse_pixel_loss_is_logged_and_weighted():
    trainer = order_gan(lr=0.0, l1_weight=100.0, pixel_loss="mse")
    assert "g_mse" in {m.name for m in trainer.metrics} and "g_l1" not in {m.name for m in trainer.metrics}
    rng = np.random.default_rng(4)
    clean = rng.random((2, 16, 16, 3)).astype("float32")
    degraded = np.clip(clean + 0.3 * rng.random(clean.shape), 0, 1).astype("float32")
    trainer.set_stage(strategies.gan_strategy("GAN")[0])
    logs = {k: float(v) for k, v in trainer.train_step((tf.constant(degraded), tf.constant(clean))).items()}
    assert set(logs) == {"g_loss", "g_adv", "g_mse", "d_loss"}
    generated = trainer.generator(degraded, training=True)  # lr 0: the generator the step saw
    mse = float(tf.reduce_mean(tf.square(generated - clean)))
    assert logs["g_mse"] == pytest.approx(mse, rel=1e-5)
    assert logs["g_mse"] != pytest.approx(float(losses.l1(generated, clean)), rel=1e-2)
    assert logs["g_loss"] == pytest.approx(logs["g_adv"] + 100.0 * logs["g_mse"], rel=1e-5)
    with pytest.raises(ValueError, match="unknown pixel loss 'l2'"):
        GANTrainer(trainer.generator, trainer.discriminator, pixel_loss="l2")


def test_mse_pixel_loss_drives_the_generator_gradient():
    """L1-only stage, one SGD step: the update is -lr * d(MSE)/dw, not the L1 gradient."""
    lr = 0.1
    trainer = order_gan(lr=lr, l1_weight=2.0, pixel_loss="mse")
    trainer.set_stage(strategies.gan_strategy("RECON")[0])
    clean = np.random.default_rng(5).random((2, 16, 16, 3)).astype("float32")
    twin = _copy(trainer.generator)
    with tf.GradientTape() as tape:
        loss = 2.0 * losses.mse(twin(clean, training=True), clean)
    expected = [v.numpy() - lr * g.numpy() for v, g in zip(twin.trainable_variables,
                                                            tape.gradient(loss, twin.trainable_variables))]
    logs = trainer.train_step((tf.constant(np.zeros_like(clean)), tf.constant(clean)))
    assert set(logs) == {"g_loss", "g_mse"}
    for got, want in zip(trainer.generator.trainable_variables, expected):
        np.testing.assert_allclose(got.numpy(), want, atol=1e-6)


# ----------------------------------------------------- learning-rate schedule


def test_linear_decay_factor_is_pix2pix_linear_rule():
    factor = run.LinearDecay.factor
    # 8 steps: 4 constant, then 4/5, 3/5, 2/5, 1/5 (pix2pix: 1 - k / (n_epochs_decay + 1)).
    assert [factor(s, 8) for s in range(8)] == pytest.approx([1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2])
    steps = 1000
    assert factor(0, steps) == 1.0 and factor(steps // 2 - 1, steps) == 1.0
    assert factor(steps // 2, steps) == pytest.approx(500 / 501)
    assert factor(3 * steps // 4, steps) == pytest.approx(250 / 501)
    assert factor(steps - 1, steps) == pytest.approx(1 / 501)
    # Odd lengths: ceil(S / 2) constant steps.
    assert [factor(s, 5) for s in range(5)] == pytest.approx([1, 1, 1, 2 / 3, 1 / 3])
    assert factor(0, 1) == 1.0
    with pytest.raises(ValueError, match="outside a stage of 8 steps"):
        factor(8, 8)


class RecordRates(keras.callbacks.Callback):
    """The learning rate of both GAN optimizers at every step."""

    def __init__(self):
        super().__init__()
        self.rates = []

    def on_train_batch_end(self, batch, logs=None):
        self.rates.append((float(self.model.g_optimizer.learning_rate), float(self.model.d_optimizer.learning_rate)))


def test_linear_decay_sets_both_optimizers_every_step_and_resumes_identically(tmp_path):
    base = 0.01
    plans = [run.StagePlan(strategies.gan_strategy("GAN")[0], 8)]
    data = tiny_data(size=16)
    whole = RecordRates()
    run.Run(order_gan(lr=base), str(tmp_path / "whole")).run(
        plans, data, learning_rate=base, checkpoint_every=4, callbacks=[whole], verbose=0,
        lr_schedule=run.LinearDecay())
    expected = [base * f for f in (1, 1, 1, 1, 0.8, 0.6, 0.4, 0.2)]
    assert [g for g, _ in whole.rates] == pytest.approx(expected)
    assert [d for _, d in whole.rates] == pytest.approx(expected)

    first, second = RecordRates(), RecordRates()
    finished = run.Run(order_gan(lr=base), str(tmp_path / "split")).run(
        plans, data, learning_rate=base, checkpoint_every=4, callbacks=[first], verbose=0, stop_after=4,
        lr_schedule=run.LinearDecay())
    assert finished is False
    resumed = order_gan(lr=base, seed=1)
    assert run.Run(resumed, str(tmp_path / "split")).run(
        plans, data, learning_rate=base, checkpoint_every=4, callbacks=[second], verbose=0,
        lr_schedule=run.LinearDecay())
    assert first.rates + second.rates == whole.rates  # the same float32 values, not just close


def test_without_a_schedule_the_rate_stays_constant(tmp_path):
    rates = RecordRates()
    run.Run(order_gan(lr=0.01), str(tmp_path)).run(
        [run.StagePlan(strategies.gan_strategy("GAN")[0], 4)], tiny_data(size=16), learning_rate=0.01,
        checkpoint_every=2, callbacks=[rates], verbose=0)
    assert [rate for pair in rates.rates for rate in pair] == pytest.approx([0.01] * 8)


# ------------------------------------------------ settings and run wiring


def gan_settings(tmp_path, **overrides):
    from erlrestore.training import experiment, inputs

    fields = dict(model_dir=str(tmp_path), model="UNet", levels=3, gen_filters=16, d_filters=16, d_layers=3,
                  gan_loss="lsgan", stage_steps=(4,), checkpoint_every=4,
                  data=inputs.DataSettings(procedural=2, crop_size=32, batch_size=2))
    fields.update(overrides)
    return experiment.TrainSettings(**fields)


def test_generative_family_defaults_follow_pix2pix(tmp_path):
    from erlrestore.training import experiment

    settings = gan_settings(tmp_path)
    assert (settings.weight_init, settings.pixel_loss, settings.resolved_lr_schedule()) == (
        "pix2pix", "l1", "linear_decay")
    assert gan_settings(tmp_path, model="MEMD", strategy="").resolved_lr_schedule() == "plateau"
    assert gan_settings(tmp_path, lr_schedule="constant").resolved_lr_schedule() == "constant"
    for field, value, message in [("lr_schedule", "cosine", "unknown learning-rate schedule 'cosine'"),
                                  ("weight_init", "he", "unknown weight_init 'he'"),
                                  ("pixel_loss", "l2", "unknown pixel loss 'l2'")]:
        with pytest.raises(ValueError, match=message):
            experiment.check_settings(gan_settings(tmp_path, **{field: value}))


def test_build_networks_applies_pix2pix_init_seeded_by_the_run(tmp_path):
    from erlrestore.training import experiment, inputs

    def kernel_and_gammas(networks):
        kernel = networks["final.keras"].get_layer("enc_2_conv").kernel.numpy()  # 4x4x32x64
        d_kernel = networks["discriminator.keras"].get_layer("conv_1").kernel.numpy()  # 4x4x16x32
        gammas = np.concatenate([w.numpy() for net in networks.values() for w in net.weights
                                 if w.path.endswith("/gamma")])
        biases = [w.numpy() for net in networks.values() for w in net.weights if w.path.endswith(("/bias", "/beta"))]
        return kernel, d_kernel, gammas, biases

    settings = gan_settings(tmp_path)
    keras.utils.set_random_seed(11)
    first = experiment.build_networks(settings)
    kernel, d_kernel, gammas, biases = kernel_and_gammas(first)
    for values in (kernel, d_kernel):
        assert abs(float(values.std()) - 0.02) < 0.002
    assert abs(float(gammas.mean()) - 1.0) < 0.01 and abs(float(gammas.std()) - 0.02) < 0.004
    assert biases and not any(np.any(b) for b in biases)
    keras.utils.set_random_seed(12)  # the init follows the run's seed, not Keras' global one
    again = experiment.build_networks(settings)
    for name in first:
        for a, b in zip(first[name].weights, again[name].weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    other_seed = experiment.build_networks(gan_settings(tmp_path, data=inputs.DataSettings(procedural=2, seed=1)))
    assert not np.array_equal(kernel_and_gammas(other_seed)[0], kernel)
    keras_init = experiment.build_networks(gan_settings(tmp_path, weight_init="keras"))
    glorot = kernel_and_gammas(keras_init)
    assert np.all(glorot[2] == 1.0)  # Keras' gamma: ones
    assert np.abs(glorot[0]).max() <= np.sqrt(6 / (16 * 32 + 16 * 64)) + 1e-6  # Glorot uniform bound


def test_new_generative_settings_are_part_of_a_runs_identity(tmp_path):
    import json

    from erlrestore.training import experiment

    settings = gan_settings(tmp_path)
    experiment._record_settings(settings)
    path = tmp_path / "run_config.json"
    stored = json.loads(path.read_text())
    assert (stored["weight_init"], stored["pixel_loss"], stored["lr_schedule"]) == ("pix2pix", "l1", "linear_decay")
    for field, value, message in [("pixel_loss", "mse", "pixel_loss: 'l1' -> 'mse'"),
                                  ("weight_init", "keras", "weight_init: 'pix2pix' -> 'keras'"),
                                  ("lr_schedule", "constant", "lr_schedule: 'linear_decay' -> 'constant'")]:
        with pytest.raises(ValueError, match=message):
            experiment._record_settings(gan_settings(tmp_path, **{field: value}))
    # A run recorded before these settings existed trained with Keras' init, L1 and the plateau rule.
    for key in ("weight_init", "pixel_loss", "lr_schedule"):
        del stored[key]
    path.write_text(json.dumps(stored))
    experiment._record_settings(gan_settings(tmp_path, weight_init="keras", lr_schedule="plateau"))
    with pytest.raises(ValueError, match="weight_init: 'keras' -> 'pix2pix'"):
        experiment._record_settings(settings)


@pytest.mark.parametrize("lr_schedule, patience, expect_decay, expect_plateau", [
    ("auto", 10, True, False),
    ("linear_decay", 10, True, False),
    ("constant", 10, False, False),
    ("plateau", 10, False, True),
    ("plateau", 0, False, False),
])
def test_train_passes_the_schedule_to_the_run(tmp_path, monkeypatch, lr_schedule, patience, expect_decay,
                                              expect_plateau):
    from erlrestore.training import experiment

    seen = {}

    def fake_run(self, plans, dataset, **kwargs):
        seen.update(kwargs, trainer=self.trainer)
        return False

    monkeypatch.setattr(run.Run, "run", fake_run)
    settings = gan_settings(tmp_path, lr_schedule=lr_schedule, plateau_patience=patience, pixel_loss="mse")
    assert experiment.train(settings) is None
    assert isinstance(seen["lr_schedule"], run.LinearDecay) == expect_decay
    assert (seen["plateau"] is not None) == expect_plateau
    assert seen["trainer"].pixel_loss == "mse" and seen["trainer"].pixel_name == "g_mse"


@pytest.mark.parametrize("precision", ["float32", "mixed_float16"])
def test_both_gan_optimizers_take_beta_1(tmp_path, precision):
    from erlrestore.training import experiment

    assert experiment.settings_from_argv(["--beta_1=0.3", "--model_dir=x"]).beta_1 == 0.3
    trainer, _ = experiment.build_trainer(gan_settings(tmp_path, levels=2, beta_1=0.3, precision=precision))
    for optimizer in (trainer.g_optimizer, trainer.d_optimizer):
        if precision == "mixed_float16":
            assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            optimizer = optimizer.inner_optimizer
        assert (optimizer.beta_1, optimizer.beta_2) == (pytest.approx(0.3), pytest.approx(0.999))
    assert trainer.g_optimizer is not trainer.d_optimizer


def test_the_discriminator_pretraining_stage_trains_on_its_own_data(tmp_path, monkeypatch):
    # DPRE_GAN with --d_pretrain_input_dir: the d_pretrain stage draws from those folders (flat grey images here),
    # the restore stage from the run's data (procedural images); without the flag both draw from the run's data.
    from erlrestore.data import image_files
    from erlrestore.training import experiment, inputs

    for i in (1, 2):
        image_files.write_image(tmp_path / "pre" / "rain" / f"rain-{i}.png", np.full((40, 40, 3), 0.5))
        image_files.write_image(tmp_path / "pre" / "norain" / f"norain-{i}.png", np.full((40, 40, 3), 0.25))
    seen = {}

    def fake_run(self, plans, dataset, **kwargs):
        seen["plans"] = plans
        return False

    monkeypatch.setattr(run.Run, "run", fake_run)
    data = inputs.DataSettings(procedural=2, crop_size=32, batch_size=2, augment=False)
    settings = gan_settings(tmp_path / "run", strategy="DPRE_GAN", d_pretrain_input_dir=str(tmp_path / "pre"),
                            data=data)
    assert experiment.train(settings) is None
    pretrain, restore = seen["plans"]
    assert (pretrain.stage.name, restore.stage.name) == ("d_pretrain", "restore")
    assert restore.dataset is None  # the run's data
    degraded, clean = next(iter(pretrain.dataset(0, 0)))
    assert np.allclose(degraded.numpy(), 0.5, atol=1e-2) and np.allclose(clean.numpy(), 0.25, atol=1e-2)
    assert experiment.train(gan_settings(tmp_path / "run2", strategy="DPRE_GAN", data=data)) is None
    assert [plan.dataset for plan in seen["plans"]] == [None, None]
