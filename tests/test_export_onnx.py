"""ONNX export (erlrestore-export --format=onnx) and onnxruntime restoration (--backend=onnxruntime)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

pytest.importorskip("tf2onnx")
pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from erlrestore import export, inference  # noqa: E402
from erlrestore.data import image_files  # noqa: E402
from erlrestore.models import erlnet, memd, pix2pix, presets  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
TOLERANCE = 1e-4
ODD_SIZES = [(1, 321, 481), (2, 37, 53)]


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def tiny_memd(seed=0):
    return randomize(memd.build_memd(memd.memd_config("MEMD", **presets.TINY_MEMD)), seed)


def tiny_erlnet(seed=1):
    config = memd.memd_config("MEMD", **presets.TINY_MEMD)
    return randomize(erlnet.build_erlnet(config), seed)


def tiny_pix2pix(seed=2):
    """A UNet-5 (multiple 32) with batch norm whose moving statistics are not the identity."""
    model = pix2pix.build_generator(pix2pix.generator_config("unet5", base_filters=4, max_filters=8))
    pix2pix.init_pix2pix_weights(model, seed=seed)
    rng = np.random.default_rng(seed)
    batch_norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert batch_norms
    for layer in batch_norms:
        channels = layer.moving_mean.shape[0]
        layer.moving_mean.assign(rng.normal(0.0, 0.1, channels).astype(np.float32))
        layer.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
    return model


def keras_restore(model, images):
    return np.clip(model(images, training=False).numpy(), 0.0, 1.0)


def session(version_dir):
    return ort.InferenceSession(os.path.join(version_dir, "model.onnx"), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("build", [tiny_memd, tiny_erlnet, tiny_pix2pix], ids=["memd", "erlnet", "pix2pix"])
def test_onnx_matches_keras_at_odd_sizes(build, tmp_path):
    model = build()
    path = export.export_onnx(model, tmp_path / "onnx", name="tiny")
    assert path == str(tmp_path / "onnx" / "tiny" / "1")
    assert os.listdir(path) == ["model.onnx"]
    sess = session(path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "images" and out.name == "restored"
    assert inp.type == "tensor(float)" and out.type == "tensor(float)"
    assert inp.shape[3] == 3 and all(not isinstance(d, int) for d in inp.shape[:3])  # dynamic N, H, W
    assert sess.get_modelmeta().custom_metadata_map["erlrestore.multiple"] == str(inference.pad_multiple(model))
    rng = np.random.default_rng(5)
    for batch, height, width in ODD_SIZES:
        x = rng.random((batch, height, width, 3), dtype=np.float32)
        got = sess.run(["restored"], {"images": x})[0]
        want = keras_restore(model, x)
        assert want.std() > 1e-3  # not a constant (e.g. fully clipped) output
        assert got.shape == x.shape
        assert np.abs(got - want).max() < TOLERANCE


def test_onnx_matches_savedmodel(tmp_path):
    model = tiny_memd(seed=3)
    onnx_dir = export.export_onnx(model, tmp_path / "onnx", name="m")
    saved = tf.saved_model.load(export.export_savedmodel(model, tmp_path / "sm", name="m"))
    serve = saved.signatures["serving_default"]
    x = np.random.default_rng(6).random((1, 321, 481, 3), dtype=np.float32)
    want = serve(images=tf.constant(x))["restored"].numpy()
    got = session(onnx_dir).run(["restored"], {"images": x})[0]
    assert np.abs(got - want).max() < TOLERANCE


def test_onnx_versioning(tmp_path):
    model = tiny_memd()
    base = tmp_path / "onnx"
    assert export.export_onnx(model, base, name="m") == str(base / "m" / "1")
    assert export.export_onnx(model, base, name="m", version=5) == str(base / "m" / "5")
    assert export.export_onnx(model, base, name="m") == str(base / "m" / "6")
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.export_onnx(model, base, name="m", version=5)
    assert sorted(os.listdir(base / "m")) == ["1", "5", "6"]  # no temporary folders left
    with pytest.raises(ValueError, match="version must be a positive integer"):
        export.export_onnx(model, base, name="m", version=0)


def test_onnx_restorer_tiles_like_tensorflow(tmp_path):
    model = tiny_memd(seed=4)
    restorer_tf = inference.restorer_from_model(model)
    restorer_onnx = inference.load_restorer(export.export_onnx(model, tmp_path / "onnx", name="m"),
                                            backend="onnxruntime")
    assert isinstance(restorer_onnx, inference.OnnxRestorer)
    assert restorer_onnx.multiple == restorer_tf.multiple == 4
    image = np.random.default_rng(7).random((101, 77, 3), dtype=np.float32)
    for kwargs in ({}, {"tile": 48, "overlap": 8}, {"tile": 48, "overlap": 8, "tile_batch": 3}):
        got = inference.restore_tiled(restorer_onnx, image, **kwargs)
        want = inference.restore_tiled(restorer_tf, image, **kwargs)
        assert got.shape == image.shape
        assert np.abs(got - want).max() < TOLERANCE
    # The model folder (largest version) and the file itself load too.
    assert inference.load_restorer(tmp_path / "onnx" / "m", backend="onnxruntime").source.endswith(
        os.path.join("m", "1", "model.onnx"))
    assert isinstance(inference.load_restorer(str(tmp_path / "onnx" / "m" / "1" / "model.onnx"),
                                              backend="onnxruntime"), inference.OnnxRestorer)


def test_backend_errors(tmp_path):
    model = tiny_memd()
    keras_file = tmp_path / "m.keras"
    model.save(keras_file)
    onnx_dir = export.export_onnx(model, tmp_path / "onnx", name="m")
    with pytest.raises(image_files.DataError, match="runs ONNX models only"):
        inference.load_restorer(str(keras_file), backend="onnxruntime")
    with pytest.raises(image_files.DataError, match="runs ONNX models only"):
        inference.load_restorer(export.export_savedmodel(model, tmp_path / "sm", name="m"), backend="onnxruntime")
    with pytest.raises(image_files.DataError, match="--backend=onnxruntime"):
        inference.load_restorer(onnx_dir)
    with pytest.raises(image_files.DataError, match="--backend=onnxruntime"):
        inference.load_restorer(os.path.join(onnx_dir, "model.onnx"))
    with pytest.raises(ValueError, match="backend must be one of"):
        inference.load_restorer(onnx_dir, backend="torch")
    with pytest.raises(image_files.DataError, match=f"ONNX model {onnx_dir} is frozen in inference mode: batch statistics"):
        inference.load_restorer(onnx_dir, backend="onnxruntime", batch_statistics=True)
    (tmp_path / "bad.onnx").write_bytes(b"not an onnx model")
    with pytest.raises(image_files.DataError, match="could not load ONNX model"):
        inference.load_restorer(str(tmp_path / "bad.onnx"), backend="onnxruntime")


def run_cli(module, *args):
    return subprocess.run(
        [sys.executable, "-m", f"erlrestore.cli.{module}", *args],
        capture_output=True, text=True, timeout=300, env=ENV,
    )


@pytest.mark.slow
def test_cli_export_and_restore_with_onnxruntime(tmp_path):
    model = tiny_memd(seed=8)
    keras_file = tmp_path / "tiny.keras"
    model.save(keras_file)
    result = run_cli("export", f"--model={keras_file}", "--format=onnx", f"--base_dir={tmp_path / 'onnx'}")
    assert result.returncode == 0, result.stderr[-3000:]
    version_dir = result.stdout.strip().splitlines()[-1]
    assert version_dir == str(tmp_path / "onnx" / "tiny" / "1")
    assert os.path.isfile(os.path.join(version_dir, "model.onnx"))

    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(9)
    for name, (height, width) in {"a.png": (83, 131), "b.png": (61, 45)}.items():
        image_files.write_image(src / name, rng.random((height, width, 3)), bit_depth=16)
    tiling = ["--tile=48", "--overlap=8", "--tile_batch=2"]
    result = run_cli("restore", f"--model={keras_file}", f"--input={src}", f"--output_dir={tmp_path / 'tf'}",
                     *tiling)
    assert result.returncode == 0, result.stderr[-3000:]
    for model_arg in (version_dir, os.path.join(version_dir, "model.onnx"), str(tmp_path / "onnx" / "tiny")):
        out = tmp_path / f"ort{len(model_arg)}"
        result = run_cli("restore", "--backend=onnxruntime", f"--model={model_arg}", f"--input={src}",
                         f"--output_dir={out}", *tiling)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.strip().splitlines()[-1] == f"restored 2 images to {out}"
        for name in ("a.png", "b.png"):
            got, want = image_files.read_image(out / name), image_files.read_image(tmp_path / "tf" / name)
            assert got.shape == want.shape
            # 16-bit outputs: a float difference below 1e-4 may flip one rounding step (1/65535).
            assert np.abs(got - want).max() < TOLERANCE


@pytest.mark.slow
def test_cli_bad_combinations(tmp_path):
    model = tiny_memd()
    keras_file = tmp_path / "tiny.keras"
    model.save(keras_file)
    onnx_dir = export.export_onnx(model, tmp_path / "onnx", name="tiny")
    src = tmp_path / "in"
    src.mkdir()
    image_files.write_image(src / "a.png", np.full((20, 30, 3), 0.5))

    result = run_cli("restore", "--backend=onnxruntime", f"--model={keras_file}", f"--input={src}",
                     f"--output_dir={tmp_path / 'out1'}")
    assert result.returncode == 1
    assert "runs ONNX models only" in result.stderr and "--format=onnx" in result.stderr
    result = run_cli("restore", f"--model={onnx_dir}", f"--input={src}", f"--output_dir={tmp_path / 'out2'}")
    assert result.returncode == 1
    assert "run it with --backend=onnxruntime" in result.stderr
    result = run_cli("restore", "--backend=pytorch", f"--model={onnx_dir}", f"--input={src}",
                     f"--output_dir={tmp_path / 'out3'}")
    assert result.returncode != 0 and "--backend" in result.stderr
    result = run_cli("export", f"--model={keras_file}", "--format=tflite", f"--base_dir={tmp_path / 'x'}")
    assert result.returncode != 0 and "--format" in result.stderr
    assert not (tmp_path / "x").exists()
