"""Model families as registered objects (erlrestore.training.families), a toy family trained by erlrestore-train."""

import dataclasses
import json
import os
import pathlib
import subprocess
import sys

import keras
import pytest

import family_testing
from erlrestore.models import presets
from erlrestore.training import erl_family, experiment, families, gan_family, options, strategies

REPO = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent


@pytest.fixture
def registry(monkeypatch):
    """The family table, restored after the test (registrations made in it do not leak)."""
    families.all_families()  # the built-in families first
    monkeypatch.setattr(families, "_TABLE", dict(families._TABLE))
    return families


def test_builtin_families_own_the_models_and_strategies_in_help_order():
    assert [family.name for family in families.all_families()] == ["erl", "gan"]
    assert families.model_names() == ("MEMD", "MEMD-", "MEMD--", "ERLNet", "UNet", "EnDec")
    assert families.strategy_names() == (*strategies.STRATEGIES, *strategies.GAN_STRATEGIES)
    assert families.of_model("MEMD--") is erl_family.FAMILY and families.of_model("EnDec") is gan_family.FAMILY
    assert families.get("gan") is gan_family.FAMILY
    with pytest.raises(ValueError, match="unknown model 'Toy'; choose one of MEMD, MEMD-, MEMD--, ERLNet, UNet"):
        families.of_model("Toy")
    with pytest.raises(ValueError, match="unknown model family 'toy'; registered: erl, gan"):
        families.get("toy")
    # The defaults each family stands for.
    rows = {}
    for model in families.model_names():
        settings = experiment.TrainSettings(model_dir="x", model=model, stage_steps=(1,))
        rows[model] = (settings.family, settings.resolved_strategy(), settings.resolved_learning_rate(),
                       settings.resolved_lr_schedule(), settings.model_family.plateau_monitor)
    assert rows == {
        "MEMD": ("erl", "MEMD", 4e-4, "plateau", "loss"), "MEMD-": ("erl", "MEMD", 4e-4, "plateau", "loss"),
        "MEMD--": ("erl", "MEMD", 4e-4, "plateau", "loss"), "ERLNet": ("erl", "MA_D", 4e-4, "plateau", "loss"),
        "UNet": ("gan", "GAN", 2e-4, "linear_decay", "g_loss"), "EnDec": ("gan", "GAN", 2e-4, "linear_decay", "g_loss"),
    }


def test_each_family_carries_its_settings_group_tagged_with_its_name():
    for family in families.all_families():
        names = {field.name for field, _ in options.declared(family.settings)}
        assert names and all(flag.family == family.name for _, flag in options.declared(family.settings))
        assert issubclass(experiment.TrainSettings, family.settings)
        identity = experiment.run_identity(experiment.TrainSettings(model_dir="x", model=next(iter(family.models)),
                                                                    stage_steps=(1,)))
        others = {field.name for other in families.all_families() if other is not family
                  for field, _ in options.declared(other.settings)}
        assert not others & set(identity), family.name  # a run records only its own family's settings


def test_presets_map_a_name_to_its_family_and_the_familys_tiny_variant():
    assert {name: preset.family.name for name, preset in presets.PRESETS.items()} == {
        "memd": "erl", "erlnet": "erl", "pix2pix": "gan", "unet5_infoaccum15_subpix": "gan"}
    assert presets.settings_fields("erlnet", tiny=True) == {
        "model": "ERLNet", "strategy": "MA_D", "entanglement": "MLGD", **erl_family.TINY_FIELDS}
    assert presets.settings_fields("unet5_infoaccum15_subpix", tiny=True) == {
        "model": "UNet", "levels": 2, "gen_filters": 4, "d_filters": 4, "info_accum_layers": 2,
        "info_accum_growth": 2, "subpixel": True, "gan_loss": "lsgan", "l1_weight": 100.0}
    assert presets.TINY_MEMD == {"depth": 2, "base_filters": 4, "dense_layers": 2, "growth_rate": 4}


def test_register_refuses_a_family_that_clashes(registry):
    toy = family_testing.FAMILY
    for family, message in [
        (dataclasses.replace(toy, name="gan"), "model family 'gan' is already registered"),
        (dataclasses.replace(toy, models={"UNet": "FIT"}), "model 'UNet' of family 'toy' already belongs to family 'gan'"),
        (dataclasses.replace(toy, models={"Toy": "GAN"}), "default strategy 'GAN' is not one of its strategies"),
        (dataclasses.replace(toy, models={}), "model family 'toy' owns no models"),
        (dataclasses.replace(toy, settings=erl_family.ERLSettings), "not declared with family='toy': entanglement"),
    ]:
        with pytest.raises(ValueError, match=message):
            registry.register(family)
    assert registry.model_names() == ("MEMD", "MEMD-", "MEMD--", "ERLNet", "UNet", "EnDec")


def test_a_registered_family_is_a_choice_of_the_training_flags(registry):
    registry.register(family_testing.FAMILY)
    assert registry.model_names()[-1] == "Toy" and registry.strategy_names()[-1] == "FIT"
    settings = experiment.settings_from_argv(["--model=Toy", "--stage_steps=2", "--model_dir=x"])
    assert [stage.name for stage in experiment.check_settings(settings)] == ["fit"]
    assert (settings.family, settings.resolved_strategy(), settings.resolved_learning_rate(),
            settings.resolved_lr_schedule()) == ("toy", "FIT", 1e-3, "constant")
    identity = experiment.run_identity(settings)
    assert (identity["model"], identity["strategy"]) == ("Toy", "FIT")
    assert "depth" not in identity and "levels" not in identity  # no family's settings but its own (none)
    with pytest.raises(ValueError, match="strategy MA_D is not for Toy; choose one of FIT"):
        experiment.check_settings(dataclasses.replace(settings, strategy="MA_D"))
    # Without the family defaults: its FLOPs are the network's forward and backward, its tiny variant itself.
    networks = family_testing.FAMILY.build_networks(settings)
    forward = family_testing.FAMILY.count_forward(networks, 8)
    assert forward == {"net": 2 * 3 * 3 * 3 * 3 * 8 * 8}
    assert family_testing.FAMILY.count_step(None, forward) == (3 * forward["net"], forward["net"])
    assert family_testing.FAMILY.tiny_fields({"model": "Toy"}) == {"model": "Toy"}


@pytest.mark.slow  # runs erlrestore-train as a process
def test_erlrestore_train_trains_a_registered_toy_family(tmp_path):
    """The real command (erlrestore.cli.train.run) with the toy family registered first, as a plug-in would."""
    model_dir = tmp_path / "toy"
    launcher = ("import family_testing\nfrom erlrestore.training import families\n"
                "families.register(family_testing.FAMILY)\nfrom erlrestore.cli import train\ntrain.run()\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", launcher, "--model=Toy", "--procedural=2", "--crop_size=16", "--batch_size=1",
         "--stage_steps=2", "--checkpoint_every=2", "--precision=float32", "--verbose=0",
         f"--model_dir={model_dir}"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == f"model: {model_dir / 'final.keras'}"
    model = keras.models.load_model(model_dir / "final.keras", compile=False)
    assert model.name == "toy" and [layer.name for layer in model.layers][-1] == "conv"
    recorded = json.loads((model_dir / "run_config.json").read_text())
    assert (recorded["model"], recorded["strategy"], recorded["lr_schedule"]) == ("Toy", "FIT", "constant")
    assert "depth" not in recorded and "levels" not in recorded
