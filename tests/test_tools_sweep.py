"""tools.sweep (architecture sweeps) and tools.fit_loss_curve (Fig. 7 exponential fit)."""

import csv
import json
import pathlib
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from erlrestore import runner as experiment_runner
from erlrestore.data.image_files import DataError
from erlrestore.run_folder import RunFolder
from erlrestore.training import events
from tools import fit_loss_curve as fit
from tools import sweep

REPO = pathlib.Path(__file__).resolve().parent.parent

NO_MATPLOTLIB = "import sys; sys.modules['matplotlib'] = None; "


def _curve(taus, amplitudes, offset, steps, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    steps = np.asarray(steps, np.float64)
    loss = offset + sum(a * np.exp(-steps / tau) for a, tau in zip(amplitudes, taus))
    return steps, loss + rng.normal(0.0, noise, steps.shape)


# --- fit_loss_curve -----------------------------------------------------------------------------------

@pytest.mark.parametrize("use_scipy", [True, False])
def test_two_term_fit_recovers_fast_and_slow_time_constants(use_scipy):
    steps, loss = _curve((15.0, 200.0), (0.6, 0.3), 0.1, np.arange(0, 1000, 5), noise=0.002)
    result = fit.fit_exponentials(steps, loss, terms=2, use_scipy=use_scipy)
    assert result.method == ("scipy" if use_scipy else "numpy")
    fast, slow = result.taus
    assert fast == pytest.approx(15.0, rel=0.1) and slow == pytest.approx(200.0, rel=0.1)
    assert result.amplitudes == pytest.approx((0.6, 0.3), rel=0.1)
    assert result.offset == pytest.approx(0.1, abs=0.01)
    assert result.r2 > 0.99 and result.rmse == pytest.approx(0.002, rel=0.2)
    assert result.edge == ()
    lines = fit.describe(result, "steps")
    assert lines[-1].startswith(f"two-stage convergence: fast tau = {fast:.6g} steps, slow tau = {slow:.6g} steps")


def test_fit_amplitudes_are_measured_from_the_first_step():
    # The same curve sampled from step 100 on: taus unchanged, a_k = a_k(0) exp(-100 / tau_k).
    steps, loss = _curve((40.0, 400.0), (2.0, 1.0), 0.5, np.arange(100, 3000, 10))
    result = fit.fit_exponentials(steps, loss, terms=2)
    assert result.t0 == 100
    assert result.taus == pytest.approx((40.0, 400.0), rel=1e-4)
    assert result.amplitudes == pytest.approx((2.0 * np.exp(-2.5), 1.0 * np.exp(-0.25)), rel=1e-3)
    assert result.predict(steps) == pytest.approx(loss, abs=1e-8)
    assert result.r2 == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("use_scipy", [True, False])
def test_one_term_fit(use_scipy):
    steps, loss = _curve((50.0,), (1.0,), 0.2, np.arange(0, 400, 2), noise=0.002, seed=1)
    result = fit.fit_exponentials(steps, loss, terms=1, use_scipy=use_scipy)
    assert len(result.taus) == 1
    assert result.taus[0] == pytest.approx(50.0, rel=0.05)
    assert result.amplitudes[0] == pytest.approx(1.0, rel=0.05) and result.offset == pytest.approx(0.2, abs=0.01)
    assert result.r2 > 0.999
    assert "fast_tau" not in result.as_dict()


def test_bad_curves_are_refused_with_clear_errors():
    steps = np.arange(10.0)
    with pytest.raises(DataError, match=r"a 2-term exponential fit has 5 parameters and needs at least 6 points, "
                                        r"got 5"):
        fit.fit_exponentials(steps[:5], np.exp(-steps[:5]), terms=2)
    loss = np.exp(-steps)
    loss[3] = np.nan
    with pytest.raises(DataError, match=r"the loss is not finite at step 3 \(nan\)"):
        fit.fit_exponentials(steps, loss, terms=1)
    with pytest.raises(DataError, match=r"the loss is constant \(0.5\) over all 10 points"):
        fit.fit_exponentials(steps, np.full(10, 0.5), terms=1)
    with pytest.raises(DataError, match=r"steps must be distinct, step 4 appears more than once"):
        fit.fit_exponentials(np.r_[steps[:5], 4.0, steps[6:]], np.exp(-steps), terms=1)
    with pytest.raises(DataError, match=r"must be 1-D and of equal length"):
        fit.fit_exponentials(steps, loss[:9], terms=1)
    with pytest.raises(DataError, match=r"positive integer, got 0"):
        fit.fit_exponentials(steps, np.exp(-steps), terms=0)


def test_unresolved_time_constant_is_flagged():
    # A straight line: the only "exponential" fitting it is far slower than the curve is long.
    steps = np.arange(50.0)
    result = fit.fit_exponentials(steps, 1.0 - 0.001 * steps, terms=1)
    assert result.edge == (0,)
    assert "on the edge of the searched range" in fit.describe(result)[2]


@pytest.mark.parametrize("use_scipy", [True, False])
def test_merging_time_constants_are_held_apart_and_reported(use_scipy):
    # t exp(-t / 20) is the limit of two terms with equal taus and opposite, unbounded amplitudes.
    steps = np.arange(100.0)
    result = fit.fit_exponentials(steps, 1 + steps / 20 * np.exp(-steps / 20), terms=2, use_scipy=use_scipy)
    assert result.pinned == (0,)
    assert result.taus[1] / result.taus[0] == pytest.approx(fit.MIN_TAU_RATIO)
    assert max(abs(a) for a in result.amplitudes) < 10
    assert "the data do not separate them; try fewer --terms" in fit.describe(result)[5]


def test_read_csv_curve_columns_and_errors(tmp_path):
    path = tmp_path / "tb.csv"
    path.write_text("Wall time,Step,Value\n1.0,0,0.9\n2.0,1,0.5\n\n3.0,2,0.4\n")
    steps, loss = fit.read_csv_curve(str(path))
    assert steps.tolist() == [0, 1, 2] and loss.tolist() == [0.9, 0.5, 0.4]
    path.write_text("step,g_l1,loss\n0,7,1\n")
    assert fit.read_csv_curve(str(path), tag="g_l1")[1].tolist() == [7.0]
    path.write_text("epoch,loss\n0,1\n")
    with pytest.raises(DataError, match=r"tb.csv has no 'step' column \(columns: epoch, loss\)"):
        fit.read_csv_curve(str(path))
    path.write_text("step,loss\n0,1\n1,x\n")
    with pytest.raises(DataError, match=r"tb.csv, line 3: expected numbers in columns step and loss"):
        fit.read_csv_curve(str(path))


@pytest.mark.slow
def test_fit_tool_without_matplotlib_writes_json_and_csv_and_says_png_skipped(tmp_path):
    steps, loss = _curve((8.0, 120.0), (0.5, 0.2), 0.05, np.arange(0, 600, 3), noise=0.001)
    data = tmp_path / "loss.csv"
    data.write_text("step,loss\n" + "".join(f"{s:g},{v:.8f}\n" for s, v in zip(steps, loss)))
    output = tmp_path / "out" / "fig7.png"
    code = (NO_MATPLOTLIB + "import runpy; sys.argv = ['fit_loss_curve', '--csv=%s', '--output=%s']; "
            "runpy.run_module('tools.fit_loss_curve', run_name='__main__')" % (data, output))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1] == (f"note: matplotlib is not installed, {output} was skipped "
                         "(install it with `pip install matplotlib`)")
    assert any(line.startswith("two-stage convergence: fast tau = ") for line in lines)
    assert not output.exists()
    report = json.loads((tmp_path / "out" / "fig7.json").read_text())
    assert report["fast_tau"] == pytest.approx(8.0, rel=0.1) and report["slow_tau"] == pytest.approx(120.0, rel=0.1)
    assert report["r2"] > 0.99 and report["n"] == len(steps) and report["units"] == "steps"
    with open(tmp_path / "out" / "fig7.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["step", "loss", "fit", "term_1", "term_2"] and len(rows) == len(steps)
    assert float(rows[10]["fit"]) == pytest.approx(float(rows[10]["loss"]), abs=0.005)


@pytest.mark.slow
def test_fit_tool_usage_and_data_errors(tmp_path):
    tool = [sys.executable, "-m", "tools.fit_loss_curve"]
    result = subprocess.run([*tool, f"--output={tmp_path / 'f.png'}"], capture_output=True, text=True, cwd=REPO,
                            timeout=120)
    assert result.returncode == 1 and "give exactly one of --model_dir or --csv" in result.stderr
    short = tmp_path / "short.csv"
    short.write_text("step,loss\n0,1\n1,0.5\n2,0.4\n")
    result = subprocess.run([*tool, f"--csv={short}", f"--output={tmp_path / 'f.png'}"],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: a 2-term exponential fit has 5 parameters and needs at least 6 points, got 3")


def test_plot_fit_draws_a_png_when_matplotlib_is_there(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    steps, loss = _curve((5.0, 50.0), (1.0, 0.5), 0.1, np.arange(100.0))
    result = fit.fit_exponentials(steps, loss, terms=2)
    assert fit.plot_fit(str(tmp_path / "fig.png"), steps, loss, result) is True
    assert cv2.imread(str(tmp_path / "fig.png")).shape[2] == 3
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert fit.plot_fit(str(tmp_path / "none.png"), steps, loss, result) is False
    assert not (tmp_path / "none.png").exists()


def test_reads_tensorboard_scalars_of_a_run(tmp_path):
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2, summary_pb2

    logs = tmp_path / "run" / "logs"
    for stage, values in (("stage1_restore", [3.0, 2.0, 1.5]), ("stage2_gan", [0.9, 0.7])):
        writer = tf.summary.create_file_writer(str(logs / stage / "train"))
        with writer.as_default():
            for step, value in enumerate(values):
                tf.summary.scalar("epoch_g_l1", value, step=step)
                tf.summary.scalar("epoch_d_loss", 10 * value, step=step)
        writer.close()
    # A resumed run logs epoch 1 of stage 2 again, later: that value counts. TF1 simple_value style.
    event = event_pb2.Event(wall_time=time.time() + 10, step=1, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="epoch_g_l1", simple_value=0.6)]))
    with tf.io.TFRecordWriter(str(logs / "stage2_gan" / "train" / "events.out.tfevents.9999999999.resumed")) as w:
        w.write(event.SerializeToString())

    run_dir = str(tmp_path / "run")
    assert [(k, name) for k, name, _ in events.stage_log_dirs(run_dir)] == [(1, "restore"), (2, "gan")]
    assert events.stage_log_dirs(run_dir, part="validation") == []
    steps, values, label = fit.read_run_scalars(run_dir, "epoch_g_l1")
    assert label == "stage2_gan" and steps.tolist() == [0, 1] and values.tolist() == pytest.approx([0.9, 0.6])
    steps, values, label = fit.read_run_scalars(run_dir, "epoch_d_loss", stage="1")
    assert label == "stage1_restore" and values.tolist() == pytest.approx([30.0, 20.0, 15.0])
    assert fit.read_run_scalars(run_dir, "epoch_g_l1", stage="restore")[1].tolist() == [3.0, 2.0, 1.5]
    steps, values = events.read_event_scalars(str(logs / "stage1_restore" / "train"), "epoch_g_l1")
    assert values.dtype == np.float64 and values.tolist() == [3.0, 2.0, 1.5]
    with pytest.raises(DataError, match=r"no scalar 'g_l1' in the event files of .*stage1_restore.* "
                                        r"\(tags found: epoch_d_loss, epoch_g_l1\)"):
        events.read_event_scalars(str(logs / "stage1_restore" / "train"), "g_l1")
    # missing_ok: a tag never logged, or a folder without event files, reads as an empty curve.
    for folder, tag in ((logs / "stage1_restore" / "train", "g_l1"), (tmp_path, "epoch_g_l1")):
        steps, values = events.read_event_scalars(str(folder), tag, missing_ok=True)
        assert steps.size == values.size == 0
    with pytest.raises(DataError, match=r"has no stage '9' \(stages: stage1_restore, stage2_gan\)"):
        fit.read_run_scalars(run_dir, "epoch_g_l1", stage="9")
    with pytest.raises(DataError, match=r"no stage of .* logged the scalar 'nope'"):
        fit.read_run_scalars(run_dir, "nope")
    with pytest.raises(DataError, match=r"has no logs/stage<k>_<name>/train folders and no event files"):
        fit.read_run_scalars(str(tmp_path), "epoch_g_l1")


# --- sweep: configurations and commands ---------------------------------------------------------------

def test_sweep_configurations_and_names():
    configs = sweep.configurations("levels")
    assert [c.name for c in configs] == [f"UNet-{n}" for n in range(1, 9)] + [f"EnDec-{n}" for n in range(1, 9)]
    assert configs[10].flags == ("--model=EnDec", "--levels=3") and configs[10].key == ("levels", "EnDec", "3")
    layers = sweep.configurations("info_accum_layers")
    assert [c.value for c in layers] == ["0", "1", "3", "5", "10", "15", "20"]
    assert layers[4].name == "UNet-5_InfoAccum-10" and layers[4].model == "UNet-5"
    assert layers[4].flags == ("--model=UNet", "--levels=5", "--info_accum_layers=10", "--info_accum_positions=0")
    positions = sweep.configurations("info_accum_position", ["3", "1+0"], base_levels=8,
                                     position_info_accum_layers=7)
    assert [c.value for c in positions] == ["3", "0+1"]
    assert positions[1].name == "UNet-8_InfoAccum-7_at-0+1"
    assert positions[1].flags[-2:] == ("--info_accum_layers=7", "--info_accum_positions=0,1")
    assert [c.value for c in sweep.configurations("info_accum_position")] == ["0", "1", "2", "3", "4"]


@pytest.mark.parametrize("sweep_name, values, message", [
    ("levels", ["0"], r"--values of the levels sweep must be integers in 1..8, got '0'"),
    ("levels", ["x"], r"--values of the levels sweep must be integers in 1..8, got 'x'"),
    ("info_accum_layers", ["-1"], r"must be integers >= 0, got '-1'"),
    ("info_accum_position", ["5"], r"must be integers in 0..4, got '5'"),
    ("info_accum_position", ["1+1"], r"'1\+1' repeats a position"),
    ("levels", ["2", "02"], r"--values has duplicates: 2,02"),
    ("depth", None, r"unknown sweep 'depth'"),
])
def test_sweep_bad_values(sweep_name, values, message):
    with pytest.raises(ValueError, match=message):
        sweep.configurations(sweep_name, values)


def test_sweep_bad_models():
    with pytest.raises(ValueError, match=r"--models takes UNet and EnDec, got 'MEMD'"):
        sweep.configurations("levels", models=["MEMD"])


def test_training_command_order_lets_the_swept_flags_win(tmp_path):
    flagfile = tmp_path / "tiny.flags"
    flagfile.write_text("--levels=8\n")
    extra = sweep.extra_arguments(f"{flagfile} --gan_loss=lsgan '--val_input_dir=a b'")
    assert extra == [f"--flagfile={flagfile}", "--gan_loss=lsgan", "--val_input_dir=a b"]
    with pytest.raises(ValueError, match=r"--extra_flags: 'missing.flags' is neither a flag"):
        sweep.extra_arguments("missing.flags")
    config = sweep.configurations("levels", ["3"], ["UNet"])[0]
    arguments = sweep.train_arguments(config, "out/levels/UNet-3", extra, ["--stage_steps=5"])
    assert arguments == [*extra, "--stage_steps=5", "--model=UNet", "--levels=3", "--model_dir=out/levels/UNet-3",
                         "--verbose=0"]



def test_eval_flags_are_scoring_flags_on_the_y_channel():
    sweep.check_eval_flags(["--crop_border=4", "--norm_statistics=batch"])
    with pytest.raises(ValueError, match=r"records Y-channel scores"):
        sweep.check_eval_flags(["--channel=rgb"])
    with pytest.raises(Exception, match=r"Unknown command line flag 'baseline_model'"):
        sweep.check_eval_flags(["--baseline_model=m.keras"])


# --- sweep: running, CSV and resume (with a fake runner) ------------------------------------------------

class FakeRunner:
    """Stands in for erlrestore.runner: 'trains' by writing final.keras, 'evaluates' by making up a score."""

    def __init__(self, fail_train=(), fail_eval=(), channel="y"):
        self.calls = []
        self.timeouts = []
        self.fail_train, self.fail_eval, self.channel = set(fail_train), set(fail_eval), channel

    def run(self, arguments, eval_sets, timeout=None):
        folder = RunFolder(experiment_runner.model_dir_of(arguments))
        levels = next(a.split("=", 1)[1] for a in arguments if a.startswith("--levels="))
        self.timeouts.append(timeout)
        experiment = experiment_runner.Experiment(folder.path)

        def fail(stage, message, log):
            raise experiment_runner.RunError(f"{stage} failed: {message} (log: {log})", stage=stage, log_path=log,
                                             partial=experiment)

        if not folder.finished:
            self.calls.append(("train", list(arguments)))
            if levels in self.fail_train:
                fail("training", "ValueError: crop too small", folder.train_log)
            pathlib.Path(folder.final).write_text("model")
            experiment.training = experiment_runner.Training(folder.path, folder.final, 1, 0.1, "float32")
        for eval_set in eval_sets:
            self.calls.append(("evaluate", folder.final, eval_set))
            if levels in self.fail_eval:
                fail("evaluation", "DataError: no pairs", folder.evaluate_log)
            experiment.scores[eval_set.name] = experiment_runner.Scores(
                eval_set.name, 2, 20.5 + int(levels), int(levels) / 10, self.channel)
        return experiment

    def modules(self):
        return [c[0] for c in self.calls]


def _rows(output_dir):
    with open(output_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_run_sweep_records_rows_failures_and_resumes(tmp_path):
    configs = sweep.configurations("levels", ["1", "2", "3"], ["UNet"])
    evaluation = ("eval_in", "", ())
    runner = FakeRunner(fail_train={"2"})
    outcomes = sweep.run_sweep(configs, str(tmp_path), ["--gen_filters=2"], ["--stage_steps=1"], evaluation,
                               runner=runner)
    assert [o.status for o in outcomes] == ["trained", "failed", "trained"]
    assert runner.modules() == ["train", "evaluate", "train", "train", "evaluate"]
    rows = _rows(tmp_path)
    assert [(r["model"], r["value"], r["psnr_y"], r["ssim_y"]) for r in rows] == [
        ("UNet", "1", "21.5000", "0.10000"), ("UNet", "2", "", ""), ("UNet", "3", "23.5000", "0.30000")]
    assert rows[0]["model_dir"] == str(tmp_path / "levels" / "UNet-1") and rows[0]["error"] == ""
    assert float(rows[0]["seconds"]) >= 0
    log = tmp_path / "levels" / "UNet-2" / "train.log"
    assert rows[1]["error"] == f"training failed: ValueError: crop too small (log: {log})"
    assert json.loads((tmp_path / "levels" / "UNet-1" / "sweep_command.json").read_text())["train_arguments"] == [
        "--gen_filters=2", "--stage_steps=1", "--model=UNet", "--levels=1",
        f"--model_dir={tmp_path / 'levels' / 'UNet-1'}", "--verbose=0"]

    # Again: finished runs are reused from the CSV, the failed one is trained again.
    runner = FakeRunner()
    outcomes = sweep.run_sweep(configs, str(tmp_path), ["--gen_filters=2"], ["--stage_steps=1"], evaluation,
                               runner=runner)
    assert [o.status for o in outcomes] == ["cached", "trained", "cached"]
    assert runner.modules() == ["train", "evaluate"] and len(_rows(tmp_path)) == 4
    latest = sweep.latest_results(sweep.read_rows(str(tmp_path / "results.csv")), "levels")
    assert sorted(latest) == [("UNet", "1"), ("UNet", "2"), ("UNet", "3")]

    # --reevaluate: evaluation only, one new row each; a CSV without the rows: evaluated, not trained.
    runner = FakeRunner()
    sweep.run_sweep(configs[:1], str(tmp_path), ["--gen_filters=2"], ["--stage_steps=1"], evaluation,
                    reevaluate=True, runner=runner)
    assert runner.modules() == ["evaluate"] and len(_rows(tmp_path)) == 5
    (tmp_path / "results.csv").unlink()
    runner = FakeRunner()
    outcomes = sweep.run_sweep(configs, str(tmp_path), ["--gen_filters=2"], ["--stage_steps=1"], evaluation,
                               runner=runner)
    assert [o.status for o in outcomes] == ["evaluated"] * 3 and runner.modules() == ["evaluate"] * 3

    # Other training arguments for a finished run: refused, not silently reused.
    runner = FakeRunner()
    outcomes = sweep.run_sweep(configs[:1], str(tmp_path), ["--gen_filters=4"], ["--stage_steps=1"], evaluation,
                               runner=runner)
    assert outcomes[0].status == "failed" and runner.calls == []
    assert "was trained with other arguments" in outcomes[0].row["error"]


def test_run_sweep_records_evaluation_failures_and_passes_the_timeout(tmp_path):
    configs = sweep.configurations("levels", ["1", "2", "3"], ["EnDec"])
    fake = FakeRunner(fail_eval={"2"})
    outcomes = sweep.run_sweep(configs[:2], str(tmp_path), evaluation=("in", "tgt", ("--crop_border=4",)),
                               runner=fake, timeout=5)
    assert [o.status for o in outcomes] == ["trained", "failed"] and fake.timeouts == [5, 5]
    assert fake.calls[1] == ("evaluate", str(tmp_path / "levels" / "EnDec-1" / "final.keras"),
                             experiment_runner.EvalSet("evaluation", "in", "tgt", ("--crop_border=4",)))
    log = tmp_path / "levels" / "EnDec-2" / "evaluate.log"
    assert outcomes[1].row["error"] == f"evaluation failed: DataError: no pairs (log: {log})"
    # Scores without the Y channel's numbers are a failure, not a row of wrong numbers.
    outcomes = sweep.run_sweep(configs[2:], str(tmp_path), evaluation=("in", "", ()), runner=FakeRunner(channel="rgb"))
    assert outcomes[0].status == "failed"
    assert outcomes[0].row["error"].startswith("evaluation: no score 'psnr_y' in the scores of evaluation")


def test_results_csv_of_another_kind_is_refused(tmp_path):
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"results.csv has columns a,b, expected sweep,model,value"):
        sweep.run_sweep(sweep.configurations("levels", ["1"], ["UNet"]), str(tmp_path), runner=FakeRunner())


def test_plot_sweep(tmp_path, monkeypatch):
    rows = [dict(sweep="info_accum_position", model="UNet-5", value=v, psnr_y=p, ssim_y="0.5", model_dir="",
                 seconds="1", error=e) for v, p, e in (("1", "20", ""), ("0+1", "22", ""), ("0", "21", ""),
                                                     ("2", "", "boom"))]
    with pytest.raises(ValueError, match=r"no successful levels results to plot"):
        sweep.plot_sweep(rows, "levels", str(tmp_path / "levels.png"))
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert sweep.plot_sweep(rows, "info_accum_position", str(tmp_path / "p.png")) is False
    assert not (tmp_path / "p.png").exists()
    monkeypatch.undo()
    pytest.importorskip("matplotlib")
    assert sweep.plot_sweep(rows, "info_accum_position", str(tmp_path / "p.png")) is True
    assert cv2.imread(str(tmp_path / "p.png")).shape[2] == 3


def test_flag_check_uses_erlrestore_train_rules():
    good = ["--model=UNet", "--levels=2", "--stage_steps=1", "--model_dir=x"]
    messages = sweep.check_train_arguments([good, good + ["--gan_loss=wgan"], ["--model=UNet", "--model_dir=x"]])
    assert messages[0] == ""
    assert messages[1] == "IllegalFlagValueError: flag --gan_loss=wgan: value should be one of <bce|lsgan>"
    assert messages[2] == "ValueError: give the stage lengths as exactly one of --stage_steps or --stage_epochs"



def test_flag_check_accepts_the_commands_own_pixel_limit_and_checks_its_value():
    good = ["--model=UNet", "--levels=2", "--stage_steps=1", "--model_dir=x"]
    messages = sweep.check_train_arguments([good + ["--max_image_pixels=1000"], good + ["--max_image_pixels=-3"]])
    assert messages == ["", "ValueError: --max_image_pixels takes a non-negative integer, not '-3'"]


def test_flag_check_runs_in_this_process_through_flagfiles(monkeypatch):
    from erlrestore.training import experiment  # noqa: F401  (TensorFlow is imported before processes are refused)

    def no_process(*args, **kwargs):
        raise AssertionError("the flag check must not start a process")

    monkeypatch.setattr(subprocess, "run", no_process)
    paper, tiny = REPO / "flags" / "unet5_lsgan.flags", REPO / "flags" / "tiny" / "gan.flags"
    messages = sweep.check_train_arguments([
        [f"--flagfile={paper}", f"--flagfile={tiny}", "--levels=2", "--model_dir=x"],
        [f"--flagfile={paper}", "--gan_los=lsgan", "--model_dir=x"],
        ["--flagfile=no/such.flags", "--model_dir=x"],
        ["--model=UNet", "--stage_steps=1,x", "--model_dir=x"],
    ])
    assert messages[0] == ""
    assert messages[1].startswith("UnrecognizedFlagError: Unknown command line flag 'gan_los'")
    assert messages[2].startswith("CantOpenFlagFileError: ") and "no/such.flags" in messages[2]
    assert messages[3] == "ValueError: --stage_steps takes comma-separated ints, got 1,x"


# --- sweep: end to end with tiny models ------------------------------------------------------------------

TINY = ("--gen_filters=2 --d_filters=2 --crop_size=32 --procedural=2 --degradation=rain --stage_steps=1 "
        "--checkpoint_every=1 --plateau_patience=0")


@pytest.mark.slow
def test_tiny_levels_sweep_end_to_end_then_rerun_skips_training(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("input", "target"):
        (tmp_path / "eval" / sub).mkdir(parents=True)
    for name in ("a.png", "b.png"):
        clean = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / "eval" / "target" / name), clean)
        cv2.imwrite(str(tmp_path / "eval" / "input" / name), np.clip(clean.astype(int) + 40, 0, 255).astype(np.uint8))
    output = tmp_path / "sweep"
    command = [sys.executable, "-m", "tools.sweep", "--sweep=levels", "--values=1,2", "--models=UNet",
               f"--output_dir={output}", f"--extra_flags={TINY}", f"--eval_input_dir={tmp_path / 'eval'}"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    rows = _rows(output)
    assert [(r["sweep"], r["model"], r["value"], r["error"]) for r in rows] == [
        ("levels", "UNet", "1", ""), ("levels", "UNet", "2", "")]
    for row in rows:
        assert 0 < float(row["psnr_y"]) < 60 and 0 < float(row["ssim_y"]) <= 1
        assert (pathlib.Path(row["model_dir"]) / "final.keras").is_file()
    assert result.stdout.splitlines()[1].split()[-1] == "trained"
    # The real run's TensorBoard layout is what fit_loss_curve reads.
    steps, values, label = fit.read_run_scalars(rows[0]["model_dir"], "epoch_g_l1")
    assert label == "stage1_restore" and steps.tolist() == [0.0] and values[0] > 0

    def run_files():
        return {path: (path.stat().st_mtime_ns, path.stat().st_size)
                for path in (output / "levels").rglob("*") if path.is_file()}

    trained = run_files()
    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert [line.split()[-1] for line in again.stdout.splitlines()[1:3]] == ["cached", "cached"]
    assert _rows(output) == rows
    # Nothing was trained or evaluated again: no run file (model, checkpoint, log) was written or added.
    assert run_files() == trained


def test_event_reader_takes_tf1_simple_values_and_ignores_a_cut_off_tail(tmp_path):
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(tmp_path))
    for step, value in ((1, 3.0), (2, 2.0), (3, 1.5)):
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="loss", simple_value=value)])
        writer.add_event(event_pb2.Event(step=step, wall_time=float(step), summary=summary))
    writer.close()
    (path,) = tmp_path.glob("events.out.tfevents*")
    with open(path, "ab") as f:
        f.write(b"\x10\x00\x00")  # a record cut off mid-write
    steps, values = events.read_event_scalars(str(tmp_path), "loss")
    assert steps.tolist() == [1.0, 2.0, 3.0] and values.tolist() == [3.0, 2.0, 1.5]
    with pytest.raises(DataError, match=r"no scalar 'accuracy' .*tags found: loss"):
        events.read_event_scalars(str(tmp_path), "accuracy")
