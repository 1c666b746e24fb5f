"""FLOP counting (erlrestore.models.flops, the families' step counts) and the compute benchmark (tools.benchmark)."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

from erlrestore.layers import InfoAccum, SubPixelUpsample
from erlrestore.models import flops, pix2pix
from erlrestore.training import erl_family, experiment, gan_family, strategies
from tools import benchmark

REPO = pathlib.Path(__file__).resolve().parent.parent


_BENCH_ARGS = ("--quick", "--models=erlnet,pix2pix", "--batch_sizes=2", "--precisions=float32")


@pytest.fixture(scope="module")
def tool_runs(tmp_path_factory):
    """The benchmark's tiny run (mostly TensorFlow start-up and tracing)."""
    output_json = tmp_path_factory.mktemp("benchmark") / "benchmark.json"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    command = [sys.executable, "-m", "tools.benchmark", *_BENCH_ARGS, f"--output={output_json}"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    return {"benchmark": result, "benchmark_json": output_json}


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
    assert flops.conv_flops(model, (batch, *input_shape)) == expected


def test_conv_flops_counts_convolutions_nested_in_custom_layers():
    inputs = keras.Input(shape=(4, 4, 3))
    h = InfoAccum(2, growth_rate=2, norm="none", name="ia")(inputs)  # 3 -> 3 + 6 -> 3 + 12 channels
    outputs = SubPixelUpsample(3, scale=2, kernel_size=3, name="up")(h)  # 15 -> 12 channels at 4x4
    model = keras.Model(inputs, outputs)
    records = flops.conv_flops_by_layer(model, (None, 4, 4, 3))
    layer0 = 2 * 9 * 3 * 2 * 16  # each of F, G, H of dense layer 0: 3 -> 2 channels
    layer1 = 2 * 9 * 9 * 2 * 16  # dense layer 1 reads 3 + 6 channels
    up = 2 * 9 * 15 * 12 * 16
    assert records == [("ia/conv_0_d1", layer0), ("ia/conv_0_d3", layer0), ("ia/conv_0_d5", layer0),
                       ("ia/conv_1_d1", layer1), ("ia/conv_1_d3", layer1), ("ia/conv_1_d5", layer1),
                       ("up/conv", up)]
    # The wrapped calls are gone afterwards.
    assert not any("call" in layer.__dict__ for _, layer in flops._named_layers(model))


def test_conv_flops_uses_the_padded_size_and_several_inputs():
    # UNet-1 pads 5x5 to 6x6: encoder 4x4/2 conv 3 -> 2 at 3x3 output, transposed 2 -> 3 at 3x3 input.
    generator = pix2pix.build_generator(pix2pix.generator_config("unet1", base_filters=2))
    assert flops.conv_flops(generator, (1, 5, 5, 3)) == 2 * 16 * 3 * 2 * 9 + 2 * 16 * 2 * 3 * 9
    # PatchGAN with 2 layers on 8x8 pairs: pad -> 10x10x6, 4x4 stride 1 -> 7x7x2; pad -> 9x9, 4x4 -> 6x6x1.
    discriminator = pix2pix.build_patchgan(base_filters=2, num_layers=2)
    assert flops.conv_flops(discriminator, [(1, 8, 8, 3)] * 2) == 2 * 16 * 6 * 2 * 49 + 2 * 16 * 2 * 1 * 36


def test_conv_flops_rejects_unknown_spatial_sizes():
    model = _single_layer_model((None, None, 3), keras.layers.Conv2D(2, 3))
    with pytest.raises(ValueError, match=r"only the batch dimension may be None, got \(1, None, 8, 3\)"):
        flops.conv_flops(model, (1, None, 8, 3))


def test_training_step_flops_convention():
    assert gan_family.training_step_flops(g_forward=10, d_forward=1) == 37  # 3 F_G + 7 F_D


def test_staged_step_flops_per_stage():
    # Forward + 2 F per trained branch + 1 F per frozen branch on the gradient path (MDE under MEN/REN).
    net = {"men": 1, "ren": 10, "mde": 100}
    c2c = {"men": 1000, "mde": 10000}
    memd_stage, = strategies.strategy("MEMD")
    assert erl_family.staged_step_flops(memd_stage, {"men": 1, "mde": 100}) == 3 * 101
    stage_1, stage_2, stage_3 = strategies.strategy("MA_D")
    assert erl_family.staged_step_flops(stage_1, net, c2c) == 3 * 1 + 10 + 3 * 100 + 3 * 11000
    assert erl_family.staged_step_flops(stage_2, net, c2c) == 1 + 3 * 10 + 2 * 100 + 1000
    assert erl_family.staged_step_flops(stage_3, net, c2c) == 1 + 3 * 10 + 3 * 100


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
    g_flops = flops.conv_flops(networks["final.keras"], shape)
    d_flops = flops.conv_flops(networks["discriminator.keras"], [shape, shape])
    assert records[3]["train_flops_per_step"] == 2 * (3 * g_flops + 7 * d_flops)
    assert records[3]["infer_flops"] == 2 * g_flops
    assert records[3]["params"] == {"final": sum(int(np.prod(w.shape)) for w in networks["final.keras"].weights),
                                    "discriminator": sum(int(np.prod(w.shape))
                                                         for w in networks["discriminator.keras"].weights)}
    networks = experiment.build_networks(benchmark.model_settings("erlnet", "float32", "off", quick=True))
    net = flops.conv_flops_by_branch(networks["final.keras"], shape)
    c2c = flops.conv_flops_by_branch(networks["c2c.keras"], shape)
    assert set(net) == {"men", "ren", "mde"} and set(c2c) == {"men", "mde"}
    for stage, record in zip(strategies.strategy("MA_D"), records[:3]):
        assert record["train_flops_per_step"] == 2 * erl_family.staged_step_flops(stage, net, c2c)
        assert record["infer_flops"] == 2 * sum(net.values())
    assert "steps/s" in result.stderr and "matmul peak float32" in result.stderr
