"""The x8 self-ensemble: an image restored in its 8 flips and rotations, the outputs averaged.

x8 self-ensemble (``self_ensemble=True`` of
:func:`erlrestore.inference.restore_tiled`; :func:`self_ensemble`,
:data:`ENSEMBLE_TRANSFORMS`), the geometric ensemble of EDSR/RCAN
(``forward_x8``): the model restores the 8 flips/rotations of the image (the
identity, rotations by 90, 180 and 270 degrees, and the same four after a
horizontal flip), each output is transformed back and the 8 are averaged.
Choices made here:

* With tiling, the WHOLE tiled restoration is ensembled (not each tile):
  each of the 8 transformed images is tiled on its own, with tiles aligned
  to the transformed image's origin as for any image, and restored exactly
  as :func:`erlrestore.inference.restore_tiled` would restore it; the 8 results are transformed
  back and averaged. The result is therefore the ensemble of the 8
  whole-image restorations wherever tiling itself equals the whole-image
  restoration (:mod:`erlrestore.inference.tiling`), and a U-Net's down-sampling grid
  stays anchored to each transformed image's corner, as it would be without
  tiling. (Ensembling each tile instead would anchor a flipped tile's grid
  at the tile's far edge, which is not on the transformed image's grid.)
  Rotations swap height and width, so a non-square image gives tiles of
  the swapped shape for four of the transforms.
* An image no larger than ``tile`` in both sides is restored in one call
  per transform, the transforms of equal shape batched ``tile_batch`` at a
  time (4 + 4 for a non-square image).
* Each transform's output is clipped to [0, 1] (every restorer output is)
  before the average, and the average is accumulated in float32 in the
  order of :data:`ENSEMBLE_TRANSFORMS`. It costs 8 times the model calls;
  the extra memory is two ``H x W x 3`` float32 images (the transformed
  input and the running sum) beside one tiled restoration.
"""

import numpy as np

from erlrestore.inference.checks import check_image, run_restorer

# (horizontal flip first?, quarter turns counter-clockwise) of each transform:
# the identity, the three rotations, and the same four after a horizontal flip.
ENSEMBLE_TRANSFORMS = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def transform_image(image, transform, axes=(0, 1)):
    """``image`` flipped horizontally (when ``transform[0]``), then rotated by ``transform[1]`` quarter turns.

    ``axes`` are the (height, width) axes: ``(0, 1)`` for ``H x W x C``,
    ``(1, 2)`` for a ``[B, H, W, C]`` batch. Returns a view.
    """
    flip, turns = transform
    if flip:
        image = np.flip(image, axis=axes[1])
    return np.rot90(image, turns, axes=axes)


def untransform_image(image, transform, axes=(0, 1)):
    """The inverse of :func:`transform_image`: ``untransform_image(transform_image(x, t), t) == x``."""
    flip, turns = transform
    image = np.rot90(image, -turns, axes=axes)
    if flip:
        image = np.flip(image, axis=axes[1])
    return image


def self_ensemble(restore, image):
    """The x8 self-ensemble of ``restore`` on one ``H x W x 3`` image (module docstring).

    Args:
      restore: a function from one ``h x w x 3`` float32 image to the
        restored image of the same shape (it is called with ``h x w`` and
        with ``w x h`` images).
      image: the degraded image.

    Returns:
      float32 ``H x W x 3``: the mean over :data:`ENSEMBLE_TRANSFORMS` of
      ``untransform_image(restore(transform_image(image, t)), t)``.

    Raises:
      ValueError when ``restore`` changes a transformed image's shape.
    """
    image = check_image(image)
    total = np.zeros(image.shape, dtype=np.float32)
    for transform in ENSEMBLE_TRANSFORMS:
        moved = np.ascontiguousarray(transform_image(image, transform))
        restored = np.asarray(restore(moved), dtype=np.float32)
        if restored.shape != moved.shape:
            raise ValueError(
                f"self-ensemble: restoring a transformed image of shape {moved.shape} gave shape {restored.shape}"
            )
        total += untransform_image(restored, transform)
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total


def ensemble_in_one_call(restorer, image, tile_batch, on_tiles=None):
    """:func:`self_ensemble` of an image that fits one tile, equal-shape transforms batched."""
    total = np.zeros(image.shape, dtype=np.float32)
    groups = {}
    for transform in ENSEMBLE_TRANSFORMS:
        groups.setdefault(transform[1] % 2, []).append(transform)
    for transforms in groups.values():
        for start in range(0, len(transforms), tile_batch):
            chunk = transforms[start : start + tile_batch]
            batch = np.stack([transform_image(image, t) for t in chunk])
            for transform, restored in zip(chunk, run_restorer(restorer, batch)):
                total += untransform_image(np.clip(restored, 0.0, 1.0), transform)
            if on_tiles is not None:
                on_tiles(len(chunk))
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total
