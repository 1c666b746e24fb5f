"""The tools are quiet by default: no TensorFlow C++ start-up lines, no TensorFlow/Keras INFO lines."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the command lines and reads their output

REPO = pathlib.Path(__file__).resolve().parent.parent
NOISE = ("oneDNN", "absl::InitializeLog", "cuInit", "cuda", "Sharding callback duration")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ERLRESTORE_VERBOSE")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quiet") / "set"
    result = subprocess.run([sys.executable, "-m", "erlrestore.cli.synth", "--procedural=2", "--size=48",
                             "--degradation=rain", f"--output_dir={folder}"], capture_output=True, text=True,
                            timeout=300, env=_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return folder


def test_metrics_prints_its_line_and_nothing_of_tensorflow(tiny_set):
    quiet = subprocess.run([sys.executable, "-m", "erlrestore.cli.metrics", f"--input_dir={tiny_set}"],
                           capture_output=True, text=True, timeout=300, env=_env())
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stdout.strip().startswith("n=2 psnr_y=")
    assert not [word for word in NOISE if word in quiet.stderr], quiet.stderr
    loud = subprocess.run([sys.executable, "-m", "erlrestore.cli.metrics", f"--input_dir={tiny_set}"],
                          capture_output=True, text=True, timeout=300, env=_env(ERLRESTORE_VERBOSE="1"))
    assert loud.returncode == 0
    assert len(loud.stderr) > len(quiet.stderr)  # TensorFlow's start-up lines are back


def test_training_shows_its_own_progress_but_no_checkpoint_info_lines(tmp_path):
    result = subprocess.run([sys.executable, "-m", "erlrestore.cli.train",
                             "--flagfile=flags/erlnet_ma_d_mlgd.flags", "--flagfile=flags/tiny/erlnet.flags",
                             f"--model_dir={tmp_path / 'run'}"],
                            capture_output=True, text=True, timeout=600, cwd=REPO, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stage I (1/3): 2 steps, from step 0" in result.stderr
    # Progress in the run's own terms: stage, step / steps of the stage, losses; not Keras' epochs.
    assert "stage II (2/3) step 2/2: fre " in result.stderr
    assert "Epoch" not in result.stderr
    assert not re.search(r"^[IW]\d{4} ", result.stderr, re.M), result.stderr  # no absl INFO/WARNING-format lines
    assert not [word for word in NOISE + ("remapper",) if word in result.stderr], result.stderr


def test_export_prints_where_it_wrote_and_no_tensorflow_info(tmp_path):
    train = subprocess.run([sys.executable, "-m", "erlrestore.cli.train", "--flagfile=flags/memd.flags",
                            "--flagfile=flags/tiny/erlnet.flags",
                            f"--model_dir={tmp_path / 'run'}", "--verbose=0"], capture_output=True, text=True,
                           timeout=600, cwd=REPO, env=_env())
    assert train.returncode == 0, train.stderr[-3000:]
    export = subprocess.run([sys.executable, "-m", "erlrestore.cli.export", f"--model={tmp_path / 'run'}",
                             f"--base_dir={tmp_path / 'savedmodels'}"], capture_output=True, text=True, timeout=600,
                            env=_env())
    assert export.returncode == 0, export.stderr[-3000:]
    assert export.stdout.strip().endswith(str(tmp_path / "savedmodels" / "run" / "1"))
    assert "INFO:tensorflow" not in export.stderr and "Assets written" not in export.stderr
    assert not [word for word in NOISE if word in export.stderr], export.stderr
