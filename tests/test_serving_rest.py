"""Tests of erlrestore.serving.rest: the REST API, its limits and shutdown, with erlrestore.client."""

import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from erlrestore import client
from erlrestore.data import image_files
from serving_testing import (
    PREDICT_PATH,
    WAIT_SECONDS,
    assert_valid_predict_works,
    call,
    direct_restore_bytes,
    expected_output,
    exported_models,
    loaded_repository,
    images,
    jpeg_header,
    png_header,
    post_head,
    raw_exchange,
    read_bytes,
    restore_bytes_body,
    start_server,
    status_entry,
    stop_server,
    url,
    wait_for,
)

MAX_REQUEST_BYTES = 256 * 1024


models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})
repository = pytest.fixture(loaded_repository, scope="module", name="repository")


@pytest.fixture(scope="module")
def server(repository):
    server, thread = start_server(repository, max_request_bytes=MAX_REQUEST_BYTES, request_timeout=5.0)
    yield server
    stop_server(server, thread)


# --------------------------------------------------------------------------
# Status and metadata.
# --------------------------------------------------------------------------


def test_status_lists_every_version_newest_first(server):
    assert call(server, "GET", "/v1/models/memd") == (
        200, {"model_version_status": [status_entry("2"), status_entry("1")]}
    )
    assert call(server, "GET", "/v1/models/memd/versions/1") == (
        200, {"model_version_status": [status_entry("1")]}
    )


def _dims(tensor_info):
    return [int(d["size"]) for d in tensor_info["tensor_shape"]["dim"]]


@pytest.mark.parametrize("path, version", [("/v1/models/memd/metadata", "2"),
                                           ("/v1/models/memd/versions/1/metadata", "1")])
def test_metadata_describes_both_signatures(server, path, version):
    status, answer = call(server, "GET", path)
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
    x = images(0)
    expected = expected_output(models[1][2], x)
    assert np.abs(expected - x).max() > 0.01  # a non-trivial model
    for instances in (x.tolist(), [{"images": image.tolist()} for image in x]):
        status, answer = call(server, "POST", "/v1/models/memd:predict",
                               {"signature_name": "serving_default", "instances": instances})
        assert status == 200, answer
        assert set(answer) == {"predictions"}
        predictions = np.array(answer["predictions"], dtype=np.float32)
        assert predictions.shape == x.shape
        assert np.abs(predictions - expected).max() < 1e-5


def test_columnar_format_predict_equals_the_model(server, models):
    x = images(1, (1, 8, 12, 3))
    expected = expected_output(models[1][2], x)
    for inputs in (x.tolist(), {"images": x.tolist()}):
        status, answer = call(server, "POST", "/v1/models/memd:predict", {"inputs": inputs})
        assert status == 200, answer
        assert set(answer) == {"outputs"}
        assert np.abs(np.array(answer["outputs"], dtype=np.float32) - expected).max() < 1e-5


def test_version_selection(server, models):
    x = images(2, (1, 8, 8, 3))
    answers = {}
    for path in ("/v1/models/memd:predict", "/v1/models/memd/versions/1:predict", "/v1/models/memd/versions/2:predict"):
        status, answer = call(server, "POST", path, {"instances": x.tolist()})
        assert status == 200, answer
        answers[path] = np.array(answer["predictions"], dtype=np.float32)
    assert np.abs(answers["/v1/models/memd/versions/1:predict"] - expected_output(models[1][1], x)).max() < 1e-5
    assert np.abs(answers["/v1/models/memd:predict"] - expected_output(models[1][2], x)).max() < 1e-5
    np.testing.assert_array_equal(answers["/v1/models/memd:predict"], answers["/v1/models/memd/versions/2:predict"])
    assert np.abs(answers["/v1/models/memd/versions/1:predict"] - answers["/v1/models/memd:predict"]).max() > 1e-3


def test_b64_round_trip_through_the_client(server, models, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    shapes = {"a.png": (12, 8, 3), "b.png": (16, 20, 3)}
    for i, (name, shape) in enumerate(shapes.items()):
        image_files.write_image(in_dir / name, np.random.default_rng(10 + i).random(shape))
    inputs = client.find_inputs(in_dir)

    def restore_file(input_path, output_path):
        return client.restore_file_rest(url(server), "memd", input_path, output_path)

    written, failures = client.restore_files(inputs, out_dir, restore_file, show_progress=False)
    assert failures == []
    assert written == [str(out_dir / "a.png"), str(out_dir / "b.png")]
    for name, shape in shapes.items():
        sent = read_bytes(in_dir / name)
        received = read_bytes(out_dir / name)
        assert received == direct_restore_bytes(models, 2, sent)  # exactly what the signature returns
        restored = image_files.read_image(out_dir / name)
        assert restored.shape == shape
        expected = expected_output(models[1][2], image_files.read_image(in_dir / name)[np.newaxis])[0]
        assert np.abs(restored - expected).max() <= 1 / 255 + 1e-6
    # The raw REST answer: predictions[0] is {"b64": ...} because the output name ends in _bytes.
    answer = client.predict_rest(url(server), "memd", {
        "signature_name": "restore_bytes", "instances": [{"b64": base64.b64encode(sent).decode()}]})
    assert list(answer["predictions"][0]) == ["b64"]
    assert base64.b64decode(answer["predictions"][0]["b64"]) == received
    version_1 = client.restore_bytes_rest(url(server), "memd", sent, version=1)
    assert version_1 == direct_restore_bytes(models, 1, sent) != received


def _write_good_and_broken_pngs(in_dir):
    image_files.write_image(in_dir / "good.png", np.random.default_rng(3).random((8, 8, 3)))
    (in_dir / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 4)


def test_client_lists_failures_and_never_overwrites_inputs(server, models, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    _write_good_and_broken_pngs(in_dir)
    inputs = client.find_inputs(in_dir)

    def restore_file(input_path, output_path):
        return client.restore_file_rest(url(server), "memd", input_path, output_path)

    before = read_bytes(in_dir / "good.png")
    written, failures = client.restore_files(inputs, out_dir, restore_file, show_progress=False)
    assert written == [str(out_dir / "good.png")]
    assert [path for path, _ in failures] == [str(in_dir / "broken.png")]
    assert failures[0][1] == "400: the model rejected the input: Invalid PNG. Failed to initialize decoder."
    assert not (out_dir / "broken.png").exists()
    with pytest.raises(image_files.DataError, match="holds the input .*broken.png"):
        client.restore_files(inputs, in_dir, restore_file, show_progress=False)
    assert read_bytes(in_dir / "good.png") == before
    with pytest.raises(client.ServingClientError, match="^404: model 'nope' is not served here"):
        client.restore_file_rest(url(server), "nope", in_dir / "good.png", tmp_path / "x.png")


@pytest.mark.slow
def test_client_command_line_exits_1_naming_the_failure(server, tmp_path):
    in_dir = tmp_path / "in"
    _write_good_and_broken_pngs(in_dir)
    before = read_bytes(in_dir / "good.png")
    # REST needs no TensorFlow in the client.
    result = subprocess.run(
        [sys.executable, "-m", "erlrestore.client", f"--server={url(server)}",
         "--model_name=memd", f"--input={in_dir}", f"--output_dir={tmp_path / 'cli_out'}"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "restored 1 of 2 image(s)" in result.stdout
    assert re.search(r"1 image\(s\) failed:\n  .*broken.png: 400: ", result.stderr)
    assert (tmp_path / "cli_out" / "good.png").is_file()
    assert read_bytes(in_dir / "good.png") == before


@pytest.mark.parametrize("track_tiles", [False, True])
def test_client_refuses_existing_outputs_unless_overwrite(tmp_path, track_tiles):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    for name in ("a.png", "b.png"):
        image_files.write_image(in_dir / name, np.random.default_rng(1).random((8, 8, 3)))
    out_dir.mkdir()
    (out_dir / "b.png").write_bytes(b"an earlier result")
    inputs = client.find_inputs(in_dir)
    sent = []

    def restore_file(input_path, output_path, on_progress=None):  # stands in for the server
        sent.append(input_path)
        image_files.write_bytes_atomically(str(output_path), b"restored")
        return output_path

    with pytest.raises(image_files.DataError, match=r"^1 output file\(s\) already exist: .*b\.png; replace them"):
        client.restore_files(inputs, out_dir, restore_file, show_progress=track_tiles, track_tiles=track_tiles)
    assert sent == [] and sorted(p.name for p in out_dir.iterdir()) == ["b.png"]  # nothing sent or written
    assert read_bytes(out_dir / "b.png") == b"an earlier result"
    written, failures = client.restore_files(inputs, out_dir, restore_file, show_progress=track_tiles,
                                             track_tiles=track_tiles, overwrite=True)
    assert failures == [] and written == [str(out_dir / "a.png"), str(out_dir / "b.png")]
    assert read_bytes(out_dir / "b.png") == b"restored"


@pytest.mark.slow
def test_client_command_line_refuses_existing_outputs_unless_overwrite(server, tmp_path):
    in_dir, out_dir = tmp_path / "in", tmp_path / "out"
    image_files.write_image(in_dir / "good.png", np.random.default_rng(3).random((8, 8, 3)))
    out_dir.mkdir()
    (out_dir / "good.png").write_bytes(b"an earlier result")
    command = [sys.executable, "-m", "erlrestore.client", f"--server={url(server)}", "--model_name=memd",
               f"--input={in_dir}", f"--output_dir={out_dir}"]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1, refused.stderr
    assert "1 output file(s) already exist" in refused.stderr and "--overwrite" in refused.stderr
    assert read_bytes(out_dir / "good.png") == b"an earlier result"
    replaced = subprocess.run(command + ["--overwrite"], capture_output=True, text=True, timeout=120)
    assert replaced.returncode == 0, replaced.stderr
    assert image_files.read_image(out_dir / "good.png").shape == (8, 8, 3)


# --------------------------------------------------------------------------
# Bad requests: the right 4xx, a JSON error, and the server keeps serving.
# --------------------------------------------------------------------------

_GOOD_IMAGE = [[[0.5, 0.5, 0.5]] * 4] * 4
_BAD_REQUESTS = [
    ("POST", PREDICT_PATH, '{"instances": [1, 2', 400, r"^JSON parse error: "),
    ("POST", PREDICT_PATH, b'{"instances": "\xff\xfe"}', 400, r"not UTF-8"),
    ("POST", PREDICT_PATH, "", 400, r"body is empty"),
    ("POST", PREDICT_PATH, [1, 2], 400, r"must be a JSON object, got a list"),
    ("POST", PREDICT_PATH, {"signature_name": "serving_default"}, 400, r"neither 'instances'.* nor 'inputs'"),
    ("POST", PREDICT_PATH, {"instances": [_GOOD_IMAGE], "inputs": [_GOOD_IMAGE]}, 400, r"both 'instances'"),
    ("POST", PREDICT_PATH, {"instances": []}, 400, r"'instances' is an empty list"),
    ("POST", PREDICT_PATH, {"instances": {"images": _GOOD_IMAGE}}, 400, r"'instances' must be a list, got an object"),
    ("POST", PREDICT_PATH, {"instances": [[[0.5, 0.5]] * 4]}, 400,
     r"input 'images' has shape \[1, 4, 2\] but signature 'serving_default' expects \[\?, \?, \?, 3\]"),
    ("POST", PREDICT_PATH, {"inputs": [[["a", "b", "c"]]]}, 400, r"expected numbers for a float32 input, got strings"),
    ("POST", PREDICT_PATH, {"inputs": [[[0.5, 0.5, None]]]}, 400, r"expected numbers .* got objects, nulls"),
    ("POST", PREDICT_PATH, {"inputs": [[[[0.5, 0.5, 0.5]], [[0.5, 0.5]]]]}, 400, r"not a dense \(rectangular\) array"),
    ("POST", PREDICT_PATH, {"inputs": [[[1e300, 0.5, 0.5]]]}, 400, r"does not fit in float32"),
    ("POST", PREDICT_PATH, {"instances": [{"images": _GOOD_IMAGE, "extra": 1}]}, 400,
     r"instance 0 has keys \['extra', 'images'\]; signature 'serving_default' needs exactly \['images'\]"),
    ("POST", PREDICT_PATH, {"instances": [{"images": _GOOD_IMAGE}, _GOOD_IMAGE]}, 400,
     r"instance 1 is a list; expected an object"),
    ("POST", PREDICT_PATH, {"inputs": {"pictures": [_GOOD_IMAGE]}}, 400, r"'inputs' has keys \['pictures'\]"),
    ("POST", PREDICT_PATH, {"signature_name": 7, "inputs": [_GOOD_IMAGE]}, 400, r"'signature_name' must be a string"),
    ("POST", PREDICT_PATH, {"signature_name": "nope", "inputs": [_GOOD_IMAGE]}, 400,
     r"serving signature name 'nope' not found in model 'memd' version 2"),
    ("POST", PREDICT_PATH, {"signature_name": "restore_bytes", "instances": [{"b64": "not base64!"}]}, 400,
     r"could not decode base64 data"),
    ("POST", PREDICT_PATH, {"signature_name": "restore_bytes", "instances": [{"b64": "aGVsbG8="}]}, 400,
     r"^the model rejected the input: .*image"),
    ("POST", PREDICT_PATH, {"signature_name": "restore_bytes", "instances": [0.5]}, 400,
     r"expected strings or \{\"b64\": \.\.\.\} objects for a string input, got a number"),
    ("POST", PREDICT_PATH, {"signature_name": "restore_bytes", "inputs": [[{"b64": "aGVsbG8="}]]}, 400,
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
    ("GET", PREDICT_PATH, None, 405, r"method GET is not allowed here \(use POST\)"),
    ("POST", "/v1/models/memd", {}, 405, r"method POST is not allowed here \(use GET\)"),
    ("DELETE", "/v1/models/memd", None, 405, r"method DELETE is not allowed"),
    ("BREW", "/v1/models/memd", None, 405, r"method BREW is not allowed"),
]


@pytest.mark.parametrize("method, path, body, status, message", _BAD_REQUESTS,
                         ids=[f"{i}-{r[3]}" for i, r in enumerate(_BAD_REQUESTS)])
def test_bad_request_gets_a_json_error_and_the_server_keeps_serving(server, models, method, path, body, status,
                                                                    message):
    got_status, answer = call(server, method, path, body)
    assert got_status == status, answer
    assert list(answer) == ["error"]
    assert re.search(message, answer["error"]), answer["error"]
    assert_valid_predict_works(server, models[1][2])


def test_oversized_body_is_refused_from_its_content_length(server, models):
    # Only the headers are sent: a server waiting for the body would answer 408 after its 5 s request timeout.
    status, _, answer = raw_exchange(server.server_port, post_head(MAX_REQUEST_BYTES + 1))
    assert status == 413
    assert answer == {"error": f"the request body of {MAX_REQUEST_BYTES + 1} bytes is larger than the limit of "
                               f"{MAX_REQUEST_BYTES} bytes"}
    # Expect: 100-continue gets the 413 instead of the 100.
    status, _, answer = raw_exchange(
        server.server_port, f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                            f"Content-Length: {10 * MAX_REQUEST_BYTES}\r\n\r\n".encode())
    assert status == 413 and "larger than the limit" in answer["error"]
    # A client that sends the whole body anyway still reads the 413.
    big = {"inputs": [[[0.123456789] * 3] * 100] * 200}
    with pytest.raises(client.ServingClientError, match="^413: the request body of .* bytes is larger"):
        client.predict_rest(url(server), "memd", big)
    assert_valid_predict_works(server, models[1][2])


@pytest.mark.parametrize("head, status, message", [
    (f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n", 411, "Content-Length header is required"),
    (f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 411, "chunked"),
    (f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, "invalid Content-Length"),
    (f"GET /v1/models/memd HTTP/1.1 extra\r\n\r\n", 400, "Bad request"),
])
def test_broken_http_requests(server, models, head, status, message):
    got, _, answer = raw_exchange(server.server_port, head.encode())
    assert got == status and message in answer["error"]
    assert_valid_predict_works(server, models[1][2])


def test_body_shorter_than_content_length(server, models):
    with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
        sock.sendall(f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{\"inputs\"".encode())
        sock.shutdown(socket.SHUT_WR)
        response = http.client.HTTPResponse(sock)
        response.begin()
        assert response.status == 400
        assert json.loads(response.read()) == {"error": "the request body ended after 9 of 100 bytes"}


def test_slow_body_times_out_with_408(repository):
    server, thread = start_server(repository, request_timeout=0.3)
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as sock:
            sock.sendall(f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{".encode())
            response = http.client.HTTPResponse(sock)
            response.begin()
            assert response.status == 408
            assert "not received within 0.3 s" in json.loads(response.read())["error"]
    finally:
        stop_server(server, thread)


def test_shutdown_finishes_requests_in_flight_and_drops_idle_connections(repository, models):
    server, thread = start_server(repository, request_timeout=30.0)
    x = images(5, (1, 4, 4, 3))
    body = json.dumps({"inputs": x.tolist()}).encode()
    idle = socket.create_connection(("127.0.0.1", server.server_port), timeout=WAIT_SECONDS)
    busy = socket.create_connection(("127.0.0.1", server.server_port), timeout=WAIT_SECONDS)
    try:
        busy.sendall(post_head(len(body)) + body[:10])
        wait_for(lambda: server.open_connections() == 2 and server.limiter.counts() == (1, 0),
                 what="both connections to be accepted and the busy one to read its body")
        stopper = threading.Thread(target=lambda: (server.shutdown(), server.close()))
        stopper.start()
        try:
            assert idle.recv(100) == b""  # closed without an answer once close() runs
        except ConnectionResetError:
            pass
        assert stopper.is_alive()  # waiting for the request in flight (not for the idle connection's 30 s)
        busy.sendall(body[10:])
        response = http.client.HTTPResponse(busy)
        response.begin()
        assert response.status == 200
        outputs = np.array(json.loads(response.read())["outputs"], dtype=np.float32)
        assert np.abs(outputs - expected_output(models[1][2], x)).max() < 1e-5
        stopper.join(WAIT_SECONDS)
        assert not stopper.is_alive()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", server.server_port), timeout=2).close()
    finally:
        idle.close()
        busy.close()
        thread.join(WAIT_SECONDS)


def test_close_gives_up_after_the_drain_timeout(repository):
    server, thread = start_server(repository, request_timeout=30.0)
    stuck = socket.create_connection(("127.0.0.1", server.server_port), timeout=10)
    try:
        # A request whose body never comes: in flight until the 30 s request timeout.
        stuck.sendall(post_head(100) + b"{")
        wait_for(lambda: server.limiter.counts() == (1, 0), what="the request to read its body")
        server.shutdown()
        started = time.monotonic()
        assert server.close(drain_timeout=0.5) == 1  # it gave up: the request is still waiting for its body
        assert time.monotonic() - started > 0.4  # after waiting for the drain timeout
    finally:
        stuck.close()
        thread.join(WAIT_SECONDS)
    wait_for(lambda: server.open_connections() == 0)  # its thread ends once the client is gone


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

    def predict_json(self, name, version, body, turn=None, progress=None):
        self.started.release()
        assert self.release.wait(WAIT_SECONDS)
        return {"outputs": json.loads(body)["inputs"]}


def _raw_post(server, body):
    data = json.dumps(body).encode()
    return raw_exchange(server.server_port, post_head(len(data)) + data, read_timeout=WAIT_SECONDS)


def test_predictions_beyond_the_queue_get_503_and_the_server_recovers():
    repository = _BlockingRepository()
    server, thread = start_server(repository, max_concurrent=1, max_queue=1, queue_timeout=2.0)
    results = {}

    def send(key):
        results[key] = _raw_post(server, {"inputs": [key]})

    try:
        first = threading.Thread(target=send, args=("first",))
        first.start()
        assert repository.started.acquire(timeout=WAIT_SECONDS)  # running
        second = threading.Thread(target=send, args=("second",))
        second.start()
        wait_for(lambda: server.limiter.counts() == (2, 1))  # waiting for the one slot
        status, response, answer = _raw_post(server, {"inputs": ["third"]})
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert re.fullmatch(r"the server is busy \(1 predictions running and 1 waiting, the most it takes\); "
                            r"retry later", answer["error"]), answer
        second.join(WAIT_SECONDS)
        status, response, answer = results["second"]
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert answer == {"error": "the server is busy: no prediction slot of 1 came free within 2 s; retry later"}
        assert first.is_alive()
        repository.release.set()
        first.join(WAIT_SECONDS)
        assert results["first"][0] == 200 and results["first"][2] == {"outputs": ["first"]}
        assert server.limiter.counts() == (0, 0) and server.limiter.refused == 2
        assert _raw_post(server, {"inputs": ["again"]})[::2] == (200, {"outputs": ["again"]})
        # Status and metadata requests are not queued behind predictions.
        repository.release.clear()
        blocked = threading.Thread(target=send, args=("blocked",))
        blocked.start()
        assert repository.started.acquire(timeout=WAIT_SECONDS)
        assert call(server, "GET", "/v1/models/x/metadata") == (200, {"model_spec": {"name": "x"}})
    finally:
        repository.release.set()
        stop_server(server, thread)


def test_connections_beyond_the_limit_get_503_without_a_thread(repository, models):
    server, thread = start_server(repository, max_connections=2, request_timeout=30.0)
    held = [socket.create_connection(("127.0.0.1", server.server_port), timeout=10) for _ in range(2)]
    try:
        wait_for(lambda: server.open_connections() == 2)
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as extra:
            response = http.client.HTTPResponse(extra)
            response.begin()
            assert response.status == 503 and response.getheader("Retry-After") == "1"
            assert json.loads(response.read()) == {
                "error": "the server is busy: 2 connections are open, the most it takes; retry later"}
        assert server.refused_connections == 1 and server.open_connections() == 2
        for sock in held:
            sock.close()
        wait_for(lambda: server.open_connections() == 0)
        assert_valid_predict_works(server, models[1][2])
    finally:
        for sock in held:
            sock.close()
        stop_server(server, thread)


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
    got, answer = call(server, method, path, body)
    assert got == status, answer
    assert list(answer) == ["error"] and re.search(message, answer["error"]), answer["error"]
    assert_valid_predict_works(server, models[1][2])


def test_raw_nul_and_absolute_form_request_targets(server):
    status, _, answer = raw_exchange(server.server_port,
                                     b"GET /v1/models/memd\x00/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 404 and "unknown path" in answer["error"]
    status, _, answer = raw_exchange(server.server_port, b"GET /v1/models/me\x00md HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 400 and "is not a folder name" in answer["error"]
    target = f"http://127.0.0.1:{server.server_port}/v1/models/memd/versions/1"
    status, _, answer = raw_exchange(server.server_port, f"GET {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert (status, answer) == (200, {"model_version_status": [status_entry("1")]})


def test_images_declaring_too_many_pixels_are_refused_before_decoding(server, repository, models, monkeypatch):
    for bomb, size in ((png_header(100_000, 100_000), "100000x100000"), (jpeg_header(60_000, 50_000),
                                                                           "60000x50000")):
        status, answer = call(server, "POST", PREDICT_PATH, restore_bytes_body(bomb))
        assert status == 400, answer
        assert answer["error"].startswith(f"input 'image_bytes': image 0 declares {size} = ")
        assert "more than the limit of 100000000 (--max_image_pixels); send a smaller image" in answer["error"]
    small = tf.io.encode_png((images(4, (16, 16, 3)) * 255).astype(np.uint8)).numpy()
    monkeypatch.setattr(repository, "max_image_pixels", 300)
    status, answer = call(server, "POST", PREDICT_PATH, restore_bytes_body(small))
    assert status == 200, answer  # 256 pixels
    status, answer = call(server, "POST", PREDICT_PATH, restore_bytes_body(small, small))
    assert status == 400
    assert answer["error"] == ("input 'image_bytes': images 0 to 1 declare 512 pixels in all, more than the limit of "
                               "300 (--max_image_pixels); send fewer images per request")
    monkeypatch.setattr(repository, "max_image_pixels", 0)  # no limit: TensorFlow refuses the empty IDAT itself
    status, answer = call(server, "POST", PREDICT_PATH, restore_bytes_body(png_header(64, 64)))
    assert status == 400 and answer["error"].startswith("the model rejected the input")
    assert_valid_predict_works(server, models[1][2])
