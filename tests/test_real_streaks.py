"""Real (rendered) rain-streak layers: load_streaks, real_rain / real_heavy_rain, their CLI and training paths.

The streak folders are small PNGs generated here; only the last test reads the
shared Garg-Nayar folder, and skips without it.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from erlrestore.cli import synth
from erlrestore.data import image_files, synthetic
from erlrestore.data.synthetic import (
    StreakBank,
    add_real_heavy_rain,
    add_real_rain,
    load_streaks,
    make_degradation,
    procedural_images,
    real_streak_layers,
)
from erlrestore.training import inputs

REAL_STREAKS = "/work/shared/data/derain-train/streaks"
# Layer sizes of the generated folder (height, width): different, as in the Garg-Nayar database.
SIZES = [(48, 64), (48, 56), (40, 64), (44, 60)]


def _streak_image(rng, height, width):
    """A grey uint8 layer of short, bright, slanted streaks on black."""
    layer = np.zeros((height, width), np.uint8)
    for _ in range(height * width // 60):
        y, x = rng.integers(0, height), rng.integers(0, width)
        length, value = rng.integers(5, 14), rng.integers(120, 256)
        for j in range(length):
            yy, xx = y + j, x + j // 4
            if yy < height and xx < width:
                layer[yy, xx] = value
    return layer


def _write_streaks(folder, sizes=SIZES, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    layers = []
    for i, (height, width) in enumerate(sizes):
        layer = _streak_image(rng, height, width)
        image_files.write_image(folder / f"streak-{i}.png", layer.astype(np.float32) / 255.0)
        layers.append(layer)
    return layers


@pytest.fixture(scope="module")
def streak_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("streaks")
    layers = _write_streaks(folder)
    return folder, layers


@pytest.fixture(scope="module")
def bank(streak_folder):
    return load_streaks(streak_folder[0])


@pytest.fixture(scope="module")
def photos():
    return procedural_images(3, 24, 32, seed=5)


def _exact(**overrides):
    """One layer, fixed transparency, no blur: the additive model without any randomness in t."""
    params = dict(streak_layers=1, transparency=0.3, streak_blur=0)
    params.update(overrides)
    return params


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def test_load_streaks_holds_a_padded_uint8_stack(streak_folder, bank):
    folder, layers = streak_folder
    assert bank.count == 4 and bank.source == os.fspath(folder)
    assert bank.layers.dtype == np.uint8 and bank.layers.shape == (4, 48, 64)
    np.testing.assert_array_equal(bank.sizes, SIZES)
    for i, (layer, (height, width)) in enumerate(zip(layers, SIZES)):
        np.testing.assert_array_equal(bank.layers[i, :height, :width], layer)
        assert not bank.layers[i, height:].any() and not bank.layers[i, :, width:].any()  # zero padding
    assert [os.path.basename(n) for n in bank.names] == [f"streak-{i}.png" for i in range(4)]
    assert "4 layers" in repr(bank)
    capped = load_streaks(folder, max_layers=2)  # evenly spaced in sorted order
    assert [os.path.basename(n) for n in capped.names] == ["streak-0.png", "streak-2.png"]


def test_rgb_layers_become_grey(tmp_path):
    rgb = np.zeros((40, 40, 3), np.float32)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 1.0, 0.5, 0.0
    image_files.write_image(tmp_path / "colour.png", rgb)
    grey = load_streaks(tmp_path).layers[0]
    np.testing.assert_array_equal(grey, np.full((40, 40), round((0.299 + 0.587 * 128 / 255) * 255), np.uint8))
    # In memory: float and uint8, grey and RGB.
    arrays = StreakBank([np.full((32, 33), 0.5, np.float32), np.full((32, 32, 3), 200, np.uint8)])
    np.testing.assert_array_equal(arrays.sizes, [[32, 33], [32, 32]])
    assert arrays.layers[0, 0, 0] == 128 and arrays.layers[1, 0, 0] == 200


def test_bad_streak_folders_are_clear_errors(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(image_files.DataError, match=f"rain-streak folder: image folder {missing} does not exist"):
        load_streaks(missing)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(image_files.DataError, match=f"rain-streak folder: {empty} contains no images"):
        load_streaks(empty)

    truncated = tmp_path / "truncated"
    _write_streaks(truncated, sizes=[(40, 40), (40, 40)])
    data = (truncated / "streak-1.png").read_bytes()
    (truncated / "streak-1.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(image_files.DataError, match=f"bad rain-streak layer in {truncated}: .*streak-1.png is a truncated PNG"):
        load_streaks(truncated)

    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "layer.png").write_bytes(b"not an image at all")
    with pytest.raises(image_files.DataError, match=f"bad rain-streak layer in {garbage}: .*layer.png is not a PNG"):
        load_streaks(garbage)

    small = tmp_path / "small"
    _write_streaks(small, sizes=[(40, 40), (20, 40)])
    with pytest.raises(image_files.DataError, match=r"rain-streak layer .*streak-1.png is 40x20 pixels \(width x height\); "
                                           r"layers must be at least 32x32"):
        load_streaks(small)
    # The same errors through make_degradation, which loads the folder.
    with pytest.raises(image_files.DataError, match="contains no images"):
        make_degradation("real_rain", streaks=empty)


def test_parameters_are_checked(bank):
    with pytest.raises(ValueError, match=r"degradation 'real_rain' needs streaks= \(a folder of rain-streak images"):
        make_degradation("real_rain")
    with pytest.raises(ValueError, match="streaks must be a folder of rain-streak images or a StreakBank"):
        make_degradation("real_rain", streaks=3)
    bad = [
        (dict(streak_layers=0), "streak_layers must be >= 1, got 0"),
        (dict(streak_layers=(3, 1)), "streak_layers range must be \\(low, high\\) with low <= high"),
        (dict(streak_layers=1.5), "streak_layers must be an integer or a \\(low, high\\) pair of integers"),
        (dict(streak_layers=(1, 99)), "streak_layers must be <= 32"),
        (dict(transparency=1.5), "transparency must be <= 1"),
        (dict(scale=0), "scale must be > 0"),
        (dict(streak_blur=-1), "streak_blur must be >= 0"),
        (dict(mix_procedural=(0.1, 0.2)), "mix_procedural must be a single probability"),
        (dict(mix_procedural=2), "mix_procedural must be <= 1"),
    ]
    for params, message in bad:
        with pytest.raises(ValueError, match=message):
            make_degradation("real_rain", streaks=bank, **params)
    # check_params validates without loading or requiring the folder (the CLI's per-flag check).
    synthetic.check_params("real_rain", streak_layers=(1.0, 3.0))
    assert synthetic.required_params("real_heavy_rain") == ("streaks",)
    assert synthetic.required_params("rain") == ()


def test_make_degradation_loads_the_folder_once(streak_folder, photos):
    degrade = make_degradation("real_rain", streaks=streak_folder[0])
    assert isinstance(degrade.params["streaks"], StreakBank)
    np.testing.assert_array_equal(degrade(photos[0], [1, 2]).numpy(),
                                  add_real_rain(photos[0], [1, 2], streaks=degrade.params["streaks"]).numpy())


# ---------------------------------------------------------------------------
# The degradation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [add_real_rain, add_real_heavy_rain])
def test_same_seed_same_output_other_seed_differs(fn, bank, photos):
    a = fn(photos[0], [1, 2], streaks=bank).numpy()
    b = fn(photos[0], tf.constant([1, 2], tf.int64), streaks=bank).numpy()
    c = fn(photos[0], [1, 3], streaks=bank).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
    assert np.abs(a - photos[0]).max() > 0.05


@pytest.mark.parametrize("fn", [add_real_rain, add_real_heavy_rain])
@pytest.mark.parametrize("size", [(24, 32), (7, 9), (150, 130), (48, 200)])  # smaller and larger than a layer
def test_shape_dtype_range_any_size(fn, size, bank):
    images = procedural_images(2, *size, seed=1)
    single = fn(images[1], [4, 4], streaks=bank)
    batch = fn(images, [4, 4], streaks=bank)
    one = fn(images[1:2], [4, 4], streaks=bank)
    assert single.shape == (*size, 3) and single.dtype == tf.float32
    assert batch.shape == (2, *size, 3) and batch.dtype == tf.float32
    for out in (single, batch):
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(one.numpy()[0], single.numpy())
    b = batch.numpy()
    assert not np.array_equal(b[0] - images[0], b[1] - images[1])  # images of a batch get their own rain


def test_additive_model_is_exact(bank, photos):
    params = _exact()
    sample = real_streak_layers(1, 24, 32, [5, 6], bank, **params)
    layer = sample["layers"].numpy()[0]  # [H, W, 1]
    assert sample["transparency"].numpy()[0, 0] == np.float32(0.3)
    streaks = np.float32(0.3) * layer
    assert streaks.max() > 0.1
    black = add_real_rain(np.zeros((24, 32, 3), np.float32), [5, 6], streaks=bank, **params).numpy()
    np.testing.assert_array_equal(black, np.repeat(streaks, 3, axis=-1))
    out = add_real_rain(photos[0], [5, 6], streaks=bank, **params).numpy()
    np.testing.assert_array_equal(out, np.clip(photos[0] + streaks, 0.0, 1.0))
    unclipped = photos[0] + streaks <= 1.0
    np.testing.assert_allclose((out - photos[0])[unclipped], np.broadcast_to(streaks, out.shape)[unclipped],
                               atol=1e-7)
    # Several layers: the sum of t_i S_i, the same on all channels; rain only brightens.
    sample = real_streak_layers(1, 24, 32, [5, 6], bank, streak_layers=3, transparency=(0.25, 0.45))
    rain = np.sum(sample["layers"].numpy() * sample["transparency"].numpy()[:, None, None, :], axis=-1)[0]
    out = add_real_rain(photos[0], [5, 6], streaks=bank, streak_layers=3).numpy()
    np.testing.assert_allclose(out, np.clip(photos[0] + rain[..., None], 0, 1), atol=1e-6)
    assert (out >= photos[0]).all()


def test_scale_one_copies_a_crop_of_a_possibly_flipped_layer(bank):
    """At scale 1 (no blur) a slot is exactly a crop of its layer (mirrored when flipped), inside the layer."""
    flips = set()
    for seed in range(12):
        sample = real_streak_layers(1, 20, 24, [seed, 0], bank, streak_layers=1, scale=1, streak_blur=0)
        got = np.rint(sample["layers"].numpy()[0, :, :, 0] * 255).astype(np.uint8)
        np.testing.assert_array_equal(got.astype(np.float32) / 255, sample["layers"].numpy()[0, :, :, 0])
        index, flip = int(sample["index"][0, 0]), bool(sample["flip"][0, 0])
        flips.add(flip)
        height, width = bank.sizes[index]
        layer = bank.layers[index, :height, :width]
        if flip:
            layer = layer[:, ::-1]
        found = [(y, x) for y in range(height - 20 + 1) for x in range(width - 24 + 1)
                 if np.array_equal(layer[y:y + 20, x:x + 24], got)]
        assert found, f"seed {seed}: not a crop of layer {index}"
    assert flips == {False, True}


def test_photos_larger_than_a_layer_tile_it(bank):
    """Where the scaled layer is smaller than the image it repeats with its own period."""
    sample = real_streak_layers(1, 150, 200, [3, 3], bank, streak_layers=1, scale=1, streak_blur=0)
    layer = sample["layers"].numpy()[0, :, :, 0]
    height, width = bank.sizes[int(sample["index"][0, 0])]
    np.testing.assert_array_equal(layer[height:], layer[:150 - height])
    np.testing.assert_array_equal(layer[:, width:], layer[:, :200 - width])
    assert layer.max() > 0.3


def test_drawn_values_stay_in_their_ranges(bank):
    ranges = dict(streak_layers=(2, 5), transparency=(0.25, 0.45), scale=(1.5, 2.5), streak_blur=(0.2, 0.8))
    sample = real_streak_layers(64, 16, 16, [8, 9], bank, **ranges)
    count = sample["count"].numpy()
    t = sample["transparency"].numpy()
    assert sample["layers"].shape == (64, 16, 16, 5) and t.shape == (64, 5)
    assert count.min() == 2 and count.max() == 5  # both ends are drawn
    active = np.arange(5)[None, :] < count[:, None]
    assert (t[~active] == 0).all()
    assert t[active].min() >= 0.25 and t[active].max() <= 0.45 and t[active].std() > 0.03
    for key in ("scale", "sigma"):
        lo, hi = ranges["scale" if key == "scale" else "streak_blur"]
        values = sample[key].numpy()
        assert values.min() >= lo and values.max() <= hi
    index = sample["index"].numpy()
    assert index.min() == 0 and index.max() == bank.count - 1
    layers = sample["layers"].numpy()
    assert layers.min() >= 0 and layers.max() <= 1
    by_slot = layers.transpose(0, 3, 1, 2)  # [B, K, H, W]
    assert not by_slot[~active].any()  # unused slots are not rendered
    assert by_slot[active].reshape(int(active.sum()), -1).max(axis=1).mean() > 0.2
    flip = sample["flip"].numpy()
    assert 0.3 < flip.mean() < 0.7


def test_more_layers_more_rain(bank):
    black = np.zeros((8, 48, 48, 3), np.float32)
    light = add_real_rain(black, [1, 1], streaks=bank, streak_layers=1).numpy().mean()
    dense = add_real_rain(black, [1, 1], streaks=bank, streak_layers=8).numpy().mean()
    assert dense > 4 * light > 0


def test_mix_procedural_adds_a_procedural_layer(bank, photos):
    base = add_real_rain(photos[0], [2, 2], streaks=bank).numpy()
    mixed = add_real_rain(photos[0], [2, 2], streaks=bank, mix_procedural=1.0, density=0.1).numpy()
    assert (mixed >= base).all() and (mixed - base).max() > 0.1
    never = add_real_rain(photos[0], [2, 2], streaks=bank, mix_procedural=0.0, density=0.1).numpy()
    np.testing.assert_array_equal(never, base)
    # With probability 1/2 about half of a batch gets it.
    batch = np.repeat(photos[:1], 16, axis=0)
    half = add_real_rain(batch, [2, 2], streaks=bank, mix_procedural=0.5, density=0.1).numpy()
    none = add_real_rain(batch, [2, 2], streaks=bank).numpy()
    got = np.abs(half - none).reshape(16, -1).max(axis=1) > 0
    assert 2 <= got.sum() <= 14


def test_real_heavy_rain_veil(bank, photos):
    clear = add_real_heavy_rain(photos[0], [1, 1], streaks=bank, beta=0.0, mix_procedural=0.0).numpy()
    assert (clear >= photos[0]).all() and (clear - photos[0]).max() > 0.1  # no veil: streaks only
    fog = add_real_heavy_rain(photos[0], [1, 1], streaks=bank, beta=1e4, airlight=0.8, depth="uniform").numpy()
    np.testing.assert_allclose(fog, 0.8, atol=1e-6)


def test_in_tf_data_and_tf_function_with_dynamic_sizes(bank, photos):
    degrade = make_degradation("real_rain", streaks=bank)
    ds = tf.data.Dataset.from_tensor_slices(photos).enumerate()
    ds = ds.map(lambda i, x: degrade(x, tf.stack([tf.constant(9, tf.int64), i])))
    for i, out in enumerate(ds):
        np.testing.assert_allclose(out.numpy(), degrade(photos[i], [9, i]).numpy(), atol=1e-6)
    fn = tf.function(degrade, input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                                               tf.TensorSpec([2], tf.int64)])
    assert fn(tf.constant(photos[0][:10, :13]), tf.constant([1, 1], tf.int64)).shape == (10, 13, 3)
    big = np.zeros((70, 90, 3), np.float32)
    np.testing.assert_allclose(fn(tf.constant(big), tf.constant([1, 1], tf.int64)).numpy(),
                               degrade(big, [1, 1]).numpy(), atol=1e-6)


# ---------------------------------------------------------------------------
# Training data (inputs.py) and the CLIs
# ---------------------------------------------------------------------------


def test_training_pipeline_makes_real_rain_on_the_fly(streak_folder, tmp_path):
    settings = inputs.DataSettings(procedural=3, crop_size=16, batch_size=2, degradation="real_rain",
                                   streak_dir=str(streak_folder[0]))
    inputs.check_synthetic(settings)
    make_dataset, images = inputs.training_data(settings, str(tmp_path))
    assert images == 3
    batches = list(make_dataset().take(3))
    for rainy, clean in batches:
        assert rainy.shape == (2, 16, 16, 3) and clean.shape == (2, 16, 16, 3)
        assert (rainy.numpy() >= clean.numpy()).all()  # rain only brightens
    assert max(float(tf.reduce_max(r - c)) for r, c in batches) > 0.1
    again = list(make_dataset().take(3))  # the same seed, the same pairs
    for (a, _), (b, _) in zip(batches, again):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_training_settings_need_a_streak_folder_for_real_rain(streak_folder, tmp_path):
    with pytest.raises(ValueError, match="--degradation=real_rain needs --streak_dir, a folder of rain-streak images"):
        inputs.check_synthetic(inputs.DataSettings(procedural=2, degradation="real_rain"))
    with pytest.raises(ValueError, match="--streak_dir is only used by --degradation=real_rain or real_heavy_rain "
                                         "or real_dense_rain, not rain"):
        inputs.check_synthetic(inputs.DataSettings(procedural=2, streak_dir=str(streak_folder[0])))
    with pytest.raises(image_files.DataError, match="rain-streak folder: image folder .*nowhere does not exist"):
        inputs.training_data(inputs.DataSettings(procedural=2, crop_size=16, degradation="real_heavy_rain",
                                                 streak_dir=str(tmp_path / "nowhere")), str(tmp_path))


@pytest.mark.slow
def test_train_cli_refuses_real_rain_without_a_streak_folder(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.train", "--model=MEMD", "--stage_steps=1", "--procedural=2",
         "--degradation=real_rain", f"--model_dir={tmp_path / 'run'}", "--verbose=0"],
        capture_output=True, text=True, timeout=300, cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert result.returncode != 0
    assert "--degradation=real_rain needs --streak_dir" in result.stderr, result.stderr[-2000:]
    assert not os.path.exists(tmp_path / "run")


def _cli(*args):
    fv = flags.FlagValues()
    synth.define_flags(fv)
    argv = fv(["erlrestore-synth", *args])
    return synth.main(argv, flag_values=fv)


def test_synth_cli_real_rain(streak_folder, tmp_path, capsys):
    out = tmp_path / "set"
    args = [f"--output_dir={out}", "--procedural=2", "--size=40x70", "--degradation=real_rain",
            f"--streak_dir={streak_folder[0]}", "--streak_layers=2,3", "--streak_transparency=0.3,0.4",
            "--streak_scale=1,2", "--streak_blur=0.5", "--seed=3"]
    assert _cli(*args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 2 pairs (real_rain) to {out}"
    clean = procedural_images(2, 40, 70, seed=3)
    bank = load_streaks(streak_folder[0])
    for i in range(2):
        name = f"procedural_{i:04d}.png"
        want = add_real_rain(clean[i], synthetic.derive_seed(3, i), streaks=bank, streak_layers=(2, 3),
                             transparency=(0.3, 0.4), scale=(1.0, 2.0), streak_blur=0.5).numpy()
        np.testing.assert_allclose(image_files.read_image(out / "input" / name), want, atol=0.5 / 255 + 1e-6)
    heavy = tmp_path / "heavy"
    assert _cli(f"--output_dir={heavy}", "--procedural=1", "--size=32", "--degradation=real_heavy_rain",
                f"--streak_dir={streak_folder[0]}", "--mix_procedural=1", "--rain_density=0.05") == 0
    assert image_files.read_image(heavy / "input" / "procedural_0000.png").shape == (32, 32, 3)


def test_synth_cli_errors(streak_folder, tmp_path, capsys):
    out = f"--output_dir={tmp_path / 'x'}"
    with pytest.raises(app.UsageError, match="--degradation=real_rain needs --streak_dir"):
        _cli(out, "--procedural=1", "--degradation=real_rain")
    with pytest.raises(app.UsageError, match="--streak_layers: streak_layers must be an integer"):
        _cli(out, "--procedural=1", "--degradation=real_rain", f"--streak_dir={streak_folder[0]}",
             "--streak_layers=1.5")
    with pytest.raises(app.UsageError, match="--streak_transparency: transparency must be <= 1"):
        _cli(out, "--procedural=1", "--degradation=real_rain", f"--streak_dir={streak_folder[0]}",
             "--streak_transparency=0.5,2")
    assert _cli(out, "--procedural=1", "--degradation=real_rain", f"--streak_dir={tmp_path / 'nowhere'}") == 1
    assert f"rain-streak folder: image folder {tmp_path / 'nowhere'} does not exist" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x")


# ---------------------------------------------------------------------------
# The shared Garg-Nayar folder (optional)
# ---------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.isdir(REAL_STREAKS), reason=f"{REAL_STREAKS} is not here")
def test_real_garg_nayar_layers():
    bank = load_streaks(REAL_STREAKS, max_layers=10)
    assert bank.count == 10 and (bank.sizes[:, 0] == 320).all()
    assert 536 <= bank.sizes[:, 1].min() and bank.sizes[:, 1].max() <= 600
    photo = procedural_images(1, 481, 321, seed=0)[0]  # taller than a layer: tiled
    out = add_real_heavy_rain(photo, [0, 1], streaks=bank).numpy()
    assert out.shape == (481, 321, 3) and 0 <= out.min() and out.max() <= 1


def test_parse_params_reads_values_ranges_and_words():
    assert synthetic.parse_params("") == {}
    assert synthetic.parse_params("streak_layers=1,12; veil_share=0.35;depth=gradient") == {
        "streak_layers": (1, 12), "veil_share": 0.35, "depth": "gradient"}
    with pytest.raises(ValueError, match="name=value"):
        synthetic.parse_params("streak_layers")
    with pytest.raises(ValueError, match="low,high pair"):
        synthetic.parse_params("scale=1,2,3")


def test_veil_share_veils_only_that_share_of_the_images(streak_folder):
    folder = streak_folder[0]
    clean = tf.fill([64, 32, 32, 3], 0.2)
    common = dict(streaks=str(folder), streak_layers=1, transparency=0.0, mix_procedural=0.0, beta=2.0)
    never = synthetic.add_real_heavy_rain(clean, [1, 2], veil_share=0.0, **common)
    assert np.allclose(never.numpy(), 0.2, atol=1e-6)  # transparency 0 and no veil: the clean image
    always = synthetic.add_real_heavy_rain(clean, [1, 2], veil_share=1.0, **common)
    assert np.all(np.abs(always.numpy() - 0.2).max(axis=(1, 2, 3)) > 0.05)
    half = synthetic.add_real_heavy_rain(clean, [1, 2], veil_share=0.5, **common).numpy()
    veiled = np.abs(half - 0.2).max(axis=(1, 2, 3)) > 1e-4
    assert 16 <= veiled.sum() <= 48
    with pytest.raises(ValueError, match="veil_share"):
        synthetic.add_real_heavy_rain(clean, [1, 2], veil_share=1.5, **common)


def test_training_takes_degradation_params(streak_folder):
    from erlrestore.training import inputs

    folder = streak_folder[0]
    settings = inputs.DataSettings(procedural=2, degradation="real_heavy_rain", streak_dir=str(folder),
                                   degradation_params="streak_layers=1,2;veil_share=0.5")
    assert inputs.synthetic_params(settings) == {"streak_layers": (1, 2), "veil_share": 0.5, "streaks": str(folder)}
    bad = inputs.DataSettings(procedural=2, degradation="real_heavy_rain", streak_dir=str(folder),
                              degradation_params="no_such=1")
    with pytest.raises(ValueError, match="unknown parameter"):
        inputs.check_synthetic(bad)
