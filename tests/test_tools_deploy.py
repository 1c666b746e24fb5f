"""tools.bench_deploy: helpers (sizes, percentiles, clients, memory, workers) and one tiny run of both parts."""

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest

from tools import bench_deploy as bench
from tools import common

REPO = pathlib.Path(__file__).resolve().parent.parent

_TINY_ARGS = ("--tiny", "--requests=5")  # an explicit flag must beat the tiny default (6)


@pytest.fixture(scope="module")
def tiny_run():
    """One ``--tiny`` run of both parts: (exit status, stdout lines, stderr, final JSON)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run([sys.executable, "-m", "tools.bench_deploy", *_TINY_ARGS], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return done.returncode, lines, done.stderr, report


# ---------------------------------------------------------------------------
# The tiny run.
# ---------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_run_succeeds_and_prints_one_line_per_figure(tiny_run):
    returncode, lines, stderr, report = tiny_run
    assert returncode == 0, stderr[-3000:]
    assert report is not None
    assert set(report) == set(bench.JSON_KEYS)
    assert lines[0].startswith("machine: ") and lines[0].endswith("(tiny models)")
    figure_lines = lines[1:-1]
    assert [line.split(" ")[:2] for line in figure_lines] == [
        ["restore", "memd"], ["restore", "erlnet"], ["restore", "unet5_infoaccum15_subpix"], ["serving", "memd"],
    ]
    assert report["settings"]["tiny"] is True
    assert report["settings"]["requests"] == 5  # given explicitly
    assert report["settings"]["image_size"] == 24  # tiny default
    assert report["settings"]["sizes"] == ["72x40"]


@pytest.mark.slow
def test_tiny_restore_results(tiny_run):
    _, lines, _, report = tiny_run
    results = report["restore"]
    assert [r["model"] for r in results] == list(bench.DEFAULT_MODELS)
    for result, line in zip(results, lines[1:4]):
        assert set(result) == set(bench.RESTORE_KEYS)
        assert (result["width"], result["height"], result["megapixels"]) == (72, 40, 72 * 40 / 1e6)
        # tile 32, overlap 8, align 4 (tiny models pad to 4): columns start 0, 24, 40; rows 0, 8.
        assert (result["tile"], result["overlap"], result["align"], result["tiles"]) == (32, 8, 4, 6)
        assert result["untrained"] is True
        assert (result["warmup_calls"], result["timed_calls"], len(result["seconds_all"])) == (1, 1, 1)
        assert result["seconds"] == result["seconds_all"][0] > 0
        assert result["megapixels_per_second"] == pytest.approx(result["megapixels"] / result["seconds"])
        assert result["baseline_rss_mb"] > 50  # TensorFlow is loaded
        assert result["peak_rss_mb"] == pytest.approx(result["baseline_rss_mb"] + result["peak_rss_growth_mb"])
        assert result["peak_rss_growth_mb"] >= 0
        assert result["gpu_peak_mb"] is None
        assert result["params"] > 0
        assert f"{result['megapixels_per_second']:.3f} MP/s" in line
        assert f"peak RSS +{result['peak_rss_growth_mb']:.1f} MB" in line
    # The three models really differ (MEMD < ERL-Net, which adds REN).
    params = {r["model"]: r["params"] for r in results}
    assert params["memd"] < params["erlnet"]


@pytest.mark.slow
def test_tiny_serving_results(tiny_run):
    _, lines, _, report = tiny_run
    serving = report["serving"]
    assert set(serving) == set(bench.SERVING_KEYS)
    assert (serving["model"], serving["clients"], serving["requests"], serving["image_size"]) == ("memd", 2, 5, 24)
    assert (serving["completed"], serving["errors"], serving["first_error"], serving["stopped_early"]) == (
        5, 0, None, False)
    assert 0 < serving["latency_ms_p50"] <= serving["latency_ms_p95"] <= serving["latency_ms_max"]
    assert serving["requests_per_second"] == pytest.approx(5 / serving["wall_seconds"])
    assert serving["png_bytes"] == len(common.encode_png(common.synthetic_image(24, 24, seed=1)))
    assert "5/5 answered" in lines[-2] and "0 error(s)" in lines[-2]


# ---------------------------------------------------------------------------
# Parsing.
# ---------------------------------------------------------------------------


def test_parse_sizes():
    assert bench.parse_sizes("512x512,4000x3000") == [(512, 512), (4000, 3000)]
    assert bench.parse_sizes(" 72X40 , ,8x9") == [(72, 40), (8, 9)]


@pytest.mark.parametrize("text, message", [
    ("512", r"bad size '512': expected WIDTHxHEIGHT"),
    ("0x5", r"bad size '0x5'"),
    ("4x-2", r"bad size '4x-2'"),
    ("", r"no sizes given"),
])
def test_parse_sizes_errors(text, message):
    with pytest.raises(ValueError, match=message):
        bench.parse_sizes(text)


def test_parse_models():
    assert bench.parse_models("memd, erlnet,memd,pix2pix") == ["memd", "erlnet", "pix2pix"]
    with pytest.raises(ValueError, match=r"unknown model 'mdem': choose memd, erlnet or a generator name"):
        bench.parse_models("memd,mdem")
    with pytest.raises(ValueError, match="no models given"):
        bench.parse_models(" , ")


# ---------------------------------------------------------------------------
# Statistics and clients.
# ---------------------------------------------------------------------------


def test_percentile_matches_numpy_linear():
    values = [0.4, 0.1, 0.3, 0.2, 1.5, 0.05, 0.7]
    for q in (0, 5, 50, 95, 99, 100):
        assert bench.percentile(values, q) == pytest.approx(np.percentile(values, q))
    assert bench.percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError, match="percentile of no values"):
        bench.percentile([], 50)
    with pytest.raises(ValueError, match=r"q must be in \[0, 100\], got 101"):
        bench.percentile([1.0], 101)


def test_latency_summary_golden():
    summary = bench.latency_summary([0.1, 0.4, 0.2, 0.3], wall_seconds=2.0)
    assert summary["latency_ms_p50"] == pytest.approx(250.0)
    assert summary["latency_ms_p95"] == pytest.approx(385.0)  # 0.3 + 0.85 * (0.4 - 0.3)
    assert summary["latency_ms_max"] == pytest.approx(400.0)
    assert summary["latency_ms_mean"] == pytest.approx(250.0)
    assert summary["requests_per_second"] == pytest.approx(2.0)
    assert set(bench.latency_summary([], 1.0).values()) == {None}


def test_run_clients_runs_every_request_with_the_given_concurrency():
    barrier = threading.Barrier(3, timeout=10)  # the first 3 calls pass only if 3 run at once
    lock = threading.Lock()
    calls = []

    def send():
        with lock:
            calls.append(threading.current_thread().name)
            first_round = len(calls) <= 3
        if first_round:
            barrier.wait()

    outcome = bench.run_clients(send, clients=3, requests=10)
    assert len(calls) == 10 and outcome["started"] == 10
    assert len(outcome["latencies"]) == 10
    assert (outcome["errors"], outcome["first_error"], outcome["stopped_early"]) == (0, None, False)
    assert len(set(calls[:3])) == 3
    assert not barrier.broken


def test_run_clients_counts_errors_and_keeps_going():
    counter = iter(range(100))
    lock = threading.Lock()

    def send():
        with lock:
            n = next(counter)
        if n % 2:
            raise ConnectionError(f"refused #{n}")

    outcome = bench.run_clients(send, clients=1, requests=6)
    assert (outcome["started"], outcome["errors"], len(outcome["latencies"])) == (6, 3, 3)
    assert outcome["first_error"] == "ConnectionError: refused #1"


def test_run_clients_stops_starting_requests_at_the_time_limit():
    outcome = bench.run_clients(lambda: time.sleep(0.05), clients=1, requests=1000, time_limit=0.2)
    assert outcome["stopped_early"] is True
    assert 2 <= outcome["started"] < 1000
    assert len(outcome["latencies"]) == outcome["started"]


def test_run_clients_rejects_bad_counts():
    with pytest.raises(ValueError, match="need clients >= 1"):
        bench.run_clients(lambda: None, clients=0, requests=3)


# ---------------------------------------------------------------------------
# Memory, images, workers.
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmRSS / clear_refs are Linux-only")
def test_peak_rss_growth_sees_an_allocation():
    if not common.reset_peak_rss():
        pytest.skip("this kernel does not allow resetting VmHWM")
    baseline = common.current_rss_bytes()
    block = np.ones(64 * 1024 * 1024, dtype=np.uint8)  # 64 MiB, touched
    del block
    growth = common.peak_rss_bytes() - baseline
    assert growth >= 60 * 1024 * 1024
    assert common.max_rss_bytes() >= common.peak_rss_bytes()


def test_png_round_trip_shape():
    image = common.synthetic_image(5, 7)
    assert image.shape == (5, 7, 3) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert bench.decode_png_shape(common.encode_png(image)) == (5, 7)
    with pytest.raises(ValueError, match="the answer is not a PNG"):
        bench.decode_png_shape(b"GIF89a" + bytes(40))


def fake_worker(script):
    """A ``_worker_command`` running ``script`` with the result file's path as ``sys.argv[1]``."""
    return lambda *args, result_json=None: [sys.executable, "-c", script, str(result_json)]


def test_run_worker_reads_the_result_file_not_stdout(monkeypatch):
    script = ("import json, sys; print('noise'); print('{\"model\": \"from stdout\"}'); "
              "json.dump({'model': 'x', 'seconds': 1.5}, open(sys.argv[1], 'w')); print('after')")
    monkeypatch.setattr(bench, "_worker_command", fake_worker(script))
    assert bench.run_worker("x", 8, 8, 32, 8) == {"model": "x", "seconds": 1.5}
    # A worker that prints a result but writes none has failed.
    monkeypatch.setattr(bench, "_worker_command", fake_worker("print('{\"model\": \"x\"}')"))
    with pytest.raises(RuntimeError, match=r"at 8x8 exited with status 0 but wrote no result to .*result.json"):
        bench.run_worker("x", 8, 8, 32, 8)
    monkeypatch.setattr(bench, "_worker_command", fake_worker("import sys; open(sys.argv[1], 'w').write('{cut')"))
    with pytest.raises(RuntimeError, match=r"at 8x8 wrote a result that is not JSON"):
        bench.run_worker("x", 8, 8, 32, 8)


def test_worker_writes_its_result_to_the_file_named(monkeypatch, tmp_path, capsys):
    """The worker's side (the tiny runs cover both sides together): its stdout carries nothing for the parent."""
    monkeypatch.setattr(bench, "measure_restore", lambda *args: {"model": args[0], "width": args[1]})
    path = tmp_path / "result.json"
    parsed = types.SimpleNamespace(tiny=False, models="memd", sizes="8x6", tile=32, overlap=8, tile_batch=1, repeats=1,
                                   backends=["tensorflow"], worker=True, result_json=str(path))
    monkeypatch.setattr(bench, "FLAGS", parsed)  # main's flags, without defining them in the test process
    assert bench.main(["bench_deploy"]) == 0
    assert json.loads(path.read_text()) == {"model": "memd", "width": 8}
    assert capsys.readouterr().out == ""
    parsed.result_json = None
    with pytest.raises(bench.app.UsageError, match="--worker needs --result_json"):
        bench.main(["bench_deploy"])


def test_run_worker_failure_names_the_worker_and_shows_stderr(monkeypatch):
    script = "import sys; sys.stderr.write('boom: out of memory\\n'); sys.exit(3)"
    monkeypatch.setattr(bench, "_worker_command", fake_worker(script))
    with pytest.raises(RuntimeError,
                       match=r"restore worker for memd \(tensorflow\) at 8x6 failed \(exit status 3\):\nboom: out of"):
        bench.run_worker("memd", 8, 6, 32, 8)


def test_run_worker_timeout(monkeypatch):
    monkeypatch.setattr(bench, "_worker_command", fake_worker("import time; time.sleep(30)"))
    with pytest.raises(RuntimeError,
                       match=r"restore worker for memd \(tensorflow\) at 8x6 did not finish within 0.5 s"):
        bench.run_worker("memd", 8, 6, 32, 8, timeout=0.5)


def test_worker_command_passes_the_settings():
    command = bench._worker_command("erlnet", 40, 30, 32, 8, 2, 3, True, result_json="/tmp/r.json")
    assert command[1:3] == ["-m", "tools.bench_deploy"]
    assert command[3:] == ["--worker", "--models=erlnet", "--sizes=40x30", "--tile=32", "--overlap=8",
                           "--tile_batch=2", "--repeats=3", "--tiny", "--backends=tensorflow",
                           "--result_json=/tmp/r.json"]
