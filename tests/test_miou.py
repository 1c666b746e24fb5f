"""mIoR / mIoB (ERL-Net Eq. 6-8): golden values counted by hand on tiny images.

Grey pixels (R = G = B = v) have Y = 16 + 219 v, so on grey images every
Y difference is 219 times the difference of the grey values and pixels can be
compared by their grey values alone.
"""

import math

import numpy as np
import pytest

from erlrestore import metrics


def grey(rows):
    """An (H, W, 3) float32 image from a 2-D list of grey values in [0, 1]."""
    values = np.asarray(rows, dtype=np.float32)
    return np.repeat(values[:, :, None], 3, axis=2)


# A 2x3 case worked out by hand (grey values):
CLEAN = grey([[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]])
# |degraded - clean| = [[.4, 0, 0], [0, .2, 0]]: mean .1, so rain = (0,0) and (1,1).
DEGRADED = grey([[0.9, 0.5, 0.5], [0.5, 0.7, 0.5]])
# |baseline - clean| = [[.2, .1, .1], [0, .2, .1]]
BASELINE = grey([[0.7, 0.6, 0.6], [0.5, 0.7, 0.4]])
# |new - clean|      = [[.1, .05, .2], [.05, .2, .05]]
NEW = grey([[0.6, 0.55, 0.7], [0.45, 0.7, 0.45]])
# new closer?          [[yes, yes, no], [no (0 is closer), tie -> no, yes]]
EXPECTED_RIM = np.array([[True, True, False], [False, False, True]])
EXPECTED_BMR = np.array([[True, False, False], [False, True, False]])
# IoR: rain pixels (0,0) and (1,1); RIM is 1 on (0,0) only -> 1/2.
# IoB: background (0,1) (0,2) (1,0) (1,2); RIM is 1 on (0,1) and (1,2) -> 2/4.


def test_result_indicator_map_counts_by_hand():
    rim = metrics.result_indicator_map(NEW, BASELINE, CLEAN)
    assert rim.dtype == bool
    np.testing.assert_array_equal(rim, EXPECTED_RIM)


def test_result_indicator_map_ties_are_zero():
    # The same image twice: every pixel is a tie, so nothing is "better".
    rim = metrics.result_indicator_map(BASELINE, BASELINE, CLEAN)
    assert not rim.any()
    # Swapping new and baseline flips every non-tie pixel and keeps ties at 0.
    swapped = metrics.result_indicator_map(BASELINE, NEW, CLEAN)
    np.testing.assert_array_equal(swapped, [[False, False, True], [True, False, False]])


def test_result_indicator_map_uses_y_not_rgb():
    # new differs from clean only in blue, baseline only in green, by the same
    # amount: in RGB they are equally far, on Y blue weighs 24.966 < 128.553.
    clean = np.full((1, 1, 3), 0.5, np.float32)
    new = clean + np.array([0, 0, 0.2], np.float32)
    baseline = clean + np.array([0, 0.2, 0], np.float32)
    assert metrics.result_indicator_map(new, baseline, clean).tolist() == [[True]]
    assert metrics.result_indicator_map(baseline, new, clean).tolist() == [[False]]


def test_rain_maps_threshold_at_mean():
    bmr, bmb = metrics.rain_maps(DEGRADED, CLEAN)
    np.testing.assert_array_equal(bmr, EXPECTED_BMR)
    np.testing.assert_array_equal(bmb, ~EXPECTED_BMR)


def test_rain_maps_uint8_equals_float():
    as_uint8 = [np.rint(image * 255).astype(np.uint8) for image in (DEGRADED, CLEAN)]
    bmr, _ = metrics.rain_maps(*as_uint8)
    np.testing.assert_array_equal(bmr, EXPECTED_BMR)


def test_rain_maps_fixed_threshold_on_255_scale():
    # Y differences: .4 * 219 = 87.6 and .2 * 219 = 43.8; threshold 50 keeps only the first.
    bmr, bmb = metrics.rain_maps(DEGRADED, CLEAN, threshold=50)
    np.testing.assert_array_equal(bmr, [[True, False, False], [False, False, False]])
    assert bmb.sum() == 5


def test_rain_maps_tie_is_background_identical_images_have_no_rain():
    # Every difference is 0 and equals the mean 0: all background.
    bmr, bmb = metrics.rain_maps(CLEAN, CLEAN)
    assert not bmr.any()
    assert bmb.all()


def test_iou_rain_background_by_hand():
    ior, iob = metrics.iou_rain_background(NEW, BASELINE, DEGRADED, CLEAN)
    assert ior == 0.5
    assert iob == 0.5


def test_iou_rain_background_second_case_by_hand():
    # Rain at (0,0) only (|.6| > mean .1); new beats baseline at (0,0) and (0,2).
    clean = grey([[0.2, 0.2, 0.2], [0.2, 0.2, 0.2]])
    degraded = grey([[0.8, 0.2, 0.2], [0.2, 0.2, 0.2]])
    baseline = grey([[0.5, 0.2, 0.3], [0.2, 0.25, 0.2]])
    new = grey([[0.3, 0.3, 0.25], [0.2, 0.3, 0.3]])
    ior, iob = metrics.iou_rain_background(new, baseline, degraded, clean)
    assert ior == 1.0  # the one rain pixel is improved
    assert iob == 1 / 5  # background: only (0,2) of five pixels


def test_iou_empty_rain_region_is_nan():
    ior, iob = metrics.iou_rain_background(NEW, BASELINE, CLEAN, CLEAN)
    assert math.isnan(ior)
    assert iob == 3 / 6  # RIM has three 1s over the whole (background) image


def test_iou_with_given_rain_mask():
    mask = np.array([[0, 0, 1], [0, 0, 1]], dtype=np.uint8)  # column 2 is "rain"
    ior, iob = metrics.iou_rain_background(NEW, BASELINE, None, CLEAN, rain_mask=mask)
    assert ior == 1 / 2  # RIM column 2 = [False, True]
    assert iob == 2 / 4  # RIM columns 0-1 = [True, True, False, False]
    with pytest.raises(ValueError, match=r"rain_mask has shape \(3, 2\), expected \(2, 3\)"):
        metrics.iou_rain_background(NEW, BASELINE, None, CLEAN, rain_mask=mask.T)


def test_crop_border_applies_to_every_map():
    # Pad the 2x3 case with a 1-pixel frame where new is much worse than baseline
    # and the degraded image is unchanged: cropping it gives back the hand values.
    def framed(image, frame_value):
        out = np.full((4, 5, 3), frame_value, np.float32)
        out[1:3, 1:4] = image
        return out

    new, baseline = framed(NEW, 0.0), framed(BASELINE, 0.5)
    degraded, clean = framed(DEGRADED, 0.5), framed(CLEAN, 0.5)
    assert metrics.iou_rain_background(new, baseline, degraded, clean, crop_border=1) == (0.5, 0.5)
    ior, iob = metrics.iou_rain_background(new, baseline, degraded, clean)
    assert ior == 0.5
    assert iob == 2 / 18  # the 14 frame pixels join the 4 background pixels, none improved


def test_miou_is_a_nan_aware_mean():
    assert metrics.miou([(0.5, 0.5), (1.0, 0.2)]) == pytest.approx((0.75, 0.35))
    # The nan IoR of an image without rain is left out of mIoR only.
    assert metrics.miou([(0.5, 0.25), (math.nan, 0.75)]) == (0.5, 0.5)
    ior, iob = metrics.miou([(math.nan, 0.25)])
    assert math.isnan(ior) and iob == 0.25
    with pytest.raises(ValueError, match="at least one image"):
        metrics.miou([])


def test_shape_errors_name_the_images():
    with pytest.raises(ValueError, match=r"images differ in shape: new \(2, 3, 3\), baseline \(3, 2, 3\)"):
        metrics.result_indicator_map(NEW, np.zeros((3, 2, 3), np.float32), CLEAN)
    with pytest.raises(ValueError, match=r"degraded has shape \(2, 3\)"):
        metrics.rain_maps(np.zeros((2, 3), np.float32), CLEAN)
    with pytest.raises(ValueError, match="needs the degraded image or a rain_mask"):
        metrics.iou_rain_background(NEW, BASELINE, None, CLEAN)
