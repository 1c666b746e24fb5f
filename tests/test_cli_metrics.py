"""erlrestore-metrics end to end: pairing, CSV, the summary line, errors."""

import csv
import math
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from erlrestore import metrics

pytestmark = pytest.mark.slow  # runs erlrestore-metrics as a command

SUMMARY = re.compile(r"^n=(\d+) psnr_y=(inf|\d+\.\d{4}) ssim_y=(\d\.\d{5})$")
SUMMARY_RGB = re.compile(r"^n=(\d+) psnr_rgb=(inf|\d+\.\d{4}) ssim_rgb=(\d\.\d{5})$")


def run_metrics(*args):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.metrics", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def last_line(result):
    lines = result.stdout.strip().splitlines()
    assert lines, f"no stdout; stderr:\n{result.stderr[-3000:]}"
    return lines[-1]


def write_set(folder, prefix, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images, start=1):
        cv2.imwrite(str(folder / f"{prefix}{i:03d}.png"), image[..., ::-1])  # RGB -> BGR


@pytest.fixture
def rain_set(tmp_path):
    rng = np.random.default_rng(0)
    clean = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(3)]
    rainy = [np.clip(c.astype(int) + rng.integers(-20, 21, c.shape), 0, 255).astype(np.uint8) for c in clean]
    write_set(tmp_path / "set" / "rain", "rain-", rainy)
    write_set(tmp_path / "set" / "norain", "norain-", clean)
    return tmp_path / "set", rainy, clean


def test_summary_line_csv_and_values(rain_set, tmp_path):
    folder, rainy, clean = rain_set
    out_csv = tmp_path / "out" / "scores.csv"
    result = run_metrics(f"--input_dir={folder / 'rain'}", f"--target_dir={folder / 'norain'}", f"--csv={out_csv}")
    assert result.returncode == 0, result.stderr[-3000:]
    match = SUMMARY.match(last_line(result))
    assert match, last_line(result)
    expected_psnr = np.mean([metrics.psnr_y(r, c) for r, c in zip(rainy, clean)])
    expected_ssim = np.mean([metrics.ssim_y(r, c) for r, c in zip(rainy, clean)])
    assert int(match.group(1)) == 3
    assert float(match.group(2)) == pytest.approx(expected_psnr, abs=5e-5)
    assert float(match.group(3)) == pytest.approx(expected_ssim, abs=5e-6)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["rain-001.png", "rain-002.png", "rain-003.png"]
    assert float(rows[1]["psnr_y"]) == pytest.approx(metrics.psnr_y(rainy[1], clean[1]), abs=1e-5)


def test_one_folder_argument_and_crop_border(rain_set):
    folder, rainy, clean = rain_set
    result = run_metrics(f"--input_dir={folder}", "--crop_border=2")
    assert result.returncode == 0, result.stderr[-3000:]
    expected = np.mean([metrics.psnr_y(r, c, crop_border=2) for r, c in zip(rainy, clean)])
    assert float(SUMMARY.match(last_line(result)).group(2)) == pytest.approx(expected, abs=5e-5)


def test_identical_sets_report_inf(rain_set):
    folder, _, _ = rain_set
    result = run_metrics(f"--input_dir={folder / 'norain'}", f"--target_dir={folder / 'norain'}", "--layout=folders")
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_line(result) == "n=3 psnr_y=inf ssim_y=1.00000"


def test_channel_rgb_line_csv_and_values(rain_set, tmp_path):
    folder, rainy, clean = rain_set
    out_csv = tmp_path / "rgb.csv"
    result = run_metrics(f"--input_dir={folder}", "--channel=rgb", "--crop_border=1", f"--csv={out_csv}")
    assert result.returncode == 0, result.stderr[-3000:]
    match = SUMMARY_RGB.match(last_line(result))
    assert match, last_line(result)
    psnrs = [metrics.psnr_rgb(r, c, crop_border=1) for r, c in zip(rainy, clean)]
    ssims = [metrics.ssim_rgb(r, c, crop_border=1) for r, c in zip(rainy, clean)]
    assert last_line(result) == f"n=3 psnr_rgb={math.fsum(psnrs) / 3:.4f} ssim_rgb={math.fsum(ssims) / 3:.5f}"
    # RGB is not Y: the numbers differ from the default run's.
    y_line = last_line(run_metrics(f"--input_dir={folder}", "--crop_border=1"))
    assert SUMMARY.match(y_line) and y_line.split()[1][len("psnr_y="):] != match.group(2)
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["name", "input", "target", "psnr_rgb", "ssim_rgb"]
    assert float(rows[2]["psnr_rgb"]) == pytest.approx(psnrs[2], abs=1e-6)
    assert float(rows[2]["ssim_rgb"]) == pytest.approx(ssims[2], abs=1e-7)


def test_channel_rgb_constant_offset_golden_value(tmp_path):
    # Every channel of every pixel 5 levels brighter: RGB PSNR = 20 log10(255 / 5).
    clean = np.full((16, 16, 3), 90, np.uint8)
    write_set(tmp_path / "rain", "rain-", [clean + np.uint8(5)])
    write_set(tmp_path / "norain", "norain-", [clean])
    result = run_metrics(f"--input_dir={tmp_path}", "--channel=rgb")
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_line(result) == f"n=1 psnr_rgb={20 * math.log10(255 / 5):.4f} ssim_rgb=" + (
        f"{(2 * 95 * 90 + 6.5025) / (95**2 + 90**2 + 6.5025):.5f}")


def test_default_channel_is_y_and_its_last_line_names_it(rain_set):
    folder, rainy, clean = rain_set
    default, explicit = run_metrics(f"--input_dir={folder}"), run_metrics(f"--input_dir={folder}", "--channel=y")
    assert last_line(default) == last_line(explicit)
    n, psnr, _ = SUMMARY.match(last_line(default)).groups()
    expected = np.mean([metrics.psnr_y(r, c) for r, c in zip(rainy, clean)])
    assert int(n) == 3 and float(psnr) == pytest.approx(expected, abs=5e-5)
    bad = run_metrics(f"--input_dir={folder}", "--channel=ycbcr")
    assert bad.returncode != 0 and "channel" in bad.stderr


def test_unpaired_input_is_a_clear_error(rain_set):
    folder, rainy, _ = rain_set
    cv2.imwrite(str(folder / "rain" / "rain-004.png"), rainy[0])
    result = run_metrics(f"--input_dir={folder / 'rain'}", f"--target_dir={folder / 'norain'}")
    assert result.returncode != 0
    assert "rain-004.png" in result.stderr
    assert not SUMMARY.match(result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "")


def test_a_pair_too_small_for_ssim_is_an_error_naming_its_files(rain_set):
    folder, rainy, clean = rain_set
    cv2.imwrite(str(folder / "rain" / "rain-004.png"), rainy[0][:8, :8])
    cv2.imwrite(str(folder / "norain" / "norain-004.png"), clean[0][:8, :8])
    result = run_metrics(f"--input_dir={folder}")
    assert result.returncode == 1
    assert "rain-004.png" in result.stderr and "norain-004.png" in result.stderr
    assert "SSIM needs images of at least 11x11 pixels" in result.stderr


def test_bad_flag_values_are_usage_errors(rain_set):
    folder, _, _ = rain_set
    result = run_metrics(f"--input_dir={folder}", "--crop_border=-1")
    assert result.returncode != 0
    assert "crop_border" in result.stderr
    result = run_metrics("--target_dir=x")
    assert result.returncode != 0
    assert "input_dir" in result.stderr


def test_pairs_csv_names_any_files(tmp_path):
    """--pairs: input,target lines, relative to the CSV's folder or absolute; a header and comments are skipped."""
    rng = np.random.default_rng(5)
    clean = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    rainy = [np.clip(clean.astype(int) + rng.integers(-k, k + 1, clean.shape), 0, 255).astype(np.uint8)
             for k in (10, 40)]
    (tmp_path / "shots").mkdir()
    (tmp_path / "reference").mkdir()
    cv2.imwrite(str(tmp_path / "shots" / "light drizzle.png"), rainy[0][..., ::-1])
    cv2.imwrite(str(tmp_path / "shots" / "DSC_0042.png"), rainy[1][..., ::-1])
    cv2.imwrite(str(tmp_path / "reference" / "dry.png"), clean[..., ::-1])
    listing = tmp_path / "lists" / "pairs.csv"
    listing.parent.mkdir()
    listing.write_text("input,target\n# two shots of one scene\n"
                       "../shots/light drizzle.png,../reference/dry.png\n"
                       f"{tmp_path / 'shots' / 'DSC_0042.png'},../reference/dry.png\n")
    out_csv = tmp_path / "scores.csv"
    result = run_metrics(f"--pairs={listing}", f"--csv={out_csv}")
    assert result.returncode == 0, result.stderr[-3000:]
    psnrs = [metrics.psnr_y(r, clean) for r in rainy]
    ssims = [metrics.ssim_y(r, clean) for r in rainy]
    assert last_line(result) == f"n=2 psnr_y={math.fsum(psnrs) / 2:.4f} ssim_y={math.fsum(ssims) / 2:.5f}"
    with open(out_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["light drizzle.png", "DSC_0042.png"]  # the list's order
    assert rows[1]["target"] == str(tmp_path / "reference" / "dry.png")


def test_pairs_csv_errors(tmp_path):
    image = np.zeros((16, 16, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    listing = tmp_path / "pairs.csv"
    listing.write_text("a.png,a.png\n\nb.png,a.png\n")
    result = run_metrics(f"--pairs={listing}")
    assert result.returncode == 1
    assert f"{listing}, line 3: input image {tmp_path / 'b.png'} does not exist" in result.stderr
    result = run_metrics(f"--pairs={tmp_path / 'none.csv'}")
    assert result.returncode == 1 and f"pairs file {tmp_path / 'none.csv'} does not exist" in result.stderr
    result = run_metrics(f"--pairs={listing}", "--layout=folders", f"--target_dir={tmp_path}")
    assert result.returncode == 2
    assert "lists the pairs itself; drop --target_dir, --layout" in result.stderr
    result = run_metrics(f"--pairs={listing}", f"--input_dir={tmp_path}")
    assert result.returncode == 2 and "give either --input_dir" in result.stderr and "or --pairs" in result.stderr


# Input PSNRs quoted in ../shared/data/README.md, to the precision it quotes them.
QUOTED_INPUT_PSNR = [
    ("rain12", [], 30.1, 0.05),
    ("rain100l-10", [], 29.7, 0.05),
    ("sots-indoor-10", [], 14.37, 0.005),
    ("polyu-20", [], 37.04, 0.005),
]


@pytest.mark.parametrize("name,extra,quoted,tolerance", QUOTED_INPUT_PSNR)
def test_reproduces_quoted_input_psnr_of_shared_samples(shared_data, name, extra, quoted, tolerance):
    result = run_metrics(f"--input_dir={shared_data / name}", *extra)
    assert result.returncode == 0, result.stderr[-3000:]
    match = SUMMARY.match(last_line(result))
    assert match, last_line(result)
    psnr = float(match.group(2))
    assert math.isfinite(psnr)
    assert psnr == pytest.approx(quoted, abs=tolerance)


def test_shared_rain12_matches_independent_scikit_image_computation(shared_data):
    """Four decimals against scikit-image on a Y channel computed here by hand."""
    from skimage.metrics import peak_signal_noise_ratio

    folder = shared_data / "rain12"
    psnrs, ssims = [], []
    for rain_path in sorted((folder / "rain").glob("rain-*.png")):
        clean_path = folder / "norain" / rain_path.name.replace("rain-", "norain-")
        rain = cv2.imread(str(rain_path))[..., ::-1].astype(np.float64) / 255.0
        clean = cv2.imread(str(clean_path))[..., ::-1].astype(np.float64) / 255.0
        y_rain = 16 + rain @ np.array([65.481, 128.553, 24.966])
        y_clean = 16 + clean @ np.array([65.481, 128.553, 24.966])
        psnrs.append(peak_signal_noise_ratio(y_clean, y_rain, data_range=255))
        ssims.append(
            structural_similarity(
                y_clean, y_rain, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
            )
        )
    result = run_metrics(f"--input_dir={folder}")
    assert result.returncode == 0, result.stderr[-3000:]
    assert last_line(result) == f"n=12 psnr_y={np.mean(psnrs):.4f} ssim_y={np.mean(ssims):.5f}"
