"""``erlrestore-serve`` under a bounded load: 8 clients, 2000 mixed valid and malformed requests, then SIGTERM.

One server process (``python -m erlrestore.cli.serve`` on 127.0.0.1, a
tiny MEMD exported to a temporary folder) serves both tests of this module:

* ``test_mixed_load``: 8 client threads send 2000 requests in total, 60%
  valid (``serving_default`` in row and columnar formats, ``restore_bytes``
  with 16x16 PNGs, status and metadata) and 40% malformed (12 kinds). Every
  valid answer is compared with the same signature called directly in this
  process (``tf.saved_model.load``), every malformed one must be its 4xx
  with an ``error`` field; no 5xx at all. The server's resident memory
  (VmRSS) is read after a warm-up and at the end. The model folder and the
  server's working folder must be unchanged (the server writes no files).
* ``test_sigterm_finishes_the_request_in_flight``: a large-image request is
  half sent, SIGTERM arrives, new connections are refused, the rest of the
  body is sent and its answer arrives complete and correct; the process
  exits 0 within the drain timeout.

The figures are printed (``pytest -s tests/test_serving_load.py``) as one
``LOAD {...}`` JSON line.
"""

import base64
import collections
import http.client
import json
import os
import re
import signal
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from erlrestore.export import export_savedmodel
from serving_testing import (
    PREDICT_PATH,
    WAIT_SECONDS,
    ServeProcess,
    png_header,
    post_head,
    tiny_memd,
    wait_for,
    wait_until_read_by_server,
)

pytestmark = pytest.mark.slow  # a server process under load, then SIGTERM

CLIENTS = 8
REQUESTS = 2000
WARMUP = 60
VALID_SHARE = 0.6
MAX_REQUEST_BYTES = 2 * 2**20
MAX_IMAGE_PIXELS = 1_000_000
DRAIN_TIMEOUT = 20.0
RSS_GROWTH_LIMIT_MB = 100.0
LARGE_IMAGE = 384  # the slow request of the SIGTERM test: a 384x384 noise PNG (~430 KB)


def _png(array):
    return tf.io.encode_png(tf.constant(array)).numpy()


def _tree(folder):
    """``{relative path: (size, mtime_ns)}`` of every file and folder under ``folder``."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            info = os.stat(path)
            found[os.path.relpath(path, folder)] = (info.st_size if name in files else -1, info.st_mtime_ns)
    return found


def _rss_mb(pid):
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024.0, int(fields["VmHWM"].split()[0]) / 1024.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """``(server, base, workdir, direct)``: the running server and the SavedModel loaded in this process."""
    base = tmp_path_factory.mktemp("load_savedmodels")
    export_savedmodel(tiny_memd(3), str(base), "memd")
    workdir = tmp_path_factory.mktemp("serve_cwd")
    server = ServeProcess(base, f"--max_request_bytes={MAX_REQUEST_BYTES}", f"--max_image_pixels={MAX_IMAGE_PIXELS}",
                          f"--drain_timeout={DRAIN_TIMEOUT}", "--request_timeout=20", cwd=workdir)
    try:
        yield server, base, workdir, tf.saved_model.load(str(base / "memd" / "1"))
    finally:
        server.stop()


# --------------------------------------------------------------------------
# Requests.
# --------------------------------------------------------------------------

def _send(port, method, path, body=None, headers=None, timeout=60.0):
    """``(status, body bytes)`` of one request on its own connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _send_raw(port, data, timeout=60.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response.read()


class Plan:
    """The requests: valid ones with their expected answers, and malformed ones with their expected status."""

    MALFORMED = {  # kind: (expected status, regex the error must match)
        "bad_json": (400, r"^JSON parse error"),
        "empty_body": (400, r"body is empty"),
        "wrong_shape": (400, r"has shape \[1, 4, 2\]"),
        "unknown_model": (404, r"model 'nope' is not served here"),
        "unknown_version": (404, r"has no version 7"),
        "unknown_signature": (400, r"signature name 'nope' not found"),
        "bad_b64": (400, r"could not decode base64"),
        "not_an_image": (400, r"^the model rejected the input"),
        "pixel_bomb": (400, r"declares 30000x30000 = 900000000 pixels, more than the limit of 1000000"),
        "path_escape": (400, r"is not a folder name"),
        "wrong_method": (405, r"method GET is not allowed"),
        "oversized": (413, r"larger than the limit of 2097152 bytes"),
        "no_length": (411, r"Content-Length header is required"),
    }

    def __init__(self, direct, seed=0):
        rng = np.random.default_rng(seed)
        serving_default = direct.signatures["serving_default"]
        restore_bytes = direct.signatures["restore_bytes"]
        self.arrays = []
        for shape in [(1, 16, 16, 3), (2, 12, 16, 3), (1, 8, 16, 3), (1, 16, 16, 3)] * 2:
            x = rng.random(shape, dtype=np.float32)
            self.arrays.append((x, serving_default(images=tf.constant(x))["restored"].numpy()))
        self.pngs = []
        for _ in range(6):
            png = _png((rng.random((16, 16, 3)) * 255).astype(np.uint8))
            self.pngs.append((png, restore_bytes(image_bytes=tf.constant([png]))["restored_bytes"].numpy()[0]))
        self.bomb = base64.b64encode(png_header(30_000, 30_000)).decode()
        self.rng = rng

    def valid(self):
        """``(kind, method, path, body, check)``: check(status, data) returns an error text or None."""
        kind = self.rng.choice(["row", "row_named", "columnar", "columnar_named", "restore_bytes", "status",
                                "metadata"], p=[0.2, 0.1, 0.2, 0.1, 0.3, 0.05, 0.05])
        if kind in ("status", "metadata"):
            path = "/v1/models/memd" + ("/metadata" if kind == "metadata" else "")

            def check(status, data):
                if status != 200:
                    return f"status {status}: {data[:200]!r}"
                answer = json.loads(data)
                wanted = "model_version_status" if kind == "status" else "metadata"
                return None if wanted in answer else f"no {wanted!r} in the answer"

            return kind, "GET", path, None, check
        if kind == "restore_bytes":
            png, expected = self.pngs[self.rng.integers(len(self.pngs))]
            body = {"signature_name": "restore_bytes", "instances": [{"b64": base64.b64encode(png).decode()}]}

            def check(status, data):
                if status != 200:
                    return f"status {status}: {data[:200]!r}"
                got = base64.b64decode(json.loads(data)["predictions"][0]["b64"])
                return None if got == expected else "restored PNG differs from the direct call"

            return kind, "POST", PREDICT_PATH, json.dumps(body), check
        x, expected = self.arrays[self.rng.integers(len(self.arrays))]
        if kind == "row":
            body, key = {"instances": x.tolist()}, "predictions"
        elif kind == "row_named":
            body, key = {"instances": [{"images": image.tolist()} for image in x]}, "predictions"
        elif kind == "columnar":
            body, key = {"signature_name": "serving_default", "inputs": x.tolist()}, "outputs"
        else:
            body, key = {"inputs": {"images": x.tolist()}}, "outputs"

        def check(status, data):
            if status != 200:
                return f"status {status}: {data[:200]!r}"
            got = np.array(json.loads(data)[key], dtype=np.float32)
            if got.shape != expected.shape:
                return f"shape {got.shape}, expected {expected.shape}"
            error = float(np.abs(got - expected).max())
            return None if error <= 1e-5 else f"max difference {error} from the direct call"

        return kind, "POST", PREDICT_PATH, json.dumps(body), check

    def malformed(self):
        kind = self.rng.choice(sorted(self.MALFORMED))
        good = [[[0.5, 0.5, 0.5]] * 4] * 4
        bodies = {
            "bad_json": '{"instances": [[0.5, ',
            "empty_body": "",
            "wrong_shape": json.dumps({"instances": [[[0.5, 0.5]] * 4]}),
            "unknown_signature": json.dumps({"signature_name": "nope", "inputs": [good]}),
            "bad_b64": json.dumps({"signature_name": "restore_bytes", "instances": [{"b64": "@@not base64@@"}]}),
            "not_an_image": json.dumps({"signature_name": "restore_bytes", "instances": [{"b64": "aGVsbG8="}]}),
            "pixel_bomb": json.dumps({"signature_name": "restore_bytes", "instances": [{"b64": self.bomb}]}),
        }
        paths = {"unknown_model": "/v1/models/nope:predict", "unknown_version": "/v1/models/memd/versions/7:predict",
                 "path_escape": "/v1/models/..%2F..%2F..%2Fetc%2Fpasswd:predict"}
        status, pattern = self.MALFORMED[kind]
        raw = None
        if kind == "oversized":  # announces a body over the limit and sends none of it
            raw = post_head(MAX_REQUEST_BYTES + 1)
        elif kind == "no_length":
            raw = f"POST {PREDICT_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        method = "GET" if kind == "wrong_method" else "POST"
        body = bodies.get(kind, json.dumps({"inputs": [good]})) if method == "POST" else None

        def check(got, data):
            if got != status:
                return f"status {got}, expected {status}: {data[:200]!r}"
            answer = json.loads(data)
            if list(answer) != ["error"] or not re.search(pattern, answer["error"]):
                return f"unexpected error body {answer!r}"
            return None

        return kind, method, paths.get(kind, PREDICT_PATH), (raw if raw is not None else body), check


def _run(port, requests, clients):
    """Sends ``requests`` from ``clients`` threads; returns ``(results, wall seconds)``, results in order."""
    results = [None] * len(requests)
    next_index = iter(range(len(requests)))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                return
            kind, method, path, body, check = requests[index]
            started = time.monotonic()
            try:
                if isinstance(body, bytes):
                    status, data = _send_raw(port, body)
                else:
                    headers = {"Content-Type": "application/json"} if body is not None else {}
                    status, data = _send(port, method, path, body, headers)
                problem = check(status, data)
            except Exception as error:  # pylint: disable=broad-except
                status, problem = None, f"{type(error).__name__}: {error}"
            results[index] = (kind, status, time.monotonic() - started, problem)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results, time.monotonic() - started


def test_mixed_load(setup):
    server, base, workdir, direct = setup
    plan = Plan(direct)
    tree_before = _tree(base)
    warmup = [plan.valid() for _ in range(WARMUP)]
    results, _ = _run(server.port, warmup, CLIENTS)
    assert [r[3] for r in results if r[3]] == []
    rss_start, _ = _rss_mb(server.process.pid)

    malformed_count = int(round(REQUESTS * (1 - VALID_SHARE)))
    requests = [plan.malformed() for _ in range(malformed_count)]
    requests += [plan.valid() for _ in range(REQUESTS - malformed_count)]
    order = plan.rng.permutation(len(requests))
    requests = [requests[i] for i in order]
    results, wall = _run(server.port, requests, CLIENTS)

    rss_end, rss_peak = _rss_mb(server.process.pid)
    assert server.process.poll() is None, server.text()[-3000:]
    problems = [(kind, status, problem) for kind, status, _, problem in results if problem]
    statuses = collections.Counter(status for _, status, _, _ in results)
    malformed_kinds = set(Plan.MALFORMED)
    served = sum(1 for kind, status, _, problem in results if kind not in malformed_kinds and not problem)
    rejected = collections.Counter(kind for kind, _, _, problem in results if kind in malformed_kinds and not problem)
    latencies = np.array([seconds for _, _, seconds, _ in results]) * 1000.0
    figures = {
        "clients": CLIENTS, "requests": len(results), "served_ok": served, "rejected_4xx": sum(rejected.values()),
        "rejected_by_kind": dict(sorted(rejected.items())), "statuses": dict(sorted(statuses.items(), key=str)),
        "problems": len(problems), "wall_s": round(wall, 2), "requests_per_s": round(len(results) / wall, 1),
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p95": round(float(np.percentile(latencies, 95)), 1),
        "latency_ms_max": round(float(latencies.max()), 1),
        "rss_mb_start": round(rss_start, 1), "rss_mb_end": round(rss_end, 1), "rss_mb_peak": round(rss_peak, 1),
    }
    print("\nLOAD " + json.dumps(figures))
    assert problems == [], problems[:10]
    assert served + sum(rejected.values()) == REQUESTS
    assert all(status is not None and status < 500 for status in statuses), statuses
    assert set(rejected) == malformed_kinds  # every kind was sent (and answered as expected)
    assert rss_end - rss_start < RSS_GROWTH_LIMIT_MB, figures
    # The server wrote nothing: the model folder and its working folder are as they were.
    assert _tree(base) == tree_before
    assert os.listdir(workdir) == []


def _refuses_connections(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):  # reset: the listening socket closed mid-connect
        return True
    return False


def test_sigterm_finishes_the_request_in_flight(setup):
    server, _, workdir, direct = setup
    assert server.process.poll() is None
    rng = np.random.default_rng(11)
    png = _png((rng.random((LARGE_IMAGE, LARGE_IMAGE, 3)) * 255).astype(np.uint8))
    expected = direct.signatures["restore_bytes"](image_bytes=tf.constant([png]))["restored_bytes"].numpy()[0]
    body = json.dumps({"signature_name": "restore_bytes",
                       "instances": [{"b64": base64.b64encode(png).decode()}]}).encode()
    assert len(body) <= MAX_REQUEST_BYTES
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS) as sock:
        sock.sendall(post_head(len(body)) + body[:len(body) // 2])
        wait_until_read_by_server(sock)  # the server is reading the body: the request is in flight
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        wait_for(lambda: _refuses_connections(server.port), what="the server to stop listening after SIGTERM")
        assert server.process.poll() is None  # still draining
        sock.sendall(body[len(body) // 2:])
        response = http.client.HTTPResponse(sock)
        response.begin()
        data = response.read()
    assert response.status == 200, data[:300]
    assert len(data) == int(response.getheader("Content-Length"))
    restored = base64.b64decode(json.loads(data)["predictions"][0]["b64"])
    assert restored == expected
    assert tuple(tf.io.decode_png(restored).shape) == (LARGE_IMAGE, LARGE_IMAGE, 3)
    # Exit status 0: every request was answered (1 would mean the drain timeout passed first).
    assert server.wait(DRAIN_TIMEOUT + WAIT_SECONDS) == 0, server.text()[-3000:]
    elapsed = time.monotonic() - signalled
    log = server.text()
    assert "received SIGTERM" in log and re.search(r"\bstopped\n", log), log[-2000:]
    assert os.listdir(workdir) == []
    print(f"\nSIGTERM: in-flight {LARGE_IMAGE}x{LARGE_IMAGE} request answered, exit 0 {elapsed:.2f} s after the signal")
