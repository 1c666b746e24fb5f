"""What a pair is: the :class:`Pair` record, the layouts and half orders, and :func:`load_pair`.

:func:`load_pair` decodes a pair into two aligned float32 arrays: it splits
side-by-side images, applies the RESIDE SOTS border and refuses pairs whose
sizes differ (see :mod:`erlrestore.data.pairing`).
"""

import dataclasses
import os

import numpy as np

from erlrestore.data.image_files import DataError, read_image

LAYOUTS = ("auto", "folders", "one_folder", "reside", "side_by_side")
PAIR_ORDERS = ("input_left", "target_left")


@dataclasses.dataclass(frozen=True)
class Pair:
    """One degraded/clean pair of files.

    Attributes:
      input_path: the degraded image.
      target_path: the clean image (the same file for side-by-side images).
      side_by_side: "" for two files, or "input_left" / "target_left" when one
        file holds both halves.
      target_border: crop this many pixels from every side of the target when,
        and only when, it is exactly ``2 * target_border`` larger than the
        input in both height and width (RESIDE SOTS-indoor).
    """

    input_path: str
    target_path: str
    side_by_side: str = ""
    target_border: int = 0

    @property
    def name(self) -> str:
        """A short display key: the input file's name (unique within a pair list)."""
        return os.path.basename(self.input_path)


def load_pair(pair):
    """Decodes ``pair`` into (input, target) float32 RGB arrays of equal size.

    Side-by-side images are split into halves (an odd width is a DataError
    naming the file). A target exactly ``2 * pair.target_border`` larger than
    the input in height and width is cropped by that border on every side
    (RESIDE SOTS-indoor); any other size difference is a DataError naming both
    files and both sizes.
    """
    if pair.side_by_side:
        if pair.side_by_side not in PAIR_ORDERS:
            raise DataError(
                f"{pair.input_path}: unknown side_by_side order {pair.side_by_side!r} "
                f"(choose one of {', '.join(PAIR_ORDERS)})"
            )
        image = read_image(pair.input_path)
        height, width = image.shape[:2]
        if width % 2:
            raise DataError(
                f"side-by-side image {pair.input_path} has odd width {width} "
                f"({width}x{height}); cannot split it into two equal halves"
            )
        left, right = image[:, : width // 2], image[:, width // 2 :]
        if pair.side_by_side == "input_left":
            return np.ascontiguousarray(left), np.ascontiguousarray(right)
        return np.ascontiguousarray(right), np.ascontiguousarray(left)

    inp = read_image(pair.input_path)
    tgt = read_image(pair.target_path)
    (ih, iw), (th, tw) = inp.shape[:2], tgt.shape[:2]
    b = pair.target_border
    if b and (th, tw) == (ih + 2 * b, iw + 2 * b):
        tgt = np.ascontiguousarray(tgt[b : th - b, b : tw - b])
    elif (th, tw) != (ih, iw):
        raise DataError(
            f"size mismatch: input {pair.input_path} is {iw}x{ih} but target {pair.target_path} "
            f"is {tw}x{th} (width x height)"
        )
    return inp, tgt
