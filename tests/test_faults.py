"""Training survives faults: kill -9 anywhere, non-finite losses, unwritable model folders.

The kill test trains tiny runs in child processes and SIGKILLs them at
random moments and inside checkpoint writes, restarting each time with the
same command until one finishes; the final weights must equal those of an
uninterrupted run, bit for bit. The children run with oneDNN off
(TF_ENABLE_ONEDNN_OPTS=0) and --deterministic, so equal inputs give equal
weights.

Kills inside a checkpoint write come from a sitecustomize module put on the
children's PYTHONPATH (test code; nothing in erlrestore knows about it):

* ``index``: the files of the first checkpoint at or past a chosen (stage,
  step) are written, then the process dies just before the ``checkpoint``
  index names them;
* ``write``: a thread kills the process about a millisecond into that
  checkpoint's save, while its files are being written.

ERL-Net gets one such kill inside each of its three stages, the GAN two
in its one; then both get kills at random moments, up to a second after
the restarted child reaches a stage (10 in all).
"""

import os
import pathlib
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # kills and restarts training processes (fault injection)

REPO = pathlib.Path(__file__).resolve().parent.parent

SITECUSTOMIZE = '''
import os
_mode = os.environ.get("FAULT_MODE", "")
if _mode:
    import signal, threading
    import tensorflow as tf
    from tensorflow.python.checkpoint import checkpoint_management as _cm
    _target = tuple(int(v) for v in os.environ["FAULT_POSITION"].split(","))
    _armed = [False]

    def _die():
        os.kill(os.getpid(), signal.SIGKILL)

    _save = tf.train.CheckpointManager.save

    def save(self, *args, **kwargs):
        position = self._checkpoint.position
        if (int(position.stage_index), int(position.stage_step)) >= _target:
            _armed[0] = True
            if _mode == "write":
                threading.Timer(0.001, _die).start()
        return _save(self, *args, **kwargs)

    tf.train.CheckpointManager.save = save
    _update = _cm.update_checkpoint_state_internal

    def update(*args, **kwargs):
        if _mode == "index" and _armed[0]:
            _die()
        return _update(*args, **kwargs)

    _cm.update_checkpoint_state_internal = update
'''

# Tiny runs with a checkpoint after every step, so kills land between,
# inside and around checkpoint writes.
RUNS = {
    "erlnet_ma_d": ["--flagfile=flags/erlnet_ma_d_mlgd.flags", "--flagfile=flags/tiny/erlnet.flags",
                    "--stage_steps=8"],
    "unet5_lsgan": ["--flagfile=flags/unet5_lsgan.flags", "--flagfile=flags/tiny/gan.flags", "--stage_steps=16"],
}
COMMON = ["--checkpoint_every=1", "--deterministic", "--precision=float32", "--verbose=0"]


def _env(extra_path=None, **faults):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    if extra_path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(extra_path), env.get("PYTHONPATH", "")) if p)
    env.update({k: str(v) for k, v in faults.items()})
    return env


def _command(model_dir, args):
    return [sys.executable, "-m", "erlrestore.cli.train", f"--model_dir={model_dir}", *args, *COMMON]


def _weights(path):
    import keras

    import erlrestore.layers  # noqa: F401  (registers the custom layers)

    return keras.saving.load_model(path, compile=False).get_weights()


def _resumed_from(stderr):
    """The checkpoint number a child resumed from (0: none), or None if it died before saying."""
    if "stage " not in stderr and "resumed from" not in stderr:
        return None
    found = re.findall(r"resumed from \S*ckpt-(\d+)", stderr)
    return int(found[-1]) if found else 0


@pytest.mark.parametrize("case, random_kills, save_kills", [("erlnet_ma_d", 3, 3), ("unet5_lsgan", 2, 2)])
def test_kill_9_anywhere_then_restart_ends_with_the_uninterrupted_weights(case, random_kills, save_kills, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    args = RUNS[case]

    reference = subprocess.run(_command(tmp_path / "reference", args), capture_output=True, text=True,
                               cwd=REPO, env=_env(), timeout=300)
    assert reference.returncode == 0, reference.stderr[-3000:]

    rng = random.Random(f"{case}-7")
    stages = 3 if case.startswith("erlnet") else 1
    # First the kills inside checkpoint writes, at or past a random early step of
    # each stage in turn (ERL-Net: one per stage; GAN: two in its one stage)...
    targets = sorted((i * stages // save_kills, rng.randint(1, 3) + 3 * (i * stages % save_kills))
                     for i in range(save_kills))
    plan = [(rng.choice(["write", "index"]), f"{stage},{step}") for stage, step in targets]
    # ...then kills at random moments, up to a second after the restarted child
    # starts a stage (it is importing, restoring, tracing or training by then).
    plan += [("time", rng.uniform(0.05, 1.0)) for _ in range(random_kills)]
    model_dir = tmp_path / "killed"
    killed, positions, log = 0, [], []
    for kind, value in plan + [("none", 0)]:
        if kind == "time":
            proc = subprocess.Popen(_command(model_dir, args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, cwd=REPO, env=_env())
            seen = []
            for line in proc.stderr:  # wait until it reaches a stage
                seen.append(line)
                if " steps, from step " in line:
                    break
            time.sleep(value)
            proc.send_signal(signal.SIGKILL)
            out, rest = proc.communicate(timeout=60)
            err = "".join(seen) + rest
        else:
            faults = {} if kind == "none" else {"FAULT_MODE": kind, "FAULT_POSITION": value}
            proc = subprocess.run(_command(model_dir, args), capture_output=True, text=True, cwd=REPO,
                                  env=_env(site, **faults), timeout=300)
            out, err = proc.stdout, proc.stderr
        code = proc.returncode
        log.append((kind, value, code))
        positions.append(_resumed_from(err))
        if code == -signal.SIGKILL:
            killed += 1
        else:
            assert code == 0, (log, err[-3000:])
            assert kind == "none", f"the run finished before fault {kind} {value} fired: {log}"
    print(case, "kill points:", log)
    assert killed == random_kills + save_kills, log
    assert (model_dir / "final.keras").is_file(), log
    known = [p for p in positions if p is not None]
    assert known == sorted(known), (log, positions)  # never resumed from an older checkpoint
    # Same weights as the run nobody interrupted: every restart continued from a
    # complete checkpoint with optimizer, position and plateau state, on the same data.
    for a, b in zip(_weights(tmp_path / "reference" / "final.keras"), _weights(model_dir / "final.keras")):
        np.testing.assert_array_equal(a, b)


def test_non_finite_loss_stops_naming_step_and_stage_and_keeps_the_last_good_checkpoint(tmp_path):
    import tensorflow as tf

    model_dir = tmp_path / "run"
    # A learning rate this large blows the weights up within a few steps.
    result = subprocess.run(
        _command(model_dir, ["--flagfile=flags/memd.flags", "--flagfile=flags/tiny/erlnet.flags", "--stage_steps=40",
                             "--learning_rate=1e12"]),
        capture_output=True, text=True, cwd=REPO, env=_env(), timeout=300,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    message = re.search(r"error: non-finite (.*) at step (\d+) of stage I; stopped without writing a checkpoint",
                        result.stderr)
    assert message, result.stderr[-3000:]
    step = int(message.group(2))
    assert not (model_dir / "final.keras").exists()
    latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
    if step == 1:
        assert latest is None
        return
    reader = tf.train.load_checkpoint(latest)
    names = [name for name, _ in tf.train.list_variables(latest)]
    assert int(reader.get_tensor(next(n for n in names if n.startswith("position/stage_step")))) == step - 1
    for name in names:
        if name.startswith(("net/", "optimizer/")) and "VARIABLE_VALUE" in name:
            assert np.isfinite(reader.get_tensor(name)).all(), name


def _train_in_process(model_dir, **overrides):
    import dataclasses

    from erlrestore.models import presets
    from erlrestore.training import experiment, inputs

    settings = experiment.TrainSettings(
        model_dir=str(model_dir), model="MEMD", **presets.TINY_MEMD,
        stage_steps=(2,), checkpoint_every=1, verbose=0, precision="float32",
        data=inputs.DataSettings(procedural=2, crop_size=32, batch_size=1),
    )
    return experiment.train(dataclasses.replace(settings, **overrides))


def test_a_model_dir_that_cannot_be_written_fails_before_training(tmp_path):
    if os.geteuid() == 0:
        target = pathlib.Path("/sys/kernel")  # sysfs refuses new files even to root
        if not target.is_dir() or os.access(target, os.W_OK) and _can_create(target):
            pytest.skip("no read-only folder available to root here")
    else:
        target = tmp_path / "read_only"
        target.mkdir()
        target.chmod(0o555)
    with pytest.raises(OSError, match=f"cannot write to --model_dir {target}"):
        _train_in_process(target)


def _can_create(folder):
    try:
        (folder / ".erlrestore_probe").write_bytes(b"")
    except OSError:
        return False
    (folder / ".erlrestore_probe").unlink()
    return True


def test_a_full_disk_fails_before_training(tmp_path, monkeypatch):
    import shutil

    from erlrestore.training import run

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(run.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    with pytest.raises(OSError, match=r"not enough space for checkpoints in .*MiB free"):
        _train_in_process(tmp_path / "run")
    assert not list((tmp_path / "run" / "checkpoints").glob("ckpt-*")), "no checkpoint may be written"


def test_cli_reports_an_unwritable_model_dir_clearly(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    tiny_memd = ["--flagfile=flags/memd.flags", "--flagfile=flags/tiny/erlnet.flags"]
    result = subprocess.run(_command(blocker / "run", tiny_memd), capture_output=True,
                            text=True, cwd=REPO, env=_env(), timeout=300)
    assert result.returncode == 1
    assert f"error: cannot write to --model_dir {blocker / 'run'}" in result.stderr
