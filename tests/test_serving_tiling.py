"""Large images through erlrestore-serve: tiling as erlrestore-restore, the pixel budget, progress per tile.

A tiny MEMD is served with 32-pixel tiles overlapping by 8 (aligned to 16,
what both tools use for a SavedModel), so a 40x70 image is 2 x 4 = 8 tiles
and the tests stay fast; the tiling code is the same at 512.
"""

import base64
import http.client
import json
import threading

import numpy as np
import pytest

from erlrestore import client, inference, serving
from erlrestore.data import image_files
from serving_testing import (
    MODEL_NAME,
    PREDICT_PATH,
    WAIT_SECONDS,
    call,
    expected_output,
    exported_models,
    images,
    read_bytes,
    start_server,
    stop_server,
    url,
    wait_for,
)

TILE, OVERLAP = 32, 8
SHAPE = (40, 70)  # height, width: larger than the tile both ways
TILES = 8  # 2 rows x 4 columns of tiles (starts 0, 16 and 0, 16, 32, 48)


models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})


@pytest.fixture(scope="module")
def repository(models):
    repository = serving.load_models(models[0])
    repository.tiling = serving.TileSettings(TILE, OVERLAP)
    return repository


@pytest.fixture(scope="module")
def restorer(models):
    """What erlrestore-restore loads for --model=<base>/memd (version 2, a SavedModel)."""
    return inference.load_restorer(str(models[0] / MODEL_NAME))


@pytest.fixture(scope="module")
def server(repository):
    server, thread = start_server(repository, request_timeout=30.0)
    yield server
    stop_server(server, thread)


class Gate:
    """Wraps a restorer: the call after ``pass_calls`` calls waits until ``release`` is set."""

    def __init__(self, restorer, pass_calls=1):
        self.restorer = restorer
        self.multiple = None
        self.pass_calls = pass_calls
        self.calls = 0
        self.release = threading.Event()

    def __call__(self, batch):
        self.calls += 1
        if self.calls > self.pass_calls:
            assert self.release.wait(WAIT_SECONDS)
        return self.restorer(batch)


@pytest.fixture
def gated(repository, monkeypatch):
    """Makes the served version 2 restore its tiles through a Gate (returned); the gate is opened afterwards."""
    servable = repository.get(MODEL_NAME)
    gate = Gate(serving.tiling.restorer_of(servable))
    monkeypatch.setattr(servable, "_tile_restorer", gate)
    yield gate
    gate.release.set()


def _post(server, body, request_id=None, timeout=WAIT_SECONDS):
    """``(status, headers, parsed answer)`` of a :predict request, optionally named by ``request_id``."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if request_id is not None:
        headers["X-Request-Id"] = request_id
    try:
        connection.request("POST", PREDICT_PATH, body=json.dumps(body), headers=headers)
        response = connection.getresponse()
        return response.status, response, json.loads(response.read())
    finally:
        connection.close()


def _in_thread(function, *args):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", function(*args)), daemon=True)
    thread.start()
    return thread, result


def _progress(server, request_id):
    return call(server, "GET", f"/v1/progress/{request_id}")


# --------------------------------------------------------------------------
# The same pixels as erlrestore-restore.
# --------------------------------------------------------------------------


def test_count_tiles_matches_the_grid():
    assert serving.TileSettings(TILE, OVERLAP).count(*SHAPE) == TILES
    assert len(list(inference.tile_grid(*SHAPE, TILE, OVERLAP, inference.DEFAULT_ALIGN))) == TILES


def test_tiled_prediction_equals_restore_tiled(server, models, restorer):
    x = images(20, (2, *SHAPE, 3))
    expected = np.stack([inference.restore_tiled(restorer, image, tile=TILE, overlap=OVERLAP) for image in x])
    whole = expected_output(models[1][2], x)
    assert np.abs(whole - expected).max() > 1e-3  # tiling changes this model's answer: the server must tile
    status, _, answer = _post(server, {"inputs": x.tolist()})
    assert status == 200, answer
    np.testing.assert_array_equal(np.array(answer["outputs"], dtype=np.float32), expected)
    status, _, answer = _post(server, {"instances": [{"images": image.tolist()} for image in x]})
    assert status == 200, answer
    np.testing.assert_array_equal(np.array(answer["predictions"], dtype=np.float32), expected)
    small = images(21, (1, 16, 16, 3))  # not larger than the tile: the signature, whole, as before
    status, _, answer = _post(server, {"inputs": small.tolist()})
    assert status == 200
    assert np.abs(np.array(answer["outputs"], dtype=np.float32) - expected_output(models[1][2], small)).max() < 1e-5


@pytest.mark.parametrize("bits", [8, 16])
def test_restore_bytes_through_the_client_equals_erlrestore_restore(server, restorer, tmp_path, bits):
    source = tmp_path / "in" / "photo.png"
    image_files.write_image(source, np.random.default_rng(bits).random((*SHAPE, 3)), bit_depth=bits)
    written = client.restore_file_rest(url(server), MODEL_NAME, source, tmp_path / "served.png")
    reference = inference.restore_file(restorer, source, tmp_path / "restored.png", tile=TILE, overlap=OVERLAP)
    served, restored = image_files.read_image(written), image_files.read_image(reference)
    assert served.shape == restored.shape == (*SHAPE, 3)
    # erlrestore-restore keeps 16 bits, the signature answers 8: equal after rounding to 8 bits.
    assert np.abs(served - restored).max() <= (0.5 if bits == 16 else 0.0) / 255 + 1e-7
    if bits == 8:
        np.testing.assert_array_equal(served, restored)


def test_a_batch_of_large_and_small_encoded_images(server, restorer, tmp_path):
    big = np.random.default_rng(3).random((*SHAPE, 3))
    small = np.random.default_rng(4).random((12, 8, 3))
    for name, image in (("big.png", big), ("small.png", small)):
        image_files.write_image(tmp_path / name, image)
    body = {"signature_name": "restore_bytes", "instances": [
        {"b64": base64.b64encode(read_bytes(tmp_path / name)).decode()} for name in ("big.png", "small.png")]}
    status, _, answer = _post(server, body)
    assert status == 200, answer
    for prediction, name in zip(answer["predictions"], ("big.png", "small.png")):
        (tmp_path / f"served_{name}").write_bytes(base64.b64decode(prediction["b64"]))
        inference.restore_file(restorer, tmp_path / name, tmp_path / f"ref_{name}", tile=TILE, overlap=OVERLAP)
        served = image_files.read_image(tmp_path / f"served_{name}")
        assert np.abs(served - image_files.read_image(tmp_path / f"ref_{name}")).max() <= 1 / 255 + 1e-7


def test_tiling_off_runs_the_signature_whole(repository, models, monkeypatch):
    monkeypatch.setattr(repository, "tiling", serving.TileSettings(0))
    x = images(22, (1, *SHAPE, 3))
    _, _, outputs = repository.run(MODEL_NAME, None, "serving_default", {"images": x})
    assert np.abs(outputs["restored"] - expected_output(models[1][2], x)).max() < 1e-5


# --------------------------------------------------------------------------
# Refusals and the pixel budget.
# --------------------------------------------------------------------------


def test_an_image_above_max_image_pixels_is_refused_with_400(server, repository, monkeypatch):
    monkeypatch.setattr(repository, "max_image_pixels", 1000)
    status, _, answer = _post(server, {"inputs": images(23, (1, *SHAPE, 3)).tolist()})
    assert status == 400
    assert answer == {"error": "input 'images': image 0 is 70x40 = 2800 pixels, more than the limit of 1000 "
                               "(--max_image_pixels); send a smaller image"}
    status, _, answer = _post(server, {"inputs": images(24, (3, 20, 20, 3)).tolist()})
    assert status == 400
    assert answer["error"].startswith("input 'images': images 0 to 2 have 1200 pixels in all, more than the limit")


def test_a_request_waits_for_the_pixel_budget_then_gets_503(repository, gated):
    pixels = SHAPE[0] * SHAPE[1]
    server, thread = start_server(repository, max_concurrent=4, max_inflight_pixels=pixels + 1000,
                                  queue_timeout=1.5, request_timeout=30.0)
    limiter = server.limiter
    body = {"inputs": images(25, (1, *SHAPE, 3)).tolist()}
    try:
        first, first_result = _in_thread(_post, server, body, "first")
        wait_for(lambda: gated.calls == 2, what="the first request to restore its first tile")
        assert limiter.pixels_in_use() == (pixels, 0)
        # A small request fits beside it and is answered at once.
        assert _post(server, {"inputs": images(26, (1, 16, 16, 3)).tolist()})[0] == 200
        # A second large one does not fit: it waits for the budget, then is refused as busy.
        status, response, answer = _post(server, body, "second")
        assert status == 503 and response.getheader("Retry-After") == "1"
        assert answer == {"error": f"the server is busy: the {pixels} pixels of this request did not fit within "
                                   f"1.5 s in the {pixels + 1000} pixels that predictions may hold at once "
                                   f"(--max_inflight_pixels; {pixels} in use); retry later"}
        assert _progress(server, "second")[1]["state"] == "failed"
        # A third one waits until the first ends, then runs.
        third, third_result = _in_thread(_post, server, body, "third")
        wait_for(lambda: limiter.pixels_in_use() == (pixels, 1), what="the third request to wait for pixels")
        assert _progress(server, "third")[1]["state"] == "waiting"
        gated.release.set()
        first.join(WAIT_SECONDS)
        third.join(WAIT_SECONDS)
        assert first_result["value"][0] == 200 and third_result["value"][0] == 200
        np.testing.assert_array_equal(first_result["value"][2]["outputs"], third_result["value"][2]["outputs"])
        assert limiter.pixels_in_use() == (0, 0) and limiter.refused == 1
    finally:
        gated.release.set()
        stop_server(server, thread)


# --------------------------------------------------------------------------
# Progress per tile.
# --------------------------------------------------------------------------


def test_progress_counts_tiles_while_running_and_after(server, gated):
    body = {"inputs": images(27, (1, *SHAPE, 3)).tolist()}
    request, result = _in_thread(_post, server, body, "photo-1")
    wait_for(lambda: _progress(server, "photo-1")[1].get("tiles_done") == 1, what="the first tile to be done")
    status, snapshot = _progress(server, "photo-1")
    assert status == 200
    assert snapshot["state"] == "running" and snapshot["tiles_total"] == TILES
    assert snapshot["model"] == MODEL_NAME and snapshot["pixels"] == SHAPE[0] * SHAPE[1]
    assert snapshot["eta_seconds"] is not None and snapshot["eta_seconds"] >= 0
    gated.release.set()
    request.join(WAIT_SECONDS)
    status, response, _ = result["value"]
    assert status == 200 and response.getheader("X-Request-Id") == "photo-1"
    status, snapshot = _progress(server, "photo-1")
    assert (snapshot["state"], snapshot["tiles_done"], snapshot["tiles_total"], snapshot["eta_seconds"],
            snapshot["status"]) == ("done", TILES, TILES, 0.0, 200)


def test_progress_of_small_unknown_and_bad_requests(server):
    status, response, _ = _post(server, {"inputs": images(28, (1, 8, 8, 3)).tolist()})
    assert status == 200
    generated = response.getheader("X-Request-Id")
    assert generated and len(generated) == 32  # made up by the server
    status, snapshot = _progress(server, generated)
    assert status == 200 and (snapshot["tiles_done"], snapshot["tiles_total"]) == (1, 1)
    assert _progress(server, "never-sent") == (404, {"error": "no request 'never-sent' is known here (not arrived "
                                                              "yet, or ended more than 300 s ago)"})
    status, answer = _progress(server, "bad%20id")
    assert status == 400 and "is not 1 to 128 letters" in answer["error"]
    status, _, answer = _post(server, {"inputs": images(29, (1, 8, 8, 3)).tolist()}, request_id="a/b")
    assert status == 400 and "is not 1 to 128 letters" in answer["error"]


def test_client_reports_tile_progress_of_a_big_image(server, restorer, tmp_path, gated, monkeypatch):
    gated.pass_calls = 3
    source = tmp_path / "in" / "big.png"
    image_files.write_image(source, np.random.default_rng(30).random((*SHAPE, 3)))
    seen = []

    def on_progress(snapshot):
        seen.append(snapshot)
        if snapshot["tiles_done"] >= 3:
            gated.release.set()

    png = client.restore_bytes_rest(url(server), MODEL_NAME, read_bytes(source), on_progress=on_progress,
                                    poll_seconds=0.02)
    assert any(s["state"] == "running" and s["tiles_total"] == TILES and s["tiles_done"] == 3 for s in seen), seen
    (tmp_path / "served.png").write_bytes(png)
    inference.restore_file(restorer, source, tmp_path / "restored.png", tile=TILE, overlap=OVERLAP)
    np.testing.assert_array_equal(image_files.read_image(tmp_path / "served.png"),
                                  image_files.read_image(tmp_path / "restored.png"))

    class Terminal:
        text = ""

        def write(self, text):
            Terminal.text += text

        def flush(self):
            pass

        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Terminal())

    def restore_file(input_path, output_path, on_progress=None):
        return client._restore_file(  # pylint: disable=protected-access
            lambda data: client.restore_bytes_rest(url(server), MODEL_NAME, data, on_progress=on_progress,
                                                   poll_seconds=0.02), input_path, output_path)

    written, failures = client.restore_files([str(source)], tmp_path / "out", restore_file, track_tiles=True)
    assert failures == [] and len(written) == 1
    assert f"{TILES}/{TILES} tiles image 1/1" in Terminal.text, Terminal.text
