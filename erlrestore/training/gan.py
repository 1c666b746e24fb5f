"""The generative family's trainer: a generator and a PatchGAN, two optimizers.

:class:`GANTrainer` is driven by :class:`~erlrestore.training.stages.GANStage`
records through the same :class:`~erlrestore.training.run.Run` machinery as
the ERL-Net family (checkpoints of both networks and both optimizers, resume,
TensorBoard, validation). One ``train_step`` per stage:

* the input is the degraded image (``task="restore"``) or the clean image
  itself (``task="reconstruct"``, clean -> clean pre-training);
* with an adversarial loss, the discriminator and the generator are both
  updated on every step from the same generated batch (as pix2pix does):
  ``L_D`` from :func:`erlrestore.losses.discriminator_loss` and
  ``L_G = adversarial + l1_weight * L1`` (lambda = 100 in pix2pix);
* ``adversarial="none"`` trains the generator with L1 alone;
* ``train_generator=False`` updates only the discriminator.

Logged per step: ``g_loss``, ``g_adv``, ``g_l1``, ``d_loss`` (those that
apply), and ``psnr_y`` / ``ssim_y`` in validation.
"""

import tensorflow as tf

from erlrestore import losses
from erlrestore.training.base import RestorationTrainer, reset_optimizer_state


class GANTrainer(RestorationTrainer):
    """Trains ``generator`` (and ``discriminator``) stage by stage; ``call`` is the generator's."""

    def __init__(self, generator, discriminator, gan_loss="lsgan", l1_weight=100.0, **kwargs):
        super().__init__(generator, logged=("g_loss", "g_adv", "g_l1", "d_loss"), **kwargs)
        if gan_loss not in losses.GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {gan_loss!r}; choose one of {losses.GAN_LOSSES}")
        self.generator = generator
        self.discriminator = discriminator
        self.gan_loss = gan_loss
        self.l1_weight = float(l1_weight)

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        super().compile(optimizer=g_optimizer, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer

    def checkpoint_items(self):
        return {
            "generator": self.generator,
            "discriminator": self.discriminator,
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
        }

    def reset_optimizer(self, learning_rate):
        """Zeroes both optimizers' moments and step counts; sets the learning rate."""
        reset_optimizer_state(self.g_optimizer, self.generator.trainable_variables, learning_rate)
        reset_optimizer_state(self.d_optimizer, self.discriminator.trainable_variables, learning_rate)

    def train_step(self, data):
        stage = self.stage
        if stage is None:
            raise RuntimeError("call set_stage() before fit()")
        degraded, clean = data
        source = clean if stage.task == "reconstruct" else degraded
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        values = {}
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            generated = self.generator(source, training=stage.train_generator)
            if stage.train_discriminator:
                real_out = self.discriminator([source, clean], training=True)
                fake_out = self.discriminator([source, generated], training=True)
                values["d_loss"] = losses.discriminator_loss(self.gan_loss, real_out, fake_out)
            if stage.train_generator:
                values["g_l1"] = losses.l1(generated, clean)
                g_loss = self.l1_weight * values["g_l1"]
                if stage.train_discriminator:
                    values["g_adv"] = losses.generator_adversarial_loss(self.gan_loss, fake_out)
                    g_loss = g_loss + values["g_adv"]
                values["g_loss"] = g_loss
            # Gradients are summed over replicas: divide inside the tapes. Each
            # optimizer applies its own loss scale (mixed_float16).
            d_scaled = self.d_optimizer.scale_loss(values["d_loss"] / replicas) if stage.train_discriminator else None
            g_scaled = self.g_optimizer.scale_loss(values["g_loss"] / replicas) if stage.train_generator else None
        if stage.train_discriminator:
            d_vars = self.discriminator.trainable_variables
            d_grads = d_tape.gradient(d_scaled, d_vars)
            self.d_optimizer.apply(d_grads, d_vars)
        if stage.train_generator:
            g_vars = self.generator.trainable_variables
            g_grads = g_tape.gradient(g_scaled, g_vars)
            self.g_optimizer.apply(g_grads, g_vars)
        return self._log(values)
