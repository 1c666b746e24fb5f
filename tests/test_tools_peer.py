"""tools.bench_peer: the published pix2pix in PyTorch (the reference) and its comparison with ours.

The tests that need PyTorch skip when it is not installed (it is the optional
``peer`` extra, not a test dependency); the module itself, ``--help`` and the
missing-PyTorch message are checked without it.
"""

import json
import math
import os
import pathlib
import subprocess
import sys

import pytest

from tools import bench_peer

REPO = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# Runs the tool as `python -m tools.bench_peer ARGS` with `import torch` failing, as where it is not installed.
_WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['bench_peer', *sys.argv[1:]]; "
                  "runpy.run_module('tools.bench_peer', run_name='__main__', alter_sys=True)")


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module")
def full_models(torch):
    """The published unet_256 generator and 70x70 PatchGAN, seeded."""
    torch.manual_seed(0)
    return bench_peer.build_generator(), bench_peer.build_discriminator()


# ---------------------------------------------------------------------------
# Without PyTorch
# ---------------------------------------------------------------------------


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(bench_peer.TorchMissing, match=r"PyTorch is not installed: pip install -e '\.\[peer\]'"):
        bench_peer.import_torch()


def test_level_filters_double_up_to_eight_times():
    assert bench_peer.level_filters(8, 64) == [64, 128, 256, 512, 512, 512, 512, 512]
    assert bench_peer.level_filters(5, 4) == [4, 8, 16, 32, 32]


def test_peer_size_must_be_a_multiple_of_the_levels():
    bench_peer.check_peer_size(256, 8)
    bench_peer.check_peer_size(512, 8)
    with pytest.raises(ValueError, match="multiple of 256"):
        bench_peer.check_peer_size(320, 8)


def test_precisions_resolve_once_each():
    resolved = bench_peer.resolve_precisions(["float32", "auto", "float32"])
    names = [precision for precision, _ in resolved]
    assert names[0] == "float32" and len(names) == len(set(names))
    assert sorted(n for _, requested in resolved for n in requested) == ["auto", "float32", "float32"]
    assert set(names) <= {"float32", "mixed_bfloat16"}  # what auto can be on a CPU


@pytest.mark.slow
def test_help_and_missing_torch_from_the_command_line():
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "--help"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    # absl's --help prints the usage to stdout and exits with status 1.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "published pix2pix in PyTorch" in done.stdout
    for flag in ("--size", "--batch", "--steps", "--warmup", "--rounds", "--precisions", "--threads", "--output",
                 "--[no]quick"):
        assert f"  {flag}:" in done.stdout, flag
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "--quick"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "PyTorch is not installed: pip install -e '.[peer]'" in done.stderr


# ---------------------------------------------------------------------------
# The published networks
# ---------------------------------------------------------------------------


def test_parameter_counts_are_the_published_ones(full_models):
    generator, discriminator = full_models
    assert bench_peer.count_params(generator) == 54_413_955  # 54.41 M
    assert bench_peer.count_params(discriminator) == 2_768_705  # 2.77 M
    assert round(bench_peer.count_params(generator) / 1e6, 2) == 54.41
    assert round(bench_peer.count_params(discriminator) / 1e6, 2) == 2.77


def test_layout_of_the_published_networks(torch, full_models):
    generator, discriminator = full_models
    nn = torch.nn
    dropouts = [m for m in generator.modules() if isinstance(m, nn.Dropout)]
    assert len(dropouts) == 3 and all(m.p == 0.5 for m in dropouts)
    convs = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    assert len(convs) == 16
    assert all(m.kernel_size == (4, 4) and m.stride == (2, 2) and m.padding == (1, 1) for m in convs)
    # Only the outermost transposed convolution (before the Tanh) has a bias.
    assert [m for m in convs if m.bias is not None] == [generator.up[0][1]]
    assert isinstance(generator.up[0][-1], nn.Tanh)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in generator.modules()) == 6 + 7
    d_convs = [m for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in d_convs] == [64, 128, 256, 512, 1]
    assert [m.stride[0] for m in d_convs] == [2, 2, 2, 1, 1]
    assert d_convs[0].in_channels == 6
    assert [m.bias is not None for m in d_convs] == [True, False, False, False, True]


def test_output_shapes(torch, full_models):
    generator, discriminator = full_models
    generator.eval()
    discriminator.eval()
    condition = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.inference_mode():
        output = generator(condition)
        scores = discriminator(condition, output)
    assert tuple(output.shape) == (1, 3, 256, 256)
    assert float(output.abs().max()) <= 1.0  # Tanh
    assert tuple(scores.shape) == (1, 1, 30, 30)  # 70x70 patches at stride 8


def test_discriminator_sees_70x70_patches(torch):
    torch.manual_seed(0)
    discriminator = bench_peer.build_discriminator(ndf=4).eval()  # eval: no batch statistics coupling pixels
    condition = torch.rand(1, 3, 128, 128, requires_grad=True)
    scores = discriminator(condition, torch.rand(1, 3, 128, 128))
    scores[0, 0, 7, 7].backward()
    rows = torch.nonzero(condition.grad.abs().sum(dim=(0, 1, 3))).flatten()
    cols = torch.nonzero(condition.grad.abs().sum(dim=(0, 1, 2))).flatten()
    assert int(rows.max() - rows.min()) + 1 == 70
    assert int(cols.max() - cols.min()) + 1 == 70


def test_one_training_step_changes_both_networks(torch):
    torch.manual_seed(0)
    config = bench_peer.TINY
    trainer, params = bench_peer.build_peer(config)
    assert params == {"generator": bench_peer.count_params(trainer.generator),
                      "discriminator": bench_peer.count_params(trainer.discriminator)}
    before_g = [p.detach().clone() for p in trainer.generator.parameters()]
    before_d = [p.detach().clone() for p in trainer.discriminator.parameters()]
    condition, target = bench_peer.random_pair(bench_peer.QUICK_SIZE, 2)
    losses = trainer.train_step(condition, target)
    assert set(losses) == {"d_loss", "g_loss", "l1"} and all(math.isfinite(v) for v in losses.values())
    assert all(not torch.equal(a, b) for a, b in zip(before_g, trainer.generator.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(before_d, trainer.discriminator.parameters()))
    assert all(p.requires_grad for p in trainer.discriminator.parameters())
    # One Adam step each: the discriminator is not updated again by the generator's step.
    assert all(int(state["step"]) == 1 for state in trainer.d_optimizer.state.values())
    assert all(int(state["step"]) == 1 for state in trainer.g_optimizer.state.values())
    output = trainer.infer(condition)
    assert tuple(output.shape) == (2, 3, bench_peer.QUICK_SIZE, bench_peer.QUICK_SIZE)
    assert not trainer.generator.training


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_writes_the_comparison(torch, tmp_path):
    output = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, "-m", "tools.bench_peer", "--quick", "--threads=1",
                           f"--output={output}"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert json.loads(done.stdout) == result
    assert result["settings"]["threads"] == 1 and result["peer"]["torch_threads"] == 1
    assert result["settings"]["rounds"] == 2 and result["settings"]["size"] == bench_peer.QUICK_SIZE
    assert "cpu_model" in result["machine"]
    requested = [name for record in result["results"] for name in record["requested"]]
    assert sorted(requested) == ["auto", "float32"]
    for record in result["results"]:
        assert record["peer_precision"] == "float32"
        for side in ("ours", "peer"):
            figures = record[side]
            assert len(figures["train_step_s_rounds"]) == len(figures["infer_s_rounds"]) == 2
            assert figures["train_step_s"] > 0 and figures["infer_s"] > 0
        assert record["train_speedup"] == pytest.approx(record["peer"]["train_step_s"] / record["ours"]["train_step_s"])
        assert record["infer_speedup"] == pytest.approx(record["peer"]["infer_s"] / record["ours"]["infer_s"])
    assert result["peer"]["params"]["generator"] > 0 and "discriminator" in result["results"][0]["ours"]["params"]
