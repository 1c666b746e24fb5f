"""GAN training: one real G+D step per loss, stage kinds, and resume of both optimizers."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from erlrestore import losses
from erlrestore.models import pix2pix
from erlrestore.training import run, stages
from erlrestore.training.gan import GANTrainer


def tiny_gan(gan_loss="lsgan", seed=0):
    keras.utils.set_random_seed(seed)
    generator = pix2pix.build_generator(
        pix2pix.GeneratorConfig(levels=3, base_filters=4, info_accum_layers=2, subpixel=True)
    )
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
    trainer.set_stage(stages.gan_strategy("GAN")[0])
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
    trainer.set_stage(stages.gan_strategy(strategy)[0])
    g_before, d_before = snapshot(trainer.generator), snapshot(trainer.discriminator)
    trainer.fit(tiny_data(), steps_per_epoch=1, epochs=1, verbose=0, shuffle=False)
    assert changed(g_before, trainer.generator) == g_changes
    assert changed(d_before, trainer.discriminator) == d_changes


def test_reconstruction_stage_learns_clean_to_clean():
    """task='reconstruct' feeds the clean image: the L1 is against the input itself."""
    trainer = tiny_gan()
    trainer.set_stage(stages.gan_strategy("RECON")[0])
    rng = np.random.default_rng(1)
    clean = rng.random((2, 32, 32, 3)).astype("float32")
    garbage = np.zeros_like(clean)  # the degraded images must not be used
    logs = trainer.train_step((tf.constant(garbage), tf.constant(clean)))
    expected = losses.l1(trainer.generator(clean, training=True), clean)
    assert float(logs["g_l1"]) == pytest.approx(float(expected), abs=0.05)


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
    plans = [run.StagePlan(stage, 3) for stage in stages.gan_strategy("RECON_GAN")]
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
