"""PSNR and SSIM exactly as the de-raining literature reports them.

Conventions (SPEC section 3; the same as BasicSR's ``calculate_psnr`` /
``calculate_ssim`` with ``test_y_channel=True``):

* Images are RGB. Float arrays are read as [0, 1]; ``uint8`` as 0-255 and
  ``uint16`` as 0-65535. Everything is moved to the 0-255 scale, so the peak
  value is 255.
* The Y channel is BT.601 studio range (``erlrestore.color.rgb_to_y``), not
  rounded to integers, computed in float64.
* ``crop_border`` pixels are removed from every side before measuring.
* SSIM is Wang et al.'s: an 11x11 Gaussian window with sigma 1.5,
  K1 = 0.01, K2 = 0.03, L = 255, averaged over the *valid* region only (no
  padding). Like BasicSR, and unlike MATLAB's newer ``ssim``, images are not
  down-sampled first.
* A data set's PSNR is the mean of the per-image PSNRs.

``channel="rgb"`` (``y_channel=False``) is what de-noising and de-hazing
papers report, BasicSR's ``calculate_psnr`` / ``calculate_ssim`` with
``test_y_channel=False``: PSNR from the mean squared error over all three
channels together, on the 0-255 scale in float64; SSIM computed on each
channel as above and averaged over the three channels (the same as
scikit-image's ``structural_similarity`` with ``gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1``,
which also averages its valid region). Channel order does not matter to
either number. :func:`psnr_ssim` gives both for one channel choice.

Per-image metrics are looked up by name (:func:`get_metric`): PSNR and SSIM
are the first two rows of that table, and :func:`register_metric` adds one
(LPIPS, NIQE...) that every scoring tool then measures (:func:`measure`).

Two implementations: NumPy (float64, the reference for reported numbers) and
TensorFlow (batched, for validation during training; agrees with NumPy to
about 1e-3 dB and 1e-4 SSIM in float32).
"""

import dataclasses
import math
from typing import Callable

import cv2
import numpy as np
import tensorflow as tf

from erlrestore import color

PEAK = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
# What PSNR/SSIM are measured on: the BT.601 Y channel (the default), or RGB.
CHANNELS = ("y", "rgb")


def to_255(image):
    """``image`` as float64 on the 0-255 scale (see the module docstring for dtypes).

    Float images far outside [0, 1] are refused: they are almost always
    0-255 data passed by mistake, which would silently inflate PSNR by 48 dB.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image.astype(np.float64)
    if image.dtype == np.uint16:
        return image.astype(np.float64) * (PEAK / 65535.0)
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f"images must be float in [0, 1], uint8 or uint16, got dtype {image.dtype}")
    image = image.astype(np.float64)
    if image.size and (np.nanmax(image) > 1.5 or np.nanmin(image) < -0.5):
        raise ValueError(
            "float images must be in [0, 1]; got values in "
            f"[{np.nanmin(image):.3g}, {np.nanmax(image):.3g}] (0-255 data? pass uint8 or divide by 255)"
        )
    return image * PEAK


def _prepare(a, b, crop_border, y_channel):
    """Both images on the 0-255 scale, cropped, as Y (H, W) or RGB (H, W, 3)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"expected RGB images of shape (H, W, 3), got {a.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    a, b = to_255(a), to_255(b)
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise ValueError(f"crop_border={crop_border} leaves nothing of a {a.shape[0]}x{a.shape[1]} image")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if y_channel:
        a, b = color.rgb_to_y(a / PEAK), color.rgb_to_y(b / PEAK)
    return a, b


def is_y_channel(channel):
    """True for ``"y"``, False for ``"rgb"``; ValueError for anything else."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}: choose one of {', '.join(CHANNELS)}")
    return channel == "y"


def psnr(a, b, crop_border=0, y_channel=True):
    """PSNR in dB between RGB images ``a`` and ``b``; ``inf`` when they are equal.

    ``y_channel=False`` measures on all three RGB channels instead of Y.
    """
    return _psnr_prepared(*_prepare(a, b, crop_border, y_channel))


def _psnr_prepared(a, b):
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return math.inf
    return float(10.0 * np.log10(PEAK**2 / mse))


def gaussian_window(size=SSIM_WINDOW, sigma=SSIM_SIGMA):
    """The normalised 1-D Gaussian of Wang et al.'s SSIM (float64, sums to 1)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


def _ssim_single_channel(a, b):
    """Mean SSIM of two 2-D float64 arrays on the 0-255 scale, valid region only."""
    if min(a.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {a.shape}")
    g = gaussian_window()
    half = SSIM_WINDOW // 2

    def blur(x):
        # The Gaussian is symmetric, so OpenCV's correlation is the convolution;
        # cropping ``half`` pixels keeps only windows that lie inside the image.
        return cv2.sepFilter2D(x, cv2.CV_64F, g, g)[half:-half, half:-half]

    c1 = (SSIM_K1 * PEAK) ** 2
    c2 = (SSIM_K2 * PEAK) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(a, b, crop_border=0, y_channel=True):
    """Mean SSIM between RGB images ``a`` and ``b`` (Y channel, or mean over RGB)."""
    return _ssim_prepared(*_prepare(a, b, crop_border, y_channel))


def _ssim_prepared(a, b):
    """SSIM of :func:`_prepare`'s output: one Y plane, or the mean over three channels."""
    if a.ndim == 2:
        return _ssim_single_channel(a, b)
    return float(np.mean([_ssim_single_channel(a[..., c], b[..., c]) for c in range(a.shape[-1])]))


@dataclasses.dataclass(frozen=True)
class Metric:
    """A per-image score, looked up by name (:func:`get_metric`) by the scoring code.

    Attributes:
      name: what the tools call it: ``<name>_<channel>`` on their summary
        line and as a column of the per-image CSV (``psnr_y``).
      compute: ``compute(restored, clean) -> float``, both float64 arrays on
        the 0-255 scale, already cropped (``crop_border``) and reduced to the
        channel measured: an ``(H, W)`` Y plane or ``(H, W, 3)`` RGB. A
        ValueError is an image the metric cannot measure.
      line_decimals, csv_decimals: decimals on the summary line and in the CSV.
    """

    name: str
    compute: Callable
    line_decimals: int = 4
    csv_decimals: int = 6

    def csv_text(self, value):
        """``value`` as the per-image CSV writes it (``csv_decimals`` decimals)."""
        return f"{value:.{self.csv_decimals}f}"


# name -> Metric, in registration order (the order of the tools' columns): PSNR and SSIM, then registered ones.
_METRICS = {
    "psnr": Metric("psnr", _psnr_prepared, line_decimals=4, csv_decimals=6),
    "ssim": Metric("ssim", _ssim_prepared, line_decimals=5, csv_decimals=7),
}
BUILTIN_METRICS = tuple(_METRICS)  # ("psnr", "ssim"): the two every score carries as fields


def register_metric(metric):
    """Adds ``metric`` (a :class:`Metric`) after the others; returns it.

    From then on :func:`erlrestore.scoring.image_score` measures it for every
    image (so do ``erlrestore-metrics`` and ``erlrestore-evaluate``), and the
    summary line and per-image CSV show it after SSIM.

    Raises ValueError for a name already registered or that is not a
    lower-case identifier, TypeError when ``compute`` is not callable.
    """
    if not isinstance(metric, Metric):
        raise TypeError(f"register_metric takes a metrics.Metric, got {type(metric).__name__}")
    if not isinstance(metric.name, str) or not metric.name.isidentifier() or metric.name != metric.name.lower():
        raise ValueError(f"a metric's name is a lower-case identifier (it names columns), got {metric.name!r}")
    if metric.name in _METRICS:
        raise ValueError(f"metric {metric.name!r} is already registered")
    if not callable(metric.compute):
        raise TypeError(f"metric {metric.name!r}: compute must be callable, got {type(metric.compute).__name__}")
    _METRICS[metric.name] = metric
    return metric


def metric_names():
    """The registered metrics' names, ``psnr`` and ``ssim`` first."""
    return tuple(_METRICS)


def get_metric(name):
    """The :class:`Metric` registered as ``name`` (ValueError listing the registered ones)."""
    try:
        return _METRICS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown metric {name!r}; registered: {', '.join(_METRICS)}") from None


def measure(a, b, crop_border=0, channel="y", names=None):
    """``{name: score}`` of one pair on ``channel`` for the metrics ``names`` (default: every registered one).

    The images are prepared once (0-255 scale, cropped, Y or RGB, as the
    module docstring says) and every metric computed on them.
    """
    metrics = [get_metric(name) for name in (metric_names() if names is None else names)]
    a, b = _prepare(a, b, crop_border, is_y_channel(channel))
    return {metric.name: float(metric.compute(a, b)) for metric in metrics}


def psnr_ssim(a, b, crop_border=0, channel="y"):
    """``(PSNR, SSIM)`` of one pair on ``channel`` (``"y"`` or ``"rgb"``), preparing the images once."""
    scores = measure(a, b, crop_border, channel, BUILTIN_METRICS)
    return scores["psnr"], scores["ssim"]


def psnr_rgb(a, b, crop_border=0):
    """PSNR over the three RGB channels (de-noising / de-hazing papers' number)."""
    return psnr(a, b, crop_border=crop_border, y_channel=False)


def ssim_rgb(a, b, crop_border=0):
    """Per-channel SSIM averaged over R, G and B (de-noising / de-hazing papers' number)."""
    return ssim(a, b, crop_border=crop_border, y_channel=False)


def psnr_y(a, b, crop_border=0):
    """PSNR on the BT.601 Y channel (the de-raining literature's number)."""
    return psnr(a, b, crop_border=crop_border, y_channel=True)


def ssim_y(a, b, crop_border=0):
    """SSIM on the BT.601 Y channel (the de-raining literature's number)."""
    return ssim(a, b, crop_border=crop_border, y_channel=True)


# --------------------------------------------------------------------------
# TensorFlow versions, batched, for validation inside training loops.
# --------------------------------------------------------------------------


def _tf_prepare(a, b, crop_border):
    """Batched [B, H, W, 3] images in [0, 1] -> cropped Y differences' inputs."""
    a = tf.convert_to_tensor(a)
    b = tf.convert_to_tensor(b, dtype=a.dtype)
    if not a.dtype.is_floating:
        raise ValueError(f"TF metrics expect float images in [0, 1], got {a.dtype}")
    if a.shape.rank == 3:
        a, b = a[tf.newaxis], b[tf.newaxis]
    if crop_border:
        a = a[:, crop_border:-crop_border, crop_border:-crop_border, :]
        b = b[:, crop_border:-crop_border, crop_border:-crop_border, :]
    return a, b


def psnr_y_tf(a, b, crop_border=0):
    """Per-image Y-channel PSNR, shape [B], for float [B, H, W, 3] images in [0, 1].

    The Y difference is formed from the RGB difference (the offset 16 cancels),
    which keeps float32 precise.
    """
    a, b = _tf_prepare(a, b, crop_border)
    weights = tf.constant(color.Y_WEIGHTS, dtype=a.dtype)
    y_diff = tf.tensordot(a - b, weights, axes=[[-1], [0]])
    mse = tf.reduce_mean(tf.square(y_diff), axis=[1, 2])
    return 10.0 * tf.math.log(tf.cast(PEAK**2, a.dtype) / mse) / tf.math.log(tf.cast(10.0, a.dtype))


def ssim_y_tf(a, b, crop_border=0):
    """Per-image Y-channel SSIM, shape [B], matching :func:`ssim_y`.

    Variances are formed from mean-centred Y values so that float32 does not
    lose them to cancellation (Y^2 reaches 55225 while c2 is only 58.5).
    """
    a, b = _tf_prepare(a, b, crop_border)
    dtype = a.dtype
    ya = color.rgb_to_y_tf(a)[..., tf.newaxis]
    yb = color.rgb_to_y_tf(b)[..., tf.newaxis]
    g = tf.constant(gaussian_window(), dtype=dtype)
    g_rows = tf.reshape(g, [SSIM_WINDOW, 1, 1, 1])
    g_cols = tf.reshape(g, [1, SSIM_WINDOW, 1, 1])

    def blur(x):
        x = tf.nn.conv2d(x, g_rows, strides=1, padding="VALID")
        return tf.nn.conv2d(x, g_cols, strides=1, padding="VALID")

    shift = tf.stop_gradient(tf.reduce_mean(ya, axis=[1, 2, 3], keepdims=True))
    ca, cb = ya - shift, yb - shift
    mu_ca, mu_cb = blur(ca), blur(cb)
    var_a = blur(ca * ca) - mu_ca**2
    var_b = blur(cb * cb) - mu_cb**2
    cov = blur(ca * cb) - mu_ca * mu_cb
    mu_a, mu_b = mu_ca + shift, mu_cb + shift
    c1 = tf.cast((SSIM_K1 * PEAK) ** 2, dtype)
    c2 = tf.cast((SSIM_K2 * PEAK) ** 2, dtype)
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return tf.reduce_mean(ssim_map, axis=[1, 2, 3])


# --------------------------------------------------------------------------
# mIoR / mIoB: where a new model beats a baseline (ERL-Net, ICCV 2019, Eq. 6-8).
# --------------------------------------------------------------------------


def _y_planes(images, names, crop_border=0):
    """Y (H, W) float64 on 0-255 of each RGB image, all of one shape, cropped."""
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    arrays = [np.asarray(image) for image in images]
    shape = arrays[0].shape
    for name, array in zip(names, arrays):
        if array.ndim != 3 or array.shape[-1] != 3:
            raise ValueError(f"expected RGB images of shape (H, W, 3); {name} has shape {array.shape}")
        if array.shape != shape:
            raise ValueError(
                "images differ in shape: "
                + ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
            )
    if crop_border and min(shape[:2]) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {shape[0]}x{shape[1]} image")
    planes = []
    for array in arrays:
        y = color.rgb_to_y(to_255(array) / PEAK)
        if crop_border:
            y = y[crop_border:-crop_border, crop_border:-crop_border]
        planes.append(y)
    return planes


def result_indicator_map(new, baseline, clean, crop_border=0):
    """ERL-Net's result indicator map (RIM, Eq. 6) on the BT.601 Y channel.

    True (the paper's 1) where ``new`` is strictly closer to ``clean`` than
    ``baseline`` is, ``|Y(new) - Y(clean)| < |Y(baseline) - Y(clean)|``;
    False (0) otherwise, ties included (Eq. 6 puts ``>=`` on the 0 side).

    Args:
      new, baseline, clean: RGB images (H, W, 3) of one shape; float in
        [0, 1], uint8 or uint16 as for :func:`psnr`.
      crop_border: pixels removed from every side first.

    Returns:
      A boolean (H, W) array (smaller by ``2 * crop_border`` when cropping).
    """
    y_new, y_base, y_clean = _y_planes((new, baseline, clean), ("new", "baseline", "clean"), crop_border)
    return np.abs(y_new - y_clean) < np.abs(y_base - y_clean)


def rain_maps(degraded, clean, crop_border=0, threshold=None):
    """Binary maps of rain (BMR) and background (BMB) pixels, ERL-Net Sec. 4.3.

    ``d = |Y(degraded) - Y(clean)|`` on the 0-255 Y scale. A pixel is rain
    where ``d > threshold`` and background otherwise, so BMB is exactly
    ``~BMR``. ``threshold=None`` uses the mean of ``d`` over the (cropped)
    image, the paper's choice; a number gives a fixed threshold on the same
    scale (AGAN, Qian et al. 2018, used 30).

    Tie rule (our choice; the paper is silent): a pixel whose difference
    equals the threshold is background. The case that matters in practice is
    a degraded image equal to its clean image: every ``d`` is 0, so is the
    mean, there is no rain pixel and the whole image is background.

    Returns:
      ``(bmr, bmb)``, two boolean (H, W) arrays.
    """
    y_degraded, y_clean = _y_planes((degraded, clean), ("degraded", "clean"), crop_border)
    diff = np.abs(y_degraded - y_clean)
    limit = float(np.mean(diff)) if threshold is None else float(threshold)
    bmr = diff > limit
    return bmr, ~bmr


def iou_rain_background(new, baseline, degraded, clean, crop_border=0, threshold=None, rain_mask=None):
    """One image's IoR and IoB (ERL-Net Eq. 7).

    ``IoR = sum(BMR & RIM) / sum(BMR)`` and ``IoB = sum(BMB & RIM) / sum(BMB)``:
    the share of rain (background) pixels that ``new`` restores better than
    ``baseline`` (see :func:`result_indicator_map` and :func:`rain_maps`).

    An empty region (no rain pixel, e.g. when ``degraded`` equals ``clean``;
    or no background pixel) has no share: its value is ``nan``, never 0 or 1,
    and :func:`miou` leaves it out of the mean.

    Args:
      new, baseline: the two restorations of ``degraded`` (new model, baseline).
      degraded, clean: the degraded input and its clean image; ``degraded``
        is only used for the rain map and may be None with ``rain_mask``.
      crop_border: pixels removed from every side of every image (and mask).
      threshold: rain threshold for :func:`rain_maps` (None: the mean).
      rain_mask: optional (H, W) array, non-zero on rain pixels, used instead
        of thresholding (the paper does this for Rain100H, whose authors
        publish rain masks).

    Returns:
      ``(ior, iob)`` as Python floats in [0, 1] or nan.
    """
    rim = result_indicator_map(new, baseline, clean, crop_border)
    if rain_mask is None:
        if degraded is None:
            raise ValueError("iou_rain_background needs the degraded image or a rain_mask")
        bmr, bmb = rain_maps(degraded, clean, crop_border, threshold)
    else:
        mask = np.asarray(rain_mask)
        if mask.ndim == 3 and mask.shape[-1] == 1:
            mask = mask[..., 0]
        expected = np.asarray(clean).shape[:2]
        if mask.shape != expected:
            raise ValueError(f"rain_mask has shape {mask.shape}, expected {expected} (the images' height, width)")
        if crop_border:
            mask = mask[crop_border:-crop_border, crop_border:-crop_border]
        bmr = mask != 0
        bmb = ~bmr

    def share(region):
        size = int(np.count_nonzero(region))
        return math.nan if size == 0 else int(np.count_nonzero(region & rim)) / size

    return share(bmr), share(bmb)


def miou(values):
    """Data-set mIoR and mIoB (ERL-Net Eq. 8) from per-image ``(IoR, IoB)`` pairs.

    Each is the mean over the images; images whose value is nan (an empty
    region, see :func:`iou_rain_background`) are left out of that mean, and
    the result is nan when every image's value is nan. Raises ValueError for
    no images.
    """
    values = [tuple(v) for v in values]
    if not values:
        raise ValueError("miou needs at least one image's (IoR, IoB)")
    if any(len(v) != 2 for v in values):
        raise ValueError("miou expects (IoR, IoB) pairs")

    def nan_mean(column):
        kept = [float(x) for x in column if not math.isnan(x)]
        return math.fsum(kept) / len(kept) if kept else math.nan

    return nan_mean(v[0] for v in values), nan_mean(v[1] for v in values)
