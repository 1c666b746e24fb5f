"""tools/bench_gan.py (FLOP counting, the benchmark) and tools/recon_experiment.py (Table III)."""

import csv
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from erlrestore.data import io
from erlrestore.layers import InfoAccum, SubPixelUpsample
from erlrestore.models import pix2pix

REPO = pathlib.Path(__file__).resolve().parent.parent


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(f"tools_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_gan = _load_tool("bench_gan")
recon = _load_tool("recon_experiment")


_BENCH_ARGS = ("--crop_size=32", "--gen_filters=2", "--levels=2", "--disc_filters=2", "--steps=2", "--warmup=0")
_RECON_ARGS = ("--clean_dir=", "--procedural=3", "--procedural_size=24", "--holdout=1", "--eval_size=16",
               "--crop_size=16", "--steps=2", "--batch_size=2", "--gen_filters=2", "--info_accum_layers=1")


@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory):
    """Both tools' tiny runs, started together (they are mostly TensorFlow start-up and tracing)."""
    output_csv = tmp_path_factory.mktemp("recon") / "table3.csv"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    commands = {
        "bench_gan": [sys.executable, "tools/bench_gan.py", *_BENCH_ARGS],
        "recon_experiment": [sys.executable, "tools/recon_experiment.py", *_RECON_ARGS,
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
    assert bench_gan.conv_flops(model, (batch, *input_shape)) == expected


def test_conv_flops_counts_convolutions_nested_in_custom_layers():
    inputs = keras.Input(shape=(4, 4, 3))
    h = InfoAccum(2, growth_rate=2, norm="none", name="ia")(inputs)  # 3 -> 3 + 6 -> 3 + 12 channels
    outputs = SubPixelUpsample(3, scale=2, kernel_size=3, name="up")(h)  # 15 -> 12 channels at 4x4
    model = keras.Model(inputs, outputs)
    records = bench_gan.conv_flops_by_layer(model, (None, 4, 4, 3))
    layer0 = 2 * 9 * 3 * 2 * 16  # each of F, G, H of dense layer 0: 3 -> 2 channels
    layer1 = 2 * 9 * 9 * 2 * 16  # dense layer 1 reads 3 + 6 channels
    up = 2 * 9 * 15 * 12 * 16
    assert records == [("ia/conv_0_d1", layer0), ("ia/conv_0_d3", layer0), ("ia/conv_0_d5", layer0),
                       ("ia/conv_1_d1", layer1), ("ia/conv_1_d3", layer1), ("ia/conv_1_d5", layer1),
                       ("up/conv", up)]
    # The wrapped calls are gone afterwards.
    assert not any("call" in layer.__dict__ for _, layer in bench_gan._named_layers(model))


def test_conv_flops_uses_the_padded_size_and_several_inputs():
    # UNet-1 pads 5x5 to 6x6: encoder 4x4/2 conv 3 -> 2 at 3x3 output, transposed 2 -> 3 at 3x3 input.
    generator = pix2pix.build_generator(pix2pix.generator_config("unet1", base_filters=2))
    assert bench_gan.conv_flops(generator, (1, 5, 5, 3)) == 2 * 16 * 3 * 2 * 9 + 2 * 16 * 2 * 3 * 9
    # PatchGAN with 2 layers on 8x8 pairs: pad -> 10x10x6, 4x4 stride 1 -> 7x7x2; pad -> 9x9, 4x4 -> 6x6x1.
    discriminator = pix2pix.build_patchgan(base_filters=2, num_layers=2)
    assert bench_gan.conv_flops(discriminator, [(1, 8, 8, 3)] * 2) == 2 * 16 * 6 * 2 * 49 + 2 * 16 * 2 * 1 * 36


def test_conv_flops_rejects_unknown_spatial_sizes():
    model = _single_layer_model((None, None, 3), keras.layers.Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"only the batch dimension may be None, got \(1, None, 8, 3\)"):
        bench_gan.conv_flops(model, (1, None, 8, 3))


def test_training_step_flops_convention():
    assert bench_gan.training_step_flops(g_forward=10, d_forward=1) == 37  # 3 F_G + 7 F_D


def test_run_benchmark_refuses_a_crop_too_small_for_the_patchgan():
    with pytest.raises(ValueError, match="a 16 px crop is too small for a 5-layer PatchGAN"):
        bench_gan.run_benchmark(crop_size=16, report=lambda line: None)


def test_bench_gan_tiny_run_prints_figures_and_a_json_line(tool_runs):
    result = tool_runs["bench_gan"]
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert tuple(figures) == bench_gan.JSON_KEYS
    assert figures["machine"]["tensorflow"] and figures["machine"]["cpu_count"] >= 1
    assert (figures["generator"], figures["levels"], figures["crop_size"]) == ("pix2pix", 2, 32)
    # The same models, counted here: the tool builds what the flags say.
    config = pix2pix.generator_config("pix2pix", base_filters=2, levels=2)
    generator = pix2pix.build_generator(config)
    discriminator = pix2pix.build_patchgan(base_filters=2, num_layers=5)
    assert figures["g_forward_flops"] == bench_gan.conv_flops(generator, (1, 32, 32, 3))
    assert figures["d_forward_flops"] == bench_gan.conv_flops(discriminator, [(1, 32, 32, 3)] * 2)
    assert figures["train_step_flops"] == 3 * figures["g_forward_flops"] + 7 * figures["d_forward_flops"]
    assert figures["inference_flops"] == figures["g_forward_flops"]
    assert figures["g_params"] == sum(int(np.prod(w.shape)) for w in generator.weights)
    assert figures["train_step_s"] > 0 and figures["train_steps_per_s"] == pytest.approx(1 / figures["train_step_s"])
    text = "\n".join(lines[:-1])
    for label in ("machine: cpu_count=", "params G", "params D", "train step", "inference per image",
                  "FLOPs G forward", "FLOPs train step"):
        assert label in text


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
    io.write_image(tmp_path / "only.png", np.full((16, 16, 3), 0.5, np.float32))
    with pytest.raises(io.DataError, match=f"{tmp_path} holds 1 images; need more than --holdout=1"):
        recon.load_data(str(tmp_path), holdout=1, eval_size=0, crop_size=8)


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
