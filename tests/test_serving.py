"""Tests of erlrestore.serving (TF-Serving-style REST server), its CLI and tools/serving_client.py."""

import base64
import http.client
import importlib.util
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib

import cv2
import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from erlrestore import serving
from erlrestore.cli import serve as serve_cli
from erlrestore.data import io
from erlrestore.export import export_savedmodel
from erlrestore.models import memd

REPO = pathlib.Path(__file__).resolve().parent.parent
MAX_REQUEST_BYTES = 256 * 1024


def _load_client():
    spec = importlib.util.spec_from_file_location("serving_client", REPO / "tools" / "serving_client.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


client = _load_client()


# --------------------------------------------------------------------------
# Fixtures: two versions of a tiny MEMD exported as SavedModels, and a server.
# --------------------------------------------------------------------------


def _tiny_memd(seed):
    model = memd.build_memd(memd.memd_config("MEMD", depth=2, base_filters=4, dense_layers=2, growth_rate=4))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """``(base, {version: keras model})`` with savedmodels ``base/memd/1`` and ``base/memd/2``."""
    base = tmp_path_factory.mktemp("savedmodels")
    keras_models = {1: _tiny_memd(1), 2: _tiny_memd(2)}
    for version in (1, 2):
        assert export_savedmodel(keras_models[version], str(base), "memd") == str(base / "memd" / str(version))
    assert sorted(os.listdir(base / "memd")) == ["1", "2"]
    return base, keras_models


@pytest.fixture(scope="module")
def repository(models):
    return serving.load_models(models[0])


def _start(repository, **options):
    server = serving.RestServer(repository, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def _stop(server, thread):
    server.shutdown()
    server.close()
    thread.join(10)


@pytest.fixture(scope="module")
def server(repository):
    server, thread = _start(repository, max_request_bytes=MAX_REQUEST_BYTES, request_timeout=5.0)
    yield server
    _stop(server, thread)


def _url(server):
    return f"http://127.0.0.1:{server.server_port}"


def _call(server, method, path, body=None, headers=None):
    """``(status, parsed JSON body)`` of one request; ``body`` a dict/list (sent as JSON), str or bytes."""
    if body is not None and not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.getheader("Content-Type") == "application/json"
    return response.status, json.loads(data)


def _images(seed, shape=(2, 12, 8, 3)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _expected(model, images):
    return np.clip(np.asarray(model(images, training=False)), 0.0, 1.0)


def _assert_valid_predict_works(server, model):
    x = _images(99, (1, 4, 4, 3))
    status, answer = _call(server, "POST", "/v1/models/memd:predict", {"inputs": x.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(np.array(answer["outputs"]), _expected(model, x), atol=1e-5)


# --------------------------------------------------------------------------
# Status and metadata.
# --------------------------------------------------------------------------


def _status_entry(version):
    return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def test_status_lists_every_version_newest_first(server):
    assert _call(server, "GET", "/v1/models/memd") == (
        200, {"model_version_status": [_status_entry("2"), _status_entry("1")]}
    )
    assert _call(server, "GET", "/v1/models/memd/versions/1") == (
        200, {"model_version_status": [_status_entry("1")]}
    )


def _dims(tensor_info):
    return [int(d["size"]) for d in tensor_info["tensor_shape"]["dim"]]


@pytest.mark.parametrize("path, version", [("/v1/models/memd/metadata", "2"),
                                           ("/v1/models/memd/versions/1/metadata", "1")])
def test_metadata_describes_both_signatures(server, path, version):
    status, answer = _call(server, "GET", path)
    assert status == 200
    assert answer["model_spec"] == {"name": "memd", "signature_name": "", "version": version}
    signatures = answer["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "restore_bytes"} <= set(signatures)
    default = signatures["serving_default"]
    assert set(default["inputs"]) == {"images"} and set(default["outputs"]) == {"restored"}
    assert default["inputs"]["images"]["dtype"] == "DT_FLOAT"
    assert _dims(default["inputs"]["images"]) == [-1, -1, -1, 3]
    assert _dims(default["outputs"]["restored"]) == [-1, -1, -1, 3]
    assert default["method_name"] == "tensorflow/serving/predict"
    as_bytes = signatures["restore_bytes"]
    assert as_bytes["inputs"]["image_bytes"]["dtype"] == "DT_STRING"
    assert _dims(as_bytes["inputs"]["image_bytes"]) == [-1]
    assert as_bytes["outputs"]["restored_bytes"]["dtype"] == "DT_STRING"
    assert "__saved_model_init_op" not in signatures


# --------------------------------------------------------------------------
# Predict.
# --------------------------------------------------------------------------


def test_row_format_predict_equals_the_model(server, models):
    x = _images(0)
    expected = _expected(models[1][2], x)
    assert np.abs(expected - x).max() > 0.01  # a non-trivial model
    for instances in (x.tolist(), [{"images": image.tolist()} for image in x]):
        status, answer = _call(server, "POST", "/v1/models/memd:predict",
                               {"signature_name": "serving_default", "instances": instances})
        assert status == 200, answer
        assert set(answer) == {"predictions"}
        predictions = np.array(answer["predictions"], dtype=np.float32)
        assert predictions.shape == x.shape
        assert np.abs(predictions - expected).max() < 1e-5


def test_columnar_format_predict_equals_the_model(server, models):
    x = _images(1, (1, 8, 12, 3))
    expected = _expected(models[1][2], x)
    for inputs in (x.tolist(), {"images": x.tolist()}):
        status, answer = _call(server, "POST", "/v1/models/memd:predict", {"inputs": inputs})
        assert status == 200, answer
        assert set(answer) == {"outputs"}
        assert np.abs(np.array(answer["outputs"], dtype=np.float32) - expected).max() < 1e-5


def test_version_selection(server, models):
    x = _images(2, (1, 8, 8, 3))
    answers = {}
    for path in ("/v1/models/memd:predict", "/v1/models/memd/versions/1:predict", "/v1/models/memd/versions/2:predict"):
        status, answer = _call(server, "POST", path, {"instances": x.tolist()})
        assert status == 200, answer
        answers[path] = np.array(answer["predictions"], dtype=np.float32)
    assert np.abs(answers["/v1/models/memd/versions/1:predict"] - _expected(models[1][1], x)).max() < 1e-5
    assert np.abs(answers["/v1/models/memd:predict"] - _expected(models[1][2], x)).max() < 1e-5
    np.testing.assert_array_equal(answers["/v1/models/memd:predict"], answers["/v1/models/memd/versions/2:predict"])
    assert np.abs(answers["/v1/models/memd/versions/1:predict"] - answers["/v1/models/memd:predict"]).max() > 1e-3


def _png_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def _direct_restore_bytes(models, version, data):
    loaded = tf.saved_model.load(str(models[0] / "memd" / str(version)))
    return loaded.signatures["restore_bytes"](image_bytes=tf.constant([data]))["restored_bytes"].numpy()[0]


def test_b64_round_trip_through_the_client(server, models, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    shapes = {"a.png": (12, 8, 3), "b.png": (16, 20, 3)}
    for i, (name, shape) in enumerate(shapes.items()):
        io.write_image(in_dir / name, np.random.default_rng(10 + i).random(shape))
    inputs = client.find_inputs(in_dir)

    def restore_file(input_path, output_path):
        return client.restore_file_rest(_url(server), "memd", input_path, output_path)

    written, failures = client.restore_files(inputs, out_dir, restore_file, show_progress=False)
    assert failures == []
    assert written == [str(out_dir / "a.png"), str(out_dir / "b.png")]
    for name, shape in shapes.items():
        sent = _png_bytes(in_dir / name)
        received = _png_bytes(out_dir / name)
        assert received == _direct_restore_bytes(models, 2, sent)  # exactly what the signature returns
        restored = io.read_image(out_dir / name)
        assert restored.shape == shape
        expected = _expected(models[1][2], io.read_image(in_dir / name)[np.newaxis])[0]
        assert np.abs(restored - expected).max() <= 1 / 255 + 1e-6
    # The raw REST answer: predictions[0] is {"b64": ...} because the output name ends in _bytes.
    answer = client.predict_rest(_url(server), "memd", {
        "signature_name": "restore_bytes", "instances": [{"b64": base64.b64encode(sent).decode()}]})
    assert list(answer["predictions"][0]) == ["b64"]
    assert base64.b64decode(answer["predictions"][0]["b64"]) == received
    version_1 = client.restore_bytes_rest(_url(server), "memd", sent, version=1)
    assert version_1 == _direct_restore_bytes(models, 1, sent) != received


def test_client_lists_failures_and_never_overwrites_inputs(server, models, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    io.write_image(in_dir / "good.png", np.random.default_rng(3).random((8, 8, 3)))
    (in_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)
    inputs = client.find_inputs(in_dir)

    def restore_file(input_path, output_path):
        return client.restore_file_rest(_url(server), "memd", input_path, output_path)

    written, failures = client.restore_files(inputs, out_dir, restore_file, show_progress=False)
    assert written == [str(out_dir / "good.png")]
    assert [path for path, _ in failures] == [str(in_dir / "broken.png")]
    assert failures[0][1] == "400: the model rejected the input: Invalid PNG. Failed to initialize decoder."
    assert not (out_dir / "broken.png").exists()
    with pytest.raises(io.DataError, match="holds the input .*broken.png"):
        client.restore_files(inputs, in_dir, restore_file, show_progress=False)
    before = _png_bytes(in_dir / "good.png")
    # The command line: exit status 1 and the failure named on stderr (REST needs no TensorFlow).
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "serving_client.py"), f"--server={_url(server)}",
         "--model_name=memd", f"--input={in_dir}", f"--output_dir={tmp_path / 'cli_out'}"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1, result.stderr
    assert "restored 1 of 2 image(s)" in result.stdout
    assert re.search(r"1 image\(s\) failed:\n  .*broken.png: 400: ", result.stderr)
    assert (tmp_path / "cli_out" / "good.png").is_file()
    assert _png_bytes(in_dir / "good.png") == before
    with pytest.raises(client.ServingClientError, match="^404: model 'nope' is not served here"):
        client.restore_file_rest(_url(server), "nope", in_dir / "good.png", tmp_path / "x.png")


# --------------------------------------------------------------------------
# Bad requests: the right 4xx, a JSON error, and the server keeps serving.
# --------------------------------------------------------------------------

_PREDICT = "/v1/models/memd:predict"
_GOOD_IMAGE = [[[0.5, 0.5, 0.5]] * 4] * 4
_BAD_REQUESTS = [
    ("POST", _PREDICT, '{"instances": [1, 2', 400, r"^JSON parse error: "),
    ("POST", _PREDICT, b'{"instances": "\xff\xfe"}', 400, r"not UTF-8"),
    ("POST", _PREDICT, "", 400, r"body is empty"),
    ("POST", _PREDICT, [1, 2], 400, r"must be a JSON object, got a list"),
    ("POST", _PREDICT, {"signature_name": "serving_default"}, 400, r"neither 'instances'.* nor 'inputs'"),
    ("POST", _PREDICT, {"instances": [_GOOD_IMAGE], "inputs": [_GOOD_IMAGE]}, 400, r"both 'instances'"),
    ("POST", _PREDICT, {"instances": []}, 400, r"'instances' is an empty list"),
    ("POST", _PREDICT, {"instances": {"images": _GOOD_IMAGE}}, 400, r"'instances' must be a list, got an object"),
    ("POST", _PREDICT, {"instances": [[[0.5, 0.5]] * 4]}, 400,
     r"input 'images' has shape \[1, 4, 2\] but signature 'serving_default' expects \[\?, \?, \?, 3\]"),
    ("POST", _PREDICT, {"inputs": [[["a", "b", "c"]]]}, 400, r"expected numbers for a float32 input, got strings"),
    ("POST", _PREDICT, {"inputs": [[[0.5, 0.5, None]]]}, 400, r"expected numbers .* got objects, nulls"),
    ("POST", _PREDICT, {"inputs": [[[[0.5, 0.5, 0.5]], [[0.5, 0.5]]]]}, 400, r"not a dense \(rectangular\) array"),
    ("POST", _PREDICT, {"inputs": [[[1e300, 0.5, 0.5]]]}, 400, r"does not fit in float32"),
    ("POST", _PREDICT, {"instances": [{"images": _GOOD_IMAGE, "extra": 1}]}, 400,
     r"instance 0 has keys \['extra', 'images'\]; signature 'serving_default' needs exactly \['images'\]"),
    ("POST", _PREDICT, {"instances": [{"images": _GOOD_IMAGE}, _GOOD_IMAGE]}, 400,
     r"instance 1 is a list; expected an object"),
    ("POST", _PREDICT, {"inputs": {"pictures": [_GOOD_IMAGE]}}, 400, r"'inputs' has keys \['pictures'\]"),
    ("POST", _PREDICT, {"signature_name": 7, "inputs": [_GOOD_IMAGE]}, 400, r"'signature_name' must be a string"),
    ("POST", _PREDICT, {"signature_name": "nope", "inputs": [_GOOD_IMAGE]}, 400,
     r"serving signature name 'nope' not found in model 'memd' version 2"),
    ("POST", _PREDICT, {"signature_name": "restore_bytes", "instances": [{"b64": "not base64!"}]}, 400,
     r"could not decode base64 data"),
    ("POST", _PREDICT, {"signature_name": "restore_bytes", "instances": [{"b64": "aGVsbG8="}]}, 400,
     r"^the model rejected the input: .*image"),
    ("POST", _PREDICT, {"signature_name": "restore_bytes", "instances": [0.5]}, 400,
     r"expected strings or \{\"b64\": \.\.\.\} objects for a string input, got a number"),
    ("POST", _PREDICT, {"signature_name": "restore_bytes", "inputs": [[{"b64": "aGVsbG8="}]]}, 400,
     r"input 'image_bytes' has shape \[1, 1\] but signature 'restore_bytes' expects \[\?\]"),
    ("POST", "/v1/models/nope:predict", {"inputs": [_GOOD_IMAGE]}, 404, r"model 'nope' is not served here"),
    ("POST", "/v1/models/memd/versions/3:predict", {"inputs": [_GOOD_IMAGE]}, 404,
     r"model 'memd' has no version 3 \(versions: 1, 2\)"),
    ("GET", "/v1/models/nope", None, 404, r"model 'nope' is not served here"),
    ("GET", "/v1/models/memd/versions/9/metadata", None, 404, r"no version 9"),
    ("GET", "/v1/models/memd/versions/x", None, 404, r"unknown path"),
    ("GET", "/v1/models/memd/labels/stable", None, 404, r"labels are not supported"),
    ("POST", "/v1/models/memd:classify", {"examples": []}, 404, r"':classify' is not supported"),
    ("GET", "/v2/anything", None, 404, r"^unknown path '/v2/anything'"),
    ("GET", "/../../etc/passwd", None, 404, r"unknown path"),
    ("GET", _PREDICT, None, 405, r"method GET is not allowed here \(use POST\)"),
    ("POST", "/v1/models/memd", {}, 405, r"method POST is not allowed here \(use GET\)"),
    ("DELETE", "/v1/models/memd", None, 405, r"method DELETE is not allowed"),
    ("BREW", "/v1/models/memd", None, 405, r"method BREW is not allowed"),
]


@pytest.mark.parametrize("method, path, body, status, message", _BAD_REQUESTS,
                         ids=[f"{i}-{r[3]}" for i, r in enumerate(_BAD_REQUESTS)])
def test_bad_request_gets_a_json_error_and_the_server_keeps_serving(server, models, method, path, body, status,
                                                                    message):
    got_status, answer = _call(server, method, path, body)
    assert got_status == status, answer
    assert list(answer) == ["error"]
    assert re.search(message, answer["error"]), answer["error"]
    _assert_valid_predict_works(server, models[1][2])


def _raw_exchange(server, data, read_timeout=10.0):
    """Sends raw bytes, returns the parsed response (status, headers, JSON)."""
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=read_timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response, json.loads(response.read())


def test_oversized_body_is_refused_from_its_content_length(server, models):
    # Only the headers are sent: the 413 must come without the server waiting for the body.
    started = time.monotonic()
    status, _, answer = _raw_exchange(
        server, f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_REQUEST_BYTES + 1}\r\n\r\n".encode())
    assert status == 413
    assert answer == {"error": f"the request body of {MAX_REQUEST_BYTES + 1} bytes is larger than the limit of "
                               f"{MAX_REQUEST_BYTES} bytes"}
    assert time.monotonic() - started < 4.0
    # Expect: 100-continue gets the 413 instead of the 100.
    status, _, answer = _raw_exchange(
        server, f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                f"Content-Length: {10 * MAX_REQUEST_BYTES}\r\n\r\n".encode())
    assert status == 413 and "larger than the limit" in answer["error"]
    # A client that sends the whole body anyway still reads the 413.
    big = {"inputs": [[[0.123456789] * 3] * 100] * 200}
    with pytest.raises(client.ServingClientError, match="^413: the request body of .* bytes is larger"):
        client.predict_rest(_url(server), "memd", big)
    _assert_valid_predict_works(server, models[1][2])


@pytest.mark.parametrize("head, status, message", [
    (f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\n\r\n", 411, "Content-Length header is required"),
    (f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "chunked"),
    (f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "invalid Content-Length"),
    (f"GET /v1/models/memd HTTP/1.1 extra\r\n\r\n", 400, "Bad request"),
])
def test_broken_http_requests(server, models, head, status, message):
    got, _, answer = _raw_exchange(server, head.encode())
    assert got == status and message in answer["error"]
    _assert_valid_predict_works(server, models[1][2])


def test_body_shorter_than_content_length(server, models):
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        sock.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"inputs\"".encode())
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        assert json.loads(response.read()) == {"error": "the request body ended after 9 of 100 bytes"}


def test_slow_body_times_out_with_408(repository):
    server, thread = _start(repository, request_timeout=0.3)
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 408
            assert "not received within 0.3 s" in json.loads(response.read())["error"]
    finally:
        _stop(server, thread)


def test_shutdown_finishes_requests_in_flight_and_drops_idle_connections(repository, models):
    server, thread = _start(repository, request_timeout=30.0)
    x = _images(5, (1, 4, 4, 3))
    body = json.dumps({"inputs": x.tolist()}).encode()
    idle = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
    busy = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
    try:
        busy.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(0.3)  # both connections accepted; the busy one is reading its body
        stopper = threading.Thread(target=lambda: (server.shutdown(), server.close()))
        stopper.start()
        time.sleep(0.5)
        assert stopper.is_alive()  # waiting for the request in flight (not for the idle connection's 30 s)
        busy.sendall(body[10:])
        response = http.client.HTTPResponse(busy)
        response.begin()
        assert response.status == 200
        outputs = np.array(json.loads(response.read())["outputs"], dtype=np.float32)
        assert np.abs(outputs - _expected(models[1][2], x)).max() < 1e-5
        stopper.join(5)
        assert not stopper.is_alive()
        try:
            assert idle.recv(100) == b""  # closed without an answer
        except ConnectionResetError:
            pass
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.server_port), timeout=2).close()
    finally:
        idle.close()
        busy.close()
        thread.join(10)


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the server")
        time.sleep(0.01)


def test_close_gives_up_after_the_drain_timeout(repository):
    server, thread = _start(repository, request_timeout=30.0)
    stuck = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
    try:
        # A request whose body never comes: in flight until the 30 s request timeout.
        stuck.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
        _wait_for(lambda: server.open_connections() == 1)
        time.sleep(0.2)
        server.shutdown()
        started = time.monotonic()
        assert server.close(drain_timeout=0.5) == 1
        assert 0.4 < time.monotonic() - started < 3.0
    finally:
        stuck.close()
        thread.join(10)
    _wait_for(lambda: server.open_connections() == 0)  # its thread ends once the client is gone


# --------------------------------------------------------------------------
# Limits: concurrent predictions, connections, paths and declared image sizes.
# --------------------------------------------------------------------------


class _BlockingRepository:
    """Stands in for a ModelRepository whose predictions wait for ``release``."""

    def __init__(self):
        self.release = threading.Event()
        self.started = threading.Semaphore(0)

    def get(self, name, version=None):
        return None

    def metadata(self, name, version=None):
        return {"model_spec": {"name": name}}

    def predict_json(self, name, version, body):
        self.started.release()
        assert self.release.wait(30)
        return {"outputs": json.loads(body)["inputs"]}


def _raw_post(server, body):
    data = json.dumps(body).encode()
    return _raw_exchange(server, f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n\r\n"
                                 .encode() + data, read_timeout=30.0)


def test_predictions_beyond_the_queue_get_503_and_the_server_recovers():
    repository = _BlockingRepository()
    server, thread = _start(repository, max_concurrent=1, max_queue=1, queue_timeout=2.0)
    results = {}

    def send(key):
        results[key] = _raw_post(server, {"inputs": [key]})

    try:
        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert repository.started.acquire(timeout=10)  # running
        second = threading.Thread(target=send, args=("second",))
        second.start()
        _wait_for(lambda: server.limiter.counts() == (2, 1))  # waiting for the one slot
        status, response, answer = _raw_post(server, {"inputs": ["third"]})
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert re.fullmatch(r"the server is busy \(1 predictions running and 1 waiting, the most it takes\); "
                            r"retry later", answer["error"]), answer
        second.join(10)
        status, response, answer = results["second"]
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert answer == {"error": "the server is busy: no prediction slot of 1 came free within 2 s; retry later"}
        assert first.is_alive()
        repository.release.set()
        first.join(10)
        assert results["first"][0] == 200 and results["first"][2] == {"outputs": ["first"]}
        assert server.limiter.counts() == (0, 0) and server.limiter.refused == 2
        assert _raw_post(server, {"inputs": ["again"]})[::2] == (200, {"outputs": ["again"]})
        # Status and metadata requests are not queued behind predictions.
        repository.release.clear()
        blocked = threading.Thread(target=send, args=("blocked",))
        blocked.start()
        assert repository.started.acquire(timeout=10)
        assert _call(server, "GET", "/v1/models/x/metadata") == (200, {"model_spec": {"name": "x"}})
    finally:
        repository.release.set()
        _stop(server, thread)


def test_connections_beyond_the_limit_get_503_without_a_thread(repository, models):
    server, thread = _start(repository, max_connections=2, request_timeout=30.0)
    held = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(2)]
    try:
        _wait_for(lambda: server.open_connections() == 2)
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as extra:
            response = http.client.HTTPResponse(extra)
            response.begin()
            assert response.status == 503 and response.getheader("Retry-After") == "1"
            assert json.loads(response.read()) == {
                "error": "the server is busy: 2 connections are open, the most it takes; retry later"}
        assert server.refused_connections == 1 and server.open_connections() == 2
        for sock in held:
            sock.close()
        _wait_for(lambda: server.open_connections() == 0)
        _assert_valid_predict_works(server, models[1][2])
    finally:
        for sock in held:
            sock.close()
        _stop(server, thread)


_LONG_DIGITS = "9" * 5000
_UNSAFE_PATHS = [
    ("POST", "/v1/models/..%2F..%2Fetc:predict", 400, r"model name '\.\./\.\./etc' is not a folder name"),
    ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", 400, r"is not a folder name"),
    ("GET", "/v1/models/%2Fetc%2Fpasswd/metadata", 400, r"model name '/etc/passwd' is not a folder name"),
    ("GET", "/v1/models/..", 400, r"model name '\.\.' is not a folder name"),
    ("GET", "/v1/models/%2E", 400, r"model name '\.' is not a folder name"),
    ("GET", "/v1/models/..%5C..%5Cwindows", 400, r"is not a folder name"),
    ("GET", "/v1/models/memd%00", 400, r"model name 'memd\\x00' is not a folder name"),
    ("GET", "/v1/models/memd%0A", 400, r"is not a folder name"),
    ("GET", "/v1/models/%ff%fe", 400, r"is not valid percent-encoded UTF-8"),
    ("GET", "/v1/models/" + "a" * 300, 400, r"model name of 300 characters is longer than 255"),
    ("GET", "/v1/models/memd/versions/" + _LONG_DIGITS, 400, r"version 9{30}\.\.\. has more than 18 digits"),
    ("POST", "/v1/models/memd/versions/" + _LONG_DIGITS + ":predict", 400, r"has more than 18 digits"),
    ("GET", "/v1/models/memd/versions/../..", 404, r"unknown path"),
    ("GET", "/v1/models/memd/versions/1/../../../../etc/passwd", 404, r"unknown path"),
    ("GET", "/v1/models//etc/passwd", 404, r"unknown path"),
    ("GET", "//etc/passwd", 404, r"unknown path '/etc/passwd'"),  # http.server folds the leading //
    ("GET", "/v1/models/%2E%2E%2F%2E%2E%2Fsavedmodels%2Fmemd", 400, r"is not a folder name"),
    ("GET", "/v1/models/memd%2F1", 400, r"model name 'memd/1' is not a folder name"),
]


@pytest.mark.parametrize("method, path, status, message", _UNSAFE_PATHS,
                         ids=[f"{i}-{r[2]}" for i, r in enumerate(_UNSAFE_PATHS)])
def test_paths_cannot_escape_the_model_folder(server, models, method, path, status, message):
    body = {"inputs": [_GOOD_IMAGE]} if method == "POST" else None
    got, answer = _call(server, method, path, body)
    assert got == status, answer
    assert list(answer) == ["error"] and re.search(message, answer["error"]), answer["error"]
    _assert_valid_predict_works(server, models[1][2])


def test_raw_nul_and_absolute_form_request_targets(server):
    status, _, answer = _raw_exchange(server, b"GET /v1/models/memd\x00/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and "unknown path" in answer["error"]
    status, _, answer = _raw_exchange(server, b"GET /v1/models/me\x00md HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and "is not a folder name" in answer["error"]
    target = f"http://127.0.0.1:{server.server_port}/v1/models/memd/versions/1"
    status, _, answer = _raw_exchange(server, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, answer) == (200, {"model_version_status": [_status_entry("1")]})


def _png_header(width, height):
    """A PNG signature, IHDR and an empty IDAT: declares ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _jpeg_header(width, height, frame_marker=0xC0):
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = (bytes([0xFF, frame_marker]) + (17).to_bytes(2, "big") + b"\x08" + height.to_bytes(2, "big")
             + width.to_bytes(2, "big") + b"\x03" + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    return b"\xff\xd8" + app0 + b"\xff\xff" + frame + b"\xff\xd9"


def _encoded(image, extension, **options):
    if extension in (".gif", ".webp-pil"):
        pil = pytest.importorskip("PIL.Image")
        buffer = __import__("io").BytesIO()
        pil.fromarray(image).save(buffer, format="GIF" if extension == ".gif" else "WEBP", **options)
        return buffer.getvalue()
    ok, data = cv2.imencode(extension, image[..., ::-1])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("kind", ["png", "jpeg", "jpeg-progressive", "bmp", "gif", "webp-lossy", "webp-lossless",
                                  "webp-pil"])
def test_image_dimensions_reads_the_header_of_each_format(kind):
    image = (np.random.default_rng(0).random((13, 21, 3)) * 255).astype(np.uint8)
    if kind == "png":
        data = tf.io.encode_png(image).numpy()
    elif kind == "jpeg":
        data = tf.io.encode_jpeg(image).numpy()
    elif kind == "jpeg-progressive":
        data = tf.io.encode_jpeg(image, progressive=True).numpy()
    elif kind == "bmp":
        data = _encoded(image, ".bmp")
    elif kind == "gif":
        data = _encoded(image, ".gif")
    elif kind == "webp-lossy":
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 80])
        data = data.tobytes()
    elif kind == "webp-lossless":
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
        data = data.tobytes()
    else:
        data = _encoded(image, ".webp-pil", lossless=False, exif=b"Exif\x00\x00")  # VP8X
    assert serving.image_dimensions(data) == (21, 13)
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
    assert tuple(decoded.shape[:2]) == (13, 21)  # what TensorFlow would allocate


def test_image_dimensions_of_crafted_and_broken_headers():
    assert serving.image_dimensions(_png_header(100_000, 70_000)) == (100_000, 70_000)
    assert serving.image_dimensions(_jpeg_header(65_000, 65_000)) == (65_000, 65_000)
    assert serving.image_dimensions(_jpeg_header(300, 200, frame_marker=0xC2)) == (300, 200)
    assert serving.image_dimensions(b"GIF89a" + (40_000).to_bytes(2, "little") + (9).to_bytes(2, "little")) == (
        40_000, 9)
    bmp = b"BM" + bytes(12) + (40).to_bytes(4, "little") + (5).to_bytes(4, "little", signed=True) + (
        -7).to_bytes(4, "little", signed=True)
    assert serving.image_dimensions(bmp) == (5, 7)
    for data in (b"", b"hello", b"\x89PNG\r\n\x1a\n\x00", b"\xff\xd8\xff", b"\xff\xd8" + b"\xff\xda\x00\x02",
                 b"\xff\xd8\xff\xe0\x00\x00", b"GIF89a\x01", b"BM\x00", b"RIFF\x00\x00\x00\x00WEBPVP8Z"):
        assert serving.image_dimensions(data) is None, data


def _restore_bytes_body(*images):
    return {"signature_name": "restore_bytes", "instances": [{"b64": base64.b64encode(i).decode()} for i in images]}


def test_images_declaring_too_many_pixels_are_refused_before_decoding(server, repository, models, monkeypatch):
    for bomb, size in ((_png_header(100_000, 100_000), "100000x100000"), (_jpeg_header(60_000, 50_000),
                                                                           "60000x50000")):
        status, answer = _call(server, "POST", _PREDICT, _restore_bytes_body(bomb))
        assert status == 413, answer
        assert answer["error"].startswith(f"input 'image_bytes': image 0 declares {size} = ")
        assert "more than the limit of 100000000 (--max_image_pixels)" in answer["error"]
    small = tf.io.encode_png((_images(4, (16, 16, 3)) * 255).astype(np.uint8)).numpy()
    monkeypatch.setattr(repository, "max_image_pixels", 300)
    status, answer = _call(server, "POST", _PREDICT, _restore_bytes_body(small))
    assert status == 200, answer  # 256 pixels
    status, answer = _call(server, "POST", _PREDICT, _restore_bytes_body(small, small))
    assert status == 413
    assert answer["error"] == ("input 'image_bytes': images 0 to 1 declare 512 pixels in all, more than the limit of "
                               "300 (--max_image_pixels); send fewer images per request")
    monkeypatch.setattr(repository, "max_image_pixels", 0)  # no limit: TensorFlow refuses the empty IDAT itself
    status, answer = _call(server, "POST", _PREDICT, _restore_bytes_body(_png_header(64, 64)))
    assert status == 400 and answer["error"].startswith("the model rejected the input")
    _assert_valid_predict_works(server, models[1][2])


# --------------------------------------------------------------------------
# Loading, flags and the command line.
# --------------------------------------------------------------------------


def test_load_models_errors(tmp_path, models):
    with pytest.raises(io.DataError, match="model base path .*missing does not exist"):
        serving.load_models(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(io.DataError, match="no models under .*empty"):
        serving.load_models(tmp_path / "empty")
    with pytest.raises(io.DataError, match="model 'other' not found: .*other is not a folder"):
        serving.load_models(models[0], ["other"])
    (tmp_path / "base" / "m" / "notaversion").mkdir(parents=True)
    with pytest.raises(io.DataError, match="model 'm' has no integer version folder"):
        serving.load_models(tmp_path / "base", ["m"])
    with pytest.raises(io.DataError, match="no models under"):
        serving.load_models(tmp_path / "base")
    (tmp_path / "base" / "m" / "3").mkdir()
    with pytest.raises(io.DataError, match=r"version folder .*m.3 of model 'm' holds no saved_model.pb"):
        serving.load_models(tmp_path / "base")
    (tmp_path / "base" / "m" / "3" / "saved_model.pb").write_bytes(b"\xff" * 10)
    with pytest.raises(io.DataError, match=r"could not read the SavedModel protocol buffer in .*m.3"):
        serving.load_models(tmp_path / "base")


def test_a_model_folder_itself_can_be_the_base_path(models):
    repository = serving.load_models(models[0] / "memd", ["restorer"])
    assert list(repository.models) == ["restorer"] and sorted(repository.models["restorer"]) == [1, 2]
    assert repository.get("restorer").version == 2


@pytest.mark.parametrize("text, size", [("64MiB", 64 * 2**20), ("10MB", 10**7), ("1048576", 2**20),
                                        (" 2 kib ", 2048), ("1GiB", 2**30)])
def test_parse_byte_size(text, size):
    assert serving.parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["64 MiBs", "-1", "0", "1.5MB", ""])
def test_parse_byte_size_refuses(text):
    with pytest.raises(ValueError, match="is not a size in bytes|must be positive"):
        serving.parse_byte_size(text)


def _parsed(*args):
    flag_values = flags.FlagValues()
    serve_cli.define_flags(flag_values)
    flag_values(["erlrestore-serve", "--model_base_path=savedmodels", *args])
    return flag_values


def test_cli_flags():
    assert serve_cli.settings_from_flags(_parsed("--model_name=a,b", "--port=0")) == dict(
        model_base_path="savedmodels", model_names=["a", "b"], host="127.0.0.1", port=0,
        max_request_bytes=64 * 2**20, grpc_port=0, request_timeout=60.0, max_concurrent=4, max_queue=32,
        queue_timeout=30.0, max_connections=128, max_image_pixels=100_000_000, drain_timeout=30.0,
    )
    settings = serve_cli.settings_from_flags(_parsed("--max_concurrent=1", "--max_queue=0", "--queue_timeout=0.5",
                                                     "--max_connections=3", "--max_image_pixels=0",
                                                     "--drain_timeout=2"))
    assert (settings["max_concurrent"], settings["max_queue"], settings["queue_timeout"], settings["max_connections"],
            settings["max_image_pixels"], settings["drain_timeout"]) == (1, 0, 0.5, 3, 0, 2.0)
    for bad in ("--max_concurrent=0", "--max_queue=-1", "--max_connections=0", "--max_image_pixels=-5"):
        with pytest.raises(flags.IllegalFlagValueError):
            _parsed(bad)
    with pytest.raises(app.UsageError, match="--max_request_bytes: 'lots' is not a size in bytes"):
        serve_cli.settings_from_flags(_parsed("--max_request_bytes=lots"))
    with pytest.raises(app.UsageError, match="--grpc_port and --port are both 9000"):
        serve_cli.settings_from_flags(_parsed("--port=9000", "--grpc_port=9000"))
    with pytest.raises(flags.IllegalFlagValueError):
        _parsed("--port=70000")


def test_grpc_missing_package_gives_a_clear_error(repository, monkeypatch):
    for name in [name for name in sys.modules if name.startswith("tensorflow_serving.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    assert not serving.grpc_available()
    with pytest.raises(serving.GrpcUnavailableError, match="gRPC serving needs the tensorflow-serving-api package"):
        serving.make_grpc_server(repository, port=0)
    with pytest.raises(app.UsageError, match="--grpc_port=8500: gRPC serving needs the tensorflow-serving-api"):
        serve_cli.settings_from_flags(_parsed("--grpc_port=8500"))


@pytest.mark.parametrize("stuck_request", [False, True], ids=["drained", "drain-timeout"])
def test_cli_serves_until_sigterm(models, stuck_request):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "erlrestore.cli.serve", f"--model_base_path={models[0]}", "--port=0",
         "--drain_timeout=1"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
    )
    lines = []
    stuck = None
    try:
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = process.stderr.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"REST API on http://127\.0\.0\.1:(\d+)/", line)
            port = int(match.group(1)) if match else None
        assert port, "".join(lines)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", "/v1/models/memd/versions/2")
        assert json.loads(connection.getresponse().read()) == {"model_version_status": [_status_entry("2")]}
        connection.close()
        if stuck_request:  # a request whose body never comes: still in flight when the drain timeout passes
            stuck = socket.create_connection(("127.0.0.1", port), timeout=30)
            stuck.sendall(f"POST {_PREDICT} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
            time.sleep(0.3)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, rest = process.communicate(timeout=30)
        lines.append(rest)
        log = "".join(lines)
        assert re.search(r'"GET /v1/models/memd/versions/2 HTTP/1.1" 200 \d+ bytes', log)
        assert "received SIGTERM: finishing the requests in flight (up to 1 s)" in log
        if stuck_request:
            assert process.returncode == 1, log
            assert "stopped with 1 request(s) unanswered after the 1 s drain timeout" in log
            assert time.monotonic() - signalled < 10
        else:
            assert process.returncode == 0, log
            assert re.search(r"\bstopped\n", log)
    finally:
        if stuck is not None:
            stuck.close()
        if process.poll() is None:
            process.kill()
            process.wait()


# --------------------------------------------------------------------------
# gRPC (only when tensorflow-serving-api is installed).
# --------------------------------------------------------------------------


def test_grpc_predict(repository, models, tmp_path):
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    grpc_server, port = serving.make_grpc_server(repository, "127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    try:
        x = _images(7, (1, 8, 8, 3))
        outputs = client.predict_grpc(target, "memd", {"images": x})
        assert np.abs(outputs["restored"] - _expected(models[1][2], x)).max() < 1e-5
        outputs = client.predict_grpc(target, "memd", {"images": x}, version=1)
        assert np.abs(outputs["restored"] - _expected(models[1][1], x)).max() < 1e-5
        io.write_image(tmp_path / "in" / "a.png", np.random.default_rng(8).random((12, 8, 3)))
        written = client.restore_file_grpc(target, "memd", tmp_path / "in" / "a.png", tmp_path / "out.png")
        assert _png_bytes(written) == _direct_restore_bytes(models, 2, _png_bytes(tmp_path / "in" / "a.png"))
        with pytest.raises(client.ServingClientError, match="^NOT_FOUND: model 'nope' is not served here"):
            client.predict_grpc(target, "nope", {"images": x})
        with pytest.raises(client.ServingClientError, match=r"^INVALID_ARGUMENT: input 'images' has shape \[1, 8, 8\]"):
            client.predict_grpc(target, "memd", {"images": x[..., 0]})
        with pytest.raises(client.ServingClientError, match="^INVALID_ARGUMENT: serving signature name 'nope'"):
            client.predict_grpc(target, "memd", {"images": x}, signature_name="nope")
    finally:
        grpc_server.stop(None)


def test_grpc_predictions_share_the_limiter(repository):
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")
    limiter = serving.PredictionLimiter(max_concurrent=1, max_queue=0, queue_timeout=0.2)
    grpc_server, port = serving.make_grpc_server(repository, "127.0.0.1", 0, limiter=limiter)
    try:
        x = _images(9, (1, 4, 4, 3))
        with limiter.admitted(), limiter.running():  # the one slot is taken (as by a REST prediction)
            with pytest.raises(client.ServingClientError, match=r"^UNAVAILABLE: the server is busy"):
                client.predict_grpc(f"127.0.0.1:{port}", "memd", {"images": x})
        assert client.predict_grpc(f"127.0.0.1:{port}", "memd", {"images": x})["restored"].shape == x.shape
    finally:
        grpc_server.stop(None)
