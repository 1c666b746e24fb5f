"""A small model server speaking the part of TF Serving's REST API that erlrestore's client uses.

``erlrestore-serve`` (:mod:`erlrestore.cli.serve`) loads every SavedModel
written in TF Serving's layout ``<model_base_path>/<model_name>/<version>/``
(integer version folders, ``saved_model.pb`` + ``variables/``) with plain
``tf.saved_model.load`` and answers:

* ``GET /v1/models/<name>[/versions/<v>]``: the model's version status,
  ``{"model_version_status": [{"version": "2", "state": "AVAILABLE",
  "status": {"error_code": "OK", "error_message": ""}}, ...]}`` (all loaded
  versions, newest first, when no version is named);
* ``GET /v1/models/<name>[/versions/<v>]/metadata``: ``{"model_spec": {"name",
  "signature_name": "", "version"}, "metadata": {"signature_def":
  {"signature_def": {<signature>: {"inputs", "outputs", "method_name"}}}}}``,
  each input/output as TF Serving prints a ``TensorInfo`` (``name``,
  ``dtype`` such as ``"DT_FLOAT"``, ``tensor_shape.dim[].size`` as strings,
  ``-1`` for a dynamic size), taken from the SavedModel's own SignatureDefs;
* ``POST /v1/models/<name>[/versions/<v>]:predict``: ``{"signature_name"?,
  "instances": [...]}`` (row format, answered with ``{"predictions": ...}``)
  or ``{"inputs": ...}`` (columnar format, answered with ``{"outputs":
  ...}``), following TF Serving's JSON rules (``tensorflow_serving/util/
  json_tensor.cc``): an instance or ``inputs`` value may be a bare value when
  the signature has one input, otherwise an object keyed by input name; a
  string tensor's value may be ``{"b64": "..."}`` (decoded to bytes) or a
  plain JSON string (its UTF-8 bytes); a string output whose name ends in
  ``_bytes`` is returned as ``{"b64": "..."}``; with several outputs each
  prediction (row) or ``outputs`` (columnar) is an object keyed by output
  name, with one output it is the bare value.

Errors are ``{"error": "<message>"}`` with a 4xx status for anything the
client can fix (400 malformed JSON, missing or wrong inputs, undecodable
base64, unknown signature, inputs the model rejects, a model name that
could not be a folder name; 404 unknown model, version or path; 405 wrong
method; 408 body not sent in time; 411 no Content-Length; 413 body over
``max_request_bytes``, refused from the Content-Length header before any of
the body is read, or an encoded image whose header declares more than
``max_image_pixels`` pixels). 503 (with ``Retry-After: 1``) means the
server is busy (see below) and the request may be retried as it is; other
5xx are faults of the server or of the model. No value from a request is
ever used as a file path: models are looked up by name in the dictionary
loaded at start-up, and the server reads only the model folders
(``saved_model.pb``/``.pbtxt`` and what ``tf.saved_model.load`` reads) and
writes no files.

Limits under load (:class:`RestServer`, :class:`PredictionLimiter`; flags of
``erlrestore-serve`` in brackets):

* at most ``max_concurrent`` predictions run at once [``--max_concurrent``,
  4], REST and gRPC together; up to ``max_queue`` more [``--max_queue``, 32]
  read their body and wait, each at most ``queue_timeout`` seconds
  [``--queue_timeout``, 30]; any beyond get 503 ``{"error": ...}``, as TF
  Serving answers UNAVAILABLE (HTTP 503) when its batching queue is full.
  Request bodies in memory are so bounded by ``(max_concurrent + max_queue)
  * max_request_bytes``;
* at most ``max_connections`` open REST connections [``--max_connections``,
  128], one thread each; a connection beyond is answered 503 at once and
  closed, without a thread;
* encoded images (PNG, JPEG, BMP, GIF, WebP) in string inputs may declare at
  most ``max_image_pixels`` pixels [``--max_image_pixels``, 100 million], per
  image and per request; the size is read from the header
  (:func:`image_dimensions`) before TensorFlow decodes anything, so a
  small file declaring a huge image is refused with 413;
* on SIGTERM/SIGINT the server stops accepting connections, closes idle
  ones, answers the requests in flight (those waiting for a turn included)
  and stops; it waits at most ``drain_timeout`` seconds
  [``--drain_timeout``, 30] (the command then exits 0, or 1 when requests
  were still running).

Choices made where TF Serving's behaviour was not copied:

* Only ``:predict`` is served (no ``:classify`` / ``:regress``, no version
  labels); they answer 404 with a message saying so.
* Stricter than TF Serving in two places: named inputs that the signature
  does not have are refused (400) rather than ignored, and an empty
  ``instances`` list is refused (as TF Serving does) while an empty columnar
  value is passed to the model if its shape fits.
* Float outputs are written with Python's shortest round-trip repr of the
  float32 value widened to float64 (e.g. ``0.30000001192092896``), so they
  read back bit-exactly; TF Serving writes the shortest float32 repr.
  ``NaN``/``Infinity`` are written as TF Serving does (non-standard JSON).
* A string output not ending in ``_bytes`` is returned as a JSON string when
  it is valid UTF-8, otherwise as ``{"b64": ...}`` (TF Serving would write
  invalid JSON).
* Every response closes its connection (``Connection: close``), so a
  shutdown never waits for idle keep-alive connections; ``Expect:
  100-continue`` is honoured, and an over-sized body is refused before the
  100 is sent.
* Signature ``__saved_model_init_op`` (not callable) is left out of the
  metadata.
* All integer version folders are loaded at start-up; one that does not load
  stops the server with a DataError naming the folder (no silent skip).

gRPC (``PredictionService.Predict``) is served by :func:`make_grpc_server`
when the ``tensorflow-serving-api`` package is importable; it is optional and
not a dependency of erlrestore.
"""

import base64
import binascii
import contextlib
import http.server
import json
import os
import re
import signal
import socket
import threading
import time
import urllib.parse

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format, text_format

from erlrestore.data import io
from erlrestore.data.io import DataError

DEFAULT_SIGNATURE = "serving_default"
DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_CONCURRENT = 4
DEFAULT_MAX_QUEUE = 32
DEFAULT_QUEUE_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000  # as erlrestore.data.io.DEFAULT_MAX_PIXELS
MAX_MODEL_NAME_CHARS = 255
MAX_VERSION_DIGITS = 18
PREDICT_METHOD_NAME = "tensorflow/serving/predict"
BYTES_SUFFIX = "_bytes"
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_VERSION_FOLDER = re.compile(r"[0-9]+", re.ASCII)
_ROUTE = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z]+)?",
    re.ASCII,
)
_SIZE = re.compile(r"\s*([0-9]+)\s*([kmgt]i?b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


class ServingError(Exception):
    """A request the server refuses: ``status`` is the HTTP status, ``message`` the error text."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)


class OverloadedError(ServingError):
    """Too many predictions at once: answered 503 (REST, with ``Retry-After``) or UNAVAILABLE (gRPC)."""

    def __init__(self, message):
        super().__init__(503, message)


class GrpcUnavailableError(RuntimeError):
    """gRPC serving was asked for but ``tensorflow-serving-api`` (or ``grpcio``) is not importable."""


def parse_byte_size(text):
    """Bytes in ``text``: an integer, optionally with a unit (``KB/MB/GB/TB`` = 1000^n, ``KiB/MiB/GiB/TiB`` = 1024^n).

    Units are case-insensitive (``64MiB``, ``64 mib``, ``1000000``). Raises
    ValueError naming ``text`` for anything else, and for zero.
    """
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size in bytes (examples: 1048576, 64MiB, 10MB)")
    unit = match.group(2).lower() if match.group(2) else None
    size = int(match.group(1)) * _SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return size


# --------------------------------------------------------------------------
# Limits: declared image sizes and concurrent predictions.
# --------------------------------------------------------------------------

def image_dimensions(data):
    """``(width, height)`` an encoded image declares in its header, or None when it cannot be told.

    Reads only the header (:func:`erlrestore.data.io.declared_size`: PNG,
    JPEG, BMP, GIF, TIFF, WebP) without decoding any pixels, so that an
    image declaring a huge size (a decompression bomb) can be refused before
    TensorFlow allocates it. None for other data, or a header cut short;
    such data is left to the decoder, which refuses what it cannot read.
    """
    try:
        found = io.declared_size(data)
    except io.HeaderError:
        return None
    return None if found is None else found[1:]


def check_image_pixels(values, limit, what):
    """Refuses (ServingError 413) encoded images in ``values`` whose headers declare more than ``limit`` pixels.

    ``values`` is an iterable of bytes; the limit applies to each image and
    to their total (a batch of many large images is as costly as one huge
    one). Data whose size cannot be read from its header is not counted.
    ``limit`` None or 0 turns the check off.
    """
    if not limit:
        return
    total = 0
    for index, value in enumerate(values):
        size = image_dimensions(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
        if size is None:
            continue
        pixels = size[0] * size[1]
        if pixels > limit:
            raise ServingError(
                413,
                f"{what}: image {index} declares {size[0]}x{size[1]} = {pixels} pixels, more than the limit of "
                f"{limit} (--max_image_pixels)",
            )
        total += pixels
        if total > limit:
            raise ServingError(
                413,
                f"{what}: images 0 to {index} declare {total} pixels in all, more than the limit of {limit} "
                "(--max_image_pixels); send fewer images per request",
            )


class PredictionLimiter:
    """Bounds the predictions that run at once, and those that wait for a turn.

    At most ``max_concurrent`` predictions run at the same time; up to
    ``max_queue`` more are admitted and wait, each at most ``queue_timeout``
    seconds for a turn (turns go to waiters in about the order they came,
    not strictly). A request that finds ``max_concurrent + max_queue``
    already admitted, or whose wait runs out, gets OverloadedError (503 /
    UNAVAILABLE), as TF Serving answers when its batching queue is full.

    Use ``with limiter.admitted():`` around everything a request holds
    memory for (reading its body), and ``with limiter.running():`` inside it
    around the work itself (parsing, the model, the answer).
    """

    def __init__(self, max_concurrent=DEFAULT_MAX_CONCURRENT, max_queue=DEFAULT_MAX_QUEUE,
                 queue_timeout=DEFAULT_QUEUE_TIMEOUT):
        if int(max_concurrent) < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if int(max_queue) < 0:
            raise ValueError(f"max_queue must be 0 or more, got {max_queue}")
        if not float(queue_timeout) > 0:
            raise ValueError(f"queue_timeout must be positive, got {queue_timeout}")
        self.max_concurrent = int(max_concurrent)
        self.max_queue = int(max_queue)
        self.queue_timeout = float(queue_timeout)
        self._condition = threading.Condition()
        self._admitted = 0
        self._running = 0
        self.refused = 0  # requests answered OverloadedError so far

    def counts(self):
        """``(admitted, running)`` now."""
        with self._condition:
            return self._admitted, self._running

    @contextlib.contextmanager
    def admitted(self):
        with self._condition:
            if self._admitted >= self.max_concurrent + self.max_queue:
                self.refused += 1
                raise OverloadedError(
                    f"the server is busy ({self.max_concurrent} predictions running and {self.max_queue} waiting, "
                    "the most it takes); retry later"
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._condition:
                self._admitted -= 1

    @contextlib.contextmanager
    def running(self):
        deadline = time.monotonic() + self.queue_timeout
        with self._condition:
            while self._running >= self.max_concurrent:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.refused += 1
                    raise OverloadedError(
                        f"the server is busy: no prediction slot of {self.max_concurrent} came free within "
                        f"{self.queue_timeout:g} s; retry later"
                    )
                self._condition.wait(remaining)
            self._running += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify()


# --------------------------------------------------------------------------
# Loading models.
# --------------------------------------------------------------------------


def _read_signature_defs(path):
    """SignatureDef protos of the ``serve`` MetaGraph of the SavedModel at ``path``."""
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel

    saved_model = saved_model_pb2.SavedModel()
    pb_path = os.path.join(path, "saved_model.pb")
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
        if not (os.path.isfile(os.path.join(path, "saved_model.pb"))
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
    """``[(version, path)]`` of the integer-named sub-folders of ``model_dir``, ascending."""
    found = {}
    for entry in sorted(os.listdir(model_dir)):
        path = os.path.join(model_dir, entry)
        if _VERSION_FOLDER.fullmatch(entry) and os.path.isdir(path):
            version = int(entry)
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


# --------------------------------------------------------------------------
# JSON <-> arrays.
# --------------------------------------------------------------------------


def _is_b64_object(value):
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def _decode_b64(text, what):
    compact = "".join(text.split())  # tolerate the line breaks of `base64` tools
    compact += "=" * (-len(compact) % 4)
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ServingError(400, f"{what}: could not decode base64 data: {error}") from None


def _json_kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return "a list"


def _string_leaves(value, what):
    if isinstance(value, list):
        return [_string_leaves(item, what) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64_object(value):
        return _decode_b64(value["b64"], what)
    raise ServingError(
        400, f"{what}: expected strings or {{\"b64\": ...}} objects for a string input, got {_json_kind(value)}"
    )


def _string_array(value, what):
    nested = _string_leaves(value, what)
    try:
        array = np.array(nested, dtype=object)
    except ValueError as error:
        raise ServingError(400, f"{what} is not a dense (rectangular) array: {error}") from None
    if any(not isinstance(item, bytes) for item in array.flat):
        raise ServingError(400, f"{what} is not a dense (rectangular) array: its lists have different lengths")
    return array


def json_to_array(value, spec, what):
    """The JSON ``value`` as a NumPy array of ``spec``'s dtype (shape not checked); ServingError 400 if it cannot be."""
    dtype = tf.as_dtype(spec.dtype)
    if dtype == tf.string:
        return _string_array(value, what)
    try:
        array = np.asarray(value)
    except (ValueError, TypeError, RecursionError) as error:
        raise ServingError(400, f"{what} is not a dense (rectangular) array: {error}") from None
    kind = array.dtype.kind
    found = {"U": "strings", "S": "strings", "b": "booleans", "O": "objects, nulls or mixed types"}.get(kind, "numbers")
    if dtype.is_floating:
        if kind not in "fiu":
            raise ServingError(400, f"{what}: expected numbers for a {dtype.name} input, got {found}")
        limit = float(np.finfo(dtype.as_numpy_dtype).max)
        finite = np.abs(array[np.isfinite(array)]) if kind == "f" else np.abs(array.astype(np.float64))
        if finite.size and float(finite.max()) > limit:
            raise ServingError(400, f"{what}: a value does not fit in {dtype.name}")
    elif dtype.is_integer:
        if kind not in "iu":
            raise ServingError(400, f"{what}: expected integers for a {dtype.name} input, got {found}")
        info = np.iinfo(dtype.as_numpy_dtype)
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise ServingError(400, f"{what}: a value does not fit in {dtype.name}")
    elif dtype == tf.bool:
        if kind != "b":
            raise ServingError(400, f"{what}: expected true/false for a bool input, got {found}")
    else:
        raise ServingError(400, f"{what}: inputs of type {dtype.name} cannot be sent as JSON by this server")
    return array.astype(dtype.as_numpy_dtype, copy=False)


def parse_predict_body(body, signature):
    """Decodes a ``:predict`` JSON body into ``({input: array}, "row" | "columnar")`` for ``signature``.

    ``body`` is the already-parsed JSON object. Raises ServingError 400 for
    every malformed request (see the module docstring for the rules).
    """
    has_instances, has_inputs = "instances" in body, "inputs" in body
    if has_instances and has_inputs:
        raise ServingError(
            400, "the request has both 'instances' (row format) and 'inputs' (columnar format); send one"
        )
    if not (has_instances or has_inputs):
        raise ServingError(400, "the request has neither 'instances' (row format) nor 'inputs' (columnar format)")
    specs = signature.inputs
    if not specs:
        raise ServingError(400, f"signature {signature.name!r} takes no inputs")
    names = sorted(specs)
    if has_instances:
        instances = body["instances"]
        if not isinstance(instances, list):
            raise ServingError(400, f"'instances' must be a list, got {_json_kind(instances)}")
        if not instances:
            raise ServingError(400, "'instances' is an empty list")

        def named(item):
            return isinstance(item, dict) and not _is_b64_object(item)

        if named(instances[0]):
            columns = {name: [] for name in names}
            for index, instance in enumerate(instances):
                if not named(instance):
                    raise ServingError(
                        400, f"instance {index} is {_json_kind(instance)}; expected an object like instance 0"
                    )
                if set(instance) != set(names):
                    raise ServingError(
                        400,
                        f"instance {index} has keys {sorted(instance)}; signature {signature.name!r} needs "
                        f"exactly {names}",
                    )
                for name in names:
                    columns[name].append(instance[name])
        else:
            if len(names) > 1:
                raise ServingError(
                    400, f"'instances' holds bare values but signature {signature.name!r} has several inputs {names}; "
                    "send objects keyed by input name",
                )
            for index, instance in enumerate(instances):
                if named(instance):
                    raise ServingError(400, f"instance {index} is an object but instance 0 is a bare value")
            columns = {names[0]: instances}
        arrays = {name: json_to_array(columns[name], specs[name], f"input {name!r} of 'instances'") for name in names}
        return arrays, "row"
    value = body["inputs"]
    if isinstance(value, dict) and not _is_b64_object(value):
        missing = [name for name in names if name not in value]
        unknown = sorted(set(value) - set(names))
        if missing or unknown:
            raise ServingError(
                400,
                f"'inputs' has keys {sorted(value)}; signature {signature.name!r} needs exactly {names}",
            )
        arrays = {name: json_to_array(value[name], specs[name], f"input {name!r} of 'inputs'") for name in names}
    else:
        if len(names) > 1:
            raise ServingError(
                400, f"'inputs' is a bare value but signature {signature.name!r} has several inputs {names}; "
                "send an object keyed by input name",
            )
        arrays = {names[0]: json_to_array(value, specs[names[0]], f"input {names[0]!r} of 'inputs'")}
    return arrays, "columnar"


def _string_to_json(item, as_bytes):
    if not as_bytes:
        try:
            return item.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return {"b64": base64.b64encode(item).decode("ascii")}


def _array_to_json(name, array):
    if array.dtype.kind in "OS":
        as_bytes = name.endswith(BYTES_SUFFIX)

        def convert(value):
            if isinstance(value, list):
                return [convert(item) for item in value]
            return _string_to_json(value, as_bytes)

        return convert(array.tolist())
    return array.tolist()


def format_predict_response(outputs, request_format):
    """The JSON response (a dict) for ``outputs`` (``{name: array}``) in ``"row"`` or ``"columnar"`` format."""
    names = sorted(outputs)
    if request_format == "columnar":
        if len(names) == 1:
            return {"outputs": _array_to_json(names[0], outputs[names[0]])}
        return {"outputs": {name: _array_to_json(name, outputs[name]) for name in names}}
    batch = None
    for name in names:
        shape = outputs[name].shape
        if not shape:
            raise ServingError(400, f"output {name!r} is a scalar; use the columnar format ('inputs')")
        if batch is not None and shape[0] != batch:
            raise ServingError(
                400, f"outputs have different batch sizes ({name!r}: {shape[0]}, others: {batch}); "
                "use the columnar format ('inputs')",
            )
        batch = shape[0]
    converted = {name: _array_to_json(name, outputs[name]) for name in names}
    if len(names) == 1:
        return {"predictions": converted[names[0]]}
    return {"predictions": [{name: converted[name][row] for name in names} for row in range(batch)]}


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


# --------------------------------------------------------------------------
# The repository of loaded models.
# --------------------------------------------------------------------------


class ModelRepository:
    """The loaded models: ``{name: {version: Servable}}``, answering status, metadata and predict requests."""

    def __init__(self, models, max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS):
        self.models = {name: dict(sorted(versions.items())) for name, versions in models.items()}
        # Encoded images in string inputs may declare at most this many pixels (None or 0: no limit).
        self.max_image_pixels = max_image_pixels

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

    def run(self, name, version, signature_name, inputs):
        """Runs a signature on NumPy ``inputs``; returns ``(servable, signature, {output: array})``.

        The inputs must be exactly the signature's, of its dtypes (strings as
        object/bytes arrays) and compatible shapes. Raises ServingError: 404
        unknown model/version, 400 unknown signature, wrong inputs or an
        input the model's ops reject (InvalidArgument), 413 for an encoded
        image in a string input whose header declares more than
        ``max_image_pixels`` pixels (checked before TensorFlow sees it), 503
        when TensorFlow runs out of memory, 500 for other model failures.
        """
        servable = self.get(name, version)
        signature = servable.signature(signature_name)
        names = sorted(signature.inputs)
        if sorted(inputs) != names:
            raise ServingError(
                400, f"inputs {sorted(inputs)} do not match signature {signature.name!r}'s inputs {names}"
            )
        tensors = {}
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
                check_image_pixels(array.flat, self.max_image_pixels, f"input {key!r}")
            tensors[key] = tf.constant(array, dtype=spec.dtype)
        try:
            result = signature.function(**tensors)
        except (tf.errors.InvalidArgumentError, tf.errors.OutOfRangeError, tf.errors.FailedPreconditionError) as error:
            raise ServingError(400, f"the model rejected the input: {_tf_error_text(error)}") from None
        except tf.errors.ResourceExhaustedError as error:
            raise ServingError(503, f"out of memory running the model: {_tf_error_text(error)}") from None
        except tf.errors.OpError as error:
            raise ServingError(500, f"the model failed: {_tf_error_text(error)}") from None
        return servable, signature, {key: np.asarray(value) for key, value in result.items()}

    def predict_json(self, name, version, body):
        """Answers a REST ``:predict`` request; ``body`` is the raw request body (bytes)."""
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
        if not isinstance(request, dict):
            raise ServingError(400, f"the request body must be a JSON object, got {_json_kind(request)}")
        signature_name = request.get("signature_name", "")
        if not isinstance(signature_name, str):
            raise ServingError(400, "'signature_name' must be a string")
        signature = servable.signature(signature_name)
        arrays, request_format = parse_predict_body(request, signature)
        _, _, outputs = self.run(name, servable.version, signature.name, arrays)
        return format_predict_response(outputs, request_format)


def _shape_text(shape):
    if shape.rank is None:
        return "any shape"
    return "[" + ", ".join("?" if d is None else str(d) for d in shape.as_list()) + "]"


# --------------------------------------------------------------------------
# The REST server.
# --------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving REST requests to the server's ModelRepository; one request per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "erlrestore-serve"
    error_content_type = "application/json"

    def setup(self):
        self.timeout = self.server.request_timeout
        super().setup()

    def handle(self):
        self._status = None
        self._sent = 0
        self._started = time.monotonic()
        self._unread_body = None  # bytes announced by Content-Length and not read (None: not looked at yet)
        self.server._track(self.connection)
        try:
            self.close_connection = True
            self.handle_one_request()
        except (ConnectionError, TimeoutError) as error:  # the client went away mid-response
            logging.info("connection from %s ended early: %s", self.client_address[0], error)
        finally:
            self.server._untrack(self.connection)
            if self._status is not None:
                line = getattr(self, "requestline", "") or "-"
                logging.info(
                    '%s "%s" %d %d bytes %.1f ms',
                    self.client_address[0], line[:200], self._status, self._sent,
                    1000.0 * (time.monotonic() - self._started),
                )

    def parse_request(self):
        self.server._mark_busy(self.connection)
        return super().parse_request()

    # The standard library's messages go to our one-line-per-request log instead.
    def log_request(self, code="-", size="-"):
        pass

    def log_error(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def __getattr__(self, name):
        # Every method (GET, POST, PUT, DELETE, ...) goes through _dispatch, so
        # that unknown paths answer 404 and wrong methods 405, never 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code, message=None, explain=None):
        """Errors found by the standard library's request parsing, sent as JSON."""
        text = message or self.responses.get(code, ("error",))[0]
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            # An unparsable request line leaves the version at HTTP/0.9, for
            # which no status line would be written; answer as HTTP/1.0.
            self.request_version = "HTTP/1.0"
        self._send_json(code, {"error": text})

    def _send_json(self, status, payload, headers=(), compact=False):
        text = json.dumps(payload, separators=(",", ":")) if compact else json.dumps(payload, indent=1)
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self._status, self._sent = status, len(data)

    def _content_length(self):
        text = self.headers.get("Content-Length")
        if text is None:
            if self.headers.get("Transfer-Encoding"):
                raise ServingError(
                    411, "send the body with a Content-Length header (chunked transfer encoding is not supported)"
                )
            raise ServingError(411, "a Content-Length header is required")
        if not text.strip().isdigit():
            raise ServingError(400, f"invalid Content-Length header {text!r}")
        length = int(text)
        self._unread_body = length
        if length > self.server.max_request_bytes:
            raise ServingError(
                413,
                f"the request body of {length} bytes is larger than the limit of {self.server.max_request_bytes} bytes",
            )
        return length

    def handle_expect_100(self):
        # Refuse an over-sized body before the client sends it.
        try:
            self._content_length()
        except ServingError as error:
            if error.status == 413:
                self._send_json(413, {"error": error.message})
                return False
        return super().handle_expect_100()

    def _read_body(self, length):
        try:
            body = self.rfile.read(length)
        except (TimeoutError, socket.timeout):
            self._unread_body = 0  # a client this slow is not waited for again
            raise ServingError(
                408, f"the request body was not received within {self.server.request_timeout:g} s"
            ) from None
        self._unread_body = 0
        if len(body) < length:
            raise ServingError(400, f"the request body ended after {len(body)} of {length} bytes")
        return body

    def _discard_unread_body(self, seconds=2.0):
        """After refusing a body unread: lets the client finish sending, so it can read the refusal.

        Closing a socket with unread data makes the kernel reset the
        connection, and a client still sending would then never see the
        answer. The response is flushed, our side is shut for writing, and
        whatever arrives in the next ``seconds`` is read in small pieces and
        thrown away (never kept).
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self.connection.settimeout(max(0.05, deadline - time.monotonic()))
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass

    def _request_path(self):
        """The path of the request target, without query or fragment (absolute-form targets are accepted)."""
        target = self.path
        if target.startswith("/"):
            return target.split("?", 1)[0].split("#", 1)[0]
        return urllib.parse.urlsplit(target).path

    def _route(self):
        """``(allowed methods, handler)`` for the request path; ServingError 404 when unknown.

        The model name is percent-decoded and checked (``_model_name``); it
        is only ever a key of the repository's dictionary, never part of a
        file path. Versions are at most MAX_VERSION_DIGITS digits.
        """
        path = self._request_path()
        match = _ROUTE.fullmatch(path)
        if not match:
            raise ServingError(
                404, f"unknown path {path[:200]!r}; expected /v1/models/<name>[/versions/<n>][/metadata | :predict]"
            )
        name = _model_name(match.group("name"))
        version = match.group("version")
        if version is not None and len(version.lstrip("0")) > MAX_VERSION_DIGITS:
            shown = version[:30] + ("..." if len(version) > 30 else "")
            raise ServingError(400, f"version {shown} has more than {MAX_VERSION_DIGITS} digits")
        version = None if version is None else int(version)
        suffix = match.group("suffix")
        if match.group("label") is not None:
            raise ServingError(404, "version labels are not supported by erlrestore-serve; use /versions/<n>")
        repository = self.server.repository
        if suffix is None:
            return ("GET",), lambda: (200, repository.status(name, version), False)
        if suffix == "/metadata":
            return ("GET",), lambda: (200, repository.metadata(name, version), False)
        if suffix == ":predict":
            def predict():
                length = self._content_length()
                repository.get(name, version)  # 404 before the body is read
                limiter = self.server.limiter
                with limiter.admitted():
                    body = self._read_body(length)
                    with limiter.running():
                        return 200, repository.predict_json(name, version, body), True
            return ("POST",), predict
        raise ServingError(404, f"{suffix!r} is not supported by erlrestore-serve (only :predict)")

    def _dispatch(self):
        try:
            try:
                allowed, action = self._route()
                if self.command not in allowed:
                    self._send_json(
                        405, {"error": f"method {self.command} is not allowed here (use {', '.join(allowed)})"},
                        headers=[("Allow", ", ".join(allowed))],
                    )
                    self._after_refusal()
                    return
                status, payload, compact = action()
            except ServingError as error:
                headers = [("Retry-After", "1")] if isinstance(error, OverloadedError) else []
                self._send_json(error.status, {"error": error.message}, headers=headers)
                self._after_refusal()
                return
            except Exception as error:  # a fault of the server or the model: 500, keep serving
                logging.exception("error answering %s %s", self.command, self.path)
                self._send_json(500, {"error": f"internal server error: {type(error).__name__}: {error}"})
                return
            self._send_json(status, payload, compact=compact)
        except (ConnectionError, TimeoutError) as error:
            logging.info("could not answer %s: %s", self.client_address[0], error)

    def _after_refusal(self):
        # A body that was announced but not read (refused before reading it,
        # or sent with a method that takes none) is drained, so that the
        # client can read the refusal instead of a connection reset.
        if self._unread_body is None:
            text = self.headers.get("Content-Length", "") if self.headers is not None else ""
            self._unread_body = int(text) if text.strip().isdigit() else 0
        if self._unread_body > 0:
            self._discard_unread_body()


def _model_name(quoted):
    """The percent-decoded model name of a URL; ServingError 400 for names no model folder can have.

    Names are dictionary keys only, so nothing could be read through them;
    names that could not be folder names (``.``, ``..``, separators, NUL and
    other control characters, invalid UTF-8, longer than
    MAX_MODEL_NAME_CHARS) are refused outright rather than looked up.
    """
    try:
        name = urllib.parse.unquote(quoted, errors="strict")
    except UnicodeDecodeError:
        raise ServingError(400, f"model name {quoted[:80]!r} is not valid percent-encoded UTF-8") from None
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise ServingError(400, f"model name of {len(name)} characters is longer than {MAX_MODEL_NAME_CHARS}")
    if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ServingError(
            400, f"model name {name[:80]!r} is not a folder name (no '/', '\\\\', '.', '..' or control characters)"
        )
    return name


def _busy_response(limit):
    body = json.dumps({"error": f"the server is busy: {limit} connections are open, the most it takes; retry later"})
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return (head + body).encode("utf-8")


class RestServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer answering TF Serving REST requests from a ModelRepository.

    One thread per connection, and one request per connection. Load is
    bounded three ways:

    * ``max_connections`` connections (and so threads) at once; one more is
      answered 503 straight away (best effort: written without waiting and
      closed) and never gets a thread.
    * ``:predict`` requests go through ``limiter`` (a PredictionLimiter,
      shared with gRPC when both run): at most ``max_concurrent`` run at
      once and ``max_queue`` more are admitted to read their body and wait,
      each up to ``queue_timeout`` s; beyond that 503 ``{"error": ...}``
      with ``Retry-After: 1``. Bodies held in memory are so bounded by
      ``(max_concurrent + max_queue) * max_request_bytes``. Status and
      metadata requests are cheap and not queued.
    * A request must arrive within ``request_timeout`` s (408 otherwise).

    Use ``serve_forever()`` in one thread and, to stop, ``shutdown()`` from
    another, then ``close(drain_timeout)``: it stops listening (new
    connections are refused), ends idle connections (connected but no
    request yet), waits up to ``drain_timeout`` s (None: no limit) for the
    requests in flight to be answered and returns how many were not.
    ``server_port`` is the bound port (useful with port 0).
    """

    daemon_threads = True  # close() waits for them, up to its drain timeout
    block_on_close = False

    def __init__(self, repository, host="127.0.0.1", port=8501, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
                 request_timeout=DEFAULT_REQUEST_TIMEOUT, *, max_concurrent=DEFAULT_MAX_CONCURRENT,
                 max_queue=DEFAULT_MAX_QUEUE, queue_timeout=DEFAULT_QUEUE_TIMEOUT,
                 max_connections=DEFAULT_MAX_CONNECTIONS, limiter=None):
        if int(max_connections) < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.repository = repository
        self.max_request_bytes = int(max_request_bytes)
        self.request_timeout = float(request_timeout)
        self.max_connections = int(max_connections)
        self.limiter = limiter or PredictionLimiter(max_concurrent, max_queue, queue_timeout)
        self._busy = _busy_response(self.max_connections)
        # The listen backlog (socketserver's default is 5): a burst of clients
        # beyond it would wait for SYN retransmits (a second or more) instead
        # of being accepted, or refused with a 503.
        self.request_queue_size = max(self.max_connections, 16)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle = set()
        self._connections = 0
        self._closing = False
        self.refused_connections = 0
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror or error}") from error

    def open_connections(self):
        """Connections being handled now."""
        with self._lock:
            return self._connections

    def process_request(self, request, client_address):
        with self._lock:
            admit = not self._closing and self._connections < self.max_connections
            if admit:
                self._connections += 1
            else:
                self.refused_connections += 1
        if not admit:
            self._refuse(request)
            return
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="erlrestore-serve-request", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had
            self._connection_done()
            self._refuse(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_done()

    def _connection_done(self):
        with self._lock:
            self._connections -= 1
            self._changed.notify_all()

    def _refuse(self, connection):
        # In the accepting thread: nothing here may block. What the client
        # already sent is read first so that closing does not reset the
        # connection before the 503 arrives.
        try:
            connection.setblocking(False)
            try:
                while connection.recv(65536):
                    pass
            except OSError:
                pass
            connection.send(self._busy)
        except OSError:
            pass
        self.shutdown_request(connection)

    def _track(self, connection):
        with self._lock:
            if self._closing:
                _shutdown_read(connection)
            else:
                self._idle.add(connection)

    def _mark_busy(self, connection):
        with self._lock:
            self._idle.discard(connection)

    def _untrack(self, connection):
        with self._lock:
            self._idle.discard(connection)

    def close(self, drain_timeout=None):
        """After serve_forever() returned: stops listening, ends idle connections and waits for in-flight requests.

        Waits at most ``drain_timeout`` seconds (None: until they are all
        answered); returns the number of connections still being handled
        then (0 when every request in flight was answered). Their threads
        are daemon threads, so they do not keep the process alive.
        """
        with self._lock:
            self._closing = True
            idle = list(self._idle)
        self.server_close()
        for connection in idle:
            _shutdown_read(connection)
        deadline = None if drain_timeout is None else time.monotonic() + float(drain_timeout)
        with self._lock:
            while self._connections:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._connections


def _shutdown_read(connection):
    try:
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass


# --------------------------------------------------------------------------
# gRPC (optional).
# --------------------------------------------------------------------------


def grpc_available():
    """True when ``grpcio`` and ``tensorflow-serving-api`` are importable."""
    try:
        # pylint: disable=import-outside-toplevel,unused-import
        import grpc  # noqa: F401
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: F401
    except ImportError:
        return False
    return True


GRPC_MISSING_MESSAGE = (
    "gRPC serving needs the tensorflow-serving-api package (and grpcio): "
    "pip install tensorflow-serving-api (its version must match TensorFlow's), or leave --grpc_port at 0 "
    "and use the REST API"
)


def make_grpc_server(repository, host="127.0.0.1", port=8500, max_message_bytes=DEFAULT_MAX_REQUEST_BYTES, workers=8,
                     limiter=None):
    """A started gRPC server with TF Serving's ``PredictionService.Predict``; returns ``(server, bound_port)``.

    Requests name the model, optional version and signature in
    ``model_spec`` exactly as for TF Serving; ``output_filter`` is honoured.
    Predictions go through ``limiter`` (a PredictionLimiter; pass the REST
    server's to share one bound; default: a new one). Error codes: NOT_FOUND
    (unknown model/version), INVALID_ARGUMENT (bad inputs, unknown
    signature), UNAVAILABLE (busy: the limiter refused), RESOURCE_EXHAUSTED
    (out of memory, or an image declaring too many pixels), INTERNAL. Stop
    it with ``server.stop(grace)``.

    Raises:
      GrpcUnavailableError when grpcio / tensorflow-serving-api are missing.
      OSError when the port cannot be bound.
    """
    try:
        import concurrent.futures  # pylint: disable=import-outside-toplevel

        import grpc  # pylint: disable=import-outside-toplevel
        from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
            predict_pb2,
            prediction_service_pb2_grpc,
        )
    except ImportError as error:
        raise GrpcUnavailableError(f"{GRPC_MISSING_MESSAGE} ({error})") from error

    codes = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
             413: grpc.StatusCode.RESOURCE_EXHAUSTED, 503: grpc.StatusCode.RESOURCE_EXHAUSTED}
    limiter = limiter or PredictionLimiter()

    class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
        def Predict(self, request, context):  # noqa: N802 (gRPC's method name)
            started = time.monotonic()
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            code = grpc.StatusCode.OK
            try:
                if spec.WhichOneof("version_choice") == "version_label":
                    raise ServingError(404, "version labels are not supported by erlrestore-serve; set version")
                try:
                    inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
                except Exception as error:  # malformed TensorProto
                    raise ServingError(400, f"could not read the input tensors: {error}") from None
                with limiter.admitted(), limiter.running():
                    servable, signature, outputs = repository.run(spec.name, version, spec.signature_name, inputs)
                wanted = list(request.output_filter) or list(outputs)
                unknown = sorted(set(wanted) - set(outputs))
                if unknown:
                    raise ServingError(
                        400, f"output_filter names unknown outputs {unknown} (outputs: {sorted(outputs)})"
                    )
                response = predict_pb2.PredictResponse()
                response.model_spec.name = servable.name
                response.model_spec.version.value = servable.version
                response.model_spec.signature_name = signature.name
                for key in wanted:
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
                return response
            except ServingError as error:
                if isinstance(error, OverloadedError):
                    code = grpc.StatusCode.UNAVAILABLE
                else:
                    code = codes.get(error.status, grpc.StatusCode.INTERNAL)
                context.abort(code, error.message)
            except Exception as error:  # pylint: disable=broad-except
                code = grpc.StatusCode.INTERNAL
                logging.exception("error answering gRPC Predict")
                context.abort(code, f"internal server error: {type(error).__name__}: {error}")
            finally:
                logging.info(
                    'gRPC Predict model=%r version=%s signature=%r %s %.1f ms', spec.name, version,
                    spec.signature_name or DEFAULT_SIGNATURE, code.name, 1000.0 * (time.monotonic() - started),
                )

    options = [
        ("grpc.max_receive_message_length", int(max_message_bytes)),
        ("grpc.max_send_message_length", -1),
    ]
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=workers), options=options)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(), server)
    address = f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:
        raise OSError(f"cannot listen for gRPC on {address}: {error}") from error
    if not bound:
        raise OSError(f"cannot listen for gRPC on {address}")
    server.start()
    return server, bound


# --------------------------------------------------------------------------
# Serving until a signal.
# --------------------------------------------------------------------------


def serve(model_base_path, model_names=None, host="127.0.0.1", port=8501, max_request_bytes=DEFAULT_MAX_REQUEST_BYTES,
          grpc_port=0, request_timeout=DEFAULT_REQUEST_TIMEOUT, max_concurrent=DEFAULT_MAX_CONCURRENT,
          max_queue=DEFAULT_MAX_QUEUE, queue_timeout=DEFAULT_QUEUE_TIMEOUT, max_connections=DEFAULT_MAX_CONNECTIONS,
          max_image_pixels=DEFAULT_MAX_IMAGE_PIXELS, drain_timeout=DEFAULT_DRAIN_TIMEOUT):
    """Loads the models and serves them until SIGTERM or SIGINT (blocking); returns the requests left unfinished.

    On a signal the server stops accepting connections (new ones are
    refused), ends idle ones, and answers the requests in flight, waiting at
    most ``drain_timeout`` seconds for them (REST and gRPC alike); it returns
    how many were still running then (0 after a clean drain). A second
    signal while draining is not intercepted (it ends the process). Signal
    handlers are installed only when called from the main thread. The other
    arguments are RestServer's and ModelRepository's limits.

    Raises:
      DataError for models that cannot be loaded, OSError when a port cannot
      be bound, GrpcUnavailableError for ``grpc_port`` without
      tensorflow-serving-api, ValueError for a limit out of range.
    """
    if grpc_port and not grpc_available():
        raise GrpcUnavailableError(GRPC_MISSING_MESSAGE)
    limiter = PredictionLimiter(max_concurrent, max_queue, queue_timeout)
    repository = load_models(model_base_path, model_names)
    repository.max_image_pixels = max_image_pixels
    rest = RestServer(repository, host, port, max_request_bytes, request_timeout, max_connections=max_connections,
                      limiter=limiter)
    grpc_server = None
    try:
        if grpc_port:
            grpc_server, bound = make_grpc_server(repository, host, grpc_port, max_request_bytes, limiter=limiter)
            logging.info("gRPC PredictionService on %s:%d", host, bound)
    except BaseException:
        rest.server_close()
        raise
    for name, versions in repository.models.items():
        logging.info("serving model %r versions %s (default %d)", name, sorted(versions), max(versions))
    logging.info(
        "limits: %d predictions at once and %d waiting (up to %g s each), %d connections, bodies up to %d bytes, "
        "images up to %s pixels", limiter.max_concurrent, limiter.max_queue, limiter.queue_timeout,
        rest.max_connections, rest.max_request_bytes, max_image_pixels or "any number of",
    )
    logging.info("REST API on http://%s:%d/v1/models/<name>", host, rest.server_port)

    previous = {}

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        logging.info("received %s: finishing the requests in flight (up to %g s) and stopping",
                     signal.Signals(signum).name, drain_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        threading.Thread(target=rest.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    unfinished = 0
    try:
        rest.serve_forever()
    finally:
        started = time.monotonic()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        grpc_stopped = grpc_server.stop(drain_timeout) if grpc_server is not None else None
        unfinished = rest.close(drain_timeout)
        if grpc_stopped is not None:
            grpc_stopped.wait(max(0.0, drain_timeout - (time.monotonic() - started)))
        if unfinished:
            logging.warning("stopped with %d request(s) unanswered after the %g s drain timeout", unfinished,
                            drain_timeout)
        else:
            logging.info("stopped")
    return unfinished
