"""SavedModel export for TF Serving: signatures, loading without erlrestore, versioning, the CLI."""

import os
import re
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import export
from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files
from erlrestore.models import memd, presets

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def tiny_model(seed=0):
    """A tiny MEMD with random (non-identity) weights; outputs stay mostly inside [0, 1]."""
    model = memd.build_memd(memd.memd_config("MEMD", **presets.TINY_MEMD))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def keras_restore(model, images):
    return np.clip(model(images, training=False).numpy(), 0.0, 1.0)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    base = tmp_path_factory.mktemp("savedmodels")
    return export.export_savedmodel(model, base_dir=base, name="tiny")


# Runs in a child where any import of erlrestore fails: the SavedModel must stand alone.
CHILD = r"""
import sys
sys.modules["erlrestore"] = None
import os
import numpy as np
import tensorflow as tf

export_dir, work = sys.argv[1], sys.argv[2]
try:
    import erlrestore.layers
except ImportError:
    pass
else:
    raise SystemExit("erlrestore was importable in the child")
loaded = tf.saved_model.load(export_dir)
serve = loaded.signatures["serving_default"]
inputs = np.load(os.path.join(work, "inputs.npz"))
outputs = {key: serve(images=tf.constant(inputs[key]))["restored"].numpy() for key in inputs.files}
np.savez(os.path.join(work, "outputs.npz"), **outputs)
names = sorted(n for n in os.listdir(work) if n.startswith("in_"))
blobs = [open(os.path.join(work, n), "rb").read() for n in names]
encoded = loaded.signatures["restore_bytes"](image_bytes=tf.constant(blobs))["restored_bytes"].numpy()
for name, data in zip(names, encoded):
    with open(os.path.join(work, "out_" + name[3:] + ".png"), "wb") as handle:
        handle.write(data)
assert not any(m.startswith("erlrestore.") for m in sys.modules if sys.modules[m] is not None)
"""


@pytest.mark.slow
def test_signatures_match_keras_without_erlrestore(model, exported, tmp_path):
    rng = np.random.default_rng(1)
    x1 = rng.random((1, 37, 53, 3)).astype(np.float32)
    x2 = rng.random((2, 32, 48, 3)).astype(np.float32)
    expected1, expected2 = keras_restore(model, x1), keras_restore(model, x2)
    assert np.abs(expected1 - x1).mean() > 0.02  # the model really changes images
    assert ((expected1 > 0) & (expected1 < 1)).mean() > 0.8  # and mostly inside (0, 1)

    # A batch of encoded images of different sizes and formats.
    png8 = rng.integers(0, 256, (21, 30, 3), dtype=np.uint8)
    jpeg_source = rng.integers(0, 256, (26, 19, 3), dtype=np.uint8)
    png16 = rng.integers(0, 65536, (17, 23, 3), dtype=np.uint16)
    blobs = {
        "0": cv2.imencode(".png", png8[..., ::-1])[1].tobytes(),
        "1": cv2.imencode(".jpg", jpeg_source[..., ::-1])[1].tobytes(),
        "2": cv2.imencode(".png", png16[..., ::-1])[1].tobytes(),
    }
    for key, data in blobs.items():
        (tmp_path / f"in_{key}").write_bytes(data)
    decoded = {
        "0": png8.astype(np.float32) / np.float32(255),
        # TensorFlow's own JPEG decoder (OpenCV's may differ by a few levels).
        "1": tf.io.decode_jpeg(blobs["1"], channels=3).numpy().astype(np.float32) / np.float32(255),
        "2": png16.astype(np.float32) / np.float32(65535),
    }
    np.savez(tmp_path / "inputs.npz", x1=x1, x2=x2, **{f"decoded_{k}": v[None] for k, v in decoded.items()})

    result = subprocess.run(
        [sys.executable, "-c", CHILD, exported, str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")

    assert outputs["x1"].shape == x1.shape and outputs["x2"].shape == x2.shape
    assert np.abs(outputs["x1"] - expected1).max() < 1e-5
    assert np.abs(outputs["x2"] - expected2).max() < 1e-5
    for key, image in decoded.items():
        float_output = outputs[f"decoded_{key}"][0]
        assert np.abs(float_output - keras_restore(model, image[None])[0]).max() < 1e-5
        data = np.frombuffer((tmp_path / f"out_{key}.png").read_bytes(), np.uint8)
        png = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        assert png.dtype == np.uint8 and png.shape == image.shape, (key, png.dtype, png.shape)
        rounded = np.rint(np.clip(float_output.astype(np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
        np.testing.assert_array_equal(png[..., ::-1], rounded, err_msg=f"image {key}")


def _signature_block(text, name):
    match = re.search(rf"signature_def\['{name}'\]:\n(.*?)Method name is: (\S+)", text, re.S)
    assert match, f"signature {name} missing in:\n{text[:3000]}"
    return match.group(1), match.group(2)


@pytest.mark.slow
def test_saved_model_cli_lists_both_signatures(exported):
    result = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir", exported, "--all"],
        capture_output=True, text=True, timeout=300, env=ENV,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    block, method = _signature_block(result.stdout, "serving_default")
    assert method == "tensorflow/serving/predict"
    assert re.search(r"inputs\['images'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1, -1, 3\)", block)
    assert re.search(r"outputs\['restored'\] tensor_info:\s+dtype: DT_FLOAT\s+shape: \(-1, -1, -1, 3\)", block)
    assert len(re.findall(r"inputs\['", block)) == 1 and len(re.findall(r"outputs\['", block)) == 1
    block, method = _signature_block(result.stdout, "restore_bytes")
    assert method == "tensorflow/serving/predict"
    assert re.search(r"inputs\['image_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", block)
    assert re.search(r"outputs\['restored_bytes'\] tensor_info:\s+dtype: DT_STRING\s+shape: \(-1\)", block)
    assert len(re.findall(r"inputs\['", block)) == 1 and len(re.findall(r"outputs\['", block)) == 1


def test_layout(exported):
    assert exported.endswith(os.path.join("tiny", "1"))
    assert os.path.isfile(os.path.join(exported, "saved_model.pb"))
    assert os.path.isdir(os.path.join(exported, "variables"))
    assert sorted(os.listdir(os.path.dirname(exported))) == ["1"]  # no temporary folder left


def _snapshot(folder):
    return {
        os.path.relpath(os.path.join(root, f), folder): (os.stat(os.path.join(root, f)).st_mtime_ns,
                                                         open(os.path.join(root, f), "rb").read())
        for root, _, files in os.walk(folder) for f in files
    }


def test_versions_increase_and_existing_is_never_overwritten(model, tmp_path):
    first = export.export_savedmodel(model, tmp_path, name="m")
    second = export.export_savedmodel(model, tmp_path, name="m")
    assert (first, second) == (str(tmp_path / "m" / "1"), str(tmp_path / "m" / "2"))
    assert export.list_versions(tmp_path, "m") == [1, 2]

    before = _snapshot(first)
    with pytest.raises(FileExistsError, match=r"m/1 already exists; an exported version is never overwritten"):
        export.export_savedmodel(tiny_model(seed=5), tmp_path, name="m", version=1)
    assert _snapshot(first) == before
    assert sorted(os.listdir(tmp_path / "m")) == ["1", "2"]

    # The default is the largest version + 1, not the count + 1.
    (tmp_path / "m" / "7").mkdir()  # e.g. copied in by hand
    assert export.export_savedmodel(model, tmp_path, name="m").endswith("m/8")
    assert export.list_versions(tmp_path, "m") == [1, 2, 7, 8]


@pytest.mark.parametrize("version", [0, -3, True, 1.0, "2"])
def test_bad_version(model, tmp_path, version):
    with pytest.raises(ValueError, match=re.escape(f"version must be a positive integer, got {version!r}")):
        export.export_savedmodel(model, tmp_path, name="m", version=version)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_nothing(model, tmp_path, monkeypatch, existing):
    if existing:
        (tmp_path / "m" / "1").mkdir(parents=True)
    written = []
    real_build_archive = export.build_archive

    def build_failing_archive(model):
        archive = real_build_archive(model)
        real_write_out = archive.write_out

        def failing_write_out(filepath, *args, **kwargs):
            real_write_out(filepath, *args, **kwargs)
            written.append((os.path.basename(filepath), sorted(os.listdir(filepath))))
            raise RuntimeError("simulated disk full")

        archive.write_out = failing_write_out
        return archive

    monkeypatch.setattr(export, "build_archive", build_failing_archive)
    with pytest.raises(RuntimeError, match="simulated disk full"):
        export.export_savedmodel(model, tmp_path, name="m")
    # The temporary folder had been filled, then removed.
    assert written and written[0][0] == f".tmp-{2 if existing else 1}-{os.getpid()}"
    assert "saved_model.pb" in written[0][1]
    if existing:
        assert sorted(os.listdir(tmp_path / "m")) == ["1"]
    else:
        assert os.listdir(tmp_path) == []  # not even the model folder this export created


def test_list_versions(tmp_path):
    assert export.list_versions(tmp_path, "absent") == []
    # "²" and "٣" pass str.isdigit() (int("²") fails, int("٣") is 3): neither is a version folder.
    for name in ("1", "3", "10", ".tmp-4-123", "latest", "02x", "\u00b2", "\u0663", "1\u00b2"):
        (tmp_path / "m" / name).mkdir(parents=True)
    (tmp_path / "m" / "7").write_text("a file, not a version")
    assert export.list_versions(tmp_path, "m") == [1, 3, 10]


def test_savedmodel_contract_versions(tmp_path):
    base = tmp_path / "m"
    assert contract.list_versions(base) == []
    with pytest.raises(FileNotFoundError, match=f"{base} is not a folder"):
        contract.latest_version(base)
    for name in ("2", "007", "\u00b2", "\u0669", "9x"):
        (base / name).mkdir(parents=True)
    (base / "12").write_text("a file")
    assert contract.list_versions(base) == [2, 7]
    assert contract.latest_version(base) == 7
    assert contract.latest_version_folder(base) == str(base / "007")  # the folder's own spelling
    # With a marker only complete versions count.
    assert contract.list_versions(base, contract.SAVED_MODEL_FILE) == []
    with pytest.raises(FileNotFoundError, match=r"has no version folder holding saved_model\.pb"):
        contract.latest_version(base, contract.SAVED_MODEL_FILE)
    (base / "2" / contract.SAVED_MODEL_FILE).write_bytes(b"")
    (base / "\u00b2" / contract.SAVED_MODEL_FILE).write_bytes(b"")
    assert contract.latest_version(base, contract.SAVED_MODEL_FILE) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty has no version folder \(versions are sub-folders named"):
        contract.latest_version(empty)


def test_export_writes_the_contract(exported):
    loaded = tf.saved_model.load(exported)
    assert set(loaded.signatures) == {contract.SERVING_SIGNATURE, contract.BYTES_SIGNATURE}
    serving = loaded.signatures[contract.SERVING_SIGNATURE]
    assert list(serving.structured_input_signature[1]) == [contract.INPUT_KEY]
    assert list(serving.structured_outputs) == [contract.OUTPUT_KEY]
    as_bytes = loaded.signatures[contract.BYTES_SIGNATURE]
    assert list(as_bytes.structured_input_signature[1]) == [contract.BYTES_INPUT_KEY]
    assert list(as_bytes.structured_outputs) == [contract.BYTES_OUTPUT_KEY]


def test_model_sources_and_default_names(model, tmp_path):
    model_file = tmp_path / "derain_v2.keras"
    model.save(model_file)
    path = export.export_savedmodel(str(model_file), tmp_path / "sm")
    assert path == str(tmp_path / "sm" / "derain_v2" / "1")
    assert export.export_savedmodel(model, tmp_path / "sm").endswith(os.path.join("memd", "1"))  # model.name

    with pytest.raises(image_files.DataError, match=re.escape(f"model file {tmp_path / 'missing.keras'} does not exist")):
        export.export_savedmodel(str(tmp_path / "missing.keras"), tmp_path / "sm")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(image_files.DataError, match=re.escape(f"run folder {tmp_path / 'empty_run'} has no final.keras")):
        export.export_savedmodel(str(tmp_path / "empty_run"), tmp_path / "sm")
    for bad in ("../evil", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="is not usable as a folder name"):
            export.export_savedmodel(model, tmp_path / "sm", name=bad)
    with pytest.raises(TypeError, match="must be a keras.Model, a .keras file or a training run folder"):
        export.export_savedmodel(42, tmp_path / "sm")
    assert sorted(os.listdir(tmp_path / "sm")) == ["derain_v2", "memd"]


def run_cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.export", *args],
        capture_output=True, text=True, timeout=300, cwd=cwd, env=ENV,
    )


@pytest.mark.slow
def test_cli_on_run_folder(tmp_path):
    source = tiny_model(seed=3)
    (tmp_path / "run").mkdir()
    source.save(tmp_path / "run" / "final.keras")

    result = run_cli(f"--model={tmp_path / 'run'}", f"--base_dir={tmp_path / 'sm'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    path = result.stdout.strip().splitlines()[-1]
    assert path == str(tmp_path / "sm" / "run" / "1")
    x = np.random.default_rng(4).random((1, 19, 26, 3)).astype(np.float32)
    restored = tf.saved_model.load(path).signatures["serving_default"](images=tf.constant(x))["restored"]
    assert np.abs(restored.numpy() - keras_restore(source, x)).max() < 1e-5

    result = run_cli(f"--model={tmp_path / 'run'}", f"--base_dir={tmp_path / 'sm'}", "--version=1", cwd=tmp_path)
    assert result.returncode == 1
    assert "sm/run/1 already exists; an exported version is never overwritten" in result.stderr
    assert sorted(os.listdir(tmp_path / "sm" / "run")) == ["1"]


@pytest.mark.slow
def test_cli_errors(tmp_path):
    result = run_cli(f"--model={tmp_path / 'nothing.keras'}", "--version=0", cwd=tmp_path)
    assert result.returncode != 0
    assert "--version must be a positive integer, got 0" in result.stderr
    result = run_cli(f"--model={tmp_path / 'nothing.keras'}", cwd=tmp_path)
    assert result.returncode != 0
    assert f"--model={tmp_path / 'nothing.keras'} does not exist" in result.stderr
    assert not (tmp_path / "savedmodels").exists()
