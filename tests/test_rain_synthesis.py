"""Rain that covers real rain (erlrestore.data.degradations.dense_rain) and RESIDE depth recovery (reside_depth).

Images are small (32-384 px); the streak bank is made here from arrays. Only
the last test reads the shared RESIDE folder, and skips without it.
"""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from erlrestore.cli import synth
from erlrestore.data import image_files, reside_depth, synthetic
from erlrestore.data.degradations import dense_rain as rain_synthesis
from erlrestore.data.image_files import DataError
from erlrestore.data.degradations.dense_rain import add_dense_rain, add_rain_cityscapes, add_rain_haze, add_real_dense_rain
from erlrestore.data.synthetic import StreakBank, make_degradation, procedural_images

NEW = ["dense_rain", "real_dense_rain", "rain_haze", "rain_cityscapes"]
DEHAZE_TRAIN = "/work/shared/data/dehaze-train"


def _streak_layer(rng, height=64, width=64, length=20):
    """A grey uint8 layer of near-vertical bright streaks on black."""
    layer = np.zeros((height, width), np.uint8)
    for _ in range(12):
        y, x = rng.integers(0, height - length), rng.integers(0, width)
        layer[y:y + length, x] = rng.integers(150, 256)
    return layer


@pytest.fixture(scope="module")
def bank():
    rng = np.random.default_rng(0)
    return StreakBank([_streak_layer(rng) for _ in range(4)])


@pytest.fixture(scope="module")
def photos():
    return procedural_images(2, 32, 48, seed=7)


def _degrade(name, bank, image, seed, **params):
    if name == "real_dense_rain":
        params["streaks"] = bank
    return synthetic.DEGRADATIONS[name](image, seed, **params).numpy()


def _psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2, axis=(-3, -2, -1)))


# ---------------------------------------------------------------------------
# Contract: registry, determinism, shape/dtype/range, tf.data
# ---------------------------------------------------------------------------


def test_registered_with_their_parameters():
    for name in NEW:
        assert name in synthetic.DEGRADATIONS
        params = synthetic.degradation_params(name)
        assert params["density_level"] in rain_synthesis.DENSITY_LEVELS
        assert params["reference_size"] == rain_synthesis.DEFAULT_REFERENCE_SIZE
    assert synthetic.required_params("real_dense_rain") == ("streaks",)
    assert synthetic.required_params("rain_haze") == ()
    # Every parameter has its validator.
    for name in NEW:
        for param in synthetic.degradation_params(name):
            assert param in synthetic._PARAM_CHECKS, (name, param)


@pytest.mark.parametrize("name", NEW)
def test_seeded_shape_dtype_range_and_batch_of_one(name, bank, photos):
    a = _degrade(name, bank, photos[0], [1, 2])
    b = _degrade(name, bank, photos[0], tf.constant([1, 2], tf.int64))
    c = _degrade(name, bank, photos[0], [1, 3])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
    assert np.abs(a - photos[0]).max() > 0.05
    assert a.shape == (32, 48, 3) and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    one = _degrade(name, bank, photos[:1], [1, 2])
    assert one.shape == (1, 32, 48, 3)
    np.testing.assert_array_equal(one[0], a)
    # Images of one batch get their own rain.
    twins = _degrade(name, bank, np.stack([photos[0], photos[0]]), [1, 2])
    assert np.abs(twins[0] - twins[1]).max() > 0.05


def test_streak_positions_are_drawn_per_image():
    twins = np.zeros((2, 64, 64, 3), np.float32)
    fixed = dict(density_level="light", streak_layers=2, density=0.05, brightness=0.8)  # only positions vary
    rain = add_dense_rain(twins, [4, 2], **fixed).numpy()[..., 0] > 0.05
    assert rain[0].mean() > 0.03 and rain[1].mean() > 0.03
    assert np.mean(rain[0] != rain[1]) > 0.5 * rain.mean()


@pytest.mark.parametrize("name", ["dense_rain", "real_dense_rain"])
def test_works_in_tf_data_map_with_mixed_levels(name, bank, photos):
    params = dict(density_level="mixed", reference_size=64)  # a small canvas keeps the test quick
    if name == "real_dense_rain":
        params["streaks"] = bank
    fn = make_degradation(name, **params)
    ds = tf.data.Dataset.from_tensor_slices(photos).enumerate()
    ds = ds.map(lambda i, x: fn(x, tf.stack([tf.constant(9, tf.int64), i])))
    graph = [x.numpy() for x in ds]
    assert len(graph) == 2
    for i, out in enumerate(graph):
        np.testing.assert_allclose(out, fn(photos[i], [9, i]).numpy(), atol=1e-5)


def test_dynamic_image_size_in_graph():
    fn = tf.function(make_degradation("rain_haze", density_level="light"),
                     input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)])
    for shape in [(10, 13), (40, 24)]:
        out = fn(tf.fill(shape + (3,), 0.4), tf.constant([1, 1], tf.int64))
        assert out.shape == shape + (3,)


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dense_rain", "real_dense_rain"])
def test_heavier_levels_cover_more_and_lower_psnr(name, bank):
    clean = np.full((4, 64, 64, 3), 0.3, np.float32)
    covered, psnr = [], []
    for level in rain_synthesis.LEVELS:
        out = np.concatenate([_degrade(name, bank, clean, [seed, 1], density_level=level) for seed in (1, 2)])
        covered.append(np.mean(np.abs(out - 0.3).max(axis=-1) > 0.02))
        psnr.append(np.mean(_psnr(out, np.concatenate([clean, clean]))))
    assert covered[0] < covered[1] < covered[2], covered
    assert psnr[0] > psnr[1] > psnr[2], psnr
    assert covered[2] > 0.5  # heavy rain covers most of the image


def _extents(rain):
    """Half-maximum extents (pixels, vertical then horizontal) of the autocorrelation of a rain layer."""
    centred = rain - rain.mean()
    power = np.abs(np.fft.rfft2(centred)) ** 2
    ac = np.fft.irfft2(power, s=centred.shape)
    ac /= ac[0, 0]

    def half(profile):
        i = int(np.argmax(profile < 0.5))
        return i - 1 + (profile[i - 1] - 0.5) / (profile[i - 1] - profile[i])

    return half(ac[:, 0]), half(ac[0, :])


def test_streak_length_and_width_grow_with_the_image():
    geometry = dict(density_level="light", streak_layers=1, directions=1, angle=0, length=60, width=4,
                    brightness=1.0, density=0.03)
    small = _extents(add_dense_rain(np.zeros((96, 96, 3), np.float32), [3, 4], **geometry).numpy()[..., 0])
    large = _extents(add_dense_rain(np.zeros((384, 384, 3), np.float32), [3, 4], **geometry).numpy()[..., 0])
    assert 3.3 < large[0] / small[0] < 4.7  # the length scales with the image (x4)
    assert large[1] / small[1] > 2.5  # and so does the width (the small one is under 2 px: blurred by resampling)
    assert large[0] > 4 * large[1]  # vertical streaks: longer than wide
    # reference_size=0: sizes in the image's own pixels, the same at both sizes.
    fixed = dict(geometry, reference_size=0, density=0.1)
    mid = _extents(add_dense_rain(np.zeros((192, 192, 3), np.float32), [3, 4], **fixed).numpy()[..., 0])
    big = _extents(add_dense_rain(np.zeros((384, 384, 3), np.float32), [3, 4], **fixed).numpy()[..., 0])
    assert 0.8 < big[0] / mid[0] < 1.25


def test_real_streak_layers_scale_with_the_image(bank):
    params = dict(streaks=bank, density_level="light", streak_layers=1, transparency=0.6, scale=1.0, streak_blur=0.0,
                  mix_procedural=0.0)
    small = _extents(add_real_dense_rain(np.zeros((96, 96, 3), np.float32), [5, 6], **params).numpy()[..., 0])
    large = _extents(add_real_dense_rain(np.zeros((384, 384, 3), np.float32), [5, 6], **params).numpy()[..., 0])
    assert 3.3 < large[0] / small[0] < 4.7


def _orientation_coherence(rain):
    """|mean of exp(2i angle)| of the gradient directions, weighted by magnitude: 1 for one orientation."""
    gy, gx = np.gradient(rain)
    magnitude = np.hypot(gx, gy)
    doubled = 2 * np.arctan2(gy, gx)
    return np.abs(np.sum(magnitude * np.exp(1j * doubled))) / np.sum(magnitude)


def test_several_directions_when_asked():
    black = np.zeros((192, 192, 3), np.float32)
    geometry = dict(density_level="medium", streak_layers=3, angle=(-60, 60), density=0.03, brightness=1.0, width=2,
                    length=(80, 100))
    one = add_dense_rain(black, [5, 6], directions=1, **geometry).numpy()[..., 0]
    three = add_dense_rain(black, [5, 6], directions=3, **geometry).numpy()[..., 0]
    assert _orientation_coherence(one) > 0.85
    assert _orientation_coherence(three) < 0.6
    # The drawn angles: direction i mod 3 lies in the middle half of sector i of (-60, 60), +-3 degrees.
    spec = dict(directions=(3, 3), angle=(-60.0, 60.0))
    angles = rain_synthesis._layer_angles(spec, tf.constant([1, 2], tf.int64), 6).numpy()
    for i, angle in enumerate(angles):
        sector = i % 3
        assert -60 + 40 * sector + 10 - 3 <= angle <= -60 + 40 * sector + 30 + 3


def _checkerboard(size, cell=4):
    yy, xx = np.mgrid[0:size, 0:size] // cell
    board = np.where((yy + xx) % 2 == 0, 0.2, 0.7).astype(np.float32)
    return np.repeat(board[..., np.newaxis], 3, axis=-1)


def test_veil_lowers_contrast_more_far_away():
    clean = _checkerboard(64)
    depth = np.full((64, 64), 0.2, np.float32)
    depth[:32] = 1.0  # the top half is five times as far
    no_streaks = dict(brightness=0.0, beta=1.5, airlight=0.8)
    for fn in (add_rain_haze, add_rain_cityscapes):
        out = fn(clean, [1, 1], depth=depth, **no_streaks).numpy()
        far, near = out[:32].std() / clean[:32].std(), out[32:].std() / clean[32:].std()
        assert far < near < 1.0, (fn.__name__, far, near)
        # The gradient proxy puts the far scene at the top as well.
        out = fn(clean, [1, 1], depth="gradient", depth_variation=0.0, **no_streaks).numpy()
        assert out[:16].std() < out[-16:].std()
    # Closed form of the heavy rain model without streaks: O = B t + A (1 - t), t = exp(-beta d).
    out = add_rain_haze(clean, [1, 1], depth="uniform", **no_streaks).numpy()
    t = np.exp(-1.5)
    np.testing.assert_allclose(out, clean * t + 0.8 * (1 - t), atol=1e-6)


def test_cityscapes_rain_fades_with_depth():
    clean = np.full((96, 96, 3), 0.2, np.float32)
    depth = np.tile(np.where(np.arange(96) < 48, 1.0, 0.1).astype(np.float32), (96, 1))  # left half far
    out = add_rain_cityscapes(clean, [2, 3], depth=depth, density_level="heavy", beta=0.0, rain_attenuation=2.0,
                              min_rain_depth=0.0).numpy()
    far, near = (out[:, :48] - 0.2).mean(), (out[:, 48:] - 0.2).mean()
    assert 0 < far < 0.4 * near  # exp(-2) vs exp(-0.2): 0.16
    # Without streaks the composition is the fog alone: O = B (1 - V) + A V.
    fog = add_rain_cityscapes(clean, [2, 3], depth=depth, brightness=0.0, beta=1.0, airlight=0.9).numpy()
    v = 1 - np.exp(-depth / depth.max())[..., np.newaxis]
    np.testing.assert_allclose(fog, np.broadcast_to(0.2 * (1 - v) + 0.9 * v, fog.shape), atol=1e-6)


def test_real_dense_rain_veil_share(bank):
    clean = np.full((8, 32, 32, 3), 0.2, np.float32)
    common = dict(streaks=bank, streak_layers=1, transparency=0.0, mix_procedural=0.0, beta=2.0, airlight=0.9)
    never = add_real_dense_rain(clean, [1, 2], veil_share=0.0, **common).numpy()
    np.testing.assert_allclose(never, 0.2, atol=1e-6)
    always = add_real_dense_rain(clean, [1, 2], veil_share=1.0, **common).numpy()
    assert np.all(always.mean(axis=(1, 2, 3)) > 0.3)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("params, message", [
    (dict(density_level="torrential"), "density_level must be one of light, medium, heavy, mixed, got 'torrential'"),
    (dict(reference_size=8), "reference_size must be 0 .* or >= 16 pixels, got 8"),
    (dict(reference_size=(300, 400)), "reference_size must be a single number"),
    (dict(directions=9), "directions must be <= 8, got 9"),
    (dict(directions=0), "directions must be >= 1, got 0"),
    (dict(streak_layers=40), "streak_layers must be <= 32"),
    (dict(density=1.5), "density must be <= 1, got 1.5"),
    (dict(angle=(-100, 0)), "angle must be >= -90"),
    (dict(rain_attenuation=-1), "rain_attenuation must be >= 0"),
    (dict(min_rain_depth=2), "min_rain_depth must be <= 1"),
    (dict(depth="sky"), "depth must be one of gradient, brightness, uniform or a depth map array"),
])
def test_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        synthetic.check_params("rain_cityscapes", **params)
    with pytest.raises(ValueError, match=message):
        add_rain_cityscapes(np.full((16, 16, 3), 0.5, np.float32), [0, 0], **params)


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ValueError, match="unknown degradation 'dense'; valid names: .*dense_rain"):
        make_degradation("dense")
    with pytest.raises(ValueError, match="unknown parameter\\(s\\) procedural_layers for degradation 'dense_rain'; "
                                         "valid parameters: density_level, reference_size"):
        make_degradation("dense_rain", procedural_layers=2)
    with pytest.raises(ValueError, match="degradation 'real_dense_rain' needs streaks="):
        make_degradation("real_dense_rain")


def test_depth_map_of_the_wrong_shape():
    image = np.full((24, 32, 3), 0.5, np.float32)
    with pytest.raises(ValueError, match=r"depth map \(shape \(32, 24\)\) must have the height and width of the "
                                         r"image \(image shape \(24, 32, 3\)\): the depth map is 32x24, the image "
                                         r"24x32"):
        add_rain_haze(image, [0, 0], depth=np.ones((32, 24), np.float32))
    with pytest.raises(ValueError, match=r"image shape \(2, 24, 32, 3\)"):
        add_rain_cityscapes(np.stack([image, image]), [0, 0], depth=np.ones((2, 24, 30, 1), np.float32))
    with pytest.raises(ValueError, match="holds 3 maps for 2 images"):
        add_rain_haze(np.stack([image, image]), [0, 0], depth=np.ones((3, 24, 32), np.float32))
    with pytest.raises(ValueError, match="finite and non-negative"):
        add_rain_haze(image, [0, 0], depth=-np.ones((24, 32), np.float32))
    with pytest.raises(ValueError, match=r"a depth map must be \[H, W\].*got shape \(2, 24, 32, 1, 1\)"):
        add_rain_haze(image, [0, 0], depth=np.ones((2, 24, 32, 1, 1), np.float32))
    # Sizes unknown while tracing: checked when it runs, with the same message.
    fn = tf.function(lambda x, d: add_rain_haze(x, [0, 0], depth=d), input_signature=[
        tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([None, None], tf.float32)])
    assert fn(image, np.ones((24, 32), np.float32)).shape == (24, 32, 3)
    with pytest.raises(tf.errors.InvalidArgumentError, match="must have the height and width of the image"):
        fn(image, np.ones((32, 24), np.float32))


def test_synth_cli_takes_degradation_params(tmp_path, capsys):
    def cli(*args):
        fv = flags.FlagValues()
        synth.define_flags(fv)
        return synth.main(fv(["erlrestore-synth", *args]), flag_values=fv)

    out = tmp_path / "set"
    assert cli(f"--output_dir={out}", "--procedural=2", "--size=24x32", "--degradation=dense_rain",
               "--degradation_params=density_level=light;directions=1,2", "--rain_width=1,2") == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 2 pairs (dense_rain) to {out}"
    written = image_files.read_image(out / "input" / "procedural_0000.png")
    clean = image_files.read_image(out / "target" / "procedural_0000.png")
    expected = add_dense_rain(clean, synthetic.derive_seed(0, 0), density_level="light", directions=(1, 2),
                              width=(1, 2)).numpy()
    np.testing.assert_allclose(written, expected, atol=1.5 / 255)  # the parameters took effect (8-bit PNG)
    bad = f"--output_dir={tmp_path / 'bad'}"
    with pytest.raises(app.UsageError, match="--degradation_params: density_level must be one of light, medium, "
                                             "heavy, mixed, got 'extreme'"):
        cli(bad, "--procedural=1", "--degradation=dense_rain", "--degradation_params=density_level=extreme")
    with pytest.raises(app.UsageError, match="--degradation_params sets width, which a flag sets too"):
        cli(bad, "--procedural=1", "--degradation=dense_rain", "--degradation_params=width=2", "--rain_width=1")


# ---------------------------------------------------------------------------
# Depth recovered from RESIDE pairs
# ---------------------------------------------------------------------------


def _known_depth(height, width):
    yy, xx = np.mgrid[0:height, 0:width] / np.array([height, width], float)[:, None, None]
    return 1.0 + 8.0 * (1.0 - yy) + 1.5 * np.sin(6.0 * xx)  # RESIDE-like units: 1-10.5


def test_recover_depth_round_trip():
    clean = procedural_images(1, 96, 128, seed=3)[0].astype(np.float64)
    depth = _known_depth(96, 128)
    airlight, beta = 0.85, 0.12
    t = np.exp(-beta * depth)[..., np.newaxis]
    hazy = np.round((clean * t + airlight * (1 - t)) * 255) / 255  # stored as 8 bits
    recovered, known = reside_depth.recover_depth(hazy, clean, airlight, beta, return_known=True)
    assert recovered.shape == (96, 128) and recovered.dtype == np.float32
    assert known.mean() > 0.9
    error = np.abs(recovered - depth)[4:-4, 4:-4]  # the smoothing's borders aside
    assert np.median(error) < 0.05 and np.percentile(error, 99) < 0.3, (np.median(error), error.max())
    # Holes (where the clean colour is too close to the airlight's) are filled from their surroundings.
    clean[40:56, 60:80] = airlight + 0.03
    hazy = np.round((clean * t + airlight * (1 - t)) * 255) / 255
    filled, known = reside_depth.recover_depth(hazy, clean, airlight, beta, return_known=True)
    assert not known[40:56, 60:80].any()
    assert np.abs(filled - depth)[40:56, 60:80].max() < 0.6


def test_reside_names_and_files(tmp_path):
    assert reside_depth.reside_haze_params("hazy/0023_0.85_0.12.jpg") == (0.85, 0.12)
    with pytest.raises(DataError, match="0001.jpg: the name does not carry RESIDE's airlight and beta"):
        reside_depth.reside_haze_params("hazy/0001.jpg")
    clean = procedural_images(1, 40, 60, seed=1)[0]
    depth = _known_depth(40, 60)
    t = np.exp(-0.1 * depth)[..., np.newaxis]
    image_files.write_image(tmp_path / "0007_0.9_0.1.png", clean * t + 0.9 * (1 - t))
    padded = np.pad(clean, ((10, 10), (10, 10), (0, 0)), mode="edge")  # SOTS-indoor: a 10 px wider clean image
    image_files.write_image(tmp_path / "0007.png", padded)
    recovered = reside_depth.reside_depth(tmp_path / "0007_0.9_0.1.png", tmp_path / "0007.png")
    assert recovered.shape == (40, 60)
    assert np.median(np.abs(recovered - depth)) < 0.5
    image_files.write_image(tmp_path / "other.png", clean[:30])
    with pytest.raises(DataError, match="is 60x40 but .*other.png is 60x30"):
        reside_depth.reside_depth(tmp_path / "0007_0.9_0.1.png", tmp_path / "other.png")
    with pytest.raises(ValueError, match="shapes"):
        reside_depth.recover_depth(clean, clean[:10], 0.9, 0.1)


@pytest.mark.skipif(not os.path.isdir(DEHAZE_TRAIN), reason="needs the shared dehaze-train folder")
def test_real_reside_depth_re_renders_the_hazy_image_and_drives_rain_haze():
    hazy_path = sorted(glob.glob(os.path.join(DEHAZE_TRAIN, "hazy", "*_*_*.jpg")))[0]
    clean_path = os.path.join(DEHAZE_TRAIN, "gt", os.path.basename(hazy_path).split("_")[0] + ".jpg")
    airlight, beta = reside_depth.reside_haze_params(hazy_path)
    depth = reside_depth.reside_depth(hazy_path, clean_path)
    hazy, clean = image_files.read_image(hazy_path), image_files.read_image(clean_path)
    t = np.exp(-beta * depth)[..., np.newaxis]
    assert _psnr(clean * t + airlight * (1 - t), hazy) > 35  # the depth explains the haze
    rainy = add_rain_haze(clean, [0, 1], depth=depth, density_level="light").numpy()
    assert rainy.shape == clean.shape
