"""TFRecord shards: lossless round trip, shard layout, errors, the CLI."""

import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.data.image_files import DataError, read_image
from erlrestore.data.pairing import Pair, load_pair
from erlrestore.data.pipeline import tfrecord_source, train_dataset
from erlrestore.data.tfrecord import encode_png, read_tfrecords, write_tfrecords


def write_bgr(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), pixels)
    return str(path)


@pytest.fixture
def rain_pairs(tmp_path):
    """Five 8-bit pairs of assorted sizes in rain/ + norain/."""
    rng = np.random.default_rng(0)
    pairs = []
    for i, (h, w) in enumerate([(16, 24), (20, 20), (32, 16), (16, 16), (24, 40)], start=1):
        pairs.append(
            Pair(
                write_bgr(tmp_path / "set" / "rain" / f"rain-{i:03d}.png", rng.integers(0, 256, (h, w, 3), np.uint8)),
                write_bgr(tmp_path / "set" / "norain" / f"norain-{i:03d}.png", rng.integers(0, 256, (h, w, 3), np.uint8)),
            )
        )
    return pairs


def by_name(dataset):
    return {name.numpy().decode(): (inp.numpy(), tgt.numpy()) for inp, tgt, name in dataset}


def test_round_trip_is_exact_for_8_bit(rain_pairs, tmp_path):
    out = tmp_path / "shards"
    paths = write_tfrecords(rain_pairs, out, num_shards=2, prefix="train")
    assert sorted(os.listdir(out)) == ["train-00000-of-00002.tfrecord", "train-00001-of-00002.tfrecord"]
    assert paths == [str(out / n) for n in sorted(os.listdir(out))]
    # Contiguous blocks of near-equal size: 5 pairs -> 2 + 3 (round(2.5) == 2).
    assert [sum(1 for _ in tf.data.TFRecordDataset(p)) for p in paths] == [2, 3]
    got = by_name(read_tfrecords(str(out / "train-*.tfrecord"), with_names=True))
    assert sorted(got) == sorted(p.name for p in rain_pairs)
    for pair in rain_pairs:
        want_inp, want_tgt = load_pair(pair)
        inp, tgt = got[pair.name]
        assert inp.dtype == np.float32
        np.testing.assert_array_equal(inp, want_inp)
        np.testing.assert_array_equal(tgt, want_tgt)
    assert len(list(read_tfrecords(out))) == 5  # a directory works as the pattern


def test_round_trip_is_exact_for_16_bit(tmp_path):
    rng = np.random.default_rng(1)
    pair = Pair(
        write_bgr(tmp_path / "in" / "a.png", rng.integers(0, 65536, (12, 18, 3), np.uint16)),
        write_bgr(tmp_path / "gt" / "a.png", rng.integers(0, 256, (12, 18, 3), np.uint8)),
    )
    write_tfrecords([pair], tmp_path / "out", num_shards=1)
    (inp, tgt, _), = list(read_tfrecords(tmp_path / "out", with_names=True))
    np.testing.assert_array_equal(inp.numpy(), read_image(pair.input_path))
    np.testing.assert_array_equal(tgt.numpy(), read_image(pair.target_path))


def test_encode_png_picks_the_bit_depth():
    eight = (np.arange(48, dtype=np.float32).reshape(4, 4, 3) * 5) / np.float32(255)
    assert encode_png(eight)[1] == 8
    assert encode_png(eight + np.float32(1e-4))[1] == 16
    with pytest.raises(DataError, match=r"img: pixel values must be finite and in \[0, 1\]"):
        encode_png(eight * 2, "img")


def test_conventions_are_applied_before_storing(tmp_path):
    """RESIDE border crop: a 36x36 clean image is stored cropped to the 16x16 hazy size."""
    rng = np.random.default_rng(2)
    clean = rng.integers(0, 256, (36, 36, 3), np.uint8)
    pair = Pair(
        write_bgr(tmp_path / "hazy" / "1_1.png", rng.integers(0, 256, (16, 16, 3), np.uint8)),
        write_bgr(tmp_path / "gt" / "1.png", clean),
        target_border=10,
    )
    write_tfrecords([pair], tmp_path / "out", num_shards=1)
    (inp, tgt), = list(read_tfrecords(tmp_path / "out"))
    assert inp.shape == tgt.shape == (16, 16, 3)
    np.testing.assert_array_equal(tgt.numpy(), read_image(pair.target_path)[10:26, 10:26])


def test_more_shards_than_pairs_and_training_from_shards(rain_pairs, tmp_path):
    paths = write_tfrecords(rain_pairs[:2], tmp_path / "out", num_shards=4)
    assert [os.path.basename(p) for p in paths] == [f"pairs-0000{i}-of-00004.tfrecord" for i in range(4)]
    assert len(list(read_tfrecords(tmp_path / "out"))) == 2
    ds = train_dataset(tfrecord_source(tmp_path / "out"), crop_size=8, batch_size=2, seed=0)
    inp, tgt = next(iter(ds))
    assert inp.shape == tgt.shape == (2, 8, 8, 3)


def test_bad_pair_fails_cleanly_without_leftovers(rain_pairs, tmp_path):
    broken = rain_pairs[3].target_path
    with open(broken, "r+b") as f:
        f.truncate(30)
    out = tmp_path / "out"
    with pytest.raises(DataError, match=r"norain-004\.png is a truncated PNG"):
        write_tfrecords(rain_pairs, out, num_shards=2)
    assert os.listdir(out) == []  # no partial shard, no .tmp file


def test_argument_errors(rain_pairs, tmp_path):
    with pytest.raises(DataError, match="no image pairs to write"):
        write_tfrecords([], tmp_path)
    with pytest.raises(ValueError, match="num_shards must be >= 1, got 0"):
        write_tfrecords(rain_pairs, tmp_path, num_shards=0)
    with pytest.raises(ValueError, match="prefix must be a plain file-name prefix"):
        write_tfrecords(rain_pairs, tmp_path, prefix="a/b")
    with pytest.raises(DataError, match=r"no TFRecord files match '.*nothing-\*\.tfrecord'"):
        read_tfrecords(str(tmp_path / "nothing-*.tfrecord"))


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "erlrestore.cli.tfrecords", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_cli_writes_shards_and_rejects_bad_flags(rain_pairs, tmp_path):
    folder = tmp_path / "set"
    result = run_cli(f"--input_dir={folder}", f"--output_dir={tmp_path / 'out'}", "--num_shards=3", "--prefix=rain")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == f"pairs=5 shards=3 output_dir={tmp_path / 'out'}"
    got = by_name(read_tfrecords(tmp_path / "out" / "rain-*", with_names=True))
    np.testing.assert_array_equal(got["rain-002.png"][1], read_image(rain_pairs[1].target_path))

    bad = run_cli(f"--input_dir={folder}", f"--output_dir={tmp_path / 'out2'}", "--num_shards=0")
    assert bad.returncode != 0
    assert "--num_shards must be >= 1, got 0" in bad.stderr
    assert not (tmp_path / "out2").exists()


def test_rewrite_replaces_shards_and_warns_about_stale_ones(rain_pairs, tmp_path, caplog):
    out = tmp_path / "out"
    write_tfrecords(rain_pairs, out, num_shards=3)
    write_tfrecords(rain_pairs[:1], out, num_shards=3)
    assert len(list(read_tfrecords(out))) == 1  # same names: replaced
    with caplog.at_level("WARNING"):
        write_tfrecords(rain_pairs, out, num_shards=2)
    assert "already holds 3 other shard(s) with prefix 'pairs'" in caplog.text
