"""erlrestore.classical (guided filter, dark channel prior, CBM3D, noise estimate) and tools.classical_baselines."""

import json
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from erlrestore import classical, evaluation, metrics
from erlrestore.data import image_files, pairing, synthetic
from tools import classical_baselines

REPO = pathlib.Path(__file__).resolve().parent.parent
SUMMARY_Y = re.compile(r"^n=\d+ psnr_y=-?\d+\.\d{4} ssim_y=-?\d\.\d{5}$")


# --- references computed the slow, obvious way -------------------------------------------------------


def _window(array, y, x, radius):
    """The part of the (2 radius + 1)^2 window around (y, x) inside the image."""
    return array[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]


def _box_mean(array, radius):
    return np.array([[_window(array, y, x, radius).mean() for x in range(array.shape[1])]
                     for y in range(array.shape[0])])


def _naive_guided_filter(guide, source, radius, eps):
    """He et al.'s Algorithm 1 with every window mean taken by a loop."""
    mean_i, mean_p = _box_mean(guide, radius), _box_mean(source, radius)
    var_i = _box_mean(guide * guide, radius) - mean_i**2
    cov = _box_mean(guide * source, radius) - mean_i * mean_p
    a = cov / (var_i + eps)
    b = mean_p - a * mean_i
    return _box_mean(a, radius) * guide + _box_mean(b, radius)


def _hazy_scene(size=64, airlight=(0.8, 0.85, 0.9)):
    """A scene that obeys the dark channel prior, with known transmission t and atmospheric light A.

    Smooth colours each with one channel near 0; a far band on top (t = 0.03, almost pure airlight), a
    mid-distance background (t = 0.35), a near object and a near strip at the bottom (t = 0.9), and a
    3 x 3 white object near the camera, brighter than the airlight but smaller than the dark-channel patch.
    """
    y, x = np.mgrid[0:size, 0:size] / size
    clean = np.stack([0.55 + 0.3 * x, 0.25 + 0.2 * y, 0.02 + 0 * x], -1)
    t = np.where(y < 0.25, 0.03, 0.35)
    near = (np.abs(y - 0.6) < 0.2) & (np.abs(x - 0.5) < 0.25)
    clean[near] = np.stack([0.02 + 0 * x, 0.35 + 0.2 * x, 0.25 + 0.1 * y], -1)[near]
    t[near] = 0.9
    t[-10:, :] = 0.9
    clean[-6:-3, 4:7] = 1.0
    a = np.asarray(airlight)
    hazy = clean * t[..., None] + a * (1.0 - t[..., None])
    return clean.astype(np.float32), hazy.astype(np.float32), t, a


# --- guided filter ------------------------------------------------------------------------------------


def test_guided_filter_follows_the_papers_formulas():
    rng = np.random.default_rng(0)
    guide = rng.uniform(0, 1, (12, 10))
    source = 0.5 * guide + rng.uniform(0, 0.5, (12, 10))
    for radius, eps in ((1, 1e-2), (2, 1e-3), (7, 0.1)):  # 7: windows wider than the image
        expected = _naive_guided_filter(guide, source, radius, eps)
        np.testing.assert_allclose(classical.guided_filter(guide, source, radius, eps), expected, atol=1e-5)


def test_constant_guide_gives_the_box_mean_taken_twice():
    source = np.random.default_rng(1).uniform(0, 1, (16, 20))
    out = classical.guided_filter(np.full((16, 20), 0.4), source, radius=2, eps=1e-3)
    np.testing.assert_allclose(out, _box_mean(_box_mean(source, 2), 2), atol=1e-5)
    assert out.std() < 0.6 * source.std()  # it smooths


def test_source_as_its_own_guide_with_tiny_eps_is_returned():
    source = np.random.default_rng(2).uniform(0, 1, (32, 32)).astype(np.float32)
    np.testing.assert_allclose(classical.guided_filter(source, source, radius=4, eps=1e-8), source, atol=1e-3)


def test_guided_filter_keeps_the_guides_edge_where_a_box_filter_blurs_it():
    guide = np.zeros((32, 32))
    guide[:, 16:] = 1.0
    source = guide + np.random.default_rng(3).normal(0, 0.1, guide.shape)
    out = classical.guided_filter(guide, source, radius=4, eps=1e-3)
    assert np.abs(out - guide).max() < 0.15  # the step survives, the noise is averaged away
    assert np.abs(out - guide).mean() < 0.5 * np.abs(source - guide).mean()
    box = _box_mean(source, 4)
    assert np.abs(box[:, 14] - guide[:, 14]).mean() > 0.2  # a box filter smears the step


def test_guided_filter_shapes_and_radius_zero():
    rng = np.random.default_rng(4)
    guide, source = rng.uniform(0, 1, (8, 9)), rng.uniform(0, 1, (8, 9, 3))
    out = classical.guided_filter(guide[..., None], source, 2, 1e-3)
    assert out.shape == (8, 9, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[..., 1], classical.guided_filter(guide, source[..., 1], 2, 1e-3), atol=1e-6)
    np.testing.assert_allclose(classical.guided_filter(guide, source, 0, 1e-3), source, atol=1e-6)


# --- dark channel prior -------------------------------------------------------------------------------


def test_dark_channel_is_the_windowed_minimum_of_the_channels():
    image = np.random.default_rng(5).uniform(0, 1, (11, 13, 3)).astype(np.float32)
    expected = np.array([[_window(image, y, x, 2).min() for x in range(13)] for y in range(11)])
    np.testing.assert_allclose(classical.dark_channel(image, patch=5), expected, atol=1e-7)


def test_coarse_transmission_is_one_minus_omega_times_the_dark_channel_of_i_over_a():
    image = np.random.default_rng(7).uniform(0, 1, (10, 12, 3)).astype(np.float32)
    airlight = np.array([0.9, 0.8, 0.95])
    dark = classical.dark_channel((image / airlight / 1.25).astype(np.float32), patch=3) * 1.25  # I / A exceeds 1
    for omega in (0.95, 0.7):
        coarse = classical.transmission(image, airlight, patch=3, omega=omega, radius=0)
        np.testing.assert_allclose(coarse, 1.0 - omega * dark, atol=1e-6)
    flat = np.broadcast_to(airlight, (8, 8, 3)).astype(np.float32)  # pure airlight: t = 1 - omega
    np.testing.assert_allclose(classical.transmission(flat, airlight, omega=0.8, radius=4), 0.2, atol=1e-6)


def test_atmospheric_light_is_found_in_the_haze_not_on_the_white_object():
    _, hazy, _, airlight = _hazy_scene()
    brightest = hazy.reshape(-1, 3)[np.argmax(hazy.reshape(-1, 3).sum(axis=-1))]
    assert np.abs(brightest - airlight).max() > 0.08  # the small white object outshines the airlight
    estimate = classical.atmospheric_light(hazy, patch=7)
    np.testing.assert_allclose(estimate, airlight, atol=0.04)


def test_refinement_brings_the_transmission_closer_to_the_truth():
    _, hazy, t, airlight = _hazy_scene()

    def rmse(radius):
        estimate = classical.transmission(hazy, airlight, patch=7, omega=1.0, radius=radius)
        return float(np.sqrt(np.mean((estimate - t) ** 2)))

    coarse = rmse(0)  # radius 0: no refinement, blocky halos at the depth edges
    assert coarse > 0.1
    assert rmse(7) < 0.8 * coarse and rmse(14) < 0.8 * coarse


def test_dcp_restores_a_scene_with_known_haze():
    clean, hazy, t, _ = _hazy_scene()
    restored = classical.dark_channel_prior(hazy, patch=7, radius=14)
    assert restored.shape == hazy.shape and restored.dtype == np.float32
    assert 0.0 <= restored.min() and restored.max() <= 1.0
    seen = slice(18, None)  # below the far band, whose t = 0.03 is under t0: nothing can be recovered there
    assert t[seen].min() > 0.3
    assert metrics.psnr_rgb(restored[seen], clean[seen]) > metrics.psnr_rgb(hazy[seen], clean[seen]) + 4.0


def test_transmission_is_clamped_at_t0():
    # Almost pure airlight: the estimated transmission is about 1 - omega = 0.05, below t0.
    airlight = np.array([0.7, 0.75, 0.8], np.float32)
    ripple = 0.01 * np.sin(np.arange(32) / 3.0)[:, None, None]
    hazy = np.broadcast_to(airlight + ripple, (32, 32, 3)).astype(np.float32)
    estimate = classical.atmospheric_light(hazy, patch=5)
    for t0 in (0.1, 0.3):
        restored = classical.dark_channel_prior(hazy, patch=5, radius=8, t0=t0)
        # J - A = (I - A) / t0 everywhere: the transmission is clamped, not 1 - omega.
        np.testing.assert_allclose(restored - estimate, (hazy - estimate) / t0, atol=1e-5)


def test_dcp_raises_psnr_on_the_projects_synthetic_haze():
    clean = synthetic.procedural_images(4, 64, 64, seed=1)
    before, after = [], []
    for k in range(4):
        hazy = synthetic.add_haze(clean[k], [3, k], beta=1.5, airlight=0.8).numpy()
        restored = classical.dark_channel_prior(hazy, patch=7, radius=16)
        before.append(metrics.psnr_y(hazy, clean[k]))
        after.append(metrics.psnr_y(restored, clean[k]))
    assert all(a > b + 3.0 for a, b in zip(after, before)), (before, after)
    assert np.mean(after) > np.mean(before) + 5.0, (before, after)


# --- CBM3D and the noise estimate ---------------------------------------------------------------------


def test_cbm3d_removes_several_db_of_noise_at_sigma_25():
    clean = synthetic.procedural_images(1, 48, 48, seed=3)[0]
    noisy = synthetic.add_gaussian_noise(clean, [5, 0], sigma=25.0).numpy()
    restored = classical.cbm3d(noisy, 25)
    assert restored.shape == noisy.shape and restored.dtype == np.float32
    assert metrics.psnr_rgb(restored, clean) > metrics.psnr_rgb(noisy, clean) + 5.0


def test_cbm3d_without_the_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.raises(ImportError, match=r"pip install bm3d.*\[baselines\]"):
        classical.cbm3d(np.full((16, 16, 3), 0.5, np.float32), 25)


def test_cbm3d_with_sigma_zero_returns_the_image():
    image = np.random.default_rng(6).uniform(0, 1, (16, 16, 3)).astype(np.float32)
    np.testing.assert_array_equal(classical.cbm3d(image, 0), image)


@pytest.mark.parametrize("sigma", [10.0, 25.0])
def test_noise_estimate_on_a_flat_and_a_ramp_image(sigma):
    rng = np.random.default_rng(int(sigma))
    y, x = np.mgrid[0:64, 0:64] / 64.0
    ramp = np.stack([0.3 + 0.3 * x, 0.4 + 0.2 * y, 0.5 + 0 * x], -1)  # a plane: no diagonal Haar detail
    for base in (np.full((64, 64, 3), 0.5), ramp):
        noisy = np.clip(base + rng.normal(0, sigma / 255.0, base.shape), 0, 1).astype(np.float32)
        assert classical.estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.15)
    assert classical.estimate_noise_sigma(ramp.astype(np.float32)) < 0.5


def test_coarser_noise_estimate_keeps_white_noise_and_sees_correlated_noise():
    rng = np.random.default_rng(8)
    white = np.clip(0.5 + rng.normal(0, 20 / 255.0, (96, 96, 3)), 0, 1).astype(np.float32)
    for scale in (1, 2, 3):
        assert classical.estimate_noise_sigma(white, scale=scale) == pytest.approx(20.0, rel=0.15)
    # Noise of std 20 made of 2 x 2 blocks (correlated between neighbours, as after demosaicking or JPEG):
    # the finest scale cannot see it; scale 2 reads the white-noise sigma of the same power there, 2 x 20.
    blocks = np.kron(rng.normal(0, 20 / 255.0, (48, 48, 3)), np.ones((2, 2, 1)))
    correlated = np.clip(0.5 + blocks, 0, 1).astype(np.float32)
    assert classical.estimate_noise_sigma(correlated) < 1.0
    assert classical.estimate_noise_sigma(correlated, scale=2) == pytest.approx(40.0, rel=0.15)
    with pytest.raises(ValueError, match="scale"):
        classical.estimate_noise_sigma(white, scale=0)
    with pytest.raises(ValueError, match="at least 8 x 8"):
        classical.estimate_noise_sigma(white[:7], scale=4)


# --- bad input ----------------------------------------------------------------------------------------

GOOD = np.full((16, 16, 3), 0.5, np.float32)


@pytest.mark.parametrize("image, message", [
    (np.full((16, 16), 0.5, np.float32), "H x W x 3"),
    (np.full((16, 16, 4), 0.5, np.float32), "H x W x 3"),
    (np.full((16, 16, 3), 128, np.uint8), "dtype uint8.*divide by 255"),
    (np.full((16, 16, 3), 128.0, np.float32), "0-255 data"),
    (np.full((16, 16, 3), 1.2, np.float32), r"\[0, 1\]"),
    (np.full((16, 16, 3), -0.1, np.float32), r"\[0, 1\]"),
    (np.full((16, 16, 3), np.nan, np.float32), "NaN"),
])
@pytest.mark.parametrize("function", [
    classical.dark_channel_prior, classical.estimate_noise_sigma, lambda image: classical.cbm3d(image, 25),
])
def test_bad_images_are_refused(function, image, message):
    with pytest.raises(ValueError, match=message):
        function(image)


@pytest.mark.parametrize("kwargs, message", [
    (dict(patch=4), "patch must be odd"), (dict(patch=0), "patch must be >= 1"), (dict(patch=7.5), "integer"),
    (dict(omega=0), r"omega must be in \(0, 1\]"), (dict(omega=1.5), "omega"), (dict(t0=1), "t0"),
    (dict(t0=0), "t0"), (dict(radius=-1), "radius"), (dict(eps=0), "eps"), (dict(eps=float("nan")), "eps"),
    (dict(top_fraction=0), "top_fraction"), (dict(top_fraction=2), "top_fraction"), (dict(radius=True), "radius"),
])
def test_bad_dcp_parameters_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classical.dark_channel_prior(GOOD, **kwargs)


def test_other_bad_arguments_are_refused():
    for sigma in (-1, float("inf"), "25", None):
        with pytest.raises(ValueError, match="sigma"):
            classical.cbm3d(GOOD, sigma)
    with pytest.raises(ValueError, match="at least 16 x 16"):
        classical.cbm3d(np.full((8, 8, 3), 0.5, np.float32), 25)  # bm3d 4.0.3 crashes the process on 8 x 8
    with pytest.raises(ValueError, match="airlight"):
        classical.transmission(GOOD, [0.8, 0.0, 0.8])
    with pytest.raises(ValueError, match="guide's H x W"):
        classical.guided_filter(np.zeros((8, 8)), np.zeros((8, 9)), 2, 1e-3)
    with pytest.raises(ValueError, match="eps"):
        classical.guided_filter(np.zeros((8, 8)), np.zeros((8, 8)), 2, -1.0)


# --- tools.classical_baselines -------------------------------------------------------------------------


def _reside_folder(root, count=2, size=48):
    """``root/hazy/<id>_1.png`` + ``root/gt/<id>.png`` made with the project's haze model."""
    clean = synthetic.procedural_images(count, size, size, seed=4)
    for k in range(count):
        hazy = synthetic.add_haze(clean[k], [7, k], beta=1.5, airlight=0.85).numpy()
        image_files.write_image(root / "gt" / f"{1400 + k}.png", clean[k])
        image_files.write_image(root / "hazy" / f"{1400 + k}_1.png", hazy)
    return root


def test_run_baseline_scores_like_the_evaluation_tools_and_records_everything(tmp_path):
    pairs = pairing.find_pairs(_reside_folder(tmp_path / "data"))
    parameters = dict(patch=7, radius=16)
    record, summary = classical_baselines.run_baseline(pairs, "dcp", dcp_parameters=parameters, channel="rgb",
                                                       output_dir=tmp_path / "out", show_progress=False)
    assert record["method"] == "dcp" and record["count"] == 2 and summary.channel == "rgb"
    assert record["parameters"] == classical.check_dcp_parameters(**parameters)
    inputs, input_summary = evaluation.measure_pairs(pairs, channel="rgb", show_progress=False)
    assert record["input_mean"]["psnr_rgb"] == pytest.approx(input_summary.psnr)
    assert record["mean"]["psnr_rgb"] == pytest.approx(summary.psnr) and summary.psnr > input_summary.psnr + 3.0
    for row, before, pair in zip(record["images"], inputs, pairs):
        assert row["input_psnr_rgb"] == pytest.approx(before.psnr) and row["seconds"] > 0
        written = image_files.read_image(tmp_path / "out" / (pathlib.Path(pair.input_path).stem + ".png"))
        _, clean = pairing.load_pair(pair)
        assert row["psnr_rgb"] == pytest.approx(metrics.psnr_rgb(written, clean))  # the PNG gives the same score
    assert summary.line().startswith("n=2 psnr_rgb=")
    json.dumps(record, allow_nan=False)


def test_run_baseline_cbm3d_records_the_estimated_sigma(tmp_path):
    clean = synthetic.procedural_images(1, 64, 64, seed=5)[0]  # smaller, the scale-2 estimate reads texture
    noisy = synthetic.add_gaussian_noise(clean, [1, 1], sigma=20.0).numpy()
    image_files.write_image(tmp_path / "noisy" / "a.png", noisy)
    image_files.write_image(tmp_path / "clean" / "a.png", clean)
    pairs = pairing.find_pairs(tmp_path / "noisy", tmp_path / "clean")
    record, summary = classical_baselines.run_baseline(pairs, "cbm3d", sigma="estimate", estimate_scale=2,
                                                       show_progress=False)
    assert record["parameters"]["sigma"] == "estimate" and record["parameters"]["bm3d_version"]
    assert record["parameters"]["estimate_scale"] == 2
    decoded = image_files.read_image(tmp_path / "noisy" / "a.png")
    assert record["images"][0]["sigma"] == pytest.approx(classical.estimate_noise_sigma(decoded, scale=2), rel=1e-9)
    assert record["images"][0]["sigma"] != pytest.approx(classical.estimate_noise_sigma(decoded), rel=1e-9)
    assert record["images"][0]["sigma"] == pytest.approx(20.0, rel=0.2)
    assert summary.psnr > record["input_mean"]["psnr_y"] + 3.0


def test_sigma_flag_values():
    assert classical_baselines.parse_sigma("estimate") == "estimate"
    assert classical_baselines.parse_sigma(" 15 ") == 15.0
    for bad in ("0", "-5", "nan", "inf", "high"):
        with pytest.raises(ValueError, match="--sigma"):
            classical_baselines.parse_sigma(bad)
    with pytest.raises(ValueError, match="--estimate_scale=2 needs --sigma=estimate"):
        classical_baselines.run_baseline([], "cbm3d", sigma=25, estimate_scale=2)


@pytest.mark.slow
def test_tool_prints_the_metrics_line_last_and_writes_the_record(tmp_path):
    data = _reside_folder(tmp_path / "data")
    record_path = tmp_path / "record.json"
    command = [sys.executable, "-m", "tools.classical_baselines", "--method=dcp", f"--input_dir={data}",
               "--patch=7", "--radius=16", f"--record={record_path}", f"--output_dir={tmp_path / 'out'}"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert SUMMARY_Y.match(lines[-1]), lines
    assert lines[0].startswith("1400_1.png psnr_y=") and lines[-2].startswith("input: n=2 psnr_y=")
    record = json.loads(record_path.read_text())
    assert record["summary_line"] == lines[-1] and record["parameters"]["patch"] == 7
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["1400_1.png", "1401_1.png"]

    refused = subprocess.run(command[:5] + ["--sigma=25"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--sigma do not apply to --method=dcp" in refused.stderr
