"""Running a sequence of stages with checkpoints, resume, logs and validation.

The machinery is shared by every trainer in ``erlrestore.training``. A
trainer is a ``keras.Model`` with:

* ``set_stage(stage)``: select what the next ``fit`` trains;
* ``reset_optimizer(learning_rate)``: start a stage's optimisation afresh;
* ``checkpoint_items()``: the objects a checkpoint must hold (networks and
  optimizers), as a dict.

Checkpoints (``tf.train.Checkpoint`` + ``CheckpointManager`` in
``<model_dir>/checkpoints``) hold those items plus the run's position:
``stage_index`` and ``stage_step`` (optimizer steps done in that stage). One
Keras "epoch" is one checkpoint interval (``checkpoint_every`` steps), so a
checkpoint is written at every epoch end and at every stage end. TensorFlow
writes the checkpoint files before it updates the ``checkpoint`` index, so an
interrupted write leaves the previous checkpoint in force.

On start, the latest checkpoint is restored: finished stages are skipped,
the current stage continues from the last checkpoint interval it completed,
with optimizer state. Work since that checkpoint is redone, so an interrupted
run does exactly the planned number of steps per stage.
"""

import dataclasses
import math
import os

import keras
import tensorflow as tf
from absl import logging


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """A stage, how many optimizer steps it runs, and its own data if any
    (None: the run's training data)."""

    stage: object
    steps: int
    dataset: object = None


class _Variables(tf.Module):
    """A network's or optimizer's variables, as one flat, ordered checkpoint entry.

    Keras 3 keeps sub-layers that a layer holds in Python lists (DenseBlock,
    InfoAccum) out of ``tf.train.Checkpoint``'s object graph, so checkpointing
    the model object would silently skip their weights. Every variable is
    listed here instead, keyed by its position (the architecture fixes the
    order); a checkpoint of another architecture fails to restore loudly.
    """

    def __init__(self, variables):
        super().__init__()
        self.by_index = {f"{i:05d}": variable for i, variable in enumerate(variables)}


def _variables_of(item):
    if isinstance(item, keras.optimizers.Optimizer):
        return _Variables(item.variables)
    return _Variables(item.weights)


class _RunPosition(tf.Module):
    def __init__(self):
        super().__init__()
        self.stage_index = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_index")
        self.stage_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_step")


class _CheckpointEachEpoch(keras.callbacks.Callback):
    """Records the position reached and saves a checkpoint at each epoch end."""

    def __init__(self, manager, position, steps_per_epoch, stage_steps):
        super().__init__()
        self.manager = manager
        self.position = position
        self.steps_per_epoch = steps_per_epoch
        self.stage_steps = stage_steps

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        bad = [name for name, value in logs.items() if not math.isfinite(float(value))]
        if bad:
            self.model.stop_training = True
            raise FloatingPointError(
                f"non-finite {', '.join(bad)} at stage step {(epoch + 1) * self.steps_per_epoch}; "
                "no checkpoint written, the last good one is kept"
            )
        self.position.stage_step.assign(min((epoch + 1) * self.steps_per_epoch, self.stage_steps))
        self.manager.save()


class Run:
    """A run in ``model_dir``: checkpoint state and where to write logs."""

    def __init__(self, trainer, model_dir, max_to_keep=3):
        self.trainer = trainer
        self.model_dir = model_dir
        self.position = _RunPosition()
        self._items = trainer.checkpoint_items()
        self.checkpoint = None  # made once the optimizers are built (see run)
        self._max_to_keep = max_to_keep
        self.manager = None

    def _ensure_checkpoint(self):
        if self.checkpoint is None:
            entries = {name: _variables_of(item) for name, item in self._items.items()}
            self.checkpoint = tf.train.Checkpoint(position=self.position, **entries)
            self.manager = tf.train.CheckpointManager(
                self.checkpoint, os.path.join(self.model_dir, "checkpoints"), max_to_keep=self._max_to_keep
            )

    def restore(self):
        """Restores the latest checkpoint; returns (stage_index, stage_step).

        The trainer's optimizers must be built first (``reset_optimizer``).
        """
        self._ensure_checkpoint()
        latest = self.manager.latest_checkpoint
        if latest:
            self.checkpoint.restore(latest).assert_consumed()
            logging.info("resumed from %s", latest)
        return int(self.position.stage_index.numpy()), int(self.position.stage_step.numpy())

    def run(self, plans, dataset, *, learning_rate, checkpoint_every, validation_data=None,
            validation_every=1, callbacks=(), verbose="auto"):
        """Trains every stage of ``plans`` not finished yet; returns the trainer."""
        trainer = self.trainer
        trainer.reset_optimizer(learning_rate)  # builds the optimizer state the checkpoint restores into
        stage_index, stage_step = self.restore()
        if stage_index >= len(plans):
            logging.info("all %d stages already finished in %s", len(plans), self.model_dir)
            return trainer
        for index in range(stage_index, len(plans)):
            plan = plans[index]
            trainer.set_stage(plan.stage)
            start = stage_step if index == stage_index else 0
            if start == 0:
                trainer.reset_optimizer(learning_rate)
            logging.info("stage %s (%d/%d): %d steps, from step %d",
                         plan.stage.name, index + 1, len(plans), plan.steps, start)
            stage_data = dataset if plan.dataset is None else plan.dataset
            self._fit_stage(plan, index, start, stage_data, checkpoint_every, validation_data,
                            validation_every, list(callbacks), verbose)
            self.position.stage_index.assign(index + 1)
            self.position.stage_step.assign(0)
            self.manager.save()
        return trainer

    def _fit_stage(self, plan, index, start, dataset, checkpoint_every, validation_data,
                   validation_every, callbacks, verbose):
        per_epoch = max(1, min(checkpoint_every, plan.steps))
        full_epochs, remainder = divmod(plan.steps, per_epoch)
        done_epochs = start // per_epoch
        log_dir = os.path.join(self.model_dir, "logs", f"stage{index + 1}_{plan.stage.name}")
        chunks = [(per_epoch, done_epochs, full_epochs)]
        if remainder:
            chunks.append((remainder, full_epochs, full_epochs + 1))
        if start >= plan.steps:
            return
        for steps_per_epoch, first, last in chunks:
            if first >= last:
                continue
            stage_callbacks = callbacks + [
                # Epoch e ends at stage step min((e + 1) * per_epoch, steps): also right
                # for the shorter last epoch.
                _CheckpointEachEpoch(self.manager, self.position, per_epoch, plan.steps),
                keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False),
            ]
            self.trainer.fit(
                dataset,
                initial_epoch=first,
                epochs=last,
                steps_per_epoch=steps_per_epoch,
                validation_data=validation_data,
                validation_freq=validation_every,
                callbacks=stage_callbacks,
                shuffle=False,  # datasets arrive shuffled
                verbose=verbose,
            )


class ImageSamples(keras.callbacks.Callback):
    """Writes a few restored validation images to TensorBoard every ``every`` epochs."""

    def __init__(self, log_dir, images, every=1):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.images = images  # list of (degraded, clean) float arrays HxWx3
        self.every = every

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        with self.writer.as_default():
            for i, (degraded, clean) in enumerate(self.images):
                restored = tf.clip_by_value(self.model(degraded[tf.newaxis], training=False), 0.0, 1.0)
                row = tf.concat([degraded[tf.newaxis], restored, clean[tf.newaxis]], axis=2)
                tf.summary.image(f"sample_{i}/input_restored_clean", row, step=epoch + 1)
        self.writer.flush()
