"""A client of served models (``erlrestore-serve`` or TF Serving): restores images over REST or gRPC.

    erlrestore-client --server=http://127.0.0.1:8501 --model_name=memd \\
        --input=photos/ --output_dir=restored/ [--version=2] [--overwrite]
    erlrestore-client --grpc=127.0.0.1:8500 --model_name=memd --input=rain.png --output_dir=restored/

Each image file (PNG, JPEG or BMP, sent as its own bytes) goes to the
model's ``restore_bytes`` signature; the PNG that comes back is written to
``<output_dir>/<input stem>.png``. REST sends ``{"signature_name":
"restore_bytes", "instances": [{"b64": ...}]}`` and reads
``predictions[0]["b64"]`` (the output ``restored_bytes`` ends in ``_bytes``);
gRPC sends a PredictRequest with a string tensor ``image_bytes`` of shape
[1] on a channel whose message limits are raised to ``max_message_bytes``
(gRPC's default of 4 MB is too small for large photos) and needs the
``tensorflow-serving-api`` package. Output files follow ``erlrestore.outputs``'
policy: inputs are never overwritten (an output folder that holds an input
is refused) and existing outputs are refused unless ``--overwrite``. Files
that fail (unreadable, refused by the server, no PNG in the answer) are
listed at the end on stderr and the tool exits 1; the others are still
written.

Large photos: ``erlrestore-serve`` restores images larger than its tile
piece by piece (:mod:`erlrestore.serving.tiling`). Over REST each request
carries an ``X-Request-Id``, and while it runs the client reads the server's
``GET /v1/progress/<id>`` every half second, so the progress bar counts the
tiles of the image being restored, with an ETA, rather than sitting at 0 of
1 image for minutes (TF Serving has no such endpoint: the bar then moves per
image). ``--timeout`` (default 600 s) bounds the wait for each answer.

The functions (``predict_rest``, ``restore_bytes_rest``, ``restore_file_rest``,
``progress_rest``, ``predict_grpc``, ``restore_bytes_grpc``, ``restore_file_grpc``,
``restore_files``) can be imported and used without the command line. The
REST path imports no TensorFlow (so this command line lives here, not in
:mod:`erlrestore.cli`, whose import loads TensorFlow); gRPC does.
"""

import base64
import http.client
import json
import os
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
import uuid

from absl import app, flags

from erlrestore import entry, outputs
from erlrestore.progress import Progress
from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files

FLAGS = flags.FLAGS

RESTORE_SIGNATURE = contract.BYTES_SIGNATURE
REQUEST_ID_HEADER = "X-Request-Id"  # erlrestore-serve reports a request's progress under this id
INPUT_KEY = contract.BYTES_INPUT_KEY
OUTPUT_KEY = contract.BYTES_OUTPUT_KEY
SENDABLE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ServingClientError(Exception):
    """The server refused a request or could not be reached.

    ``status`` is the HTTP status (or the gRPC status code's name; None when
    the server was not reached) and ``message`` the server's error text.
    """

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}" if status is not None else message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------
# REST.
# --------------------------------------------------------------------------


def _rest_url(server, model_name, version, suffix):
    server = server if "://" in server else "http://" + server
    path = f"/v1/models/{urllib.parse.quote(model_name, safe='')}"
    if version is not None:
        path += f"/versions/{int(version)}"
    return server.rstrip("/") + path + suffix


def predict_rest(server, model_name, body, version=None, timeout=60.0, request_id=None):
    """POSTs ``body`` to ``<server>/v1/models/<name>[/versions/<v>]:predict``; returns the JSON answer.

    ``server`` is ``http://host:port`` (``host:port`` works too). ``body`` is
    a dict, or the JSON document already encoded (bytes). ``request_id``
    is sent as the ``X-Request-Id`` header, under which ``erlrestore-serve``
    reports the request's progress (:func:`progress_rest`).

    Raises:
      ServingClientError with the HTTP status and the server's ``error``
      text for a refused request, or status None when the server cannot be
      reached or does not answer JSON.
    """
    url = _rest_url(server, model_name, version, ":predict")
    data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers[REQUEST_ID_HEADER] = request_id
    request = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
    except urllib.error.HTTPError as error:
        text = error.read().decode("utf-8", "replace")
        try:
            message = json.loads(text)["error"]
        except (ValueError, KeyError, TypeError):
            message = text.strip() or error.reason
        raise ServingClientError(error.code, message) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise ServingClientError(None, f"cannot reach {url}: {reason}") from None
    try:
        return json.loads(payload)
    except ValueError as error:
        raise ServingClientError(None, f"{url} answered something that is not JSON: {error}") from None


def restore_bytes_rest(server, model_name, image_bytes, version=None, signature_name=RESTORE_SIGNATURE, timeout=60.0,
                       on_progress=None, request_id=None, poll_seconds=0.5):
    """Sends one encoded image to the ``restore_bytes`` signature over REST; returns the PNG bytes it answers.

    With ``on_progress``, the request gets an id (``request_id``, or a new
    one) and, while it runs, the server's progress for it
    (:func:`progress_rest`: tiles done and total, ETA) is fetched every
    ``poll_seconds`` and passed to ``on_progress`` whenever it changed
    (servers without the progress endpoint, such as TF Serving, just never
    call it).
    """
    # The document is put together as bytes: json.dumps would copy the base64 text twice more.
    body = b"".join([
        b'{"signature_name":', json.dumps(signature_name).encode("utf-8"), b',"instances":[{"b64":"',
        base64.b64encode(image_bytes), b'"}]}',
    ])
    if on_progress is not None and request_id is None:
        request_id = uuid.uuid4().hex
    with _ProgressPoller(server, request_id, on_progress, poll_seconds, timeout):
        answer = predict_rest(server, model_name, body, version=version, timeout=timeout, request_id=request_id)
    del body
    try:
        prediction = answer["predictions"][0]
        if isinstance(prediction, dict) and OUTPUT_KEY in prediction:  # several outputs: keyed by name
            prediction = prediction[OUTPUT_KEY]
        return base64.b64decode(prediction["b64"], validate=True)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ServingClientError(
            None, f"unexpected answer from the server (no predictions[0].b64): {error!r}"
        ) from None


def restore_file_rest(server, model_name, input_path, output_path, version=None, timeout=60.0, on_progress=None):
    """Restores the image file ``input_path`` over REST and writes the answered PNG to ``output_path``; returns it.

    ``on_progress``: see :func:`restore_bytes_rest`.
    """
    return _restore_file(
        lambda data: restore_bytes_rest(server, model_name, data, version=version, timeout=timeout,
                                        on_progress=on_progress),
        input_path, output_path,
    )


def progress_rest(server, request_id, timeout=10.0):
    """``GET <server>/v1/progress/<request_id>`` of ``erlrestore-serve``: the request's progress, or None.

    The answer is a dict (``state``, ``tiles_done``, ``tiles_total``,
    ``eta_seconds``...; :mod:`erlrestore.serving.tracker`); None when the
    server does not know the id (yet), or has no such endpoint.

    Raises:
      ServingClientError when the server cannot be reached or answers
      another error.
    """
    server = server if "://" in server else "http://" + server
    url = f"{server.rstrip('/')}/v1/progress/{urllib.parse.quote(request_id, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise ServingClientError(error.code, error.read().decode("utf-8", "replace").strip()) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as error:
        raise ServingClientError(None, f"cannot read {url}: {getattr(error, 'reason', error)}") from None


class _ProgressPoller:
    """While in its ``with`` block, polls :func:`progress_rest` in a thread and calls ``on_progress`` on changes.

    After a block that ended without an exception it reads the progress once
    more, so that ``on_progress`` sees the request's end (tiles done = total).
    """

    def __init__(self, server, request_id, on_progress, poll_seconds, timeout):
        self.server, self.request_id, self.on_progress = server, request_id, on_progress
        self.poll_seconds, self.timeout = float(poll_seconds), min(float(timeout), 10.0)
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self._last = None

    def __enter__(self):
        if self.on_progress is not None:
            self._thread = threading.Thread(target=self._poll, name="erlrestore-client-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type, *exc_info):
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join(self.timeout)
        if exc_type is None:
            self._check()

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            self._check()

    def _check(self):
        try:
            snapshot = progress_rest(self.server, self.request_id, timeout=self.timeout)
        except ServingClientError:
            return
        if snapshot is None:
            return
        key = (snapshot.get("state"), snapshot.get("tiles_done"), snapshot.get("tiles_total"))
        with self._lock:
            if key == self._last:
                return
            self._last = key
            self.on_progress(snapshot)


# --------------------------------------------------------------------------
# gRPC.
# --------------------------------------------------------------------------


def require_grpc():
    """Imports grpcio and tensorflow-serving-api; ImportError saying what to install when either is missing."""
    try:
        # pylint: disable=import-outside-toplevel,unused-import
        import grpc  # noqa: F401
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"gRPC needs the grpcio and tensorflow-serving-api packages (pip install tensorflow-serving-api): {error}"
        ) from error


def grpc_channel(target, max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
    """An insecure gRPC channel to ``host:port`` with send/receive limits raised to ``max_message_bytes``."""
    require_grpc()
    import grpc  # pylint: disable=import-outside-toplevel

    options = [
        ("grpc.max_send_message_length", int(max_message_bytes)),
        ("grpc.max_receive_message_length", int(max_message_bytes)),
    ]
    return grpc.insecure_channel(target, options=options)


def predict_grpc(target, model_name, inputs, version=None, signature_name="serving_default", timeout=60.0,
                 max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
    """Calls ``PredictionService.Predict``; returns ``{output name: NumPy array}``.

    ``target`` is ``host:port`` or an open ``grpc.Channel`` (reuse one for
    many calls); ``inputs`` maps input names to arrays (``np.array([b"..."],
    dtype=object)`` for strings). Needs ``tensorflow-serving-api``.

    Raises:
      ServingClientError with the gRPC status code's name (``NOT_FOUND``,
      ``INVALID_ARGUMENT``, ``UNAVAILABLE``...) and the server's message.
      ImportError naming the missing package.
    """
    require_grpc()
    import grpc  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import (  # pylint: disable=import-outside-toplevel
        predict_pb2,
        prediction_service_pb2_grpc,
    )
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for key, value in inputs.items():
        request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
    own_channel = isinstance(target, str)
    channel = grpc_channel(target, max_message_bytes) if own_channel else target
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(request, timeout=timeout)
    except grpc.RpcError as error:
        raise ServingClientError(error.code().name, error.details()) from None
    finally:
        if own_channel:
            channel.close()
    return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}


def restore_bytes_grpc(target, model_name, image_bytes, version=None, signature_name=RESTORE_SIGNATURE, timeout=60.0,
                       max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
    """Sends one encoded image to the ``restore_bytes`` signature over gRPC; returns the PNG bytes it answers."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    outputs = predict_grpc(
        target, model_name, {INPUT_KEY: np.array([image_bytes], dtype=object)}, version=version,
        signature_name=signature_name, timeout=timeout, max_message_bytes=max_message_bytes,
    )
    try:
        return bytes(outputs[OUTPUT_KEY].reshape(-1)[0])
    except (KeyError, IndexError) as error:
        raise ServingClientError(None, f"unexpected answer from the server (no {OUTPUT_KEY}[0]): {error!r}") from None


def restore_file_grpc(target, model_name, input_path, output_path, version=None, timeout=60.0,
                      max_message_bytes=DEFAULT_MAX_MESSAGE_BYTES):
    """Restores the image file ``input_path`` over gRPC and writes the answered PNG to ``output_path``; returns it."""
    return _restore_file(
        lambda data: restore_bytes_grpc(target, model_name, data, version=version, timeout=timeout,
                                        max_message_bytes=max_message_bytes),
        input_path, output_path,
    )


# --------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------


def _read_sendable(path):
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in SENDABLE_EXTENSIONS:
        raise image_files.DataError(
            f"{path}: the restore_bytes signature decodes PNG, JPEG and BMP only; convert this file first"
        )
    if not os.path.isfile(path):
        raise image_files.DataError(f"image file {path} does not exist")
    with open(path, "rb") as handle:
        data = handle.read()
    if not data:
        raise image_files.DataError(f"{path} is empty (0 bytes)")
    return data


def _restore_file(restore_bytes, input_path, output_path):
    if os.path.exists(output_path) and os.path.samefile(input_path, output_path):
        raise image_files.DataError(f"refusing to overwrite the input {input_path} with its restored image")
    png = restore_bytes(_read_sendable(input_path))
    if not png.startswith(_PNG_SIGNATURE):
        raise ServingClientError(None, f"the server's answer for {input_path} is not a PNG")
    image_files.write_bytes_atomically(os.fspath(output_path), png)
    return output_path


def find_inputs(path):
    """The image files to send: ``[path]`` for a file, the images directly inside a folder (sorted)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return image_files.list_images(path)
    if not os.path.isfile(path):
        raise image_files.DataError(f"input {path} does not exist")
    return [path]


def restore_files(inputs, output_dir, restore_file, show_progress=True, overwrite=False, track_tiles=False):
    """Restores each input with ``restore_file(input_path, output_path)``; returns ``(written, failures)``.

    Outputs are ``<output_dir>/<input stem>.png`` under ``erlrestore.outputs``' policy.
    ``failures`` is a list of ``(input_path, message)``; a failing file does
    not stop the others. Raises DataError (before sending anything) when the
    output folder holds an input, two inputs share a stem, or (without
    ``overwrite``) outputs exist already.

    ``track_tiles`` (with ``show_progress``): ``restore_file`` also takes
    ``on_progress`` (as :func:`restore_file_rest`) and the bar counts the
    tiles the server reports, with an ETA, instead of files: each file
    counts 1 until the server says how many tiles it has.
    """
    targets = outputs.output_paths(inputs, output_dir, extension=".png", overwrite=overwrite)
    errors = (image_files.DataError, ServingClientError, OSError)
    if not (show_progress and track_tiles):
        return outputs.collect_failures(zip(inputs, targets), restore_file, errors=errors, shown_as_is=errors,
                                        show_progress=show_progress, desc="restore")
    order = {source: index for index, source in enumerate(inputs, 1)}
    with Progress(len(inputs), desc="restore", min_items=1) as bar:
        def restore_one(source, target):
            with bar.part(1, note=f"image {order[source]}/{len(inputs)}") as part:
                def on_progress(snapshot):
                    if snapshot.get("tiles_total"):
                        bar.unit = "tiles"  # the server reports them (TF Serving does not: one unit per file)
                        part.resize(snapshot["tiles_total"])
                    if snapshot.get("tiles_done", 0) > part.done:
                        part(snapshot["tiles_done"] - part.done)
                return restore_file(source, target, on_progress=on_progress)

        return outputs.collect_failures(zip(inputs, targets), restore_one, errors=errors, shown_as_is=errors,
                                        show_progress=False, desc="restore")


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_string("server", None, "REST address of the server, e.g. http://127.0.0.1:8501.")
    flags.DEFINE_string("grpc", None, "gRPC address of the server, e.g. 127.0.0.1:8500 (instead of --server).")
    flags.DEFINE_string("model_name", None, "Name of the served model.")
    flags.DEFINE_integer("version", None, "Model version (default: the server's default, the largest).", lower_bound=0)
    flags.DEFINE_string("input", None, "An image file, or a folder of images (not recursive).")
    from erlrestore.cli import option_groups  # the shared --output_dir / --overwrite (no TensorFlow import)

    option_groups.define_output_flags(option_groups.NAMED_AS_STEM_PNG, required=True)
    flags.DEFINE_float("timeout", 600.0, "Seconds to wait for each answer (a large photo restored tile by tile on "
                       "a CPU can take minutes).", lower_bound=0.1)
    flags.DEFINE_integer("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, "gRPC send/receive message limit.",
                         lower_bound=1)
    flags.mark_flags_as_required(["model_name", "input"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if bool(FLAGS.server) == bool(FLAGS.grpc):
        raise app.UsageError("give exactly one of --server (REST) and --grpc")
    try:
        inputs = find_inputs(FLAGS.input)
        if FLAGS.server:
            def restore_file(input_path, output_path, on_progress=None):
                return restore_file_rest(FLAGS.server, FLAGS.model_name, input_path, output_path,
                                         version=FLAGS.version, timeout=FLAGS.timeout, on_progress=on_progress)
            channel = None
        else:
            try:
                channel = grpc_channel(FLAGS.grpc, FLAGS.max_message_bytes)
            except ImportError as error:
                raise app.UsageError(str(error)) from None

            def restore_file(input_path, output_path):
                return restore_file_grpc(channel, FLAGS.model_name, input_path, output_path,
                                         version=FLAGS.version, timeout=FLAGS.timeout)
        try:
            # Over REST, erlrestore-serve reports the tiles of each image as they are restored.
            written, failures = restore_files(inputs, FLAGS.output_dir, restore_file, overwrite=FLAGS.overwrite,
                                              track_tiles=bool(FLAGS.server))
        finally:
            if channel is not None:
                channel.close()
    except image_files.DataError as error:
        entry.report_error(error)
        return 1
    print(f"restored {len(written)} of {len(inputs)} image(s) into {FLAGS.output_dir}")
    if failures:
        print(f"{len(failures)} image(s) failed:", file=sys.stderr)
        for path, message in failures:
            print(f"  {path}: {message}", file=sys.stderr)
        return 1
    return 0


def run():
    define_flags()
    # absl's --help lists the main module's flags; a console script's main module is its wrapper.
    for flag in FLAGS.get_flags_for_module(__name__):
        FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    entry.run(main)  # -h, one-line usage errors, as every erlrestore tool


if __name__ == "__main__":
    run()
