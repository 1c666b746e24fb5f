"""Pictures: labelled strips (erlrestore.pictures), --compare in restore/evaluate, the gallery tool.

Tiny images and tiny untrained MEMDs throughout: with its zero-initialised
last convolution an untrained MEMD with the global residual is the
identity, and that convolution's bias ``b`` makes it ``clip(x + b)``.
"""

import math
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from erlrestore import evaluation, metrics, pictures, pretrained
from erlrestore.data import image_files, pairing
from erlrestore.models import presets
from erlrestore.models.memd import build_memd, memd_config

SUMMARY = re.compile(r"^n=(\d+) psnr_y=(\d+\.\d{4}) ssim_y=(\d\.\d{5})$")
BACKGROUND = np.array(pictures.BACKGROUND, np.uint8)


def _image(height, width, seed=0):
    return np.random.default_rng(seed).random((height, width, 3)).astype(np.float32)


def _as_uint8(image):
    return np.rint(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _text_pixels(band):
    """How many pixels of a label band the text lit (brighter than the band's background)."""
    return int(np.count_nonzero(band.max(axis=-1) > BACKGROUND.max() + 40))


# --- strip geometry -----------------------------------------------------------


def test_panels_side_by_side_under_a_label_band():
    images = [_image(30, 40, seed) for seed in range(3)]
    strip = pictures.strip(images, ["input", "restored", "clean"])
    band = pictures.band_height(1)
    gap = pictures.GAP
    assert strip.dtype == np.uint8
    assert strip.shape == (band + 30, 3 * 40 + 2 * gap, 3)
    for i, image in enumerate(images):
        x = i * (40 + gap)
        np.testing.assert_array_equal(strip[band:, x:x + 40], _as_uint8(image))  # unscaled, in order
        assert _text_pixels(strip[:band, x:x + 40]) > 20  # the label is drawn on the band above it
        if i < 2:
            assert (strip[:, x + 40:x + 40 + gap] == BACKGROUND).all()  # the gap
    # No text outside the band.
    assert band > 10


def test_comparison_strip_sizes_with_and_without_the_clean_image():
    degraded, restored, clean = _image(24, 32, 1), _image(24, 32, 2), _image(24, 32, 3)
    two = pictures.comparison_strip(degraded, restored)
    three = pictures.comparison_strip(degraded, restored, clean)
    assert two.shape == (pictures.band_height(1) + 24, 2 * 32 + pictures.GAP, 3)
    # With the clean image: a third panel, and a second label line (the PSNR).
    assert three.shape == (pictures.band_height(2) + 24, 3 * 32 + 2 * pictures.GAP, 3)
    assert pictures.band_height(2) > pictures.band_height(1)
    # A baseline's restoration too: four panels.
    four = pictures.comparison_strip(degraded, [restored, restored], clean)
    assert four.shape[1] == 4 * 32 + 3 * pictures.GAP


def test_panels_of_different_heights_are_top_aligned():
    strip = pictures.strip([_image(20, 10), _image(12, 10)], ["a", "b"], max_width=0)
    band = pictures.band_height(1)
    assert strip.shape == (band + 20, 20 + pictures.GAP, 3)
    assert (strip[band + 12:, 10 + pictures.GAP:] == BACKGROUND).all()


def test_wide_strips_are_scaled_down_to_the_max_width_and_the_labels_keep_their_size():
    images = [_image(300, 1000, seed) for seed in range(3)]
    strip = pictures.comparison_strip(*images, max_width=1200)
    band = pictures.band_height(2)
    assert 1200 - 3 <= strip.shape[1] <= 1200
    factor = (1200 - 2 * pictures.GAP) / 3000  # the pictures shrink together; gaps and band do not
    assert strip.shape == (band + round(300 * factor), 3 * math.floor(1000 * factor) + 2 * pictures.GAP, 3)
    assert pictures.DEFAULT_MAX_WIDTH == 2400
    assert 2400 - 2 <= pictures.comparison_strip(*images).shape[1] <= 2400  # the default max width
    assert pictures.comparison_strip(*images, max_width=0).shape[1] == 3000 + 2 * pictures.GAP  # 0: never
    narrow = pictures.comparison_strip(*[_image(20, 30)] * 3, max_width=1200)
    assert narrow.shape[1] == 90 + 2 * pictures.GAP  # small strips are not enlarged
    with pytest.raises(ValueError, match="no room"):
        pictures.strip(images, ["a", "b", "c"], max_width=10)


def test_labels_read_the_same_on_bright_and_dark_images():
    white, black = np.ones((40, 200, 3), np.float32), np.zeros((40, 200, 3), np.float32)
    bright = pictures.strip([white, white], ["input", "restored"])
    dark = pictures.strip([black, black], ["input", "restored"])
    band = pictures.band_height(1)
    # The text sits on its own dark band: the same pixels whatever the picture, and lit.
    np.testing.assert_array_equal(bright[:band], dark[:band])
    assert _text_pixels(bright[:band, :200]) > 50


def test_narrow_panels_shrink_the_text_instead_of_spilling_into_the_next_panel():
    strip = pictures.strip([_image(20, 30), _image(20, 30)], ["a very long label for a panel", "b"])
    band = pictures.band_height(1)
    second = strip[:band, 30 + pictures.GAP:]
    alone = pictures.strip([_image(20, 30)], ["b"])[:band]
    np.testing.assert_array_equal(second, alone)
    # A label a little too long for its panel is drawn smaller, whole: the band's right edge stays unlit.
    label = "restored 12345"
    assert cv2.getTextSize(label, pictures.FONT, pictures.FONT_SCALE, 1)[0][0] > 100
    band_pixels = pictures.strip([_image(20, 100)], [label])[:band]
    lit_columns = np.flatnonzero((band_pixels.max(axis=-1) > BACKGROUND.max() + 40).any(axis=0))
    assert 60 < lit_columns.max() < 100 - 3


# --- the PSNR on the labels ---------------------------------------------------


def test_psnr_text():
    assert pictures.psnr_text(33.6149) == "Y-PSNR 33.61 dB"
    assert pictures.psnr_text(28.4751, "rgb") == "RGB-PSNR 28.48 dB"
    assert pictures.psnr_text(math.inf) == "Y-PSNR inf dB"
    with pytest.raises(ValueError, match="channel"):
        pictures.psnr_text(30.0, "bgr")


@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_the_label_says_the_psnr_measured(monkeypatch, channel):
    clean = _image(24, 32, 5)
    degraded = np.clip(clean + 0.05 * _image(24, 32, 6), 0, 1)
    restored = np.clip(clean + 0.01 * _image(24, 32, 7), 0, 1)
    drawn = []
    real_strip = pictures.strip
    monkeypatch.setattr(pictures, "strip", lambda images, labels, **kw: drawn.append(labels) or real_strip(
        images, labels, **kw))
    pictures.comparison_strip(degraded, restored, clean, channel=channel)
    expected = [metrics.psnr(image, clean, y_channel=channel == "y") for image in (degraded, restored)]
    assert drawn[-1] == [["input", pictures.psnr_text(expected[0], channel)],
                         ["restored", pictures.psnr_text(expected[1], channel)], ["clean"]]
    # Given PSNRs (a tool's scores) are printed as they are, not measured again.
    pictures.comparison_strip(degraded, restored, clean, psnrs=[12.345, 67.891], labels=["in", "out", "gt"])
    assert drawn[-1] == [["in", "Y-PSNR 12.35 dB"], ["out", "Y-PSNR 67.89 dB"], ["gt"]]


def test_different_psnrs_draw_different_labels():
    images = [_image(20, 200, i) for i in range(3)]
    one = pictures.comparison_strip(*images, psnrs=[20.0, 30.0])
    other = pictures.comparison_strip(*images, psnrs=[20.0, 31.0])
    band = pictures.band_height(2)
    assert (one[:band, :200] == other[:band, :200]).all()
    assert not (one[:band, 200:] == other[:band, 200:]).all()


def test_psnrs_need_the_clean_image_and_match_the_panels():
    with pytest.raises(ValueError, match="clean"):
        pictures.comparison_strip(_image(8, 8), _image(8, 8), psnrs=[1.0, 2.0])
    with pytest.raises(ValueError, match="2 panels"):
        pictures.comparison_strip(_image(8, 8), _image(8, 8), _image(8, 8), psnrs=[1.0])


def test_write_strip_round_trips_a_png(tmp_path):
    strip = pictures.comparison_strip(_image(16, 20), _image(16, 20, 1))
    path = pictures.write_strip(tmp_path / "s.png", strip)
    np.testing.assert_array_equal(cv2.imread(path)[..., ::-1], strip)
    with pytest.raises(ValueError, match="uint8"):
        pictures.write_strip(tmp_path / "f.png", strip.astype(np.float32))


# --- evaluation: input scores, gain, strips ----------------------------------------


def shifting_model(shift):
    """A tiny MEMD computing ``clip(x + shift)``."""
    model = build_memd(memd_config("MEMD", **presets.TINY_MEMD))
    if shift:
        model.get_layer("mde").get_layer("output").bias.assign(np.full(3, shift, np.float32))
    return model


@pytest.fixture(scope="module")
def plus4(tmp_path_factory):
    """A tiny model computing x + 4/255, in memory and as a .keras file."""
    model = shifting_model(4 / 255)
    path = tmp_path_factory.mktemp("models") / "plus4.keras"
    model.save(path)
    return model, path


def _write_rgb(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1])


@pytest.fixture
def pair_set(tmp_path):
    """Two 32x160 uint8 pairs in rain/ + norain/: rain lowers 16 rows by 8 levels.

    Wide enough for the strips' labels to show the PSNRs whole.
    """
    rng = np.random.default_rng(11)
    folder = tmp_path / "set"
    for i in (1, 2):
        clean = rng.integers(20, 201, (32, 160, 3), dtype=np.uint8)
        rainy = clean.copy()
        rainy[8 * i:8 * i + 16] -= 8
        _write_rgb(folder / "norain" / f"norain-{i}.png", clean)
        _write_rgb(folder / "rain" / f"rain-{i}.png", rainy)
    return folder


def test_evaluate_model_returns_the_inputs_scores_and_writes_strips(plus4, pair_set, tmp_path):
    pairs = pairing.find_pairs(pair_set)
    measured, measured_summary = evaluation.measure_pairs(pairs, show_progress=False)
    strips = tmp_path / "compare"
    scores, summary, input_scores, input_summary = evaluation.evaluate_model(
        plus4[0], pairs, show_progress=False, compare_dir=strips, return_input=True)
    assert input_scores == measured and input_summary == measured_summary
    assert (scores, summary) == evaluation.evaluate_model(plus4[0], pairs, show_progress=False)
    assert sorted(os.listdir(strips)) == ["rain-1.png", "rain-2.png"]
    strip = image_files.read_image(strips / "rain-1.png")
    assert strip.shape == (pictures.band_height(2) + 32, 3 * 160 + 2 * pictures.GAP, 3)
    # The strip is the one comparison_strip makes from the scored images and scores.
    degraded, clean = pairing.load_pair(pairs[0])
    restored = evaluation.quantize_8bit(np.clip(degraded + np.float32(4 / 255), 0, 1))
    expected = pictures.comparison_strip(degraded, restored, clean, psnrs=[input_scores[0].psnr, scores[0].psnr])
    np.testing.assert_array_equal(_as_uint8(strip), expected)
    # Strips already there are refused before anything runs, unless overwrite; never beside the restored images.
    with pytest.raises(image_files.DataError, match="already exist"):
        evaluation.evaluate_model(plus4[0], pairs, show_progress=False, compare_dir=strips)
    with pytest.raises(image_files.DataError, match="folder of their own"):
        evaluation.evaluate_model(plus4[0], pairs, show_progress=False, output_dir=tmp_path / "out",
                                  compare_dir=tmp_path / "out")


def test_compare_models_scores_the_inputs_and_shows_the_baseline(plus4, pair_set, tmp_path):
    pairs = pairing.find_pairs(pair_set)
    measured, measured_summary = evaluation.measure_pairs(pairs, show_progress=False)
    result = evaluation.compare_models(plus4[0], shifting_model(0.0), pairs, show_progress=False,
                                       compare_dir=tmp_path / "compare")
    assert result.input_scores == measured and result.input_summary == measured_summary
    strip = image_files.read_image(tmp_path / "compare" / "rain-2.png")
    assert strip.shape[1] == 4 * 160 + 3 * pictures.GAP  # input | baseline | restored | clean


def test_gain_line():
    restored = evaluation.Summary(count=12, psnr=33.5345, ssim=0.91301)
    inputs = evaluation.Summary(count=12, psnr=30.1354, ssim=0.85540)
    assert evaluation.input_line(inputs) == "input: n=12 psnr_y=30.1354 ssim_y=0.85540"
    assert evaluation.gain_line(restored, inputs) == "gain: psnr_y=+3.3991 ssim_y=+0.05761"
    worse = evaluation.Summary(count=12, psnr=29.0, ssim=0.8, channel="y")
    assert evaluation.gain_line(worse, inputs) == "gain: psnr_y=-1.1354 ssim_y=-0.05540"
    rgb = evaluation.Summary(count=12, psnr=30.0, ssim=0.9, channel="rgb")
    assert evaluation.gain_line(rgb, evaluation.Summary(12, 28.0, 0.8, "rgb")) == \
        "gain: psnr_rgb=+2.0000 ssim_rgb=+0.10000"
    with pytest.raises(ValueError, match="different channels"):
        evaluation.gain_line(rgb, inputs)
    with pytest.raises(ValueError, match="same images"):
        evaluation.gain_line(evaluation.Summary(3, 30.0, 0.9), inputs)


# --- the command lines ------------------------------------------------------------


def _run(module, *args, env=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300,
                          env=env)


@pytest.mark.slow
def test_restore_compare_writes_input_restored_strips(plus4, pair_set, tmp_path):
    out = tmp_path / "restored"
    result = _run("erlrestore.cli.restore", f"--model={plus4[1]}", f"--input={pair_set / 'rain'}",
                  f"--output_dir={out}", "--compare", "--compare_max_width=240")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == f"restored 2 images to {out}"
    assert lines[-2] == f"comparison strips in {out / 'compare'}"
    assert sorted(os.listdir(out)) == ["compare", "rain-1.png", "rain-2.png"]
    strip = image_files.read_image(out / "compare" / "rain-1.png")
    factor = (240 - pictures.GAP) / 320  # two 160-px panels scaled into 240 px
    assert strip.shape == (pictures.band_height(1) + round(32 * factor), 2 * math.floor(160 * factor) + pictures.GAP, 3)
    # Strips already there are refused (named) before anything is restored; --overwrite replaces them.
    for name in ("rain-1.png", "rain-2.png"):
        (out / name).unlink()
    again = _run("erlrestore.cli.restore", f"--model={plus4[1]}", f"--input={pair_set / 'rain'}",
                 f"--output_dir={out}", "--compare")
    assert again.returncode == 1 and "already exist" in again.stderr and "compare" in again.stderr
    assert sorted(os.listdir(out)) == ["compare"]
    replaced = _run("erlrestore.cli.restore", f"--model={plus4[1]}", f"--input={pair_set / 'rain'}",
                    f"--output_dir={out}", "--compare", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["compare", "rain-1.png", "rain-2.png"]


@pytest.mark.slow
def test_evaluate_compare_and_the_input_and_gain_lines(plus4, pair_set, tmp_path):
    pairs = pairing.find_pairs(pair_set)
    input_scores, inputs = evaluation.measure_pairs(pairs, show_progress=False)
    scores, restored = evaluation.evaluate_model(plus4[0], pairs, show_progress=False)
    out = tmp_path / "restored"
    result = _run("erlrestore.cli.evaluate", f"--model={plus4[1]}", f"--input_dir={pair_set}",
                  f"--output_dir={out}", "--compare")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert lines[-3:] == [
        f"input: {inputs.line()}",
        evaluation.gain_line(restored, inputs),
        restored.line(),
    ]
    assert SUMMARY.match(lines[-1])  # the last line, unchanged
    assert lines[-2].startswith("gain: psnr_y=+")  # x + 4/255 beats rain on half the rows
    assert re.fullmatch(r"gain: psnr_y=[+-]\d+\.\d{4} ssim_y=[+-]\d\.\d{5}", lines[-2])
    assert sorted(os.listdir(out / "compare")) == ["rain-1.png", "rain-2.png"]
    strip = image_files.read_image(out / "compare" / "rain-2.png")
    assert strip.shape == (pictures.band_height(2) + 32, 3 * 160 + 2 * pictures.GAP, 3)
    # The last line still carries the restored score, for scripts that read it.
    assert SUMMARY.match(lines[-1]).groups() == ("2", f"{restored.psnr:.4f}", f"{restored.ssim:.5f}")
    # --compare needs a folder to write to.
    bare = _run("erlrestore.cli.evaluate", f"--model={plus4[1]}", f"--input_dir={pair_set}", "--compare")
    assert bare.returncode != 0 and "add --output_dir" in bare.stderr


# --- the gallery tool ---------------------------------------------------------------


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    """A pretrained-format folder with one tiny model per task."""
    folder = tmp_path_factory.mktemp("zoo")
    for i, task in enumerate(pretrained.TASKS):
        pretrained.save(shifting_model(i / 255), f"tiny-{task}", {"task": task, "description": "a test model"},
                        folder=str(folder))
    # A second model of a task: it must be shown the same degraded photos.
    pretrained.save(shifting_model(-3 / 255), "tiny2-denoise", {"task": "denoise", "description": "another"},
                    folder=str(folder))
    return folder


@pytest.fixture
def photos(tmp_path):
    """A data root holding kodak24/ with three generated 48x64 "photos"."""
    from erlrestore.data import synthetic  # pylint: disable=import-outside-toplevel

    root = tmp_path / "data"
    for name, image in zip(("one", "two", "three"), synthetic.procedural_images(3, 48, 64, seed=3)):
        image_files.write_image(root / "kodak24" / f"{name}.png", image)
    return root


def test_gallery_has_degradations_for_every_task():
    from tools import gallery  # pylint: disable=import-outside-toplevel

    for task in pretrained.TASKS:
        assert len(gallery.recipes(task)) == (3 if task == "derain" else 2)
    assert [r.degradation for r in gallery.recipes("derain")] == ["rain", "heavy_rain", "rain_haze"]
    with_streaks = gallery.recipes("derain", "streaks/")
    assert [r.degradation for r in with_streaks] == ["real_dense_rain", "real_dense_rain", "rain_haze"]
    assert [r.params["density_level"] for r in with_streaks] == ["light", "heavy", "medium"]
    assert with_streaks[0].params["streaks"] == "streaks/"
    assert [r.degradation for r in gallery.recipes("denoise")] == ["gaussian_noise", "camera_noise"]
    assert gallery.recipes("denoise")[0].params == {"sigma": 25.0}
    assert {r.degradation for r in gallery.recipes("dehaze")} == {"haze"}
    with pytest.raises(ValueError, match="no gallery degradations"):
        gallery.recipes("deblur")


def test_gallery_strips_and_fragment(zoo, photos, tmp_path, monkeypatch):
    from tools import gallery  # pylint: disable=import-outside-toplevel

    monkeypatch.setenv(pretrained.FOLDER_VARIABLE, str(zoo))
    out = tmp_path / "gallery"
    entries = gallery.build(str(photos), str(out), photos=["one", "two", "three"], log=lambda line: None)
    names = [f"{model}-{n}.jpg" for model, count in (("tiny-dehaze", 2), ("tiny-denoise", 2), ("tiny-derain", 3),
                                                     ("tiny2-denoise", 2)) for n in range(1, count + 1)]
    assert [e.file for e in entries] == names
    assert sorted(os.listdir(out)) == sorted(names)
    for entry in entries:
        strip = image_files.read_image(out / entry.file)
        assert strip.shape == (pictures.band_height(2) + 48, 3 * 64 + 2 * pictures.GAP, 3)
        assert entry.restored_psnr != entry.input_psnr or entry.model == "tiny-derain"  # tiny-derain: identity
    by_file = {e.file: e for e in entries}
    for n in (1, 2):
        ours, theirs = by_file[f"tiny-denoise-{n}.jpg"], by_file[f"tiny2-denoise-{n}.jpg"]
        assert ours.input_psnr == theirs.input_psnr and ours.restored_psnr != theirs.restored_psnr
    # The scores are the Y-PSNRs of the task's degradation (Gaussian noise, sigma 25, on photo one) and of
    # its restoration (the identity for tiny-derain) against the clean photo.
    from erlrestore.data import synthetic  # pylint: disable=import-outside-toplevel

    clean = image_files.read_image(photos / "kodak24" / "one.png")
    recipe = gallery.recipes("denoise")[0]
    noisy = evaluation.quantize_8bit(synthetic.make_degradation("gaussian_noise", sigma=25.0)(
        clean, gallery.recipe_seed(0, "one", recipe)).numpy())
    assert by_file["tiny-denoise-1.jpg"].input_psnr == metrics.psnr_y(noisy, clean)
    derain = by_file["tiny-derain-1.jpg"]
    assert derain.input_psnr == derain.restored_psnr < 40
    # Every model of a task sees the same inputs, from the fixed seed: run again, same numbers.
    again = gallery.build(str(photos), str(tmp_path / "again"), models=["tiny-denoise"],
                          photos=["one", "two", "three"], log=lambda line: None)
    assert [(e.input_psnr, e.restored_psnr) for e in again] == [
        (by_file[e.file].input_psnr, by_file[e.file].restored_psnr) for e in again]
    other = gallery.build(str(photos), str(tmp_path / "other"), models=["tiny-denoise"],
                          photos=["one", "two", "three"], seed=1, log=lambda line: None)
    assert other[0].input_psnr != again[0].input_psnr
    text = gallery.fragment(entries, "python -m tools.gallery --data_root=data")
    assert "python -m tools.gallery --data_root=data" in text
    for entry in entries:
        assert f"]({entry.file})" in text
        assert f"Y-PSNR {entry.input_psnr:.2f} dB as input, {entry.restored_psnr:.2f} dB restored" in text
    assert "## `tiny-dehaze` (dehaze)" in text and "gaussian_noise sigma=25" in text


def test_gallery_refuses_missing_photos_and_models(zoo, photos, tmp_path, monkeypatch):
    from tools import gallery  # pylint: disable=import-outside-toplevel

    monkeypatch.setenv(pretrained.FOLDER_VARIABLE, str(zoo))
    with pytest.raises(image_files.DataError, match="no photo named 'four'"):
        gallery.build(str(photos), str(tmp_path / "g"), photos=["one", "four"])
    with pytest.raises(image_files.DataError, match="unknown pretrained model 'nope'"):
        gallery.build(str(photos), str(tmp_path / "g"), models=["nope"], photos=["one", "two"])
    with pytest.raises(ValueError, match="give at least 3 --photos"):
        gallery.build(str(photos), str(tmp_path / "g"), photos=["one", "two"])
    # Two photos are enough for the tasks with two degradations.
    assert len(gallery.build(str(photos), str(tmp_path / "two"), models=["tiny-dehaze"], photos=["one", "two"],
                             log=lambda line: None)) == 2
    assert not (tmp_path / "g").exists()  # refused before anything is written


@pytest.mark.slow
def test_gallery_command(zoo, photos, tmp_path):
    streaks = tmp_path / "streaks"
    streaks.mkdir()
    for i in range(2):
        layer = np.zeros((40, 48), np.uint8)
        layer[:, 5 + 20 * i::17] = 255  # vertical streaks
        assert cv2.imwrite(str(streaks / f"s{i}.png"), layer)
    out = tmp_path / "gallery"
    env = dict(os.environ, **{pretrained.FOLDER_VARIABLE: str(zoo)})
    result = _run("tools.gallery", f"--data_root={photos}", f"--output_dir={out}", f"--streak_dir={streaks}",
                  "--models=tiny-derain", "--photos=one,two,three", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["README.md", "tiny-derain-1.jpg", "tiny-derain-2.jpg", "tiny-derain-3.jpg"]
    text = (out / "README.md").read_text()
    # The command that made it, paths relative to the working folder.
    assert f"--streak_dir={os.path.relpath(streaks)}" in text and "--models=tiny-derain --photos=one,two,three" in text
    assert "light rain (`real_dense_rain density_level=light" in text
    assert "rain and haze (`rain_haze density_level=medium" in text
    assert result.stdout.strip().splitlines()[-1].startswith("wrote 3 strips")
