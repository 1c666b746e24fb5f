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

``stop_after`` ends an invocation early, at the first checkpoint after that
many optimizer steps (a time-boxed job on a shared cluster); running the
same command again continues from there.

Under ``multi_worker_mirrored`` every worker runs this code in step. Only
the chief (``chief=True``) writes the real checkpoints and TensorBoard logs;
the others write theirs to a private scratch folder under
``<model_dir>/.workers/`` that is deleted after each save, and restore
from the chief's checkpoints (the model folder must be shared storage).
"""

import contextlib
import dataclasses
import math
import os
import shutil
import tempfile

import keras
import tensorflow as tf
from absl import logging


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """A stage, how many optimizer steps it runs, and its own data if any
    (None: the run's training data).

    Data (here and in :meth:`Run.run`) is a ``tf.data.Dataset`` or a function
    ``(stage_index, first_step) -> Dataset`` called for every ``fit``: a
    stage, and a stage resumed at a given step, then draws a stream of its
    own that depends on nothing else (not on how many iterators were made
    before, which differs between devices and strategies).
    """

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

    def __init__(self, run, steps_per_epoch, stage_steps):
        super().__init__()
        self.run = run
        self.position = run.position
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
        before = int(self.position.stage_step.numpy())
        after = min((epoch + 1) * self.steps_per_epoch, self.stage_steps)
        self.position.stage_step.assign(after)
        self.run.save()
        self.run.steps_done += after - before
        if self.run.should_stop():
            self.model.stop_training = True


class Run:
    """A run in ``model_dir``: checkpoint state and where to write logs."""

    def __init__(self, trainer, model_dir, max_to_keep=3, chief=True, worker_id=0):
        self.trainer = trainer
        self.model_dir = model_dir
        self.chief = chief
        self.position = _RunPosition()
        self._items = trainer.checkpoint_items()
        self.checkpoint = None  # made once the optimizers are built (see run)
        self._max_to_keep = max_to_keep
        self.manager = None
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        # A non-chief worker's scratch folder: its saves go here and are deleted.
        self.scratch_dir = None if chief else os.path.join(model_dir, ".workers", f"worker{worker_id}")
        self.steps_done = 0  # optimizer steps checkpointed by this invocation
        self.stop_after = 0
        self._scratch_logs = None

    def _ensure_checkpoint(self):
        if self.checkpoint is None:
            entries = {name: _variables_of(item) for name, item in self._items.items()}
            self.checkpoint = tf.train.Checkpoint(position=self.position, **entries)
            if self.chief:
                self.manager = tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir,
                                                          max_to_keep=self._max_to_keep)

    def save(self):
        """Writes a checkpoint of the current state (the chief's is the one that counts)."""
        if self.chief:
            return self.manager.save()
        # Every worker takes part in the save (it runs collective ops); a
        # non-chief's copy is thrown away.
        self.checkpoint.save(os.path.join(self.scratch_dir, "ckpt"))
        shutil.rmtree(self.scratch_dir, ignore_errors=True)
        return None

    def should_stop(self):
        return bool(self.stop_after) and self.steps_done >= self.stop_after

    def log_dir(self, name):
        if self.chief:
            return os.path.join(self.model_dir, "logs", name)
        if self._scratch_logs is None:
            self._scratch_logs = tempfile.mkdtemp(prefix="erlrestore-worker-logs-")
        return os.path.join(self._scratch_logs, name)

    def restore(self):
        """Restores the latest checkpoint; returns (stage_index, stage_step).

        The trainer's optimizers must be built first (``reset_optimizer``).
        """
        self._ensure_checkpoint()
        latest = tf.train.latest_checkpoint(self.checkpoint_dir)
        if latest:
            self.checkpoint.restore(latest).assert_consumed()
            logging.info("resumed from %s", latest)
        return int(self.position.stage_index.numpy()), int(self.position.stage_step.numpy())

    def run(self, plans, dataset, *, learning_rate, checkpoint_every, validation_data=None,
            validation_every=1, callbacks=(), verbose="auto", stop_after=0):
        """Trains every stage of ``plans`` not finished yet.

        Returns True when every stage is finished, False when ``stop_after``
        (optimizer steps in this invocation, 0 for no limit) ended it first.
        """
        try:
            return self._run(plans, dataset, learning_rate, checkpoint_every, validation_data, validation_every,
                             callbacks, verbose, stop_after)
        finally:
            if self._scratch_logs:
                shutil.rmtree(self._scratch_logs, ignore_errors=True)
            if self.scratch_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self.scratch_dir))  # .workers/, once every worker's is gone

    def _run(self, plans, dataset, learning_rate, checkpoint_every, validation_data, validation_every, callbacks,
             verbose, stop_after):
        trainer = self.trainer
        self.stop_after = stop_after
        self.steps_done = 0
        trainer.reset_optimizer(learning_rate)  # builds the optimizer state the checkpoint restores into
        stage_index, stage_step = self.restore()
        if stage_index >= len(plans):
            logging.info("all %d stages already finished in %s", len(plans), self.model_dir)
            return True
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
            if int(self.position.stage_step.numpy()) < plan.steps:
                logging.info("stopping after %d steps (--stop_after); run again to continue from step %d of stage %s",
                             self.steps_done, int(self.position.stage_step.numpy()), plan.stage.name)
                return False
            self.position.stage_index.assign(index + 1)
            self.position.stage_step.assign(0)
            self.save()
            if self.should_stop() and index + 1 < len(plans):
                logging.info("stopping after %d steps (--stop_after); run again to continue with stage %s",
                             self.steps_done, plans[index + 1].stage.name)
                return False
        return True

    def _fit_stage(self, plan, index, start, dataset, checkpoint_every, validation_data,
                   validation_every, callbacks, verbose):
        per_epoch = max(1, min(checkpoint_every, plan.steps))
        full_epochs, remainder = divmod(plan.steps, per_epoch)
        done_epochs = start // per_epoch
        log_dir = self.log_dir(f"stage{index + 1}_{plan.stage.name}")
        chunks = [(per_epoch, done_epochs, full_epochs)]
        if remainder:
            chunks.append((remainder, full_epochs, full_epochs + 1))
        if start >= plan.steps:
            return
        for steps_per_epoch, first, last in chunks:
            if first >= last or self.should_stop():
                continue
            stage_callbacks = callbacks + [
                # Epoch e ends at stage step min((e + 1) * per_epoch, steps): also right
                # for the shorter last epoch.
                _CheckpointEachEpoch(self, per_epoch, plan.steps),
                keras.callbacks.TensorBoard(log_dir=log_dir, write_graph=False),
            ]
            self.trainer.fit(
                dataset(index, first * per_epoch) if callable(dataset) else dataset,
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
