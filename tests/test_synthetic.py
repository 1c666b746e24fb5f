"""Synthetic degradations, procedural images, synthesize_folder and erlrestore-synth."""

import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app, flags

from erlrestore.cli import synth
from erlrestore.data import image_files, synthetic
from erlrestore.data.degradations import rain as rain_module
from erlrestore.data.synthetic import (
    DEGRADATIONS,
    add_gaussian_noise,
    add_haze,
    add_heavy_rain,
    add_poisson_gaussian_noise,
    add_rain,
    make_degradation,
    procedural_images,
)

# The degradations that need nothing but an image and a seed (the real-streak
# ones need a streak folder: tests/test_real_streaks.py).
NAMES = [name for name in DEGRADATIONS if not synthetic.required_params(name)]


@pytest.fixture(scope="module")
def photos():
    return procedural_images(3, 24, 32, seed=5)


def grey(value, shape=(64, 64, 3)):
    return np.full(shape, value, np.float32)


# ---------------------------------------------------------------------------
# Common contract of every degradation
# ---------------------------------------------------------------------------


def test_registry_names():
    assert NAMES == ["rain", "heavy_rain", "haze", "gaussian_noise", "poisson_gaussian_noise", "camera_noise",
                     "dense_rain", "rain_haze", "rain_cityscapes"]
    assert sorted(DEGRADATIONS) == sorted(NAMES + ["real_rain", "real_heavy_rain", "real_dense_rain"])


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output_other_seed_differs(name, photos):
    fn = DEGRADATIONS[name]
    a = fn(photos[0], [1, 2]).numpy()
    b = fn(photos[0], tf.constant([1, 2], tf.int64)).numpy()
    c = fn(photos[0], [1, 3]).numpy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 0.05
    assert np.abs(a - photos[0]).max() > 0.05  # it did degrade the image


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_range_and_batch_of_one_matches_single(name, photos):
    fn = DEGRADATIONS[name]
    single = fn(photos[1], [4, 4])
    batch = fn(photos[:2], [4, 4])
    one = fn(photos[1:2], [4, 4])
    assert single.shape == (24, 32, 3) and single.dtype == tf.float32
    assert batch.shape == (2, 24, 32, 3) and batch.dtype == tf.float32
    for out in (single, batch):
        assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    np.testing.assert_array_equal(one.numpy()[0], single.numpy())
    # Images of one batch get independent randomness.
    b = batch.numpy()
    assert not np.array_equal(b[0] - photos[0], b[1] - photos[1])


@pytest.mark.parametrize("name", NAMES)
def test_works_in_tf_data_map_and_matches_eager(name, photos):
    fn = make_degradation(name)
    ds = tf.data.Dataset.from_tensor_slices(photos).enumerate()
    ds = ds.map(lambda i, x: fn(x, tf.stack([tf.constant(9, tf.int64), i])))
    graph = [x.numpy() for x in ds]
    assert len(graph) == 3
    for i, out in enumerate(graph):
        np.testing.assert_allclose(out, fn(photos[i], [9, i]).numpy(), atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_dynamic_image_size_in_graph(name, photos):
    fn = tf.function(
        make_degradation(name),
        input_signature=[tf.TensorSpec([None, None, 3], tf.float32), tf.TensorSpec([2], tf.int64)],
    )
    small = fn(tf.constant(photos[0][:10, :13]), tf.constant([1, 1], tf.int64))
    assert small.shape == (10, 13, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match="add_rain expects float images in \\[0, 1\\], got dtype uint8"):
        add_rain(np.zeros((8, 8, 3), np.uint8), [0, 0])
    with pytest.raises(ValueError, match="expects 3 \\(RGB\\) channels last, got shape \\(8, 8, 4\\)"):
        add_haze(np.zeros((8, 8, 4), np.float32), [0, 0])
    with pytest.raises(ValueError, match="an \\[H, W, 3\\] image or a \\[B, H, W, 3\\] batch, got shape \\(8, 3\\)"):
        add_gaussian_noise(np.zeros((8, 3), np.float32), [0, 0])
    with pytest.raises(ValueError, match="seed must have shape \\[2\\], got \\(3,\\)"):
        add_gaussian_noise(grey(0.5, (8, 8, 3)), [0, 0, 0])
    with pytest.raises(ValueError, match="density must be <= 1, got 2"):
        add_rain(grey(0.5, (8, 8, 3)), [0, 0], density=2)
    with pytest.raises(ValueError, match="range must be \\(low, high\\) with low <= high"):
        add_haze(grey(0.5, (8, 8, 3)), [0, 0], beta=(2.0, 1.0))


# ---------------------------------------------------------------------------
# Rain
# ---------------------------------------------------------------------------


def test_rain_only_brightens_and_is_achromatic():
    clean = procedural_images(1, 48, 48, seed=1)[0] * 0.5  # max 0.5: no clipping at 1
    out = add_rain(clean, [3, 3], brightness=0.5).numpy()
    streak = out - clean
    assert streak.min() >= 0.0
    assert (streak > 0.05).mean() > 0.01
    np.testing.assert_allclose(streak[..., 0], streak[..., 1], atol=1e-6)
    np.testing.assert_allclose(streak[..., 0], streak[..., 2], atol=1e-6)


def test_rain_density_controls_covered_fraction():
    clean = grey(0.3)
    for density in (0.02, 0.08):
        streaks = np.stack(
            [(add_rain(clean, [s, 0], density=density, blur=0, brightness=0.5).numpy() - clean)[..., 0]
             for s in range(4)]
        )
        touched = (streaks > 0).mean()
        assert density * 0.7 < touched < density * 3.0, (density, touched)
        # Covered area: mean streak value / (brightness * mean drop intensity 0.75).
        area = streaks.mean() / (0.5 * 0.75)
        assert area == pytest.approx(density, rel=0.25)
    np.testing.assert_array_equal(add_rain(clean, [1, 1], density=0.0).numpy(), clean)


def _correlation(layer, dy, dx):
    a = layer - layer.mean()
    h, w = a.shape
    a0 = a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    a1 = a[max(0, dy):h - max(0, -dy) or None, max(0, dx):w - max(0, -dx) or None]
    return float((a0 * a1).mean() / a.var())


def test_rain_angle_convention():
    clean = grey(0.2)

    def layer(angle):
        return (add_rain(clean, [5, 5], angle=angle, length=15, blur=0).numpy() - clean)[..., 0]

    vertical = layer(0)
    assert _correlation(vertical, 3, 0) > 0.6 > 0.1 > _correlation(vertical, 0, 3)
    # +45 degrees: the lower end leans right, so streaks run along (down, right).
    right = layer(45)
    assert _correlation(right, 3, 3) > 0.5 > 0.1 > _correlation(right, 3, -3)
    left = layer(-45)
    assert _correlation(left, 3, -3) > 0.5 > 0.1 > _correlation(left, 3, 3)


def _dense_streak_layers(batch, height, width, seed, *, layers, density, length, angle, streak_width,
                         brightness, blur):
    """The streak layers as first written: one dense 'VALID' depthwise convolution.

    Kept as the reference the faster ``_smear`` must reproduce: the same random
    draws in the same order, only the smearing differs.
    """
    seeds = synthetic._split(seed, 7)
    blur_radius = synthetic._gaussian_1d(blur)[1] if blur > 0 else 0
    radius = int(np.ceil((length[1] + streak_width[1]) / 2.0)) + 1 + blur_radius
    kernels = synthetic._line_kernels(
        synthetic._sample(length, seeds[0], [layers]),
        synthetic._sample(angle, seeds[1], [layers]),
        synthetic._sample(streak_width, seeds[2], [layers]),
        radius,
        blur,
    )
    area = tf.reduce_sum(kernels, axis=[0, 1])
    dens = synthetic._sample(density, seeds[3], [batch, layers])
    prob = -tf.math.expm1(tf.math.log1p(-tf.minimum(dens, 1.0 - 1e-7)) / area)
    prob = tf.where(dens >= 1.0, tf.ones_like(prob), prob)[:, tf.newaxis, tf.newaxis, :]
    canvas = [batch, height + 2 * radius, width + 2 * radius, layers]
    u = tf.random.stateless_uniform(canvas, seeds[4], dtype=tf.float32)
    intensity = tf.random.stateless_uniform(canvas, seeds[5], minval=0.5, maxval=1.0)
    drops = tf.where(u < prob, intensity, tf.zeros_like(u))
    streaks = tf.nn.depthwise_conv2d(drops, kernels[..., tf.newaxis], [1, 1, 1, 1], "VALID")
    bright = synthetic._sample(brightness, seeds[6], [batch, layers])[:, tf.newaxis, tf.newaxis, :]
    return tf.clip_by_value(streaks, 0.0, 1.0) * bright


@pytest.mark.parametrize(
    "fn, params, shape",
    [
        (add_rain, {}, (40, 56, 3)),
        (add_rain, dict(length=(5, 30), angle=(-90, 90), width=(0.5, 3), blur=0), (2, 33, 47, 3)),
        (add_rain, dict(density=0.7, length=12), (48, 40, 3)),  # dense: the FFT path
        (add_heavy_rain, {}, (2, 36, 44, 3)),
        (add_heavy_rain, dict(layers=4, density=(0.02, 0.6), blur=1.5, beta=0.0), (40, 40, 3)),
    ],
)
def test_streaks_match_the_dense_convolution(fn, params, shape, monkeypatch):
    rng = np.random.default_rng(sum(shape))
    clean = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    for seed in ([0, 0], [int(rng.integers(1000)), 7]):
        fast = fn(clean, seed, **params).numpy()
        graph = tf.function(lambda x, s: fn(x, s, **params))(clean, tf.constant(seed, tf.int64)).numpy()
        with monkeypatch.context() as patch:
            patch.setattr(rain_module, "_streak_layers", _dense_streak_layers)
            reference = fn(clean, seed, **params).numpy()
        np.testing.assert_allclose(fast, reference, rtol=0, atol=2e-5)
        np.testing.assert_allclose(graph, reference, rtol=0, atol=2e-5)
        assert np.abs(reference - clean).max() > 0.05


@pytest.mark.parametrize("smear", ["_smear_sparse", "_smear_fft"])
def test_both_smear_paths_equal_the_depthwise_convolution(smear):
    # Three layers of different kernels; drops fill the corners of the canvas too,
    # where the scatter's targets fall outside the output.
    radius = 6
    kernels = synthetic._line_kernels(
        tf.constant([3.0, 9.0, 12.0]), tf.constant([0.0, 30.0, -75.0]), tf.constant([1.0, 2.0, 0.7]),
        radius, 0.8,
    )
    canvas = [2, 21 + 2 * radius, 30 + 2 * radius, 3]
    rng = np.random.default_rng(3)
    hit = rng.uniform(size=canvas) < 0.05
    hit[:, :2, :2] = hit[:, -2:, -2:] = hit[:, :2, -2:] = True
    intensity = rng.uniform(0.5, 1.0, canvas).astype(np.float32)
    drops = np.where(hit, intensity, 0.0).astype(np.float32)
    expected = tf.nn.depthwise_conv2d(drops, kernels[..., tf.newaxis], [1, 1, 1, 1], "VALID").numpy()
    got = getattr(synthetic, smear)(tf.constant(hit), tf.constant(intensity), kernels, radius).numpy()
    assert got.shape == expected.shape == (2, 21, 30, 3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)
    # Pixels no drop reaches stay exactly 0 on both paths (no FFT round-off left).
    assert np.all(got[expected == 0] == 0)
    floor = 0.0 if smear == "_smear_sparse" else 2 * synthetic._FFT_ZERO
    assert np.all(got[expected > floor] > 0)


def test_fft_lengths_are_fast_and_long_enough():
    for n in (1, 7, 97, 127, 348, 508, 1068, 4127):
        length = int(synthetic._fft_length(tf.constant(n, tf.int32)))
        assert length >= n and length < 1.3 * n + 2
        for p in (2, 3, 5):
            while length % p == 0:
                length //= p
        assert length == 1, n


# ---------------------------------------------------------------------------
# Haze and heavy rain
# ---------------------------------------------------------------------------


def test_haze_beta_zero_is_identity_and_huge_beta_gives_airlight(photos):
    np.testing.assert_array_equal(add_haze(photos[0], [1, 1], beta=0.0).numpy(), photos[0])
    far = add_haze(photos[0], [1, 1], beta=500.0, airlight=0.6).numpy()
    np.testing.assert_allclose(far, 0.6, atol=1e-5)


def test_haze_uniform_depth_closed_form(photos):
    beta, a = 0.7, 0.9
    out = add_haze(photos[:2], [2, 2], beta=beta, airlight=a, depth="uniform").numpy()
    t = np.exp(-beta)
    np.testing.assert_allclose(out, photos[:2] * t + a * (1 - t), atol=1e-6)


def test_haze_gradient_proxy_is_hazier_at_the_top():
    clean = grey(0.1)
    out = add_haze(clean, [0, 1], beta=1.5, airlight=1.0, depth_variation=0.0).numpy()
    rows = out[..., 0].mean(axis=1)
    assert np.all(np.diff(rows) < 0)  # monotonic: far (top) is brighter
    # Top row: d = 1 - 0.9 * 0.5/64; I = J t + A (1 - t).
    t = np.exp(-1.5 * (1 - 0.9 * 0.5 / 64))
    assert rows[0] == pytest.approx(0.1 * t + (1 - t), abs=1e-5)


def test_haze_explicit_depth_map_and_ranges(photos):
    depth = np.linspace(0, 2, 32, dtype=np.float32)[None, :].repeat(24, 0)
    out = add_haze(photos[0], [0, 0], beta=1.0, airlight=0.5, depth=depth).numpy()
    t = np.exp(-depth)[..., None]
    np.testing.assert_allclose(out, photos[0] * t + 0.5 * (1 - t), atol=1e-6)
    with pytest.raises(ValueError, match="depth must be one of gradient, brightness, uniform"):
        add_haze(photos[0], [0, 0], depth="sky")
    # Sampled per image: two images, two airlights.
    out = add_haze(np.zeros((2, 8, 8, 3), np.float32), [3, 1], beta=100.0, airlight=(0.2, 0.9)).numpy()
    a0, a1 = out[0].mean(), out[1].mean()
    assert 0.2 <= a0 <= 0.9 and 0.2 <= a1 <= 0.9 and abs(a0 - a1) > 1e-3


def test_heavy_rain_limits(photos):
    veil_free = add_heavy_rain(photos[0], [1, 1], beta=0.0).numpy()
    assert veil_free.min() >= 0 and np.all(veil_free >= photos[0])
    assert (veil_free - photos[0] > 0.05).mean() > 0.05
    np.testing.assert_allclose(add_heavy_rain(photos[0], [1, 1], beta=500.0, airlight=0.75).numpy(), 0.75,
                               atol=1e-5)
    no_streaks = add_heavy_rain(photos[0], [1, 1], brightness=0.0, beta=0.0).numpy()
    np.testing.assert_array_equal(no_streaks, photos[0])


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------


def test_gaussian_noise_std_matches_sigma():
    clean = grey(0.5)
    for sigma in (10.0, 25.0):
        residual = add_gaussian_noise(clean, [7, 7], sigma=sigma).numpy() - clean
        assert residual.std() == pytest.approx(sigma / 255, rel=0.1)
        assert abs(residual.mean()) < 0.1 * sigma / 255


def test_gaussian_noise_sigma_range_is_per_image():
    clean = grey(0.5, (4, 32, 32, 3))
    stds = (add_gaussian_noise(clean, [1, 9], sigma=(5.0, 50.0)).numpy() - clean).std(axis=(1, 2, 3)) * 255
    assert np.all(stds > 4.5) and np.all(stds < 55) and stds.max() - stds.min() > 2


def test_poisson_gaussian_variance_is_signal_dependent():
    peak, sigma = 20.0, 4.0
    for level in (0.25, 0.6):
        clean = grey(level)
        residual = add_poisson_gaussian_noise(clean, [2, 5], peak=peak, sigma=sigma).numpy() - clean
        assert residual.var() == pytest.approx(level / peak + (sigma / 255) ** 2, rel=0.12)
        assert abs(residual.mean()) < 0.01
    counts = add_poisson_gaussian_noise(grey(0.5, (16, 16, 3)), [0, 3], peak=10.0, sigma=0.0).numpy() * 10
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)  # integer photon counts


# ---------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------


def test_unknown_degradation_and_parameter():
    with pytest.raises(ValueError, match=(
            "unknown degradation 'snow'; valid names: rain, heavy_rain, haze, gaussian_noise, "
            "poisson_gaussian_noise, real_rain, real_heavy_rain")):
        make_degradation("snow")
    with pytest.raises(ValueError, match=(
            "unknown parameter\\(s\\) sigma for degradation 'rain'; valid parameters: "
            "density, length, angle, width, brightness, blur")):
        make_degradation("rain", sigma=3)
    with pytest.raises(ValueError, match="airlight must be <= 1, got 1.5"):
        make_degradation("haze", airlight=1.5)


def test_make_degradation_binds_params(photos):
    fn = make_degradation("gaussian_noise", sigma=5.0)
    np.testing.assert_array_equal(fn(photos[0], [3, 3]).numpy(),
                                  add_gaussian_noise(photos[0], [3, 3], sigma=5.0).numpy())


# ---------------------------------------------------------------------------
# Procedural images
# ---------------------------------------------------------------------------


def test_procedural_images():
    images = procedural_images(4, 20, 28, seed=3)
    assert images.shape == (4, 20, 28, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(images[:2], procedural_images(2, 20, 28, seed=3))
    assert not np.array_equal(images, procedural_images(4, 20, 28, seed=4))
    for image in images:
        assert image.std() > 0.03  # not flat
        # Edges: some neighbouring pixels differ a lot, most barely.
        grad = np.abs(np.diff(image, axis=1)).max(axis=-1)
        assert grad.max() > 0.1 and np.median(grad) < 0.05
    assert np.abs(images[0] - images[1]).mean() > 0.05


# ---------------------------------------------------------------------------
# synthesize_folder and the CLI
# ---------------------------------------------------------------------------


def _names(folder):
    return sorted(os.listdir(folder))


def test_synthesize_folder_procedural_with_copies(tmp_path):
    out = tmp_path / "out"
    pairs = synthetic.synthesize_folder(out, "gaussian_noise", procedural=2, size=(16, 20), seed=4, copies=2,
                                        params={"sigma": 30.0}, show_progress=False)
    expected = ["procedural_0000_0.png", "procedural_0000_1.png", "procedural_0001_0.png", "procedural_0001_1.png"]
    assert _names(out / "input") == expected == _names(out / "target")
    assert [os.path.basename(p) for p, _ in pairs] == expected
    clean = procedural_images(2, 16, 20, seed=4)
    for idx, (input_path, target_path) in enumerate(pairs):
        i, k = divmod(idx, 2)
        np.testing.assert_allclose(image_files.read_image(target_path), clean[i], atol=0.5 / 255 + 1e-6)
        want = add_gaussian_noise(clean[i], synthetic.derive_seed(4, i, k), sigma=30.0).numpy()
        np.testing.assert_allclose(image_files.read_image(input_path), want, atol=0.5 / 255 + 1e-6)
    assert not np.array_equal(image_files.read_image(pairs[0][0]), image_files.read_image(pairs[1][0]))  # copies differ
    np.testing.assert_array_equal(synthetic.derive_seed(4, 1, 1), [4, 10001])
    with pytest.raises(image_files.DataError, match=f"output folder {out} is not empty \\(2 entries\\)"):
        synthetic.synthesize_folder(out, "rain", procedural=1, size=(8, 8), show_progress=False)
    again = synthetic.synthesize_folder(out, "rain", procedural=1, size=(8, 8), overwrite=True, show_progress=False)
    assert len(again) == 1


def test_synthesize_folder_from_clean_dir(tmp_path, photos):
    clean_dir = tmp_path / "clean"
    image_files.write_image(clean_dir / "b.png", photos[0])
    image_files.write_image(clean_dir / "a.jpg", photos[1])
    pairs = synthetic.synthesize_folder(tmp_path / "out", "haze", clean_dir=clean_dir, show_progress=False)
    assert _names(tmp_path / "out" / "input") == ["a.png", "b.png"] == _names(tmp_path / "out" / "target")
    np.testing.assert_array_equal(image_files.read_image(pairs[1][1]), image_files.read_image(clean_dir / "b.png"))
    image_files.write_image(clean_dir / "a.png", photos[2])
    with pytest.raises(image_files.DataError, match="a.jpg and .*a.png have the same name stem 'a'"):
        synthetic.synthesize_folder(tmp_path / "out2", "haze", clean_dir=clean_dir, show_progress=False)


def _cli(tmp_path, *args):
    fv = flags.FlagValues()
    synth.define_flags(fv)
    argv = fv(["erlrestore-synth", *args])
    return synth.main(argv, flag_values=fv)


def test_cli_writes_pairs_and_refuses_non_empty_folder(tmp_path, capsys):
    out = tmp_path / "set"
    args = [f"--output_dir={out}", "--procedural=3", "--size=12x16", "--degradation=rain",
            "--rain_angle=-20,0", "--rain_density=0.1", "--seed=2"]
    assert _cli(tmp_path, *args) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"wrote 3 pairs (rain) to {out}"
    names = ["procedural_0000.png", "procedural_0001.png", "procedural_0002.png"]
    assert _names(out / "input") == names == _names(out / "target")
    assert image_files.read_image(out / "input" / names[0]).shape == (12, 16, 3)

    assert _cli(tmp_path, *args) == 1
    assert f"error: output folder {out} is not empty" in capsys.readouterr().err
    assert _cli(tmp_path, *args, "--overwrite") == 0


def test_cli_flag_errors(tmp_path):
    out = f"--output_dir={tmp_path / 'x'}"
    with pytest.raises(app.UsageError, match="--rain_density: density must be <= 1, got 1.5"):
        _cli(tmp_path, out, "--procedural=1", "--degradation=rain", "--rain_density=1.5")
    with pytest.raises(app.UsageError, match='--haze_beta: expected a number or "low,high", got \'a,b\''):
        _cli(tmp_path, out, "--procedural=1", "--degradation=haze", "--haze_beta=a,b")
    with pytest.raises(app.UsageError, match="give exactly one of --clean_dir and --procedural=N"):
        _cli(tmp_path, out, "--degradation=haze")
    with pytest.raises(app.UsageError, match='--size must be "N" or "HxW"'):
        _cli(tmp_path, out, "--procedural=1", "--degradation=haze", "--size=0")
    assert not os.path.exists(tmp_path / "x")


# ---------------------------------------------------------------------------
# Blind camera noise (erlrestore.data.degradations.noise)
# ---------------------------------------------------------------------------


def test_camera_noise_gaussian_branch_matches_sigma_and_is_8_bit():
    clean = grey(0.5, (4, 64, 64, 3))
    noisy = make_degradation("camera_noise", gaussian_share=1.0, sigma=25.0)(clean, [3, 4]).numpy()
    assert np.allclose(noisy * 255, np.round(noisy * 255), atol=1e-4)  # stored as 8-bit test images are
    assert abs((noisy - clean).std() * 255 - 25.0) < 0.6


def test_camera_noise_camera_branch_is_signal_dependent_and_correlated():
    params = dict(gaussian_share=0.0, peak=200.0, read_sigma=0.0, jpeg_quality=100.0)
    dark = make_degradation("camera_noise", **params)(grey(0.3, (2, 96, 96, 3)), [1, 2]).numpy()
    bright = make_degradation("camera_noise", **params)(grey(0.9, (2, 96, 96, 3)), [1, 2]).numpy()
    # Shot noise grows with the light (std ~ sqrt of the linear signal: ~3.3x here), measured in linear light.
    ratio = (bright ** 2.2 - 0.9 ** 2.2).std() / (dark ** 2.2 - 0.3 ** 2.2).std()
    assert 2.5 < ratio < 4.5
    # Demosaicking-like correlation: neighbouring pixels' noise agree (white noise gives ~0 correlation).
    correlated = make_degradation("camera_noise", **params, spatial_correlation=1.0, channel_correlation=0.0)
    white = make_degradation("camera_noise", **params, spatial_correlation=0.0, channel_correlation=0.0)

    def neighbour_correlation(image):
        n = image - 0.8
        return np.corrcoef(n[:, :, :-1].ravel(), n[:, :, 1:].ravel())[0, 1]

    def mean_correlation(degrade):
        return np.mean([neighbour_correlation(degrade(grey(0.8, (1, 96, 96, 3)), [s, 0]).numpy()) for s in range(4)])

    # JPEG's chroma subsampling correlates even white noise a little; the blend adds much more.
    assert mean_correlation(correlated) > mean_correlation(white) + 0.2


def test_camera_noise_jpeg_quality_blurs_the_noise():
    clean = procedural_images(1, 64, 64, seed=2)
    params = dict(gaussian_share=0.0, peak=30.0, spatial_correlation=0.0, channel_correlation=0.0)
    rough = make_degradation("camera_noise", **params, jpeg_quality=100.0)(clean, [5, 5]).numpy()
    smooth = make_degradation("camera_noise", **params, jpeg_quality=10.0)(clean, [5, 5]).numpy()
    assert np.abs(np.diff(smooth, axis=1)).mean() < np.abs(np.diff(rough, axis=1)).mean()


@pytest.mark.parametrize("params, message", [
    (dict(gaussian_share=1.5), "gaussian_share must be <= 1"),
    (dict(jpeg_quality=0.0), "jpeg_quality must be >= 1"),
    (dict(peak=0.0), "peak must be > 0"),
    (dict(spatial_correlation=(0.1, 0.5)), "spatial_correlation must be a single probability"),
    (dict(streak_layers=3), "unknown parameter"),
])
def test_camera_noise_bad_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        make_degradation("camera_noise", **params)
