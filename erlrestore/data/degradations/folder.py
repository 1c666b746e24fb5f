"""Paired folder synthesis behind ``erlrestore-synth``: clean images in, ``input/`` + ``target/`` out."""

import os

import numpy as np
import tensorflow as tf

from erlrestore.data import image_files
from erlrestore.data.degradations.common import _check_int
from erlrestore.data.degradations.procedural import _procedural_image
from erlrestore.data.degradations.registry import make_degradation
from erlrestore.data.image_files import DataError
from erlrestore.progress import progress

# synthesize_folder: copy k of image i uses the seed (seed, i * MAX_COPIES + k).
MAX_COPIES = 10_000


def derive_seed(seed, index, copy=0):
    """The stateless seed ``[seed, index * MAX_COPIES + copy]`` of copy ``copy`` of image ``index``.

    A given image and copy gets the same degradation whatever the number of
    copies requested, so a run with more copies extends a smaller one.
    """
    if not 0 <= copy < MAX_COPIES:
        raise ValueError(f"copy must be in [0, {MAX_COPIES}), got {copy}")
    return np.array([seed, index * MAX_COPIES + copy], dtype=np.int64)


def _check_output_dir(output_dir, overwrite):
    if os.path.exists(output_dir):
        if not os.path.isdir(output_dir):
            raise DataError(f"output folder {output_dir} exists and is not a folder")
        entries = os.listdir(output_dir)
        if entries and not overwrite:
            raise DataError(
                f"output folder {output_dir} is not empty ({len(entries)} entries); choose an empty "
                "folder or pass overwrite=True (--overwrite) to write into it"
            )


def _clean_sources(clean_dir, procedural, size, seed):
    """(names, loader) where loader(i) returns clean image i."""
    if (clean_dir is None) == (not procedural):
        raise ValueError("give exactly one of clean_dir and procedural (a number of images > 0)")
    if clean_dir is not None:
        paths = image_files.list_images(clean_dir)
        stems = {}
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            if stem in stems:
                raise DataError(
                    f"{stems[stem]} and {path} have the same name stem {stem!r}; both would be "
                    f"written as {stem}.png"
                )
            stems[stem] = path
        return list(stems), lambda i: image_files.read_image(paths[i])
    count = _check_int("procedural", procedural, 1)
    height, width = size
    _check_int("height", height, 1)
    _check_int("width", width, 1)
    digits = max(4, len(str(count - 1)))
    names = [f"procedural_{i:0{digits}d}" for i in range(count)]
    return names, lambda i: _procedural_image(seed, i, height, width)


def synthesize_folder(output_dir, degradation, *, clean_dir=None, procedural=0, size=(256, 256),
                      params=None, seed=0, copies=1, overwrite=False, bit_depth=8,
                      show_progress=True):
    """Writes a paired data set in the ``folders`` layout and returns its pairs.

    For every clean image (the images of ``clean_dir``, or ``procedural``
    generated ones of ``size = (height, width)``) and every copy ``k`` it
    writes ``output_dir/target/<name>.png`` (the clean image) and
    ``output_dir/input/<name>.png`` (the degraded one), where ``<name>`` is
    the clean file's stem, or ``<stem>_<k>`` (k zero-padded, from 0) when
    ``copies > 1``. Copy ``k`` of image ``i`` (in sorted file order) uses
    the seed :func:`derive_seed` ``(seed, i, k)``; procedural image ``i`` is
    ``procedural_images(..., seed)[i]``.

    Args:
      output_dir: destination folder; created if missing. A non-empty folder
        raises DataError unless ``overwrite`` (then files with the same names
        are replaced and other files are left alone).
      degradation: a name in DEGRADATIONS.
      clean_dir / procedural: the clean source (exactly one).
      size: (height, width) of procedural images.
      params: degradation parameters (see make_degradation).
      seed: non-negative integer base seed.
      copies: degraded variants per clean image (1 to MAX_COPIES).
      bit_depth: 8 or 16 bits per channel in the PNGs.
      show_progress: draw a progress bar on stderr.

    Returns:
      The list of ``(input_path, target_path)`` written, in order.

    Raises:
      ValueError for bad arguments (unknown degradation or parameter), and
      DataError (naming the file or folder) for unreadable clean images,
      clashing names or a non-empty output folder.
    """
    output_dir = os.fspath(output_dir)
    seed = _check_int("seed", seed, 0)
    copies = _check_int("copies", copies, 1)
    if copies > MAX_COPIES:
        raise ValueError(f"copies must be <= {MAX_COPIES}, got {copies}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    degrade = make_degradation(degradation, **(params or {}))
    names, load = _clean_sources(clean_dir, procedural, size, seed)
    _check_output_dir(output_dir, overwrite)

    # One trace for all image sizes; the seed is a tensor so it never retraces.
    graph_fn = tf.function(
        degrade,
        input_signature=[
            tf.TensorSpec([None, None, 3], tf.float32),
            tf.TensorSpec([2], tf.int64),
        ],
    )
    input_dir = os.path.join(output_dir, "input")
    target_dir = os.path.join(output_dir, "target")
    os.makedirs(input_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    digits = len(str(copies - 1))
    written = []
    items = range(len(names))
    if show_progress:
        items = progress(items, total=len(names), desc=f"synth {degradation}")
    for i in items:
        clean = load(i)
        for k in range(copies):
            name = names[i] if copies == 1 else f"{names[i]}_{k:0{digits}d}"
            degraded = graph_fn(tf.constant(clean), tf.constant(derive_seed(seed, i, k))).numpy()
            input_path = os.path.join(input_dir, name + ".png")
            target_path = os.path.join(target_dir, name + ".png")
            image_files.write_image(target_path, clean, bit_depth)
            image_files.write_image(input_path, degraded, bit_depth)
            written.append((input_path, target_path))
    return written
