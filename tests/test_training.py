"""Staged ERL-Net training: which branches each stage trains, checkpoints and resume."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from erlrestore.models import erlnet, memd
from erlrestore.training import run, stages
from erlrestore.training.staged import StagedTrainer

TINY = dict(depth=2, base_filters=4, dense_layers=2, growth_rate=4)


def tiny_trainer(model="ERLNet", entanglement="MLGD", seed=0):
    keras.utils.set_random_seed(seed)
    if model == "ERLNet":
        config = memd.memd_config("MEMD", **TINY)
        net = erlnet.build_erlnet(config, entanglement, ren_head_initializer="zeros")
        c2c = erlnet.build_clean_to_clean(config)
    else:
        net, c2c = memd.build_memd(memd.memd_config(model, **TINY)), None
    trainer = StagedTrainer(net, c2c)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    return trainer


def tiny_data(count=4, size=16, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.random((count, size, size, 3)).astype("float32")
    degraded = np.clip(clean + 0.2 * rng.random(clean.shape), 0, 1).astype("float32")
    return tf.data.Dataset.from_tensor_slices((degraded, clean)).repeat().batch(2)


def branch_weights(trainer):
    branches = {"c2c": trainer.c2c} if trainer.c2c is not None else {}
    for name in ("men", "mde", "ren"):
        try:
            branches[name] = trainer.net.get_layer(name)
        except ValueError:
            pass
    return {name: [w.numpy().copy() for w in model.weights] for name, model in branches.items()}


def changed_branches(before, after):
    return {
        name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))
    }


@pytest.mark.parametrize("strategy", sorted(stages.STRATEGIES))
def test_each_stage_updates_exactly_its_branches(strategy):
    trainer = tiny_trainer("MEMD" if strategy == "MEMD" else "ERLNet")
    data = tiny_data()
    for stage in stages.strategy(strategy):
        trainer.set_stage(stage)
        trainer.reset_optimizer(1e-3)
        before = branch_weights(trainer)
        # Two steps: the zero-initialised last conv (and REN's zero heads) pass no
        # gradient upstream on the very first step.
        history = trainer.fit(data, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
        after = branch_weights(trainer)
        assert changed_branches(before, after) == set(stage.branches), (strategy, stage.name)
        for name, values in history.history.items():
            assert np.isfinite(values).all(), (strategy, stage.name, name)
        if stage.loss == "erl":
            assert "fre" in history.history and history.history["fre"][0] > 0


def test_frozen_ren_with_zero_heads_leaves_stage_one_a_plain_memd():
    """Stage I of the MA strategies trains MEN/MDE while REN adds exactly nothing."""
    trainer = tiny_trainer("ERLNet")
    x = tf.random.uniform((1, 20, 28, 3), seed=1)
    ren = trainer.net.get_layer("ren")
    features = ren(trainer.net.get_layer("pad")(x))
    for feature in features if isinstance(features, (list, tuple)) else [features]:
        assert float(tf.reduce_max(tf.abs(feature))) == 0.0


def test_unknown_strategy_and_branch_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'MA_E'"):
        stages.strategy("MA_E")
    with pytest.raises(ValueError, match="unknown branches"):
        stages.Stage("X", ("men", "encoder"), "pre")
    trainer = tiny_trainer("MEMD")
    with pytest.raises(ValueError, match="needs an ERL-Net"):
        trainer.set_stage(stages.strategy("MA_A")[1])


class StopAt(keras.callbacks.Callback):
    """Interrupts training like Ctrl-C at a given batch of a given stage."""

    def __init__(self, stage_name, batch):
        super().__init__()
        self.stage_name, self.batch, self.seen = stage_name, batch, 0

    def on_train_batch_end(self, batch, logs=None):
        if self.model.stage.name == self.stage_name:
            self.seen += 1
            if self.seen == self.batch:
                raise KeyboardInterrupt


class EpochLog(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((self.model.stage.name, epoch))


def plans_for(strategy, steps):
    return [run.StagePlan(stage, steps) for stage in stages.strategy(strategy)]


def test_interrupted_run_resumes_where_it_stopped(tmp_path):
    plans = plans_for("MA_C", steps=5)  # 3 stages of 5 steps, checkpoint every 2: epochs of 2, 2, 1

    reference = EpochLog()
    run.Run(tiny_trainer(), str(tmp_path / "whole")).run(
        plans, tiny_data(), learning_rate=1e-3, checkpoint_every=2, callbacks=[reference], verbose=0
    )

    first = EpochLog()
    with pytest.raises(KeyboardInterrupt):
        run.Run(tiny_trainer(), str(tmp_path / "split")).run(
            plans, tiny_data(), learning_rate=1e-3, checkpoint_every=2,
            callbacks=[first, StopAt("II", batch=3)], verbose=0,
        )
    # Stopped inside stage II's second epoch: its first epoch was checkpointed.
    assert first.epochs == [("I", 0), ("I", 1), ("I", 2), ("II", 0)]

    resumed_trainer = tiny_trainer(seed=1)  # different initial weights: the checkpoint must win
    resumed = run.Run(resumed_trainer, str(tmp_path / "split"))
    second = EpochLog()
    resumed.run(plans, tiny_data(), learning_rate=1e-3, checkpoint_every=2, callbacks=[second], verbose=0)
    assert second.epochs == [("II", 1), ("II", 2), ("III", 0), ("III", 1), ("III", 2)]
    assert first.epochs + second.epochs == reference.epochs
    assert int(resumed.position.stage_index.numpy()) == 3
    assert int(resumed.position.stage_step.numpy()) == 0

    # A finished run does nothing more.
    again = EpochLog()
    run.Run(tiny_trainer(), str(tmp_path / "split")).run(
        plans, tiny_data(), learning_rate=1e-3, checkpoint_every=2, callbacks=[again], verbose=0
    )
    assert again.epochs == []


def test_resume_restores_weights_and_optimizer_state(tmp_path):
    plans = plans_for("MEMD", steps=4)
    trainer = tiny_trainer("MEMD")
    with pytest.raises(KeyboardInterrupt):
        run.Run(trainer, str(tmp_path)).run(
            plans, tiny_data(), learning_rate=1e-3, checkpoint_every=2, callbacks=[StopAt("I", batch=3)], verbose=0
        )
    # The checkpoint was written after step 2; the trainer has since done step 3.
    fresh = tiny_trainer("MEMD", seed=5)
    fresh_run = run.Run(fresh, str(tmp_path))
    fresh.reset_optimizer(1e-3)
    stage_index, stage_step = fresh_run.restore()
    assert (stage_index, stage_step) == (0, 2)
    assert int(fresh.optimizer.iterations.numpy()) == 2
    moments = [v.numpy() for v in fresh.optimizer.variables if "momentum" in v.path]
    assert moments and any(np.abs(m).sum() > 0 for m in moments)
    # Every weight comes from the checkpoint: two differently initialised
    # trainers restore to identical weights (dense-block convs included).
    other = tiny_trainer("MEMD", seed=9)
    other.reset_optimizer(1e-3)
    run.Run(other, str(tmp_path)).restore()
    assert len(fresh.net.weights) == len(other.net.weights) > 20
    for a, b in zip(fresh.net.weights, other.net.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
