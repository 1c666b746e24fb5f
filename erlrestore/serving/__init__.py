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
* ``GET /v1/progress/<request id>``: how far a ``:predict`` request has got
  (not TF Serving's: an erlrestore-serve extension for pages that show a
  long restoration), ``{"request_id", "model", "version", "state":
  "waiting" | "running" | "done" | "failed", "tiles_done", "tiles_total",
  "pixels", "elapsed_seconds", "running_seconds", "eta_seconds",
  "status"}``; the request is named by its ``X-Request-Id`` header
  (:mod:`~erlrestore.serving.tracker` has the rules; the answer echoes
  the header, or the id the server made up), and a page polls this until
  ``state`` is ``done`` or ``failed`` (404: not arrived yet, or forgotten
  five minutes after it ended);
* ``GET /`` (also ``/ui/``): a page for restoring a photo in a browser
  through this same API, and ``GET /ui/config.json``, the models and limits
  it lists (not TF Serving's; :mod:`~erlrestore.serving.page`);
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
could not be a folder name, an image of more than ``max_image_pixels``
pixels, for encoded images as their header declares it; 404 unknown model,
version or path; 405 wrong method; 408 body not sent in time; 411 no
Content-Length; 413 body over ``max_request_bytes``, refused from the
Content-Length header before any of the body is read). 503 (with
``Retry-After: 1``) means the
server is busy (see below) and the request may be retried as it is; other
5xx are faults of the server or of the model. No value from a request is
ever used as a file path: models are looked up by name in the dictionary
loaded at start-up, and the server reads only the model folders
(``saved_model.pb``/``.pbtxt`` and what ``tf.saved_model.load`` reads) and
the page's three files in the package (by a fixed table of paths), and
writes no files.

Large images (:mod:`~erlrestore.serving.tiling`): an image larger than
``tile`` pixels in either side [``--tile``, 512; ``--overlap``, 32;
``--align``, 0 = 16] sent to an erlrestore SavedModel's ``restore_bytes``
or ``serving_default`` is restored tile by tile with
:func:`erlrestore.inference.restore_tiled` through the model's
``serving_default``, exactly as ``erlrestore-restore`` restores it (the same
pixels for the same model and tile settings), so the model's memory is a
tile's, not the image's; smaller images go through the signature whole, as
before. ``--tile=0`` turns this off. A working scale (``work_size``
[``--work_size``, none], a shorter side in pixels; no request field)
restores every image whose shorter side is more than 1.5 times it at that
shorter side and adds the upsampled correction to the full-size image, as
``erlrestore-restore --work_size=<pixels>`` does (the same pixels; such
images take the tiled path even when they fit one tile). A SavedModel has
no model card, so there is no ``auto``: serve an export of
``erlnet-derain`` or ``memd-derain`` with ``--work_size=321`` to match
``erlrestore-restore``'s default for them. After a prediction of a megapixel or
more, freed heap memory is handed back to the system
(:func:`release_memory`), so the server's resident size comes back down.

Limits under load (:class:`RestServer`, :class:`PredictionLimiter`; flags of
``erlrestore-serve`` in brackets):

* at most ``max_concurrent`` predictions run at once [``--max_concurrent``,
  4], REST and gRPC together; up to ``max_queue`` more [``--max_queue``, 32]
  read their body and wait; any beyond get 503 ``{"error": ...}``, as TF
  Serving answers UNAVAILABLE (HTTP 503) when its batching queue is full.
  Request bodies in memory are so bounded by ``(max_concurrent + max_queue)
  * max_request_bytes``;
* admission counts pixels: the images of the predictions running at once
  hold at most ``max_inflight_pixels`` pixels [``--max_inflight_pixels``,
  32 million: two 12-megapixel photos and change], what the memory of a
  tiled restoration grows with (the decoded image and its blending sums,
  about 30 bytes a pixel, beside one tile's model memory). A prediction
  whose pixels do not fit waits in order of arrival; one larger than the
  whole budget runs alone. Waiting for a slot and then for pixels lasts at
  most ``queue_timeout`` seconds in all [``--queue_timeout``, 30], then 503
  with ``Retry-After: 1`` (gRPC: UNAVAILABLE);
* at most ``max_connections`` open REST connections [``--max_connections``,
  128], one thread each; a connection beyond is answered 503 at once and
  closed, without a thread;
* an image may have at most ``max_image_pixels`` pixels
  [``--max_image_pixels``, 100 million], per image and per request, or the
  request is refused with 400 naming the image and its size; for encoded
  images (PNG, JPEG, BMP, GIF, WebP) in string inputs the size is read from
  the header (:func:`image_dimensions`) before TensorFlow decodes anything,
  so a small file declaring a huge image is refused without being decoded;
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
  read back bit-exactly; TF Serving writes the shortest float32 repr. They
  are encoded 65536 numbers at a time (:func:`encode_json`), never as one
  nested list of Python floats. Large images are best sent encoded
  (``restore_bytes``, ``{"b64": ...}``): as JSON numbers a 12-megapixel
  image is some 400 MB of text, far beyond ``max_request_bytes``.
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

The package's modules: :mod:`~erlrestore.serving.limits` (request and image
limits, :class:`PredictionLimiter`), :mod:`~erlrestore.serving.repository`
(loading version folders, :class:`ModelRepository`),
:mod:`~erlrestore.serving.tiling` (large images tile by tile),
:mod:`~erlrestore.serving.tracker` (progress by request id),
:mod:`~erlrestore.serving.page` (the page in the browser),
:mod:`~erlrestore.serving.codec` (the JSON of ``:predict``),
:mod:`~erlrestore.serving.rest` (:class:`RestServer`),
:mod:`~erlrestore.serving.grpc_api` (:func:`make_grpc_server`) and
:mod:`~erlrestore.serving.server` (:func:`serve`); every public name is
importable from ``erlrestore.serving`` itself.
"""

from erlrestore.serving.codec import (
    BYTES_SUFFIX,
    encode_json,
    format_predict_response,
    json_to_array,
    parse_predict_body,
)
from erlrestore.serving.errors import OverloadedError, ServingError
from erlrestore.serving.grpc_api import GRPC_MISSING_MESSAGE, GrpcUnavailableError, grpc_available, make_grpc_server
from erlrestore.serving.limits import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_MAX_INFLIGHT_PIXELS,
    DEFAULT_MAX_QUEUE,
    DEFAULT_MAX_REQUEST_BYTES,
    DEFAULT_QUEUE_TIMEOUT,
    DEFAULT_REQUEST_TIMEOUT,
    PredictionLimiter,
    Turn,
    check_image_pixels,
    check_pixels,
    image_dimensions,
    parse_byte_size,
    release_memory,
)
from erlrestore.serving.repository import (
    DEFAULT_SIGNATURE,
    PREDICT_METHOD_NAME,
    ModelRepository,
    Servable,
    Signature,
    load_models,
)
from erlrestore.serving.rest import MAX_MODEL_NAME_CHARS, MAX_VERSION_DIGITS, REQUEST_ID_HEADER, RestServer
from erlrestore.serving.server import serve
from erlrestore.serving.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, TileSettings
from erlrestore.serving.tracker import ProgressTracker, RequestProgress

__all__ = [
    "BYTES_SUFFIX",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_MAX_CONCURRENT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_MAX_IMAGE_PIXELS",
    "DEFAULT_MAX_INFLIGHT_PIXELS",
    "DEFAULT_MAX_QUEUE",
    "DEFAULT_MAX_REQUEST_BYTES",
    "DEFAULT_OVERLAP",
    "DEFAULT_QUEUE_TIMEOUT",
    "DEFAULT_REQUEST_TIMEOUT",
    "DEFAULT_SIGNATURE",
    "DEFAULT_TILE",
    "GRPC_MISSING_MESSAGE",
    "MAX_MODEL_NAME_CHARS",
    "MAX_VERSION_DIGITS",
    "PREDICT_METHOD_NAME",
    "GrpcUnavailableError",
    "ModelRepository",
    "OverloadedError",
    "PredictionLimiter",
    "ProgressTracker",
    "REQUEST_ID_HEADER",
    "RequestProgress",
    "RestServer",
    "Servable",
    "ServingError",
    "Signature",
    "TileSettings",
    "Turn",
    "check_image_pixels",
    "check_pixels",
    "encode_json",
    "format_predict_response",
    "grpc_available",
    "image_dimensions",
    "json_to_array",
    "load_models",
    "make_grpc_server",
    "parse_byte_size",
    "parse_predict_body",
    "release_memory",
    "serve",
]
