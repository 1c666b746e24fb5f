"""A toy model family for the tests: one 3x3 convolution trained with L1 (``--model=Toy``, strategy ``FIT``).

It is what a new family provides, at its smallest: networks, a trainer, a
strategy table and the defaults (:class:`erlrestore.training.families.Family`).
Importing this module registers nothing; ``families.register(FAMILY)`` does.
"""

import dataclasses

import keras
import tensorflow as tf

from erlrestore import losses
from erlrestore.training import families
from erlrestore.training.base import RestorationTrainer, reset_optimizer_state


@dataclasses.dataclass(frozen=True)
class Fit:
    """The toy's one kind of stage: fit the network to the clean images."""

    name: str


class L1Trainer(RestorationTrainer):
    """Trains one restoration network with L1 and one Adam optimizer."""

    def __init__(self, net, **kwargs):
        super().__init__(net, logged=("loss",), **kwargs)

    def checkpoint_items(self):
        """What the run checkpoints: the network and its optimizer."""
        return {"net": self.restoration_net, "optimizer": self.optimizer}

    def reset_optimizer(self, learning_rate):
        """Zeroes the optimizer's moments and step count; sets the learning rate."""
        reset_optimizer_state(self.optimizer, self.restoration_net.trainable_variables, learning_rate)

    def train_step(self, data):
        degraded, clean = data
        with tf.GradientTape() as tape:
            loss = losses.l1(self.restoration_net(degraded, training=True), clean)
            scaled = self.optimizer.scale_loss(loss / tf.distribute.get_strategy().num_replicas_in_sync)
        variables = self.restoration_net.trainable_variables
        self.optimizer.apply(tape.gradient(scaled, variables), variables)
        return self._log({"loss": loss})


def build_networks(settings):
    """``{"final.keras": a one-convolution network}``."""
    images = keras.Input((None, None, 3))
    restored = keras.layers.Conv2D(3, 3, padding="same", name="conv")(images)
    return {"final.keras": keras.Model(images, restored, name="toy")}


def build_trainer(settings, networks, optimizer, jit_compile):
    """A compiled :class:`L1Trainer` over the network."""
    trainer = L1Trainer(networks["final.keras"], name="trainer")
    trainer.compile(optimizer=optimizer(), jit_compile=jit_compile)
    return trainer


FAMILY = families.Family(
    name="toy",
    models={"Toy": "FIT"},
    strategies={"FIT": (Fit("fit"),)},
    learning_rate=1e-3,
    lr_schedule="constant",
    build_networks=build_networks,
    build_trainer=build_trainer,
)
