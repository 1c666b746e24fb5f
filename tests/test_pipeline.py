"""tf.data pipelines: decoding, aligned crops, augmentation, determinism, errors."""

import collections

import cv2
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.data.image_files import read_image
from erlrestore.data.pairing import Pair, load_pair
from erlrestore.data.pipeline import (
    eval_dataset,
    pad_to_min_size,
    pairs_source,
    synthetic_source,
    train_dataset,
)


def write_rgb(path, rgb_u8):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.ascontiguousarray(rgb_u8[..., ::-1]))
    return str(path)


def coordinate_image(height, width, tag):
    """R = row, G = column, B = tag (all distinct small integers): every pixel is unique."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows, cols, np.full_like(rows, tag)], axis=-1).astype(np.uint8)


def make_pairs(folder, sizes):
    """Pairs whose target is 255 - input, one distinct tag (B channel) per image."""
    pairs = []
    for i, (h, w) in enumerate(sizes):
        inp = coordinate_image(h, w, tag=10 * (i + 1))
        pairs.append(
            Pair(
                write_rgb(folder / "input" / f"img{i}.png", inp),
                write_rgb(folder / "target" / f"img{i}.png", 255 - inp),
            )
        )
    return pairs


def collect(ds, batches):
    return [tuple(t.numpy() for t in element) for element in ds.take(batches)]


def test_pairs_source_decodes_pixels_and_names(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 20), (24, 16)])
    got = list(pairs_source(pairs, with_names=True))
    assert len(got) == 2
    for pair, (inp, tgt, name) in zip(pairs, got):
        want_inp, want_tgt = load_pair(pair)
        np.testing.assert_array_equal(inp.numpy(), want_inp)
        np.testing.assert_array_equal(tgt.numpy(), want_tgt)
        assert name.numpy().decode() == pair.name
        assert inp.dtype == tf.float32


def test_decode_error_reaches_caller_naming_the_file(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 16), (16, 16)])
    broken = tmp_path / "input" / "img1.png"
    broken.write_bytes(broken.read_bytes()[:40])  # truncated PNG
    ds = train_dataset(pairs, crop_size=8, batch_size=1, shuffle_buffer=0, seed=1, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"DataError: .*img1\.png is a truncated PNG"):
        collect(ds, 4)


def test_size_mismatch_error_names_both_files(tmp_path):
    a = write_rgb(tmp_path / "a.png", coordinate_image(16, 16, 1))
    b = write_rgb(tmp_path / "b.png", coordinate_image(16, 18, 1))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"size mismatch: input .*a\.png.*b\.png"):
        list(pairs_source([Pair(a, b)]))


@pytest.mark.parametrize("augment", [False, True])
def test_crops_are_aligned_windows(tmp_path, augment):
    pairs = make_pairs(tmp_path, [(24, 32), (40, 20)])
    ds = train_dataset(pairs, crop_size=12, batch_size=4, augment=augment, seed=3)
    orientations = set()
    for inp, tgt in collect(ds, 10):
        assert inp.shape == tgt.shape == (4, 12, 12, 3)
        # The target is 255 - input pixelwise: any misalignment breaks this.
        np.testing.assert_allclose(tgt, 1.0 - inp, atol=1e-6)
        for crop in np.rint(inp * 255).astype(int):
            assert len(np.unique(crop[..., 2])) == 1  # one source image per crop
            rows, cols = crop[..., 0], crop[..., 1]
            # A window of a coordinate image, possibly flipped/rotated: moving
            # along either axis changes exactly one coordinate by +-1.
            step_down = (rows[1:] - rows[:-1], cols[1:] - cols[:-1])
            step_right = (rows[:, 1:] - rows[:, :-1], cols[:, 1:] - cols[:, :-1])
            for dr, dc in (step_down, step_right):
                assert (np.abs(dr) + np.abs(dc) == 1).all()
                assert len(np.unique(dr)) == 1 and len(np.unique(dc)) == 1
            orientations.add(tuple(int(d[0, 0]) for d in step_down + step_right))
    if augment:
        assert len(orientations) == 8  # all 8 flips/rotations occur in 40 crops
    else:
        assert orientations == {(1, 0, 0, 1)}


def test_deterministic_runs_are_identical_and_seed_matters(tmp_path):
    pairs = make_pairs(tmp_path, [(24, 24), (20, 28), (32, 16)])

    def build(seed):
        return train_dataset(pairs, crop_size=8, batch_size=2, augment=True, seed=seed, deterministic=True)

    first, second, other = collect(build(7), 5), collect(build(7), 5), collect(build(8), 5)
    for (a_in, a_tgt), (b_in, b_tgt) in zip(first, second):
        np.testing.assert_array_equal(a_in, b_in)
        np.testing.assert_array_equal(a_tgt, b_tgt)
    assert any(not np.array_equal(a[0], c[0]) for a, c in zip(first, other))


def test_deterministic_needs_a_seed(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 16)])
    with pytest.raises(ValueError, match="deterministic=True needs a seed"):
        train_dataset(pairs, crop_size=8, batch_size=1, deterministic=True)


def test_one_pass_visits_every_pair_once_in_shuffled_order(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 16)] * 6)
    ds = train_dataset(pairs, crop_size=8, batch_size=1, seed=5, repeat=False)
    epoch1 = [int(round(inp[0, 0, 0, 2] * 255)) for inp, _ in collect(ds, 100)]
    epoch2 = [int(round(inp[0, 0, 0, 2] * 255)) for inp, _ in collect(ds, 100)]
    assert sorted(epoch1) == sorted(epoch2) == [10, 20, 30, 40, 50, 60]
    assert epoch1 != sorted(epoch1) or epoch2 != sorted(epoch2)
    assert epoch1 != epoch2  # reshuffled each pass


def test_partial_last_batch_kept_only_without_repeat(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 16)] * 3)
    one_pass = collect(train_dataset(pairs, crop_size=8, batch_size=2, seed=1, repeat=False), 10)
    assert [b[0].shape[0] for b in one_pass] == [2, 1]
    repeated = train_dataset(pairs, crop_size=8, batch_size=2, seed=1)
    assert repeated.element_spec[0].shape.as_list() == [2, 8, 8, 3]


def test_cache_holds_full_images_and_crops_are_redrawn(tmp_path):
    pairs = make_pairs(tmp_path, [(32, 32), (32, 32)])
    ds = train_dataset(pairs, crop_size=8, batch_size=2, seed=2, cache=True, repeat=False, shuffle_buffer=0)
    first = collect(ds, 1)[0][0]
    for pair in pairs:  # the second pass must come from the cache
        (tmp_path / "input" / pair.name).unlink()
    second = collect(ds, 1)[0][0]
    assert first.shape == second.shape == (2, 8, 8, 3)
    assert not np.array_equal(first, second)  # new crops of the cached full images


def test_small_image_error_names_file_and_suggests_pad_small(tmp_path):
    pairs = make_pairs(tmp_path, [(32, 32), (12, 40)])
    ds = train_dataset(pairs, crop_size=16, batch_size=1, seed=0, shuffle_buffer=0, repeat=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"img1\.png.*is 12x40 \(HxW\), smaller than the 16x16 crop.*pad_small=True",
    ):
        collect(ds, 2)


def test_pad_small_reflect_pads_to_the_crop(tmp_path):
    pairs = make_pairs(tmp_path, [(10, 6)])
    ds = train_dataset(pairs, crop_size=16, batch_size=1, seed=0, pad_small=True)
    (inp, tgt), = collect(ds, 1)
    full = np.pad(read_image(pairs[0].input_path), ((3, 3), (5, 5), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(inp[0], full)  # crop == padded size, so the crop is all of it
    np.testing.assert_allclose(tgt[0], 1.0 - full, atol=1e-6)


@pytest.mark.parametrize("length,size", [(5, 9), (3, 16), (2, 11), (1, 4), (7, 7), (9, 4)])
def test_pad_to_min_size_matches_numpy_reflect(length, size):
    image = np.arange(length * 2 * 1, dtype=np.float32).reshape(length, 2, 1)
    got = pad_to_min_size(image, size).numpy()
    pad = max(size - length, 0)
    rows = (pad // 2, pad - pad // 2)
    cols = (max(size - 2, 0) // 2, max(size - 2, 0) - max(size - 2, 0) // 2)
    np.testing.assert_array_equal(got, np.pad(image, (rows, cols, (0, 0)), mode="reflect"))


def dynamic_source(*elements):
    """A source whose image shapes are unknown until run time, like a real one."""
    spec = (tf.TensorSpec([None, None, 3]), tf.TensorSpec([None, None, 3]), tf.TensorSpec([], tf.string))
    return tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=spec)


def test_generic_source_errors_name_the_element():
    tiny = dynamic_source((np.zeros([8, 20, 3], np.float32), np.zeros([8, 20, 3], np.float32), "tiny-one"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'tiny-one': image is 8x20 \(HxW\), smaller than the 12x12"):
        collect(train_dataset(tiny, crop_size=12, batch_size=1, seed=0), 1)
    odd = dynamic_source((np.zeros([16, 16, 3], np.float32), np.zeros([16, 12, 3], np.float32), "odd"))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"'odd': input is 16x16 but target is 16x12 \(HxW\)"):
        collect(train_dataset(odd, crop_size=8, batch_size=1, seed=0), 1)


def _noise(clean, seed):
    return tf.clip_by_value(clean + tf.random.stateless_uniform(tf.shape(clean), seed, -0.1, 0.1), 0.0, 1.0)


def test_synthetic_source_deterministic_and_fresh_each_epoch(tmp_path):
    paths = [write_rgb(tmp_path / f"c{i}.png", coordinate_image(16, 16, 50 + i)) for i in range(2)]
    build = lambda seed: synthetic_source(paths, _noise, seed=seed, with_names=True).repeat(2)
    run1, run2, run3 = list(build(4)), list(build(4)), list(build(5))
    assert len(run1) == 4
    for (a_in, a_tgt, name), (b_in, _, _), (c_in, _, _), path in zip(run1, run2, run3, paths * 2):
        np.testing.assert_array_equal(a_tgt.numpy(), read_image(path))  # target = clean image
        assert name.numpy().decode() == path
        np.testing.assert_array_equal(a_in.numpy(), b_in.numpy())
        assert not np.array_equal(a_in.numpy(), c_in.numpy())
        assert 0 < np.abs(a_in.numpy() - a_tgt.numpy()).max() <= 0.1 + 1e-6
    assert not np.array_equal(run1[0][0].numpy(), run1[2][0].numpy())  # new noise in epoch 2


def test_synthetic_source_through_train_dataset(tmp_path):
    paths = [write_rgb(tmp_path / f"c{i}.png", coordinate_image(20, 20, 50 + i)) for i in range(3)]
    source = synthetic_source(paths, _noise, seed=1)
    ds = train_dataset(source, crop_size=8, batch_size=3, seed=1, augment=True)
    for inp, tgt in collect(ds, 3):
        assert inp.shape == tgt.shape == (3, 8, 8, 3)
        assert np.abs(inp - tgt).max() <= 0.1 + 1e-6  # the noise of the *same* pixels


def test_synthetic_source_with_a_library_degradation(tmp_path):
    from erlrestore.data.synthetic import make_degradation

    paths = [write_rgb(tmp_path / "c.png", np.full((24, 24, 3), 60, np.uint8))]
    rain = make_degradation("rain", density=0.2, brightness=0.9)
    (a_in, a_tgt), = list(synthetic_source(paths, rain, seed=3))
    (b_in, _), = list(synthetic_source(paths, rain, seed=3))
    np.testing.assert_array_equal(a_tgt.numpy(), read_image(paths[0]))
    np.testing.assert_array_equal(a_in.numpy(), b_in.numpy())
    assert a_in.shape == (24, 24, 3)
    assert (a_in.numpy() >= a_tgt.numpy() - 1e-6).all() and (a_in.numpy() > a_tgt.numpy() + 0.05).any()


def test_eval_dataset_batch_one_in_order(tmp_path):
    pairs = make_pairs(tmp_path, [(16, 24), (20, 16)])
    got = list(eval_dataset(pairs))
    assert [n.numpy()[0].decode() for _, _, n in got] == ["img0.png", "img1.png"]
    assert [tuple(i.shape) for i, _, _ in got] == [(1, 16, 24, 3), (1, 20, 16, 3)]
    np.testing.assert_array_equal(got[1][1].numpy()[0], load_pair(pairs[1])[1])


def test_eval_dataset_batches_only_equal_sizes(tmp_path):
    sizes = [(16, 16), (16, 24), (16, 16), (16, 24), (16, 16)]
    pairs = make_pairs(tmp_path, sizes)
    batches = list(eval_dataset(pairs, batch_size=2))
    seen = collections.Counter()
    for inp, tgt, names in batches:
        assert inp.shape[0] == tgt.shape[0] == names.shape[0] <= 2
        for image, name in zip(inp.numpy(), names.numpy()):
            index = int(name.decode()[3:-4])
            assert image.shape[:2] == sizes[index]  # never resized
            np.testing.assert_array_equal(image, load_pair(pairs[index])[0])
            seen[index] += 1
    assert seen == collections.Counter(range(5))
    assert sorted(b[0].shape[0] for b in batches) == [1, 2, 2]
