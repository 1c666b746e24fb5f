"""Shared by the tests of :mod:`erlrestore.serving`: tiny exported models, servers, requests and readiness polling.

Servers run either in the test's process (:func:`start_server`, a
RestServer on a free port) or as an ``erlrestore-serve`` child process
(:class:`ServeProcess`). Tests never sleep for a fixed time to let a server
get somewhere: they poll for the state they need (:func:`wait_for`), with
deadlines generous enough to fail only a server that is truly stuck.
"""

import base64
import http.client
import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from erlrestore import serving
from erlrestore.cli import serve as serve_cli
from erlrestore.export import export_savedmodel
from erlrestore.models import memd, presets

REPO = pathlib.Path(__file__).resolve().parent.parent
MODEL_NAME = "memd"
PREDICT_PATH = f"/v1/models/{MODEL_NAME}:predict"
WAIT_SECONDS = 60.0  # how long a test waits for a server to reach a state before calling it stuck
STARTUP_SECONDS = 300.0  # how long erlrestore-serve may take to import TensorFlow and load the models
HEADER_READ_BYTES = 8192  # what a request handler's buffered reader may take from the socket while reading headers


# --------------------------------------------------------------------------
# Models: a tiny MEMD exported as SavedModels.
# --------------------------------------------------------------------------


def tiny_memd(seed):
    """A small MEMD with random weights drawn from ``seed`` (restores visibly, unlike an identity)."""
    model = memd.build_memd(memd.memd_config("MEMD", **presets.TINY_MEMD))
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0.0, 0.1, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def export_two_versions(base):
    """``(base, {version: keras model})`` with two different tiny MEMDs exported as ``base/memd/1`` and ``/2``."""
    keras_models = {1: tiny_memd(1), 2: tiny_memd(2)}
    for version in (1, 2):
        assert export_savedmodel(keras_models[version], str(base), MODEL_NAME) == str(base / MODEL_NAME / str(version))
    assert sorted(os.listdir(base / MODEL_NAME)) == ["1", "2"]
    return base, keras_models


def exported_models(tmp_path_factory):
    """A fixture's body (``pytest.fixture(exported_models, scope="module")``): :func:`export_two_versions`."""
    return export_two_versions(tmp_path_factory.mktemp("savedmodels"))


def loaded_repository(models):
    """A fixture's body: the ModelRepository of ``models`` (from :func:`exported_models`)."""
    return serving.load_models(models[0])


def images(seed, shape=(2, 12, 8, 3)):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def expected_output(model, batch):
    """What the served ``serving_default`` signature returns for ``batch``: the model's output clipped to [0, 1]."""
    return np.clip(np.asarray(model(batch, training=False)), 0.0, 1.0)


def read_bytes(path):
    with open(path, "rb") as handle:
        return handle.read()


def direct_restore_bytes(models, version, data):
    """The ``restore_bytes`` signature of ``models``' version ``version`` called directly on the encoded ``data``."""
    loaded = tf.saved_model.load(str(models[0] / MODEL_NAME / str(version)))
    return loaded.signatures["restore_bytes"](image_bytes=tf.constant([data]))["restored_bytes"].numpy()[0]


def png_header(width, height):
    """A PNG signature, IHDR and an empty IDAT: declares ``width`` x ``height`` (a decompression bomb's header)."""
    def chunk(kind, data):
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def jpeg_header(width, height, frame_marker=0xC0):
    """A JPEG's markers up to a frame header declaring ``width`` x ``height`` (``0xC2``: progressive), no pixels."""
    app0 = b"\xff\xe0" + (16).to_bytes(2, "big") + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = (bytes([0xFF, frame_marker]) + (17).to_bytes(2, "big") + b"\x08" + height.to_bytes(2, "big")
             + width.to_bytes(2, "big") + b"\x03" + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01")
    return b"\xff\xd8" + app0 + b"\xff\xff" + frame + b"\xff\xd9"


def restore_bytes_body(*encoded):
    """A row-format ``restore_bytes`` request body for the encoded images."""
    return {"signature_name": "restore_bytes", "instances": [{"b64": base64.b64encode(i).decode()} for i in encoded]}


# --------------------------------------------------------------------------
# A RestServer in this process, and requests to it.
# --------------------------------------------------------------------------


def start_server(repository, **options):
    """``(server, thread)``: a RestServer on a free port of 127.0.0.1, serving from ``thread``."""
    server = serving.RestServer(repository, "127.0.0.1", 0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def stop_server(server, thread):
    server.shutdown()
    server.close()
    thread.join(WAIT_SECONDS)


def url(server):
    return f"http://127.0.0.1:{server.server_port}"


def call(server, method, path, body=None, headers=None):
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


def raw_exchange(port, data, read_timeout=10.0):
    """Sends raw bytes to 127.0.0.1:``port``; returns ``(status, response, parsed JSON body)``."""
    with socket.create_connection(("127.0.0.1", port), timeout=read_timeout) as sock:
        sock.sendall(data)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, response, json.loads(response.read())


def post_head(length, path=PREDICT_PATH):
    """The request line and headers of a POST announcing a body of ``length`` bytes."""
    return f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()


def status_entry(version):
    return {"version": version, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}


def assert_valid_predict_works(server, model):
    """A small valid ``:predict`` is answered with the model's output (the server still serves)."""
    x = images(99, (1, 4, 4, 3))
    status, answer = call(server, "POST", PREDICT_PATH, {"inputs": x.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(np.array(answer["outputs"]), expected_output(model, x), atol=1e-5)


def parsed_serve_flags(*args):
    """``erlrestore-serve``'s flags parsed from ``args`` (after ``--model_base_path=savedmodels``)."""
    flag_values = flags.FlagValues()
    serve_cli.define_flags(flag_values)
    flag_values(["erlrestore-serve", "--model_base_path=savedmodels", *args])
    return flag_values


# --------------------------------------------------------------------------
# Readiness polling.
# --------------------------------------------------------------------------


def wait_for(condition, seconds=WAIT_SECONDS, what="the server"):
    """Polls ``condition()`` until it is true; AssertionError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(0.01)


def _established_tcp_queues():
    """``{(local port, remote port): (send queue, receive queue)}`` of the established IPv4 TCP connections."""
    path = "/proc/net/tcp"
    if not os.path.exists(path):
        pytest.skip(f"needs Linux's {path} to tell when a server has read a request")
    queues = {}
    with open(path, encoding="ascii") as handle:
        next(handle)  # the column names
        for line in handle:
            fields = line.split()
            if fields[3] != "01":  # not ESTABLISHED (e.g. TIME_WAIT of an earlier connection)
                continue
            local_port, remote_port = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
            queues[(local_port, remote_port)] = tuple(int(size, 16) for size in fields[4].split(":"))
    return queues


def wait_until_read_by_server(sock, seconds=WAIT_SECONDS):
    """Waits until the server at the other end of ``sock`` (on this machine) has read every byte sent on it.

    Watches the connection's two ends in ``/proc/net/tcp``: nothing left in
    this side's send queue, nothing unread in the server's receive queue.
    When more than HEADER_READ_BYTES of a request's body were sent, the
    handler cannot have taken it all while reading the headers, so an empty
    queue means it is reading the body and waits for the rest: the request
    is in flight (not waiting in the listen backlog, nor counted as idle).
    """
    client_port, server_port = sock.getsockname()[1], sock.getpeername()[1]

    def read_everything():
        queues = _established_tcp_queues()
        unsent = queues.get((client_port, server_port), (None, None))[0]
        unread = queues.get((server_port, client_port), (None, None))[1]
        return unsent == 0 and unread == 0

    wait_for(read_everything, seconds, f"the server to read what was sent from port {client_port}")


# --------------------------------------------------------------------------
# erlrestore-serve as a child process.
# --------------------------------------------------------------------------


class ServeProcess:
    """``erlrestore-serve`` in a child process on 127.0.0.1 at a free port.

    ``process`` is the Popen, ``port`` the REST port; ``text()`` is its log
    so far (stderr, read by a thread so that the pipe never fills and blocks
    the server). The constructor returns once the server answers a status
    request for ``model_name``; AssertionError with the log when it exits
    first or is not ready within ``startup_seconds``.
    """

    def __init__(self, model_base_path, *flag_args, cwd=REPO, model_name=MODEL_NAME,
                 startup_seconds=STARTUP_SECONDS):
        env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="2",
                   PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "erlrestore.cli.serve", f"--model_base_path={model_base_path}", "--port=0",
             *flag_args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
        )
        self._lines = []
        self._reader = threading.Thread(target=self._read_log, daemon=True)
        self._reader.start()
        self.port = None
        try:
            wait_for(lambda: self.process.poll() is not None or self._answers_status(model_name), startup_seconds,
                     "erlrestore-serve to start")
        except AssertionError:
            self.stop()
            raise AssertionError(f"erlrestore-serve did not start within {startup_seconds:g} s; its log:\n"
                                 f"{self.text()}") from None
        if self.process.poll() is not None:
            self.wait(WAIT_SECONDS)
            raise AssertionError(f"erlrestore-serve exited with status {self.process.returncode}:\n{self.text()}")

    def _read_log(self):
        for line in self.process.stderr:
            self._lines.append(line)

    def _answers_status(self, model_name):
        """True once the logged REST port answers a status request for ``model_name`` with 200."""
        if self.port is None:
            match = re.search(r"REST API on http://127\.0\.0\.1:(\d+)/", self.text())
            if not match:
                return False
            self.port = int(match.group(1))
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT_SECONDS)
        try:
            connection.request("GET", f"/v1/models/{model_name}")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def text(self):
        return "".join(list(self._lines))

    def wait(self, seconds):
        """The exit status, waiting at most ``seconds`` for it and then for the rest of the log."""
        status = self.process.wait(seconds)
        self._reader.join(WAIT_SECONDS)
        return status

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.wait(WAIT_SECONDS)
