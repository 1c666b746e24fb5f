"""Running a sequence of stages with checkpoints, resume, logs and validation.

The machinery is shared by every trainer in ``erlrestore.training``. A
trainer is a ``keras.Model`` with:

* ``set_stage(stage)``: select what the next ``fit`` trains;
* ``reset_optimizer(learning_rate)``: start a stage's optimisation afresh;
* ``checkpoint_items()``: the objects a checkpoint must hold (networks and
  optimizers), as a dict;
* ``set_learning_rate(rate)`` (for a per-step ``lr_schedule``): set every
  optimizer's learning rate (:class:`~erlrestore.training.base.RestorationTrainer`
  has it).

Checkpoints (``tf.train.Checkpoint`` + ``CheckpointManager`` in
``<model_dir>/checkpoints``) hold those items, the run's position
(``stage_index`` and ``stage_step``, optimizer steps done in that stage) and
the learning-rate plateau state. A per-step learning-rate schedule
(:class:`LinearDecay`, pix2pix's) needs no state: it is a function of the
stage step, set on every optimizer before each step. One Keras "epoch" is one checkpoint interval
(``checkpoint_every`` steps) and one ``fit`` call, with a data pipeline made
for it from ``(stage, first step)``; a checkpoint is written at every epoch
end and at every stage end. TensorFlow writes the checkpoint files under
temporary names and updates the ``checkpoint`` index last, so an interrupted
write leaves the previous checkpoint in force.

On start, the latest checkpoint is restored: finished stages are skipped,
the current stage continues from the last checkpoint interval it completed,
with optimizer and plateau state, on the same data that interval would have
had. So a run killed at any moment and restarted ends with the weights of an
uninterrupted run (bit for bit where the kernels are deterministic; tested
with kill -9 in tests/test_faults.py), after exactly the planned steps.

Before the first step the model folder must take a test write and have
room for the checkpoints it will keep; training stops at the first step
whose loss is not finite, naming the step and stage, without writing a
checkpoint (the last good one stays).

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
import sys
import tempfile
import time

import keras
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class StagePlan:
    """A stage, how many optimizer steps it runs, and its own data if any
    (None: the run's training data).

    Data (here and in :meth:`Run.run`) is a ``tf.data.Dataset`` or a function
    ``(stage_index, first_step) -> Dataset`` called for every ``fit``: a
    stage, and a stage resumed at a given step, then draws a stream of its
    own that depends on nothing else (not on how many iterators were made
    before, which differs between devices and distributions).
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
    # A network's ``variables`` are its weights plus its random-seed states
    # (dropout), so a resumed run draws the masks an uninterrupted one would.
    return _Variables(item.variables)


def report(message, *args):
    """A line of the run's own progress on stderr (stage starts, resumes, stops), unprefixed.

    Not absl INFO: the tools are quiet by default and show their own
    progress; ``-v`` adds the INFO lines of the libraries underneath.
    """
    print(message % args if args else message, file=sys.stderr, flush=True)


class _RunPosition(tf.Module):
    def __init__(self):
        super().__init__()
        self.stage_index = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_index")
        self.stage_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="stage_step")


@dataclasses.dataclass(frozen=True)
class Plateau:
    """Divide the learning rate by ``1 / factor`` after ``patience`` checkpoint
    intervals whose ``monitor`` value (an epoch log, e.g. ``loss``) did not
    fall below the best one by more than ``min_delta``; never below ``min_lr``.

    Keras' ``ReduceLROnPlateau`` keeps its counters in Python and resets them
    in every ``fit``; here they live in the checkpoint (so a resumed run
    counts on) and restart with each stage, as the learning rate does.
    """

    monitor: str = "loss"
    factor: float = 0.1
    patience: int = 10
    min_lr: float = 1e-7
    min_delta: float = 1e-4


@dataclasses.dataclass(frozen=True)
class LinearDecay:
    """pix2pix's ``lr_policy="linear"``, per optimizer step of a stage: the
    learning rate stays at its base value for the first half of the stage's
    steps, then falls linearly towards zero over the second half.

    pix2pix (``n_epochs`` constant + ``n_epochs_decay`` decaying epochs)
    multiplies the base rate by ``1 - max(0, e + 1 - n_epochs) / (n_epochs_decay + 1)``
    in epoch ``e`` (from 0), so its last epoch still trains at
    ``1 / (n_epochs_decay + 1)`` of the base rate. The same rule per step,
    for a stage of ``S`` steps with ``D = S // 2`` decaying ones
    (``S - D = ceil(S / 2)`` constant ones), is :meth:`factor`::

        factor(step) = min(1, (S - step) / (D + 1))

    1 up to step ``S - D - 1``, then ``D / (D + 1)``, ..., ``1 / (D + 1)`` at the
    last step ``S - 1``. It is a pure function of the step: a resumed stage
    gets exactly the learning rates an uninterrupted one would. Every
    optimizer of the trainer (both of a GAN) is set before every step.
    """

    @staticmethod
    def factor(step, steps):
        """The multiplier of the base learning rate at ``step`` (0-based) of a ``steps``-step stage."""
        if steps <= 0 or not 0 <= step < steps:
            raise ValueError(f"step {step} is outside a stage of {steps} steps")
        decay = steps // 2
        return min(1.0, (steps - step) / (decay + 1))


class _ScheduledRate(keras.callbacks.Callback):
    """Before every step: every optimizer's learning rate = ``base * schedule.factor(stage step, steps)``."""

    def __init__(self, schedule, base_rate, steps, first_step):
        super().__init__()
        self.schedule = schedule
        self.base_rate = base_rate
        self.steps = steps
        self.first_step = first_step

    def on_train_batch_begin(self, batch, logs=None):
        rate = self.base_rate * self.schedule.factor(self.first_step + batch, self.steps)
        self.model.set_learning_rate(rate)


def _value(variable):
    """A scalar variable's value as a Python float (also a MirroredVariable's)."""
    return float(tf.convert_to_tensor(variable).numpy())


class _PlateauState(tf.Module):
    def __init__(self):
        super().__init__()
        self.best = tf.Variable(math.inf, dtype=tf.float64, trainable=False, name="best")
        self.wait = tf.Variable(0, dtype=tf.int64, trainable=False, name="wait")

    def reset(self):
        self.best.assign(math.inf)
        self.wait.assign(0)


class _IntervalEnd(keras.callbacks.Callback):
    """Per step: stop on a non-finite loss. Per interval: the plateau rule,
    the position reached, TensorBoard scalars, then a checkpoint."""

    def __init__(self, run, plan, first_step, writers):
        super().__init__()
        self.run = run
        self.plan = plan
        self.first_step = first_step
        self.writers = writers  # {"train": writer, "validation": writer}

    def on_train_batch_end(self, batch, logs=None):
        bad = [name for name, value in (logs or {}).items() if not math.isfinite(float(value))]
        if bad:
            self.model.stop_training = True
            raise FloatingPointError(
                f"non-finite {', '.join(bad)} at step {self.first_step + batch + 1} of stage "
                f"{self.plan.stage.name}; stopped without writing a checkpoint, the last good one is kept"
            )

    def on_epoch_end(self, epoch, logs=None):
        logs = {name: float(value) for name, value in (logs or {}).items()}
        run = self.run
        if run.plateau is not None:
            run.apply_plateau(self.model.optimizer, logs)
        step = self.first_step + self.params["steps"]
        # The layout Keras' TensorBoard callback writes: <stage>/train and
        # <stage>/validation, tags epoch_<name>, step = the interval's index.
        logs["learning_rate"] = _value(self.model.optimizer.learning_rate)
        for part, writer in self.writers.items():
            with writer.as_default():
                for name, value in logs.items():
                    if name.startswith("val_") == (part == "validation"):
                        tf.summary.scalar("epoch_" + name.removeprefix("val_"), value, step=epoch)
            writer.flush()
        run.position.stage_step.assign(step)
        run.save()
        run.steps_done += step - self.first_step


class Run:
    """A run in ``model_dir``: checkpoint state and where to write logs."""

    def __init__(self, trainer, model_dir, max_to_keep=3, chief=True, worker_id=0):
        self.trainer = trainer
        self.model_dir = model_dir
        self.chief = chief
        self.position = _RunPosition()
        self.plateau = None
        self.lr_schedule = None
        self.learning_rate = None
        self._plateau_state = _PlateauState()
        self._items = trainer.checkpoint_items()
        self.checkpoint = None  # made once the optimizers are built (see run)
        self._max_to_keep = max_to_keep
        self.manager = None
        self.checkpoint_dir = os.path.join(model_dir, "checkpoints")
        # A non-chief worker's scratch folder: its saves go here and are deleted.
        self.scratch_dir = None if chief else os.path.join(model_dir, ".workers", f"worker{worker_id}")
        self.steps_done = 0  # optimizer steps checkpointed by this invocation
        self.stage_count = 0
        self.stop_after = 0
        self._scratch_logs = None

    def _ensure_checkpoint(self):
        if self.checkpoint is None:
            entries = {name: _variables_of(item) for name, item in self._items.items()}
            self.checkpoint = tf.train.Checkpoint(position=self.position, plateau=self._plateau_state, **entries)
            if self.chief:
                self.manager = tf.train.CheckpointManager(self.checkpoint, self.checkpoint_dir,
                                                          max_to_keep=self._max_to_keep)

    def checkpoint_bytes(self):
        """Bytes one checkpoint takes (every variable it holds)."""
        self._ensure_checkpoint()
        total = 0
        for item in self._items.values():
            for variable in _variables_of(item).by_index.values():
                total += int(tf.size(variable)) * tf.as_dtype(variable.dtype).size
        return total

    def check_writable(self, extra_bytes=0):
        """Fails now, not hours into training, if checkpoints cannot be written.

        Writes, syncs and deletes a probe file in the checkpoint folder, and
        asks for free space for ``max_to_keep + 1`` checkpoints plus
        ``extra_bytes`` (the final models).
        """
        folder = self.checkpoint_dir if self.chief else self.scratch_dir
        try:
            os.makedirs(folder, exist_ok=True)
            probe = os.path.join(folder, f".write_probe_{os.getpid()}")
            with open(probe, "wb") as f:
                f.write(b"\0" * 4096)
                f.flush()
                os.fsync(f.fileno())
            os.remove(probe)
        except OSError as error:
            raise OSError(f"cannot write checkpoints to {folder}: {error.strerror or error}") from None
        one = self.checkpoint_bytes()
        needed = (self._max_to_keep + 1) * one + extra_bytes
        free = shutil.disk_usage(folder).free
        if free < needed:
            raise OSError(
                f"not enough space for checkpoints in {folder}: about {needed / 2**20:.0f} MiB needed "
                f"({self._max_to_keep + 1} checkpoints of {one / 2**20:.1f} MiB and the "
                f"final models), {free / 2**20:.0f} MiB free"
            )

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

    def apply_plateau(self, optimizer, logs):
        plateau, state = self.plateau, self._plateau_state
        if plateau.monitor not in logs:
            return
        current = logs[plateau.monitor]
        if current < _value(state.best) - plateau.min_delta:
            state.best.assign(current)
            state.wait.assign(0)
            return
        state.wait.assign_add(1)
        if _value(state.wait) >= plateau.patience:
            old = _value(optimizer.learning_rate)
            new = max(old * plateau.factor, plateau.min_lr)
            if new < old:
                optimizer.learning_rate = new
                report("%s has not improved for %d intervals: learning rate %.3g -> %.3g",
                             plateau.monitor, plateau.patience, old, new)
            state.wait.assign(0)

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
            report("resumed from %s", latest)
        return int(self.position.stage_index.numpy()), int(self.position.stage_step.numpy())

    def run(self, plans, dataset, *, learning_rate, checkpoint_every, validation_data=None,
            validation_every=1, callbacks=(), verbose="auto", stop_after=0, plateau=None, extra_bytes=0,
            lr_schedule=None):
        """Trains every stage of ``plans`` not finished yet.

        ``plateau``: a :class:`Plateau` rule for the learning rate, or None.
        ``lr_schedule``: a per-step schedule such as :class:`LinearDecay`
        (``factor(step, steps)``) applied to every optimizer from
        ``learning_rate`` in each stage, or None (constant, unless ``plateau``).
        ``extra_bytes``: disk space wanted besides the checkpoints (final models).
        Returns True when every stage is finished, False when ``stop_after``
        (optimizer steps in this invocation, 0 for no limit) ended it first.
        """
        self.plateau = plateau
        self.lr_schedule = lr_schedule
        self.learning_rate = learning_rate
        try:
            return self._run(plans, dataset, learning_rate, checkpoint_every, validation_data, validation_every,
                             callbacks, verbose, stop_after, extra_bytes)
        finally:
            if self._scratch_logs:
                shutil.rmtree(self._scratch_logs, ignore_errors=True)
            if self.scratch_dir:
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.dirname(self.scratch_dir))  # .workers/, once every worker's is gone

    def _run(self, plans, dataset, learning_rate, checkpoint_every, validation_data, validation_every, callbacks,
             verbose, stop_after, extra_bytes):
        trainer = self.trainer
        self.stop_after = stop_after
        self.steps_done = 0
        self.stage_count = len(plans)
        trainer.reset_optimizer(learning_rate)  # builds the optimizer state the checkpoint restores into
        stage_index, stage_step = self.restore()
        if stage_index >= len(plans):
            report("all %d stages already finished in %s", len(plans), self.model_dir)
            return True
        self.check_writable(extra_bytes)
        for index in range(stage_index, len(plans)):
            plan = plans[index]
            trainer.set_stage(plan.stage)
            start = stage_step if index == stage_index else 0
            if start == 0:
                trainer.reset_optimizer(learning_rate)
                self._plateau_state.reset()
            report("stage %s (%d/%d): %d steps, from step %d",
                         plan.stage.name, index + 1, len(plans), plan.steps, start)
            stage_data = dataset if plan.dataset is None else plan.dataset
            self._fit_stage(plan, index, start, stage_data, checkpoint_every, validation_data,
                            validation_every, list(callbacks), verbose)
            if int(self.position.stage_step.numpy()) < plan.steps:
                report("stopping after %d steps (--stop_after); run again to continue from step %d of stage %s",
                             self.steps_done, int(self.position.stage_step.numpy()), plan.stage.name)
                return False
            self.position.stage_index.assign(index + 1)
            self.position.stage_step.assign(0)
            self.save()
            if self.should_stop() and index + 1 < len(plans):
                report("stopping after %d steps (--stop_after); run again to continue with stage %s",
                             self.steps_done, plans[index + 1].stage.name)
                return False
        return True

    def _fit_stage(self, plan, index, start, dataset, checkpoint_every, validation_data,
                   validation_every, callbacks, verbose):
        """One ``fit`` per checkpoint interval, each on data made for its first step."""
        per_epoch = max(1, min(checkpoint_every, plan.steps))
        epochs = math.ceil(plan.steps / per_epoch)
        log_dir = self.log_dir(f"stage{index + 1}_{plan.stage.name}")
        writers = {part: tf.summary.create_file_writer(os.path.join(log_dir, part)) for part in ("train", "validation")}
        try:
            for epoch in range(start // per_epoch, epochs):
                if self.should_stop():
                    return
                first_step = epoch * per_epoch
                scheduled = []
                if self.lr_schedule is not None:
                    scheduled = [_ScheduledRate(self.lr_schedule, self.learning_rate, plan.steps, first_step)]
                progress = []
                if verbose == "auto" and self.chief:  # our lines: stage, step / steps, losses, validation
                    progress = [StageProgress(plan, index, self.stage_count, first_step)]
                self.trainer.fit(
                    dataset(index, first_step) if callable(dataset) else dataset,
                    initial_epoch=epoch,
                    epochs=epoch + 1,
                    steps_per_epoch=min(per_epoch, plan.steps - first_step),
                    validation_data=validation_data,
                    validation_freq=validation_every,
                    callbacks=callbacks + scheduled + [_IntervalEnd(self, plan, first_step, writers)] + progress,
                    shuffle=False,  # datasets arrive shuffled
                    verbose=0 if verbose == "auto" else verbose,
                )
        finally:
            for writer in writers.values():
                writer.close()


class StageProgress(keras.callbacks.Callback):
    """Training progress as the run sees it, on stderr: stage, optimizer step of the stage, losses, validation.

    One line at the end of every checkpoint interval (with the validation
    scores when there are some), and one at most every ``every_seconds`` in
    between. Keras' own bar counts one "epoch" per checkpoint interval,
    which reads as "Epoch 5/5, Epoch 6/6"; this is what ``--verbose=auto``
    shows instead (``--verbose=1`` or ``2`` brings Keras' bar back).
    """

    def __init__(self, plan, index, count, first_step, every_seconds=30.0, stream=None):
        super().__init__()
        self.plan, self.index, self.count, self.first_step = plan, index, count, first_step
        self.every_seconds = every_seconds
        self.stream = stream
        self._started = self._last = None

    def _write(self, step, logs, final):
        now = time.monotonic()
        rate = (now - self._started) / max(1, step - self.first_step)
        train = ", ".join(f"{k} {float(v):.4g}" for k, v in sorted((logs or {}).items()) if not k.startswith("val_"))
        line = f"stage {self.plan.stage.name} ({self.index + 1}/{self.count}) step {step}/{self.plan.steps}: {train}"
        if final:
            val = ", ".join(f"{k[4:]} {float(v):.4f}" for k, v in sorted(logs.items()) if k.startswith("val_"))
            if val:
                line += f" | validation {val}"
        print(f"{line} ({rate:.2f} s/step)", file=self.stream or sys.stderr, flush=True)
        self._last = now

    def on_train_begin(self, logs=None):
        self._started = self._last = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self._last >= self.every_seconds:
            self._write(self.first_step + batch + 1, logs, final=False)

    def on_epoch_end(self, epoch, logs=None):
        self._write(self.first_step + self.params["steps"], logs or {}, final=True)


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
