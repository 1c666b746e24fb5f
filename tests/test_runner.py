"""erlrestore.runner (train and score in a child process, results as data) and erlrestore.run_folder."""

import csv
import json
import os

import numpy as np
import pytest
from absl import flags

from erlrestore import metrics, run_folder, runner
from erlrestore.data import image_files
from erlrestore.run_folder import RunFolder

# A UNet-1 with two filters on two procedural images, one step: seconds, most of them TensorFlow's start.
TINY = ["--model=UNet", "--levels=1", "--gen_filters=2", "--d_filters=2", "--crop_size=32", "--procedural=2",
        "--degradation=rain", "--stage_steps=1", "--checkpoint_every=1", "--plateau_patience=0", "--verbose=0"]


# --- the run folder ---------------------------------------------------------------------------------------

def test_run_folder_names_every_file_of_a_run(tmp_path):
    folder = RunFolder(str(tmp_path))
    assert [os.path.basename(p) for p in (folder.final, folder.best, folder.best_record, folder.config,
                                          folder.checkpoints, folder.logs, folder.train_log, folder.evaluate_log)] == [
        "final.keras", "best.keras", "best.json", "run_config.json", "checkpoints", "logs", "train.log",
        "evaluate.log"]
    assert folder.stage_logs(2, "gan") == str(tmp_path / "logs" / "stage2_gan")
    assert run_folder.parse_stage_log_name("stage12_d_pretrain") == (12, "d_pretrain")
    assert run_folder.parse_stage_log_name("samples") is None
    assert not folder.finished and folder.read_config() == {}
    (tmp_path / "run_config.json").write_text(json.dumps({"model": "MEMD"}))
    (tmp_path / "final.keras").write_text("")
    assert folder.finished and folder.read_config() == {"model": "MEMD"}
    (tmp_path / "run_config.json").write_text("{cut off")
    assert folder.read_config() == {}


# --- settings, flags and scores ----------------------------------------------------------------------------

def test_channels_are_the_metrics_own():
    assert runner.CHANNELS == metrics.CHANNELS


def test_evaluation_settings_are_the_scoring_flags_of_erlrestore_evaluate():
    settings = runner.evaluation_settings(["--crop_border=4", "--norm_statistics=batch", "--noquantize",
                                           "--tile=64", "--channel=rgb"])
    assert (settings.crop_border, settings.norm_statistics, settings.quantize, settings.tile, settings.channel) == (
        4, "batch", False, 64, "rgb")
    assert runner.evaluation_settings([]) == runner.EvaluationSettings()
    with pytest.raises(flags.UnrecognizedFlagError, match="output_dir"):
        runner.evaluation_settings(["--output_dir=restored"])
    with pytest.raises(flags.IllegalFlagValueError, match="crop_border"):
        runner.evaluation_settings(["--crop_border=-1"])


def test_process_flags_model_dir_and_scores_by_name():
    assert runner.split_process_flags(["--a=1", "--max_image_pixels=100", "--b"]) == (["--a=1", "--b"], 100)
    assert runner.split_process_flags(["--a=1"]) == (["--a=1"], None)
    with pytest.raises(ValueError, match=r"--max_image_pixels takes a non-negative integer, not '-3'"):
        runner.split_process_flags(["--max_image_pixels=-3"])
    assert runner.model_dir_of(["--model_dir=a", "--x=1", "--model_dir=b"]) == "b"
    with pytest.raises(ValueError, match="no run folder"):
        runner.model_dir_of(["--model=MEMD"])
    scores = runner.Scores("rain12", 12, 30.5, 0.9, "rgb")
    assert (scores.metric("n"), scores.metric("psnr_rgb"), scores.metric("ssim_rgb")) == (12, 30.5, 0.9)
    with pytest.raises(KeyError, match=r"no score 'psnr_y' in the scores of rain12; they have n, psnr_rgb"):
        scores.metric("psnr_y")
    assert runner.EvalSet("s", "in", "tgt", ("--crop_border=2",)).command("m.keras") == [
        "erlrestore-evaluate", "--model=m.keras", "--input_dir=in", "--target_dir=tgt", "--crop_border=2"]


# --- runs ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """Two 48 px pairs in input/ and target/ folders."""
    folder = tmp_path_factory.mktemp("tiny_set")
    rng = np.random.default_rng(0)
    for part in ("input", "target"):
        (folder / part).mkdir()
    for name in ("a.png", "b.png"):
        clean = rng.integers(0, 256, (48, 48, 3)).astype(np.float32) / 255
        image_files.write_image(str(folder / "target" / name), clean)
        image_files.write_image(str(folder / "input" / name), np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1))
    return folder


@pytest.fixture(scope="module")
def isolated_run(tmp_path_factory, test_set):
    run_dir = tmp_path_factory.mktemp("runner") / "run"
    stages = []
    experiment = runner.run([*TINY, f"--model_dir={run_dir}"],
                            [runner.EvalSet("plain", str(test_set)),
                             runner.EvalSet("border", str(test_set), flags=("--crop_border=4",))],
                            csv_paths={"plain": str(run_dir / "plain.csv")},
                            on_stage=lambda stage, name: stages.append((stage, name)))
    return experiment, run_dir, stages


@pytest.mark.slow
def test_an_isolated_run_trains_scores_and_returns_data(isolated_run, test_set):
    from erlrestore import evaluation, inference
    from erlrestore.data import pairing

    experiment, run_dir, stages = isolated_run
    assert stages == [("training", ""), ("evaluation", "plain"), ("evaluation", "border")]
    training = experiment.training
    assert (training.run_dir, training.final, training.steps) == (str(run_dir), str(run_dir / "final.keras"), 1)
    assert training.seconds > 0 and training.precision in ("float32", "mixed_bfloat16")
    plain, border = experiment.scores["plain"], experiment.scores["border"]
    assert plain.count == border.count == 2 and plain.psnr != border.psnr
    # The numbers are the evaluation's own, and the CSV holds the same per-image scores.
    pairs = pairing.find_pairs(str(test_set))
    _, summary = evaluation.evaluate_model(inference.load_restorer(training.final), pairs, show_progress=False)
    assert plain.metric("psnr_y") == pytest.approx(summary.psnr, abs=1e-9)
    assert plain.metric("ssim_y") == pytest.approx(summary.ssim, abs=1e-9)
    with open(run_dir / "plain.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [{"name": r["name"], "psnr": float(r["psnr_y"]), "ssim": float(r["ssim_y"])} for r in rows] == list(
        plain.images)
    assert border.csv == "" and not (run_dir / "border.csv").exists()
    # Each stage's output went to its log, after the command line it stands for.
    folder = RunFolder(str(run_dir))
    train_log = open(folder.train_log, encoding="utf-8").read()
    assert train_log.lstrip().startswith("$ erlrestore-train --model=UNet") and f"--model_dir={run_dir}" in train_log
    assert "precision" in train_log
    evaluate_log = open(folder.evaluate_log, encoding="utf-8").read()
    assert evaluate_log.count("$ erlrestore-evaluate --model=") == 2 and "--crop_border=4" in evaluate_log


@pytest.mark.slow
def test_a_finished_run_is_only_scored_in_this_process(isolated_run, test_set):
    _, run_dir, _ = isolated_run
    stamp = os.stat(run_dir / "final.keras").st_mtime_ns
    experiment = runner.run([*TINY, f"--model_dir={run_dir}"], [runner.EvalSet("again", str(test_set))],
                            isolate=False)
    assert experiment.training is None and os.stat(run_dir / "final.keras").st_mtime_ns == stamp
    assert experiment.scores["again"].psnr == pytest.approx(isolated_run[0].scores["plain"].psnr, abs=1e-9)


@pytest.mark.slow
def test_failures_name_the_stage_the_error_and_the_log(isolated_run, tmp_path):
    _, run_dir, _ = isolated_run
    bad = tmp_path / "bad"
    with pytest.raises(runner.RunError) as caught:
        runner.run(["--model=UNet", "--stage_steps=1,x", f"--model_dir={bad}"])
    error = caught.value
    assert error.stage == "training" and error.log_path == str(bad / "train.log")
    assert str(error) == (f"training failed: ValueError: --stage_steps takes comma-separated ints, got 1,x "
                          f"(log: {bad / 'train.log'})")
    assert "Traceback" in (bad / "train.log").read_text(encoding="utf-8")
    assert error.partial.training is None and error.partial.scores == {}
    # A finished run on a missing test set: the evaluation's error; nothing is trained.
    with pytest.raises(runner.RunError) as caught:
        runner.run([*TINY, f"--model_dir={run_dir}"], [runner.EvalSet("gone", str(tmp_path / "nowhere"))])
    assert caught.value.stage == "evaluation" and "nowhere" in str(caught.value)
    assert str(caught.value).endswith(f"(log: {run_dir / 'evaluate.log'})")


@pytest.mark.slow
def test_a_stage_past_its_timeout_is_stopped(tmp_path):
    with pytest.raises(runner.RunError, match=r"^training timed out after 0.5 s \(log: .*train.log\)$") as caught:
        runner.run([*TINY, f"--model_dir={tmp_path / 'slow'}"], timeout=0.5)
    assert caught.value.stage == "training"
    assert not (tmp_path / "slow" / "final.keras").exists()
