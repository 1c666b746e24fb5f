"""tf.distribute on the CPU: mirrored over two logical devices, and two workers on 127.0.0.1.

Each case runs in child processes: logical devices and the multi-worker
cluster must be set up before TensorFlow starts. oneDNN is turned off in the
children (TF_ENABLE_ONEDNN_OPTS=0) because its multi-threaded CPU kernels are
not bit-reproducible from run to run, which would hide what is compared here.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # trains in worker processes

REPO = pathlib.Path(__file__).resolve().parent.parent

# Tiny flagfiles plus what makes a single device and the replicas compute
# the same thing: instance norm (batch statistics would be per replica) and
# no dropout (random per replica). Global batch 2 = one image per replica;
# ERL-Net runs 3 steps a stage with checkpoints every 2 (two fits a stage).
CASES = {
    "erlnet_ma_d": ["--flagfile=flags/erlnet_ma_d_mlgd.flags", "--flagfile=flags/tiny/erlnet.flags",
                    "--batch_size=2", "--stage_steps=3"],
    "unet5_lsgan": ["--flagfile=flags/unet5_lsgan.flags", "--flagfile=flags/tiny/gan.flags",
                    "--batch_size=2", "--gen_norm=instance", "--dropout=0"],
}

# Runs erlrestore-train's settings twice in one process whose CPU is split in
# two logical devices: on one device, then mirrored over both. The restoration
# network's weights as each run built them, before any step, go to
# <out>/<run>_initial.npz.
MIRRORED_VS_SINGLE = """
import dataclasses, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from absl import flags, logging
from erlrestore.cli import train
logging.set_verbosity(logging.INFO)
from erlrestore.training import experiment
train.define_flags()
flags.FLAGS(["erlrestore-train", "--model_dir=unused", "--verbose=0", *sys.argv[2:]])
settings = train.settings_from_flags()
out = sys.argv[1]
build_networks = experiment.build_networks
def recording_build_networks(run_settings):
    networks = build_networks(run_settings)
    np.savez(run_settings.model_dir + "_initial.npz", *networks["final.keras"].get_weights())
    return networks
experiment.build_networks = recording_build_networks
experiment.train(dataclasses.replace(settings, model_dir=out + "/single"))
experiment.train(dataclasses.replace(settings, model_dir=out + "/mirrored", distribution_strategy="mirrored",
                                     devices=("/cpu:0", "/cpu:1")))
"""
# Largest difference allowed between the single-device and the mirrored weights.
MIRRORED_ATOL = 1e-5


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")


def _weights(path):
    import keras

    import erlrestore.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False).get_weights()


def _saved_arrays(path):
    with np.load(path) as arrays:
        return [arrays[f"arr_{k}"] for k in range(len(arrays.files))]


@pytest.mark.parametrize("case", sorted(CASES))
def test_mirrored_over_two_devices_matches_one_device_with_the_same_global_batch(case, tmp_path):
    # float32: bfloat16 rounding could differ between a batch of 2 and two of 1.
    result = subprocess.run([sys.executable, "-c", MIRRORED_VS_SINGLE, str(tmp_path), *CASES[case], "--precision=float32"],
                            capture_output=True, text=True, cwd=REPO, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "on 2 replica(s) (mirrored)" in result.stderr
    single = _weights(tmp_path / "single" / "final.keras")
    mirrored = _weights(tmp_path / "mirrored" / "final.keras")
    assert len(single) == len(mirrored)
    # Both runs start from the same weights, and training moves them by far more than the two runs may differ.
    initial = _saved_arrays(tmp_path / "single_initial.npz")
    for a, b in zip(initial, _saved_arrays(tmp_path / "mirrored_initial.npz"), strict=True):
        np.testing.assert_array_equal(a, b)
    moved = max(float(np.max(np.abs(after - before))) for after, before in zip(single, initial, strict=True))
    assert moved > 10 * MIRRORED_ATOL
    # Same data, same global batch: only the order of the gradient sums
    # differs (measured max difference about 3e-8 after the MEMD steps).
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, atol=MIRRORED_ATOL, rtol=0)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(model_dir, args, temp_root, timeout=300):
    """Runs erlrestore-train as a two-worker cluster on 127.0.0.1; returns both results.

    Worker ``k`` (0 is the chief) gets ``<temp_root>/worker<k>`` as its
    temporary folder; a result is ``(exit status, stdout, stderr, pid)``.
    """
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        env["TMPDIR"] = str(temp_root / f"worker{index}")
        os.makedirs(env["TMPDIR"], exist_ok=True)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "erlrestore.cli.train", f"--model_dir={model_dir}",
             "--distribution_strategy=multi_worker_mirrored", "--verbose=0", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
        ))
    results = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
            raise
        results.append((proc.returncode, out, err, proc.pid))
    return results


def _assert_only_the_chief_wrote(model_dir, temp_root, runs):
    """The non-chief (worker 1) of every run left nothing: no scratch folders, no temporary files, no logs."""
    assert not (model_dir / ".workers").exists()  # its scratch checkpoints are gone
    assert not any((temp_root / "worker1").iterdir())  # its scratch TensorBoard logs are gone
    # TensorBoard names each event file after the writing process: events.out.tfevents.<time>.<host>.<pid>.<n>.v2.
    event_files = [path.name for path in model_dir.rglob("events.out.tfevents.*")]
    assert event_files
    chief_pids, other_pids = {str(run[0][3]) for run in runs}, {str(run[1][3]) for run in runs}
    assert {name.rsplit(".", 3)[1] for name in event_files} <= chief_pids, (event_files, chief_pids)
    # Nor does any other file anywhere in the test's folders carry the non-chief's process id in its name.
    assert not [path for path in temp_root.parent.rglob("*") if set(path.name.split(".")) & other_pids]


def _position(model_dir):
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(model_dir / "checkpoints"))
    names = {name for name, _ in tf.train.list_variables(str(model_dir / "checkpoints"))}
    index = next(n for n in names if n.startswith("position/stage_index"))
    step = next(n for n in names if n.startswith("position/stage_step"))
    return int(reader.get_tensor(index)), int(reader.get_tensor(step))


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_workers_train_checkpoint_and_resume(case, tmp_path):
    model_dir = tmp_path / "run"
    # Checkpoint every step; stop this invocation after the first one (mid stage I).
    args = [*CASES[case], "--checkpoint_every=1"]
    temp_root = tmp_path / "temp"
    first = _run_workers(model_dir, [*args, "--stop_after=1"], temp_root)
    for code, out, err, _ in first:
        assert code == 0, err[-4000:]
        assert "stopped after --stop_after=1 steps" in out
    assert "2 replica(s) (multi_worker_mirrored)" in first[0][2]
    assert _position(model_dir) == (0, 1)  # stage 1, one step done
    assert not (model_dir / "final.keras").exists()
    _assert_only_the_chief_wrote(model_dir, temp_root, [first])

    second = _run_workers(model_dir, args, temp_root)
    for code, out, err, _ in second:
        assert code == 0, err[-4000:]
        assert "resumed from" in err and "ckpt-1" in err
        assert "from step 1" in err  # continues inside stage I, optimizer state restored
    stages = 3 if case.startswith("erlnet") else 1
    assert _position(model_dir) == (stages, 0)
    assert second[0][1].strip().endswith(f"model: {model_dir / 'final.keras'}")
    weights = _weights(model_dir / "final.keras")
    assert all(np.isfinite(w).all() for w in weights)
    # Only the chief writes logs and models.
    _assert_only_the_chief_wrote(model_dir, temp_root, [first, second])
