"""Staged ERL-Net training: which branches each stage trains, checkpoints and resume."""

import re

import numpy as np
import pytest
import tensorflow as tf
import keras

from erlrestore.models import erlnet, memd
from erlrestore.models.presets import TINY_MEMD as TINY
from erlrestore.training import experiment, inputs, run, strategies
from erlrestore.training.erl_trainer import StagedTrainer


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


@pytest.mark.parametrize("strategy", sorted(strategies.STRATEGIES))
def test_each_stage_updates_exactly_its_branches(strategy):
    trainer = tiny_trainer("MEMD" if strategy == "MEMD" else "ERLNet")
    data = tiny_data()
    for stage in strategies.strategy(strategy):
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


def test_frozen_ren_with_zero_heads_leaves_stage_one_a_plain_memd(tiny_memd_config):
    """Stage I of the MA strategies trains MEN/MDE while REN stays frozen and adds exactly nothing."""
    trainer = tiny_trainer("ERLNet")
    stage_one = strategies.strategy("MA_D")[0]
    assert all(strategies.strategy(name)[0] == stage_one for name in ("MA_A", "MA_B", "MA_C"))
    trainer.set_stage(stage_one)
    trainer.reset_optimizer(1e-3)
    before = branch_weights(trainer)
    # Two steps: the zero-initialised last conv passes no gradient upstream on the first.
    trainer.fit(tiny_data(), steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)
    changed = changed_branches(before, branch_weights(trainer))
    assert "ren" not in changed and {"men", "mde"} <= changed
    x = tf.random.uniform((1, 20, 28, 3), seed=1)
    features = trainer.net.get_layer("ren")(trainer.net.get_layer("pad")(x))
    for feature in features if isinstance(features, (list, tuple)) else [features]:
        assert float(tf.reduce_max(tf.abs(feature))) == 0.0
    # The trained ERL-Net computes what a MEMD with its (trained) MEN and MDE computes.
    plain = memd.build_memd(tiny_memd_config("MEMD"))
    for branch in ("men", "mde"):
        plain.get_layer(branch).set_weights(trainer.net.get_layer(branch).get_weights())
    np.testing.assert_allclose(trainer.net(x), plain(x), rtol=0, atol=1e-6)


def test_unknown_strategy_and_branch_are_clear_errors():
    with pytest.raises(ValueError, match="unknown strategy 'MA_E'"):
        strategies.strategy("MA_E")
    with pytest.raises(ValueError, match="unknown branches"):
        strategies.Stage("X", ("men", "encoder"), "pre")
    trainer = tiny_trainer("MEMD")
    with pytest.raises(ValueError, match="needs an ERL-Net"):
        trainer.set_stage(strategies.strategy("MA_A")[1])


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
    return [run.StagePlan(stage, steps) for stage in strategies.strategy(strategy)]


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


# --- stage budget: one length for each stage, or split over the stages -------

def _count(strategy):
    return len(strategies.strategy(strategy))


@pytest.mark.parametrize("strategy,expected", [("MA_D", [10, 10, 10]), ("DT", [10, 10]), ("MEMD", [10])])
def test_stage_budget_each_gives_every_stage_the_value(strategy, expected):
    assert experiment.stage_lengths(_count(strategy), stage_steps=(10,)) == expected
    assert experiment.stage_lengths(_count(strategy), stage_steps=(10,), budget="each") == expected
    # 2.5 epochs of 7 images at batch 2 = ceil(8.75) = 9 steps, for each stage.
    assert experiment.stage_lengths(_count(strategy), stage_epochs=(2.5,), images=7, batch_size=2) == \
        [9] * _count(strategy)


@pytest.mark.parametrize("strategy,expected", [("MA_D", [4, 3, 3]), ("DT", [5, 5]), ("MEMD", [10])])
def test_stage_budget_split_divides_the_steps_exactly(strategy, expected):
    lengths = experiment.stage_lengths(_count(strategy), stage_steps=(10,), budget="split")
    assert lengths == expected and sum(lengths) == 10


@pytest.mark.parametrize("strategy,expected", [("MA_D", [4, 3, 3]), ("DT", [10, 10]), ("MEMD", [10]),
                                               ("MA_A", [5, 5])])
def test_stage_budget_split_leaves_out_the_clean_to_clean_only_stage(strategy, expected):
    # DT's C2C stage trains no restoration branch: the whole net gets the full total, as MEMD does, and the
    # C2C stage as many steps as the first restoration stage. MA_* train the C2C net inside stage I.
    stage_list = strategies.strategy(strategy)
    assert experiment.auxiliary_stages(stage_list) == ((0,) if strategy == "DT" else ())
    lengths = experiment.stage_lengths(len(stage_list), stage_steps=(10,), budget="split",
                                       auxiliary=experiment.auxiliary_stages(stage_list))
    assert lengths == expected


@pytest.mark.parametrize("strategy,expected", [("MA_D", [3, 3, 3]), ("DT", [5, 4]), ("MEMD", [9])])
def test_stage_budget_split_divides_the_epochs_as_steps(strategy, expected):
    # 2.5 epochs of 7 images at batch 2: 9 steps in all, earlier stages take the remainder.
    lengths = experiment.stage_lengths(_count(strategy), stage_epochs=(2.5,), budget="split", images=7, batch_size=2)
    assert lengths == expected and sum(lengths) == 9
    # The paper's 400 epochs of Rain100H's 1800 pairs at batch 1, over MA_D's three stages.
    assert experiment.stage_lengths(3, stage_epochs=(400.0,), budget="split", images=1800) == [240_000] * 3


def test_stage_budget_one_value_per_stage():
    assert experiment.stage_lengths(3, stage_steps=(1, 2, 3)) == [1, 2, 3]
    assert experiment.stage_lengths(2, stage_epochs=(1.0, 2.0), images=4, batch_size=2) == [2, 4]
    with pytest.raises(ValueError, match=r"--stage_budget=split divides one total over the stages, but 3 stage "
                                         r"lengths were given \(1,2,3\); give one total or use --stage_budget=each"):
        experiment.stage_lengths(3, stage_steps=(1, 2, 3), budget="split")
    with pytest.raises(ValueError, match="cannot divide 2 steps over 3 stages"):
        experiment.stage_lengths(3, stage_steps=(2,), budget="split")
    with pytest.raises(ValueError, match=r"cannot divide 1 steps \(0.5 epochs of 2 images\) over 2 stages"):
        experiment.stage_lengths(2, stage_epochs=(0.5,), budget="split", images=2, batch_size=1)
    with pytest.raises(ValueError, match="unknown stage budget 'half'"):
        experiment.stage_lengths(1, stage_steps=(2,), budget="half")
    with pytest.raises(ValueError, match="give 1 or 3 stage lengths, got 2"):
        experiment.stage_lengths(3, stage_steps=(1, 2))


def _settings(tmp_path, **overrides):
    data = inputs.DataSettings(procedural=2, crop_size=16, batch_size=1)
    fields = dict(model_dir=str(tmp_path), model="ERLNet", strategy="MA_D", stage_steps=(6,), data=data, **TINY)
    fields.update(overrides)
    return experiment.TrainSettings(**fields)


def test_check_settings_applies_the_stage_budget(tmp_path):
    assert len(experiment.check_settings(_settings(tmp_path, stage_budget="split"))) == 3
    with pytest.raises(ValueError, match="--stage_budget=split divides one total"):
        experiment.check_settings(_settings(tmp_path, stage_budget="split", stage_steps=(2, 2, 2)))
    with pytest.raises(ValueError, match="--stage_budget=split divides one total"):
        experiment.check_settings(_settings(tmp_path, stage_budget="split", stage_steps=(),
                                            stage_epochs=(1.0, 1.0, 1.0)))
    with pytest.raises(ValueError, match="cannot divide 2 steps over 3 stages"):
        experiment.check_settings(_settings(tmp_path, stage_budget="split", stage_steps=(2,)))
    with pytest.raises(ValueError, match="unknown stage budget 'all'"):
        experiment.check_settings(_settings(tmp_path, stage_budget="all"))
    with pytest.raises(ValueError, match="unknown L_fre reduction 'sum'"):
        experiment.check_settings(_settings(tmp_path, fre_reduction="sum"))


def test_stage_budget_and_fre_reduction_are_part_of_a_runs_identity(tmp_path):
    import json

    settings = _settings(tmp_path)
    experiment._record_settings(settings)
    path = tmp_path / "run_config.json"
    stored = json.loads(path.read_text())
    assert (stored["stage_budget"], stored["fre_reduction"]) == ("each", "mean_sum")
    with pytest.raises(ValueError, match="stage_budget: 'each' -> 'split'"):
        experiment._record_settings(_settings(tmp_path, stage_budget="split"))
    with pytest.raises(ValueError, match="fre_reduction: 'mean_sum' -> 'mean_mean'"):
        experiment._record_settings(_settings(tmp_path, fre_reduction="mean_mean"))
    # A run recorded before these settings existed resumes with their defaults ...
    del stored["stage_budget"], stored["fre_reduction"]
    path.write_text(json.dumps(stored))
    experiment._record_settings(settings)
    # ... and is refused with others.
    with pytest.raises(ValueError, match="stage_budget: 'each' -> 'split'"):
        experiment._record_settings(_settings(tmp_path, stage_budget="split"))
    # A generator run does not record the ERL-Net-only fre_reduction.
    gan_dir = tmp_path / "gan"
    gan_dir.mkdir()
    experiment._record_settings(_settings(gan_dir, model="UNet", strategy="GAN", levels=2))
    assert "fre_reduction" not in json.loads((gan_dir / "run_config.json").read_text())


# --- L_fre reduction ----------------------------------------------------------


def test_fre_reductions_differ_by_the_number_of_levels():
    from erlrestore import losses

    rng = np.random.default_rng(0)
    features = [rng.normal(size=(1, 8 // 2**i, 8 // 2**i, 4 * 2**i)).astype("float32") for i in range(3)]
    targets = [rng.normal(size=f.shape).astype("float32") for f in features]
    per_level = [np.mean(np.abs(f - t)) for f, t in zip(features, targets)]
    mean_sum = float(losses.feature_loss(features, targets))
    assert mean_sum == pytest.approx(sum(per_level), rel=1e-6)
    assert float(losses.feature_loss(features, targets, reduction="mean_sum")) == mean_sum
    assert float(losses.feature_loss(features, targets, reduction="mean_mean")) == pytest.approx(mean_sum / 3, rel=1e-6)
    # One level (CLGD): the two agree.
    assert float(losses.feature_loss(features[2:], targets[2:], reduction="mean_mean")) == pytest.approx(per_level[2])
    with pytest.raises(ValueError, match="unknown L_fre reduction 'sum_sum'"):
        losses.feature_loss(features, targets, reduction="sum_sum")


def test_trainer_fre_reduction_scales_the_mlgd_feature_loss_by_its_levels():
    data = next(iter(tiny_data()))
    stage = strategies.strategy("MA_D")[1]  # REN with L_ERL
    values = {}
    for reduction in ("mean_sum", "mean_mean"):
        trainer = tiny_trainer("ERLNet", "MLGD", seed=3)
        trainer.fre_reduction = reduction
        trainer.set_stage(stage)
        values[reduction] = {k: float(v) for k, v in trainer._compute_losses(*data)[1].items()}
    assert values["mean_sum"]["fre"] > 0
    levels = 3  # depth 2: two skips and the bottleneck
    assert values["mean_mean"]["fre"] == pytest.approx(values["mean_sum"]["fre"] / levels, rel=1e-5)
    assert values["mean_mean"]["pre"] == pytest.approx(values["mean_sum"]["pre"], rel=1e-6)
    with pytest.raises(ValueError, match="unknown L_fre reduction"):
        StagedTrainer(trainer.net, trainer.c2c, fre_reduction="sum")


# --- Settings declared once (erlrestore.training.options) ------------------------------------------------

# What run_config.json recorded before the settings were declared once (the hand-kept field lists); a run
# resumed with the same command must find the same keys.
_COMMON_IDENTITY = {"model", "strategy", "init_weights", "stage_steps", "stage_epochs", "stage_budget", "lr_schedule",
                    "batch_size"}
_ERL_IDENTITY = {"entanglement", "depth", "base_filters", "dense_layers", "growth_rate", "norm", "global_residual",
                 "fre_reduction"}
_GAN_IDENTITY = {"levels", "gen_filters", "gen_norm", "dropout", "info_accum_layers", "info_accum_growth",
                 "info_accum_positions", "subpixel", "gan_loss", "l1_weight", "d_filters", "d_layers", "weight_init",
                 "pixel_loss", "gen_residual"}


def test_every_setting_is_declared_with_its_flag():
    import dataclasses

    for cls in (experiment.TrainSettings, inputs.DataSettings):
        for field in dataclasses.fields(cls):
            assert "flag" in field.metadata or "group" in field.metadata, (cls.__name__, field.name)
    # The flags' defaults are the dataclass defaults.
    assert experiment.settings_from_argv(["--model_dir=x"]) == experiment.TrainSettings(model_dir="x")


def test_run_identity_keeps_the_recorded_fields_of_each_family(tmp_path):
    erl = experiment.run_identity(_settings(tmp_path))
    gan = experiment.run_identity(_settings(tmp_path, model="UNet", strategy="", levels=2))
    assert set(erl) == _COMMON_IDENTITY | _ERL_IDENTITY
    assert set(gan) == _COMMON_IDENTITY | _GAN_IDENTITY
    assert (gan["strategy"], gan["lr_schedule"], gan["info_accum_positions"]) == ("GAN", "linear_decay", [0])
    assert (erl["strategy"], erl["lr_schedule"], erl["batch_size"]) == ("MA_D", "plateau", 1)
    assert experiment.options.absent_values(experiment.TrainSettings) == {
        "stage_budget": "each", "fre_reduction": "mean_sum", "weight_init": "keras", "pixel_loss": "l1",
        "lr_schedule": "plateau", "gen_residual": False, "init_weights": ""}


def test_pairs_csv_lists_the_training_and_validation_pairs(tmp_path):
    from erlrestore.data import image_files

    rng = np.random.default_rng(0)
    for name in ("shot1", "shot2", "clean"):
        image_files.write_image(tmp_path / "img" / f"{name}.png", rng.random((20, 24, 3)).astype(np.float32))
    (tmp_path / "train.csv").write_text("input,target\nimg/shot1.png,img/clean.png\nimg/shot2.png,img/clean.png\n")
    (tmp_path / "val.csv").write_text("img/shot2.png,img/clean.png\n")
    settings = experiment.settings_from_argv([f"--pairs={tmp_path / 'train.csv'}", "--crop_size=16",
                                              f"--val_pairs={tmp_path / 'val.csv'}", "--model_dir=r"]).data
    make_dataset, images = inputs.training_data(settings, str(tmp_path))
    assert images == 2
    x, y = next(iter(make_dataset()))
    assert x.shape == y.shape == (1, 16, 16, 3)
    _, val_pairs = inputs.validation_data(settings)
    assert [(p.input_path, p.target_path) for p in val_pairs] == [
        (str(tmp_path / "img" / "shot2.png"), str(tmp_path / "img" / "clean.png"))]
    # A list is one source: not with a folder of the same set, nor with another source.
    for data, message in [
        (inputs.DataSettings(pairs=str(tmp_path / "train.csv"), train_target_dir="x"),
         "--pairs=.*train.csv lists the pairs itself; drop --train_input_dir and --train_target_dir"),
        (inputs.DataSettings(pairs=str(tmp_path / "train.csv"), train_input_dir="x"),
         "give exactly one training source: .*got train_input_dir, pairs"),
    ]:
        with pytest.raises(ValueError, match=message):
            inputs.training_data(data, str(tmp_path))
    with pytest.raises(ValueError, match="--val_pairs=.*val.csv lists the pairs itself; drop --val_input_dir"):
        inputs.validation_data(inputs.DataSettings(val_pairs=str(tmp_path / "val.csv"), val_input_dir="x"))
    generator = experiment.settings_from_argv([f"--pairs={tmp_path / 'train.csv'}", "--d_pretrain_input_dir=pre",
                                               "--model=UNet", "--model_dir=r"])
    pretrain = generator.model_family.own_stage_data(generator)["d_pretrain"]
    assert (pretrain.train_input_dir, pretrain.pairs) == ("pre", "")


def test_settings_from_argv_parses_like_the_command_line(tmp_path):
    import dataclasses

    from absl import flags

    flagfile = tmp_path / "run.flags"
    flagfile.write_text("--model=UNet\n--levels=3\n--stage_steps=4,5\n--crop_size=320\n")
    settings = experiment.settings_from_argv([f"--flagfile={flagfile}", "--crop_size=64", "--model_dir=r",
                                              "--verbose=2", "--devices=/cpu:0,/cpu:1", "--stage_epochs=",
                                              "--d_pretrain_input_dir=pre", "--noaugment"])
    assert (settings.model, settings.levels, settings.stage_steps, settings.data.crop_size) == ("UNet", 3, (4, 5), 64)
    assert (settings.verbose, settings.devices, settings.model_dir) == (2, ("/cpu:0", "/cpu:1"), "r")
    # The discriminator pre-training's data: the generative family's, none without --d_pretrain_input_dir, and
    # none for the ERL-Net family (the flag is the other family's).
    assert settings.model_family.own_stage_data(settings) == {
        "d_pretrain": inputs.DataSettings(train_input_dir="pre", crop_size=64)}
    assert settings.model_family.own_stage_data(dataclasses.replace(settings, d_pretrain_input_dir="")) == {}
    erlnet = dataclasses.replace(settings, model="ERLNet")
    assert erlnet.model_family.own_stage_data(erlnet) == {}
    # Bounds, choices and required flags are the command line's.
    for arguments, message in [(["--crop_size=4"], "flag --crop_size=4: 4 is not integer >= 8"),
                               (["--gan_loss=wgan"], "flag --gan_loss=wgan: value should be one of <bce|lsgan>"),
                               (["--dropout=1"], "flag --dropout=1: 1.0 is not a number in the range [0, 0.99]"),
                               (["--levels=9"], "flag --levels=9: 9 is not an integer in the range [1, 8]")]:
        with pytest.raises(flags.IllegalFlagValueError, match=re.escape(message)):
            experiment.settings_from_argv(["--model_dir=r", *arguments])
    with pytest.raises(flags.IllegalFlagValueError, match="--model_dir must have a value"):
        experiment.settings_from_argv(["--model=MEMD"])
    with pytest.raises(flags.UnrecognizedFlagError):
        experiment.settings_from_argv(["--model_dir=r", "--gan_los=lsgan"])
    with pytest.raises(ValueError, match="--stage_epochs takes comma-separated floats, got 1,x"):
        experiment.settings_from_argv(["--model_dir=r", "--stage_epochs=1,x"])
    # The process's own flags are untouched.
    assert "crop_size" not in flags.FLAGS


def test_options_make_flags_settings_and_identity_from_one_declaration():
    import dataclasses

    from absl import flags

    from erlrestore.training import options

    @dataclasses.dataclass(frozen=True)
    class Inner:
        width: int = options.integer(3, "Width.", lower=1, upper=9, identity=True, family="a")

    @dataclasses.dataclass(frozen=True)
    class Outer:
        name: str = options.text(None, "Name.", required=True)
        mode: str = options.choice("x", ["x", "y"], "Mode.", identity=True, absent_means="x")
        rate: float = options.number(0.5, "Rate.", lower=0, family="b")
        sizes: tuple = options.values((1, 2), int, "Sizes.", identity=True, family="b")
        on: bool = options.boolean(True, "On.")
        inner: Inner = options.group(Inner)

    flag_values = flags.FlagValues()
    options.define_flags(Outer, flag_values, module_name=__name__)
    assert sorted(flag_values) == ["mode", "name", "on", "rate", "sizes", "width"]  # the group's flags are flat
    assert sorted(flag.name for flag in flag_values.get_flags_for_module(__name__)) == [
        "mode", "name", "on", "rate", "sizes", "width"]
    assert (flag_values["sizes"].default, flag_values["width"].help, flag_values["name"].default) == (
        ["1", "2"], "Width.", None)
    flag_values(["prog", "--name=n", "--sizes=4,5,6", "--width=9", "--noon"])
    settings = options.from_flags(Outer, flag_values)
    assert settings == Outer(name="n", sizes=(4, 5, 6), on=False, inner=Inner(width=9))
    assert options.identity(settings, "a") == {"mode": "x", "width": 9}
    assert options.identity(settings, "b") == {"mode": "x", "sizes": (4, 5, 6)}
    assert options.absent_values(Outer) == {"mode": "x"}
    with pytest.raises(flags.IllegalFlagValueError, match=re.escape("10 is not an integer in the range [1, 9]")):
        options.from_argv(Outer, ["--name=n", "--width=10"])
    with pytest.raises(TypeError):
        Outer()  # a required setting has no default
    with pytest.raises(ValueError, match="absent_means is the value of an identity setting"):
        options.integer(1, "Not recorded.", absent_means=0)


# --- best.keras (experiment.BestModel) ------------------------------------------------


def _one_conv_net():
    image = keras.Input((None, None, 3))
    return keras.Model(image, keras.layers.Conv2D(3, 1, name="conv")(image), name="one_conv")


def test_best_model_is_replaced_only_by_a_better_validation_score(tmp_path):
    import json
    import types

    net = _one_conv_net()
    settings = types.SimpleNamespace(model_dir=str(tmp_path))

    def validate(callback, interval, kernel_value, score):
        net.get_layer("conv").kernel.assign(np.full((1, 1, 3, 3), kernel_value, np.float32))
        callback.on_epoch_end(interval - 1, {"val_psnr_y": score, "val_ssim_y": 0.5})

    def kept():
        kernel = keras.models.load_model(tmp_path / "best.keras").get_layer("conv").kernel.numpy()
        return json.loads((tmp_path / "best.json").read_text())["val_psnr_y"], float(np.unique(kernel).item())

    callback = experiment.BestModel(settings, {"final.keras": net})
    callback.set_model(types.SimpleNamespace(stage=types.SimpleNamespace(name="I")))
    validate(callback, 1, 1.0, 20.0)
    assert kept() == (20.0, 1.0)
    validate(callback, 2, 2.0, 25.0)  # better: replaces
    assert kept() == (25.0, 2.0)
    validate(callback, 3, 3.0, 22.0)  # worse: kept
    validate(callback, 4, 4.0, 25.0)  # only as good: kept
    callback.on_epoch_end(4, {"loss": 1.0})  # no validation this interval
    assert kept() == (25.0, 2.0)
    assert json.loads((tmp_path / "best.json").read_text()) == {"val_psnr_y": 25.0, "val_ssim_y": 0.5,
                                                                "stage": "I", "interval": 2}
    # A resumed run (a new process, so a new callback) compares against the record on disk.
    resumed = experiment.BestModel(settings, {"final.keras": net})
    validate(resumed, 6, 6.0, 24.0)
    assert kept() == (25.0, 2.0)
    validate(resumed, 7, 7.0, 26.0)
    assert kept() == (26.0, 7.0)


def _val_pairs(folder, count=2, size=24):
    from erlrestore.data import image_files

    rng = np.random.default_rng(5)
    for i in range(1, count + 1):
        clean = rng.random((size, size, 3))
        image_files.write_image(folder / "norain" / f"norain-{i}.png", clean)
        image_files.write_image(folder / "rain" / f"rain-{i}.png", np.clip(clean + 0.2, 0, 1))
    return folder


def test_best_keras_survives_a_resume_whose_next_validation_is_worse(tmp_path):
    import dataclasses
    import json

    data = inputs.DataSettings(procedural=2, crop_size=16, batch_size=1,
                               val_input_dir=str(_val_pairs(tmp_path / "val")))
    settings = _settings(tmp_path / "run", model="MEMD", strategy="", stage_steps=(4,), checkpoint_every=2,
                         stop_after=2, data=data)
    assert experiment.train(settings) is None  # stopped after its first checkpoint interval (validated)
    record_path = tmp_path / "run" / "best.json"
    first = json.loads(record_path.read_text())
    assert first["interval"] == 1
    # Say the first interval scored far higher than the resumed run's next validation can.
    record = dict(first, val_psnr_y=first["val_psnr_y"] + 100.0)
    record_path.write_text(json.dumps(record))
    kept = (tmp_path / "run" / "best.keras").read_bytes()
    kept_weights = keras.models.load_model(tmp_path / "run" / "best.keras").get_weights()

    assert experiment.train(dataclasses.replace(settings, stop_after=0)) is not None  # resumed to the end
    final_weights = keras.models.load_model(tmp_path / "run" / "final.keras").get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(kept_weights, final_weights))  # it did train on
    assert json.loads(record_path.read_text()) == record
    assert (tmp_path / "run" / "best.keras").read_bytes() == kept


# --- one trainer per model folder (folder_lock) -----------------------------------------


def test_a_second_trainer_on_the_same_model_dir_is_refused_while_the_first_trains(tmp_path, monkeypatch):
    import os

    from erlrestore.training import folder_lock

    settings = _settings(tmp_path, model="MEMD", strategy="", stage_steps=(3,), checkpoint_every=1)
    seen = []

    class SecondTrainer(keras.callbacks.Callback):
        """After the first training's first step: is the folder still locked, and is a second train() refused?"""

        def on_train_batch_end(self, batch, logs=None):
            if seen:
                return
            try:
                with folder_lock.locked(str(tmp_path)):
                    seen.append("not locked")
                    return  # never start a nested training
            except folder_lock.FolderBusyError:
                pass
            try:
                experiment.train(settings)
                seen.append("second train() ran")
            except folder_lock.FolderBusyError as error:
                seen.append(str(error))

    real_run = run.Run.run

    def run_with_a_second_trainer(self, plans, dataset, **kwargs):
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), SecondTrainer()]
        return real_run(self, plans, dataset, **kwargs)

    monkeypatch.setattr(run.Run, "run", run_with_a_second_trainer)
    assert experiment.train(settings) == str(tmp_path / "final.keras")
    assert len(seen) == 1, seen
    assert seen[0].startswith(f"{tmp_path} is in use by another training run (pid {os.getpid()} on"), seen
    with folder_lock.locked(str(tmp_path)):  # freed once the first one has finished
        pass
