"""Scene depth recovered from a RESIDE hazy / clean pair, for depth-aware synthetic rain and haze.

RESIDE renders its outdoor haze with the atmospheric scattering model ::

    I = J t + A (1 - t),    t = exp(-beta d)

from a clean photo ``J``, an (estimated) depth map ``d``, a global airlight
``A`` and a scattering coefficient ``beta``; the outdoor sets put ``A`` and
``beta`` in the hazy file's name (``0023_0.85_0.12.jpg``: A = 0.85,
beta = 0.12). With both images the model can be inverted per pixel:
``t = (I - A) / (J - A)`` and ``d = -ln(t) / beta``. That gives back the depth
RESIDE used, in its own units, which :mod:`erlrestore.data.degradations.dense_rain`
takes as a real depth map (``depth=``).

The inversion is only well posed where the clean colour differs from the
airlight; the stored pairs are also resized and JPEG-compressed (dehaze-train:
0.75x, quality 92), so :func:`recover_depth` is robust rather than exact:

1. ``t`` per pixel is the least-squares ratio over the channels whose
   ``|J - A|`` is at least ``min_contrast`` (the per-channel ratios
   ``(I - A) / (J - A)`` averaged with weights ``(J - A)^2``, so the
   channels that constrain ``t`` best count most);
2. ``t`` is clipped to ``[min_transmission, 1]`` (depth 0 to
   ``-ln(min_transmission) / beta``);
3. pixels without a usable channel (``J`` close to ``A``: often sky) are holes,
   filled with the median of their already known neighbours, growing
   inwards from the hole's border;
4. a 5x5 median filter removes JPEG speckle and a Gaussian (``smooth`` px)
   smooths what is left.

NumPy and OpenCV, for preparing data (not inside a TensorFlow graph).
"""

import math
import os
import re

import cv2
import numpy as np

from erlrestore.data import image_files
from erlrestore.data.image_files import DataError

__all__ = ["reside_haze_params", "recover_depth", "reside_depth"]

# RESIDE outdoor hazy names: <id>_<airlight>_<beta>.<ext>.
_HAZY_NAME = re.compile(r"^(\d+)_(\d+(?:\.\d*)?)_(\d+(?:\.\d*)?)$")

# SOTS-indoor keeps a 10 px border of the clean image that the hazy one lacks.
_INDOOR_BORDER = 10


def reside_haze_params(path):
    """``(airlight, beta)`` from a RESIDE outdoor hazy file name such as ``0023_0.85_0.12.jpg``.

    Raises DataError naming the file when the name does not carry them (the
    indoor ``1400_3.png`` names and the few outdoor files named by their id
    only): give ``airlight`` and ``beta`` yourself then.
    """
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    match = _HAZY_NAME.match(stem)
    if not match:
        raise DataError(
            f"{path}: the name does not carry RESIDE's airlight and beta (expected <id>_<A>_<beta>, e.g. "
            "0023_0.85_0.12.jpg); pass airlight= and beta="
        )
    return float(match.group(2)), float(match.group(3))


def _fill_holes(depth, known):
    """``depth`` with the pixels where ``known`` is False set to the median of their known 3x3 neighbours.

    Repeated until no hole is left, so a hole is filled from its border
    inwards; every pass uses only values known before it.
    """
    filled = np.where(known, depth, np.nan)
    height, width = filled.shape
    while True:
        holes = np.flatnonzero(np.isnan(filled))
        if holes.size == 0:
            return filled
        padded = np.pad(filled, 1, constant_values=np.nan)
        rows, cols = np.divmod(holes, width)
        neighbours = np.stack([padded[rows + dy, cols + dx] for dy in range(3) for dx in range(3)], axis=1)
        reachable = ~np.all(np.isnan(neighbours), axis=1)
        if not reachable.any():  # cannot happen while one pixel is known; kept as a guard
            raise DataError("no pixel of the pair constrains the depth")
        filled.flat[holes[reachable]] = np.nanmedian(neighbours[reachable], axis=1)


def recover_depth(hazy, clean, airlight, beta, *, min_contrast=0.1, min_transmission=0.02, smooth=1.5,
                  return_known=False):
    """The depth map ``d`` of ``hazy = clean t + airlight (1 - t)``, ``t = exp(-beta d)``.

    Args:
      hazy, clean: float ``[H, W, 3]`` RGB arrays in [0, 1] of the same size.
      airlight: the global airlight ``A``, a number or one per channel.
      beta: the scattering coefficient (> 0) the hazy image was made with;
        the depth comes out in the units beta is per.
      min_contrast: a channel constrains ``t`` where ``|clean - A|`` is at
        least this (0-1 scale); pixels without such a channel are holes.
      min_transmission: ``t`` is clipped to ``[min_transmission, 1]``, so the
        depth lies in ``[0, -ln(min_transmission) / beta]``.
      smooth: sigma (pixels) of the final Gaussian smoothing (0: none).
      return_known: also return the bool ``[H, W]`` mask of the pixels
        measured directly (the others were filled).

    Returns float32 ``[H, W]`` (and the mask). Raises ValueError for
    mismatched shapes or bad arguments and DataError when no pixel has a
    usable channel (the clean image is the airlight's colour everywhere).
    See the module docstring for the method.
    """
    hazy = np.asarray(hazy, np.float64)
    clean = np.asarray(clean, np.float64)
    if hazy.ndim != 3 or hazy.shape[-1] != 3 or hazy.shape != clean.shape:
        raise ValueError(f"hazy and clean must be [H, W, 3] images of one size, got shapes {hazy.shape} and "
                         f"{clean.shape}")
    airlight = np.broadcast_to(np.asarray(airlight, np.float64), (3,))
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a positive number, got {beta!r}")
    if not 0 < min_transmission < 1:
        raise ValueError(f"min_transmission must be in (0, 1), got {min_transmission!r}")
    if not min_contrast > 0:
        raise ValueError(f"min_contrast must be > 0, got {min_contrast!r}")
    scene = clean - airlight
    seen = hazy - airlight
    weight = np.where(np.abs(scene) >= min_contrast, scene * scene, 0.0)
    total = weight.sum(axis=-1)
    known = total > 0
    if not known.any():
        raise DataError(f"no pixel of the clean image differs from the airlight {airlight.tolist()} by "
                        f"{min_contrast} or more; its depth cannot be recovered")
    # Weighted mean of the per-channel ratios seen / scene with weights scene^2: sum(seen scene) / sum(scene^2).
    ratio = np.where(weight > 0, seen * scene, 0.0).sum(axis=-1) / np.where(known, total, 1.0)
    transmission = np.clip(ratio, min_transmission, 1.0)
    depth = _fill_holes(-np.log(transmission) / beta, known).astype(np.float32)
    depth = cv2.medianBlur(depth, 5)
    if smooth > 0:
        depth = cv2.GaussianBlur(depth, (0, 0), smooth, borderType=cv2.BORDER_REFLECT)
    depth = np.clip(depth, 0.0, -math.log(min_transmission) / beta).astype(np.float32)
    return (depth, known) if return_known else depth


def reside_depth(hazy_path, clean_path, *, airlight=None, beta=None, **kwargs):
    """The depth map of a RESIDE pair of files (:func:`recover_depth`), float32 ``[H, W]`` of the hazy image.

    ``airlight`` and ``beta`` default to the hazy file's name
    (:func:`reside_haze_params`). A clean image 20 px larger on both sides
    (SOTS-indoor) is cropped by 10 px on every side to the hazy one, as
    RESIDE does; other size differences raise DataError naming both files
    and sizes. Further keyword arguments go to :func:`recover_depth`.
    """
    if airlight is None or beta is None:
        name_airlight, name_beta = reside_haze_params(hazy_path)
        airlight = name_airlight if airlight is None else airlight
        beta = name_beta if beta is None else beta
    hazy = image_files.read_image(hazy_path)
    clean = image_files.read_image(clean_path)
    if clean.shape != hazy.shape:
        border = _INDOOR_BORDER
        if clean.shape[0] == hazy.shape[0] + 2 * border and clean.shape[1] == hazy.shape[1] + 2 * border:
            clean = clean[border:-border, border:-border]
        else:
            raise DataError(f"{hazy_path} is {hazy.shape[1]}x{hazy.shape[0]} but {clean_path} is "
                            f"{clean.shape[1]}x{clean.shape[0]} (width x height); a RESIDE pair has one size")
    return recover_depth(hazy, clean, airlight, beta, **kwargs)
