"""Tests of erlrestore-serve's command line (erlrestore.cli.serve): its flags, and serving until SIGTERM."""

import http.client
import json
import re
import signal
import socket

import pytest
from absl import app, flags

from erlrestore.cli import serve as serve_cli
from serving_testing import (
    HEADER_READ_BYTES,
    WAIT_SECONDS,
    ServeProcess,
    exported_models,
    parsed_serve_flags,
    post_head,
    status_entry,
    wait_until_read_by_server,
)


models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})


def test_cli_flags():
    assert serve_cli.settings_from_flags(parsed_serve_flags("--model_name=a,b", "--port=0")) == dict(
        model_base_path="savedmodels", model_names=["a", "b"], host="127.0.0.1", port=0,
        max_request_bytes=64 * 2**20, grpc_port=0, request_timeout=60.0, max_concurrent=4, max_queue=32,
        queue_timeout=30.0, max_connections=128, max_image_pixels=100_000_000, drain_timeout=30.0,
        max_inflight_pixels=32_000_000, tile=512, overlap=32, align=None, work_size=None,
    )
    assert serve_cli.settings_from_flags(parsed_serve_flags("--work_size=321"))["work_size"] == 321
    for bad in ("auto", "0", "big"):
        with pytest.raises(app.UsageError, match=f"--work_size must be none or a whole number of pixels >= 1 "
                                                 f"\\(e\\.g\\. 321\\), got '{bad}' \\(SavedModels record no "
                                                 "training scale"):
            serve_cli.settings_from_flags(parsed_serve_flags(f"--work_size={bad}"))
    settings = serve_cli.settings_from_flags(parsed_serve_flags(
        "--max_inflight_pixels=0", "--tile=256", "--overlap=16", "--align=32"))
    assert (settings["max_inflight_pixels"], settings["tile"], settings["overlap"], settings["align"]) == (
        0, 256, 16, 32)
    assert serve_cli.settings_from_flags(parsed_serve_flags("--tile=0", "--overlap=64"))["tile"] == 0  # no tiling
    with pytest.raises(app.UsageError, match=r"--tile/--overlap/--align: tile \(64\) must be larger than twice"):
        serve_cli.settings_from_flags(parsed_serve_flags("--tile=64", "--overlap=32"))
    with pytest.raises(app.UsageError, match=r"smaller than the alignment 64"):
        serve_cli.settings_from_flags(parsed_serve_flags("--tile=80", "--overlap=20", "--align=64"))
    settings = serve_cli.settings_from_flags(parsed_serve_flags(
        "--max_concurrent=1", "--max_queue=0", "--queue_timeout=0.5", "--max_connections=3", "--max_image_pixels=0",
        "--drain_timeout=2"))
    assert (settings["max_concurrent"], settings["max_queue"], settings["queue_timeout"], settings["max_connections"],
            settings["max_image_pixels"], settings["drain_timeout"]) == (1, 0, 0.5, 3, 0, 2.0)
    for bad in ("--max_concurrent=0", "--max_queue=-1", "--max_connections=0", "--max_image_pixels=-5"):
        with pytest.raises(flags.IllegalFlagValueError):
            parsed_serve_flags(bad)
    with pytest.raises(app.UsageError, match="--max_request_bytes: 'lots' is not a size in bytes"):
        serve_cli.settings_from_flags(parsed_serve_flags("--max_request_bytes=lots"))
    with pytest.raises(app.UsageError, match="--grpc_port and --port are both 9000"):
        serve_cli.settings_from_flags(parsed_serve_flags("--port=9000", "--grpc_port=9000"))
    with pytest.raises(flags.IllegalFlagValueError):
        parsed_serve_flags("--port=70000")


@pytest.mark.slow
@pytest.mark.parametrize("stuck_request", [False, True], ids=["drained", "drain-timeout"])
def test_cli_serves_until_sigterm(models, stuck_request):
    server = ServeProcess(models[0], "--drain_timeout=1")
    stuck = None
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=WAIT_SECONDS)
        connection.request("GET", "/v1/models/memd/versions/2")
        assert json.loads(connection.getresponse().read()) == {"model_version_status": [status_entry("2")]}
        connection.close()
        if stuck_request:  # a request whose body never comes: still in flight when the drain timeout passes
            stuck = socket.create_connection(("127.0.0.1", server.port), timeout=WAIT_SECONDS)
            stuck.sendall(post_head(100 * HEADER_READ_BYTES) + b" " * (2 * HEADER_READ_BYTES))
            wait_until_read_by_server(stuck)
        server.process.send_signal(signal.SIGTERM)
        # The exit status tells a drain that gave up (1) from one that answered everything (0); the stuck
        # request would only end after the 60 s request timeout.
        status = server.wait(WAIT_SECONDS)
        log = server.text()
        assert re.search(r'"GET /v1/models/memd/versions/2 HTTP/1.1" 200 \d+ bytes', log)
        assert "received SIGTERM: finishing the requests in flight (up to 1 s)" in log
        if stuck_request:
            assert status == 1, log
            assert "stopped with 1 request(s) unanswered after the 1 s drain timeout" in log
        else:
            assert status == 0, log
            assert re.search(r"\bstopped\n", log)
    finally:
        if stuck is not None:
            stuck.close()
        server.stop()
