"""Model evaluation: restore_image, evaluate_model, compare_models and erlrestore-evaluate.

Known answers come from tiny untrained MEMDs. With the global residual and a
zero-initialised last convolution an untrained MEMD is exactly the identity,
so evaluating it must equal measuring the inputs. Setting that convolution's
bias to ``b`` (its kernel stays zero) gives ``clip(x + b)``: a model whose
error we can work out by hand.
"""

import csv
import math
import pathlib
import re
import subprocess
import sys

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import evaluation, export, inference, metrics
from erlrestore.data import image_files, pairing
from erlrestore.evaluation import ImageScore
from erlrestore.models import presets
from erlrestore.models.memd import build_memd, memd_config

SUMMARY = re.compile(r"^n=(\d+) psnr_y=(inf|\d+\.\d{4}) ssim_y=(\d\.\d{5})$")
SUMMARY_RGB = re.compile(r"^n=(\d+) psnr_rgb=(inf|\d+\.\d{4}) ssim_rgb=(\d\.\d{5})$")
SIZE = (32, 40)  # height, width of the constructed rain set
ODD_SIZE = (27, 35)  # not a multiple of the models' 2**depth = 4: they pad and crop


def shifting_model(shift):
    """A tiny MEMD computing ``x + shift`` (all channels) before clipping."""
    model = build_memd(memd_config("MEMD", **presets.TINY_MEMD))
    if shift:
        model.get_layer("mde").get_layer("output").bias.assign(np.full(3, shift, np.float32))
    return model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (in-memory model, saved .keras path)."""
    folder = tmp_path_factory.mktemp("models")
    result = {}
    for name, shift in (("identity", 0.0), ("plus4", 4 / 255), ("nudge", 0.3 / 255)):
        model = shifting_model(shift)
        path = folder / f"{name}.keras"
        model.save(path)
        result[name] = (model, path)
    return result


def write_rgb(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image[..., ::-1])  # RGB -> BGR


@pytest.fixture
def rain_set(tmp_path):
    """Three uint8 pairs in rain/ + norain/; rain darkens rows by 8 grey levels.

    Rain covers 16, 16 and 2 of 32 rows (shares f = 1/2, 1/2, 1/16). The
    identity's Y error is 8 * 219 / 255 on rain rows and 0 elsewhere, so its
    PSNR is C - 10 log10(f): 3.01 dB and 12.04 dB above C, mean C + 6.02;
    the first two images are hard, the third easy. ``x + 4/255`` errs by
    4 * 219 / 255 everywhere: its MSE 16 beats the identity's 64 f exactly
    when f > 1/4 (images 1 and 2), and on every rain pixel (4 < 8) but no
    background pixel (4 > 0): IoR = 1, IoB = 0.
    """
    rng = np.random.default_rng(7)
    folder = tmp_path / "set"
    rain_rows = [slice(0, 16), slice(8, 24), slice(30, 32)]
    clean, rainy = [], []
    for i, rows in enumerate(rain_rows, start=1):
        image = rng.integers(20, 201, SIZE + (3,), dtype=np.uint8)  # no clipping at -8 / +4
        degraded = image.copy()
        degraded[rows] -= 8
        write_rgb(folder / "norain" / f"norain-{i:03d}.png", image)
        write_rgb(folder / "rain" / f"rain-{i:03d}.png", degraded)
        clean.append(image)
        rainy.append(degraded)
    return folder, rainy, clean


def as_read(images):
    """uint8 images as ``image_files.read_image`` returns them (float32 k / 255)."""
    return [image.astype(np.float32) / np.float32(255) for image in images]


PLUS4_PSNR = 20 * math.log10(255 / (4 * 219 / 255))


# --- restore_image / quantize_8bit ------------------------------------------


def test_restore_image_identity_any_size(models):
    model, _ = models["identity"]
    image = np.random.default_rng(0).random(ODD_SIZE + (3,)).astype(np.float32)
    restored = evaluation.restore_image(model, image)
    assert restored.dtype == np.float32 and restored.shape == ODD_SIZE + (3,)
    np.testing.assert_array_equal(restored, image)


def test_restore_image_clips_to_unit_range(models):
    model, _ = models["plus4"]
    image = np.full(ODD_SIZE + (3,), 0.5, np.float32)
    image[0, 0] = 1.0
    restored = evaluation.restore_image(model, image)
    assert restored[0, 0].tolist() == [1.0, 1.0, 1.0]  # 1 + 4/255 clipped
    np.testing.assert_allclose(restored[5, 5], 0.5 + 4 / 255, atol=1e-6)


def test_restore_image_rejects_non_rgb(models):
    with pytest.raises(ValueError, match=r"an H x W x 3 image, got shape \(8, 8\)"):
        evaluation.restore_image(models["identity"][0], np.zeros((8, 8), np.float32))


def test_quantize_8bit_equals_writing_and_reading_a_png(tmp_path):
    image = np.random.default_rng(1).random((9, 11, 3)).astype(np.float32)
    image_files.write_image(tmp_path / "q.png", image)
    quantized = evaluation.quantize_8bit(image)
    assert quantized.dtype == np.float32
    np.testing.assert_array_equal(quantized, image_files.read_image(tmp_path / "q.png"))


# --- evaluate_model / compare_models in-process -----------------------------


def test_identity_model_scores_equal_measuring_the_inputs(models, rain_set, tmp_path):
    folder, rainy, _ = rain_set
    pairs = pairing.find_pairs(folder)
    expected, expected_summary = evaluation.measure_pairs(pairs, show_progress=False)
    out = tmp_path / "restored"
    scores, summary = evaluation.evaluate_model(models["identity"][0], pairs, output_dir=out, show_progress=False)
    assert scores == expected
    assert summary == expected_summary
    assert sorted(p.name for p in out.iterdir()) == ["rain-001.png", "rain-002.png", "rain-003.png"]
    for i, degraded in enumerate(rainy, start=1):
        np.testing.assert_array_equal(image_files.read_image(out / f"rain-{i:03d}.png"), degraded / np.float32(255))


def test_quantize_flag(models, rain_set):
    folder, rainy, clean = rain_set
    pairs = pairing.find_pairs(folder)
    nudge = models["nudge"][0]  # x + 0.3/255: rounds back to x
    quantized, _ = evaluation.evaluate_model(nudge, pairs, crop_border=1, show_progress=False)
    raw, _ = evaluation.evaluate_model(nudge, pairs, crop_border=1, quantize=False, show_progress=False)
    rainy, clean = as_read(rainy), as_read(clean)
    for score, r, c in zip(quantized, rainy, clean):
        assert score.psnr_y == metrics.psnr_y(r, c, crop_border=1)
    for score, r, c in zip(raw, rainy, clean):
        float_output = np.clip(r + np.float32(0.3 / 255), 0, 1)
        assert score.psnr_y == pytest.approx(metrics.psnr_y(float_output, c, crop_border=1), abs=1e-4)
        assert score.psnr_y != pytest.approx(metrics.psnr_y(r, c, crop_border=1), abs=1e-3)


def test_compare_models_on_the_constructed_case(models, rain_set):
    folder, rainy, clean = rain_set
    pairs = pairing.find_pairs(folder)
    result = evaluation.compare_models(models["plus4"][0], models["identity"][0], pairs, show_progress=False)
    assert [s.psnr_y for s in result.scores] == pytest.approx([PLUS4_PSNR] * 3, abs=1e-6)
    baseline = [metrics.psnr_y(r, c) for r, c in zip(as_read(rainy), as_read(clean))]
    assert [s.psnr_y for s in result.baseline_scores] == baseline
    assert result.ious == [(1.0, 0.0)] * 3
    assert result.miou == (1.0, 0.0)
    improvement = result.improvement
    assert (improvement["improved"], improvement["count"]) == (2, 3)
    assert (improvement["hard_improved"], improvement["hard_count"]) == (2, 2)
    assert (improvement["easy_improved"], improvement["easy_count"]) == (0, 1)


# --- rain masks for mIoR / mIoB (--rain_mask_dir) -----------------------------


def write_masks(folder):
    """Hand-made masks for the three images of ``rain_set`` (32 x 40), paired by the three rules.

    Against ``plus4`` over ``identity`` the RIM is 1 exactly on each image's
    rain rows (0-15, 8-23, 30-31):

    1. ``rain-001.png`` (the rainy image's name), RGB: rain rows 0-7 and 24-31,
       as (255, 255, 0), grey 2/3; background (255, 0, 0), grey 1/3.
       IoR = 8/16 (rows 0-7), IoB = 8/16 (rows 8-15 of 8-23).
    2. ``norain-002.png`` (the clean image's name): all rain (grey 200/255);
       IoR = 16/32, IoB = nan (no background).
    3. ``rainmask-3.png`` (the number), 16-bit grey: rain at rows 30-31,
       columns 0-9; IoR = 20/20, IoB = 60/1260 (rows 30-31, columns 10-39).

    mIoR = (1/2 + 1/2 + 1) / 3 = 2/3; mIoB = (1/2 + 1/21) / 2 (nan left out).
    """
    folder.mkdir(parents=True, exist_ok=True)
    first = np.zeros(SIZE + (3,), np.uint8)
    first[..., 0] = 255
    first[0:8, :, 1] = 255
    first[24:32, :, 1] = 255
    write_rgb(folder / "rain-001.png", first)
    assert cv2.imwrite(str(folder / "norain-002.png"), np.full(SIZE, 200, np.uint8))
    third = np.zeros(SIZE, np.uint16)
    third[30:32, 0:10] = 65535
    assert cv2.imwrite(str(folder / "rainmask-3.png"), third)
    return folder


MASK_MIOU = (2 / 3, (1 / 2 + 1 / 21) / 2)


def test_rain_masks_pair_by_name_then_number_and_give_hand_computed_miou(models, rain_set):
    folder, _, _ = rain_set
    masks_dir = write_masks(folder.parent / "masks")
    pairs = pairing.find_pairs(folder)
    masks = evaluation.rain_mask_paths(pairs, masks_dir)
    assert [pathlib.Path(m).name for m in masks] == ["rain-001.png", "norain-002.png", "rainmask-3.png"]
    result = evaluation.compare_models(models["plus4"][0], models["identity"][0], pairs, rain_masks=masks,
                                       show_progress=False)
    assert result.ious[0] == (0.5, 0.5)
    assert result.ious[1][0] == 0.5 and math.isnan(result.ious[1][1])
    assert result.ious[2] == pytest.approx((1.0, 60 / 1260))
    assert result.miou == pytest.approx(MASK_MIOU)
    # The same images without masks: the thresholded maps are the rain rows themselves.
    assert evaluation.compare_models(models["plus4"][0], models["identity"][0], pairs,
                                     show_progress=False).miou == (1.0, 0.0)


def test_read_rain_mask_threshold_and_size(tmp_path):
    grey = np.array([[0, 127, 128, 255]], np.uint8)
    assert cv2.imwrite(str(tmp_path / "m.png"), grey)
    np.testing.assert_array_equal(evaluation.read_rain_mask(tmp_path / "m.png", (1, 4)), [[False, False, True, True]])
    with pytest.raises(image_files.DataError, match=r"rain mask .*m\.png is 4x1 \(width x height\), but its images are 5x1"):
        evaluation.read_rain_mask(tmp_path / "m.png", (1, 5))
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    with pytest.raises(image_files.DataError, match=r"bad\.png"):
        evaluation.read_rain_mask(tmp_path / "bad.png", (1, 4))


def test_rain_mask_pairing_errors_name_the_files(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    masks_dir = write_masks(tmp_path / "masks")
    (masks_dir / "norain-002.png").unlink()
    with pytest.raises(image_files.DataError, match=r"no rain mask for .*rain-002\.png in .*masks: looked for a mask named "
                                           r"'rain-002' or 'norain-002' or numbered 2"):
        evaluation.rain_mask_paths(pairs, masks_dir)
    assert cv2.imwrite(str(masks_dir / "rainregion-002.png"), np.zeros(SIZE, np.uint8))
    assert cv2.imwrite(str(masks_dir / "002.png"), np.zeros(SIZE, np.uint8))
    with pytest.raises(image_files.DataError, match=r"rain masks .*002\.png and .*rainregion-002\.png both match "
                                           r".*rain-002\.png \(number 2\)"):
        evaluation.rain_mask_paths(pairs, masks_dir)
    (masks_dir / "002.png").unlink()
    assert [pathlib.Path(m).name for m in evaluation.rain_mask_paths(pairs, masks_dir)] == [
        "rain-001.png", "rainregion-002.png", "rainmask-3.png"]
    # A mask of the wrong size fails the comparison, naming the mask.
    assert cv2.imwrite(str(masks_dir / "rainregion-002.png"), np.zeros((SIZE[0], SIZE[1] - 1), np.uint8))
    masks = evaluation.rain_mask_paths(pairs, masks_dir)
    with pytest.raises(image_files.DataError, match=r"rain mask .*rainregion-002\.png is 39x32 \(width x height\), but its "
                                           r"images are 40x32"):
        evaluation.compare_models(models["plus4"][0], models["identity"][0], pairs, rain_masks=masks,
                                  show_progress=False)
    with pytest.raises(image_files.DataError, match="does not exist"):
        evaluation.rain_mask_paths(pairs, tmp_path / "nowhere")


def test_rain_masks_next_to_the_images_are_found_and_the_images_are_not_masks(rain_set):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)  # paired before the masks join the rainy images' folder
    for i in (1, 2, 3):
        assert cv2.imwrite(str(folder / "rain" / f"rainmask-{i:03d}.png"), np.zeros(SIZE, np.uint8))
    masks = evaluation.rain_mask_paths(pairs, folder / "rain")
    assert [pathlib.Path(m).name for m in masks] == ["rainmask-001.png", "rainmask-002.png", "rainmask-003.png"]
    with pytest.raises(image_files.DataError, match="holds no rain masks, only the evaluated images"):
        evaluation.rain_mask_paths(pairs, folder / "norain")


def test_output_dir_may_not_hold_data(models, rain_set):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    for data_folder, role in ((folder / "rain", "input"), (folder / "norain", "clean")):
        with pytest.raises(image_files.DataError, match=f"output folder .* holds the {role} image .*different folder"):
            evaluation.evaluate_model(models["identity"][0], pairs, output_dir=data_folder, show_progress=False)
    assert len(list((folder / "rain").iterdir())) == 3  # nothing written


def test_inputs_sharing_a_stem_are_refused(tmp_path):
    pairs = [pairing.Pair(str(tmp_path / "in" / "a.png"), "t1"), pairing.Pair(str(tmp_path / "in" / "a.jpg"), "t2")]
    with pytest.raises(image_files.DataError, match=r"a\.png and .*a\.jpg share the name 'a'"):
        evaluation.restored_paths(pairs, tmp_path / "out")


def test_load_model_errors_name_the_file(tmp_path):
    with pytest.raises(image_files.DataError, match=r"model file .*missing\.keras does not exist"):
        inference.load_keras_model(tmp_path / "missing.keras")
    bad = tmp_path / "bad.keras"
    bad.write_text("not a model")
    with pytest.raises(image_files.DataError, match=r"could not load model .*bad\.keras: "):
        inference.load_keras_model(bad)


def test_load_model_round_trip(models):
    model, path = models["plus4"]
    loaded = inference.load_keras_model(path)
    image = np.full((10, 13, 3), 0.25, np.float32)
    np.testing.assert_array_equal(evaluation.restore_image(loaded, image), evaluation.restore_image(model, image))


def test_identity_model_on_real_rain_images(models, shared_data):
    # Real 480x320 Rain100L pairs: evaluating the identity equals measuring the inputs.
    pairs = pairing.find_pairs(shared_data / "rain100l-10")[:3]
    expected_scores, expected = evaluation.measure_pairs(pairs, show_progress=False)
    scores, summary = evaluation.evaluate_model(models["identity"][0], pairs, show_progress=False)
    assert scores == expected_scores
    assert summary.line() == expected.line()


# --- compare_to_baseline: Fig. 3 counts on hand-made scores -----------------


def scores_of(psnrs):
    return [ImageScore(f"{i}.png", f"in/{i}.png", f"gt/{i}.png", p, 0.9) for i, p in enumerate(psnrs)]


def test_compare_to_baseline_counts_by_hand():
    # Baseline mean = (20 + 30 + 25 + 25) / 4 = 25: hard = {20}, easy = {30, 25, 25} (equal is easy).
    baseline = scores_of([20.0, 30.0, 25.0, 25.0])
    new = scores_of([21.0, 29.0, 25.0, 26.0])  # improved: yes, no, tie (no), yes
    result = evaluation.compare_to_baseline(new, baseline)
    assert result == {
        "count": 4,
        "improved": 2,
        "improved_share": 0.5,
        "hard_count": 1,
        "hard_improved": 1,
        "hard_improved_share": 1.0,
        "easy_count": 3,
        "easy_improved": 1,
        "easy_improved_share": 1 / 3,
        "baseline_mean_psnr_y": 25.0,
    }
    assert evaluation.improvement_line(result) == (
        "improved_all=0.5000 (2/4) improved_hard=1.0000 (1/1) improved_easy=0.3333 (1/3)"
    )


def test_compare_to_baseline_empty_subset_and_mismatch():
    result = evaluation.compare_to_baseline(scores_of([30.0, 30.0]), scores_of([25.0, 25.0]))
    assert result["hard_count"] == 0 and math.isnan(result["hard_improved_share"])
    assert result["easy_improved_share"] == 1.0
    with pytest.raises(ValueError, match="'0.png' against baseline 'x.png'"):
        evaluation.compare_to_baseline(scores_of([1.0]), [ImageScore("x.png", "", "", 1.0, 1.0)])
    with pytest.raises(ValueError, match="2 scores but 1 baseline scores"):
        evaluation.compare_to_baseline(scores_of([1.0, 2.0]), scores_of([1.0]))


# --- channel="rgb" -------------------------------------------------------------


PLUS4_PSNR_RGB = 20 * math.log10(255 / 4)  # every channel of every pixel 4 levels off


def test_rgb_channel_scores_and_names(models, rain_set):
    folder, rainy, clean = rain_set
    pairs = pairing.find_pairs(folder)
    scores, summary = evaluation.evaluate_model(models["plus4"][0], pairs, channel="rgb", show_progress=False)
    assert [s.psnr for s in scores] == pytest.approx([PLUS4_PSNR_RGB] * 3, abs=1e-6)
    assert all(s.channel == "rgb" and s.psnr_rgb == s.psnr and s.ssim_rgb == s.ssim for s in scores)
    assert summary.channel == "rgb" and summary.psnr == pytest.approx(PLUS4_PSNR_RGB, abs=1e-6)
    assert SUMMARY_RGB.match(summary.line()) and summary.line().startswith(f"n=3 psnr_rgb={PLUS4_PSNR_RGB:.4f} ")
    with pytest.raises(AttributeError, match=r"measured on channel 'rgb', not 'y'"):
        scores[0].psnr_y
    with pytest.raises(AttributeError, match=r"measured on channel 'rgb', not 'y'"):
        summary.ssim_y
    # measure_pairs agrees with the metrics on the decoded files.
    measured, inputs = evaluation.measure_pairs(pairs, channel="rgb", show_progress=False)
    for score, r, c in zip(measured, as_read(rainy), as_read(clean)):
        assert (score.psnr, score.ssim) == metrics.psnr_ssim(r, c, channel="rgb")
    # Y scores are still the default, and name themselves y.
    y_scores, y_summary = evaluation.evaluate_model(models["plus4"][0], pairs, show_progress=False)
    assert y_scores[0].psnr_y == pytest.approx(PLUS4_PSNR, abs=1e-6) and y_summary.line().startswith("n=3 psnr_y=")
    with pytest.raises(AttributeError, match=r"measured on channel 'y', not 'rgb'"):
        y_scores[0].psnr_rgb
    with pytest.raises(ValueError, match=r"cannot be combined"):
        evaluation.summarize([y_scores[0], scores[0]])
    with pytest.raises(ValueError, match=r"unknown channel 'bgr'"):
        evaluation.evaluate_model(models["plus4"][0], pairs, channel="bgr", show_progress=False)


def test_rgb_compare_models_and_csv(models, rain_set, tmp_path):
    folder, rainy, clean = rain_set
    pairs = pairing.find_pairs(folder)
    result = evaluation.compare_models(models["plus4"][0], models["identity"][0], pairs, channel="rgb",
                                       show_progress=False)
    # The identity errs by 8 levels on a share f of the rows in every channel: MSE 64 f.
    baseline = [10 * math.log10(255**2 / (64 * f)) for f in (1 / 2, 1 / 2, 1 / 16)]
    assert [s.psnr for s in result.baseline_scores] == pytest.approx(baseline, abs=1e-5)  # float32 k/255
    assert result.improvement["improved"] == 2 and result.improvement["hard_improved"] == 2
    assert result.improvement["baseline_mean_psnr_rgb"] == pytest.approx(sum(baseline) / 3, abs=1e-5)
    assert "baseline_mean_psnr_y" not in result.improvement
    assert result.miou == (1.0, 0.0)  # mIoR / mIoB stay on Y
    evaluation.write_csv(tmp_path / "rgb.csv", result.scores)
    with open(tmp_path / "rgb.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["name", "input", "target", "psnr_rgb", "ssim_rgb"]
    assert float(rows[0]["psnr_rgb"]) == pytest.approx(PLUS4_PSNR_RGB, abs=1e-6)


# --- x8 self-ensemble -------------------------------------------------------------


class ColumnRamp(keras.Model):
    """Adds ``step * column`` to every pixel: a model that is not flip/rotation equivariant."""

    def __init__(self, step, **kwargs):
        super().__init__(**kwargs)
        self.step = step

    def call(self, x, training=False):
        ramp = tf.cast(tf.range(tf.shape(x)[2]), x.dtype) * self.step
        return x + ramp[tf.newaxis, tf.newaxis, :, tf.newaxis]


def test_restore_image_self_ensemble_equivariant_and_by_hand(models):
    height, width = ODD_SIZE
    image = np.random.default_rng(2).random(ODD_SIZE + (3,)).astype(np.float32)
    # The identity and x + 4/255 are equivariant: the ensemble is the plain output.
    for name in ("identity", "plus4"):
        model = models[name][0]
        np.testing.assert_allclose(evaluation.restore_image(model, image, self_ensemble=True),
                                   evaluation.restore_image(model, image), atol=1e-6)
    step = 0.01
    ramp = ColumnRamp(step)
    half = 0.5 * image
    np.testing.assert_allclose(evaluation.restore_image(ramp, half), half + step * np.arange(width)[:, None],
                               atol=1e-6)
    # The ramp runs along each of +x, -x, +y, -y twice; averaged back it is a constant.
    np.testing.assert_allclose(evaluation.restore_image(ramp, half, self_ensemble=True),
                               half + step * (height + width - 2) / 4, atol=1e-6)


def test_evaluate_model_self_ensemble(models, rain_set):
    folder, rainy, clean = rain_set
    pairs = pairing.find_pairs(folder)
    plain = evaluation.evaluate_model(models["identity"][0], pairs, show_progress=False)
    assert evaluation.evaluate_model(models["identity"][0], pairs, self_ensemble=True, show_progress=False) == plain
    step = 0.002
    ramp = ColumnRamp(step)
    height, width = SIZE
    scores, summary = evaluation.evaluate_model(ramp, pairs, self_ensemble=True, quantize=False, channel="rgb",
                                                show_progress=False)
    for score, r, c in zip(scores, as_read(rainy), as_read(clean)):
        by_hand = r.astype(np.float64) + step * (height + width - 2) / 4
        assert score.psnr == pytest.approx(metrics.psnr_rgb(by_hand, c), abs=1e-4)
        assert score.ssim == pytest.approx(metrics.ssim_rgb(by_hand, c), abs=1e-6)
    _, one_pass = evaluation.evaluate_model(ramp, pairs, quantize=False, channel="rgb", show_progress=False)
    assert abs(one_pass.psnr - summary.psnr) > 0.1


def shift_conv_model():
    """``0.75 x + 0.25 x[i, j - 1]`` (zero padded): a saveable model that is not equivariant."""
    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 3, padding="same", use_bias=False)])
    kernel = np.zeros((3, 3, 3, 3), np.float32)
    for c in range(3):
        kernel[1, 1, c, c] = 0.75
        kernel[1, 0, c, c] = 0.25
    model.layers[-1].set_weights([kernel])
    return model


@pytest.mark.slow
def test_cli_channel_rgb_and_self_ensemble_with_baseline(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    model = shift_conv_model()
    path = tmp_path / "shift.keras"
    model.save(path)
    expected = evaluation.compare_models(model, models["identity"][0], pairs, channel="rgb", self_ensemble=True,
                                         show_progress=False)
    _, one_pass = evaluation.evaluate_model(model, pairs, channel="rgb", show_progress=False)
    assert one_pass.line() != expected.summary.line()
    table = tmp_path / "scores.csv"
    result = run_evaluate(f"--model={path}", f"--baseline_model={models['identity'][1]}", f"--input_dir={folder}",
                          "--channel=rgb", "--self_ensemble", f"--csv={table}")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = stdout_lines(result)
    assert lines[-1] == expected.summary.line() and SUMMARY_RGB.match(lines[-1])
    assert lines[-4] == f"baseline: {expected.baseline_summary.line()}"
    assert lines[-4].startswith("baseline: n=3 psnr_rgb=")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["name", "input", "target", "psnr_rgb", "ssim_rgb"]
    assert "baseline_psnr_rgb" in rows[0] and "baseline_ssim_rgb" in rows[0] and "psnr_y" not in rows[0]
    for row, score in zip(rows, expected.scores):
        assert float(row["psnr_rgb"]) == pytest.approx(score.psnr, abs=1e-6)


@pytest.mark.slow
def test_cli_channel_rgb_and_self_ensemble_without_baseline(rain_set, tmp_path):
    # The same flags without --baseline_model take the other path through the tool (evaluate_model).
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    model = shift_conv_model()
    path = tmp_path / "shift.keras"
    model.save(path)
    _, expected = evaluation.evaluate_model(model, pairs, channel="rgb", self_ensemble=True, show_progress=False)
    for channel, self_ensemble in (("y", True), ("rgb", False)):  # what dropping either flag would print
        _, other = evaluation.evaluate_model(model, pairs, channel=channel, self_ensemble=self_ensemble,
                                             show_progress=False)
        assert other.line() != expected.line()
    table = tmp_path / "scores.csv"
    result = run_evaluate(f"--model={path}", f"--input_dir={folder}", "--channel=rgb", "--self_ensemble",
                          f"--csv={table}")
    assert result.returncode == 0, result.stderr[-3000:]
    lines = stdout_lines(result)
    assert lines[-1] == expected.line() and SUMMARY_RGB.match(lines[-1])
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["name", "input", "target", "psnr_rgb", "ssim_rgb"]


# --- the command-line tool ---------------------------------------------------


def run_evaluate(*args):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.evaluate", *args], capture_output=True, text=True, timeout=300
    )


def stdout_lines(result):
    lines = result.stdout.strip().splitlines()
    assert lines, f"no stdout; rc={result.returncode} stderr:\n{result.stderr[-3000:]}"
    return lines


@pytest.mark.slow
def test_cli_identity_model_csv_and_restored_images(models, tmp_path):
    # One input is a JPEG: its result is still written as <stem>.png.
    rng = np.random.default_rng(3)
    folder = tmp_path / "pairs"
    for i, ext in ((1, "png"), (2, "jpg")):
        clean = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
        write_rgb(folder / "norain" / f"norain-{i}.png", clean)
        noisy = np.clip(clean.astype(int) + rng.integers(-30, 31, clean.shape), 0, 255).astype(np.uint8)
        write_rgb(folder / "rain" / f"rain-{i}.{ext}", noisy)
    pairs = pairing.find_pairs(folder)
    expected_scores, expected = evaluation.measure_pairs(pairs, show_progress=False)
    out, table = tmp_path / "restored", tmp_path / "scores.csv"
    result = run_evaluate(
        f"--model={models['identity'][1]}", f"--input_dir={folder}", f"--output_dir={out}", f"--csv={table}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert stdout_lines(result)[-1] == expected.line()
    assert SUMMARY.match(expected.line())
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == ["rain-1.png", "rain-2.jpg"]
    assert [r["output"] for r in rows] == [str(out / "rain-1.png"), str(out / "rain-2.png")]
    for row, score, pair in zip(rows, expected_scores, pairs):
        assert float(row["psnr_y"]) == pytest.approx(score.psnr_y, abs=1e-6)
        np.testing.assert_array_equal(image_files.read_image(row["output"]), image_files.read_image(pair.input_path))


@pytest.mark.slow
def test_cli_baseline_comparison(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    table = tmp_path / "compare.csv"
    result = run_evaluate(
        f"--model={models['plus4'][1]}",
        f"--baseline_model={models['identity'][1]}",
        f"--input_dir={folder / 'rain'}",
        f"--target_dir={folder / 'norain'}",
        f"--csv={table}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = stdout_lines(result)
    assert lines[-3:-1] == [
        "mIoR=1.0000 mIoB=0.0000",
        "improved_all=0.6667 (2/3) improved_hard=1.0000 (2/2) improved_easy=0.0000 (0/1)",
    ]
    assert lines[-4].startswith("baseline: n=3 psnr_y=")
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    assert (match.group(1), match.group(2)) == ("3", f"{PLUS4_PSNR:.4f}")
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["improved"] for r in rows] == ["1", "1", "0"]
    assert [(float(r["ior"]), float(r["iob"])) for r in rows] == [(1.0, 0.0)] * 3


@pytest.mark.slow
def test_cli_rain_mask_dir(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    masks_dir = write_masks(tmp_path / "masks")
    table = tmp_path / "compare.csv"
    result = run_evaluate(
        f"--model={models['plus4'][1]}", f"--baseline_model={models['identity'][1]}", f"--input_dir={folder}",
        f"--rain_mask_dir={masks_dir}", f"--csv={table}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert stdout_lines(result)[-3] == f"mIoR={MASK_MIOU[0]:.4f} mIoB={MASK_MIOU[1]:.4f}" == "mIoR=0.6667 mIoB=0.2738"
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [pathlib.Path(r["rain_mask"]).name for r in rows] == ["rain-001.png", "norain-002.png", "rainmask-3.png"]
    assert [r["iob"] for r in rows][1] == "nan"

    (masks_dir / "rainmask-3.png").unlink()
    result = run_evaluate(
        f"--model={models['plus4'][1]}", f"--baseline_model={models['identity'][1]}", f"--input_dir={folder}",
        f"--rain_mask_dir={masks_dir}",
    )
    assert result.returncode == 1
    assert re.search(r"error: no rain mask for .*rain-003\.png in .*masks", result.stderr), result.stderr[-2000:]
    assert result.stdout == ""

    result = run_evaluate(f"--model={models['plus4'][1]}", f"--input_dir={folder}", f"--rain_mask_dir={masks_dir}")
    assert result.returncode != 0
    assert "--rain_mask_dir gives the rain maps of mIoR/mIoB, which compare two models; add --baseline_model" \
        in result.stderr


@pytest.mark.slow
def test_cli_no_quantize_spelling(models, rain_set):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    _, expected = evaluation.evaluate_model(models["nudge"][0], pairs, quantize=False, show_progress=False)
    _, inputs = evaluation.measure_pairs(pairs, show_progress=False)
    assert expected.line() != inputs.line()
    result = run_evaluate(f"--model={models['nudge'][1]}", f"--input_dir={folder}", "--no-quantize")
    assert result.returncode == 0, result.stderr[-3000:]
    assert stdout_lines(result)[-1] == expected.line()


@pytest.mark.slow
def test_cli_errors(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    missing = tmp_path / "nowhere" / "model.keras"
    result = run_evaluate(f"--model={missing}", f"--input_dir={folder}")
    assert result.returncode == 1
    assert f"error: model path {missing} does not exist" in result.stderr
    assert result.stdout == ""

    result = run_evaluate(
        f"--model={models['identity'][1]}", f"--input_dir={folder / 'rain'}",
        f"--target_dir={folder / 'norain'}", f"--output_dir={folder / 'rain'}",
    )
    assert result.returncode != 0
    assert f"--output_dir={folder / 'rain'} is the --input_dir folder" in result.stderr
    assert sorted(p.name for p in (folder / "rain").iterdir()) == ["rain-001.png", "rain-002.png", "rain-003.png"]


# --- batch-norm statistics at evaluation (pix2pix's test mode) ----------------


def batch_norm_generator(path=None):
    """A tiny pix2pix UNet with batch norm, no dropout, and moving statistics far from any image's own."""
    import keras

    from erlrestore.models import pix2pix

    keras.utils.set_random_seed(2)
    model = pix2pix.build_generator(pix2pix.GeneratorConfig(levels=3, base_filters=4, max_filters=8, dropout=0.0))
    pix2pix.init_pix2pix_weights(model, seed=2, gain=0.3)
    for weight in model.non_trainable_weights:
        if weight.path.endswith("moving_mean"):
            weight.assign(np.full(weight.shape, 0.5, np.float32))
        elif weight.path.endswith("moving_variance"):
            weight.assign(np.full(weight.shape, 4.0, np.float32))
    if path is not None:
        model.save(path)
    return model


def test_batch_statistics_are_training_mode_and_leave_the_model_unchanged():
    model = batch_norm_generator()
    image = np.random.default_rng(9).random(ODD_SIZE + (3,)).astype(np.float32)
    moving = [w.numpy().copy() for w in model.non_trainable_weights]
    running = evaluation.restore_image(model, image)
    batch = evaluation.restore_image(model, image, training=True)
    # A training-mode call updates the moving statistics; evaluation puts them back.
    for before, after in zip(moving, model.non_trainable_weights):
        np.testing.assert_array_equal(before, after.numpy())
    np.testing.assert_array_equal(running, evaluation.restore_image(model, image, training=False))
    np.testing.assert_allclose(running, np.clip(model(image[None], training=False).numpy()[0], 0, 1), atol=1e-6)
    assert np.abs(batch - running).max() > 0.01
    np.testing.assert_allclose(batch, np.clip(model(image[None], training=True).numpy()[0], 0, 1), atol=1e-5)


@pytest.mark.slow
def test_cli_norm_statistics(rain_set, tmp_path):
    folder, _, _ = rain_set
    path = tmp_path / "bn.keras"
    model = batch_norm_generator(path)
    pairs = pairing.find_pairs(folder)
    _, running = evaluation.evaluate_model(model, pairs, show_progress=False)
    _, batch = evaluation.evaluate_model(model, pairs, show_progress=False, training=True)
    assert running.line() != batch.line()
    for value, expected in (("running", running), ("batch", batch)):
        result = run_evaluate(f"--model={path}", f"--input_dir={folder}", f"--norm_statistics={value}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert SUMMARY.match(stdout_lines(result)[-1])
        assert stdout_lines(result)[-1] == expected.line()
    result = run_evaluate(f"--model={path}", f"--input_dir={folder}", "--norm_statistics=instance")
    assert result.returncode != 0 and "norm_statistics" in result.stderr


# --- any model the one runner loads, tiling, the output policy ---------------


def test_savedmodel_tiled_evaluation_matches_the_keras_model(rain_set, tmp_path):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    model = shift_conv_model()  # a 3x3 convolution: tiles overlapping by 8 (margin 2) are exact
    model.save(tmp_path / "shift.keras")
    version = export.export_savedmodel(model, base_dir=tmp_path / "savedmodels", name="shift")
    whole_scores, whole = evaluation.evaluate_model(model, pairs, show_progress=False)
    # The library takes a path too (here the version folder), and tiles 32 x 40 images with --tile=32.
    tiled_scores, tiled = evaluation.evaluate_model(version, pairs, tile=32, overlap=8, show_progress=False)
    assert [s.psnr for s in tiled_scores] == pytest.approx([s.psnr for s in whole_scores], abs=0.02)
    assert tiled.ssim == pytest.approx(whole.ssim, abs=1e-4)
    calls = []

    def counting(batch):
        calls.append(batch.shape[1:3])
        return inference.restorer_from_model(model)(batch)

    evaluation.evaluate_model(counting, pairs[:1], tile=32, overlap=8, show_progress=False)
    assert len(calls) > 1 and all(h <= 32 and w <= 32 for h, w in calls)  # really tiled

    result = run_evaluate(f"--model={tmp_path / 'savedmodels' / 'shift'}", f"--input_dir={folder}", "--tile=32",
                          "--overlap=8")
    assert result.returncode == 0, result.stderr[-3000:]
    match = SUMMARY.match(stdout_lines(result)[-1])
    assert match and match.group(1) == "3"
    assert float(match.group(2)) == pytest.approx(whole.psnr, abs=0.02)
    assert float(match.group(3)) == pytest.approx(whole.ssim, abs=1e-4)

    result = run_evaluate(f"--model={version}", f"--input_dir={folder}", "--norm_statistics=batch")
    assert result.returncode == 1 and result.stdout == ""
    assert (f"error: SavedModel {version} is frozen in inference mode: batch statistics (--norm_statistics=batch) "
            "need a Keras model") in result.stderr
    result = run_evaluate(f"--model={tmp_path / 'shift.keras'}", f"--input_dir={folder}", "--tile=16",
                          "--overlap=8")
    assert result.returncode != 0 and "--tile (16) must be larger than twice --overlap (8)" in result.stderr


def test_restored_images_are_not_replaced_without_overwrite(models, rain_set, tmp_path):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)
    out = tmp_path / "restored"
    evaluation.evaluate_model(models["plus4"][0], pairs, output_dir=out, show_progress=False)
    written = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(written) == ["rain-001.png", "rain-002.png", "rain-003.png"]
    with pytest.raises(image_files.DataError, match=r"^3 output file\(s\) already exist: .*rain-001\.png, .*rain-002\.png, "
                                           r".*rain-003\.png; replace them with --overwrite"):
        evaluation.evaluate_model(models["identity"][0], pairs, output_dir=out, show_progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written  # refused before anything ran

    result = run_evaluate(f"--model={models['identity'][1]}", f"--input_dir={folder}", f"--output_dir={out}")
    assert result.returncode == 1 and result.stdout == ""
    assert "3 output file(s) already exist" in result.stderr and "--overwrite" in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == written
    result = run_evaluate(f"--model={models['identity'][1]}", f"--input_dir={folder}", f"--output_dir={out}",
                          "--overwrite")
    assert result.returncode == 0, result.stderr[-3000:]
    for pair in pairs:  # replaced by the identity's output
        name = pathlib.Path(pair.input_path).stem + ".png"
        np.testing.assert_array_equal(image_files.read_image(out / name), image_files.read_image(pair.input_path))


def test_a_model_failing_on_an_image_names_the_image(rain_set):
    folder, _, _ = rain_set
    pairs = pairing.find_pairs(folder)

    def broken(batch):
        raise ValueError("boom")

    with pytest.raises(image_files.DataError, match=r"restoring .*rain-001\.png \(40x32\) with .*broken.* failed: "
                                           r"ValueError: boom"):
        evaluation.evaluate_model(broken, pairs, show_progress=False)
