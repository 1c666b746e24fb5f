"""TFRecord shards of image pairs, for large training sets.

Storage format (one ``tf.train.Example`` per pair; lossless):

=====================  ======  ==============================================
feature                type    content
=====================  ======  ==============================================
``name``               bytes   the pair's name (``Pair.name``)
``height``, ``width``  int64   size of both images (equal after ``load_pair``)
``input``              bytes   input image, PNG, RGB
``target``             bytes   target image, PNG, RGB
``input_bit_depth``    int64   8 or 16: bit depth of the ``input`` PNG
``target_bit_depth``   int64   8 or 16: bit depth of the ``target`` PNG
=====================  ======  ==============================================

Images are stored *after* :func:`erlrestore.data.pairing.load_pair`, i.e.
with all layout conventions applied (side-by-side split, RESIDE border
crop), so shards need no pairing logic when read. An image whose float
pixels are all exactly ``k / 255`` (every 8-bit source: PNG, JPEG, BMP) is
stored as an 8-bit PNG and reads back bit-exactly; anything else (16-bit
sources) is stored as a 16-bit PNG, exact for 16-bit sources and quantised
to 1/65535 otherwise. PNG rather than raw float keeps shards about as small
as the source files.

Shards are named ``<prefix>-00000-of-00004.tfrecord``; pairs are assigned
to shards in contiguous blocks of near-equal size (reading interleaves
shards, which mixes them again). Each shard is written to
``<name>.tmp`` and renamed when complete, so a crashed run never leaves a
truncated file under a final name.
"""

import concurrent.futures
import glob
import os

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from erlrestore.data.image_files import DataError
from erlrestore.data.pairing import load_pair
from erlrestore.progress import progress

AUTOTUNE = tf.data.AUTOTUNE

__all__ = ["write_tfrecords", "read_tfrecords", "shard_names", "encode_png", "parse_example"]

_FEATURES = {
    "name": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "input": tf.io.FixedLenFeature([], tf.string),
    "target": tf.io.FixedLenFeature([], tf.string),
    "input_bit_depth": tf.io.FixedLenFeature([], tf.int64),
    "target_bit_depth": tf.io.FixedLenFeature([], tf.int64),
}


def shard_names(prefix, num_shards):
    """File names of ``num_shards`` shards: ``<prefix>-00000-of-0000N.tfrecord``."""
    return [f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord" for i in range(num_shards)]


def encode_png(rgb, what="image"):
    """Encodes a float32 HxWx3 [0, 1] image as PNG bytes; returns (bytes, bit_depth).

    8-bit when every value is exactly ``k / 255`` in float32 (so decoding
    and dividing by 255 gives the same floats back), 16-bit otherwise.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(f"{what}: expected an HxWx3 image, got shape {rgb.shape}")
    if not np.isfinite(rgb).all() or rgb.min(initial=0.0) < 0.0 or rgb.max(initial=0.0) > 1.0:
        raise DataError(f"{what}: pixel values must be finite and in [0, 1]")
    as8 = np.rint(rgb * 255.0).astype(np.uint8)
    if np.array_equal(as8.astype(np.float32) / np.float32(255.0), rgb):
        pixels, depth = as8, 8
    else:
        pixels, depth = np.rint(rgb.astype(np.float64) * 65535.0).astype(np.uint16), 16
    ok, data = cv2.imencode(".png", np.ascontiguousarray(pixels[..., ::-1]))
    if not ok:
        raise DataError(f"{what}: PNG encoding failed")
    return data.tobytes(), depth


def _bytes_feature(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def _serialize_pair(pair):
    """Loads and encodes one pair; returns the serialized Example."""
    inp, tgt = load_pair(pair)
    what = f"pair {pair.name!r} (input {pair.input_path}, target {pair.target_path})"
    if inp.shape != tgt.shape:
        raise DataError(
            f"{what}: input is {inp.shape[0]}x{inp.shape[1]} but target is "
            f"{tgt.shape[0]}x{tgt.shape[1]} (HxW)"
        )
    inp_png, inp_depth = encode_png(inp, f"{what} input")
    tgt_png, tgt_depth = encode_png(tgt, f"{what} target")
    example = tf.train.Example(
        features=tf.train.Features(
            feature={
                "name": _bytes_feature(str(pair.name).encode()),
                "height": _int_feature(inp.shape[0]),
                "width": _int_feature(inp.shape[1]),
                "input": _bytes_feature(inp_png),
                "target": _bytes_feature(tgt_png),
                "input_bit_depth": _int_feature(inp_depth),
                "target_bit_depth": _int_feature(tgt_depth),
            }
        )
    )
    return example.SerializeToString()


def write_tfrecords(pairs, output_dir, *, num_shards=4, prefix="pairs", workers=None):
    """Writes ``pairs`` into ``num_shards`` TFRecord shards in ``output_dir``.

    Pairs are decoded with ``load_pair`` and PNG-encoded by a small thread
    pool (OpenCV releases the GIL) and written in order. Shards hold
    contiguous blocks of near-equal size; if ``num_shards`` exceeds the
    number of pairs, the extra shards are written empty (still valid).
    Existing shards of the same names are replaced; other shards with the
    same prefix (say from an earlier run with another ``num_shards``) are
    left alone, with a logged warning.

    Args:
      pairs: sequence of ``Pair``.
      output_dir: created if missing.
      num_shards: number of shard files (>= 1).
      prefix: file-name prefix (no path separators).
      workers: decode/encode threads (default: min(4, CPU count)).

    Returns:
      The list of shard paths written.
    """
    pairs = list(pairs)
    if not pairs:
        raise DataError("no image pairs to write")
    num_shards = int(num_shards)
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if not prefix or os.sep in prefix or (os.altsep and os.altsep in prefix):
        raise ValueError(f"prefix must be a plain file-name prefix, got {prefix!r}")
    os.makedirs(output_dir, exist_ok=True)
    workers = workers or min(4, os.cpu_count() or 1)

    paths = [os.path.join(output_dir, name) for name in shard_names(prefix, num_shards)]
    existing = glob.glob(
        os.path.join(glob.escape(os.fspath(output_dir)), f"{glob.escape(prefix)}-*-of-*.tfrecord")
    )
    stale = sorted(set(existing) - set(paths))
    if stale:
        logging.warning(
            "%s already holds %d other shard(s) with prefix %r (e.g. %s); a glob over the prefix "
            "would read them too", output_dir, len(stale), prefix, os.path.basename(stale[0]),
        )
    bounds = [round(i * len(pairs) / num_shards) for i in range(num_shards + 1)]
    temps = []
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            records = pool.map(_serialize_pair, pairs)
            records = progress(records, total=len(pairs), desc=f"writing {prefix} shards")
            for shard, path in enumerate(paths):
                temp = path + ".tmp"
                temps.append(temp)
                with tf.io.TFRecordWriter(temp) as writer:
                    for _ in range(bounds[shard + 1] - bounds[shard]):
                        writer.write(next(records))
            next(records, None)  # lets the progress bar finish its line
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)
    return paths


def _decode(png, depth):
    def as_u8():
        return tf.cast(tf.io.decode_png(png, channels=3, dtype=tf.uint8), tf.float32) / 255.0

    def as_u16():
        return tf.cast(tf.io.decode_png(png, channels=3, dtype=tf.uint16), tf.float32) / 65535.0

    return tf.cond(tf.equal(depth, 8), as_u8, as_u16)


def parse_example(serialized, with_names=False):
    """Parses one serialized Example into ``(input, target[, name])`` float32 images."""
    features = tf.io.parse_single_example(serialized, _FEATURES)
    shape = tf.stack([features["height"], features["width"], 3])
    inp = tf.reshape(_decode(features["input"], features["input_bit_depth"]), shape)
    tgt = tf.reshape(_decode(features["target"], features["target_bit_depth"]), shape)
    inp.set_shape([None, None, 3])
    tgt.set_shape([None, None, 3])
    if with_names:
        return inp, tgt, features["name"]
    return inp, tgt


def _shard_files(pattern):
    pattern = os.fspath(pattern)
    if tf.io.gfile.isdir(pattern):
        pattern = os.path.join(pattern, "*.tfrecord")
    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise DataError(f"no TFRecord files match {pattern!r}")
    return files


def read_tfrecords(pattern, *, with_names=False, deterministic=True):
    """A dataset of full-size ``(input, target)`` (``+ name``) from shards.

    ``pattern`` is a glob or a directory (all ``*.tfrecord`` in it). Shards
    are read with a parallel interleave (one record from each shard in
    turn) and decoded in parallel; ``deterministic`` keeps that order fixed.
    """
    files = _shard_files(pattern)
    ds = tf.data.Dataset.from_tensor_slices(files)
    ds = ds.interleave(
        tf.data.TFRecordDataset,
        cycle_length=min(len(files), 16),
        block_length=1,
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
    return ds.map(
        lambda record: parse_example(record, with_names),
        num_parallel_calls=AUTOTUNE,
        deterministic=deterministic,
    )
