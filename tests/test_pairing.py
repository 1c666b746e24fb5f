"""Tests for erlrestore.data.pairing on small generated layouts and the real samples."""

import os

import cv2
import numpy as np
import pytest

from erlrestore.data.image_files import DataError
from erlrestore.data.pairing import LAYOUTS, RESIDE_BORDER, Pair, find_pairs, load_pair, pairs_from_csv


def _write(path, value, size=(8, 8)):
    """Writes a flat grey image of 0-255 ``value``; returns it as float [0, 1]."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.full(size + (3,), value, np.uint8))
    return value / 255.0


def _names(pairs):
    return [(os.path.basename(p.input_path), os.path.basename(p.target_path)) for p in pairs]


def _check_values(pairs, expected):
    """Each pair decodes to the (input, target) grey values in ``expected``."""
    for pair, (vi, vt) in zip(pairs, expected):
        inp, tgt = load_pair(pair)
        assert inp[0, 0, 0] == np.float32(vi / 255) and tgt[0, 0, 0] == np.float32(vt / 255)


# ---------------------------------------------------------------- folders

def test_folders_identical_stems_with_other_extension(tmp_path):
    for i in (1, 2, 3):
        _write(tmp_path / "in" / f"img{i}.jpg", 10 * i)
        _write(tmp_path / "gt_dir" / f"img{i}.png", 10 * i + 100)
    pairs = find_pairs(tmp_path / "in", tmp_path / "gt_dir")
    assert _names(pairs) == [("img1.jpg", "img1.png"), ("img2.jpg", "img2.png"),
                             ("img3.jpg", "img3.png")]
    assert all(p.target_border == 0 and p.side_by_side == "" for p in pairs)
    assert pairs[0].name == "img1.jpg"
    assert isinstance(pairs[0].input_path, str)


def test_folders_common_prefix_stripped(tmp_path):
    # norain has an extra clean image; rain-2 must still find norain-002.
    for i in (3, 1, 2):
        _write(tmp_path / "X" / "rain" / f"rain-{i:03d}.png", i)
    for i in (1, 2, 3, 4):
        _write(tmp_path / "X" / "norain" / f"norain-{i:03d}.png", 100 + i)
    explicit = find_pairs(tmp_path / "X" / "rain", tmp_path / "X" / "norain")
    assert _names(explicit) == [(f"rain-00{i}.png", f"norain-00{i}.png") for i in (1, 2, 3)]
    _check_values(explicit, [(1, 101), (2, 102), (3, 103)])
    assert find_pairs(tmp_path / "X") == explicit
    assert find_pairs(tmp_path / "X", layout="folders") == explicit


def test_folders_suffix_and_unpadded_numbers(tmp_path):
    _write(tmp_path / "a" / "1_in_x.png", 1)
    _write(tmp_path / "a" / "2_in_x.png", 2)
    _write(tmp_path / "b" / "001_clean_x.png", 101)
    _write(tmp_path / "b" / "002_clean_x.png", 102)
    pairs = find_pairs(tmp_path / "a", tmp_path / "b")
    assert _names(pairs) == [("1_in_x.png", "001_clean_x.png"), ("2_in_x.png", "002_clean_x.png")]


def test_folders_scene_name_is_not_stripped_with_one_input(tmp_path):
    # One degraded image: its scene name is "common to every input" but also
    # appears among the targets, so it must stay part of the key.
    _write(tmp_path / "noisy" / "desk_4_real.png", 1)
    _write(tmp_path / "clean" / "chair_4_mean.png", 2)
    _write(tmp_path / "clean" / "desk_4_mean.png", 3)
    pairs = find_pairs(tmp_path / "noisy", tmp_path / "clean")
    assert _names(pairs) == [("desk_4_real.png", "desk_4_mean.png")]


def test_subfolder_detection_is_case_insensitive(tmp_path):
    _write(tmp_path / "Input" / "a.png", 1)
    _write(tmp_path / "GT" / "a.png", 2)
    (tmp_path / "notes").mkdir()
    assert _names(find_pairs(tmp_path)) == [("a.png", "a.png")]


def test_several_subfolder_pairs_rejected(tmp_path):
    for sub in ("rain", "norain", "input", "target"):
        _write(tmp_path / sub / "a.png", 1)
    with pytest.raises(DataError, match=r"holds several degraded/clean sub-folder pairs "
                                         r"\(input/ \+ norain/, input/ \+ target/, rain/ \+ norain/, "
                                         r"rain/ \+ target/\); pass input_dir and target_dir"):
        find_pairs(tmp_path)


def test_folders_layout_needs_subfolders(tmp_path):
    _write(tmp_path / "rain-001.png", 1)
    _write(tmp_path / "norain-001.png", 2)
    with pytest.raises(DataError, match=r"holds no degraded/clean sub-folder pair .*pass target_dir"):
        find_pairs(tmp_path, layout="folders")


# ---------------------------------------------------------------- one sub-folder beside images (PReNet)

def test_prenet_rainy_subfolder_beside_clean_images(tmp_path):
    root = tmp_path / "Rain100L"
    for i in (2, 1, 3):
        _write(root / f"norain-{i:03d}.png", 100 + i)
        _write(root / "rainy" / f"rain-{i:03d}.png", i)
    pairs = find_pairs(root)
    assert _names(pairs) == [(f"rain-00{i}.png", f"norain-00{i}.png") for i in (1, 2, 3)]
    assert all(os.path.dirname(p.input_path) == str(root / "rainy") for p in pairs)
    assert all(os.path.dirname(p.target_path) == str(root) for p in pairs)
    _check_values(pairs, [(1, 101), (2, 102), (3, 103)])
    assert find_pairs(root, layout="folders") == pairs
    assert find_pairs(root / "rainy", root) == pairs


@pytest.mark.parametrize("sub", ["rain", "input", "hazy", "noisy", "Rainy"])
def test_input_subfolder_names_beside_clean_images(tmp_path, sub):
    _write(tmp_path / "norain-1.png", 101)
    _write(tmp_path / sub / "rain-1.png", 1)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("rain-1.png", "norain-1.png")]
    _check_values(pairs, [(1, 101)])


def test_mirror_case_clean_subfolder_beside_degraded_images(tmp_path):
    for i in (1, 2):
        _write(tmp_path / f"rain-{i:03d}.png", i)
        _write(tmp_path / "norain" / f"norain-{i:03d}.png", 100 + i)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("rain-001.png", "norain-001.png"), ("rain-002.png", "norain-002.png")]
    assert os.path.dirname(pairs[0].input_path) == str(tmp_path)
    _check_values(pairs, [(1, 101), (2, 102)])


def test_mirror_case_gt_subfolder_identical_stems(tmp_path):
    _write(tmp_path / "a.png", 1)
    _write(tmp_path / "gt" / "a.png", 101)
    pairs = find_pairs(tmp_path)
    assert [(p.input_path, p.target_path) for p in pairs] == [
        (str(tmp_path / "a.png"), str(tmp_path / "gt" / "a.png"))]


def test_subfolder_pair_still_wins_over_images_beside_it(tmp_path):
    _write(tmp_path / "rain" / "rain-1.png", 1)
    _write(tmp_path / "norain" / "norain-1.png", 2)
    _write(tmp_path / "preview.png", 3)
    assert _names(find_pairs(tmp_path)) == [("rain-1.png", "norain-1.png")]


def test_prenet_layout_with_two_input_subfolders_is_ambiguous(tmp_path):
    _write(tmp_path / "norain-001.png", 101)
    _write(tmp_path / "rain" / "rain-001.png", 1)
    _write(tmp_path / "rainy" / "rain-001.png", 1)
    with pytest.raises(DataError, match=r"holds images and several degraded-image sub-folders \(rain/, rainy/\); "
                                         r"cannot tell which one .*pass input_dir and target_dir"):
        find_pairs(tmp_path)


def test_prenet_layout_beside_a_one_folder_set_is_ambiguous(tmp_path):
    _write(tmp_path / "rain-001.png", 1)
    _write(tmp_path / "norain-001.png", 101)
    _write(tmp_path / "rainy" / "rain-001.png", 2)
    with pytest.raises(DataError, match=r"is ambiguous: it holds a rainy/ sub-folder of degraded images, and its "
                                         r"own images are named as both degraded and clean \(e\.g\. rain-001\.png / "
                                         r"norain-001\.png\)\. Pass layout='one_folder'"):
        find_pairs(tmp_path)
    # layout="one_folder" is the explicit choice of the images beside the sub-folder.
    pairs = find_pairs(tmp_path, layout="one_folder")
    assert _names(pairs) == [("rain-001.png", "norain-001.png")]
    _check_values(pairs, [(1, 101)])


def test_prenet_layout_with_both_sides_named_degraded_is_ambiguous(tmp_path):
    _write(tmp_path / "rain-001.png", 1)
    _write(tmp_path / "rainy" / "rain-001.png", 2)
    with pytest.raises(DataError, match=r"is ambiguous: its rainy/ sub-folder holds degraded images, but the images "
                                         r"beside it are named as degraded images too \(rain-001\.png\), so neither "
                                         r"side is the clean one"):
        find_pairs(tmp_path)
    _write(tmp_path / "x_gt.png", 1)
    _write(tmp_path / "gt" / "x_gt.png", 2)
    (tmp_path / "rainy" / "rain-001.png").unlink()
    (tmp_path / "rainy").rmdir()
    (tmp_path / "rain-001.png").unlink()
    with pytest.raises(DataError, match=r"its gt/ sub-folder holds clean images, but the images beside it are named "
                                         r"as clean images too \(x_gt\.png\), so neither side is the degraded one"):
        find_pairs(tmp_path)


# ---------------------------------------------------------------- more sub-folder names and scale folders

@pytest.mark.parametrize("inp, tgt", [
    ("low", "high"),  # LOL
    ("blur", "sharp"),  # GoPro, one scene
    ("LR", "HR"),
    ("lq", "gt"),
    ("data", "gt"),
    ("input", "target"),  # Restormer / MPRNet test sets
])
def test_more_subfolder_pair_names(tmp_path, inp, tgt):
    for i in (1, 2):
        _write(tmp_path / inp / f"{i}.png", i)
        _write(tmp_path / tgt / f"{i}.png", 100 + i)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("1.png", "1.png"), ("2.png", "2.png")]
    _check_values(pairs, [(1, 101), (2, 102)])


def test_rain1400_names_pair_many_to_one(tmp_path):
    for scene in (901, 902):
        _write(tmp_path / "ground_truth" / f"{scene}.jpg", 100 + scene - 900)
        for k in (1, 14):
            _write(tmp_path / "rainy_image" / f"{scene}_{k}.jpg", scene - 900)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("901_1.jpg", "901.jpg"), ("901_14.jpg", "901.jpg"),
                             ("902_1.jpg", "902.jpg"), ("902_14.jpg", "902.jpg")]
    inp, tgt = load_pair(pairs[0])  # same size: the SOTS border does not apply
    assert inp.shape == tgt.shape == (8, 8, 3)


def test_reside_outdoor_names_with_some_bare_ids(tmp_path):
    # RESIDE's outdoor sets (our dehaze-train): hazy id_A_beta names, and a few hazy files under the plain id.
    _write(tmp_path / "gt" / "0001.jpg", 101)
    _write(tmp_path / "gt" / "0023.jpg", 123)
    _write(tmp_path / "hazy" / "0001.jpg", 1)
    _write(tmp_path / "hazy" / "0023_0.85_0.12.jpg", 23)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("0001.jpg", "0001.jpg"), ("0023_0.85_0.12.jpg", "0023.jpg")]
    _check_values(pairs, [(1, 101), (23, 123)])
    # Bare ids alone are plain same-stem folders, not RESIDE (no SOTS border).
    _write(tmp_path / "plain" / "hazy" / "0001.jpg", 1)
    _write(tmp_path / "plain" / "gt" / "0001.jpg", 101)
    only_bare = find_pairs(tmp_path / "plain")
    assert len(only_bare) == 1 and only_bare[0].target_border == 0


def _jorder(root, scales=("X2",), count=3):
    for i in range(1, count + 1):
        _write(root / "norain" / f"norain-{i}.png", 100 + i)
        for scale in scales:
            _write(root / "rain" / scale / f"norain-{i}x{scale[1:]}.png", i)
    (root / "rainregion").mkdir(parents=True, exist_ok=True)  # Rain100H's extra folders are not roles


def test_jorder_rain100_scale_folder_and_x2_names(tmp_path):
    root = tmp_path / "rain_data_test_Light"
    _jorder(root)
    pairs = find_pairs(root)
    assert _names(pairs) == [(f"norain-{i}x2.png", f"norain-{i}.png") for i in (1, 2, 3)]
    assert all(os.path.dirname(p.input_path) == str(root / "rain" / "X2") for p in pairs)
    _check_values(pairs, [(1, 101), (2, 102), (3, 103)])
    assert find_pairs(root / "rain", root / "norain") == pairs
    assert find_pairs(root / "rain" / "X2", root / "norain") == pairs


def test_several_scale_folders_are_refused(tmp_path):
    _jorder(tmp_path, scales=("X2", "X3"))
    with pytest.raises(DataError, match=r"rain holds no images but several scale folders \(X2/, X3/\); pass the "
                                         r"one to use as input_dir"):
        find_pairs(tmp_path)


def test_scale_tag_is_stripped_only_when_it_is_the_same_everywhere(tmp_path):
    _write(tmp_path / "lr" / "0001x2.png", 1)
    _write(tmp_path / "lr" / "0002x2.png", 2)
    _write(tmp_path / "hr" / "0001.png", 101)
    _write(tmp_path / "hr" / "0002.png", 102)
    assert _names(find_pairs(tmp_path)) == [("0001x2.png", "0001.png"), ("0002x2.png", "0002.png")]
    (tmp_path / "lr" / "0002x2.png").rename(tmp_path / "lr" / "0002x3.png")
    with pytest.raises(DataError, match=r"degraded image\(s\) in .*lr have no clean partner"):
        find_pairs(tmp_path)


# ---------------------------------------------------------------- one folder

@pytest.mark.parametrize("inp, tgt", [
    ("rain-{}.png", "norain-{}.png"),
    ("Canon5D2_5_160_3200_chair_{}_real.JPG", "Canon5D2_5_160_3200_chair_{}_mean.JPG"),
    ("00{}_NOISY_SRGB_010.PNG", "00{}_GT_SRGB_010.PNG"),
    ("scene{}_input.png", "scene{}_target.png"),
    ("x_{}_lq.bmp", "x_{}_gt.png"),
])
def test_one_folder_conventions(tmp_path, inp, tgt):
    for i in (1, 2):
        _write(tmp_path / inp.format(i), i)
        _write(tmp_path / tgt.format(i), 100 + i)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [(inp.format(i), tgt.format(i)) for i in (1, 2)]
    _check_values(pairs, [(1, 101), (2, 102)])
    assert find_pairs(tmp_path, tmp_path) == pairs
    assert find_pairs(tmp_path, layout="one_folder") == pairs


def test_one_folder_word_also_in_scene_name(tmp_path):
    # "rain" is part of every name but only input/target mark the roles.
    for i in (1, 2):
        _write(tmp_path / f"rain{i}_input.png", i)
        _write(tmp_path / f"rain{i}_target.png", 100 + i)
    assert _names(find_pairs(tmp_path)) == [("rain1_input.png", "rain1_target.png"),
                                            ("rain2_input.png", "rain2_target.png")]


def test_one_folder_unknown_convention(tmp_path):
    _write(tmp_path / "kodim01.png", 1)
    _write(tmp_path / "kodim02.png", 2)
    with pytest.raises(DataError, match=r"cannot tell degraded from clean images in .*expected "
                                         r"names like rain-001\.png.*layout='side_by_side'"):
        find_pairs(tmp_path)


def test_one_folder_ambiguous_convention(tmp_path):
    _write(tmp_path / "a_rain_gt.png", 1)
    _write(tmp_path / "a_noisy_clean.png", 2)
    with pytest.raises(DataError, match=r"the names fit several conventions \('rain'/'clean'; "
                                         r"'noisy'/'gt'\)"):
        find_pairs(tmp_path)


def test_one_folder_stray_image(tmp_path):
    _write(tmp_path / "rain-001.png", 1)
    _write(tmp_path / "norain-001.png", 2)
    _write(tmp_path / "preview.png", 3)
    with pytest.raises(DataError, match=r"1 image\(s\) in .* are marked neither 'rain' \(degraded\) "
                                         r"nor 'norain' \(clean\): preview\.png"):
        find_pairs(tmp_path)


def test_one_folder_with_two_different_folders_rejected(tmp_path):
    _write(tmp_path / "a" / "x.png", 1)
    _write(tmp_path / "b" / "x.png", 1)
    with pytest.raises(DataError, match=r"layout='one_folder' reads one folder.*use layout='folders'"):
        find_pairs(tmp_path / "a", tmp_path / "b", layout="one_folder")


# ---------------------------------------------------------------- RESIDE

def _reside_its(root):
    """Two scenes, three hazy images; clean images 20 px larger (SOTS-indoor)."""
    rng = np.random.default_rng(0)
    clean = {}
    for scene in (1400, 1401):
        img = rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
        os.makedirs(root / "gt", exist_ok=True)
        cv2.imwrite(str(root / "gt" / f"{scene}.png"), img)
        clean[scene] = img
    os.makedirs(root / "hazy", exist_ok=True)
    for name in ("1400_1", "1400_7", "1401_2"):
        cv2.imwrite(str(root / "hazy" / f"{name}.png"), np.zeros((4, 8, 3), np.uint8))
    return clean


def test_reside_its_auto_and_border_crop(tmp_path):
    clean = _reside_its(tmp_path)
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("1400_1.png", "1400.png"), ("1400_7.png", "1400.png"),
                             ("1401_2.png", "1401.png")]
    assert all(p.target_border == RESIDE_BORDER == 10 for p in pairs)
    assert find_pairs(tmp_path / "hazy", tmp_path / "gt") == pairs
    assert find_pairs(tmp_path, layout="reside") == pairs
    inp, tgt = load_pair(pairs[2])
    assert inp.shape == tgt.shape == (4, 8, 3)
    expected = clean[1401][10:14, 10:18, ::-1] / np.float32(255)
    np.testing.assert_array_equal(tgt, expected)


def test_reside_ots_names_same_size_not_cropped(tmp_path):
    _write(tmp_path / "hazy" / "0001_0.8_0.2.jpg", 1, size=(30, 30))
    _write(tmp_path / "hazy" / "0001_0.9_0.16.jpg", 2, size=(30, 30))
    _write(tmp_path / "hazy" / "0002_1_0.2.jpg", 3, size=(30, 30))
    _write(tmp_path / "clear" / "0001.png", 101, size=(30, 30))
    _write(tmp_path / "clear" / "0002.png", 102, size=(30, 30))
    pairs = find_pairs(tmp_path / "hazy", tmp_path / "clear")
    assert _names(pairs) == [("0001_0.8_0.2.jpg", "0001.png"), ("0001_0.9_0.16.jpg", "0001.png"),
                             ("0002_1_0.2.jpg", "0002.png")]
    inp, tgt = load_pair(pairs[0])
    assert inp.shape == tgt.shape == (30, 30, 3)
    assert tgt[0, 0, 0] == np.float32(101 / 255)


def test_reside_in_one_folder(tmp_path):
    _write(tmp_path / "5_1.png", 1)
    _write(tmp_path / "5.png", 2)
    assert _names(find_pairs(tmp_path)) == [("5_1.png", "5.png")]


def test_reside_layout_rejects_other_names(tmp_path):
    _write(tmp_path / "hazy" / "1400_1.png", 1)
    _write(tmp_path / "hazy" / "foggy_street.png", 1)
    _write(tmp_path / "gt" / "1400.png", 1)
    with pytest.raises(DataError, match=r"1 image\(s\) in .*hazy do not look like RESIDE hazy names "
                                         r".*: foggy_street\.png"):
        find_pairs(tmp_path, layout="reside")


def test_reside_missing_clean_image(tmp_path):
    _write(tmp_path / "hazy" / "7_1.png", 1)
    _write(tmp_path / "hazy" / "8_1.png", 1)
    _write(tmp_path / "gt" / "7.png", 1)
    with pytest.raises(DataError, match=r"1 degraded image\(s\) in .*hazy have no clean partner in "
                                         r".*gt: 8_1\.png"):
        find_pairs(tmp_path)


def test_reside_border_only_when_exact(tmp_path):
    _write(tmp_path / "h.png", 1, size=(10, 10))
    _write(tmp_path / "c.png", 1, size=(30, 31))
    pair = Pair(str(tmp_path / "h.png"), str(tmp_path / "c.png"), target_border=10)
    with pytest.raises(DataError, match=r"size mismatch: input .*h\.png is 10x10 but target "
                                         r".*c\.png is 31x30"):
        load_pair(pair)


# ---------------------------------------------------------------- side by side

def _side_by_side(path, left_value, right_value, h=6, w=5):
    img = np.concatenate([np.full((h, w, 3), left_value, np.uint8),
                          np.full((h, w, 3), right_value, np.uint8)], axis=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), img)


@pytest.mark.parametrize("order, expected", [("input_left", (10, 200)), ("target_left", (200, 10))])
def test_side_by_side(tmp_path, order, expected):
    _side_by_side(tmp_path / "2.png", 10, 200)
    _side_by_side(tmp_path / "1.png", 10, 200)
    pairs = find_pairs(tmp_path, layout="side_by_side", pair_order=order)
    assert [p.name for p in pairs] == ["1.png", "2.png"]
    assert pairs[0].input_path == pairs[0].target_path and pairs[0].side_by_side == order
    inp, tgt = load_pair(pairs[0])
    assert inp.shape == tgt.shape == (6, 5, 3)
    assert np.all(inp == np.float32(expected[0] / 255)) and np.all(tgt == np.float32(expected[1] / 255))
    assert find_pairs(tmp_path, pair_order=order) == pairs  # pair_order alone selects side_by_side


def test_side_by_side_needs_pair_order(tmp_path):
    _side_by_side(tmp_path / "1.png", 10, 200)
    with pytest.raises(DataError, match=r"layout='side_by_side' needs pair_order='input_left' or "
                                         r"'target_left'"):
        find_pairs(tmp_path, layout="side_by_side")


def test_side_by_side_never_auto_detected(tmp_path):
    _side_by_side(tmp_path / "1.png", 10, 200)
    with pytest.raises(DataError, match=r"cannot tell degraded from clean.*layout='side_by_side'"):
        find_pairs(tmp_path)


def test_side_by_side_odd_width(tmp_path):
    _write(tmp_path / "odd.png", 1, size=(4, 9))
    pairs = find_pairs(tmp_path, layout="side_by_side", pair_order="input_left")
    with pytest.raises(DataError, match=r"side-by-side image .*odd\.png has odd width 9 \(9x4\)"):
        load_pair(pairs[0])


def test_bad_pair_orders(tmp_path):
    _write(tmp_path / "a.png", 1)
    with pytest.raises(DataError, match=r"unknown pair_order 'left': choose one of input_left, "
                                         r"target_left"):
        find_pairs(tmp_path, layout="side_by_side", pair_order="left")
    with pytest.raises(DataError, match=r"pair_order='input_left' only applies to "
                                         r"layout='side_by_side', not 'folders'"):
        find_pairs(tmp_path, layout="folders", pair_order="input_left")


# ---------------------------------------------------------------- errors

def test_unknown_layout(tmp_path):
    with pytest.raises(DataError, match=r"unknown layout 'rainy': choose one of auto, folders, "
                                         r"one_folder, reside, side_by_side"):
        find_pairs(tmp_path, layout="rainy")
    assert LAYOUTS == ("auto", "folders", "one_folder", "reside", "side_by_side")


def test_unmatched_inputs_listed_with_count(tmp_path):
    for i in range(1, 26):
        _write(tmp_path / "rain" / f"rain-{i:03d}.png", i)
    _write(tmp_path / "norain" / "norain-001.png", 1)
    _write(tmp_path / "norain" / "norain-002.png", 1)
    with pytest.raises(DataError) as info:
        find_pairs(tmp_path)
    message = str(info.value)
    assert message.startswith("23 degraded image(s) in ")
    assert "have no clean partner in " in message and "norain" in message
    listed = ", ".join(f"rain-{i:03d}.png" for i in range(3, 23))
    assert f": {listed}, ... (and 3 more)." in message
    assert "rain-023.png" not in message and "pass layout=" in message


def test_target_claimed_by_two_inputs(tmp_path):
    _write(tmp_path / "in" / "a.png", 1)
    _write(tmp_path / "in" / "a.jpg", 1)
    _write(tmp_path / "out" / "a.png", 1)
    with pytest.raises(DataError, match=r"clean image .*out.a\.png is claimed by 2 degraded images: "
                                         r"a\.jpg, a\.png"):
        find_pairs(tmp_path / "in", tmp_path / "out")


def test_input_matching_several_targets(tmp_path):
    _write(tmp_path / "in" / "a.png", 1)
    _write(tmp_path / "out" / "a.png", 1)
    _write(tmp_path / "out" / "a.bmp", 1)
    with pytest.raises(DataError, match=r"degraded image .*a\.png matches several clean images: "
                                         r"a\.bmp, a\.png"):
        find_pairs(tmp_path / "in", tmp_path / "out")


def test_empty_folders(tmp_path):
    (tmp_path / "rain").mkdir()
    _write(tmp_path / "norain" / "a.png", 1)
    with pytest.raises(DataError, match=r"rain contains no images \(looked for \.png"):
        find_pairs(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty contains no images .*, and no degraded/clean "
                                         r"sub-folder pair"):
        find_pairs(tmp_path / "empty")
    with pytest.raises(DataError, match=r"image folder .*missing does not exist"):
        find_pairs(tmp_path / "missing")


def test_size_mismatch(tmp_path):
    _write(tmp_path / "in" / "a.png", 1, size=(8, 8))
    _write(tmp_path / "out" / "a.png", 1, size=(8, 10))
    (pair,) = find_pairs(tmp_path / "in", tmp_path / "out")
    with pytest.raises(DataError, match=r"size mismatch: input .*in.a\.png is 8x8 but target "
                                         r".*out.a\.png is 10x8"):
        load_pair(pair)


def test_unused_targets_warned(tmp_path, caplog):
    _write(tmp_path / "in" / "a.png", 1)
    for name in ("a", "b", "c"):
        _write(tmp_path / "out" / f"{name}.png", 1)
    with caplog.at_level("WARNING"):
        pairs = find_pairs(tmp_path / "in", tmp_path / "out")
    assert len(pairs) == 1
    assert "2 clean image(s) in " in caplog.text
    assert "have no degraded partner and are not used: b.png, c.png" in caplog.text


def test_pairs_sorted_by_input_path(tmp_path):
    for name in ("c", "a", "b"):
        _write(tmp_path / f"{name}_input.png", 1)
        _write(tmp_path / f"{name}_target.png", 1)
    pairs = find_pairs(tmp_path)
    assert [p.input_path for p in pairs] == sorted(p.input_path for p in pairs)
    assert [p.name for p in pairs] == ["a_input.png", "b_input.png", "c_input.png"]


# ---------------------------------------------------------------- Outdoor-Rain names, level folders

def _outdoor_rain(root, ids=(1, 2), settings=((80, 4), (95, 7), (100, 4))):
    """Outdoor-Rain's release: in/im_0001_s80_a04.png (several per clean image) beside gt/im_0001.png."""
    for i in ids:
        _write(root / "gt" / f"im_{i:04d}.png", 100 + i)
        for s, a in settings:
            _write(root / "in" / f"im_{i:04d}_s{s}_a{a:02d}.png", i)


def test_outdoor_rain_names_pair_several_inputs_per_clean_image(tmp_path):
    _outdoor_rain(tmp_path)
    pairs = find_pairs(tmp_path)  # in/ + gt/ are recognised sub-folders
    assert _names(pairs) == [(f"im_{i:04d}_{tags}.png", f"im_{i:04d}.png")
                             for i in (1, 2) for tags in ("s100_a04", "s80_a04", "s95_a07")]
    assert all(os.path.dirname(p.input_path) == str(tmp_path / "in") for p in pairs)
    assert all(p.target_border == 0 for p in pairs)  # not RESIDE: no SOTS border
    _check_values(pairs, [(1, 101)] * 3 + [(2, 102)] * 3)
    assert find_pairs(tmp_path / "in", tmp_path / "gt") == pairs
    assert find_pairs(tmp_path, layout="folders") == pairs


def test_setting_tags_pair_with_the_clean_name_they_extend(tmp_path):
    # Tags of any letters and a number, after "_" or "-"; a degraded image with the bare clean name pairs too.
    for name in ("x_sigma25", "x-3", "x_0.5_l2", "x"):
        _write(tmp_path / "noisy" / f"{name}.png", 1)
    _write(tmp_path / "clean" / "x.png", 101)
    _write(tmp_path / "clean" / "y.png", 102)
    pairs = find_pairs(tmp_path)
    assert sorted(_names(pairs)) == sorted((f"{n}.png", "x.png") for n in ("x", "x-3", "x_0.5_l2", "x_sigma25"))


def test_setting_tags_matching_two_clean_names_are_refused(tmp_path):
    _write(tmp_path / "in" / "im_0001_s80_a04.png", 1)
    _write(tmp_path / "gt" / "im_0001.png", 2)
    _write(tmp_path / "gt" / "im_0001_s80.png", 3)
    with pytest.raises(DataError, match=r"degraded image .*im_0001_s80_a04\.png matches several clean images: "
                                         r"im_0001\.png, im_0001_s80\.png"):
        find_pairs(tmp_path)


def test_stray_image_among_outdoor_rain_names_is_the_one_listed(tmp_path):
    _outdoor_rain(tmp_path, ids=(1,))
    _write(tmp_path / "in" / "im_0009_s80_a04.png", 9)
    with pytest.raises(DataError) as info:
        find_pairs(tmp_path)
    message = str(info.value)
    assert message.startswith("1 degraded image(s) in ") and message.count(".png") == 1
    assert "have no clean partner" in message and "im_0009_s80_a04.png" in message


def test_one_degraded_image_per_clean_image_outside_tags_still_refuses_a_shared_target(tmp_path):
    # Without setting tags a clean image is still claimed by one degraded image only.
    _write(tmp_path / "in" / "a.png", 1)
    _write(tmp_path / "in" / "a.jpg", 1)
    _write(tmp_path / "gt" / "a.png", 1)
    with pytest.raises(DataError, match=r"clean image .*gt.a\.png is claimed by 2 degraded images"):
        find_pairs(tmp_path)


@pytest.mark.parametrize("level", ["rain100mm", "rain50mm", "rain_heavy", "rain-light", "Rainy_100mm", "hazy_0.8",
                                   "noisy25", "input_images"])
def test_level_named_input_folder_beside_a_clean_folder(tmp_path, level):
    for i in (1, 2):
        _write(tmp_path / level / f"rain-{i}.png", i)
        _write(tmp_path / "norain" / f"norain-{i}.png", 100 + i)
    (tmp_path / "notes").mkdir()
    pairs = find_pairs(tmp_path)
    assert _names(pairs) == [("rain-1.png", "norain-1.png"), ("rain-2.png", "norain-2.png")]
    assert all(os.path.dirname(p.input_path) == str(tmp_path / level) for p in pairs)
    _check_values(pairs, [(1, 101), (2, 102)])
    assert find_pairs(tmp_path, layout="folders") == pairs


def test_several_level_folders_are_refused_and_listed(tmp_path):
    for sub in ("rain100mm", "rain50mm", "norain"):
        _write(tmp_path / sub / "a.png", 1)
    with pytest.raises(DataError, match=r"holds several degraded/clean sub-folder pairs \(rain100mm/ \+ norain/, "
                                         r"rain50mm/ \+ norain/\); pass input_dir and target_dir"):
        find_pairs(tmp_path)
    # One level folder beside two clean folders is ambiguous too.
    (tmp_path / "rain50mm" / "a.png").unlink()
    (tmp_path / "rain50mm").rmdir()
    _write(tmp_path / "clean" / "a.png", 1)
    with pytest.raises(DataError, match=r"holds several degraded/clean sub-folder pairs \(rain100mm/ \+ clean/, "
                                         r"rain100mm/ \+ norain/\)"):
        find_pairs(tmp_path)


def test_a_known_pair_wins_over_level_folders_beside_it(tmp_path):
    # GoPro: blur/ + sharp/ beside blur_gamma/.
    for sub, value in (("blur", 1), ("blur_gamma", 2), ("sharp", 3)):
        _write(tmp_path / sub / "000047.png", value)
    pairs = find_pairs(tmp_path)
    assert [(p.input_path, p.target_path) for p in pairs] == [
        (str(tmp_path / "blur" / "000047.png"), str(tmp_path / "sharp" / "000047.png"))]


@pytest.mark.parametrize("other", ["rain_mask", "rainmask", "rainregion", "rain_gt", "rainy-clean", "rainfall",
                                   "raindrop"])
def test_folders_that_only_start_with_a_role_word_are_not_degraded_sets(tmp_path, other):
    _write(tmp_path / other / "a.png", 1)
    _write(tmp_path / "norain" / "a.png", 2)
    with pytest.raises(DataError, match=r"contains no images .*, and no degraded/clean sub-folder pair"):
        find_pairs(tmp_path)


# ---------------------------------------------------------------- nothing pairs: the sub-folders are listed

def test_nothing_to_pair_lists_the_subfolders(tmp_path):
    for sub in ("heavy", "light", "ground truth"):
        _write(tmp_path / sub / "a.png", 1)
    (tmp_path / ".cache").mkdir()
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"contains no images .*, and no degraded/clean sub-folder pair \(such as "
                                         r"rain/ \+ norain/\); its sub-folders: ground truth/, heavy/, light/\. "
                                         r"Pass the degraded and clean folders as input_dir and target_dir, or "
                                         r"list the pairs in a CSV file \(pairs_csv\)"):
        find_pairs(tmp_path)
    with pytest.raises(DataError, match=r"holds no degraded/clean sub-folder pair .*; its sub-folders: ground "
                                         r"truth/, heavy/, light/; pass target_dir"):
        find_pairs(tmp_path, layout="folders")
    with pytest.raises(DataError, match=r"contains no images .*; its sub-folders: ground truth/, heavy/, light/\."):
        find_pairs(tmp_path, layout="one_folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty contains no images .*; it has no sub-folders\."):
        find_pairs(tmp_path / "empty")


def test_many_subfolders_are_listed_up_to_a_limit(tmp_path):
    for i in range(25):
        (tmp_path / f"scene{i:02d}").mkdir()
    with pytest.raises(DataError) as info:
        find_pairs(tmp_path)
    assert "scene00/, scene01/, " in str(info.value) and "scene19/, ... (and 5 more)" in str(info.value)
    assert "scene20/" not in str(info.value)


# ---------------------------------------------------------------- an explicit list: pairs_from_csv

def _csv(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_pairs_from_csv_relative_absolute_header_comments(tmp_path):
    _write(tmp_path / "shots" / "IMG 7.jpg", 7)
    _write(tmp_path / "shots" / "wet, street.png", 8)
    _write(tmp_path / "refs" / "dry.png", 107)
    _write(tmp_path / "elsewhere" / "ref8.png", 108)
    listing = _csv(tmp_path / "lists" / "pairs.csv", (
        "input,target\n"
        "# taken on 2024-05-01\n"
        "\n"
        "../shots/IMG 7.jpg, ../refs/dry.png\n"
        f"\"../shots/wet, street.png\",{tmp_path / 'elsewhere' / 'ref8.png'}\n"
        "   # an indented comment\n"
    ))
    pairs = pairs_from_csv(listing)
    assert [(p.input_path, p.target_path) for p in pairs] == [
        (str(tmp_path / "shots" / "IMG 7.jpg"), str(tmp_path / "refs" / "dry.png")),
        (str(tmp_path / "shots" / "wet, street.png"), str(tmp_path / "elsewhere" / "ref8.png")),
    ]
    assert all(isinstance(p, Pair) and p.side_by_side == "" and p.target_border == 0 for p in pairs)
    _check_values(pairs, [(7, 107), (8, 108)])
    assert find_pairs(pairs_csv=listing) == pairs
    assert find_pairs(pairs_csv=str(listing)) == pairs


def test_pairs_from_csv_keeps_the_file_order_and_shares_targets(tmp_path):
    for name, value in (("b", 2), ("a", 1), ("c", 3)):
        _write(tmp_path / f"{name}.png", value)
    _write(tmp_path / "clean.png", 100)
    listing = _csv(tmp_path / "pairs.csv", "b.png,clean.png\na.png,clean.png\nc.png,clean.png\n")
    assert _names(pairs_from_csv(listing)) == [("b.png", "clean.png"), ("a.png", "clean.png"),
                                              ("c.png", "clean.png")]
    # Only the first line can be the header: a later "input,target" line names two files.
    _write(tmp_path / "input.png", 5)
    _write(tmp_path / "target.png", 6)
    listing = _csv(tmp_path / "header_twice.csv", "# a comment first\nINPUT, Target\na.png,clean.png\ninput,target\n")
    with pytest.raises(DataError, match=r"header_twice\.csv, line 4: input image .*input does not exist"):
        pairs_from_csv(listing)


def test_pairs_from_csv_errors_name_the_file_and_line(tmp_path):
    _write(tmp_path / "a.png", 1)
    _write(tmp_path / "b.png", 2)
    _write(tmp_path / "c.png", 3)
    (tmp_path / "notes.txt").write_text("x")
    missing = tmp_path / "missing.csv"
    with pytest.raises(DataError, match=r"pairs file .*missing\.csv does not exist"):
        pairs_from_csv(missing)
    with pytest.raises(DataError, match=r"pairs file .*missing\.csv does not exist"):
        find_pairs(pairs_csv=missing)
    with pytest.raises(DataError, match=r"pairs file .* is not a file"):
        pairs_from_csv(tmp_path)
    cases = [
        ("a.png,b.png\n\nc.png,gone.png\n", r"bad\.csv, line 3: target image .*gone\.png does not exist"),
        ("gone.png,b.png\n", r"bad\.csv, line 1: input image .*gone\.png does not exist"),
        ("input,target\na.png\n", r"bad\.csv, line 2: expected two fields, input,target; got 'a\.png'"),
        ("a.png,b.png,c.png\n", r"bad\.csv, line 1: expected two fields, input,target; got 'a\.png,b\.png,c\.png'"),
        ("a.png,\n", r"bad\.csv, line 1: expected two fields"),
        ("a.png;b.png\n", r"bad\.csv, line 1: expected two fields"),
        ("a.png,b.png\nc.png,b.png\n# again\n./a.png,c.png\n",
         r"bad\.csv, line 4: input .*a\.png is listed again \(first on line 1\)"),
        ("notes.txt,b.png\n", r"bad\.csv, line 1: input .*notes\.txt is not an image file"),
        ("a.png,.\n", r"bad\.csv, line 1: target image .* is not a file"),
        ("input,target\n# nothing yet\n\n", r"pairs file .*bad\.csv lists no pairs"),
        ("", r"pairs file .*bad\.csv lists no pairs"),
    ]
    for text, message in cases:
        listing = _csv(tmp_path / "bad.csv", text)
        with pytest.raises(DataError, match=message):
            pairs_from_csv(listing)


def test_find_pairs_takes_a_csv_instead_of_folders(tmp_path):
    _write(tmp_path / "a.png", 1)
    listing = _csv(tmp_path / "pairs.csv", "a.png,a.png\n")
    for extra, named in [({"input_dir": tmp_path}, "input_dir="), ({"target_dir": tmp_path}, "target_dir="),
                         ({"layout": "reside"}, "layout=reside"), ({"pair_order": "input_left"},
                                                                    "pair_order=input_left")]:
        with pytest.raises(DataError, match=rf"pairs_csv=.*pairs\.csv lists the pairs itself; it takes no {named}"):
            find_pairs(pairs_csv=listing, **extra)
    with pytest.raises(DataError, match=r"no images to pair: give input_dir \(a folder\) or pairs_csv"):
        find_pairs()
    assert _names(find_pairs(pairs_csv=listing, layout="auto")) == [("a.png", "a.png")]


# ---------------------------------------------------------------- real samples

def test_rain12(shared_data):
    pairs = find_pairs(shared_data / "rain12")
    assert len(pairs) == 12
    assert find_pairs(shared_data / "rain12" / "rain", shared_data / "rain12" / "norain") == pairs
    assert _names(pairs)[0] == ("rain-001.png", "norain-001.png")
    assert _names(pairs)[-1] == ("rain-012.png", "norain-012.png")


def test_sots_indoor(shared_data):
    pairs = find_pairs(shared_data / "sots-indoor-10")
    assert len(pairs) == 10
    assert all(p.target_border == 10 for p in pairs)
    assert _names(pairs)[0] == ("1400_1.png", "1400.png")
    inp, tgt = load_pair(pairs[0])
    assert inp.shape == tgt.shape == (460, 620, 3)


def test_polyu(shared_data):
    pairs = find_pairs(shared_data / "polyu-20")
    assert len(pairs) == 20
    for inp, tgt in _names(pairs):
        assert inp.endswith("_real.JPG") and tgt == inp.replace("_real", "_mean")
