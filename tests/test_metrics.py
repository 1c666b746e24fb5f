"""Metrics: golden values worked out by hand, and independent cross-checks."""

import math

import numpy as np
import pytest
import tensorflow as tf
from skimage.metrics import structural_similarity

from erlrestore import color, metrics


def gray(value, size=(32, 32)):
    return np.full(size + (3,), value, dtype=np.float64)


def random_pair(seed, size=(40, 48), noise=0.05):
    rng = np.random.default_rng(seed)
    clean = rng.random(size + (3,))
    noisy = np.clip(clean + noise * rng.standard_normal(clean.shape), 0.0, 1.0)
    return clean, noisy


# --- Y conversion -------------------------------------------------------------


def test_y_of_black_white_and_primaries():
    # Y = 16 + 65.481 R + 128.553 G + 24.966 B
    assert color.rgb_to_y([0.0, 0.0, 0.0]) == pytest.approx(16.0)
    assert color.rgb_to_y([1.0, 1.0, 1.0]) == pytest.approx(235.0)
    assert color.rgb_to_y([1.0, 0.0, 0.0]) == pytest.approx(81.481)
    assert color.rgb_to_y([0.0, 1.0, 0.0]) == pytest.approx(144.553)
    assert color.rgb_to_y([0.0, 0.0, 1.0]) == pytest.approx(40.966)


def test_y_is_studio_range_not_tf_full_range():
    # tf.image.rgb_to_yuv is full range (white -> 255); the literature's Y puts white at 235.
    white = np.array([1.0, 1.0, 1.0])
    full_range = 255.0 * float(tf.image.rgb_to_yuv(tf.constant(white[None], tf.float64))[0, 0])
    assert full_range == pytest.approx(255.0)
    assert color.rgb_to_y(white) == pytest.approx(235.0)


def test_tf_y_matches_numpy_y():
    rgb = np.random.default_rng(0).random((5, 7, 3))
    np.testing.assert_allclose(color.rgb_to_y_tf(tf.constant(rgb)).numpy(), color.rgb_to_y(rgb), rtol=1e-12)


# --- PSNR golden values ---------------------------------------------------------


def test_psnr_of_identical_images_is_inf():
    a, _ = random_pair(1)
    assert metrics.psnr_y(a, a) == math.inf
    assert metrics.psnr(a, a, y_channel=False) == math.inf


def test_psnr_constant_offset_of_one_y_level():
    # Grey levels differing by 1/219 in every channel differ by exactly 1 in Y
    # (65.481 + 128.553 + 24.966 = 219), so MSE = 1 and PSNR = 20 log10(255).
    a, b = gray(0.5), gray(0.5 + 1.0 / 219.0)
    assert metrics.psnr_y(a, b) == pytest.approx(20 * math.log10(255.0), abs=1e-9)
    assert metrics.psnr_y(a, b) == pytest.approx(48.1308036087, abs=1e-9)


def test_psnr_red_only_offset_uses_red_weight():
    a = gray(0.25)
    b = a.copy()
    b[..., 0] += 0.1  # Y changes by 6.5481 everywhere
    assert metrics.psnr_y(a, b) == pytest.approx(10 * math.log10(255.0**2 / 6.5481**2), abs=1e-9)
    # RGB PSNR: one channel of three off by 25.5 -> MSE = 25.5^2 / 3.
    assert metrics.psnr(a, b, y_channel=False) == pytest.approx(10 * math.log10(255.0**2 * 3 / 25.5**2), abs=1e-9)


def test_uint8_and_float_inputs_agree():
    a, b = random_pair(2)
    a8, b8 = np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)
    assert metrics.psnr_y(a8, b8) == pytest.approx(metrics.psnr_y(a8 / 255.0, b8 / 255.0), abs=1e-12)
    assert metrics.ssim_y(a8, b8) == pytest.approx(metrics.ssim_y(a8 / 255.0, b8 / 255.0), abs=1e-12)


def test_uint16_is_scaled_to_255():
    a = np.full((16, 16, 3), 65535, np.uint16)
    b = np.zeros((16, 16, 3), np.uint16)
    # white vs black: Y differs by 219 everywhere
    assert metrics.psnr_y(a, b) == pytest.approx(20 * math.log10(255.0 / 219.0), abs=1e-9)


def test_crop_border_ignores_differences_in_the_border():
    a = gray(0.5)
    b = a.copy()
    b[:4] = 0.0
    b[:, -4:] = 1.0
    assert metrics.psnr_y(a, b, crop_border=4) == math.inf
    assert metrics.ssim_y(a, b, crop_border=4) == pytest.approx(1.0)
    assert metrics.psnr_y(a, b, crop_border=3) < 40


def test_0_255_floats_are_refused():
    with pytest.raises(ValueError, match="0-255 data"):
        metrics.psnr_y(gray(200.0), gray(100.0))


def test_shape_mismatch_and_bad_crop_are_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr_y(gray(0.5, (16, 16)), gray(0.5, (16, 17)))
    with pytest.raises(ValueError, match="leaves nothing"):
        metrics.psnr_y(gray(0.5, (16, 16)), gray(0.4, (16, 16)), crop_border=8)
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim_y(gray(0.5, (10, 30)), gray(0.4, (10, 30)))


# --- SSIM golden values and cross-checks ----------------------------------------


def test_gaussian_window_matches_formula():
    g = metrics.gaussian_window()
    assert g.shape == (11,)
    assert g.sum() == pytest.approx(1.0)
    assert g[5] / g[6] == pytest.approx(math.exp(1 / (2 * 1.5**2)))


def test_ssim_of_identical_images_is_one():
    a, _ = random_pair(3)
    assert metrics.ssim_y(a, a) == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_flat_images_by_hand():
    # Flat images: sigma = 0, so SSIM = (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    # with Y = 16 (black) and 235 (white) and C1 = (0.01 * 255)^2 = 6.5025.
    c1 = 6.5025
    expected = (2 * 16 * 235 + c1) / (16**2 + 235**2 + c1)
    assert metrics.ssim_y(gray(0.0), gray(1.0)) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(7526.5025 / 55487.5025, abs=1e-12)  # ~0.135643


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ssim_y_matches_scikit_image(seed):
    a, b = random_pair(seed, noise=0.1)
    ya, yb = color.rgb_to_y(a), color.rgb_to_y(b)
    reference = structural_similarity(
        ya, yb, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    assert metrics.ssim_y(a, b) == pytest.approx(reference, abs=1e-7)


def test_ssim_rgb_is_mean_of_channels_like_scikit_image():
    a, b = random_pair(4, noise=0.1)
    reference = structural_similarity(
        a * 255, b * 255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )
    assert metrics.ssim(a, b, y_channel=False) == pytest.approx(reference, abs=1e-7)


def test_psnr_matches_scikit_image_on_y():
    from skimage.metrics import peak_signal_noise_ratio

    a, b = random_pair(5)
    reference = peak_signal_noise_ratio(color.rgb_to_y(a), color.rgb_to_y(b), data_range=255)
    assert metrics.psnr_y(a, b) == pytest.approx(reference, abs=1e-9)


# --- RGB (channel="rgb"), BasicSR's test_y_channel=False --------------------------


@pytest.mark.parametrize("levels", [1, 3, 10])
def test_rgb_psnr_of_a_constant_offset(levels):
    # Every channel of every pixel off by `levels` grey levels: MSE = levels^2.
    a = np.full((16, 24, 3), 100, np.uint8)
    b = a + np.uint8(levels)
    expected = 20 * math.log10(255.0 / levels)
    assert metrics.psnr_rgb(a, b) == pytest.approx(expected, abs=1e-9)
    assert metrics.psnr_ssim(a, b, channel="rgb")[0] == pytest.approx(expected, abs=1e-9)
    if levels == 1:
        assert metrics.psnr_rgb(a, b) == pytest.approx(48.1308036087, abs=1e-9)


def test_rgb_psnr_one_channel_half_the_pixels():
    # Green off by 6 levels on half the pixels, R and B equal:
    # MSE over all 3 channels = 36 * (1/2) / 3 = 6.
    rng = np.random.default_rng(3)
    a = rng.integers(10, 240, (20, 30, 3), dtype=np.uint8)
    b = a.copy()
    b[:10, :, 1] += 6
    assert metrics.psnr_rgb(a, b) == pytest.approx(10 * math.log10(255.0**2 / 6.0), abs=1e-9)
    # Y sees only the green weight: 6 * 128.553 / 255 on half the pixels.
    assert metrics.psnr_y(a, b) == pytest.approx(10 * math.log10(255.0**2 / ((6 * 128.553 / 255) ** 2 / 2)), abs=1e-9)


def test_rgb_ssim_one_flat_channel_differs_by_hand():
    # R and G identical (textured): SSIM 1 each. B flat black vs flat white:
    # sigma = 0, mu = 0 and 255, so SSIM_B = C1 / (255^2 + C1), C1 = (0.01 * 255)^2.
    rng = np.random.default_rng(4)
    a = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    a[..., 2] = 0
    b = a.copy()
    b[..., 2] = 255
    c1 = 6.5025
    expected = (1 + 1 + c1 / (255.0**2 + c1)) / 3
    assert metrics.ssim_rgb(a, b) == pytest.approx(expected, abs=1e-12)
    assert metrics.psnr_ssim(a, b, channel="rgb")[1] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.66670000, abs=1e-7)


@pytest.mark.parametrize("seed, size, crop_border", [(20, (40, 48), 0), (21, (33, 57), 4), (22, (64, 23), 1)])
def test_rgb_ssim_matches_scikit_image_on_the_valid_region(seed, size, crop_border):
    # scikit-image filters the whole image (reflect padding) but averages only
    # the map cropped by (win_size - 1) // 2 = 5 pixels: the valid region, as
    # here. So the two agree to float rounding, not just to 1e-4.
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size + (3,), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-25, 26, a.shape), 0, 255).astype(np.uint8)
    k = crop_border
    a_c, b_c = (x[k : x.shape[0] - k, k : x.shape[1] - k].astype(np.float64) for x in (a, b))
    reference = structural_similarity(
        a_c, b_c, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1
    )
    assert metrics.ssim_rgb(a, b, crop_border=k) == pytest.approx(reference, abs=1e-7)
    per_channel = [
        structural_similarity(a_c[..., c], b_c[..., c], gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False, data_range=255)
        for c in range(3)
    ]
    assert metrics.ssim_rgb(a, b, crop_border=k) == pytest.approx(np.mean(per_channel), abs=1e-7)


def test_rgb_psnr_matches_basicsr_formula():
    # BasicSR calculate_psnr(test_y_channel=False): float64, 0-255, MSE over H, W and C.
    rng = np.random.default_rng(23)
    a = rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-9, 10, a.shape), 0, 255).astype(np.uint8)
    mse = np.mean((a.astype(np.float64)[2:-2, 2:-2] - b.astype(np.float64)[2:-2, 2:-2]) ** 2)
    assert metrics.psnr_rgb(a, b, crop_border=2) == pytest.approx(10 * np.log10(255.0**2 / mse), abs=1e-12)


def test_psnr_ssim_equals_the_single_metrics_and_checks_the_channel():
    a, b = random_pair(24, noise=0.08)
    for channel, y in (("y", True), ("rgb", False)):
        p, s = metrics.psnr_ssim(a, b, crop_border=2, channel=channel)
        assert p == metrics.psnr(a, b, 2, y_channel=y)
        assert s == metrics.ssim(a, b, 2, y_channel=y)
    assert metrics.CHANNELS == ("y", "rgb")
    with pytest.raises(ValueError, match=r"unknown channel 'Y': choose one of y, rgb"):
        metrics.psnr_ssim(a, b, channel="Y")


# --- TensorFlow twin ---------------------------------------------------------------


@pytest.mark.parametrize("crop_border", [0, 3])
def test_tf_metrics_agree_with_numpy_in_float32(crop_border):
    pairs = [random_pair(seed, size=(48, 40), noise=noise) for seed, noise in [(10, 0.02), (11, 0.1), (12, 0.3)]]
    a = tf.constant(np.stack([p[0] for p in pairs]), tf.float32)
    b = tf.constant(np.stack([p[1] for p in pairs]), tf.float32)
    psnr_tf = metrics.psnr_y_tf(a, b, crop_border=crop_border).numpy()
    ssim_tf = metrics.ssim_y_tf(a, b, crop_border=crop_border).numpy()
    for i, (x, y) in enumerate(pairs):
        # Compare on the float32 values the TF side saw.
        x32, y32 = x.astype(np.float32), y.astype(np.float32)
        assert psnr_tf[i] == pytest.approx(metrics.psnr_y(x32, y32, crop_border), abs=1e-3)
        assert ssim_tf[i] == pytest.approx(metrics.ssim_y(x32, y32, crop_border), abs=1e-4)


def test_tf_ssim_precise_on_bright_flat_content():
    # Bright, nearly flat images are where float32 cancellation would hurt.
    rng = np.random.default_rng(7)
    a = np.clip(0.9 + 0.01 * rng.standard_normal((1, 32, 32, 3)), 0, 1).astype(np.float32)
    b = np.clip(a + 0.005 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    assert float(metrics.ssim_y_tf(a, b)[0]) == pytest.approx(metrics.ssim_y(a[0], b[0]), abs=1e-4)


def test_tf_psnr_identical_is_inf_and_accepts_single_images():
    a, _ = random_pair(6)
    a = tf.constant(a, tf.float32)
    assert np.isinf(metrics.psnr_y_tf(a, a).numpy()).all()
    assert metrics.ssim_y_tf(a, a).shape == (1,)


# --- An independent re-implementation of the literature's Y-PSNR / SSIM ---------------
#
# Plain float64 NumPy written from the published definitions, sharing nothing with
# erlrestore.metrics or erlrestore.color (no OpenCV filtering, no separable window):
# it always runs, unlike the checks against the shared benchmark samples.


def _literature_y(rgb_uint8):
    """MATLAB's rgb2ycbcr luma (BT.601 studio range, Y in [16, 235]) of 0-255 RGB, unrounded."""
    r, g, b = (rgb_uint8[..., k].astype(np.float64) for k in range(3))
    return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _literature_psnr(x, y):
    return 10.0 * math.log10(255.0**2 / np.mean((x - y) ** 2))


def _literature_ssim(x, y):
    """Wang et al.'s ssim_index.m: fspecial('gaussian', 11, 1.5), K = (0.01, 0.03), L = 255, filter2 'valid'."""
    offsets = np.arange(11, dtype=np.float64) - 5.0
    window = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2.0 * 1.5**2))
    window /= window.sum()

    def filter_valid(image):
        patches = np.lib.stride_tricks.sliding_window_view(image, (11, 11))
        return np.einsum("ijkl,kl->ij", patches, window)

    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    mu_x, mu_y = filter_valid(x), filter_valid(y)
    sigma_x = filter_valid(x * x) - mu_x**2
    sigma_y = filter_valid(y * y) - mu_y**2
    sigma_xy = filter_valid(x * y) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return float(ssim_map.mean())


def _natural_looking_pair(height=96, width=80, seed=7):
    """A deterministic uint8 (clean, degraded) pair: smooth colour gradients, texture, edges, streaks and noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / width, y / height
    sky = np.stack([0.35 + 0.3 * v, 0.5 + 0.25 * v, 0.85 - 0.2 * u], axis=-1)
    texture = 0.08 * np.sin(2 * np.pi * (5 * u + 3 * v)) * np.cos(2 * np.pi * 7 * v * (1 + u))
    ground = (v > 0.55 + 0.1 * np.sin(2 * np.pi * u))[..., None]  # a wavy horizon: a hard edge
    grass = np.stack([0.25 + texture, 0.45 + 1.5 * texture, 0.15 + 0.5 * texture], axis=-1)
    clean = np.where(ground, grass, sky + texture[..., None] / 2) + rng.normal(0.0, 0.01, (height, width, 3))
    streaks = (np.sin(2 * np.pi * (x * 0.9 + y * 0.25) / 9.0) > 0.93) * rng.uniform(0.1, 0.35, (height, width))
    degraded = clean + streaks[..., None] + rng.normal(0.0, 0.03, clean.shape)
    to_uint8 = lambda image: np.clip(np.rint(255.0 * image), 0, 255).astype(np.uint8)  # noqa: E731
    return to_uint8(clean), to_uint8(degraded)


def test_y_psnr_and_ssim_match_an_independent_float64_implementation():
    clean, degraded = _natural_looking_pair()
    y_clean, y_degraded = _literature_y(clean), _literature_y(degraded)
    psnr, ssim = _literature_psnr(y_clean, y_degraded), _literature_ssim(y_clean, y_degraded)
    assert 15 < psnr < 35 and 0.3 < ssim < 0.95  # a realistic pair, not a trivial one
    assert metrics.psnr_y(degraded, clean) == pytest.approx(psnr, abs=1e-4)
    assert metrics.ssim_y(degraded, clean) == pytest.approx(ssim, abs=1e-5)
    # The same numbers whichever image comes first.
    assert metrics.psnr_y(clean, degraded) == pytest.approx(psnr, abs=1e-4)
    assert metrics.ssim_y(clean, degraded) == pytest.approx(ssim, abs=1e-5)
