"""LiteRT and OpenVINO: export (--format=litert|openvino), their restorers (--backend=litert|openvino),
ONNX's named dynamic dimensions, and restoring with an exported model without importing TensorFlow."""

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import backends, export, inference, runtimes
from erlrestore.data import image_files
from erlrestore.models import memd, pix2pix, presets

TOLERANCE = 1e-3  # max abs difference from the SavedModel, [0, 1] images
SIZE = (321, 481)
NOISE = ("oneDNN", "absl::InitializeLog", "cuInit", "cuda", "XNNPACK")


def installed(*modules):
    return all(importlib.util.find_spec(module) is not None for module in modules)


HAVE_LITERT = installed("ai_edge_litert")
HAVE_OPENVINO = installed("openvino")
HAVE_ONNX = installed("tf2onnx", "onnx", "onnxruntime")
needs_openvino = pytest.mark.skipif(
    not HAVE_OPENVINO, reason="openvino is not installed (pip install 'erlrestore[openvino]')")
needs_litert = pytest.mark.skipif(
    not HAVE_LITERT, reason="ai-edge-litert is not installed (pip install 'erlrestore[litert]'); without it LiteRT "
    "runs through tf.lite.Interpreter, which imports TensorFlow")
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="tf2onnx/onnx/onnxruntime are not installed "
                                "(pip install 'erlrestore[onnx]')")
# LiteRT export and restoring need only TensorFlow (tf.lite.Interpreter stands in for ai-edge-litert).
RUNTIMES = [pytest.param("litert", id="litert"), pytest.param("openvino", id="openvino", marks=needs_openvino)]
FILES = {"litert": ["model.tflite"], "openvino": ["model.bin", "model.xml"]}


def randomize(model, seed):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def tiny_memd(seed=0):
    return randomize(memd.build_memd(memd.memd_config("MEMD", **presets.TINY_MEMD)), seed)


def tiny_pix2pix(seed=2):
    """A UNet-5 (multiple 32) whose batch norms (folded at export) have non-trivial moving statistics."""
    model = pix2pix.build_generator(pix2pix.generator_config("unet5", base_filters=4, max_filters=8))
    pix2pix.init_pix2pix_weights(model, seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0.0, 0.1, channels).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, channels).astype(np.float32))
    return model


class Exports:
    """Tiny models, their SavedModels' ``serving_default`` and their exports, each made once per module."""

    def __init__(self, base):
        self.base = base
        self.models = {"memd": tiny_memd(), "pix2pix": tiny_pix2pix()}
        self._serving = {}
        self._exports = {}

    def serve(self, kind, images):
        if kind not in self._serving:
            folder = export.export_savedmodel(self.models[kind], self.base / "savedmodels", name=kind)
            self._serving[kind] = tf.saved_model.load(folder)
        signature = self._serving[kind].signatures["serving_default"]
        return signature(images=tf.constant(images))["restored"].numpy()

    def folder(self, backend, kind="memd"):
        if (backend, kind) not in self._exports:
            write = backends.get(backend).export_function()
            self._exports[backend, kind] = write(self.models[kind], self.base / backend, name=kind)
        return self._exports[backend, kind]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    return Exports(tmp_path_factory.mktemp("runtimes"))


def test_the_backend_table():
    assert backends.NAMES == ("tensorflow", "onnxruntime", "litert", "openvino")
    assert inference.BACKENDS == backends.NAMES
    assert export.FORMATS == ("saved_model", "onnx", "litert", "openvino")
    assert [backends.for_format(f).name for f in export.FORMATS] == list(backends.NAMES)
    for backend in backends.BACKENDS.values():
        assert callable(backend.load_function()) and callable(backend.export_function())
        assert backend.name in backends.backend_help()
    with pytest.raises(ValueError, match="backend must be one of"):
        backends.get("tflite")


@pytest.mark.parametrize("kind", ["memd", "pix2pix"])
@pytest.mark.parametrize("backend", RUNTIMES)
def test_matches_the_savedmodel_at_321x481(backend, kind, exports):
    folder = exports.folder(backend, kind)
    assert folder == str(exports.base / backend / kind / "1")
    assert sorted(os.listdir(folder)) == FILES[backend]  # nothing else (no temporary files)
    restorer = inference.load_restorer(folder, backend=backend)
    assert restorer.multiple == inference.pad_multiple(exports.models[kind])
    rng = np.random.default_rng(5)
    for shape in [(1, *SIZE, 3), (2, 37, 53, 3)]:  # dynamic batch, height and width; sizes off the multiple
        images = rng.random(shape, dtype=np.float32)
        want = exports.serve(kind, images)
        got = restorer(images)
        assert want.std() > 1e-3  # a real, non-constant output
        assert got.shape == images.shape and got.dtype == np.float32
        assert np.abs(got - want).max() < TOLERANCE


@pytest.mark.parametrize("backend", RUNTIMES)
def test_tiles_like_tensorflow_and_loads_every_form(backend, exports):
    model = exports.models["memd"]
    tf_restorer = inference.restorer_from_model(model)
    folder = exports.folder(backend)
    restorer = inference.load_restorer(folder, backend=backend)
    image = np.random.default_rng(7).random((101, 77, 3), dtype=np.float32)
    for tiling in ({}, {"tile": 48, "overlap": 8}, {"tile": 48, "overlap": 8, "tile_batch": 3},
                   {"tile": 48, "overlap": 8, "self_ensemble": True}):
        got = inference.restore_tiled(restorer, image, **tiling)
        want = inference.restore_tiled(tf_restorer, image, **tiling)
        assert np.abs(got - want).max() < TOLERANCE
    marker = backends.get(backend).marker
    for path in (os.path.dirname(folder), os.path.join(folder, marker)):  # the model folder and the file
        assert inference.load_restorer(path, backend=backend).source == os.path.join(folder, marker)


def test_litert_model_is_dynamic_and_records_the_multiple(exports):
    folder = exports.folder("litert", "pix2pix")
    with open(os.path.join(folder, "model.tflite"), "rb") as handle:
        content = handle.read()
    metadata = runtimes.tflite_metadata(content)
    assert metadata["erlrestore.multiple"] == b"32"
    assert metadata["erlrestore.model"] == exports.models["pix2pix"].name.encode()
    assert int(metadata["erlrestore.folded_batch_norms"]) > 0
    interpreter_class, _ = runtimes.litert_interpreter_class()
    interpreter = interpreter_class(model_content=content)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["images"], "outputs": ["restored"]}}
    (details,) = interpreter.get_input_details()
    assert list(details["shape_signature"]) == [-1, -1, -1, 3]


@needs_openvino
def test_openvino_model_is_dynamic_float32_and_records_the_multiple(exports):
    import openvino

    model = openvino.Core().read_model(os.path.join(exports.folder("openvino", "pix2pix"), "model.xml"))
    assert runtimes.openvino_rt_info(model, "multiple") == "32"
    assert int(runtimes.openvino_rt_info(model, "folded_batch_norms")) > 0
    (port,) = model.inputs
    assert port.get_any_name() == "images" and str(port.get_partial_shape()) == "[?,?,?,3]"
    weights = [op for op in model.get_ops() if op.get_type_name() == "Constant" and op.get_output_size() == 1
               and op.get_output_element_type(0).is_real()]
    assert weights and all(op.get_output_element_type(0) == openvino.Type.f32 for op in weights)  # not float16


def test_litert_without_ai_edge_litert_runs_tf_lite(exports, monkeypatch):
    folder = exports.folder("litert")
    images = np.random.default_rng(3).random((1, 45, 67, 3), dtype=np.float32)
    want = exports.serve("memd", images)
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)  # makes "import ai_edge_litert" fail
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.schema_py_generated", None)
    restorer = inference.load_restorer(folder, backend="litert")
    assert restorer.runtime == "tf.lite"
    assert np.abs(restorer(images) - want).max() < TOLERANCE


@pytest.mark.parametrize("backend", RUNTIMES)
def test_backend_errors(backend, exports, tmp_path):
    model = exports.models["memd"]
    folder = exports.folder(backend)
    spec = backends.get(backend)
    keras_file = tmp_path / "m.keras"
    model.save(keras_file)
    with pytest.raises(image_files.DataError, match=f"runs {spec.label} models only.*--format={backend}"):
        inference.load_restorer(str(keras_file), backend=backend)
    with pytest.raises(image_files.DataError, match=f"runs {spec.label} models only"):
        inference.load_restorer("pretrained:erlnet-derain", backend=backend)
    with pytest.raises(image_files.DataError, match=f"run it with --backend={backend}"):
        inference.load_restorer(folder)
    with pytest.raises(image_files.DataError, match=f"run it with --backend={backend}"):
        inference.load_restorer(os.path.join(folder, spec.marker))
    with pytest.raises(image_files.DataError, match=f"{spec.label} model .* is frozen in inference mode"):
        inference.load_restorer(folder, backend=backend, batch_statistics=True)
    bad = tmp_path / "bad" / "1"
    bad.mkdir(parents=True)
    (bad / spec.marker).write_bytes(b"not a model")
    with pytest.raises(image_files.DataError, match=f"could not load {spec.label} model"):
        inference.load_restorer(str(bad), backend=backend)


@needs_openvino
def test_openvino_without_its_weights_is_refused(exports, tmp_path):
    folder = tmp_path / "1"
    folder.mkdir()
    with open(os.path.join(exports.folder("openvino"), "model.xml"), "rb") as handle:
        (folder / "model.xml").write_bytes(handle.read())
    with pytest.raises(image_files.DataError, match="could not load OpenVINO model"):
        inference.load_restorer(str(folder), backend="openvino")


def test_a_conversion_that_differs_is_refused_and_leaves_nothing(exports, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "RUNTIME_TOLERANCE", -1.0)  # any difference, even 0, is too large
    with pytest.raises(ValueError, match="the LiteRT conversion of model .* differs from it by"):
        export.export_litert(exports.models["memd"], tmp_path / "litert", name="m")
    assert not (tmp_path / "litert").exists()


@needs_onnx
def test_onnx_dynamic_dimensions_are_named(exports, tmp_path):
    import onnx
    import onnxruntime

    folder = export.export_onnx(exports.models["memd"], tmp_path / "onnx", name="m")
    proto = onnx.load(os.path.join(folder, "model.onnx"))
    named = {value.name: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
             for value in list(proto.graph.input) + list(proto.graph.output)}
    assert named == {"images": ["batch", "height", "width", 3], "restored": ["batch", "height", "width", 3]}
    session = onnxruntime.InferenceSession(os.path.join(folder, "model.onnx"), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == session.get_outputs()[0].shape == ["batch", "height", "width", 3]


# --------------------------------------------------------------------------
# Command lines.
# --------------------------------------------------------------------------

# Runs a tool's main in this interpreter and reports, last, whether TensorFlow was imported.
DRIVER = textwrap.dedent("""\
    import sys
    from erlrestore.cli import {tool} as tool
    try:
        tool.run()
    finally:
        print("tensorflow imported:", "tensorflow" in sys.modules, flush=True)
""")


def quiet_env():
    """The tools' own defaults: no TF_CPP_MIN_LOG_LEVEL from the test process, no verbosity."""
    return {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "ERLRESTORE_VERBOSE")}


def run_tool(tool, *args):
    result = subprocess.run([sys.executable, "-c", DRIVER.format(tool=tool), *args], capture_output=True,
                            text=True, timeout=600, env=quiet_env())
    lines = result.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("tensorflow imported: "), result.stdout + result.stderr[-3000:]
    return result, lines[-1] == "tensorflow imported: True", lines[:-1]


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    """One 321x481 16-bit PNG in a folder, and a paired set (rain/ + norain/) of it for erlrestore-evaluate."""
    base = tmp_path_factory.mktemp("photo")
    rng = np.random.default_rng(11)
    image = rng.random((*SIZE, 3))
    (base / "in").mkdir()
    image_files.write_image(base / "in" / "a.png", image, bit_depth=16)
    for folder, picture in (("rain", image), ("norain", np.clip(image * 0.9 + 0.05, 0, 1))):
        (base / "set" / folder).mkdir(parents=True)
        image_files.write_image(base / "set" / folder / "a.png", picture, bit_depth=16)
    return base


@pytest.mark.slow
@pytest.mark.parametrize("backend", [pytest.param("litert", marks=needs_litert),
                                     pytest.param("openvino", marks=needs_openvino)])
def test_cli_export_then_restore_without_tensorflow(backend, exports, photo, tmp_path):
    keras_file = tmp_path / "tiny.keras"
    exports.models["memd"].save(keras_file)
    result, _, lines = run_tool("export", f"--model={keras_file}", f"--format={backend}",
                                f"--base_dir={tmp_path / backend}")
    assert result.returncode == 0, result.stderr[-3000:]
    version = lines[-1]
    assert version == str(tmp_path / backend / "tiny" / "1")
    assert sorted(os.listdir(version)) == FILES[backend]

    out = tmp_path / "out"
    result, tensorflow_imported, lines = run_tool("restore", f"--backend={backend}", f"--model={version}",
                                                  f"--input={photo / 'in'}", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines[-1] == f"restored 1 images to {out}"
    assert not tensorflow_imported
    assert not [word for word in NOISE if word in result.stderr], result.stderr
    image = image_files.read_image(photo / "in" / "a.png")
    want = exports.serve("memd", image[np.newaxis])[0]
    got = image_files.read_image(out / "a.png")  # 16-bit PNG: rounding adds at most 1/131070
    assert got.shape == (*SIZE, 3)
    assert np.abs(got - want).max() < TOLERANCE

    # erlrestore-evaluate takes the same backend and scores as TensorFlow does (float outputs, no rounding).
    scores = {}
    for name, model in (("tensorflow", keras_file), (backend, version)):
        result, _, lines = run_tool("evaluate", f"--backend={name}", f"--model={model}",
                                    f"--input_dir={photo / 'set'}", "--noquantize", "--channel=rgb")
        assert result.returncode == 0, result.stderr[-3000:]
        scores[name] = [float(x) for x in re.fullmatch(r"n=1 psnr_rgb=(\S+) ssim_rgb=(\S+)", lines[-1]).groups()]
    assert np.allclose(scores["tensorflow"], scores[backend], atol=1e-3)


@pytest.mark.slow
@needs_onnx
def test_cli_restore_with_onnxruntime_never_imports_tensorflow(exports, photo, tmp_path):
    folder = export.export_onnx(exports.models["memd"], tmp_path / "onnx", name="m")
    out = tmp_path / "out"
    result, tensorflow_imported, lines = run_tool("restore", "--backend=onnxruntime", f"--model={folder}",
                                                  f"--input={photo / 'in'}", f"--output_dir={out}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert lines[-1] == f"restored 1 images to {out}"
    assert not tensorflow_imported
    image = image_files.read_image(photo / "in" / "a.png")
    assert np.abs(image_files.read_image(out / "a.png") - exports.serve("memd", image[np.newaxis])[0]).max() < TOLERANCE


@pytest.mark.slow
def test_cli_restore_with_tensorflow_is_still_quiet(exports, photo, tmp_path):
    keras_file = tmp_path / "tiny.keras"
    exports.models["memd"].save(keras_file)
    result, tensorflow_imported, lines = run_tool("restore", f"--model={keras_file}", f"--input={photo / 'in'}",
                                                  f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert tensorflow_imported
    assert not [word for word in NOISE if word in result.stderr], result.stderr


@pytest.mark.slow
def test_bench_deploy_times_every_runtime():
    """tools.bench_deploy --backends takes the table's runtimes (tiny MEMD, one 48x40 image)."""
    chosen = ["tensorflow", "litert"] + (["openvino"] if HAVE_OPENVINO else [])
    result = subprocess.run(
        [sys.executable, "-m", "tools.bench_deploy", "--tiny", "--part=restore", "--models=memd", "--sizes=48x40",
         *[f"--backends={name}" for name in chosen]],
        capture_output=True, text=True, timeout=600, cwd=pathlib.Path(__file__).resolve().parent.parent,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert [r["backend"] for r in report["restore"]] == chosen
    runtimes_used = {r["backend"]: r["runtime"] for r in report["restore"]}
    assert runtimes_used["litert"] == ("ai_edge_litert" if HAVE_LITERT else "tf.lite")
    assert all(r["seconds"] > 0 and r["align"] == 4 for r in report["restore"])
