"""Tests of erlrestore.serving.grpc_api: PredictionService.Predict (when tensorflow-serving-api is installed)."""

import sys

import numpy as np
import pytest
from absl import app

from erlrestore import client, inference, serving
from erlrestore.cli import serve as serve_cli
from erlrestore.data import image_files
from serving_testing import (
    direct_restore_bytes,
    expected_output,
    exported_models,
    loaded_repository,
    images,
    parsed_serve_flags,
    read_bytes,
)


models = pytest.fixture(exported_models, scope="module", name="models")  # (base, {version: keras model})
repository = pytest.fixture(loaded_repository, scope="module", name="repository")


def _needs_grpc():
    pytest.importorskip("grpc")
    pytest.importorskip("tensorflow_serving.apis.prediction_service_pb2_grpc")


def test_grpc_missing_package_gives_a_clear_error(repository, monkeypatch):
    for name in [name for name in sys.modules if name.startswith("tensorflow_serving.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "tensorflow_serving", None)
    assert not serving.grpc_available()
    with pytest.raises(serving.GrpcUnavailableError, match="gRPC serving needs the tensorflow-serving-api package"):
        serving.make_grpc_server(repository, port=0)
    with pytest.raises(app.UsageError, match="--grpc_port=8500: gRPC serving needs the tensorflow-serving-api"):
        serve_cli.settings_from_flags(parsed_serve_flags("--grpc_port=8500"))


def test_grpc_predict(repository, models, tmp_path):
    _needs_grpc()
    grpc_server, port = serving.make_grpc_server(repository, "127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    try:
        x = images(7, (1, 8, 8, 3))
        outputs = client.predict_grpc(target, "memd", {"images": x})
        assert np.abs(outputs["restored"] - expected_output(models[1][2], x)).max() < 1e-5
        outputs = client.predict_grpc(target, "memd", {"images": x}, version=1)
        assert np.abs(outputs["restored"] - expected_output(models[1][1], x)).max() < 1e-5
        image_files.write_image(tmp_path / "in" / "a.png", np.random.default_rng(8).random((12, 8, 3)))
        written = client.restore_file_grpc(target, "memd", tmp_path / "in" / "a.png", tmp_path / "out.png")
        assert read_bytes(written) == direct_restore_bytes(models, 2, read_bytes(tmp_path / "in" / "a.png"))
        with pytest.raises(client.ServingClientError, match="^NOT_FOUND: model 'nope' is not served here"):
            client.predict_grpc(target, "nope", {"images": x})
        with pytest.raises(client.ServingClientError, match=r"^INVALID_ARGUMENT: input 'images' has shape \[1, 8, 8\]"):
            client.predict_grpc(target, "memd", {"images": x[..., 0]})
        with pytest.raises(client.ServingClientError, match="^INVALID_ARGUMENT: serving signature name 'nope'"):
            client.predict_grpc(target, "memd", {"images": x}, signature_name="nope")
    finally:
        grpc_server.stop(None)


def test_grpc_predictions_share_the_limiter(repository):
    _needs_grpc()
    limiter = serving.PredictionLimiter(max_concurrent=1, max_queue=0, queue_timeout=0.2)
    grpc_server, port = serving.make_grpc_server(repository, "127.0.0.1", 0, limiter=limiter)
    try:
        x = images(9, (1, 4, 4, 3))
        with limiter.admitted(), limiter.running():  # the one slot is taken (as by a REST prediction)
            with pytest.raises(client.ServingClientError, match=r"^UNAVAILABLE: the server is busy"):
                client.predict_grpc(f"127.0.0.1:{port}", "memd", {"images": x})
        assert client.predict_grpc(f"127.0.0.1:{port}", "memd", {"images": x})["restored"].shape == x.shape
    finally:
        grpc_server.stop(None)


def test_grpc_tiles_large_images_and_refuses_oversized_ones(repository, models, monkeypatch):
    _needs_grpc()
    monkeypatch.setattr(repository, "tiling", serving.TileSettings(32, 8))
    grpc_server, port = serving.make_grpc_server(repository, "127.0.0.1", 0)
    target = f"127.0.0.1:{port}"
    try:
        x = images(10, (1, 40, 70, 3))
        restorer = inference.load_restorer(str(models[0] / "memd"))
        expected = inference.restore_tiled(restorer, x[0], tile=32, overlap=8)
        np.testing.assert_array_equal(client.predict_grpc(target, "memd", {"images": x})["restored"][0], expected)
        monkeypatch.setattr(repository, "max_image_pixels", 1000)
        with pytest.raises(client.ServingClientError, match=r"^INVALID_ARGUMENT: input 'images': image 0 is 70x40 = "
                                                            r"2800 pixels, more than the limit of 1000"):
            client.predict_grpc(target, "memd", {"images": x})
    finally:
        grpc_server.stop(None)
