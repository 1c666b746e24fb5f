"""erlrestore.pretrained: shipped models by name, float16 storage, and pretrained:<name> in the tools."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from erlrestore import metrics, pretrained
from erlrestore.data import image_files
from erlrestore.models import memd, presets


def _tiny_memd():
    import keras

    keras.utils.set_random_seed(3)
    config = memd.memd_config("MEMD", **presets.TINY_MEMD, global_residual=True)
    return memd.build_memd(config, name="tiny_memd")


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("zoo")
    model = _tiny_memd()
    pretrained.save(model, "tiny-memd", {"description": "a test model", "task": "derain"}, folder=str(folder))
    return folder, model


def test_save_lists_and_loads_with_float16_weights_within_a_hundredth_of_a_db(zoo):
    folder, model = zoo
    assert pretrained.list(str(folder)) == ["tiny-memd"]
    assert pretrained.info("tiny-memd", folder=str(folder)) == {"description": "a test model", "task": "derain"}
    assert pretrained.task("pretrained:tiny-memd", folder=str(folder)) == "derain"
    assert pretrained.catalogue(str(folder)) == "tiny-memd (derain)"
    with np.load(folder / "tiny-memd.npz") as stored:
        assert {stored[k].dtype for k in stored.files} == {np.dtype(np.float16)}
    loaded = pretrained.load("pretrained:tiny-memd", folder=str(folder))
    assert all(w.dtype == "float32" for w in loaded.weights)
    image = np.random.default_rng(0).random((1, 40, 56, 3), dtype=np.float32)
    clean = np.clip(image[0] + 0.05, 0, 1)
    ours = np.clip(loaded(image).numpy()[0], 0, 1)
    reference = np.clip(model(image).numpy()[0], 0, 1)
    assert abs(metrics.psnr_y(ours, clean) - metrics.psnr_y(reference, clean)) < 0.01


def test_a_card_must_say_its_task(zoo, tmp_path):
    _, model = zoo
    for card in ({"description": "no task"}, {"task": "deblur"}):
        with pytest.raises(ValueError, match="needs a task, one of derain, dehaze, denoise"):
            pretrained.save(model, "tiny-memd", card, folder=str(tmp_path))
    assert pretrained.list(str(tmp_path)) == []


def test_unknown_names_and_damaged_files_are_clear_errors(zoo, tmp_path):
    folder, _ = zoo
    with pytest.raises(image_files.DataError, match=r"unknown pretrained model 'nope'; known: tiny-memd"):
        pretrained.load("pretrained:nope", folder=str(folder))
    with pytest.raises(image_files.DataError, match="none are shipped in this version"):
        pretrained.load("nope", folder=str(tmp_path))
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for suffix in (".json", ".npz"):
        (damaged / f"tiny-memd{suffix}").write_bytes((folder / f"tiny-memd{suffix}").read_bytes())
    with open(damaged / "tiny-memd.npz", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    with pytest.raises(image_files.DataError, match="does not match its checksum"):
        pretrained.load("tiny-memd", folder=str(damaged))
    with pytest.raises(ValueError, match="lower-case words"):
        pretrained.save(_tiny_memd(), "Bad Name", {}, folder=str(tmp_path))


def test_package_folder_ships_only_complete_models():
    for name in pretrained.list(pretrained.PACKAGE_FOLDER):
        with open(os.path.join(pretrained.PACKAGE_FOLDER, name + ".json"), encoding="utf-8") as f:
            record = json.load(f)
        assert {"model", "card", "weights_sha256"} <= set(record)
        assert os.path.getsize(os.path.join(pretrained.PACKAGE_FOLDER, name + ".npz")) < 25 * 2**20


@pytest.mark.slow
def test_tools_take_pretrained_names(zoo, tmp_path):
    folder, _ = zoo
    env = dict(os.environ, **{pretrained.FOLDER_VARIABLE: str(folder)})
    data = tmp_path / "set"
    synth = subprocess.run([sys.executable, "-m", "erlrestore.cli.synth", "--procedural=2", "--size=48",
                            "--degradation=rain", f"--output_dir={data}"], capture_output=True, text=True,
                           timeout=300)
    assert synth.returncode == 0, synth.stderr[-2000:]
    evaluate = subprocess.run([sys.executable, "-m", "erlrestore.cli.evaluate", "--model=pretrained:tiny-memd",
                               f"--input_dir={data}"], capture_output=True, text=True, env=env, timeout=300)
    assert evaluate.returncode == 0, evaluate.stderr[-2000:]
    assert evaluate.stdout.strip().splitlines()[-1].startswith("n=2 psnr_y=")
    restored = tmp_path / "restored"
    restore = subprocess.run([sys.executable, "-m", "erlrestore.cli.restore", "--model=pretrained:tiny-memd",
                              f"--input={data}/input", f"--output_dir={restored}"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert restore.returncode == 0, restore.stderr[-2000:]
    assert len(os.listdir(restored)) == 2
    export = subprocess.run([sys.executable, "-m", "erlrestore.cli.export", "--model=pretrained:tiny-memd",
                             f"--base_dir={tmp_path / 'savedmodels'}"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert export.returncode == 0, export.stderr[-2000:]
    assert (tmp_path / "savedmodels" / "tiny-memd" / "1" / "saved_model.pb").is_file()
    unknown = subprocess.run([sys.executable, "-m", "erlrestore.cli.evaluate", "--model=pretrained:nope",
                              f"--input_dir={data}"], capture_output=True, text=True, env=env, timeout=300)
    assert unknown.returncode == 1
    assert "unknown pretrained model 'nope'; known: tiny-memd" in unknown.stderr


@pytest.mark.slow
def test_ship_tool_stores_a_run_with_its_card_and_checks_float16(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _tiny_memd().save(run_dir / "best.keras")
    (run_dir / "run_config.json").write_text(json.dumps({"model": "MEMD", "strategy": "MEMD", "stage_steps": [4]}))
    (run_dir / "best.json").write_text(json.dumps({"val_psnr_y": 20.5, "stage": "I", "interval": 2}))
    import tensorflow as tf

    for sitting in range(2):  # two processes, the second repeating interval 1 after a resume
        with tf.summary.create_file_writer(str(run_dir / "logs" / "stage1_I" / "train")).as_default():
            for interval in (sitting, sitting + 1):
                tf.summary.scalar("epoch_loss", 0.5, step=interval)
    data = tmp_path / "set"
    synth = subprocess.run([sys.executable, "-m", "erlrestore.cli.synth", "--procedural=2", "--size=48",
                            "--degradation=rain", f"--output_dir={data}"], capture_output=True, text=True,
                           timeout=300)
    assert synth.returncode == 0, synth.stderr[-2000:]
    zoo = tmp_path / "zoo"
    record = tmp_path / "dcp.json"  # the shape of a tools.classical_baselines record
    record.write_text(json.dumps({"method": "dcp", "settings": "patch=15", "channel": "y", "count": 2,
                                  "mean": {"psnr_y": 21.123456, "ssim_y": 0.8}}))
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-m", "tools.ship_pretrained", f"--run_dir={run_dir}", "--name=tiny-memd",
                             "--description=test", "--task=derain", f"--eval_sets=synthetic={data}",
                             f"--baselines=synthetic={record}", f"--folder={zoo}", "--trained_short_side=48"],
                            capture_output=True, text=True, cwd=repo, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = pretrained.info("tiny-memd", folder=str(zoo))
    assert card["trained_short_side"] == 48 == pretrained.trained_short_side("tiny-memd", folder=str(zoo))
    assert card["run_config"]["model"] == "MEMD" and card["kept_weights"]["interval"] == 2
    assert card["training"]["planned_steps"] == 4 and card["training"]["intervals_logged"] == 3
    assert 0 <= card["training"]["wall_hours"] < 0.1
    assert card["task"] == "derain" and card["score_channel"] == "y"
    score = card["scores"]["synthetic"]
    assert score["n"] == 2 and abs(score["psnr_y"] - score["float32_psnr_y"]) <= 0.01
    assert score["baseline"] == {"method": "dcp", "settings": "patch=15", "psnr_y": 21.1235, "ssim_y": 0.8}
    measured = subprocess.run([sys.executable, "-m", "erlrestore.cli.metrics", f"--input_dir={data}"],
                              capture_output=True, text=True, timeout=300)
    assert f"psnr_y={score['input_psnr_y']:.4f}" in measured.stdout.splitlines()[-1]
    strict = subprocess.run([sys.executable, "-m", "tools.ship_pretrained", f"--run_dir={run_dir}", "--name=tiny-memd",
                             "--task=derain", f"--eval_sets=synthetic={data}", f"--folder={tmp_path / 'zoo2'}",
                             "--max_db_change=0"],
                            capture_output=True, text=True, cwd=repo, timeout=300)
    if score["psnr_y"] != score["float32_psnr_y"]:  # float16 moved the score: a zero tolerance must refuse it
        assert strict.returncode != 0 and "not shipped" in strict.stderr
    else:  # shipped without --trained_short_side: the card has no such field
        assert strict.returncode == 0, strict.stderr[-3000:]
        assert "trained_short_side" not in pretrained.info("tiny-memd", folder=str(tmp_path / "zoo2"))
    record.write_text(json.dumps({"method": "dcp", "settings": "", "channel": "rgb", "count": 2,
                                  "mean": {"psnr_rgb": 21.0, "ssim_rgb": 0.8}}))
    mismatched = subprocess.run([sys.executable, "-m", "tools.ship_pretrained", f"--run_dir={run_dir}",
                                 "--name=tiny-memd", "--task=derain", f"--eval_sets=synthetic={data}",
                                 f"--baselines=synthetic={record}", f"--folder={tmp_path / 'zoo3'}"],
                                capture_output=True, text=True, cwd=repo, timeout=300)
    assert mismatched.returncode != 0 and "on channel rgb; synthetic has 2 on channel y" in mismatched.stderr


SHIPPED = ("erlnet-derain", "memd-derain", "erlnet-derain-heavy", "memd-derain-heavy", "rethinking-dehaze",
           "rethinking-derain", "rethinking-denoise")
# The sets each task's card must be scored on, at least.
CARD_SETS = {"derain": {"rain12", "rain100l-10", "rain100h-20", "heldout-light", "heldout-heavy", "heldout-rain-haze"},
             "dehaze": {"sots-indoor-10", "heldout-outdoor"},
             "denoise": {"kodak24-sigma25", "kodak24-sigma50", "polyu-20"}}
DOCS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "PRETRAINED.md")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_models_load_restore_and_match_their_documented_cards(name):
    assert name in pretrained.list(pretrained.PACKAGE_FOLDER), "the package ships this model"
    model = pretrained.load(name)
    image = np.random.default_rng(0).uniform(0, 1, (1, 40, 56, 3)).astype(np.float32)
    restored = np.asarray(model(image, training=False))
    assert restored.shape == image.shape and restored.dtype == np.float32 and np.isfinite(restored).all()
    card = pretrained.info(name)
    with open(DOCS, encoding="utf-8") as f:
        docs = f.read()
    assert CARD_SETS[card["task"]] <= set(card["scores"])
    assert pretrained.task(name) == card["task"]
    c = card.get("score_channel", "y")
    for score in card["scores"].values():  # the model card in docs/PRETRAINED.md quotes the stored figures
        assert f"{score[f'psnr_{c}']:.4f}" in docs and f"{score[f'ssim_{c}']:.5f}" in docs
        if "baseline" in score:
            assert f"{score['baseline'][f'psnr_{c}']:.4f}" in docs


@pytest.mark.slow
def test_shipped_erlnet_scores_rain12_as_its_card_says(shared_data):
    from erlrestore import evaluation
    from erlrestore.data import pairing

    card = pretrained.info("erlnet-derain")["scores"]["rain12"]
    _, score = evaluation.evaluate_model("pretrained:erlnet-derain", pairing.find_pairs(str(shared_data / "rain12")),
                                         show_progress=False)
    assert score.count == card["n"]
    assert abs(score.psnr_y - card["psnr_y"]) < 0.001 and abs(score.ssim_y - card["ssim_y"]) < 0.00001


def test_ship_refuses_weights_that_float16_storage_moves_by_more_than_max_db_change(tmp_path):
    from erlrestore import evaluation
    from erlrestore.data import pairing
    from tools import ship_pretrained

    model = _tiny_memd()
    rng = np.random.default_rng(8)
    model.set_weights([(0.3 * rng.standard_normal(w.shape)).astype(np.float32) for w in model.get_weights()])
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "final.keras")
    data = tmp_path / "set"
    for i in range(1, 3):
        clean = rng.random((40, 48, 3))
        image_files.write_image(data / "norain" / f"norain-{i}.png", clean)
        image_files.write_image(data / "rain" / f"rain-{i}.png", np.clip(clean + 0.1 * rng.random(clean.shape), 0, 1))
    pairs = pairing.find_pairs(str(data))
    # How far float16 storage moves this model's score (measured as the tool does).
    pretrained.save(model, "moved", {"task": "derain"}, folder=str(tmp_path / "scratch"))
    stored = pretrained.load("moved", folder=str(tmp_path / "scratch"))
    _, as_float16 = evaluation.evaluate_model(stored, pairs, show_progress=False)
    _, as_float32 = evaluation.evaluate_model(model, pairs, show_progress=False)
    change = abs(as_float16.psnr - as_float32.psnr)
    assert change > 1e-4  # float16 does move it

    def ship(max_db_change, folder):
        return ship_pretrained.ship(str(run_dir), "tiny-memd", "test", "final", {"synthetic": (str(data), "")},
                                    max_db_change, str(folder), task="derain")

    with pytest.raises(ValueError, match=r"^float16 storage moves the PSNR on synthetic by .* dB .*; not shipped$"):
        ship(change / 2, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    ship(change * 2, tmp_path / "zoo")
    score = pretrained.info("tiny-memd", folder=str(tmp_path / "zoo"))["scores"]["synthetic"]
    assert score["psnr_y"] == pytest.approx(as_float16.psnr, abs=1e-4)
    assert score["float32_psnr_y"] == pytest.approx(as_float32.psnr, abs=1e-4)


def test_rescore_card_replaces_and_drops_scores_and_keeps_the_weights(tmp_path):
    from erlrestore import evaluation
    from erlrestore.data import pairing, synthetic
    from tools import rescore_card

    folder = str(tmp_path / "zoo")
    model = _tiny_memd()
    rng = np.random.default_rng(4)  # away from the identity, so input and output scores differ
    model.set_weights([w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()])
    card = {"description": "test", "task": "derain", "trained_short_side": 48,
            "scores": {"old-set": {"n": 3, "psnr_y": 1.0, "ssim_y": 0.1}, "kept": {"n": 1, "psnr_y": 2.0, "ssim_y": 0.2}}}
    pretrained.save(model, "tiny-memd", card, folder=folder)
    weights_before = [w.copy() for w in pretrained.load("tiny-memd", folder=folder).get_weights()]
    data = tmp_path / "set"
    clean = synthetic.procedural_images(2, 40, 48, seed=5)
    rainy = [np.asarray(synthetic.make_degradation("rain")(image, np.array([i, 1], np.int64)))
             for i, image in enumerate(clean)]
    for i, (x, y) in enumerate(zip(rainy, clean)):
        image_files.write_image(data / "rain" / f"{i}.png", x)
        image_files.write_image(data / "norain" / f"{i}.png", y)
    with pytest.raises(ValueError, match="has no scores for nope"):
        rescore_card.rescore("tiny-memd", {}, drop=["nope"], folder=folder)
    with pytest.raises(ValueError, match="both name old-set"):
        rescore_card.rescore("tiny-memd", {"old-set": (str(data), "")}, drop=["old-set"], folder=folder)
    assert pretrained.info("tiny-memd", folder=folder) == card  # refused before anything was written

    rescore_card.rescore("tiny-memd", {"new-set": (str(data), "")}, drop=["old-set"], folder=folder,
                         log=lambda line: None)
    after = pretrained.info("tiny-memd", folder=folder)
    assert set(after["scores"]) == {"kept", "new-set"} and after["scores"]["kept"] == card["scores"]["kept"]
    assert {k: v for k, v in after.items() if k != "scores"} == {k: v for k, v in card.items() if k != "scores"}
    stored = pretrained.load("tiny-memd", folder=folder)
    for before, now in zip(weights_before, stored.get_weights()):
        np.testing.assert_array_equal(before, now)
    # The new entry is the shipped weights' score and the input's, as erlrestore-evaluate measures them.
    pairs = pairing.find_pairs(str(data))
    _, ours, _, degraded = evaluation.evaluate_model(stored, pairs, return_input=True, show_progress=False)
    entry = after["scores"]["new-set"]
    assert entry == {"n": 2, "psnr_y": round(ours.psnr, 4), "ssim_y": round(ours.ssim, 5),
                     "input_psnr_y": round(degraded.psnr, 4), "input_ssim_y": round(degraded.ssim, 5),
                     "rescored": True}
    assert entry["psnr_y"] != entry["input_psnr_y"]
    # A classical baseline's record quoted beside a set scored here; a record of other images, or of a set not
    # scored here, is refused before anything is written.
    import json
    record = tmp_path / "cbm3d.json"  # the shape of a tools.classical_baselines record
    record.write_text(json.dumps({"method": "cbm3d", "settings": "sigma=15", "channel": "y", "count": 2,
                                  "mean": {"psnr_y": 30.123456, "ssim_y": 0.9}}))
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"method": "cbm3d", "settings": "sigma=15", "channel": "y", "count": 3,
                                 "mean": {"psnr_y": 30.0, "ssim_y": 0.9}}))
    with pytest.raises(ValueError, match="scored 3 images on channel y; new-set has 2"):
        rescore_card.rescore("tiny-memd", {"new-set": (str(data), "")}, folder=folder,
                             baselines={"new-set": str(wrong)})
    with pytest.raises(ValueError, match="not scored here: kept"):
        rescore_card.rescore("tiny-memd", {"new-set": (str(data), "")}, folder=folder,
                             baselines={"kept": str(record)})
    assert pretrained.info("tiny-memd", folder=folder) == after
    rescore_card.rescore("tiny-memd", {"new-set": (str(data), "")}, folder=folder, log=lambda line: None,
                         baselines={"new-set": str(record)})
    quoted = pretrained.info("tiny-memd", folder=folder)["scores"]["new-set"]
    assert quoted == {**entry, "baseline": {"method": "cbm3d", "settings": "sigma=15", "psnr_y": 30.1235,
                                            "ssim_y": 0.9}}
