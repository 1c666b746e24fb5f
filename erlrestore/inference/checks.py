"""Argument checks shared by the tiling, working-scale, ensemble and file modules of :mod:`erlrestore.inference`."""

import numpy as np


def check_int(value, name, minimum):
    """``value`` as an int when it is an integer (not a bool) >= ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_image(image):
    """``image`` as a contiguous float32 ``H x W x 3`` array; ValueError for another shape or an empty image."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def run_restorer(restorer, batch):
    """``restorer(batch)`` as float32; ValueError when the restorer changed the batch's shape."""
    output = np.asarray(restorer(batch), dtype=np.float32)
    if output.shape != batch.shape:
        raise ValueError(f"the restorer turned a batch of shape {batch.shape} into shape {output.shape}")
    return output
