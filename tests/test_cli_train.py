"""erlrestore-train end to end on tiny generated data, and every flagfile."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # runs erlrestore-train and the other commands as processes

REPO = pathlib.Path(__file__).resolve().parent.parent

# The paper flagfiles, one per experiment. flags/reproduce/ holds scale overlays of erlrestore-reproduce, stacked
# after these (tests/test_reproduce.py); flags/pretrained/ the recipes of the shipped models (tested below);
# flags/tiny/ one tiny overlay per model family, stacked after these (tiny()).
FLAGFILES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "flags").glob("*.flags"))


def tiny(flagfile):
    """The arguments of a paper flagfile's tiny variant: its family's overlay stacked after it."""
    family = "erlnet" if flagfile.rsplit("/", 1)[-1].startswith(("memd", "erlnet_")) else "gan"
    return [f"--flagfile={flagfile}", f"--flagfile=flags/tiny/{family}.flags"]


def run_train(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.train", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


@pytest.fixture
def in_repo(monkeypatch):
    """Flagfiles name each other relative to the repository root."""
    monkeypatch.chdir(REPO)


def parse(arguments):
    """erlrestore-train's settings for the arguments, parsed in this process."""
    from erlrestore.training import experiment

    return experiment.settings_from_argv([*arguments, "--model_dir=unused"])


def variants(flagfiles):
    """{label: arguments} of each flagfile and of its tiny variant (label ``<flagfile>+tiny``)."""
    return {label: arguments for flagfile in flagfiles
            for label, arguments in ((flagfile, [f"--flagfile={flagfile}"]), (flagfile + "+tiny", tiny(flagfile)))}


def test_every_flagfile_parses_into_valid_settings(in_repo):
    from erlrestore.training import experiment

    # ERL-Net: 3 MEMD baselines + MEMD with a global residual + 10 Table 3 rows; rethinking: 5 Table II
    # rows, the pre-training remedy and 5 Table III autoencoders; each with a tiny variant (two overlays).
    assert len(FLAGFILES) == 14 + 11
    assert sorted(p.name for p in (REPO / "flags" / "tiny").iterdir()) == ["erlnet.flags", "gan.flags"]
    rows = {}
    for label, arguments in variants(FLAGFILES).items():
        settings = parse(arguments)
        stage_list = experiment.check_settings(settings)
        rows[label] = (settings.model, settings.resolved_strategy(), settings.entanglement, len(stage_list),
                       settings.depth, settings.data.crop_size, settings.stage_epochs, settings.stage_steps,
                       settings.levels, settings.gan_loss, settings.info_accum_layers, settings.subpixel,
                       settings.resolved_learning_rate())
    assert len(rows) == 2 * len(FLAGFILES)
    assert rows["flags/erlnet_ma_d_mlgd.flags"][:4] == ("ERLNet", "MA_D", "MLGD", 3)
    assert rows["flags/erlnet_dt_clgd.flags"][:4] == ("ERLNet", "DT", "CLGD", 2)
    assert rows["flags/memd_minus_minus.flags"][:2] == ("MEMD--", "MEMD")
    # Paper settings: 320 crops, 400 epochs a stage; tiny variants: 2 steps.
    assert rows["flags/memd.flags"][5:8] == (320, (400.0,), ())
    assert rows["flags/memd.flags+tiny"][4:8] == (2, 32, (), (2,))
    assert rows["flags/pix2pix_unet8.flags"][0:2] == ("UNet", "GAN")
    assert rows["flags/pix2pix_unet8.flags"][5:] == (256, (200.0,), (), 8, "bce", 0, False, 0.0002)
    assert rows["flags/unet5_lsgan_infoaccum15_subpix.flags"][8:12] == (5, "lsgan", 15, True)
    assert rows["flags/unet5_lsgan_infoaccum15_subpix_recon_pretrain.flags"][1:4:2] == ("RECON_GAN", 2)
    assert rows["flags/recon_endec5.flags"][0:2] == ("EnDec", "RECON")
    for flagfile in FLAGFILES:
        # A tiny variant trains the paper row's model with its strategy and stages, its generator's levels,
        # adversarial loss and InfoAccum, in 2 steps a stage on 32 px crops.
        paper, small = rows[flagfile], rows[flagfile + "+tiny"]
        assert small[:4] == paper[:4] and small[8:] == paper[8:], flagfile
        assert small[5:8] == (32, (), (2,)), flagfile


# The ERL-Net paper's rows (Tables 2 and 3).
PAPER_ERL_FLAGFILES = [f for f in FLAGFILES if f.rsplit("/", 1)[-1].startswith(("memd", "erlnet_"))
                       and "global_residual" not in f]


def test_paper_erlnet_flagfiles_have_no_global_residual(in_repo):
    """The paper's decoder generates the image; only memd_global_residual.flags adds the input back."""
    assert len(PAPER_ERL_FLAGFILES) == 13
    rows = {label: parse(arguments) for label, arguments in variants(PAPER_ERL_FLAGFILES).items()}
    extra = {label: parse(arguments) for label, arguments in variants(["flags/memd_global_residual.flags"]).items()}
    assert len(rows) == 2 * 13 and len(extra) == 2
    for label, settings in rows.items():
        # Paper flagfiles also keep today's stage budget (400 epochs for each stage) and L_fre reduction.
        assert (settings.global_residual, settings.stage_budget, settings.fre_reduction) == (
            False, "each", "mean_sum"), label
    for label, settings in extra.items():
        assert (settings.global_residual, settings.stage_budget, settings.fre_reduction) == (
            True, "each", "mean_sum"), label


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("run") / "erlnet"
    result = run_train(*tiny("flags/erlnet_ma_d_mlgd.flags"), f"--model_dir={model_dir}", "--verbose=0")
    return model_dir, result


def test_tiny_erlnet_run_writes_models_checkpoints_and_logs(trained_run):
    model_dir, result = trained_run
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == f"model: {model_dir / 'final.keras'}"
    assert (model_dir / "final.keras").is_file() and (model_dir / "c2c.keras").is_file()
    assert json.loads((model_dir / "run_config.json").read_text())["strategy"] == "MA_D"
    assert (model_dir / "checkpoints" / "checkpoint").is_file()
    logs = sorted(p.name for p in (model_dir / "logs").iterdir())
    assert logs == ["stage1_I", "stage2_II", "stage3_III"]

    import keras

    import erlrestore.layers  # noqa: F401  (registers the custom layers)

    model = keras.models.load_model(model_dir / "final.keras")
    assert {layer.name for layer in model.layers} >= {"men", "ren", "mde"}
    out = model(np.random.default_rng(0).random((1, 21, 35, 3)).astype("float32"))
    assert out.shape == (1, 21, 35, 3)


def test_finished_run_is_not_repeated_and_changed_settings_are_refused(trained_run):
    model_dir, first = trained_run
    assert first.returncode == 0, first.stderr[-4000:]
    stamp = (model_dir / "checkpoints" / "checkpoint").read_text()
    again = run_train(*tiny("flags/erlnet_ma_d_mlgd.flags"), f"--model_dir={model_dir}", "--verbose=0")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "all 3 stages already finished" in again.stderr
    assert (model_dir / "checkpoints" / "checkpoint").read_text() == stamp

    changed = run_train(*tiny("flags/erlnet_ma_c_mlgd.flags"), f"--model_dir={model_dir}", "--verbose=0")
    assert changed.returncode == 1
    assert "holds a run with other settings" in changed.stderr and "'MA_D' -> 'MA_C'" in changed.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model=MEMD", "--strategy=MA_A", "--stage_steps=1", "--procedural=2"], "needs --model=ERLNet"),
        (["--model=MEMD", "--procedural=2"], "exactly one of --stage_steps or --stage_epochs"),
        (["--model=MEMD", "--stage_steps=1,2", "--procedural=2"], "give 1 or 1 stage lengths"),
        (["--model=MEMD", "--stage_steps=x", "--procedural=2"], "--stage_steps takes comma-separated ints"),
        (["--model=MEMD", "--stage_steps=1"], "give exactly one training source"),
        (["--model=MEMD", "--stage_steps=1", "--crop_size=2", "--procedural=2"], "crop_size"),
        (["--strategy=MA_D", "--stage_steps=1,2,3", "--stage_budget=split", "--procedural=2"],
         "--stage_budget=split divides one total over the stages, but 3 stage lengths were given"),
        (["--strategy=MA_D", "--stage_steps=2", "--stage_budget=split", "--procedural=2"],
         "cannot divide 2 steps over 3 stages"),
    ],
)
def test_bad_flags_are_clear_errors(tmp_path, args, message):
    result = run_train(*args, f"--model_dir={tmp_path / 'run'}", "--verbose=0", timeout=300)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]


def test_unpaired_training_data_names_the_file(tmp_path):
    import cv2

    (tmp_path / "rain").mkdir()
    (tmp_path / "norain").mkdir()
    image = np.zeros((40, 40, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "rain" / "rain-1.png"), image)
    cv2.imwrite(str(tmp_path / "rain" / "rain-2.png"), image)
    cv2.imwrite(str(tmp_path / "norain" / "norain-1.png"), image)
    result = run_train("--model=MEMD", "--stage_steps=1", f"--train_input_dir={tmp_path}",
                       f"--model_dir={tmp_path / 'run'}", "--verbose=0", timeout=300)
    assert result.returncode == 1
    assert "rain-2.png" in result.stderr


def test_trained_model_evaluates_in_a_fresh_process(trained_run, tmp_path):
    """train -> final.keras -> erlrestore-evaluate in another process."""
    import cv2

    model_dir, result = trained_run
    assert result.returncode == 0, result.stderr[-4000:]
    rng = np.random.default_rng(3)
    for folder in ("rain", "norain"):
        (tmp_path / "set" / folder).mkdir(parents=True)
    for i in range(2):
        clean = rng.integers(0, 256, (27, 33, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "set" / "norain" / f"norain-{i}.png"), clean)
        cv2.imwrite(str(tmp_path / "set" / "rain" / f"rain-{i}.png"), np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8))
    evaluated = subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.evaluate", f"--model={model_dir / 'final.keras'}",
         f"--input_dir={tmp_path / 'set'}", f"--output_dir={tmp_path / 'restored'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert evaluated.stdout.strip().splitlines()[-1].startswith("n=2 psnr_y=")
    assert sorted(p.name for p in (tmp_path / "restored").iterdir()) == ["rain-0.png", "rain-1.png"]


def test_stage_budget_split_divides_the_run_over_the_stages(tmp_path):
    # DT has two stages (the clean-to-clean net, then everything); only the second trains the restoration
    # net, so it gets the whole total (as MEMD would) and the C2C stage as many steps.
    result = run_train(*tiny("flags/erlnet_dt_mlgd.flags"), "--stage_steps=3", "--stage_budget=split",
                       f"--model_dir={tmp_path}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "stage C2C (1/2): 3 steps, from step 0" in result.stderr
    assert "stage I (2/2): 3 steps, from step 0" in result.stderr
    config = json.loads((tmp_path / "run_config.json").read_text())
    assert (config["stage_budget"], config["stage_steps"], config["global_residual"]) == ("split", [3], False)


def test_tiny_gan_flagfile_trains_generator_and_discriminator(tmp_path, in_repo):
    arguments = tiny("flags/unet5_lsgan_infoaccum15_subpix_recon_pretrain.flags")
    result = run_train(*arguments, f"--model_dir={tmp_path}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "final.keras").is_file() and (tmp_path / "discriminator.keras").is_file()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["stage1_reconstruct", "stage2_restore"]
    import keras

    import erlrestore.layers  # noqa: F401
    from erlrestore.training import experiment

    generator = keras.models.load_model(tmp_path / "final.keras")
    discriminator = keras.models.load_model(tmp_path / "discriminator.keras")
    assert generator(np.zeros((1, 19, 23, 3), "float32")).shape == (1, 19, 23, 3)
    # Both networks start from pix2pix's initialisation drawn from the run's seed: rebuilt here, they are the
    # untrained networks, and training moved the trainable weights of each (not only batch-norm statistics).
    untrained = experiment.build_networks(parse(arguments))
    for name, trained in (("final.keras", generator), ("discriminator.keras", discriminator)):
        start = untrained[name]
        assert [w.shape for w in start.trainable_weights] == [w.shape for w in trained.trainable_weights], name
        moved = max(float(np.max(np.abs(a.numpy() - b.numpy())))
                    for a, b in zip(start.trainable_weights, trained.trainable_weights))
        assert moved > 1e-6, f"{name} was not trained"


CLEAN_PROCESS_RESTORE = """
import sys
sys.modules["erlrestore"] = None  # the SavedModel must not need this package
import numpy as np, tensorflow as tf, cv2
loaded = tf.saved_model.load(sys.argv[1])
image = cv2.imread(sys.argv[2])[..., ::-1].astype("float32") / 255.0
restored = loaded.signatures["serving_default"](images=tf.constant(image[None]))["restored"].numpy()[0]
cv2.imwrite(sys.argv[3], np.rint(restored * 255).astype("uint8")[..., ::-1])
"""


def test_train_export_reload_in_clean_process_then_evaluate(trained_run, tmp_path):
    """train -> erlrestore-export -> restore in a process without erlrestore -> erlrestore-metrics."""
    import cv2

    model_dir, result = trained_run
    assert result.returncode == 0, result.stderr[-4000:]
    exported = subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.export", f"--model={model_dir}", f"--base_dir={tmp_path / 'sm'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    version_dir = exported.stdout.strip().splitlines()[-1]
    assert version_dir == str(tmp_path / "sm" / model_dir.name / "1")

    rng = np.random.default_rng(5)
    for folder in ("rain", "norain", "restored"):
        (tmp_path / folder).mkdir()
    for i in range(2):
        clean = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "norain" / f"norain-{i}.png"), clean)
        cv2.imwrite(str(tmp_path / "rain" / f"rain-{i}.png"), np.clip(clean.astype(int) + 25, 0, 255).astype(np.uint8))
        restored = subprocess.run(
            [sys.executable, "-c", CLEAN_PROCESS_RESTORE, version_dir, str(tmp_path / "rain" / f"rain-{i}.png"),
             str(tmp_path / "restored" / f"rain-{i}.png")],
            capture_output=True, text=True, timeout=300,
        )
        assert restored.returncode == 0, restored.stderr[-3000:]
    measured = subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.metrics", f"--input_dir={tmp_path / 'restored'}",
         f"--target_dir={tmp_path / 'norain'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert measured.returncode == 0, measured.stderr[-3000:]
    # The same restorations through the .keras model, scored by erlrestore-evaluate, agree.
    evaluated = subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.evaluate", f"--model={model_dir / 'final.keras'}",
         f"--input_dir={tmp_path / 'rain'}", f"--target_dir={tmp_path / 'norain'}"],
        capture_output=True, text=True, timeout=300, cwd=REPO,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    def numbers(line):
        return [float(part.split("=")[1]) for part in line.split()]

    # Equal up to a pixel rounding differently at an 8-bit boundary (float outputs agree to 1e-5).
    ours, theirs = (numbers(r.stdout.strip().splitlines()[-1]) for r in (measured, evaluated))
    assert ours[0] == theirs[0] == 2
    assert ours[1] == pytest.approx(theirs[1], abs=0.01) and ours[2] == pytest.approx(theirs[2], abs=1e-4)


def test_generative_flagfiles_state_pix2pix_schedule_init_and_pixel_loss(in_repo):
    generative = [f for f in FLAGFILES if "unet" in f or "endec" in f]
    assert len(generative) == 11
    rows = {label: parse(arguments) for label, arguments in variants(generative).items()}
    assert len(rows) == 2 * 11
    for label, settings in rows.items():
        name = label.rsplit("/", 1)[-1]
        assert (settings.resolved_lr_schedule(), settings.weight_init) == ("linear_decay", "pix2pix"), label
        if name.startswith(("pix2pix_unet8", "unet5_lsgan")):  # Table II rows state them explicitly
            assert settings.lr_schedule == "linear_decay", label
        assert settings.pixel_loss == ("mse" if name.startswith("recon_") else "l1"), label


def test_best_validation_model_is_kept_beside_the_last(tmp_path):
    from erlrestore import reproduce

    data = tmp_path / "val"
    synth = subprocess.run([sys.executable, "-m", "erlrestore.cli.synth", "--procedural=2", "--size=48",
                            "--degradation=rain", f"--output_dir={data}"], capture_output=True, text=True, timeout=300)
    assert synth.returncode == 0, synth.stderr[-2000:]
    model_dir = tmp_path / "run"
    result = run_train(*tiny("flags/memd.flags"), "--stage_steps=8", "--checkpoint_every=2",
                       f"--val_input_dir={data}", f"--model_dir={model_dir}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-4000:]
    curve = reproduce.learning_curve(str(model_dir))
    assert len(curve) == 4
    best = json.loads((model_dir / "best.json").read_text())
    assert best["val_psnr_y"] == pytest.approx(max(curve), abs=1e-4)
    assert best["interval"] == curve.index(max(curve)) + 1 and best["stage"] == "I"
    # best.keras is that model: evaluating it (float output, as validation scores it) gives the recorded score.
    evaluate = subprocess.run([sys.executable, "-m", "erlrestore.cli.evaluate", f"--model={model_dir / 'best.keras'}",
                               f"--input_dir={data}", "--noquantize"], capture_output=True, text=True, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    psnr = float(evaluate.stdout.strip().splitlines()[-1].split()[1].split("=")[1])
    assert psnr == pytest.approx(best["val_psnr_y"], abs=2e-3)


def test_pretrained_recipes_parse_into_the_faithful_models(in_repo):
    from erlrestore.training import experiment

    recipes = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "flags" / "pretrained").glob("*.flags"))
    assert recipes == ["flags/pretrained/erlnet_derain.flags", "flags/pretrained/erlnet_derain_finetune.flags",
                       "flags/pretrained/memd_derain.flags", "flags/pretrained/memd_derain_finetune.flags",
                       "flags/pretrained/rethinking_dehaze.flags", "flags/pretrained/rethinking_denoise.flags",
                       "flags/pretrained/rethinking_derain.flags"]
    erlnet, erlnet_ft, memd, memd_ft, dehaze, denoise, derain = (parse([f"--flagfile={recipe}"]) for recipe in recipes)
    assert (erlnet.model, erlnet.resolved_strategy(), erlnet.entanglement) == ("ERLNet", "MA_D", "MLGD")
    assert len(experiment.check_settings(erlnet)) == 3
    assert (memd.model, memd.resolved_strategy()) == ("MEMD", "MEMD")
    experiment.check_settings(memd)
    # The second stage fine-tunes each first-stage model on the same light-to-heavy rain, like for like.
    assert (erlnet_ft.model, erlnet_ft.resolved_strategy(), erlnet_ft.entanglement) == ("ERLNet", "FT", "MLGD")
    assert (memd_ft.model, memd_ft.resolved_strategy()) == ("MEMD", "MEMD")
    assert erlnet_ft.init_weights == "runs/erlnet-derain-light/best.keras"
    assert memd_ft.init_weights == "runs/memd-derain-light/best.keras"
    assert erlnet_ft.data == memd_ft.data and erlnet_ft.data.degradation == "real_dense_rain"
    assert (erlnet_ft.stage_steps, erlnet_ft.learning_rate) == (memd_ft.stage_steps, memd_ft.learning_rate)
    # The rethinking paper's generator: UNet-5 + LSGAN + InfoAccum-15 + SubPixUpsamp, width 32 (de-hazing,
    # de-raining); the de-noiser without InfoAccum and with L1 alone (docs/EXPERIMENTS.md, part 4).
    for generator in (dehaze, denoise, derain):
        assert (generator.model, generator.levels, generator.gan_loss) == ("UNet", 5, "lsgan")
        assert (generator.subpixel, generator.gen_filters) == (True, 32)
        experiment.check_settings(generator)
    assert (dehaze.info_accum_layers, derain.info_accum_layers, denoise.info_accum_layers) == (15, 15, 0)
    assert (dehaze.resolved_strategy(), derain.resolved_strategy(), denoise.resolved_strategy()) == ("GAN", "GAN", "L1")
    assert (dehaze.gen_residual, denoise.gen_residual, derain.gen_residual) == (False, True, True)
    assert (dehaze.data.train_input_dir, denoise.data.degradation) == ("runs/dehaze-data/train", "camera_noise")
    # rethinking-derain trains on erlnet-derain's rain, so the two cards compare like for like.
    assert derain.data.degradation == erlnet.data.degradation == "real_rain"
    assert derain.data.degradation_params == erlnet.data.degradation_params


def test_init_weights_starts_a_run_from_a_trained_model(trained_run, tmp_path):
    import keras

    import erlrestore.layers  # noqa: F401  (registers the custom layers)

    source_dir, first = trained_run
    assert first.returncode == 0, first.stderr[-4000:]
    source = source_dir / "final.keras"
    # One step at a negligible learning rate: the fine-tuned model is its starting point.
    tuned_dir = tmp_path / "tuned"
    result = run_train(*tiny("flags/erlnet_ma_d_mlgd.flags"), "--strategy=FT", f"--init_weights={source}",
                       "--stage_steps=1", "--learning_rate=1e-12", f"--model_dir={tuned_dir}", "--verbose=0")
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads((tuned_dir / "run_config.json").read_text())["init_weights"] == str(source)
    start = keras.models.load_model(source).get_weights()
    tuned = keras.models.load_model(tuned_dir / "final.keras").get_weights()
    assert len(start) == len(tuned)
    for a, b in zip(start, tuned):
        np.testing.assert_allclose(b, a, atol=1e-6)


@pytest.mark.parametrize("extra,message", [
    (["--base_filters=8"], "has shape"),  # another architecture
    (["--init_weights=nowhere.keras"], "--init_weights nowhere.keras: no such file"),
])
def test_init_weights_of_another_model_is_a_clear_error(trained_run, tmp_path, extra, message):
    source_dir, first = trained_run
    assert first.returncode == 0, first.stderr[-4000:]
    result = run_train(*tiny("flags/erlnet_ma_d_mlgd.flags"), "--strategy=FT",
                       f"--init_weights={source_dir / 'final.keras'}", *extra, f"--model_dir={tmp_path / 'run'}",
                       "--verbose=0")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-2000:]


HOLD_LOCK = """
import sys, time
from erlrestore.training import folder_lock
with folder_lock.locked(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(600)
"""


def test_a_busy_model_folder_is_refused_and_freed_when_its_holder_is_killed(tmp_path):
    model_dir = tmp_path / "run"
    model_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(model_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = run_train(*tiny("flags/memd.flags"), f"--model_dir={model_dir}", "--verbose=0")
        assert second.returncode == 1
        assert f"{model_dir} is in use by another training run (pid {holder.pid} on" in second.stderr
        assert not (model_dir / "checkpoints").exists() and not (model_dir / "run_config.json").exists()
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock
        holder.wait()
    third = run_train(*tiny("flags/memd.flags"), f"--model_dir={model_dir}", "--verbose=0")
    assert third.returncode == 0, third.stderr[-3000:]
    assert (model_dir / "final.keras").is_file()
