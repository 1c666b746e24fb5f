"""Benchmark rain masks for mIoR / mIoB (ERL-Net Table 4): the mask file of each pair, and reading one.

:func:`rain_mask_paths` finds the mask of each image pair in a folder and
:func:`read_rain_mask` reads one as a map that is True where rain is. They
give :func:`erlrestore.evaluation.compare_models` its ``rain_masks``; both
are re-exported by :mod:`erlrestore.evaluation`.
"""

import collections
import os
import re

from erlrestore.data import image_files

_NUMBER = re.compile(r"\d+")


def _first_number(stem):
    """The first run of digits in a file stem, as an int (``rain-001x2`` -> 1), or None."""
    match = _NUMBER.search(stem)
    return int(match.group()) if match else None


def rain_mask_paths(pairs, mask_dir):
    """The rain mask file of each pair, from the images directly inside ``mask_dir``.

    ERL-Net's Table 4 uses the benchmark's own binary rain masks where they
    are shipped (Rain100H) instead of thresholded ``|rainy - clean|`` maps.
    For each pair, the first rule that finds a mask wins:

    1. a mask with the degraded image's stem (``rain-001.png`` -> ``rain-001.*``);
    2. a mask with the clean image's stem (``norain-001.png`` -> ``norain-001.*``);
    3. a mask with the same number: the first run of digits of the stem,
       compared as an integer, of the degraded image (else the clean image),
       so ``rain-001.png`` and ``norain-001x2.png`` both pair with
       ``rainmask-001.png``, ``rainregion-1.png`` or ``001.png``.

    A rule that finds two masks (same stem with two extensions, or two masks
    with one number) is an error rather than a guess, and so is a pair with no
    mask; both name the files. The pairs' own degraded and clean images are
    never masks, so ``mask_dir`` may be a folder that also holds the images
    (Rain100H's training folder holds ``rain-1``, ``norain-1``,
    ``rainregion-1`` and ``rainstreak-1``; there the two numbered candidates
    are reported as ambiguous: put the masks in a folder of their own).

    Returns:
      One path per pair, in pair order.

    Raises:
      DataError naming ``mask_dir`` and the image without a mask (or the
      competing masks); ``mask_dir`` itself must be a folder of images.
    """
    images = {os.path.realpath(path) for pair in pairs for path in (pair.input_path, pair.target_path)}
    masks = [path for path in image_files.list_images(mask_dir) if os.path.realpath(path) not in images]
    if not masks:
        raise image_files.DataError(f"{mask_dir} holds no rain masks, only the evaluated images")
    by_stem, by_number = collections.defaultdict(list), collections.defaultdict(list)
    for path in masks:
        stem = os.path.splitext(os.path.basename(path))[0]
        by_stem[stem].append(path)
        number = _first_number(stem)
        if number is not None:
            by_number[number].append(path)

    def stem_of(path):
        return os.path.splitext(os.path.basename(path))[0]

    def one(found, pair, rule):
        if len(found) > 1:
            raise image_files.DataError(
                f"rain masks {' and '.join(found)} both match {pair.input_path} ({rule}); "
                f"keep one of them in {mask_dir}"
            )
        return found[0]

    result = []
    for pair in pairs:
        input_stem, clean_stem = stem_of(pair.input_path), stem_of(pair.target_path)
        if by_stem.get(input_stem):
            result.append(one(by_stem[input_stem], pair, f"name {input_stem!r}"))
            continue
        if by_stem.get(clean_stem):
            result.append(one(by_stem[clean_stem], pair, f"name {clean_stem!r}"))
            continue
        numbers = [n for n in (_first_number(input_stem), _first_number(clean_stem)) if n is not None]
        number = next((n for n in numbers if by_number.get(n)), None)
        if number is None:
            wanted = f"{input_stem!r} or {clean_stem!r}" if clean_stem != input_stem else repr(input_stem)
            numbered = f" or numbered {numbers[0]}" if numbers else ""
            raise image_files.DataError(
                f"no rain mask for {pair.input_path} in {mask_dir}: looked for a mask named {wanted}{numbered}"
            )
        result.append(one(by_number[number], pair, f"number {number}"))
    return result


def read_rain_mask(path, shape):
    """A binary rain mask (BMR) from an image file: True where rain.

    The file is read as float in [0, 1] (any bit depth; grey, RGB or RGBA,
    alpha dropped), turned grey as the mean of its channels, and a pixel is
    rain where that value is > 0.5 (so 0/255 and 0/1 masks both work); the
    background map (BMB) is the complement.

    Args:
      path: the mask file.
      shape: ``(height, width)`` of the images it belongs to.

    Raises:
      DataError naming ``path`` when it cannot be read, or when its size is
      not ``shape``.
    """
    mask = image_files.read_image(path)
    if mask.shape[:2] != tuple(shape[:2]):
        raise image_files.DataError(
            f"rain mask {path} is {mask.shape[1]}x{mask.shape[0]} (width x height), but its images are "
            f"{shape[1]}x{shape[0]}"
        )
    return mask.mean(axis=-1) > 0.5
