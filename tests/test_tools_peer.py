"""tools.bench_peer: the published pix2pix in PyTorch (the reference) and its comparison with ours.

The tests that need PyTorch skip when it is not installed (it is the optional
``peer`` extra, not a test dependency). The harness itself (one process per
side and round, the alternating order, the load gate, the statistics, the
JSON and the table) is tested without it, on the NumPy stand-in sides of
:mod:`tools.peer_side` and on ours against a stand-in.
"""

import hashlib
import json
import math
import os
import pathlib
import re
import statistics
import subprocess
import sys

import numpy as np
import pytest

from tools import bench_peer, peer_side

REPO = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
# Runs the tool as `python -m tools.bench_peer ARGS` with `import torch` failing, as where it is not installed.
_WITHOUT_TORCH = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = ['bench_peer', *sys.argv[1:]]; "
                  "runpy.run_module('tools.bench_peer', run_name='__main__', alter_sys=True)")
# The same, on a machine whose load average says it is busy.
_BUSY_MACHINE = ("import os, runpy, sys; os.getloadavg = lambda: (99.0, 99.0, 99.0); "
                 "sys.argv = ['bench_peer', *sys.argv[1:]]; "
                 "runpy.run_module('tools.bench_peer', run_name='__main__', alter_sys=True)")
FAKE_SIDES = ("fake_ours", "fake_peer")


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


def test_precision_names_are_erlrestores():
    from erlrestore.training import devices  # pylint: disable=import-outside-toplevel

    assert peer_side.PRECISIONS == devices.PRECISIONS


def test_the_input_is_the_pair_tools_benchmark_draws():
    from tools import benchmark  # pylint: disable=import-outside-toplevel

    pair = peer_side.make_input(32, 2)
    condition, target = benchmark.random_pair_batch(32, 2)
    assert pair.shape == (2, 2, 32, 32, 3) and pair.dtype == np.float32
    np.testing.assert_array_equal(pair[0], condition.numpy())
    np.testing.assert_array_equal(pair[1], target.numpy())
    assert not np.array_equal(peer_side.make_input(32, 2, seed=1), pair)


@pytest.mark.slow
def test_help_and_missing_torch_from_the_command_line():
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "--help"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    # absl's --help prints the usage to stdout and exits with status 1.
    assert done.returncode in (0, 1), done.stderr[-3000:]
    assert "published pix2pix in PyTorch" in done.stdout
    for flag in ("--size", "--batch", "--steps", "--warmup", "--rounds", "--precisions", "--threads",
                 "--interop_threads", "--max_load", "--[no]allow_busy", "--[no]peer_autocast", "--sides", "--seed",
                 "--output", "--[no]quick"):
        assert f"  {flag}:" in done.stdout, flag
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "--quick", "--allow_busy"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "PyTorch is not installed: pip install -e '.[peer]'" in done.stderr


# ---------------------------------------------------------------------------
# The harness's parts
# ---------------------------------------------------------------------------


def test_sides_alternate_round_by_round():
    assert [bench_peer.round_order(i, ("a", "b")) for i in range(5)] == [
        ("a", "b"), ("b", "a"), ("a", "b"), ("b", "a"), ("a", "b")]


def test_busy_time_comes_from_the_cpu_line_of_proc_stat():
    text = ("cpu  100 5 30 900 7 2 3 11 40 0\n"
            "cpu0 50 2 15 450 3 1 1 5 20 0\n"
            "intr 12345\n")
    # user + nice + system + irq + softirq + steal; idle, iowait and guest (already in user) left out.
    assert bench_peer.parse_proc_stat(text) == 100 + 5 + 30 + 2 + 3 + 11
    with pytest.raises(ValueError):
        bench_peer.parse_proc_stat("intr 1\n")


def test_other_processes_cpu_is_the_machines_less_ours():
    assert bench_peer.others_cpus(busy_s=10.0, own_s=4.0, wall_s=3.0) == pytest.approx(2.0)
    assert bench_peer.others_cpus(busy_s=3.9, own_s=4.0, wall_s=3.0) == 0.0  # tick rounding: never negative
    assert bench_peer.others_cpus(busy_s=None, own_s=4.0, wall_s=3.0) is None


@pytest.mark.slow
def test_meter_counts_a_childs_cpu_as_ours():
    meter = bench_peer.ProcMeter()
    started = meter.start()
    subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
                    "while time.process_time() < end: pass"], check=True)
    usage = meter.stop(started)
    assert usage["children_cpu_s"] >= 0.25
    assert usage["wall_s"] >= usage["children_cpu_s"] * 0.9
    assert usage["others_cpus"] is None or usage["others_cpus"] >= 0.0


def test_default_load_limit_follows_the_threads():
    assert bench_peer.default_max_load(1) == 0.5
    assert bench_peer.default_max_load(2) == 0.5
    assert bench_peer.default_max_load(16) == 4.0


def test_both_sides_get_the_same_thread_environment():
    env = bench_peer.child_environment(3, base={"PATH": "/bin", "OMP_NUM_THREADS": "8"})
    assert {name: env[name] for name in peer_side.THREAD_ENV} == {name: "3" for name in peer_side.THREAD_ENV}
    assert env["PATH"] == "/bin"


def _child(side, pid, frameworks):
    return {"side": side, "pid": pid, "frameworks": frameworks}


def test_a_child_in_the_parents_process_or_with_the_other_framework_is_refused():
    seen = set()
    bench_peer.check_child(_child("ours", 11, ["keras", "tensorflow"]), "ours", "peer", 10, seen)
    bench_peer.check_child(_child("peer", 12, ["torch"]), "peer", "ours", 10, seen)
    assert seen == {11, 12}
    with pytest.raises(bench_peer.HarnessError, match="the parent"):
        bench_peer.check_child(_child("ours", 10, ["tensorflow"]), "ours", "peer", 10, set())
    with pytest.raises(bench_peer.HarnessError, match="an earlier measurement"):
        bench_peer.check_child(_child("peer", 12, ["torch"]), "peer", "ours", 10, seen)
    with pytest.raises(bench_peer.HarnessError, match="not torch"):
        bench_peer.check_child(_child("ours", 13, ["tensorflow", "torch"]), "ours", "peer", 10, seen)
    with pytest.raises(bench_peer.HarnessError, match="should hold torch"):
        bench_peer.check_child(_child("peer", 14, []), "peer", "ours", 10, seen)
    bench_peer.check_parent(("ours", "peer"), {"numpy": np})
    with pytest.raises(bench_peer.HarnessError, match="tensorflow"):
        bench_peer.check_parent(("ours", "peer"), {"tensorflow": object()})


def _measured(side, pid, train_s, infer_s, busy=False, precision="float32"):
    return {"side": side, "pid": pid, "train_step_median_s": train_s, "infer_median_s": infer_s,
            "others_cpus": 0.0, "busy": busy, "precision": precision, "params": {"n": 1}}


def _three_rounds(busy_round=None):
    """Ours 100/110/90 ms train, 10/12/11 ms inference; the reference 200/330/180 and 30/24/22 ms."""
    figures = [((0.100, 0.010), (0.200, 0.030)), ((0.110, 0.012), (0.330, 0.024)), ((0.090, 0.011), (0.180, 0.022))]
    rounds = []
    for index, (ours, peer) in enumerate(figures):
        rounds.append({"order": bench_peer.round_order(index, ("ours", "peer")),
                       "ours": _measured("ours", 100 + 2 * index, *ours, busy=index == busy_round),
                       "peer": _measured("peer", 101 + 2 * index, *peer)})
    return rounds


def test_summary_gives_min_median_max_and_the_spread_of_the_round_ratios():
    record = bench_peer.summarize("float32", ["float32"], _three_rounds())
    assert record["ours"]["train_step_s"] == {"min": 0.090, "median": 0.100, "max": 0.110, "busy": False}
    assert record["peer"]["infer_s"] == {"min": 0.022, "median": 0.024, "max": 0.030, "busy": False}
    # Per round: 2.0, 3.0 and 2.0 for training; 3.0, 2.0 and 2.0 for inference.
    assert [r["train_speedup"] for r in record["rounds"]] == pytest.approx([2.0, 3.0, 2.0])
    assert record["train_speedup"] == pytest.approx({"median": 2.0, "min": 2.0, "max": 3.0, "busy": False})
    assert record["infer_speedup"] == pytest.approx({"median": 2.0, "min": 2.0, "max": 3.0, "busy": False})
    assert [r["order"] for r in record["rounds"]] == [["ours", "peer"], ["peer", "ours"], ["ours", "peer"]]
    assert record["peer_precision"] == "float32" and record["busy"] is False


def test_one_busy_measurement_marks_every_figure():
    record = bench_peer.summarize("float32", ["float32"], _three_rounds(busy_round=1))
    assert [r["busy"] for r in record["rounds"]] == [False, True, False]
    assert [r["peer"]["busy"] for r in record["rounds"]] == [False, False, False]  # which one was busy, per round
    for role in ("ours", "peer"):
        assert all(record[role][measure]["busy"] for measure in bench_peer.MEASURES)
    assert record["train_speedup"]["busy"] and record["infer_speedup"]["busy"] and record["busy"]
    # A busy load average before the run (no busy measurement) marks them too.
    assert bench_peer.summarize("float32", ["float32"], _three_rounds(), busy=True)["ours"]["infer_s"]["busy"]


def _table_result(busy):
    record = bench_peer.summarize("mixed_bfloat16", ["auto"], _three_rounds(), busy=busy)
    return {"settings": {"sides": {"ours": "ours", "peer": "peer"}, "rounds": 3, "steps": 5, "threads": 2},
            "results": [record], "warning": "measured on a busy machine" if busy else None,
            "load": {"max_load": 0.5, "loadavg_at_start": [0.1, 0.1, 0.1]},
            "processes": {"children": [{"others_cpus": 0.05}, {"others_cpus": 0.2}]}}


def test_table_rows_and_busy_marks():
    table = bench_peer.format_table(_table_result(busy=False))
    figure_rows = [line for line in table.splitlines() if re.search(r"( ms|\dx)$", line)]
    assert len(figure_rows) == 6  # (ours, reference, speed-up) x (train step, inference)
    assert "(busy)" not in table and "WARNING" not in table
    assert "90.0 ms" in table and "110.0 ms" in table and "3.00x" in table
    assert "at most 0.20 CPUs" in table and "--max_load=0.5" in table
    busy = bench_peer.format_table(_table_result(busy=True))
    busy_rows = [line for line in busy.splitlines() if line.rstrip().endswith("(busy)")]
    assert len(busy_rows) == 6 and all(line.count("(busy)") == 3 for line in busy_rows)
    assert "WARNING: measured on a busy machine" in busy


# ---------------------------------------------------------------------------
# The harness on the stand-in sides (no TensorFlow or PyTorch in any process)
# ---------------------------------------------------------------------------


class ScriptedMeter(bench_peer.ProcMeter):
    """The real meter, except for the load it reports: ``start_load`` and ``others`` (child index -> CPUs)."""

    def __init__(self, start_load=0.0, others=None):
        super().__init__()
        self.start_load = start_load
        self.others = others or {}
        self.children = 0

    def loadavg(self):
        return [self.start_load] * 3

    def stop(self, started):
        usage = super().stop(started)
        usage["others_cpus"] = self.others.get(self.children, 0.01)
        self.children += 1
        return usage


def _run_fakes(meter, rounds=3, **kwargs):
    return bench_peer.run_harness(FAKE_SIDES, ["float32", "auto"], size=32, batch=2, steps=3, warmup=1,
                                  rounds=rounds, threads=1, quick=True, meter=meter, report=lambda line: None,
                                  **kwargs)


@pytest.mark.slow
def test_each_measurement_is_a_process_of_its_own_and_the_sides_alternate(tmp_path):
    result = _run_fakes(ScriptedMeter())
    children = result["processes"]["children"]
    # "auto" resolves to float32 for the stand-ins: one block, three rounds, A B, B A, A B.
    assert [(c["round"], c["side"]) for c in children] == [
        (1, "fake_ours"), (1, "fake_peer"), (2, "fake_peer"), (2, "fake_ours"), (3, "fake_ours"), (3, "fake_peer")]
    pids = [c["pid"] for c in children]
    assert len(set(pids)) == len(pids) and os.getpid() not in pids
    assert result["processes"]["parent"]["pid"] == os.getpid()
    # One after the other: no two measurements overlapped.
    assert all(a["ended"] <= b["started"] for a, b in zip(children, children[1:]))
    # Each child loaded its own stand-in framework and not the other; this process loaded neither.
    for child in children:
        assert child["frameworks"] == [peer_side.SIDES[child["side"]]]
    assert "fakeflow" not in sys.modules and "faketorch" not in sys.modules
    # Same threads, thread environment and input for both.
    assert {json.dumps([c["threads"], c["thread_env"]]) for c in children} == {
        json.dumps([{"intra_op": 1, "inter_op": 1}, {name: "1" for name in peer_side.THREAD_ENV}])}
    np.save(tmp_path / "input.npy", peer_side.make_input(32, 2))
    expected_sha = hashlib.sha256((tmp_path / "input.npy").read_bytes()).hexdigest()
    assert result["settings"]["input_sha256"] == expected_sha
    assert {c["input_sha256"] for c in children} == {expected_sha}
    # The statistics are those of the rounds.
    [record] = result["results"]
    assert record["requested"] == ["float32", "auto"]
    for role in ("ours", "peer"):
        values = [r[role]["train_step_s"] for r in record["rounds"]]
        assert record[role]["train_step_s"] == {"min": min(values), "median": statistics.median(values),
                                                "max": max(values), "busy": False}
    ratios = [r["peer"]["infer_s"] / r["ours"]["infer_s"] for r in record["rounds"]]
    assert record["infer_speedup"]["median"] == pytest.approx(statistics.median(ratios))
    assert record["infer_speedup"]["min"] == pytest.approx(min(ratios))
    assert result["busy"] is False and "warning" not in result
    json.dumps(result)


@pytest.mark.slow
def test_a_busy_machine_gets_no_figures():
    meter = ScriptedMeter(start_load=5.0)
    with pytest.raises(bench_peer.MachineBusy, match=r"1-min load average before the run: 5\.00"):
        _run_fakes(meter, max_load=1.0)
    assert meter.children == 0  # refused before measuring anything
    meter = ScriptedMeter(others={2: 1.5})
    with pytest.raises(bench_peer.MachineBusy, match=r"round 2, fake_peer: 1\.50 CPUs.*--allow_busy"):
        _run_fakes(meter, max_load=1.0)
    assert meter.children == 3  # stopped at the third measurement
    assert _run_fakes(ScriptedMeter(start_load=0.9, others={2: 1.0}), rounds=2, max_load=1.0)["busy"] is False


@pytest.mark.slow
def test_allow_busy_reports_figures_marked_busy():
    result = _run_fakes(ScriptedMeter(others={3: 2.0}), rounds=2, max_load=0.5, allow_busy=True)
    assert result["busy"] and result["load"]["busy"] and "busy machine" in result["warning"]
    assert [c["busy"] for c in result["processes"]["children"]] == [False, False, False, True]
    [record] = result["results"]
    assert all(record[role][measure]["busy"] for role in ("ours", "peer") for measure in bench_peer.MEASURES)
    assert record["train_speedup"]["busy"] and record["infer_speedup"]["busy"]
    table = bench_peer.format_table(result)
    assert sum(line.rstrip().endswith("(busy)") for line in table.splitlines()) == 6


@pytest.mark.slow
def test_stand_in_run_from_the_command_line_without_torch(tmp_path):
    output = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH, "--quick", "--sides=fake_ours,fake_peer",
                           "--allow_busy", "--rounds=3", "--threads=1", f"--output={output}"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert json.loads(done.stdout) == result  # stdout holds the JSON alone
    assert result["processes"]["parent"]["frameworks"] == []
    assert [c["side"] for c in result["processes"]["children"]] == [
        "fake_ours", "fake_peer", "fake_peer", "fake_ours", "fake_ours", "fake_peer"]
    assert result["settings"]["sides"] == {"ours": "fake_ours", "peer": "fake_peer"}
    assert result["settings"]["rounds"] == 3 and result["settings"]["threads"] == 1
    assert "precision  measure" in done.stderr and "speed-up (reference / ours)" in done.stderr
    assert result["busy"] == ("(busy)" in done.stderr)


@pytest.mark.slow
def test_busy_machine_from_the_command_line(tmp_path):
    output = tmp_path / "peer.json"
    args = [sys.executable, "-c", _BUSY_MACHINE, "--quick", "--sides=fake_ours,fake_peer", "--rounds=1",
            f"--output={output}"]
    done = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == bench_peer.BUSY_EXIT
    assert "the machine is busy (1-min load average before the run: 99.00" in done.stderr
    assert done.stdout == "" and not output.exists()
    done = subprocess.run(args + ["--allow_busy"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["busy"] and result["load"]["loadavg_at_start"] == [99.0, 99.0, 99.0]
    assert all(figures["busy"] for figures in result["results"][0]["ours"].values() if isinstance(figures, dict)
               and "median" in figures)
    assert "WARNING: measured on a busy machine" in done.stderr


@pytest.mark.slow
def test_the_parent_imports_neither_framework():
    done = subprocess.run([sys.executable, "-c", "import json, sys\nfrom tools import bench_peer, peer_side\n"
                           "print(json.dumps(peer_side.loaded_frameworks()))"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout) == []


@pytest.mark.slow
def test_ours_in_its_own_process_against_a_stand_in(tmp_path):
    """The real TensorFlow side, with no PyTorch needed: TensorFlow only in ours' process."""
    output = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, "-m", "tools.bench_peer", "--quick", "--sides=ours,fake_peer",
                           "--precisions=float32", "--rounds=1", "--threads=1", "--allow_busy",
                           f"--output={output}"], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["processes"]["parent"]["frameworks"] == []
    frameworks = {c["side"]: c["frameworks"] for c in result["processes"]["children"]}
    assert "tensorflow" in frameworks["ours"] and "torch" not in frameworks["ours"]
    assert frameworks["fake_peer"] == ["faketorch"]
    assert "cpu_model" in result["machine"] and result["machine"]["tensorflow"]
    assert result["ours"]["threads"] == {"intra_op": 1, "inter_op": 1}
    assert "discriminator" in result["ours"]["params"] and all(n > 0 for n in result["ours"]["params"].values())
    [record] = result["results"]
    assert record["ours"]["train_step_s"]["median"] > 0 and record["ours"]["infer_s"]["median"] > 0


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


def test_autocast_runs_the_forward_passes_in_bfloat16(torch):
    torch.manual_seed(0)
    trainer, _ = bench_peer.build_peer(bench_peer.TINY, autocast=True)
    condition, target = bench_peer.random_pair(bench_peer.QUICK_SIZE, 2)
    losses = trainer.train_step(condition, target)
    assert all(math.isfinite(v) for v in losses.values())
    assert all(p.dtype == torch.float32 for p in trainer.generator.parameters())  # the weights stay float32
    assert trainer.infer(condition).dtype == torch.bfloat16
    plain, _ = bench_peer.build_peer(bench_peer.TINY)
    assert plain.infer(condition).dtype == torch.float32


# ---------------------------------------------------------------------------
# End to end
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_quick_run_writes_the_comparison(torch, tmp_path):
    output = tmp_path / "peer.json"
    done = subprocess.run([sys.executable, "-m", "tools.bench_peer", "--quick", "--threads=1", "--rounds=1",
                           "--allow_busy", "--peer_autocast", f"--output={output}"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert json.loads(done.stdout) == result
    assert result["settings"]["threads"] == 1 and result["peer"]["threads"] == {"intra_op": 1, "inter_op": 1}
    assert result["ours"]["threads"] == {"intra_op": 1, "inter_op": 1}
    assert result["settings"]["rounds"] == 1 and result["settings"]["size"] == bench_peer.QUICK_SIZE
    assert "cpu_model" in result["machine"] and result["peer"]["versions"]["torch"]
    # TensorFlow only in ours' processes, PyTorch only in the reference's, neither in the parent.
    assert result["processes"]["parent"]["frameworks"] == []
    for child in result["processes"]["children"]:
        if child["side"] == "ours":
            assert "tensorflow" in child["frameworks"] and "torch" not in child["frameworks"]
        else:
            assert child["frameworks"] == ["torch"]
    requested = [name for record in result["results"] for name in record["requested"]]
    assert sorted(requested) == ["auto", "float32"]
    for record in result["results"]:
        expected = "autocast_bfloat16" if record["precision"] == "mixed_bfloat16" else "float32"
        assert record["peer_precision"] == expected
        [round_1] = record["rounds"]
        for side in ("ours", "peer"):
            assert record[side]["train_step_s"]["median"] == round_1[side]["train_step_s"] > 0
            assert record[side]["infer_s"]["median"] == round_1[side]["infer_s"] > 0
        assert record["train_speedup"]["median"] == pytest.approx(
            round_1["peer"]["train_step_s"] / round_1["ours"]["train_step_s"])
        assert record["infer_speedup"]["median"] == pytest.approx(
            round_1["peer"]["infer_s"] / round_1["ours"]["infer_s"])
    assert result["peer"]["params"]["generator"] > 0 and "discriminator" in result["results"][0]["ours"]["params"]
