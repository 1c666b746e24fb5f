"""Loading SavedModels in TF Serving's layout, and the repository that answers status, metadata and predict.

``<model_base_path>/<model_name>/<version>/`` holds one SavedModel per
version; version folders are named by ASCII digits only, as
:mod:`erlrestore.savedmodel_contract` defines (others are ignored).
"""

import contextlib
import json
import math
import os

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, text_format

from erlrestore import savedmodel_contract
from erlrestore.data.image_files import DataError
from erlrestore.serving import tiling
from erlrestore.serving.codec import format_predict_response, json_kind, parse_predict_body
from erlrestore.serving.errors import ServingError
from erlrestore.serving.limits import DEFAULT_MAX_IMAGE_PIXELS, check_image_pixels, check_pixels

DEFAULT_SIGNATURE = savedmodel_contract.SERVING_SIGNATURE
PREDICT_METHOD_NAME = "tensorflow/serving/predict"
_INIT_OP_SIGNATURE = "__saved_model_init_op"


def _read_signature_defs(path):
    """SignatureDef protos of the ``serve`` MetaGraph of the SavedModel at ``path``."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel

    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(path, savedmodel_contract.SAVED_MODEL_FILE)
    pbtxt_path = os.path.join(path, "saved_model.pbtxt")
    try:
        if os.path.isfile(pb_path):
            with open(pb_path, "rb") as handle:
                saved_model.ParseFromString(handle.read())
        else:
            with open(pbtxt_path, "r", encoding="utf-8") as handle:
                text_format.Parse(handle.read(), saved_model)
    except Exception as error:  # protobuf raises DecodeError / ParseError / OSError
        raise DataError(f"could not read the SavedModel protocol buffer in {path}: {error}") from error
    for meta_graph in saved_model.meta_graphs:
        if "serve" in meta_graph.meta_info_def.tags:
            return dict(meta_graph.signature_def)
    return dict(saved_model.meta_graphs[0].signature_def) if saved_model.meta_graphs else {}


class Signature:
    """One callable signature of a loaded SavedModel.

    Attributes:
      name: the signature key (``serving_default``, ``restore_bytes``...).
      function: the loaded concrete function; call with keyword tensors.
      inputs / outputs: ``{alias: tf.TensorSpec}``, sorted by alias.
      signature_def: the SignatureDef proto from ``saved_model.pb`` (or None).
    """

    def __init__(self, name, function, signature_def=None):
        self.name = name
        self.function = function
        args, kwargs = function.structured_input_signature
        if args:
            raise DataError(f"signature {name!r} takes positional inputs; TF Serving signatures are keyword-only")
        self.inputs = {key: kwargs[key] for key in sorted(kwargs)}
        outputs = function.structured_outputs
        if not isinstance(outputs, dict):
            raise DataError(f"signature {name!r} does not return a dictionary of named outputs")
        self.outputs = {key: tf.TensorSpec(outputs[key].shape, outputs[key].dtype) for key in sorted(outputs)}
        self.signature_def = signature_def

    def metadata(self):
        """This signature as TF Serving's JSON prints a SignatureDef."""
        if self.signature_def is not None:
            return json_format.MessageToDict(
                self.signature_def, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        return {  # built from the TensorSpecs when the proto is unavailable
            "inputs": {key: _tensor_info(key, spec) for key, spec in self.inputs.items()},
            "outputs": {key: _tensor_info(key, spec) for key, spec in self.outputs.items()},
            "method_name": PREDICT_METHOD_NAME,
            "defaults": {},
        }


def _tensor_info(name, spec):
    shape = spec.shape
    dims = [] if shape.rank is None else [{"size": str(-1 if d is None else d), "name": ""} for d in shape.as_list()]
    return {
        "name": name,
        "dtype": "DT_" + spec.dtype.name.upper(),
        "tensor_shape": {"dim": dims, "unknown_rank": shape.rank is None},
    }


class Servable:
    """One loaded version of a model: ``name``, ``version`` (int), ``path`` and ``signatures`` by name."""

    def __init__(self, name, version, path):
        self.name = name
        self.version = int(version)
        self.path = path
        if not (os.path.isfile(os.path.join(path, savedmodel_contract.SAVED_MODEL_FILE))
                or os.path.isfile(os.path.join(path, "saved_model.pbtxt"))):
            raise DataError(f"version folder {path} of model {name!r} holds no saved_model.pb")
        signature_defs = _read_signature_defs(path)
        try:
            self.loaded = tf.saved_model.load(path)
        except Exception as error:  # TF raises many types for a broken SavedModel
            raise DataError(f"could not load the SavedModel {path}: {type(error).__name__}: {error}") from error
        self.signatures = {
            key: Signature(key, function, signature_defs.get(key))
            for key, function in sorted(self.loaded.signatures.items())
        }
        if not self.signatures:
            raise DataError(f"the SavedModel {path} has no signatures to serve")

    def signature(self, name=None):
        """The Signature ``name`` (default ``serving_default``); ServingError 400 when unknown."""
        name = name or DEFAULT_SIGNATURE
        try:
            return self.signatures[name]
        except KeyError:
            raise ServingError(
                400,
                f"serving signature name {name!r} not found in model {self.name!r} version {self.version} "
                f"(it has: {', '.join(self.signatures)})",
            ) from None


def _version_folders(model_dir):
    """``[(version, path)]`` of the version folders of ``model_dir``, ascending; DataError for a version spelled twice.

    A version folder is named by ASCII digits only
    (:func:`erlrestore.savedmodel_contract.is_version_name`); ``"7"`` and
    ``"007"`` would both be version 7, which is refused rather than guessed.
    """
    found = {}
    for version, name in savedmodel_contract.version_entries(model_dir):
        path = os.path.join(model_dir, name)
        if version in found:
            raise DataError(f"{found[version]} and {path} are both version {version}")
        found[version] = path
    return sorted(found.items())


def load_models(model_base_path, model_names=None):
    """Loads the models under ``model_base_path`` into a ModelRepository.

    ``model_base_path`` holds one folder per model, each holding integer
    version folders (``savedmodels/<name>/<version>/``); every version is
    loaded and the largest is the default. ``model_names`` (a list) picks
    models; by default every sub-folder with at least one version folder is
    served (others are logged and left out). When ``model_base_path`` itself
    holds version folders (TF Serving's ``--model_base_path`` convention),
    it is served as the single model named ``model_names[0]`` (default: the
    folder's name).

    Raises:
      DataError naming the folder when ``model_base_path`` or a named model is
      missing, a model has no version folder, nothing is left to serve, or a
      version does not load.
    """
    base = os.fspath(model_base_path)
    if not os.path.isdir(base):
        raise DataError(f"model base path {base} does not exist or is not a folder")
    model_names = list(model_names or [])
    if _version_folders(base):
        if len(model_names) > 1:
            raise DataError(
                f"{base} holds version folders, so it is a single model; it cannot be served as {model_names}"
            )
        name = model_names[0] if model_names else os.path.basename(os.path.normpath(os.path.abspath(base)))
        folders = {name: base}
    elif model_names:
        folders = {}
        for name in model_names:
            folder = os.path.join(base, name)
            if name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name):
                raise DataError(f"model name {name!r} must be a folder name inside {base}")
            if not os.path.isdir(folder):
                raise DataError(f"model {name!r} not found: {folder} is not a folder")
            folders[name] = folder
    else:
        folders = {}
        for entry in sorted(os.listdir(base)):
            folder = os.path.join(base, entry)
            if entry.startswith(".") or not os.path.isdir(folder):
                continue
            if _version_folders(folder):
                folders[entry] = folder
            else:
                logging.warning("not serving %s: it holds no integer version folder", folder)
        if not folders:
            raise DataError(f"no models under {base}: expected {base}/<model_name>/<integer version>/saved_model.pb")
    models = {}
    for name, folder in folders.items():
        versions = _version_folders(folder)
        if not versions:
            raise DataError(f"model {name!r} has no integer version folder in {folder}")
        models[name] = {}
        for version, path in versions:
            logging.info("loading model %r version %d from %s", name, version, path)
            models[name][version] = Servable(name, version, path)
    return ModelRepository(models)


def _tf_error_text(error):
    """The useful line(s) of a TensorFlow op error (drops the graph-execution boilerplate)."""
    message = getattr(error, "message", None) or str(error)
    kept = []
    for line in message.splitlines():
        boilerplate = line.startswith(("Graph execution error", "Detected at node", "<stack"))
        if not line.strip() or line[0].isspace() or boilerplate:
            continue
        kept.append(line.strip())
    return " ".join(kept) or message.strip()


class ModelRepository:
    """The loaded models: ``{name: {version: Servable}}``, answering status, metadata and predict requests.

    ``max_image_pixels``: the largest image (and batch of images) a request
    may hold, in pixels (None or 0: no limit). ``tiling``: a
    :class:`erlrestore.serving.tiling.TileSettings` (default: 512-pixel
    tiles overlapping by 32, as ``erlrestore-restore``; ``TileSettings(0)``
    never tiles).
    """

    def __init__(self, models, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, tiling_settings=None):
        self.models = {name: dict(sorted(versions.items())) for name, versions in models.items()}
        self.max_image_pixels = max_image_pixels
        self.tiling = tiling.TileSettings() if tiling_settings is None else tiling_settings

    def get(self, name, version=None):
        """The Servable ``name``/``version`` (default: the largest version); ServingError 404 when unknown."""
        versions = self.models.get(name)
        if not versions:
            raise ServingError(404, f"model {name!r} is not served here (models: {', '.join(sorted(self.models))})")
        if version is None:
            return versions[max(versions)]
        servable = versions.get(int(version))
        if servable is None:
            raise ServingError(
                404, f"model {name!r} has no version {version} (versions: {', '.join(map(str, versions))})"
            )
        return servable

    def status(self, name, version=None):
        """TF Serving's GetModelStatusResponse as JSON: the named version, or all of them newest first."""
        self.get(name, version)
        versions = [int(version)] if version is not None else sorted(self.models[name], reverse=True)
        return {
            "model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in versions
            ]
        }

    def metadata(self, name, version=None):
        """TF Serving's GetModelMetadataResponse as JSON (signature_def metadata only)."""
        servable = self.get(name, version)
        return {
            "model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        key: signature.metadata()
                        for key, signature in servable.signatures.items()
                        if key != _INIT_OP_SIGNATURE
                    }
                }
            },
        }

    def run(self, name, version, signature_name, inputs, turn=None, progress=None):
        """Runs a signature on NumPy ``inputs``; returns ``(servable, signature, {output: array})``.

        The inputs must be exactly the signature's, of its dtypes (strings as
        object/bytes arrays) and compatible shapes. An image larger than the
        tile is restored tile by tile (:mod:`erlrestore.serving.tiling`),
        others by the signature in one call.

        ``turn`` (from :meth:`PredictionLimiter.running`) holds the request's
        pixels in the limiter's budget while the model runs (it may wait for
        them); ``progress`` (a :class:`~erlrestore.serving.tracker.RequestProgress`)
        is told the tiles to do and each one done.

        Raises ServingError: 404 unknown model/version, 400 unknown
        signature, wrong inputs, an input the model's ops reject
        (InvalidArgument), or an image of more than ``max_image_pixels``
        pixels (for encoded images read from the header before TensorFlow
        sees it); 503 when the pixel budget stays full (OverloadedError) or
        TensorFlow runs out of memory, 500 for other model failures.
        """
        servable = self.get(name, version)
        signature = servable.signature(signature_name)
        names = sorted(signature.inputs)
        if sorted(inputs) != names:
            raise ServingError(
                400, f"inputs {sorted(inputs)} do not match signature {signature.name!r}'s inputs {names}"
            )
        arrays, pixels = {}, 0
        for key in names:
            spec, array = signature.inputs[key], np.asarray(inputs[key])
            if spec.dtype == tf.string:
                if array.dtype.kind not in "OS":
                    raise ServingError(400, f"input {key!r} must be a string tensor, got {array.dtype}")
            elif array.dtype != spec.dtype.as_numpy_dtype:
                raise ServingError(400, f"input {key!r} must be {spec.dtype.name}, got {array.dtype}")
            if not spec.shape.is_compatible_with(array.shape):
                raise ServingError(
                    400,
                    f"input {key!r} has shape {list(array.shape)} but signature {signature.name!r} expects "
                    f"{_shape_text(spec.shape)}",
                )
            if spec.dtype == tf.string:
                sizes = check_image_pixels(array.flat, self.max_image_pixels, f"input {key!r}")
                pixels += sum(width * height for width, height in filter(None, sizes))
            else:
                pixels += check_pixels(_image_sizes(array), self.max_image_pixels, f"input {key!r}")
            arrays[key] = array
        tiled = tiling.plan(servable, signature, arrays, self.tiling)
        if progress is not None:
            progress.set_model(servable.name, servable.version)
        with turn.pixels(pixels) if turn is not None else contextlib.nullcontext():
            if progress is not None:
                progress.start(tiled.tiles if tiled is not None else 1, pixels)
            on_tiles = None if progress is None else progress.advance
            try:
                if tiled is not None:
                    outputs = tiled.run(on_tiles)
                else:
                    tensors = {key: tf.constant(arrays[key], dtype=signature.inputs[key].dtype) for key in names}
                    result = signature.function(**tensors)
                    del tensors
                    outputs = {key: np.asarray(value) for key, value in result.items()}
                    if on_tiles is not None:
                        on_tiles(1)
            except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError,
                    tf.errors.FailedPreconditionError) as error:
                raise ServingError(400, f"the model rejected the input: {_tf_error_text(error)}") from None
            except tf.errors.ResourceExhaustedError as error:
                raise ServingError(503, f"out of memory running the model: {_tf_error_text(error)}") from None
            except tf.errors.OpError as error:
                raise ServingError(500, f"the model failed: {_tf_error_text(error)}") from None
        return servable, signature, outputs

    def predict_json(self, name, version, body, turn=None, progress=None):
        """Answers a REST ``:predict`` request; ``body`` is the raw request body (bytes).

        Returns the answer for :func:`erlrestore.serving.codec.encode_json`
        (numeric outputs are encoded a block at a time, never as one
        nested list). ``turn`` and ``progress``: see :meth:`run`.
        """
        servable = self.get(name, version)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ServingError(400, f"the request body is not UTF-8 text: {error}") from None
        if not text.strip():
            raise ServingError(400, "JSON parse error: the request body is empty")
        try:
            request = json.loads(text)
        except RecursionError:
            raise ServingError(400, "JSON parse error: the document is nested too deeply") from None
        except ValueError as error:
            raise ServingError(400, f"JSON parse error: {error}") from None
        del text
        if not isinstance(request, dict):
            raise ServingError(400, f"the request body must be a JSON object, got {json_kind(request)}")
        signature_name = request.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingError(400, "'signature_name' must be a string")
        signature = servable.signature(signature_name)
        arrays, request_format = parse_predict_body(request, signature)
        del request  # the parsed JSON (base64 text, nested lists): the arrays hold what is needed
        _, _, outputs = self.run(name, servable.version, signature.name, arrays, turn=turn, progress=progress)
        del arrays
        return format_predict_response(outputs, request_format, lazy=True)


def _image_sizes(array):
    """``(width, height)`` of each image in a numeric input: ``[..., H, W, C]`` holds ``prod(...)`` images.

    Inputs of rank below 3 hold no images (no pixels are counted).
    """
    if array.ndim < 3:
        return []
    return [(array.shape[-2], array.shape[-3])] * math.prod(array.shape[:-3])


def _shape_text(shape):
    if shape.rank is None:
        return "any shape"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"
