"""erlrestore.restore: one call on a NumPy array: pixel types, grey, clipping, refusals, tiling, the model cache."""

import os

import keras
import numpy as np
import pytest

import erlrestore
from erlrestore import api, inference, pretrained


def stretch_model():
    """A 1x1 convolution giving ``2 x - 0.75`` per channel: outputs below 0 and above 1; at 8 and 16 bits
    ``2 u - 191.25`` and ``2 v - 49151.25`` levels, so rounding to the nearest level differs from truncation
    and is never a tie."""
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)], name="stretch")
    model.set_weights([2.0 * np.eye(3, dtype=np.float32)[np.newaxis, np.newaxis], np.full(3, -0.75, np.float32)])
    return model


def stretched(image):
    return np.clip(2.0 * image.astype(np.float64) - 0.75, 0.0, 1.0)


@pytest.fixture(scope="module")
def model():
    return stretch_model()


@pytest.fixture(autouse=True)
def empty_cache():
    api.clear_cache()
    yield
    api.clear_cache()


def ramp(height, width, seed=0):
    """Float64 values over all of [0, 1] (both ends included)."""
    values = np.random.default_rng(seed).random((height, width, 3))
    values.flat[:2] = 0.0, 1.0
    return values


def test_float_input_gives_float32_clipped_to_the_unit_range(model):
    image = ramp(20, 28)
    restored = erlrestore.restore(image, model=model)
    assert restored.dtype == np.float32 and restored.shape == (20, 28, 3)
    assert restored.min() == 0.0 and restored.max() == 1.0  # the model's -0.75 and 1.25 are clipped
    np.testing.assert_allclose(restored, stretched(image), atol=1e-6)


def test_uint8_and_uint16_come_back_rounded_in_their_own_type(model):
    image8 = np.arange(20 * 24 * 3, dtype=np.int64).reshape(20, 24, 3) % 256
    restored8 = erlrestore.restore(image8.astype(np.uint8), model=model)
    assert restored8.dtype == np.uint8
    np.testing.assert_array_equal(restored8, np.clip(2 * image8 - 191, 0, 255))

    image16 = np.random.default_rng(1).integers(0, 65536, (20, 24, 3))
    restored16 = erlrestore.restore(image16.astype(np.uint16), model=model)
    assert restored16.dtype == np.uint16
    np.testing.assert_array_equal(restored16, np.clip(2 * image16 - 49151, 0, 65535))


def test_grey_images_are_replicated_to_rgb(model):
    grey = np.random.default_rng(2).integers(0, 256, (18, 22)).astype(np.uint8)
    rgb = np.repeat(grey[:, :, np.newaxis], 3, axis=2)
    expected = erlrestore.restore(rgb, model=model)
    for image in (grey, grey[:, :, np.newaxis]):
        restored = erlrestore.restore(image, model=model)
        assert restored.shape == (18, 22, 3) and restored.dtype == np.uint8
        np.testing.assert_array_equal(restored, expected)


def test_float_data_on_the_0_255_scale_is_refused(model):
    image = ramp(16, 16)
    with pytest.raises(ValueError, match=r"\[0, 1\].*up to 255.*[Dd]ivide it by 255.*uint8"):
        erlrestore.restore(image * 255.0, model=model)
    # Rounding noise just above 1 is not 0-255 data: clipped and restored.
    nudged = image.copy()
    nudged.flat[1] = 1.0 + 1e-4
    np.testing.assert_allclose(erlrestore.restore(nudged, model=model), stretched(image), atol=1e-6)
    with pytest.raises(ValueError, match="down to -1"):
        erlrestore.restore(image * 2.0 - 1.0, model=model)  # [-1, 1] data
    with pytest.raises(ValueError, match="NaN"):
        erlrestore.restore(np.full((8, 8, 3), np.nan), model=model)


@pytest.mark.parametrize("shape,dtype", [((8, 8, 4), np.uint8), ((8, 8, 3), np.int32), ((8, 8, 3), bool),
                                         ((0, 8, 3), np.uint8), ((8,), np.uint8)])
def test_other_shapes_and_pixel_types_are_refused(model, shape, dtype):
    with pytest.raises(ValueError):
        erlrestore.restore(np.zeros(shape, dtype), model=model)


def mean_restorer(batch):
    """A restorer whose output depends on the whole input (its mean): tiled and whole restorations differ."""
    batch = np.asarray(batch, np.float32)
    return np.clip(0.5 * batch + batch.mean(axis=(1, 2), keepdims=True) - 0.1, 0.0, 1.0)


def test_images_larger_than_the_tile_go_through_restore_tiled():
    image = ramp(70, 90, seed=3).astype(np.float32)
    seen = []

    def spy(batch):
        seen.append(np.shape(batch))
        return mean_restorer(batch)

    restored = erlrestore.restore(image, model=spy, tile=32, overlap=8)
    assert len(seen) > 1 and all(max(shape[1:3]) <= 32 for shape in seen)
    np.testing.assert_array_equal(restored, inference.restore_tiled(mean_restorer, image, tile=32, overlap=8))
    whole = erlrestore.restore(image, model=mean_restorer, tile=None)
    assert np.abs(whole - restored).max() > 1e-3  # so the comparison above tells tiled from whole
    ensembled = erlrestore.restore(image, model=mean_restorer, tile=32, overlap=8, self_ensemble=True)
    np.testing.assert_array_equal(
        ensembled, inference.restore_tiled(mean_restorer, image, tile=32, overlap=8, self_ensemble=True)
    )
    with pytest.raises(ValueError, match="larger than twice the overlap"):
        erlrestore.restore(image, model=mean_restorer, tile=40, overlap=32)


@pytest.fixture
def count_loads(monkeypatch):
    loads = []
    load = inference.load_restorer

    def counting(spec, *args, **kwargs):
        loads.append(os.fspath(spec))
        return load(spec, *args, **kwargs)

    monkeypatch.setattr(inference, "load_restorer", counting)
    return loads


def test_pretrained_models_are_loaded_once(tmp_path, monkeypatch, count_loads):
    pretrained.save(stretch_model(), "tiny-stretch", {"task": "derain", "description": "a test model"},
                    folder=str(tmp_path))
    monkeypatch.setenv(pretrained.FOLDER_VARIABLE, str(tmp_path))
    image = (ramp(12, 16) * 255).astype(np.uint8)
    first = erlrestore.restore(image, model="pretrained:tiny-stretch")
    second = erlrestore.restore(image, model="pretrained:tiny-stretch")
    assert count_loads == ["pretrained:tiny-stretch"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, erlrestore.restore(image, model=stretch_model()))
    api.clear_cache()
    erlrestore.restore(image, model="pretrained:tiny-stretch")
    assert len(count_loads) == 2


def test_model_files_are_loaded_again_only_when_they_change(tmp_path, count_loads):
    path = tmp_path / "stretch.keras"
    stretch_model().save(path)
    image = ramp(12, 16).astype(np.float32)
    erlrestore.restore(image, model=path)
    erlrestore.restore(image, model=str(path))
    assert len(count_loads) == 1
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # retrained in place
    erlrestore.restore(image, model=path)
    assert len(count_loads) == 2


@pytest.mark.slow  # starts a Python process
def test_import_is_cheap_and_restore_is_exported_lazily():
    import subprocess
    import sys

    code = ("import sys, erlrestore; assert 'tensorflow' not in sys.modules and 'erlrestore.api' not in sys.modules; "
            "from erlrestore import restore; assert restore is erlrestore.api.restore; "
            "assert 'tensorflow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
