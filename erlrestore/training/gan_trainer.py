"""The generative family's trainer: a generator and a PatchGAN, two optimizers.

:class:`GANTrainer` is driven by :class:`~erlrestore.training.strategies.GANStage`
records through the same :class:`~erlrestore.training.run.Run` machinery as
the ERL-Net family (checkpoints of both networks and both optimizers, resume,
TensorBoard, validation). One ``train_step`` per stage:

* the input is the degraded image (``task="restore"``) or the clean image
  itself (``task="reconstruct"``, clean -> clean pre-training);
* with an adversarial loss, both networks are updated on every step in
  pix2pix's order (``Pix2PixModel.optimize_parameters``): the generator runs
  forward once, ``G(x)``; the discriminator is updated first, on
  ``(x, y)`` and ``(x, G(x))`` with ``G(x)`` detached (``L_D`` from
  :func:`erlrestore.losses.discriminator_loss`); then the generator's
  adversarial term is computed with the *updated* discriminator on the same
  ``G(x)``, and ``L_G = adversarial + l1_weight * pixel`` (lambda = 100 in
  pix2pix) updates the generator. The discriminator thus runs three times a
  step in training mode (real, detached fake, fake again), as in pix2pix,
  and its batch-norm moving statistics follow all three;
* the pixel term is L1 (pix2pix, ``pixel_loss="l1"``) or the mean squared
  error (``pixel_loss="mse"``, the rethinking paper's Table III
  autoencoders); ``l1_weight`` weighs whichever is chosen;
* ``adversarial="none"`` trains the generator with the pixel loss alone;
* ``train_generator=False`` updates only the discriminator.

Logged per step: ``g_loss``, ``g_adv``, ``g_l1`` (``g_mse`` with
``pixel_loss="mse"``), ``d_loss`` (those that apply; ``d_loss`` is the loss
the discriminator was updated with, ``g_adv`` the one after its update), and
``psnr_y`` / ``ssim_y`` in validation.
"""

import tensorflow as tf

from erlrestore import losses
from erlrestore.training.base import RestorationTrainer, reset_optimizer_state


class GANTrainer(RestorationTrainer):
    """Trains ``generator`` (and ``discriminator``) stage by stage; ``call`` is the generator's."""

    def __init__(self, generator, discriminator, gan_loss="lsgan", l1_weight=100.0, pixel_loss="l1", **kwargs):
        """``l1_weight`` weighs the pixel term, whichever ``pixel_loss`` ("l1" or "mse") is (the name is
        kept from pix2pix's ``lambda_L1``); the pixel term is logged as ``g_<pixel_loss>``."""
        if pixel_loss not in losses.PIXEL_LOSSES:
            raise ValueError(f"unknown pixel loss {pixel_loss!r}; choose one of {tuple(losses.PIXEL_LOSSES)}")
        self.pixel_name = f"g_{pixel_loss}"
        super().__init__(generator, logged=("g_loss", "g_adv", self.pixel_name, "d_loss"), **kwargs)
        if gan_loss not in losses.GAN_LOSSES:
            raise ValueError(f"unknown GAN loss {gan_loss!r}; choose one of {losses.GAN_LOSSES}")
        self.generator = generator
        self.discriminator = discriminator
        self.gan_loss = gan_loss
        self.l1_weight = float(l1_weight)
        self.pixel_loss = pixel_loss

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

    def optimizers(self):
        """Both optimizers: a learning-rate schedule sets them alike."""
        return [opt for opt in (self.g_optimizer, self.d_optimizer) if opt is not None]

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
        # Gradients are summed over replicas: losses are divided inside the
        # tapes. Each optimizer applies its own loss scale (mixed_float16).
        with tf.GradientTape() as g_tape:
            generated = self.generator(source, training=stage.train_generator)  # the step's one G forward pass
            if stage.train_discriminator:
                # pix2pix's backward_D on fake.detach(), then optimizer_D.step(), before G's loss: not
                # recorded on G's tape. Automatic control dependencies order the update before the
                # discriminator's next read of its variables below.
                with g_tape.stop_recording():
                    fake = tf.stop_gradient(generated)
                    with tf.GradientTape() as d_tape:
                        real_out = self.discriminator([source, clean], training=True)
                        fake_out = self.discriminator([source, fake], training=True)
                        values["d_loss"] = losses.discriminator_loss(self.gan_loss, real_out, fake_out)
                        d_scaled = self.d_optimizer.scale_loss(values["d_loss"] / replicas)
                    d_vars = self.discriminator.trainable_variables
                    self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
            if stage.train_generator:
                values[self.pixel_name] = losses.PIXEL_LOSSES[self.pixel_loss](generated, clean)
                g_loss = self.l1_weight * values[self.pixel_name]
                if stage.train_discriminator:
                    # The updated discriminator judges the same generated batch (pix2pix's backward_G).
                    updated_out = self.discriminator([source, generated], training=True)
                    values["g_adv"] = losses.generator_adversarial_loss(self.gan_loss, updated_out)
                    g_loss = g_loss + values["g_adv"]
                values["g_loss"] = g_loss
                g_scaled = self.g_optimizer.scale_loss(g_loss / replicas)
        if stage.train_generator:
            g_vars = self.generator.trainable_variables
            self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        return self._log(values)
