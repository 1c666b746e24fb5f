"""Exporting restoration models as SavedModels for TensorFlow Serving.

``export_savedmodel`` writes a trained restoration network (a ``.keras``
file, a training run folder holding ``final.keras``, or an in-memory
``keras.Model``) in TF Serving's layout::

    <base_dir>/<name>/<version>/saved_model.pb
                               /variables/...

with two signatures, loadable by plain ``tf.saved_model.load`` (no erlrestore
import needed, the graph holds only standard TensorFlow ops):

``serving_default``
    input ``images``: float32 ``[None, None, None, 3]`` RGB in [0, 1], any
    batch size and any height/width (the models pad to their multiple and crop
    back internally); output ``restored``: float32, same shape, clipped to
    [0, 1].

``restore_bytes``
    input ``image_bytes``: string ``[None]``, each an encoded PNG, JPEG, BMP,
    GIF (first frame) or WebP image; the images of one batch may differ in
    size. Output ``restored_bytes``: string ``[None]``, each an 8-bit RGB PNG
    of its input's size. Because both names end in ``_bytes``, TF Serving's
    REST API carries them as ``{"b64": "..."}``.

Choices where the spec is silent:

* Decoding in ``restore_bytes``: PNGs (recognised by their signature) are
  decoded at 16 bits and divided by 65535, so 16-bit PNGs keep their
  precision and 8-bit PNGs give exactly ``k / 255``; other formats are
  decoded at 8 bits and divided by 255. This matches
  ``erlrestore.data.image_files.read_image`` value for value. Grey images are
  replicated to three channels and alpha is dropped (``channels=3``).
* Encoding: the clipped result is scaled to 255 and rounded half to even in
  float64, exactly as ``erlrestore.data.image_files.write_image`` (``np.rint``) and
  evaluation's ``quantize`` do, so a PNG from ``restore_bytes`` equals the
  8-bit rounding of ``serving_default``'s output on the decoded image.
* Only the restoration network is exported: the ``.keras`` model is that
  network (a GAN's discriminator or ERL-Net's clean-to-clean branch are kept
  in other files and are never needed for inference).
* Versions are positive integers; without ``version`` the next one after the
  largest existing is used. Only sub-folders named entirely by ASCII digits
  count as versions (:mod:`erlrestore.savedmodel_contract`, which also names
  the signatures and tensors below). An existing version is never
  overwritten. The SavedModel is written to
  ``<base_dir>/<name>/.tmp-<version>-<pid>`` and then renamed into place, so
  a server watching the folder never sees a half-written version (TF Serving
  ignores folder names that are not integers), and a failed export leaves
  nothing behind.
* Model names must be a single folder name of letters, digits, ``.``, ``_``
  and ``-`` not starting with ``.`` (they appear in TF Serving's URLs).
* ONNX (:func:`export_onnx`, ``erlrestore-export --format=onnx``, needs the
  ``onnx`` extra: tf2onnx, onnx, onnxruntime) uses the same naming and
  versioning but writes ``<base_dir>/<name>/<version>/model.onnx``
  (default base folder ``onnx``: TF Serving cannot load such a version, so
  keep them out of its folder; versions are shared with any SavedModels in
  the same ``<base_dir>/<name>``). The graph is ``serving_default``'s:
  input ``images`` float32 ``[N, H, W, 3]`` in [0, 1] with dynamic ``N``,
  ``H`` and ``W``, output ``restored`` (same shape, float32, clipped to
  [0, 1]); there is no bytes signature (decode and encode outside). The
  dynamic dimensions of the input and the output are named ``batch``,
  ``height`` and ``width`` (:data:`ONNX_DYNAMIC_DIMS`; tf2onnx writes
  ``unk__<n>``), the same names on both sides since the shape is kept. The
  model's padding multiple is stored in the ONNX metadata
  (``erlrestore.multiple``) so tiled restoration aligns its tiles as for
  the Keras model. It is converted with tf2onnx (as ``model.export(...,
  format="onnx")`` does) from the traced TensorFlow graph, so the
  pad-to-multiple and crop-back stay dynamic; ``PadToMultiple`` computes
  its pad with non-negative operands only, because tf2onnx lowers integer
  ``FloorMod`` to a truncating division (a negative dividend gave a
  negative pad: 321x481 came back 320x480). Models with a mixed-precision
  policy are converted as traced (float16/bfloat16 ops); onnxruntime's CPU
  provider may lack some of them, so export float32 models.
* The inference graph is written (:mod:`erlrestore.inference_graph`):
  before writing, every inference-mode ``BatchNormalization`` that directly
  follows a ``Conv2D`` / ``Conv2DTranspose`` (pix2pix's generators) is
  absorbed into that convolution's kernel and bias, so the graph has one
  convolution (with bias) where it had a convolution and a batch norm, and
  pix2pix's 4x4 / stride-2 transposed convolutions become
  ``PhaseConv2DTranspose`` layers (the same arithmetic as a forward
  convolution, faster on the CPU). The new model is
  run beside the original on a fixed random image (1 x 64 x 64 x 3, or the
  model's padding multiple when larger) and written only when their outputs
  agree: within :data:`erlrestore.inference_graph.TOLERANCE` (1e-5, max abs)
  for a float32 model; for a ``mixed_bfloat16`` / ``mixed_float16`` one,
  first float32 copies of the model and of its rewrite within 1e-5 (the
  rewrite's arithmetic), then the 16-bit graphs within the looser
  :data:`erlrestore.inference_graph.TOLERANCES` entry (0.08 / 0.02, as
  their rounding differs), or the 16-bit comparison alone, with a warning,
  when no float32 copy can be built; otherwise the model is
  written as it is and a warning is logged. Models without such pairs
  (MEMD, ERL-Net, "instance" norm) are written as they are. An ONNX model
  records the number of folded layers in its metadata
  (``erlrestore.folded_batch_norms``); a SavedModel has no place for it,
  the log line says it.
* LiteRT (:func:`export_litert`, ``erlrestore-export --format=litert``)
  writes ``<base_dir>/<name>/<version>/model.tflite`` (default base folder
  ``litert``) and OpenVINO (:func:`export_openvino`, ``--format=openvino``)
  ``model.xml`` with its weights ``model.bin`` (default ``openvino``), with
  the naming and versioning above; they are run by ``erlrestore-restore
  --backend=litert`` / ``--backend=openvino`` (:mod:`erlrestore.runtimes`).
  Both convert a SavedModel of the inference graph holding only
  ``serving_default``, written to a temporary folder: LiteRT with
  ``tf.lite.TFLiteConverter.from_saved_model`` (float32, TensorFlow Lite
  builtin ops only, no quantisation), whose signature ``serving_default``
  keeps ``images`` -> ``restored`` with N, H and W dynamic (-1; the
  interpreter resizes its input per call, so no fixed size is baked in);
  OpenVINO with ``openvino.convert_model`` and ``openvino.save_model(...,
  compress_to_fp16=False)``: float32 weights, where OpenVINO's default
  would halve them to float16. Each records the padding multiple, the
  model's name and the number of folded batch norms under the ONNX keys
  (LiteRT: the flatbuffer's metadata, ``erlrestore.multiple``...;
  OpenVINO: the ``rt_info`` section ``erlrestore``). Before anything is
  written, the converted model is loaded with the restorer that will run it
  and compared with the Keras model on a fixed random 1 x (s + 5) x (s +
  11) x 3 image, ``s`` = max(32, padding multiple), so padding and crop-back
  are exercised; a difference over :data:`RUNTIME_TOLERANCE` (1e-3, max abs)
  or a NaN refuses the export (ValueError), as does a failed conversion.
  (Converting the traced ``tf.function`` with ``from_concrete_functions``
  instead keeps unfrozen resource variables and gives NaN with TF 2.21:
  checked on a tiny MEMD.) OpenVINO
  export needs the ``openvino`` extra; LiteRT export needs only TensorFlow
  (the check runs ``ai-edge-litert`` when installed, else
  ``tf.lite.Interpreter``).
"""

import os
import re
import shutil
import tempfile
import warnings

import keras
import numpy as np
import tensorflow as tf

from erlrestore import backends, inference, pretrained
from erlrestore import savedmodel_contract as contract
from erlrestore.savedmodel_contract import ONNX_FILE, ONNX_MULTIPLE_KEY  # noqa: F401  (part of this module's API)
from erlrestore.savedmodel_contract import LITERT_FILE, OPENVINO_FILE, OPENVINO_WEIGHTS_FILE  # noqa: F401

FORMATS = backends.FORMATS  # ("saved_model", "onnx", "litert", "openvino"): erlrestore.backends' table
# Names of the dynamic dimensions of an ONNX model's input and output (tf2onnx writes unk__<n>).
ONNX_DYNAMIC_DIMS = ("batch", "height", "width")
# Largest max-abs difference from the Keras model that a LiteRT / OpenVINO conversion may show at export.
RUNTIME_TOLERANCE = 1e-3

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The input of serving_default (and of the ONNX graph); the argument's name becomes the input key.
_IMAGES_SPEC = tf.TensorSpec([None, None, None, 3], tf.float32, name=contract.INPUT_KEY)
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
# ONNX metadata: how many batch-norm layers were folded into convolutions ("0": none, or folding was rejected).
ONNX_FOLDED_KEY = "erlrestore.folded_batch_norms"


def list_versions(base_dir, name):
    """Sorted integer versions present under ``<base_dir>/<name>`` ([] when there is none).

    Every sub-folder whose name is entirely ASCII digits counts (as for TF
    Serving), whether or not it holds a complete model
    (:func:`erlrestore.savedmodel_contract.list_versions`).
    """
    return contract.list_versions(os.path.join(os.fspath(base_dir), name))


def _resolve_model(model_or_path):
    """(keras.Model, default name) for a model, a ``.keras`` file or a run folder."""
    if isinstance(model_or_path, keras.Model):
        return model_or_path, model_or_path.name
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(
            "model_or_path must be a keras.Model, a .keras file or a training run folder, "
            f"got {type(model_or_path).__name__}"
        )
    model = inference.load_keras_model(model_or_path)  # DataError naming the file when missing or unreadable
    if pretrained.is_pretrained(model_or_path):
        return model, pretrained.name_of(model_or_path)
    path = os.fspath(model_or_path)
    if os.path.isdir(path):
        return model, os.path.basename(os.path.normpath(os.path.abspath(path)))
    return model, os.path.splitext(os.path.basename(path))[0]


def _check_name(name, explicit):
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        hint = "" if explicit else " (derived from the model; pass name= to choose one)"
        raise ValueError(
            f"model name {name!r} is not usable as a folder name{hint}: use letters, digits, "
            "'.', '_' and '-', not starting with '.'"
        )


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")


def _decode(image_bytes):
    """One encoded image -> float32 ``H x W x 3`` in [0, 1] (see the module docstring)."""
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)

    def png():
        pixels = tf.io.decode_png(image_bytes, channels=3, dtype=tf.uint16)
        return tf.cast(pixels, tf.float32) / 65535.0

    def other():
        pixels = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.cast(pixels, tf.float32) / 255.0

    image = tf.cond(is_png, png, other)
    image.set_shape([None, None, 3])
    return image


def _to_png(image):
    """float32 ``H x W x 3`` -> 8-bit PNG bytes (clip, x255, round half to even in float64)."""
    levels = tf.round(tf.cast(tf.clip_by_value(image, 0.0, 1.0), tf.float64) * 255.0)
    return tf.io.encode_png(tf.cast(levels, tf.uint8))


def _restore(model, images):
    """``serving_default``'s computation (also the ONNX graph's): run, cast to float32, clip to [0, 1]."""
    restored = tf.cast(model(images, training=False), tf.float32)
    return tf.clip_by_value(restored, 0.0, 1.0)


def build_archive(model, bytes_signature=True):
    """A ``keras.export.ExportArchive`` of ``model`` with both signatures (not yet written).

    ``bytes_signature=False`` leaves ``restore_bytes`` out (the SavedModel
    that the LiteRT and OpenVINO converters read).
    """

    def restore(images):
        return _restore(model, images)

    # The python argument names become the signatures' input keys (contract.INPUT_KEY, contract.BYTES_INPUT_KEY).
    def serving_default(images):
        return {contract.OUTPUT_KEY: restore(images)}

    def restore_bytes(image_bytes):
        def one(data):
            return _to_png(restore(_decode(data)[tf.newaxis])[0])

        encoded = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {contract.BYTES_OUTPUT_KEY: encoded}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(  # the first endpoint is also the archive's default
        contract.SERVING_SIGNATURE,
        serving_default,
        input_signature=[_IMAGES_SPEC],
    )
    if not bytes_signature:
        return archive
    archive.add_endpoint(
        contract.BYTES_SIGNATURE,
        restore_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=contract.BYTES_INPUT_KEY)],
    )
    return archive


def export_savedmodel(model_or_path, base_dir=backends.for_format("saved_model").base_dir, name=None, version=None):
    """Writes ``model_or_path`` as ``<base_dir>/<name>/<version>/`` for TF Serving.

    Args:
      model_or_path: a ``keras.Model``, a ``.keras`` file, or a training run
        folder holding ``final.keras``.
      base_dir: TF Serving's model base folder (created when missing).
      name: the model's folder name; defaults to the ``.keras`` file's stem,
        the run folder's name, or ``model.name``.
      version: a positive integer; defaults to the largest existing version + 1
        (1 for a new model). An existing version is never overwritten.

    Returns:
      The path of the written version folder.

    Raises:
      DataError: a missing or unreadable model file, or a run folder without
        ``final.keras``.
      ValueError: a bad name or version.
      FileExistsError: the version exists already.
    """

    def prepare(graph):
        archive = build_archive(graph.model)  # traces both signatures before anything touches the disk
        return lambda folder: archive.write_out(folder, verbose=False)

    return _export_version(model_or_path, base_dir, name, version, prepare)


def _export_version(model_or_path, base_dir, name, version, prepare):
    """Resolves the model, name and version, then writes ``<base_dir>/<name>/<version>/`` atomically.

    ``prepare(graph)`` gets the model's
    :func:`erlrestore.inference.verified_inference_graph` result, does all the
    work that may fail before the disk is touched and returns
    ``write(folder)``, which fills the temporary folder.
    """
    explicit_name = name is not None
    if version is not None:
        _check_version(version)
    if explicit_name:
        _check_name(name, explicit=True)
    model, default_name = _resolve_model(model_or_path)
    if not explicit_name:
        name = default_name
        _check_name(name, explicit=False)

    base_dir = os.fspath(base_dir)
    model_dir = os.path.join(base_dir, name)
    existing = list_versions(base_dir, name)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    destination = os.path.join(model_dir, str(version))

    def refuse_existing():
        if os.path.lexists(destination):
            next_version = max(list_versions(base_dir, name) + [version]) + 1
            raise FileExistsError(
                f"{destination} already exists; an exported version is never overwritten "
                f"(choose another version, e.g. {next_version}, or omit it to use the next one)"
            )

    refuse_existing()
    write = prepare(inference.verified_inference_graph(model))

    created_model_dir = not os.path.isdir(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    temp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    try:
        if os.path.lexists(temp):  # left by a killed export that had this process id
            shutil.rmtree(temp)
        write(temp)
        refuse_existing()  # another export may have taken this version meanwhile
        os.rename(temp, destination)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if created_model_dir:
            try:
                os.rmdir(model_dir)  # only if still empty
            except OSError:
                pass
        raise
    return destination


def _import_onnx_tools():
    """(tf2onnx, onnx), with tf2onnx patched for NumPy 2 as Keras does; ImportError names the extra."""
    try:
        import onnx
        import tf2onnx
    except ImportError as error:
        raise ImportError(
            f"ONNX export needs tf2onnx and onnx ({error}); install them with pip install 'erlrestore[onnx]'"
        ) from error
    try:  # Keras' own fix of tf2onnx 1.17 for NumPy 2 (np.object, constant folding); private API.
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:
        pass
    else:
        with warnings.catch_warnings():  # its hasattr(np, "object") probe warns under NumPy 2
            warnings.simplefilter("ignore", FutureWarning)
            patch_tf2onnx()
    return tf2onnx, onnx


def onnx_function(model):
    """A ``tf.function`` ``images`` -> ``{"restored": ...}`` computing exactly ``serving_default``."""

    @tf.function(input_signature=[_IMAGES_SPEC])
    def serving(images):
        return {contract.OUTPUT_KEY: _restore(model, images)}

    return serving


def export_onnx(model_or_path, base_dir=backends.for_format("onnx").base_dir, name=None, version=None, opset=None):
    """Writes ``model_or_path`` as ``<base_dir>/<name>/<version>/model.onnx`` (see the module docstring).

    Arguments, versioning and errors are those of :func:`export_savedmodel`
    (plus ImportError when tf2onnx/onnx are missing). ``opset`` is the ONNX
    opset (default: tf2onnx's). Returns the written version folder.
    """
    tf2onnx, onnx = _import_onnx_tools()

    def prepare(graph):
        model = graph.model
        with tf.device("/cpu:0"):
            proto, _ = tf2onnx.convert.from_function(onnx_function(model), input_signature=[_IMAGES_SPEC], opset=opset)
        name_dynamic_dims(proto)
        multiple = inference.pad_multiple(model)
        if multiple:
            entry = proto.metadata_props.add()
            entry.key, entry.value = ONNX_MULTIPLE_KEY, str(multiple)
        entry = proto.metadata_props.add()
        entry.key, entry.value = "erlrestore.model", model.name
        entry = proto.metadata_props.add()
        entry.key, entry.value = ONNX_FOLDED_KEY, str(len(graph.folded))
        onnx.checker.check_model(proto)
        def write(folder):
            os.makedirs(folder)
            onnx.save_model(proto, os.path.join(folder, ONNX_FILE))

        return write

    return _export_version(model_or_path, base_dir, name, version, prepare)


def name_dynamic_dims(proto):
    """Names the dynamic N, H, W of an ONNX model's ``images`` input and ``restored`` output (ONNX_DYNAMIC_DIMS).

    tf2onnx names each unknown dimension ``unk__<n>``; fixed dimensions (the
    3 channels) are left alone. Changes ``proto`` in place.
    """
    for value in list(proto.graph.input) + list(proto.graph.output):
        if value.name not in (contract.INPUT_KEY, contract.OUTPUT_KEY):
            continue
        for dim, name in zip(value.type.tensor_type.shape.dim, ONNX_DYNAMIC_DIMS):
            if not dim.HasField("dim_value"):
                dim.dim_param = name


def _metadata(graph):
    """``{key: text}`` an exported model records: padding multiple (when any), model name, folded batch norms."""
    entries = {}
    multiple = inference.pad_multiple(graph.model)
    if multiple:
        entries["multiple"] = str(multiple)
    entries["model"] = graph.model.name
    entries["folded_batch_norms"] = str(len(graph.folded))
    return entries


def _check_converted(label, restorer, model):
    """ValueError unless ``restorer`` (a converted ``model``) matches it within RUNTIME_TOLERANCE on a check image.

    The image (fixed seed) is 1 x (s + 5) x (s + 11) x 3 with ``s`` =
    max(32, padding multiple), so the model pads and crops back. Returns the
    max abs difference.
    """
    side = max(32, inference.pad_multiple(model) or 1)
    image = np.random.default_rng(0).random((1, side + 5, side + 11, 3), dtype=np.float32)
    want = _restore(model, tf.constant(image)).numpy()
    got = restorer(image)
    difference = float(np.max(np.abs(got - want)))
    if not difference <= RUNTIME_TOLERANCE:  # NaN fails too
        raise ValueError(
            f"the {label} conversion of model {model.name!r} differs from it by {difference:.3g} (max abs on a "
            f"{image.shape[1]}x{image.shape[2]} check image; at most {RUNTIME_TOLERANCE:g} is accepted); "
            "nothing was written"
        )
    return difference


def _write_serving_savedmodel(model, folder):
    """Writes a SavedModel of ``model`` holding only ``serving_default`` (what the converters read)."""
    build_archive(model, bytes_signature=False).write_out(folder, verbose=False)


def _with_tflite_metadata(content, entries):
    """``content`` (a .tflite flatbuffer) with ``erlrestore.<key>`` metadata entries added (TF's own tools)."""
    from tensorflow.lite.python import schema_py_generated as schema  # pylint: disable=import-outside-toplevel
    from tensorflow.lite.tools import flatbuffer_utils  # pylint: disable=import-outside-toplevel

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    model.buffers = list(model.buffers or [])
    model.metadata = list(model.metadata or [])
    for key, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = f"erlrestore.{key}"
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    return flatbuffer_utils.convert_object_to_bytearray(model)


def export_litert(model_or_path, base_dir=backends.for_format("litert").base_dir, name=None, version=None):
    """Writes ``model_or_path`` as ``<base_dir>/<name>/<version>/model.tflite`` (see the module docstring).

    Arguments, versioning and errors are those of :func:`export_savedmodel`,
    plus ValueError when the conversion fails or the converted model differs
    from the model by more than :data:`RUNTIME_TOLERANCE`. Returns the
    written version folder.
    """
    from erlrestore import runtimes  # pylint: disable=import-outside-toplevel

    def prepare(graph):
        with tempfile.TemporaryDirectory(prefix="erlrestore-litert-") as scratch:
            saved = os.path.join(scratch, "saved_model")
            _write_serving_savedmodel(graph.model, saved)
            try:
                converter = tf.lite.TFLiteConverter.from_saved_model(
                    saved, signature_keys=[contract.SERVING_SIGNATURE]
                )
                content = converter.convert()
            except Exception as error:  # the converter raises ConverterError and others
                raise ValueError(
                    f"LiteRT conversion of model {graph.model.name!r} failed: {type(error).__name__}: {error}"
                ) from error
            content = _with_tflite_metadata(content, _metadata(graph))
            check_file = os.path.join(scratch, LITERT_FILE)
            with open(check_file, "wb") as handle:
                handle.write(content)
            _check_converted("LiteRT", runtimes.LiteRTRestorer(check_file), graph.model)

        def write(folder):
            os.makedirs(folder)
            with open(os.path.join(folder, LITERT_FILE), "wb") as handle:
                handle.write(content)

        return write

    return _export_version(model_or_path, base_dir, name, version, prepare)


def export_openvino(model_or_path, base_dir=backends.for_format("openvino").base_dir, name=None, version=None):
    """Writes ``model_or_path`` as ``<base_dir>/<name>/<version>/model.xml`` + ``model.bin`` (module docstring).

    Arguments, versioning and errors are those of :func:`export_savedmodel`,
    plus ImportError when ``openvino`` is missing and ValueError when the
    conversion fails or the converted model differs from the model by more
    than :data:`RUNTIME_TOLERANCE`. Returns the written version folder.
    """
    from erlrestore import runtimes  # pylint: disable=import-outside-toplevel

    openvino = runtimes.import_openvino()

    def prepare(graph):
        with tempfile.TemporaryDirectory(prefix="erlrestore-openvino-") as scratch:
            saved = os.path.join(scratch, "saved_model")
            _write_serving_savedmodel(graph.model, saved)
            try:
                converted = openvino.convert_model(saved)
            except Exception as error:  # OpenVINO raises its own conversion errors
                raise ValueError(
                    f"OpenVINO conversion of model {graph.model.name!r} failed: {type(error).__name__}: {error}"
                ) from error
            for key, value in _metadata(graph).items():
                converted.set_rt_info(value, [contract.OPENVINO_RT_INFO, key])
            ir_file = os.path.join(scratch, "ir", OPENVINO_FILE)
            openvino.save_model(converted, ir_file, compress_to_fp16=False)
            _check_converted("OpenVINO", runtimes.OpenVINORestorer(ir_file), graph.model)
            files = {}
            for file_name in (OPENVINO_FILE, OPENVINO_WEIGHTS_FILE):
                with open(os.path.join(scratch, "ir", file_name), "rb") as handle:
                    files[file_name] = handle.read()

        def write(folder):
            os.makedirs(folder)
            for file_name, data in files.items():
                with open(os.path.join(folder, file_name), "wb") as handle:
                    handle.write(data)

        return write

    return _export_version(model_or_path, base_dir, name, version, prepare)
