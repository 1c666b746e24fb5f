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

REPO = pathlib.Path(__file__).resolve().parent.parent

# Tiny flagfiles plus what makes a single device and the replicas compute
# the same thing: instance norm (batch statistics would be per replica) and
# no dropout (random per replica). Global batch 2 = one image per replica;
# ERL-Net runs 3 steps a stage with checkpoints every 2 (two fits a stage).
CASES = {
    "erlnet_ma_d": ["--flagfile=flags/tiny/erlnet_ma_d_mlgd.flags", "--batch_size=2", "--stage_steps=3"],
    "unet5_lsgan": ["--flagfile=flags/tiny/unet5_lsgan.flags", "--batch_size=2", "--gen_norm=instance",
                    "--dropout=0"],
}

# Runs erlrestore-train's settings twice in one process whose CPU is split in
# two logical devices: on one device, then mirrored over both.
MIRRORED_VS_SINGLE = """
import dataclasses, sys
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
experiment.train(dataclasses.replace(settings, model_dir=out + "/single"))
experiment.train(dataclasses.replace(settings, model_dir=out + "/mirrored", distribution_strategy="mirrored",
                                     devices=("/cpu:0", "/cpu:1")))
"""


def _env():
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")


def _weights(path):
    import keras

    import erlrestore.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False).get_weights()


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
    moved = max(float(np.max(np.abs(w))) for w in single)
    assert moved > 0
    # Same data, same global batch: only the order of the gradient sums
    # differs (measured max difference about 3e-8 after the MEMD steps).
    for a, b in zip(single, mirrored):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=0)


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(model_dir, args, timeout=300):
    """Runs erlrestore-train as a two-worker cluster on 127.0.0.1; returns both results."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
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
        results.append((proc.returncode, out, err))
    return results


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
    first = _run_workers(model_dir, [*args, "--stop_after=1"])
    for code, out, err in first:
        assert code == 0, err[-4000:]
        assert "stopped after --stop_after=1 steps" in out
    assert "2 replica(s) (multi_worker_mirrored)" in first[0][2]
    assert _position(model_dir) == (0, 1)  # stage 1, one step done
    assert not (model_dir / "final.keras").exists()
    assert not (model_dir / ".workers").exists()  # the non-chief's scratch copies are gone

    second = _run_workers(model_dir, args)
    for code, out, err in second:
        assert code == 0, err[-4000:]
        assert "resumed from" in err and "ckpt-1" in err
        assert "from step 1" in err  # continues inside stage I, optimizer state restored
    stages = 3 if case.startswith("erlnet") else 1
    assert _position(model_dir) == (stages, 0)
    assert second[0][1].strip().endswith(f"model: {model_dir / 'final.keras'}")
    weights = _weights(model_dir / "final.keras")
    assert all(np.isfinite(w).all() for w in weights)
    # Only the chief writes logs and models.
    assert sorted(p.name for p in (model_dir / "logs").iterdir())[0].startswith("stage1_")
