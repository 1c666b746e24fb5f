"""erlrestore.inference and erlrestore-restore: loading, tiling, files, refusals."""

import io
import os
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import inference
from erlrestore.data import image_files
from erlrestore.models import memd


def tiny_memd(seed=0):
    """A fully convolutional MEMD- (no FUS pooling) of depth 2 with a random output convolution.

    Untrained, its global residual makes it the identity; a random (small)
    output convolution makes it a non-trivial, mostly unclipped map whose
    receptive-field radius is 23 px (measured by perturbing one pixel).
    """
    model = memd.build_memd(memd.memd_config("MEMD-", depth=2, base_filters=4, dense_layers=2, growth_rate=4))
    rng = np.random.default_rng(seed)
    output = model.get_layer("mde").get_layer("output")
    output.set_weights([rng.normal(0.0, 0.1, w.shape).astype(np.float32) for w in output.get_weights()])
    return model


@pytest.fixture(scope="module")
def model():
    return tiny_memd()


@pytest.fixture(scope="module")
def restorer(model):
    return inference.restorer_from_model(model)


def identity(batch):
    return np.asarray(batch, dtype=np.float32)


def random_image(height, width, seed=1):
    return np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)


def write_png(path, rgb, dtype=np.uint8):
    scale = 255 if dtype == np.uint8 else 65535
    assert cv2.imwrite(str(path), np.rint(rgb * scale).astype(dtype)[..., ::-1])


# --------------------------------------------------------------------------
# Tiling.
# --------------------------------------------------------------------------


def test_tiled_matches_untiled_and_seams_show_without_overlap():
    # Seeded: the guards below need a model far from the identity, which about 1 random init in 100 was not.
    keras.utils.set_random_seed(0)
    restorer = inference.restorer_from_model(tiny_memd())
    assert restorer.multiple == 4
    image = random_image(230, 262)
    full = restorer(image[np.newaxis])[0]
    assert np.abs(full - image).mean() > 0.05  # the model is not the identity
    # overlap 96: the window drops 24 px (>= the 23 px receptive-field radius) at inner edges.
    tiled = inference.restore_tiled(restorer, image, tile=200, overlap=96)
    np.testing.assert_allclose(tiled, full, rtol=0, atol=1e-5)
    # overlap 64 (16 px dropped, less than the radius): still close, as the influence decays.
    assert np.abs(inference.restore_tiled(restorer, image, tile=160, overlap=64) - full).max() < 1e-4
    # Without overlap the tile edges show: tiling really happens.
    seams = np.abs(inference.restore_tiled(restorer, image, tile=200, overlap=0) - full)
    assert seams.max() > 0.05
    # Tiles off the model's 4-pixel down-sampling grid (last tile at x=62) differ everywhere in them.
    unaligned = np.abs(inference.restore_tiled(restorer, image, tile=200, overlap=96, align=1) - full)
    assert unaligned.max() > 0.05


def recording(restorer):
    """``(spy, calls)``: ``spy`` runs ``restorer`` and appends each batch's shape to ``calls``."""
    calls = []

    def spy(batch):
        calls.append(batch.shape)
        return restorer(batch)

    return spy, calls


def test_small_image_is_one_call(restorer):
    image = random_image(37, 51)
    spy, calls = recording(restorer)
    out = inference.restore_tiled(spy, image, tile=64, overlap=16)
    assert calls == [(1, 37, 51, 3)]
    np.testing.assert_array_equal(out, restorer(image[np.newaxis])[0])


def test_axis_window_golden_values():
    # size 40, tile 24, overlap 8, align 1: segments [0, 24) and [16, 40);
    # 2 px dropped at inner edges, a 4-px raised-cosine ramp next to them.
    tiles = list(inference.tile_grid(10, 40, tile=24, overlap=8, align=1))
    assert [(t.y0, t.y1, t.x0, t.x1) for t in tiles] == [(0, 10, 0, 24), (0, 10, 16, 40)]
    rise = 0.5 - 0.5 * np.cos(np.pi * (np.arange(4) + 0.5) / 4)  # 0.0381, 0.3087, 0.6913, 0.9619
    left = np.r_[np.ones(18), rise[::-1], 0, 0]
    right = np.r_[0, 0, rise, np.ones(18)]
    np.testing.assert_allclose(tiles[0].weight, np.tile(left, (10, 1)), atol=1e-7)
    np.testing.assert_allclose(tiles[1].weight, np.tile(right, (10, 1)), atol=1e-7)
    # Overlapping by exactly the overlap, the two windows sum to 1 (cross-fade).
    np.testing.assert_allclose(left[16:] + right[:8], 1.0, atol=1e-7)


@pytest.mark.parametrize("align", [1, 16])
def test_weights_cover_every_pixel_at_odd_sizes(align):
    height, width = 203, 131
    total = np.zeros((height, width))
    tiles = list(inference.tile_grid(height, width, tile=64, overlap=16, align=align))
    for t in tiles:
        assert t.y1 - t.y0 <= 64 and t.x1 - t.x0 <= 64
        assert t.y0 % align == 0 and t.x0 % align == 0
        assert t.weight.shape == (t.y1 - t.y0, t.x1 - t.x0) and t.weight.min() >= 0
        total[t.y0 : t.y1, t.x0 : t.x1] += t.weight
    assert total.min() > 0.01  # every pixel, border ones included
    assert {t.y1 for t in tiles} >= {height} and {t.x1 for t in tiles} >= {width}
    assert len({(t.y0, t.x0) for t in tiles}) == len(tiles) >= 12
    # The identity restorer gives the image back through the weighted average.
    image = random_image(height, width)
    np.testing.assert_allclose(
        inference.restore_tiled(identity, image, tile=64, overlap=16, align=align), image, atol=1e-6
    )


def test_restorer_only_sees_bounded_tiles():
    image = random_image(500, 700)
    shapes = []

    def spy(batch):
        shapes.append(batch.shape)
        return identity(batch)

    out = inference.restore_tiled(spy, image, tile=128, overlap=16)
    # Stride 112 (128 - 16, a multiple of the default alignment 16): 5 rows x 7 columns.
    assert len(shapes) == 35
    assert all(b == 1 and h <= 128 and w <= 128 and c == 3 for b, h, w, c in shapes)
    np.testing.assert_allclose(out, image, atol=1e-6)

    shapes.clear()
    batched = inference.restore_tiled(spy, image, tile=128, overlap=16, tile_batch=4)
    assert max(b for b, *_ in shapes) == 4
    assert all(h <= 128 and w <= 128 for _, h, w, _ in shapes)
    np.testing.assert_array_equal(batched, out)


def test_tiling_parameters_are_checked():
    image = random_image(8, 8)
    with pytest.raises(ValueError, match=r"tile \(64\) must be larger than twice the overlap \(32\)"):
        inference.restore_tiled(identity, image, tile=64, overlap=32)
    with pytest.raises(ValueError, match="overlap must be an integer >= 0, got -1"):
        inference.restore_tiled(identity, image, tile=64, overlap=-1)
    with pytest.raises(ValueError, match=r"tile - overlap \(48\) is smaller than the alignment 64"):
        inference.restore_tiled(identity, image, tile=64, overlap=16, align=64)
    with pytest.raises(ValueError, match=r"expected an H x W x 3 image, got shape \(8, 8\)"):
        inference.restore_tiled(identity, image[:, :, 0])


def test_tiling_parameters_are_checked_once_per_call(tmp_path, monkeypatch):
    """restore_paths checks the parameters once for all its files; restore_tiled once for all its tiles, the
    eight transforms of the self-ensemble and the working scale; the clear errors stay."""
    from erlrestore.inference import tiling

    checks = []
    real_check = tiling.check_tiling
    monkeypatch.setattr(tiling, "check_tiling", lambda *args: checks.append(args) or real_check(*args))
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        write_png(src / name, random_image(40, 70))
    written, failures = inference.restore_paths(identity, src, tmp_path / "out", tile=32, overlap=8,
                                                self_ensemble=True, show_progress=True)
    assert failures == [] and len(written) == 3
    assert checks == [(32, 8, inference.DEFAULT_ALIGN)]
    checks.clear()
    inference.restore_tiled(identity, random_image(90, 70), tile=32, overlap=8, self_ensemble=True, work_size=30)
    assert len(checks) == 1
    checks.clear()
    inference.restore_file(identity, src / "a.png", tmp_path / "one.png", tile=32, overlap=8, self_ensemble=True)
    assert len(checks) == 1
    with pytest.raises(ValueError, match=r"tile \(16\) must be larger than twice the overlap \(8\)"):
        inference.restore_paths(identity, src, tmp_path / "bad", tile=16, overlap=8, show_progress=False)
    with pytest.raises(ValueError, match=r"tile \(16\) must be larger than twice the overlap \(8\)"):
        inference.restore_file(identity, src / "a.png", tmp_path / "bad.png", tile=16, overlap=8)
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad.png").exists()


# --------------------------------------------------------------------------
# Loading.
# --------------------------------------------------------------------------


class _Serving(tf.Module):
    """A SavedModel with the contract's serving_default signature, for when erlrestore.export is absent."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def serve(self, images):
        return {"restored": tf.clip_by_value(self.model(images, training=False), 0.0, 1.0)}


def write_savedmodel(model, base, name):
    """Writes the next version (largest + 1) of ``base/name``; returns its folder.

    Uses ``erlrestore.export.export_savedmodel`` when that module exists,
    else a tf.Module with the contract's ``serving_default`` signature.
    """
    before = set(os.listdir(base / name)) if (base / name).is_dir() else set()
    try:
        from erlrestore.export import export_savedmodel
    except ImportError:
        export_savedmodel = None
    if export_savedmodel is not None:
        export_savedmodel(model, str(base), name)
    else:
        version = max((int(v) for v in before if v.isdigit()), default=0) + 1
        module = _Serving(model)
        tf.saved_model.save(module, str(base / name / str(version)), signatures={"serving_default": module.serve})
    (new,) = set(os.listdir(base / name)) - before
    assert (base / name / new / "saved_model.pb").is_file()
    return base / name / new


def test_load_keras_file_run_folder_and_savedmodels(model, restorer, tmp_path):
    image = random_image(20, 28)[np.newaxis]
    expected = restorer(image)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "final.keras")
    for path in (run_dir / "final.keras", run_dir):
        loaded = inference.load_restorer(path)
        assert loaded.multiple == 4
        np.testing.assert_allclose(loaded(image), expected, atol=1e-6)

    base = tmp_path / "savedmodels"
    # Version 1: an untrained MEMD (the identity); version 2: the random model.
    write_savedmodel(memd.build_memd(memd.memd_config("MEMD-", depth=2, base_filters=4)), base, "memd")
    version = write_savedmodel(model, base, "memd")
    from_version = inference.load_restorer(version)
    assert from_version.multiple is None
    np.testing.assert_allclose(from_version(image), expected, atol=1e-6)
    # A model folder: the largest integer version wins, compared as numbers ("10" > "9").
    os.rename(base / "memd" / "1", base / "memd" / "9")
    os.rename(version, base / "memd" / "10")
    (base / "memd" / "99-tmp").mkdir()
    latest = inference.load_restorer(base / "memd")
    assert latest.source == str(base / "memd" / "10")
    np.testing.assert_allclose(latest(image), expected, atol=1e-6)
    # Different sizes reuse the one traced function.
    latest(random_image(9, 13)[np.newaxis])
    assert latest._function.experimental_get_tracing_count() == 1


def test_load_errors_name_the_path(tmp_path):
    with pytest.raises(image_files.DataError, match=f"model path {tmp_path / 'nope'} does not exist"):
        inference.load_restorer(tmp_path / "nope")
    with pytest.raises(image_files.DataError, match=f"no model found in folder {tmp_path}: expected final.keras"):
        inference.load_restorer(tmp_path)
    (tmp_path / "model.txt").write_text("x")
    with pytest.raises(image_files.DataError, match="model file .*model.txt is not a .keras or .h5 file"):
        inference.load_restorer(tmp_path / "model.txt")
    (tmp_path / "bad.keras").write_bytes(b"not a zip")
    with pytest.raises(image_files.DataError, match="could not load model .*bad.keras"):
        inference.load_restorer(tmp_path / "bad.keras")


def test_load_keras_model_file_run_folder_and_errors(model, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    model.save(run_dir / "final.keras")
    image = random_image(12, 20)[np.newaxis]
    for path in (run_dir / "final.keras", run_dir, str(run_dir)):
        loaded = inference.load_keras_model(path)
        assert isinstance(loaded, keras.Model)
        np.testing.assert_allclose(loaded(image, training=False).numpy(), model(image, training=False).numpy(),
                                   atol=1e-6)
    with pytest.raises(image_files.DataError, match=f"model file {tmp_path / 'missing.keras'} does not exist"):
        inference.load_keras_model(tmp_path / "missing.keras")
    (tmp_path / "empty").mkdir()
    with pytest.raises(image_files.DataError, match=f"run folder {tmp_path / 'empty'} has no final.keras"):
        inference.load_keras_model(tmp_path / "empty")


def test_savedmodel_versions_named_by_non_ascii_digits_are_ignored(model, restorer, tmp_path):
    base = tmp_path / "savedmodels"
    version = write_savedmodel(model, base, "m")
    # "²" passes str.isdigit() but is no version: it must neither crash the lookup nor be chosen.
    os.rename(version, base / "m" / "\u00b2")
    with pytest.raises(image_files.DataError, match="no model found in folder"):
        inference.load_restorer(base / "m")
    os.symlink(base / "m" / "\u00b2", base / "m" / "3")
    assert inference.load_restorer(base / "m").source == str(base / "m" / "3")


def test_batch_statistics_keras_only(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    image = random_image(12, 20)[np.newaxis]
    keras_batch = inference.load_restorer(path, batch_statistics=True)
    assert isinstance(keras_batch, inference.KerasRestorer) and keras_batch.batch_statistics
    # The MEMD has no batch norm: both modes agree (the mode itself is tested on pix2pix in test_evaluation).
    np.testing.assert_allclose(keras_batch(image), inference.load_restorer(path)(image), atol=1e-6)
    version = write_savedmodel(model, tmp_path / "savedmodels", "m")
    for where in (version, tmp_path / "savedmodels" / "m"):
        with pytest.raises(image_files.DataError, match=f"SavedModel {version} is frozen in inference mode: batch "
                                               r"statistics \(--norm_statistics=batch\) need a Keras model"):
            inference.load_restorer(where, batch_statistics=True)
    frozen = inference.load_restorer(version)
    assert inference.as_restorer(frozen) is frozen
    with pytest.raises(ValueError, match="is not a Keras model: batch statistics need a Keras model"):
        inference.as_restorer(frozen, batch_statistics=True)
    switched = inference.as_restorer(inference.restorer_from_model(model), batch_statistics=True)
    assert switched.batch_statistics and switched.model is model
    with pytest.raises(TypeError, match="expected a Keras model, a model path or a restorer, got int"):
        inference.as_restorer(3)


def test_batch_statistics_dropout_is_seeded_per_call(tmp_path):
    # pix2pix's test mode turns dropout on; its masks come from fixed seeds set before every call, so an image
    # restores the same way in every process and whatever was restored before it (and unlike inference mode).
    import keras

    from erlrestore.models import pix2pix

    config = pix2pix.GeneratorConfig(levels=3, base_filters=4, max_filters=8, norm="batch", dropout=0.5,
                                     dropout_blocks=1)
    model = pix2pix.build_generator(config)
    assert any(isinstance(layer, keras.layers.Dropout) for layer in model._flatten_layers())
    model.save(tmp_path / "g.keras")
    image, other = random_image(16, 24)[np.newaxis], random_image(16, 24, seed=5)[np.newaxis]
    first = inference.load_restorer(tmp_path / "g.keras", batch_statistics=True)
    alone = first(image)
    first(other)
    np.testing.assert_array_equal(first(image), alone)
    # Another load (other seed-generator states at load) gives the same output.
    np.testing.assert_array_equal(inference.load_restorer(tmp_path / "g.keras", batch_statistics=True)(image), alone)
    assert not np.allclose(inference.load_restorer(tmp_path / "g.keras")(image), alone, atol=1e-4)


def test_whole_image_mode_is_one_call(restorer):
    image = random_image(40, 70)
    counting, calls = recording(restorer)
    whole = inference.restore_tiled(counting, image, tile=None)
    assert calls == [(1, 40, 70, 3)]
    np.testing.assert_array_equal(whole, restorer(image[np.newaxis])[0])
    calls.clear()
    ensembled = inference.restore_tiled(counting, image, tile=None, self_ensemble=True)
    assert calls == [(1, 40, 70, 3)] * 4 + [(1, 70, 40, 3)] * 4
    np.testing.assert_allclose(ensembled, inference.restore_tiled(restorer, image, tile=512, self_ensemble=True),
                               atol=1e-6)


# --------------------------------------------------------------------------
# x8 self-ensemble.
# --------------------------------------------------------------------------


def shifted(x, dy, dx):
    """``out[..., i, j, :] = x[..., i - dy, j - dx, :]``, zero where that falls outside."""
    out = np.zeros_like(x)
    height, width = x.shape[-3], x.shape[-2]
    out[..., max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0), :] = x[
        ..., max(-dy, 0) : height - max(dy, 0), max(-dx, 0) : width - max(dx, 0), :
    ]
    return out


def shift_restorer(batch):
    """A local model that is not rotation/flip equivariant: ``0.75 x + 0.25 x[i, j - 1]`` (zero padded)."""
    batch = np.asarray(batch, dtype=np.float32)
    return 0.75 * batch + 0.25 * shifted(batch, 0, 1)


def shift_ensemble_by_hand(image):
    # The 8 transforms carry "one pixel to the left" to each of the 4 directions twice.
    neighbours = shifted(image, 0, 1) + shifted(image, 0, -1) + shifted(image, 1, 0) + shifted(image, -1, 0)
    return 0.75 * image + 0.25 * neighbours / 4


def ramp_restorer(step):
    """Adds ``step * column`` to every pixel: not equivariant, and it depends on the width it is given."""
    def restore(batch):
        batch = np.asarray(batch, dtype=np.float32)
        return batch + np.float32(step) * np.arange(batch.shape[2], dtype=np.float32)[None, None, :, None]
    return restore


def shift_conv_model():
    """``shift_restorer`` as a saveable Keras model: a fixed 3x3 convolution, zero padded."""
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, padding="same", use_bias=False)])
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        kernel[1, 1, c, c] = 0.75
        kernel[1, 0, c, c] = 0.25  # cross-correlation: x[i, j - 1]
    model.layers[-1].set_weights([kernel])
    return model


def test_ensemble_transforms_are_the_eight_flips_and_rotations():
    x = random_image(3, 5)
    transforms = inference.ENSEMBLE_TRANSFORMS
    assert transforms == ((False, 0), (False, 1), (False, 2), (False, 3), (True, 0), (True, 1), (True, 2), (True, 3))
    moved = [inference.transform_image(x, t) for t in transforms]
    expected = [np.rot90(x, k) for k in range(4)] + [np.rot90(x[:, ::-1], k) for k in range(4)]
    for m, e in zip(moved, expected):
        np.testing.assert_array_equal(m, e)
    assert [m.shape[:2] for m in moved] == [(3, 5), (5, 3)] * 4
    for i in range(8):
        for j in range(i):
            assert moved[i].shape != moved[j].shape or not np.array_equal(moved[i], moved[j])
    for t, m in zip(transforms, moved):
        np.testing.assert_array_equal(inference.untransform_image(m, t), x)
    batch = np.stack([x, 0.5 * x])
    for t in transforms:
        np.testing.assert_array_equal(inference.transform_image(batch, t, axes=(1, 2))[1],
                                      inference.transform_image(0.5 * x, t))


@pytest.mark.parametrize("height, width", [(13, 21), (16, 16), (21, 13)])
def test_self_ensemble_of_equivariant_models_is_the_plain_output(height, width):
    image = random_image(height, width)
    np.testing.assert_allclose(
        inference.restore_tiled(identity, image, tile=64, overlap=8, self_ensemble=True), image, atol=1e-6
    )
    keras.utils.set_random_seed(5)
    per_pixel = keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(8, 1, activation="tanh"),
        keras.layers.Conv2D(3, 1, activation="sigmoid"),
    ])
    restorer = inference.restorer_from_model(per_pixel)
    plain = restorer(image[np.newaxis])[0]
    assert np.abs(plain - image).mean() > 0.02  # not the identity
    for tile_batch in (1, 8):
        ensembled = inference.restore_tiled(restorer, image, tile=64, overlap=8, tile_batch=tile_batch,
                                            self_ensemble=True)
        np.testing.assert_allclose(ensembled, plain, atol=1e-6)


@pytest.mark.parametrize("height, width", [(12, 20), (20, 12), (15, 15)])
def test_self_ensemble_of_a_ramp_adding_model_by_hand(height, width):
    step = 0.02
    image = 0.5 * random_image(height, width)
    calls = []

    def spy(batch):
        calls.append(batch.shape)
        return ramp_restorer(step)(batch)

    plain = inference.restore_tiled(spy, image, tile=32, overlap=8)
    np.testing.assert_allclose(plain, image + step * np.arange(width)[None, :, None], atol=1e-6)
    # Under the 8 transforms the ramp runs along +x, -x, +y and -y twice each; going back
    # and averaging, j + (W - 1 - j) and i + (H - 1 - i) leave a constant step * (H + W - 2) / 4.
    expected = image + step * (height + width - 2) / 4
    for tile_batch, call_count in ((1, 8), (3, 4), (8, 2)):
        calls.clear()
        ensembled = inference.restore_tiled(spy, image, tile=32, overlap=8, tile_batch=tile_batch, self_ensemble=True)
        np.testing.assert_allclose(ensembled, expected, atol=1e-6)
        assert len(calls) == call_count  # one tile: the transforms of one shape are batched
        assert sorted({shape[1:3] for shape in calls}) == sorted({(height, width), (width, height)})
    np.testing.assert_allclose(
        inference.self_ensemble(lambda x: ramp_restorer(step)(x[np.newaxis])[0], image), expected, atol=1e-6
    )


def test_self_ensemble_with_tiling_on_a_non_square_image_larger_than_the_tile():
    image = random_image(37, 53)
    calls = []

    def spy(batch):
        calls.append(batch.shape)
        return shift_restorer(batch)

    expected = shift_ensemble_by_hand(image)
    out = inference.restore_tiled(spy, image, tile=24, overlap=8, align=1, self_ensemble=True)
    np.testing.assert_allclose(out, expected, atol=1e-5)
    assert all(h <= 24 and w <= 24 for _, h, w, _ in calls)
    tiles = len(list(inference.tile_grid(37, 53, tile=24, overlap=8, align=1)))
    assert tiles == 6 == len(list(inference.tile_grid(53, 37, tile=24, overlap=8, align=1)))
    assert len(calls) == 8 * tiles  # each transformed image tiled on its own
    # The same with batched tiles, the default alignment (16), and against the ensemble of whole images.
    np.testing.assert_allclose(
        inference.restore_tiled(shift_restorer, image, tile=24, overlap=8, tile_batch=4, self_ensemble=True),
        expected, atol=1e-5,
    )
    whole = inference.self_ensemble(lambda x: shift_restorer(x[np.newaxis])[0], image)
    np.testing.assert_allclose(whole, expected, atol=1e-6)
    # The model is not equivariant, so the ensemble really differs from one pass.
    plain = inference.restore_tiled(shift_restorer, image, tile=24, overlap=8, align=1)
    np.testing.assert_allclose(plain, shift_restorer(image[np.newaxis])[0], atol=1e-5)
    assert np.abs(plain - out).max() > 0.05


def test_self_ensemble_refuses_a_restorer_that_changes_the_shape():
    with pytest.raises(ValueError, match=r"restoring a transformed image of shape \(5, 3, 3\) gave shape \(3, 5, 3\)"):
        inference.self_ensemble(lambda x: np.zeros((3, 5, 3), np.float32), random_image(3, 5))


@pytest.mark.slow
def test_cli_self_ensemble_with_tiling(tmp_path):
    model_path = tmp_path / "shift.keras"
    shift_conv_model().save(model_path)
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "wide.png", random_image(37, 53))
    image = image_files.read_image(src / "wide.png")
    result = run_cli(f"--model={model_path}", f"--input={src}", f"--output_dir={tmp_path / 'out'}", "--tile=24",
                     "--overlap=8", "--align=1", "--self_ensemble")
    assert result.returncode == 0, result.stderr[-3000:]
    restored = image_files.read_image(tmp_path / "out" / "wide.png")
    np.testing.assert_allclose(restored, shift_ensemble_by_hand(image), atol=0.5 / 255 + 1e-5)
    assert np.abs(restored - shift_restorer(image[np.newaxis])[0]).max() > 0.05


# --------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------


def test_formats_and_bit_depths_are_kept(tmp_path):
    rng = np.random.default_rng(3)
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    deep = rng.integers(0, 65536, (12, 17, 3), dtype=np.uint16)
    assert cv2.imwrite(str(src / "deep.png"), deep[..., ::-1])
    assert cv2.imwrite(str(src / "deep.tif"), deep[..., ::-1])
    flat = rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)
    assert cv2.imwrite(str(src / "flat.png"), flat[..., ::-1])
    assert cv2.imwrite(str(src / "photo.jpg"), flat[..., ::-1])
    assert [inference.source_bit_depth(src / n) for n in ("deep.png", "deep.tif", "flat.png", "photo.jpg")] == [
        16,
        16,
        8,
        8,
    ]

    written, failures = inference.restore_paths(identity, src, out, tile=64, overlap=8, show_progress=False)
    assert failures == []
    assert sorted(os.path.basename(p) for p in written) == ["deep.png", "deep.tif", "flat.png", "photo.jpg"]
    for name in ("deep.png", "deep.tif"):
        stored = cv2.imread(str(out / name), cv2.IMREAD_UNCHANGED)
        assert stored.dtype == np.uint16
        np.testing.assert_array_equal(stored[..., ::-1], deep)  # identity: exact 16-bit round trip
    stored = cv2.imread(str(out / "flat.png"), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint8
    np.testing.assert_array_equal(stored[..., ::-1], flat)
    assert (out / "photo.jpg").read_bytes()[:2] == b"\xff\xd8"  # a JPEG, not a PNG named .jpg
    # Written at quality 95: the same bytes as OpenCV encoding the decoded input at 95.
    ok, encoded = cv2.imencode(".jpg", cv2.imread(str(src / "photo.jpg")), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok and (out / "photo.jpg").read_bytes() == encoded.tobytes()


def test_inputs_are_never_overwritten(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "a.png", random_image(8, 8))
    before = (src / "a.png").read_bytes()

    with pytest.raises(image_files.DataError, match=f"output folder {src} holds the input image {src / 'a.png'}"):
        inference.restore_paths(identity, src, src, show_progress=False)
    with pytest.raises(image_files.DataError, match=f"output folder {src} holds the input image {src / 'a.png'}"):
        inference.restore_paths(identity, src / "a.png", src, overwrite=True, show_progress=False)
    (tmp_path / "link").symlink_to(src)  # the input folder under another name
    with pytest.raises(image_files.DataError, match="holds the input image"):
        inference.restore_paths(identity, src, tmp_path / "link", overwrite=True, show_progress=False)
    (tmp_path / "other").mkdir()
    os.link(src / "a.png", tmp_path / "other" / "a.png")  # the input under another name in the output folder
    with pytest.raises(image_files.DataError, match=f"output {tmp_path / 'other' / 'a.png'} would overwrite the input "
                                           f"{src / 'a.png'}"):
        inference.restore_paths(identity, src, tmp_path / "other", overwrite=True, show_progress=False)
    with pytest.raises(image_files.DataError, match="is the input file"):
        inference.restore_file(identity, src / "a.png", tmp_path / "link" / "a.png")
    assert (src / "a.png").read_bytes() == before
    assert sorted(os.listdir(src)) == ["a.png"]

    out = tmp_path / "out"
    assert inference.restore_paths(identity, src, out, show_progress=False)[0] == [str(out / "a.png")]
    with pytest.raises(image_files.DataError, match=r"1 output file\(s\) already exist: .*a.png; replace them with "
                                           r"--overwrite"):
        inference.restore_paths(identity, src, out, show_progress=False)
    written, _ = inference.restore_paths(identity, src, out, overwrite=True, show_progress=False)
    assert written == [str(out / "a.png")]
    # The same file given twice is restored once; two files of one name are refused.
    assert inference.restore_targets([src / "a.png", src, tmp_path / "link" / "a.png"], tmp_path / "out2") == [
        (str(src / "a.png"), str(tmp_path / "out2" / "a.png"))]
    (tmp_path / "c").mkdir()
    write_png(tmp_path / "c" / "a.png", random_image(4, 4))
    with pytest.raises(image_files.DataError, match=r"share the name 'a': both would be restored to .*out2/a.png"):
        inference.restore_targets([src / "a.png", tmp_path / "c" / "a.png"], tmp_path / "out2")
    assert not (tmp_path / "out2").exists()


def test_unreadable_file_is_collected_and_the_rest_restored(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        write_png(src / name, random_image(10, 12))
    data = (src / "b.png").read_bytes()
    (src / "b.png").write_bytes(data[: len(data) // 2])
    written, failures = inference.restore_paths(identity, src, tmp_path / "out", show_progress=False)
    assert written == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "c.png")]
    assert len(failures) == 1 and failures[0][0] == str(src / "b.png")
    assert "truncated PNG" in failures[0][1]
    assert not (tmp_path / "out" / "b.png").exists()


_OPENED = None  # while a test records: the paths Python opened (an audit hook cannot be removed, so it stays idle)
_HOOKED = False


def _record_open(event, args):
    if event == "open" and _OPENED is not None and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


def opened_during(action):
    """The paths opened (``open``, ``os.open``, ``np.fromfile``...: the ``open`` audit event) while ``action()`` runs."""
    global _OPENED, _HOOKED
    if not _HOOKED:
        sys.addaudithook(_record_open)
        _HOOKED = True
    _OPENED = []
    try:
        action()
        return _OPENED
    finally:
        _OPENED = None


def test_each_input_is_read_from_disk_once(tmp_path, monkeypatch):
    """erlrestore-restore's work opens each input once: decoding, its bit depth and the progress bar's tile count
    all come from that one read (16-bit PNG and TIFF, 8-bit PNG, JPEG)."""
    rng = np.random.default_rng(4)
    src = tmp_path / "in"
    src.mkdir()
    deep = rng.integers(0, 65536, (40, 70, 3), dtype=np.uint16)
    flat = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    assert cv2.imwrite(str(src / "deep.png"), deep) and cv2.imwrite(str(src / "deep16.tif"), deep)
    assert cv2.imwrite(str(src / "flat.png"), flat) and cv2.imwrite(str(src / "photo.jpg"), flat)
    inputs = sorted(str(src / name) for name in os.listdir(src))
    monkeypatch.setattr("sys.stderr", io.StringIO())  # the progress bar, on
    result = []
    opened = opened_during(lambda: result.append(inference.restore_paths(identity, src, tmp_path / "out", tile=32,
                                                                         overlap=8, compare_dir=tmp_path / "cmp")))
    written, failures = result[0]
    assert failures == [] and len(written) == 4
    assert sorted(path for path in opened if path.startswith(str(src))) == inputs
    for name in ("deep.png", "deep16.tif"):  # 16 bits in, 16 bits out, from the same read
        assert cv2.imread(str(tmp_path / "out" / name), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    assert cv2.imread(str(tmp_path / "out" / "flat.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint8
    opened = opened_during(lambda: inference.restore_file(identity, src / "deep16.tif", tmp_path / "one.tif", tile=32,
                                                          overlap=8))
    assert [path for path in opened if path.startswith(str(src))] == [str(src / "deep16.tif")]
    # Unreadable inputs are still DataErrors naming the file.
    (src / "cut.png").write_bytes((src / "flat.png").read_bytes()[:100])
    with pytest.raises(image_files.DataError, match=f"{src / 'cut.png'} is a truncated PNG"):
        inference.restore_file(identity, src / "cut.png", tmp_path / "cut.png")
    with pytest.raises(image_files.DataError, match=f"image file {src / 'gone.png'} does not exist"):
        inference.restore_file(identity, src / "gone.png", tmp_path / "gone.png")


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.restore", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_reports_failures_and_summary(model, tmp_path):
    model_path = tmp_path / "model.keras"
    model.save(model_path)
    src = tmp_path / "in"
    src.mkdir()
    write_png(src / "good.png", random_image(40, 70))
    write_png(src / "bad.png", random_image(10, 12))
    (src / "bad.png").write_bytes((src / "bad.png").read_bytes()[:50])

    result = run_cli(f"--model={model_path}", f"--input={src}", f"--output_dir={tmp_path / 'out'}", "--tile=32",
                     "--overlap=8")
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"failed: {src / 'bad.png'}: {src / 'bad.png'} is a truncated PNG" in result.stderr
    assert "error: 1 of 2 images failed" in result.stderr
    restored = image_files.read_image(tmp_path / "out" / "good.png")
    expected = inference.restore_tiled(
        inference.restorer_from_model(model), image_files.read_image(src / "good.png"), tile=32, overlap=8
    )
    np.testing.assert_allclose(restored, expected, atol=0.5 / 255 + 1e-6)

    result = run_cli(f"--model={model_path}", f"--input={src / 'good.png'}", f"--output_dir={tmp_path / 'out'}",
                     "--overwrite", "--tile=20", "--overlap=10")
    assert result.returncode == 2  # a usage error (erlrestore.entry)
    assert "--tile (20) must be larger than twice --overlap (10)" in result.stderr
    result = run_cli(f"--model={model_path}", f"--input={src / 'good.png'}", f"--output_dir={tmp_path / 'out'}",
                     "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"restored 1 images to {tmp_path / 'out'}"
