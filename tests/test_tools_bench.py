"""tools.benchmark (FLOP counting, the compute benchmark) and tools.recon_experiment (Table III)."""

import csv
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from erlrestore.data import image_files
from erlrestore.layers import InfoAccum, SubPixelUpsample
from erlrestore.models import pix2pix
from erlrestore.training import experiment, strategies
from tools import benchmark
from tools import recon_experiment as recon

REPO = pathlib.Path(__file__).resolve().parent.parent


_BENCH_ARGS = ("--quick", "--models=erlnet,pix2pix", "--batch_sizes=2", "--precisions=float32")
_RECON_ARGS = ("--clean_dir=", "--procedural=3", "--procedural_size=24", "--holdout=1", "--eval_size=16",
               "--crop_size=16", "--steps=2", "--batch_size=2", "--gen_filters=2", "--info_accum_layers=1")


@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory):
    """Both tools' tiny runs, started together (they are mostly TensorFlow start-up and tracing)."""
    output_csv = tmp_path_factory.mktemp("recon") / "table3.csv"
    output_json = tmp_path_factory.mktemp("benchmark") / "benchmark.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    commands = {
        "benchmark": [sys.executable, "-m", "tools.benchmark", *_BENCH_ARGS, f"--output={output_json}"],
        "recon_experiment": [sys.executable, "-m", "tools.recon_experiment", *_RECON_ARGS,
                             f"--output_csv={output_csv}"],
    }
    processes = {name: subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True) for name, command in commands.items()}
    runs = {}
    try:
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=300)
            runs[name] = subprocess.CompletedProcess(commands[name], process.returncode, stdout, stderr)
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    runs["recon_csv"] = output_csv
    runs["benchmark_json"] = output_json
    return runs


def _single_layer_model(input_shape, layer):
    inputs = keras.Input(shape=input_shape)
    return keras.Model(inputs, layer(inputs))


# ---------------------------------------------------------------------------
# conv_flops: hand-computed cases
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_shape, layer, batch, expected",
    [
        # 2 * K_h * K_w * C_in * C_out * H_out * W_out
        ((8, 8, 3), keras.layers.Conv2D(5, 3, padding="same"), 1, 2 * 3 * 3 * 3 * 5 * 8 * 8),
        # stride 2, valid: 9x9 -> 4x4; the batch multiplies
        ((9, 9, 2), keras.layers.Conv2D(4, 3, strides=2), 2, 2 * (2 * 3 * 3 * 2 * 4 * 4 * 4)),
        # dilation does not change the count; groups divide C_in
        ((6, 6, 4), keras.layers.Conv2D(6, 3, padding="same", dilation_rate=2, groups=2), 1, 2 * 9 * 2 * 6 * 36),
        # transposed: per INPUT pixel (5x5), not per output pixel (10x10)
        ((5, 5, 6), keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same"), 1, 2 * 4 * 4 * 6 * 4 * 5 * 5),
        # dense on a vector, and on every position of a sequence
        ((3,), keras.layers.Dense(7), 1, 2 * 3 * 7),
        ((4, 5), keras.layers.Dense(7), 1, 2 * 5 * 7 * 4),
    ],
    ids=["conv_same", "conv_strided_batch2", "conv_dilated_grouped", "conv_transpose", "dense", "dense_sequence"],
)
def test_conv_flops_of_single_layers(input_shape, layer, batch, expected):
    model = _single_layer_model(input_shape, layer)
    assert benchmark.conv_flops(model, (batch, *input_shape)) == expected


def test_conv_flops_counts_convolutions_nested_in_custom_layers():
    inputs = keras.Input(shape=(4, 4, 3))
    h = InfoAccum(2, growth_rate=2, norm="none", name="ia")(inputs)  # 3 -> 3 + 6 -> 3 + 12 channels
    outputs = SubPixelUpsample(3, scale=2, kernel_size=3, name="up")(h)  # 15 -> 12 channels at 4x4
    model = keras.Model(inputs, outputs)
    records = benchmark.conv_flops_by_layer(model, (None, 4, 4, 3))
    layer0 = 2 * 9 * 3 * 2 * 16  # each of F, G, H of dense layer 0: 3 -> 2 channels
    layer1 = 2 * 9 * 9 * 2 * 16  # dense layer 1 reads 3 + 6 channels
    up = 2 * 9 * 15 * 12 * 16
    assert records == [("ia/conv_0_d1", layer0), ("ia/conv_0_d3", layer0), ("ia/conv_0_d5", layer0),
                       ("ia/conv_1_d1", layer1), ("ia/conv_1_d3", layer1), ("ia/conv_1_d5", layer1),
                       ("up/conv", up)]
    # The wrapped calls are gone afterwards.
    assert not any("call" in layer.__dict__ for _, layer in benchmark._named_layers(model))


def test_conv_flops_uses_the_padded_size_and_several_inputs():
    # UNet-1 pads 5x5 to 6x6: encoder 4x4/2 conv 3 -> 2 at 3x3 output, transposed 2 -> 3 at 3x3 input.
    generator = pix2pix.build_generator(pix2pix.generator_config("unet1", base_filters=2))
    assert benchmark.conv_flops(generator, (1, 5, 5, 3)) == 2 * 16 * 3 * 2 * 9 + 2 * 16 * 2 * 3 * 9
    # PatchGAN with 2 layers on 8x8 pairs: pad -> 10x10x6, 4x4 stride 1 -> 7x7x2; pad -> 9x9, 4x4 -> 6x6x1.
    discriminator = pix2pix.build_patchgan(base_filters=2, num_layers=2)
    assert benchmark.conv_flops(discriminator, [(1, 8, 8, 3)] * 2) == 2 * 16 * 6 * 2 * 49 + 2 * 16 * 2 * 1 * 36


def test_conv_flops_rejects_unknown_spatial_sizes():
    model = _single_layer_model((None, None, 3), keras.layers.Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"only the batch dimension may be None, got \(1, None, 8, 3\)"):
        benchmark.conv_flops(model, (1, None, 8, 3))


def test_training_step_flops_convention():
    assert benchmark.training_step_flops(g_forward=10, d_forward=1) == 37  # 3 F_G + 7 F_D


def test_staged_step_flops_per_stage():
    # Forward + 2 F per trained branch + 1 F per frozen branch on the gradient path (MDE under MEN/REN).
    net = {"men": 1, "ren": 10, "mde": 100}
    c2c = {"men": 1000, "mde": 10000}
    memd_stage, = strategies.strategy("MEMD")
    assert benchmark.staged_step_flops(memd_stage, {"men": 1, "mde": 100}) == 3 * 101
    stage_1, stage_2, stage_3 = strategies.strategy("MA_D")
    assert benchmark.staged_step_flops(stage_1, net, c2c) == 3 * 1 + 10 + 3 * 100 + 3 * 11000
    assert benchmark.staged_step_flops(stage_2, net, c2c) == 1 + 3 * 10 + 2 * 100 + 1000
    assert benchmark.staged_step_flops(stage_3, net, c2c) == 1 + 3 * 10 + 3 * 100


def test_build_grid_full_and_reduced():
    full = benchmark.build_grid([256, 320], [1, 4], ["float32", "mixed_bfloat16"], ["off", "on"], "full")
    assert len(full) == 16 and len(set(full)) == 16
    reduced = benchmark.build_grid([256, 320], [1, 4], ["float32", "mixed_bfloat16"], ["off", "on"], "reduced")
    assert reduced == [(256, 1, "float32", "off"), (256, 4, "float32", "off"), (320, 1, "float32", "off"),
                       (256, 1, "float32", "on"), (256, 1, "mixed_bfloat16", "off"), (256, 1, "mixed_bfloat16", "on")]


def test_run_benchmark_refuses_a_crop_too_small_for_the_patchgan():
    with pytest.raises(ValueError, match="a 16 px crop is too small for a 5-layer PatchGAN"):
        benchmark.run_benchmark(["pix2pix"], [16], [1], ["float32"], ["off"], "full", steps=1, warmup=0,
                                matmul_sizes=[64], report=lambda line: None)


@pytest.mark.slow
def test_benchmark_quick_run_writes_consistent_json(tool_runs):
    result = tool_runs["benchmark"]
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    with open(tool_runs["benchmark_json"], encoding="utf-8") as f:
        assert json.load(f) == figures
    assert figures["machine"]["tensorflow"] and figures["machine"]["cpu_count"] >= 1
    assert figures["machine"]["device_name"]
    assert figures["settings"]["sizes"] == [32] and figures["settings"]["batch_sizes"] == [2]
    peaks = figures["matmul_peak_flops"]
    assert list(peaks) == ["float32"] and peaks["float32"] > 0
    assert all(r["flops_per_s"] <= peaks[r["dtype"]] for r in figures["matmul"])
    records = figures["results"]
    assert [(r["model"], r["stage"]) for r in records] == [
        ("erlnet", "I"), ("erlnet", "II"), ("erlnet", "III"), ("pix2pix", "restore")]
    for r in records:
        assert set(r) == set(benchmark.RECORD_KEYS)
        assert r["error"] is None and (r["size"], r["batch"], r["precision"], r["jit"]) == (32, 2, "float32", "off")
        assert r["train_step_ms"] > 0 and r["infer_ms"] > 0 and r["peak_memory_bytes"] > 0
        seconds = r["train_step_ms"] / 1e3
        assert r["steps_per_s"] == pytest.approx(1 / seconds)
        assert r["images_per_s"] == pytest.approx(2 / seconds)
        assert r["train_fraction_of_peak"] == pytest.approx(r["train_flops_per_step"] / seconds / peaks["float32"])
        infer_s = r["infer_ms"] / 1e3
        assert r["megapixels_per_s"] == pytest.approx(2 * 32 * 32 / 1e6 / infer_s)
        assert r["infer_fraction_of_peak"] == pytest.approx(r["infer_flops"] / infer_s / peaks["float32"])
    # The FLOPs are those of the networks the settings build, counted here.
    networks = experiment.build_networks(benchmark.model_settings("pix2pix", "float32", "off", quick=True))
    shape = (1, 32, 32, 3)
    g_flops = benchmark.conv_flops(networks["final.keras"], shape)
    d_flops = benchmark.conv_flops(networks["discriminator.keras"], [shape, shape])
    assert records[3]["train_flops_per_step"] == 2 * (3 * g_flops + 7 * d_flops)
    assert records[3]["infer_flops"] == 2 * g_flops
    assert records[3]["params"] == {"final": sum(int(np.prod(w.shape)) for w in networks["final.keras"].weights),
                                    "discriminator": sum(int(np.prod(w.shape))
                                                         for w in networks["discriminator.keras"].weights)}
    networks = experiment.build_networks(benchmark.model_settings("erlnet", "float32", "off", quick=True))
    net = benchmark.conv_flops_by_branch(networks["final.keras"], shape)
    c2c = benchmark.conv_flops_by_branch(networks["c2c.keras"], shape)
    assert set(net) == {"men", "ren", "mde"} and set(c2c) == {"men", "mde"}
    for stage, record in zip(strategies.strategy("MA_D"), records[:3]):
        assert record["train_flops_per_step"] == 2 * benchmark.staged_step_flops(stage, net, c2c)
        assert record["infer_flops"] == 2 * sum(net.values())
    assert "steps/s" in result.stderr and "matmul peak float32" in result.stderr


# ---------------------------------------------------------------------------
# recon_experiment
# ---------------------------------------------------------------------------


def _results(*psnrs):
    return [recon.Result(label, row, 1, p, 0.9, 1.0) for (label, row), p in zip(recon.table_rows(), psnrs)]


def test_table_rows_follow_the_paper_order():
    assert [row for _, row in recon.table_rows(include_unet8=True)] == [
        "endec5", "unet5", "unet5_infoaccum15", "unet5_infoaccum15_subpix", "pix2pix"]
    assert recon.table_rows(2)[3] == ("UNet-5 + InfoAccum-2 + SubPixUpsamp", "unet5_infoaccum2_subpix")


def test_ordering_verdict():
    holds, text = recon.ordering_verdict(_results(24.06, 34.28, 42.58, 49.41))  # the paper's numbers
    assert holds and text.startswith("En/Decoder << UNet-5 (24.06 vs 34.28 dB")
    holds, text = recon.ordering_verdict(_results(32.0, 34.28, 42.58, 49.41), much_lower_db=3.0)
    assert not holds and text == "En/Decoder << UNet-5 (32.00 vs 34.28 dB, need a 3 dB gap)"
    unet8 = recon.Result("pix2pix (UNet-8)", "pix2pix", 1, 99.0, 1.0, 1.0)  # a fifth row is not consulted
    holds, text = recon.ordering_verdict(_results(24.0, 34.0, 42.0, 41.0) + [unet8])
    assert not holds
    assert text == "UNet-5 + InfoAccum-15 < UNet-5 + InfoAccum-15 + SubPixUpsamp (42.00 vs 41.00 dB)"
    with pytest.raises(ValueError, match="needs the four Table III rows, got 2 results"):
        recon.ordering_verdict(_results(1.0, 2.0))


def test_quantize_and_center_crop():
    assert recon.quantize_8bit(np.array([-0.1, 0.5, 0.998, 1.2])).tolist() == [0, 128, 254, 255]
    image = np.arange(10 * 12 * 3).reshape(10, 12, 3)
    np.testing.assert_array_equal(recon._center_crop(image, 4), image[3:7, 4:8])
    assert recon._center_crop(image, 0) is image


def test_load_data_needs_more_images_than_the_holdout(tmp_path):
    image_files.write_image(tmp_path / "only.png", np.full((16, 16, 3), 0.5, np.float32))
    with pytest.raises(image_files.DataError, match=f"{tmp_path} holds 1 images; need more than --holdout=1"):
        recon.load_data(str(tmp_path), holdout=1, eval_size=0, crop_size=8)


@pytest.mark.slow
def test_recon_experiment_tiny_run_prints_the_table_and_the_ordering_line(tool_runs):
    result, output_csv = tool_runs["recon_experiment"], tool_runs["recon_csv"]
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("model "))
    table = lines[header + 1:header + 5]
    assert [line.split("  ")[0].strip() for line in table] == [
        "En/Decoder-5", "UNet-5", "UNet-5 + InfoAccum-1", "UNet-5 + InfoAccum-1 + SubPixUpsamp"]
    assert lines[-1].startswith("paper ordering En/Decoder << UNet-5 < UNet-5+IA1 < UNet-5+IA1+SubPix: ")
    assert lines[-1].split(": ", 1)[1].startswith(("appears (", "does not appear ("))
    with open(output_csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["generator"] for r in rows] == ["endec5", "unet5", "unet5_infoaccum1", "unet5_infoaccum1_subpix"]
    for row, line in zip(rows, table):
        psnr = float(row["psnr_y"])
        assert 5 < psnr < 60 and float(line.split()[-3]) == pytest.approx(psnr, abs=0.0051)
        assert 0 < float(row["ssim_y"]) <= 1 and row["steps"] == "2" and row["gen_filters"] == "2"
