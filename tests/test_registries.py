"""Backends, metrics and degradations added from outside the package, each through the real command that uses it.

A toy backend (tests/toy_backend.py) is exported by erlrestore-export and
restored by erlrestore-restore; a toy metric is measured by the scoring code
that erlrestore-evaluate runs (and by the command itself, with the toy
backend); a toy degradation makes pairs through erlrestore-synth. The
commands run in a process that registers the toy first, as a plug-in would.
"""

import csv
import dataclasses
import json
import math
import os
import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

import toy_backend
from erlrestore import backends, evaluation, inference, metrics, scoring
from erlrestore.data import image_files, pairing, synthetic
from erlrestore.data.degradations import registry

REPO = pathlib.Path(__file__).resolve().parent.parent
TESTS = pathlib.Path(__file__).resolve().parent


def _run_tool(launcher, *arguments, cwd=REPO):
    """Runs ``launcher`` (Python source that registers a toy, then starts a tool) with ``arguments``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", launcher, *arguments], capture_output=True, text=True,
                          timeout=600, cwd=cwd, env=env)


def _write_png(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR))


def _read_png(path):
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)


def _photo(seed, size=24):
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


# --------------------------------------------------------------------------
# Backends (export formats)
# --------------------------------------------------------------------------


@pytest.fixture
def backend_table():
    """The backend table, restored after the test (registrations made in it do not leak)."""
    saved = list(backends._TABLE)
    yield backends
    backends._TABLE[:] = saved
    backends._refresh_views()


def test_the_builtin_backends_are_the_table_in_order():
    assert backends.NAMES == ("tensorflow", "onnxruntime", "litert", "openvino")
    assert backends.FORMATS == ("saved_model", "onnx", "litert", "openvino")
    assert [b.name for b in backends.EXPORTED] == ["onnxruntime", "litert", "openvino"]
    assert list(backends.BACKENDS) == list(backends.NAMES)


def test_register_refuses_a_backend_that_clashes_or_lacks_a_field(backend_table):
    toy = toy_backend.BACKEND
    for backend, message in [
        (dataclasses.replace(toy, name="onnxruntime"), "name 'onnxruntime' is already backend 'onnxruntime'"),
        (dataclasses.replace(toy, export_format="onnx"), "format 'onnx' is already backend 'onnxruntime'"),
        (dataclasses.replace(toy, marker="model.onnx"), "marker 'model.onnx' is already backend 'onnxruntime'"),
        (dataclasses.replace(toy, extensions=(".json", ".xml")), "extension '.xml' is already backend 'openvino'"),
        (dataclasses.replace(toy, extensions=(".keras",)), "extension '.keras' is already backend 'tensorflow'"),
        (dataclasses.replace(toy, marker=None), "marker must be a non-empty string"),
        (dataclasses.replace(toy, summary=""), "summary must be a non-empty string"),
        (dataclasses.replace(toy, loader="toy_backend.ToyRestorer"), 'loader must be "module:function"'),
        (dataclasses.replace(toy, extensions=("json",)), "extensions must be a non-empty tuple"),
        (dataclasses.replace(toy, extensions=(".JSON",)), "extensions must be a non-empty tuple"),
    ]:
        with pytest.raises(ValueError, match=message):
            backend_table.register(backend)
    with pytest.raises(TypeError, match="takes a backends.Backend"):
        backend_table.register(dataclasses.asdict(toy))
    assert backend_table.NAMES == ("tensorflow", "onnxruntime", "litert", "openvino")


def test_a_registered_backend_joins_every_view_and_loads_its_models(backend_table, tmp_path):
    held = backends.BACKENDS  # a reference taken before the registration
    backend_table.register(toy_backend.BACKEND)
    assert backends.NAMES[-1] == "toy" and backends.FORMATS[-1] == "toy"
    assert backends.EXPORTED[-1] is toy_backend.BACKEND and held["toy"] is toy_backend.BACKEND
    assert backends.get("toy") is backends.for_format("toy") is toy_backend.BACKEND
    assert backends.backend_help().startswith("tensorflow: Keras models")
    assert "; toy: toy models from erlrestore-export --format=toy. An exported model" in backends.backend_help()
    assert backends.format_help().endswith("; toy: <base_dir>/<name>/<version>/toy.json for --backend=toy.")
    with pytest.raises(ValueError, match="name 'toy' is already backend 'toy'"):
        backend_table.register(toy_backend.BACKEND)

    version = toy_backend.export_toy("model.keras", str(tmp_path / "toy_models"))
    restorer = inference.load_restorer(str(tmp_path / "toy_models" / "model"), backend="toy")  # largest version
    assert isinstance(restorer, toy_backend.ToyRestorer) and restorer.source == os.path.join(version, "toy.json")
    with pytest.raises(image_files.DataError, match="holds a Toy model: run it with --backend=toy"):
        inference.load_restorer(version, backend="tensorflow")
    with pytest.raises(image_files.DataError, match="--backend=toy runs Toy models only"):
        inference.load_restorer(str(tmp_path), backend="toy")


@pytest.mark.slow  # runs erlrestore-export and erlrestore-restore as processes
def test_a_registered_backend_exports_and_restores_through_the_commands(tmp_path):
    register = "import toy_backend\nfrom erlrestore import backends\nbackends.register(toy_backend.BACKEND)\n"
    model = tmp_path / "tiny.keras"
    model.write_bytes(b"not read by the toy exporter")
    exported = _run_tool(register + "from erlrestore.cli import export\nexport.run()\n", f"--model={model}",
                         "--format=toy", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-4000:]
    version = tmp_path / "toy_models" / "tiny" / "1"  # the format's own default --base_dir
    assert exported.stdout.strip().splitlines()[-1] == os.path.join("toy_models", "tiny", "1")
    assert json.loads((version / "toy.json").read_text())["add"] == toy_backend.ADD

    photo = _photo(0)
    _write_png(tmp_path / "in" / "photo.png", photo)
    restored = _run_tool(register + "from erlrestore.cli import restore\nrestore.run()\n", "--backend=toy",
                         f"--model={version.parent}", f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out'}",
                         "--tile=20", "--overlap=2")  # tiled: the toy restorer goes through the tiling too
    assert restored.returncode == 0, restored.stderr[-4000:]
    assert restored.stdout.strip().splitlines()[-1] == f"restored 1 images to {tmp_path / 'out'}"
    expected = np.clip(photo + toy_backend.ADD * 255.0, 0, 255)
    np.testing.assert_allclose(_read_png(tmp_path / "out" / "photo.png"), expected, atol=1)

    refused = _run_tool("from erlrestore.cli import restore\nrestore.run()\n", "--backend=toy",  # not registered
                        f"--model={version}", f"--input={tmp_path / 'in'}", f"--output_dir={tmp_path / 'out2'}")
    assert refused.returncode == 2 and "--backend" in refused.stderr and "toy" in refused.stderr


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------


def max_error(restored, clean):
    """A toy metric: the largest absolute difference, on the 0-255 scale."""
    return float(np.max(np.abs(restored - clean)))


TOY_METRIC = metrics.Metric("max_error", max_error, line_decimals=2, csv_decimals=3)


@pytest.fixture
def metric_table(monkeypatch):
    """The metric table, restored after the test."""
    monkeypatch.setattr(metrics, "_METRICS", dict(metrics._METRICS))
    return metrics


def test_psnr_and_ssim_are_looked_up_by_name():
    assert metrics.metric_names() == metrics.BUILTIN_METRICS == ("psnr", "ssim")
    clean = _photo(1, 32) / 255.0
    noisy = np.clip(clean + np.random.default_rng(2).normal(0, 0.05, clean.shape), 0, 1)
    for channel, y in (("y", True), ("rgb", False)):
        psnr, ssim = metrics.psnr(noisy, clean, 2, y), metrics.ssim(noisy, clean, 2, y)
        assert metrics.measure(noisy, clean, 2, channel) == {"psnr": psnr, "ssim": ssim}
        assert metrics.psnr_ssim(noisy, clean, 2, channel) == (psnr, ssim)
    with pytest.raises(ValueError, match="unknown metric 'lpips'; registered: psnr, ssim"):
        metrics.get_metric("lpips")


def test_register_metric_refuses_a_clash_or_a_bad_name(metric_table):
    for metric, error, message in [
        (dataclasses.replace(TOY_METRIC, name="psnr"), ValueError, "metric 'psnr' is already registered"),
        (dataclasses.replace(TOY_METRIC, name="Max error"), ValueError, "lower-case identifier"),
        (dataclasses.replace(TOY_METRIC, compute=None), TypeError, "compute must be callable"),
    ]:
        with pytest.raises(error, match=message):
            metric_table.register_metric(metric)
    assert metric_table.metric_names() == ("psnr", "ssim")


def test_a_registered_metric_is_scored_summarized_and_written_by_evaluation(metric_table, tmp_path):
    """erlrestore-evaluate's scoring (evaluation.evaluate_model, summary line, CSV) with a toy metric."""
    metric_table.register_metric(TOY_METRIC)
    clean = [_photo(3), _photo(4)]
    for i, image in enumerate(clean):
        _write_png(tmp_path / "target" / f"{i}.png", image)
        _write_png(tmp_path / "input" / f"{i}.png", image)
    pairs = pairing.find_pairs(str(tmp_path / "input"), str(tmp_path / "target"))

    def brighten(batch):  # a restorer: +10 levels (clipped), so max_error is 10 but where clipping cuts it
        return np.clip(batch + 10 / 255.0, 0.0, 1.0)

    scores, summary, _, inputs = evaluation.evaluate_model(brighten, pairs, show_progress=False, channel="rgb",
                                                           return_input=True)
    expected = [float(np.max(np.minimum(image.astype(int) + 10, 255) - image)) for image in clean]
    assert [dict(s.extra_metrics) for s in scores] == [{"max_error": pytest.approx(e)} for e in expected]
    assert summary.extra_metrics == (("max_error", pytest.approx(sum(expected) / 2)),)
    assert summary.line() == f"n=2 psnr_rgb={summary.psnr:.4f} ssim_rgb={summary.ssim:.5f} max_error_rgb=10.00"
    # The gain line (erlrestore-evaluate's input -> restored) carries it too; the inputs are the clean images.
    assert inputs.extra_metrics == (("max_error", 0.0),) and inputs.psnr == math.inf
    assert evaluation.gain_line(summary, inputs) == (
        f"gain: psnr_rgb=-inf ssim_rgb={summary.ssim - 1.0:+.5f} max_error_rgb=+10.00")
    assert (scores[0].psnr, scores[0].ssim) == pytest.approx(metrics.psnr_ssim(  # unchanged by the extra metric
        np.clip(clean[0].astype(int) + 10, 0, 255).astype(np.uint8), clean[0], 0, "rgb"))

    evaluation.write_csv(tmp_path / "scores.csv", scores, extra_columns={"note": ["a", "b"]})
    rows = list(csv.reader(open(tmp_path / "scores.csv", encoding="utf-8")))
    assert rows[0] == ["name", "input", "target", "psnr_rgb", "ssim_rgb", "max_error_rgb", "note"]
    assert [row[5] for row in rows[1:]] == ["10.000", "10.000"] and rows[1][6] == "a"

    mixed = [scores[0], dataclasses.replace(scores[1], extra_metrics=())]
    with pytest.raises(ValueError, match="different metrics"):
        scoring.summarize(mixed)


def test_without_a_registered_metric_the_scores_and_csv_are_psnr_and_ssim_only(tmp_path):
    image = _photo(5)
    pair = pairing.Pair("a_in.png", "a_gt.png")
    score = scoring.image_score(pair, np.clip(image.astype(int) + 3, 0, 255).astype(np.uint8), image)
    assert score.extra_metrics == ()
    summary = scoring.summarize([score])
    assert summary.line() == f"n=1 psnr_y={score.psnr:.4f} ssim_y={score.ssim:.5f}"
    scoring.write_csv(tmp_path / "s.csv", [score])
    assert (tmp_path / "s.csv").read_text().splitlines() == [
        "name,input,target,psnr_y,ssim_y", f"a_in.png,a_in.png,a_gt.png,{score.psnr:.6f},{score.ssim:.7f}"]


def test_a_gain_line_needs_the_same_metrics_on_both_sides(metric_table):
    metric_table.register_metric(TOY_METRIC)
    restored = scoring.Summary(2, 31.0, 0.9, "y", (("max_error", 12.5),))
    inputs = scoring.Summary(2, 30.0, 0.8, "y", (("max_error", 20.0),))
    assert scoring.gain_line(restored, inputs) == "gain: psnr_y=+1.0000 ssim_y=+0.10000 max_error_y=-7.50"
    with pytest.raises(ValueError, match="different metrics"):
        scoring.gain_line(restored, dataclasses.replace(inputs, extra_metrics=()))


def test_a_classical_baseline_records_and_prints_a_registered_metric(metric_table, tmp_path):
    """tools.classical_baselines: per-image rows and lines, the means and the summary lines carry the toy metric."""
    from tools import classical_baselines

    metric_table.register_metric(TOY_METRIC)
    for i in range(2):
        clean = _photo(10 + i, 48)
        _write_png(tmp_path / "target" / f"{i}.png", clean)
        _write_png(tmp_path / "input" / f"{i}.png", np.clip(clean.astype(int) + 30, 0, 255).astype(np.uint8))
    pairs = pairing.find_pairs(str(tmp_path / "input"), str(tmp_path / "target"))
    record, summary = classical_baselines.run_baseline(pairs, "dcp", dcp_parameters=dict(patch=7, radius=16),
                                                       output_dir=tmp_path / "out", show_progress=False)
    input_scores, inputs = evaluation.measure_pairs(pairs, show_progress=False)
    for row, before, pair in zip(record["images"], input_scores, pairs):
        written = image_files.read_image(tmp_path / "out" / (pathlib.Path(pair.input_path).stem + ".png"))
        _, clean = pairing.load_pair(pair)
        assert row["max_error_y"] == pytest.approx(metrics.measure(written, clean)["max_error"])
        assert row["input_max_error_y"] == pytest.approx(dict(before.extra_metrics)["max_error"])
        line = classical_baselines.image_line(row, "y")
        assert line.startswith(f"{row['name']} psnr_y={row['psnr_y']:.4f} ssim_y={row['ssim_y']:.5f} "
                               f"max_error_y={row['max_error_y']:.2f} input_psnr_y=")
        assert f" input_max_error_y={row['input_max_error_y']:.2f} seconds=" in line
    assert record["mean"] == {"psnr_y": summary.psnr, "ssim_y": summary.ssim,
                              "max_error_y": dict(summary.extra_metrics)["max_error"]}
    assert record["input_mean"]["max_error_y"] == pytest.approx(dict(inputs.extra_metrics)["max_error"])
    assert record["summary_line"] == summary.line() and summary.line().endswith(
        f" max_error_y={record['mean']['max_error_y']:.2f}")
    assert record["input_summary_line"].endswith(f" max_error_y={record['input_mean']['max_error_y']:.2f}")
    json.dumps(record, allow_nan=False)


def test_a_run_record_carries_a_registered_metric(metric_table, backend_table, monkeypatch, tmp_path):
    """erlrestore-reproduce's run record: per-image scores and means of the toy metric, scored as the runner does."""
    from erlrestore import records, reproduce, runner

    metric_table.register_metric(TOY_METRIC)
    backend_table.register(toy_backend.BACKEND)
    model = toy_backend.export_toy("toy", str(tmp_path / "models"))
    clean = [_photo(20), _photo(21)]
    for i, image in enumerate(clean):
        _write_png(tmp_path / "set" / "target" / f"{i}.png", image)
        _write_png(tmp_path / "set" / "input" / f"{i}.png", image)

    def scored_run(arguments, eval_sets=(), *, csv_paths=None, on_stage=None, **_):
        """runner.run without the training: scores the toy model in this process (runner.evaluate)."""
        experiment = runner.Experiment(runner.model_dir_of(arguments))
        for eval_set in eval_sets:
            toy_set = dataclasses.replace(eval_set, flags=(*eval_set.flags, "--backend=toy"))
            experiment.scores[eval_set.name] = runner.evaluate(model, toy_set, (csv_paths or {}).get(eval_set.name))
        return experiment

    monkeypatch.setattr(runner, "run", scored_run)
    table = reproduce.TABLES["erlnet_table2"]
    eval_sets = {"toyset": (str(tmp_path / "set" / "input"), str(tmp_path / "set" / "target"))}
    flags_dir = str(REPO / "flags")
    result = reproduce.run_row(table, table.row("memd"), "tiny", flags_dir, ("--procedural=4",), eval_sets,
                               str(tmp_path / "runs"), log=lambda *_: None)
    assert result.error == ""
    record = reproduce.make_record(table, result, scale="tiny", flags_dir=flags_dir, data_root="",
                                   eval_sets=eval_sets)
    restored = [np.clip(image.astype(int) + 64, 0, 255).astype(np.uint8) for image in clean]  # +0.25, 8 bits
    expected = [metrics.measure(r, c)["max_error"] for r, c in zip(restored, clean)]
    scores = record["test_sets"]["toyset"]
    assert [set(image) for image in scores["images"]] == [{"name", "psnr", "ssim", "max_error"}] * 2
    assert [image["max_error"] for image in scores["images"]] == [float(f"{e:.3f}") for e in expected]
    assert scores["max_error_mean"] == round(sum(expected) / 2, 2)
    assert scores["psnr_mean"] == pytest.approx(sum(i["psnr"] for i in scores["images"]) / 2, abs=1e-4)
    assert records.per_image_scores(record, "toyset", "max_error") == {
        "0.png": float(f"{expected[0]:.3f}"), "1.png": float(f"{expected[1]:.3f}")}
    assert records.per_image_psnr(record, "toyset") == records.per_image_scores(record, "toyset", "psnr")


@pytest.mark.slow  # runs erlrestore-evaluate as a process
def test_erlrestore_evaluate_reports_a_registered_metric_of_a_registered_backend(tmp_path):
    launcher = ("import toy_backend, test_registries\nfrom erlrestore import backends, metrics\n"
                "backends.register(toy_backend.BACKEND)\nmetrics.register_metric(test_registries.TOY_METRIC)\n"
                "from erlrestore.cli import evaluate\nevaluate.run()\n")
    model = pathlib.Path(toy_backend.export_toy("toy", str(tmp_path / "models")))
    clean = _photo(6)
    _write_png(tmp_path / "target" / "a.png", clean)
    _write_png(tmp_path / "input" / "a.png", clean)
    result = _run_tool(launcher, f"--model={model}", "--backend=toy", f"--input_dir={tmp_path / 'input'}",
                       f"--target_dir={tmp_path / 'target'}", "--channel=rgb", f"--csv={tmp_path / 'scores.csv'}",
                       f"--baseline_model={model}")
    assert result.returncode == 0, result.stderr[-4000:]
    restored = np.clip(clean.astype(int) + 64, 0, 255)  # +0.25 on [0, 1], rounded to 8 bits
    worst = float(np.max(restored - clean))
    last = result.stdout.strip().splitlines()[-1]
    assert last.startswith("n=1 psnr_rgb=") and last.endswith(f" max_error_rgb={worst:.2f}")
    rows = list(csv.DictReader(open(tmp_path / "scores.csv", encoding="utf-8")))
    assert float(rows[0]["max_error_rgb"]) == pytest.approx(worst, abs=1e-3)
    assert float(rows[0]["baseline_max_error_rgb"]) == pytest.approx(worst, abs=1e-3)  # the baseline's columns too
    assert math.isclose(float(rows[0]["psnr_rgb"]), metrics.psnr(restored.astype(np.uint8), clean, y_channel=False),
                        abs_tol=1e-6)


# --------------------------------------------------------------------------
# Degradations
# --------------------------------------------------------------------------


def add_tint(clean, seed, *, tint=0.2, density=0.0):
    """A toy degradation: adds ``tint`` to the red channel, and ``density`` (a known parameter) to all three."""
    del seed  # deterministic
    clean = tf.convert_to_tensor(clean, tf.float32)
    return tf.clip_by_value(clean + tf.constant([tint, 0.0, 0.0]) + density, 0.0, 1.0)


def check_tint(value):
    if not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"tint must be a number in [0, 1], got {value!r}")


@pytest.fixture
def degradation_table():
    """The degradation table and parameter validators, restored in place after the test."""
    saved = dict(registry.DEGRADATIONS), dict(registry._PARAM_CHECKS)
    yield registry
    for table, contents in zip((registry.DEGRADATIONS, registry._PARAM_CHECKS), saved):
        table.clear()
        table.update(contents)


def test_register_degradation_refuses_a_clash_or_an_unchecked_parameter(degradation_table):
    register = synthetic.register_degradation
    for arguments, error, message in [
        (("rain", add_tint, {"tint": check_tint}), ValueError, "degradation 'rain' is already registered"),
        (("Tint", add_tint, {"tint": check_tint}), ValueError, "lower-case identifier"),
        (("tint", add_tint, {}), ValueError, "give a validator in param_checks for tint"),
        (("tint", add_tint, {"tint": check_tint, "density": check_tint}), ValueError,
         "parameter\\(s\\) density are already declared"),
        (("tint", add_tint, {"tint": check_tint, "hue": check_tint}), ValueError, "takes no parameter\\(s\\) hue"),
        (("tint", lambda clean, seed, tint=0.2: clean, {"tint": check_tint}), ValueError,
         "must take \\(clean, seed, \\*, parameters...\\)"),
        (("tint", add_tint, {"tint": 0.5}), TypeError, "the validator of 'tint' is not callable"),
        (("tint", "add_tint", {}), TypeError, "expected a function"),
    ]:
        with pytest.raises(error, match=message):
            register(*arguments)
    assert "tint" not in synthetic.DEGRADATIONS and "tint" not in synthetic._PARAM_CHECKS


def test_a_registered_degradation_is_made_checked_and_parsed_like_the_others(degradation_table):
    assert synthetic.register_degradation("tint", add_tint, {"tint": check_tint}) is add_tint
    assert synthetic.DEGRADATIONS["tint"] is add_tint  # the table every module reads, updated in place
    assert synthetic.degradation_params("tint") == {"tint": 0.2, "density": 0.0}
    with pytest.raises(ValueError, match="tint must be a number in \\[0, 1\\]"):
        synthetic.make_degradation("tint", tint=2)
    with pytest.raises(ValueError, match="density"):  # the built-in validator of a shared parameter
        synthetic.make_degradation("tint", density=-1)
    degrade = synthetic.make_degradation("tint", **synthetic.parse_params("tint=0.5"))
    out = degrade(np.full((2, 2, 3), 0.25, np.float32), [0, 0]).numpy()
    np.testing.assert_allclose(out[0, 0], [0.75, 0.25, 0.25])


@pytest.mark.slow  # runs erlrestore-synth as a process
def test_erlrestore_synth_makes_pairs_with_a_registered_degradation(tmp_path):
    launcher = ("import test_registries\nfrom erlrestore.data import synthetic\n"
                "synthetic.register_degradation('tint', test_registries.add_tint, "
                "{'tint': test_registries.check_tint})\nfrom erlrestore.cli import synth\nsynth.run()\n")
    _write_png(tmp_path / "clean" / "a.png", _photo(7))
    result = _run_tool(launcher, f"--clean_dir={tmp_path / 'clean'}", f"--output_dir={tmp_path / 'pairs'}",
                       "--degradation=tint", "--degradation_params=tint=0.5", "--rain_density=0.1")
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.strip().splitlines()[-1] == f"wrote 1 pairs (tint) to {tmp_path / 'pairs'}"
    clean, degraded = (_read_png(tmp_path / "pairs" / part / "a.png").astype(int) for part in ("target", "input"))
    np.testing.assert_array_equal(clean, _photo(7))
    expected = np.clip(clean + np.array([0.5 * 255, 0, 0]) + 0.1 * 255, 0, 255)  # --rain_density sets density
    np.testing.assert_allclose(degraded, expected, atol=1)
