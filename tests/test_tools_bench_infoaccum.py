"""tools.bench_infoaccum: InfoAccum's direct dilated convolutions against its matrix-product formulation."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np

from erlrestore.models import flops
from tools import bench_infoaccum

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_quick_run_prints_the_comparison_as_json(tmp_path):
    output = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_infoaccum", "--quick", "--precisions=float32", f"--output={output}"],
        cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneDNN" not in result.stderr and "absl::InitializeLog" not in result.stderr  # quiet start-up
    data = json.loads(result.stdout)
    assert json.loads(output.read_text()) == data
    assert data["settings"]["size"] == 16 and data["settings"]["layers"] == 2
    assert data["matmul_peak_flops"]["float32"] > 0
    check = data["check"]["float32"]
    assert check["max_abs_output_difference"] < 1e-5 * max(1.0, check["max_abs_output"])
    assert check["max_relative_gradient_difference"] < 1e-4
    assert [(r["precision"], r["part"]) for r in data["results"]] == [("float32", "forward"), ("float32", "train")]
    forward, train = data["results"]
    # 2 layers on 3 + 0 and 3 + 12 channels, 3 branches of 4 filters, 16x16 pixels.
    assert forward["flops"] == 2 * 9 * (3 + 15) * 4 * 3 * 16 * 16 and train["flops"] == 3 * forward["flops"]
    for record in data["results"]:
        for name in ("direct", "matmul"):
            assert record[f"{name}_ms"] >= record[f"{name}_min_ms"] > 0
            assert record[f"{name}_gflops_per_s"] > 0 and 0 < record[f"{name}_fraction_of_peak"]
        assert record["speedup"] > 0 and record["speedup_of_medians"] > 0
    assert "speed-up" in result.stderr


def test_flops_match_the_benchmark_count_and_formulations_agree():
    block = bench_infoaccum.build_block(3, 2, "batch", "float32", channels=4)
    inputs = keras.Input((10, 12, 4))
    model = keras.Model(inputs, block(inputs))
    assert bench_infoaccum.forward_flops(block, (1, 10, 12, 4)) == flops.conv_flops(model, (1, 10, 12, 4))
    x = np.random.default_rng(0).normal(size=(2, 10, 12, 4)).astype("float32")
    direct = keras.ops.convert_to_numpy(bench_infoaccum.direct_info_accum(block, x, False))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(block(x, training=False)), direct, atol=1e-5)
