"""The ERL-Net family's trainer: one ``train_step`` driven by stage records.

:class:`StagedTrainer` wraps the restoration network (MEMD or ERL-Net) and,
when a strategy needs it, the clean-to-clean network. ``set_stage`` picks
the branches whose variables the optimizer updates and the loss; frozen
branches still run forward but get no gradient. One Adam optimizer is built
over every branch up front; ``reset_optimizer`` zeroes its moments and step
count at the start of each stage, so each stage starts its optimisation
afresh, as separately trained stages would.

Validation (Y-PSNR/SSIM) comes from :class:`~erlrestore.training.base.RestorationTrainer`.
"""

import tensorflow as tf

from erlrestore import losses
from erlrestore.models import erlnet
from erlrestore.training.base import RestorationTrainer, reset_optimizer_state


def _is_erlnet(net):
    return any(layer.name == "ren" for layer in net.layers)


class StagedTrainer(RestorationTrainer):
    """Trains ``net`` (and ``c2c``) stage by stage; ``call`` is ``net``'s."""

    def __init__(self, net, c2c=None, fre_weight=0.01, fre_reduction="mean_sum", **kwargs):
        super().__init__(net, logged=("loss", "pre", "fre", "c2c"), **kwargs)
        self.net = net
        self.c2c = c2c
        self.fre_weight = float(fre_weight)
        if fre_reduction not in losses.FRE_REDUCTIONS:
            raise ValueError(f"unknown L_fre reduction {fre_reduction!r}; choose one of {losses.FRE_REDUCTIONS}")
        self.fre_reduction = fre_reduction
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
        super().set_stage(stage)

    def checkpoint_items(self):
        items = {"net": self.net, "optimizer": self.optimizer}
        if self.c2c is not None:
            items["c2c"] = self.c2c
        return items

    def reset_optimizer(self, learning_rate):
        reset_optimizer_state(self.optimizer, self.all_variables(), learning_rate)

    # -- steps --------------------------------------------------------------

    def _compute_losses(self, degraded, clean):
        stage = self.stage
        values = {}
        restoration = tf.constant(0.0)
        if stage.loss == "erl":
            outputs = self._feature_net(degraded, training=True)
            targets = self._target_features(clean, training=False)["features"]
            values["pre"] = losses.l1(outputs["restored"], clean)
            values["fre"] = losses.feature_loss(outputs["features"], [tf.stop_gradient(t) for t in targets],
                                                reduction=self.fre_reduction)
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
            # Gradients are summed over replicas; under mixed_float16 the optimizer scales the loss.
            scaled = self.optimizer.scale_loss(total / tf.distribute.get_strategy().num_replicas_in_sync)
        variables = self.branch_variables(self.stage.branches)
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply(gradients, variables)
        return self._log(values)
