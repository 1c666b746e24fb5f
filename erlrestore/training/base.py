"""What every trainer shares: loss trackers, validation and optimizer resets.

A trainer subclasses :class:`RestorationTrainer`, names its restoration
network (the one that is evaluated and exported) in ``restoration_net``,
and lists the values its ``train_step`` logs. Validation (``test_step``)
measures Y-channel PSNR/SSIM (the TF twin in ``erlrestore.metrics``) on the
restored image clipped to [0, 1], so ``fit(validation_data=...)`` logs
``val_psnr_y`` and ``val_ssim_y``.
"""

import keras
import tensorflow as tf

from erlrestore import metrics


def reset_optimizer_state(optimizer, variables, learning_rate):
    """Builds ``optimizer`` on ``variables`` if needed, zeroes its step count and
    moments, and sets the learning rate: each stage starts its optimisation afresh.

    A ``LossScaleOptimizer`` keeps its loss scale (a zero scale would zero
    every gradient); its inner optimizer is reset.
    """
    if not optimizer.built:
        optimizer.build(variables)
    for variable in getattr(optimizer, "inner_optimizer", optimizer).variables:
        variable.assign(tf.zeros_like(variable))
    optimizer.learning_rate = learning_rate


def _multi_worker(distribution):
    extended = getattr(distribution, "extended", None)
    return isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy) and bool(
        getattr(extended, "_in_multi_worker_mode", lambda: False)()
    )


class RestorationTrainer(keras.Model):
    """Base of the trainers: ``call`` runs the restoration network."""

    def __init__(self, restoration_net, logged, **kwargs):
        super().__init__(**kwargs)
        self.restoration_net = restoration_net
        self.stage = None
        self._trackers = {name: keras.metrics.Mean(name=name) for name in (*logged, "psnr_y", "ssim_y")}

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Skips Keras' pre-``fit`` build pass: the networks are built functional
        models and ``Run`` builds the optimizers before fitting.

        Under a ``tf.distribute`` distribution Keras 3.15's TF trainer pulls one
        batch through the distributed iterator and reduces it across replicas
        to build symbolically. That reduce fails under
        ``MultiWorkerMirroredStrategy`` (PerReplica -> Tensor), and the
        iterator reset after it makes the random crops differ from a
        single-device run of the same seed.
        """
        self.built = True

    @property
    def metrics(self):
        return list(self._trackers.values())

    def call(self, images, training=False):
        return self.restoration_net(images, training=training)

    def optimizers(self):
        """Every optimizer the trainer steps (a learning-rate schedule sets them all); here the compiled one."""
        return [self.optimizer]

    def set_learning_rate(self, learning_rate):
        """Sets the learning rate of every optimizer of :meth:`optimizers`."""
        for optimizer in self.optimizers():
            optimizer.learning_rate = learning_rate

    def set_stage(self, stage):
        """Selects the stage; the next ``fit`` traces a fresh train step."""
        self.stage = stage
        self.train_function = None

    def _log(self, values):
        for name, value in values.items():
            self._trackers[name].update_state(value)
        results = {name: self._trackers[name].result() for name in values}
        if _multi_worker(tf.distribute.get_strategy()):
            # Keras 3.15 reduces a multi-worker step's outputs with
            # distribution.reduce("MEAN", value, axis=0), which needs a batch axis.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def test_step(self, data):
        degraded, clean = data[0], data[1]
        restored = tf.clip_by_value(self.restoration_net(degraded, training=False), 0.0, 1.0)
        return self._log({"psnr_y": metrics.psnr_y_tf(restored, clean), "ssim_y": metrics.ssim_y_tf(restored, clean)})
