"""The ERL-Net family's trainer: one ``train_step`` driven by stage records.

:class:`StagedTrainer` wraps the restoration network (MEMD or ERL-Net) and,
when a strategy needs it, the clean-to-clean network. ``set_stage`` picks
the branches whose variables the optimizer updates and the loss; frozen
branches still run forward but get no gradient. One Adam optimizer is built
over every branch up front; ``reset_optimizer`` zeroes its moments and step
count at the start of each stage, so each stage starts its optimisation
afresh, as separately trained stages would.

``test_step`` measures Y-channel PSNR/SSIM (``erlrestore.metrics``, TF twin)
on full validation images with the restored image clipped to [0, 1], so
``model.fit(validation_data=...)`` logs ``val_psnr_y`` and ``val_ssim_y``.
"""

import keras
import tensorflow as tf

from erlrestore import losses, metrics
from erlrestore.models import erlnet


def _is_erlnet(net):
    return any(layer.name == "ren" for layer in net.layers)


class StagedTrainer(keras.Model):
    """Trains ``net`` (and ``c2c``) stage by stage; ``call`` is ``net``'s."""

    def __init__(self, net, c2c=None, fre_weight=0.01, **kwargs):
        super().__init__(**kwargs)
        self.net = net
        self.c2c = c2c
        self.fre_weight = float(fre_weight)
        self.stage = None
        self._feature_net = None
        self._target_features = None
        if _is_erlnet(net):
            if c2c is None:
                raise ValueError("an ERL-Net needs its clean-to-clean network for the feature loss")
            self._feature_net = erlnet.erlnet_feature_model(net)
            # The feature loss compares the levels that ``net`` entangles.
            levels = sorted(int(layer.name.rsplit("_", 1)[1]) for layer in net.layers
                            if layer.name.startswith("entangle_"))
            self._target_features = erlnet.encoder_feature_model(c2c, levels)
        self._trackers = {
            name: keras.metrics.Mean(name=name) for name in ("loss", "pre", "fre", "c2c", "psnr_y", "ssim_y")
        }

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, images, training=False):
        return self.net(images, training=training)

    # -- stages -------------------------------------------------------------

    def branch_variables(self, branches):
        variables = []
        for branch in branches:
            if branch == "c2c":
                if self.c2c is None:
                    raise ValueError("this stage trains the clean-to-clean net, but there is none")
                variables += self.c2c.trainable_variables
            else:
                try:
                    variables += self.net.get_layer(branch).trainable_variables
                except ValueError:
                    raise ValueError(f"network {self.net.name!r} has no branch {branch!r}") from None
        return variables

    def all_variables(self):
        variables = list(self.net.trainable_variables)
        if self.c2c is not None:
            variables += self.c2c.trainable_variables
        return variables

    def set_stage(self, stage):
        """Selects the stage; the next ``fit`` traces a fresh train step."""
        if stage.loss == "erl" and self._feature_net is None:
            raise ValueError(f"stage {stage.name} uses L_ERL, which needs an ERL-Net")
        self.branch_variables(stage.branches)  # fails early for a branch the net lacks
        self.stage = stage
        self.train_function = None

    def checkpoint_items(self):
        items = {"net": self.net, "optimizer": self.optimizer}
        if self.c2c is not None:
            items["c2c"] = self.c2c
        return items

    def reset_optimizer(self, learning_rate):
        """Zeroes the optimizer's moments and step count and sets the learning rate."""
        optimizer = self.optimizer
        if not optimizer.built:
            optimizer.build(self.all_variables())
        for variable in optimizer.variables:  # step count, learning rate, moments
            variable.assign(tf.zeros_like(variable))
        optimizer.learning_rate = learning_rate

    # -- steps --------------------------------------------------------------

    def _compute_losses(self, degraded, clean):
        stage = self.stage
        values = {}
        restoration = tf.constant(0.0)
        if stage.loss == "erl":
            outputs = self._feature_net(degraded, training=True)
            targets = self._target_features(clean, training=False)["features"]
            values["pre"] = losses.l1(outputs["restored"], clean)
            values["fre"] = losses.feature_loss(outputs["features"], [tf.stop_gradient(t) for t in targets])
            restoration = values["pre"] + self.fre_weight * values["fre"]
        elif stage.loss == "pre":
            values["pre"] = losses.l1(self.net(degraded, training=True), clean)
            restoration = values["pre"]
        total = restoration
        if stage.trains_c2c:
            values["c2c"] = losses.l1(self.c2c(clean, training=True), clean)
            total = total + values["c2c"]
        values["loss"] = restoration if stage.restoration_branches else total
        return total, values

    def train_step(self, data):
        if self.stage is None:
            raise RuntimeError("call set_stage() before fit()")
        degraded, clean = data
        with tf.GradientTape() as tape:
            total, values = self._compute_losses(degraded, clean)
            scaled = total / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.branch_variables(self.stage.branches)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        for name, value in values.items():
            self._trackers[name].update_state(value)
        return {name: self._trackers[name].result() for name in values}

    def test_step(self, data):
        degraded, clean = data[0], data[1]
        restored = tf.clip_by_value(self.net(degraded, training=False), 0.0, 1.0)
        self._trackers["psnr_y"].update_state(metrics.psnr_y_tf(restored, clean))
        self._trackers["ssim_y"].update_state(metrics.ssim_y_tf(restored, clean))
        return {"psnr_y": self._trackers["psnr_y"].result(), "ssim_y": self._trackers["ssim_y"].result()}
