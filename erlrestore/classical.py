"""Classical (non-learned) restoration baselines: dark-channel-prior de-hazing and CBM3D de-noising.

Every function takes and returns float32 ``H x W x 3`` RGB arrays in
[0, 1], the same convention as the learned models, so their results can be
scored by :mod:`erlrestore.metrics` beside ours (``python -m
tools.classical_baselines``).

* :func:`dark_channel_prior`: He, Sun and Tang, "Single Image Haze Removal
  Using Dark Channel Prior" (CVPR 2009 / TPAMI 2011), with the transmission
  refined by the guided filter of He, Sun and Tang, "Guided Image Filtering"
  (ECCV 2010 / TPAMI 2013) in place of the first paper's soft matting, as
  the second paper proposes. Its building blocks are public:
  :func:`dark_channel`, :func:`atmospheric_light`, :func:`transmission`
  and :func:`guided_filter`.
* :func:`cbm3d`: colour BM3D (Dabov, Foi, Katkovnik and Egiazarian, ICIP
  2007) from the ``bm3d`` package maintained by the BM3D authors' group
  (``pip install bm3d``, or ``pip install -e '.[baselines]'``). We call it;
  we do not implement BM3D. The package is imported only when CBM3D is used.
* :func:`estimate_noise_sigma`: Donoho's robust noise estimate, for running
  CBM3D on noisy photos whose noise level is unknown; ``scale=2`` looks at
  coarser detail, where the correlated noise of real JPEG photos (PolyU) is
  (see its docstring for what each scale measures there).

Only NumPy and OpenCV are needed (no TensorFlow). Inputs are checked:
anything that is not a finite float ``H x W x 3`` array in [0, 1] (within
:data:`RANGE_TOLERANCE`, then clipped) is a ValueError that says what is
wrong; float data that looks like 0-255 is named as such. Noisy images must
be clipped to [0, 1] first, as writing them to an 8- or 16-bit file does
(``erlrestore.data.synthetic``'s noise is clipped already).
"""

import math
import numbers

import cv2
import numpy as np

# Float values this far outside [0, 1] are accepted (and clipped): float32 arithmetic such as
# ``J t + A (1 - t)`` lands a rounding error above 1. Anything further out is refused.
RANGE_TOLERANCE = 1e-5
# BT.601 luma weights (MATLAB's rgb2gray, what He et al.'s code uses to make the grey guide).
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
# Smallest atmospheric light per channel, so that ``I / A`` stays finite on a black image.
MIN_AIRLIGHT = 1e-3
# CBM3D refuses images with a side below this: bm3d 4.0.3 crashed the whole process (segmentation
# fault) on an 8 x 8 image in our tests; 16 leaves a margin over its 8 x 8 blocks.
CBM3D_MIN_SIDE = 16
# Median absolute deviation of a standard normal variable: MAD / 0.6745 estimates sigma.
MAD_TO_SIGMA = 0.6745


# --------------------------------------------------------------------------
# Input checks.
# --------------------------------------------------------------------------


def _check_rgb(image, name="image", min_side=1):
    """``image`` as a float64 ``H x W x 3`` array in [0, 1], or a ValueError saying what is wrong."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"{name} must be an H x W x 3 RGB array, got shape {array.shape}")
    if min(array.shape[:2]) < min_side:
        raise ValueError(f"{name} must be at least {min_side} x {min_side} pixels, got {array.shape[0]} x "
                         f"{array.shape[1]}")
    if not np.issubdtype(array.dtype, np.floating):
        hint = " (8-bit data: divide by 255)" if array.dtype == np.uint8 else ""
        raise ValueError(f"{name} must be float in [0, 1], got dtype {array.dtype}{hint}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    low, high = float(array.min()), float(array.max())
    if high > 1.5:
        raise ValueError(f"{name} must be float in [0, 1], got values up to {high:.4g}: 0-255 data? divide by 255")
    if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE:
        raise ValueError(f"{name} must be float in [0, 1], got values in [{low:.4g}, {high:.4g}] "
                         "(clip noisy images to [0, 1] first)")
    return np.clip(array, 0.0, 1.0)


def _check_real(name, value, low, high, low_open=False, high_open=False):
    """``value`` as a float within ``low``..``high`` (open ends where asked), or a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be in {interval}, got {value:g}")
    return value


def _check_int(name, value, low, odd=False):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if odd and value % 2 == 0:
        raise ValueError(f"{name} must be odd (a window centred on each pixel), got {value}")
    return value


# --------------------------------------------------------------------------
# Guided filter.
# --------------------------------------------------------------------------


def _window_mean(x, radius, count):
    """Mean of ``x`` over the ``(2 radius + 1)^2`` window of each pixel, the window clipped at the border."""
    side = 2 * radius + 1
    total = cv2.boxFilter(x, cv2.CV_64F, (side, side), normalize=False, borderType=cv2.BORDER_CONSTANT)
    return total / count


def guided_filter(guide, source, radius, eps):
    """The guided filter of He, Sun and Tang (ECCV 2010 / TPAMI 2013, Algorithm 1) with a grey guide.

    In every ``(2 radius + 1) x (2 radius + 1)`` window the output is a
    linear function of the guide, ``q = a I + b``, fitted to the source
    ``p`` by least squares with ridge ``eps`` on ``a``:
    ``a = cov(I, p) / (var(I) + eps)``, ``b = mean(p) - a mean(I)``; each
    pixel's output averages the ``(a, b)`` of all windows that cover it. So
    it smooths ``p`` where the guide is flat (variance much below ``eps``)
    and keeps the guide's edges where its variance is much above ``eps``.
    A constant guide gives ``a = 0`` and the box mean of ``p`` taken twice;
    ``guide == source`` with ``eps`` near 0 returns the source.

    Choices the papers leave to the implementation, made here:

    * Means are over the part of each window inside the image (the
      window's sum divided by its number of pixels inside; the border is
      not padded), as the papers' own O(N) box filter does; computed with
      ``cv2.boxFilter`` in float64 (variances are differences of means,
      which float32 would round badly for small ``eps``).
    * The guide is one channel (the papers' colour-guide variant is not
      implemented); a multi-channel source is filtered channel by channel
      with the same guide.

    Args:
      guide: ``H x W`` (or ``H x W x 1``) float array, the guidance image I.
      source: ``H x W`` or ``H x W x C`` float array on the same grid, the
        filtering input p.
      radius: window radius in pixels (integer >= 0); 0 returns the source
        unchanged (a one-pixel window has no variance to fit).
      eps: regularisation (> 0), in the squared units of the guide: with a
        guide in [0, 1], ``eps = 1e-3`` treats edges of contrast well above
        ``sqrt(1e-3) ~ 0.03`` as edges to keep.

    Returns:
      float32 array of the source's shape.

    Raises:
      ValueError for mismatched or non-finite arrays and bad parameters.
    """
    radius = _check_int("radius", radius, 0)
    eps = _check_real("eps", eps, 0.0, math.inf, low_open=True)
    guide = np.asarray(guide)
    source = np.asarray(source)
    if guide.ndim == 3 and guide.shape[-1] == 1:
        guide = guide[..., 0]
    if guide.ndim != 2:
        raise ValueError(f"guide must be an H x W array, got shape {guide.shape}")
    if source.ndim not in (2, 3) or source.shape[:2] != guide.shape:
        raise ValueError(f"source must be H x W or H x W x C with the guide's H x W {guide.shape}, "
                         f"got shape {source.shape}")
    if min(guide.shape) < 1:
        raise ValueError(f"guide and source are empty (shape {guide.shape})")
    for name, array in (("guide", guide), ("source", source)):
        if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
            raise ValueError(f"{name} must be a numeric array, got dtype {array.dtype}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or infinite values")
    guide = guide.astype(np.float64)
    planes = source.astype(np.float64)
    planes = planes[..., np.newaxis] if planes.ndim == 2 else planes
    count = cv2.boxFilter(np.ones_like(guide), cv2.CV_64F, (2 * radius + 1,) * 2, normalize=False,
                          borderType=cv2.BORDER_CONSTANT)
    mean_i = _window_mean(guide, radius, count)
    var_i = _window_mean(guide * guide, radius, count) - mean_i * mean_i
    out = np.empty_like(planes)
    for c in range(planes.shape[-1]):
        p = np.ascontiguousarray(planes[..., c])
        mean_p = _window_mean(p, radius, count)
        cov_ip = _window_mean(guide * p, radius, count) - mean_i * mean_p
        a = cov_ip / (var_i + eps)
        b = mean_p - a * mean_i
        out[..., c] = _window_mean(a, radius, count) * guide + _window_mean(b, radius, count)
    out = out[..., 0] if source.ndim == 2 else out
    return out.astype(np.float32)


# --------------------------------------------------------------------------
# Dark channel prior.
# --------------------------------------------------------------------------


def _dark_channel(image, patch):
    """Min over channels, then over the ``patch x patch`` window (clipped at the border), of float64 HxWx3."""
    lowest = np.ascontiguousarray(image.min(axis=-1))
    # cv2.erode's default border value is +inf for erosion: pixels outside the image never win.
    return cv2.erode(lowest, np.ones((patch, patch), np.uint8))


def dark_channel(image, patch=15):
    """The dark channel of He et al.: per pixel, the minimum of R, G and B over a ``patch x patch`` window.

    Args:
      image: float ``H x W x 3`` RGB in [0, 1].
      patch: odd window side in pixels (15 in the paper, for images of
        about 600 x 400); windows are clipped at the image border.

    Returns:
      float32 ``H x W`` array.
    """
    image = _check_rgb(image)
    patch = _check_int("patch", patch, 1, odd=True)
    return _dark_channel(image, patch).astype(np.float32)


def _atmospheric_light(image, dark, top_fraction):
    count = max(1, int(round(top_fraction * dark.size)))
    candidates = np.argpartition(dark.ravel(), dark.size - count)[dark.size - count:]
    pixels = image.reshape(-1, 3)[candidates]
    brightest = pixels[np.argmax(pixels.sum(axis=-1))]
    return np.maximum(brightest, MIN_AIRLIGHT)


def atmospheric_light(image, patch=15, top_fraction=0.001):
    """The atmospheric light A of He et al. (CVPR 2009), from the dark channel.

    The candidates are the pixels whose dark channel is among the highest
    ``top_fraction`` (0.1% in the paper; at least one pixel): the most
    haze-opaque ones, which a white object smaller than the patch cannot
    join. Of these, the input pixel with the highest intensity gives A.
    Choices where the paper is silent: "intensity" is R + G + B; ties in
    the dark channel at the cut-off are broken arbitrarily (NumPy's
    partition); each channel of A is at least :data:`MIN_AIRLIGHT`.

    Args:
      image: float ``H x W x 3`` RGB in [0, 1] (the hazy input).
      patch: odd dark-channel window side (see :func:`dark_channel`).
      top_fraction: share of pixels that are candidates, in (0, 1].

    Returns:
      float32 array of 3 values (R, G, B).
    """
    image = _check_rgb(image)
    patch = _check_int("patch", patch, 1, odd=True)
    top_fraction = _check_real("top_fraction", top_fraction, 0.0, 1.0, low_open=True)
    return _atmospheric_light(image, _dark_channel(image, patch), top_fraction).astype(np.float32)


def _grey(image):
    return image @ np.asarray(LUMA_WEIGHTS, np.float64)


def _transmission(image, airlight, patch, omega, radius, eps):
    coarse = 1.0 - omega * _dark_channel(image / airlight, patch)
    if radius == 0:
        return coarse
    return guided_filter(_grey(image), coarse, radius, eps).astype(np.float64)


def transmission(image, airlight, patch=15, omega=0.95, radius=60, eps=1e-3):
    """The refined transmission map t of He et al. for a hazy image and its atmospheric light.

    ``t = 1 - omega * dark_channel(I / A)`` (CVPR 2009; ``omega < 1`` keeps
    a little haze for depth perception), then refined by
    :func:`guided_filter` with the grey input (BT.601 luma) as the guide,
    as the guided-filter paper does for haze removal. ``radius=0`` returns the
    coarse, blocky map without refinement. Not clamped; see
    :func:`dark_channel_prior` for ``t0``.

    Args:
      image: float ``H x W x 3`` RGB in [0, 1].
      airlight: three positive values (R, G, B), e.g. from
        :func:`atmospheric_light`.
      patch, omega, radius, eps: as for :func:`dark_channel_prior`.

    Returns:
      float32 ``H x W`` array.
    """
    image = _check_rgb(image)
    patch, omega, radius, eps = _check_dcp_params(patch, omega, 0.1, radius, eps, 0.001)[:4]
    airlight = np.asarray(airlight, np.float64)
    if airlight.shape != (3,) or not np.all(np.isfinite(airlight)) or np.any(airlight <= 0):
        raise ValueError(f"airlight must be three positive values (R, G, B), got {airlight!r}")
    return _transmission(image, airlight, patch, omega, radius, eps).astype(np.float32)


def _check_dcp_params(patch, omega, t0, radius, eps, top_fraction):
    return (
        _check_int("patch", patch, 1, odd=True),
        _check_real("omega", omega, 0.0, 1.0, low_open=True),
        _check_int("radius", radius, 0),
        _check_real("eps", eps, 0.0, math.inf, low_open=True),
        _check_real("t0", t0, 0.0, 1.0, low_open=True, high_open=True),
        _check_real("top_fraction", top_fraction, 0.0, 1.0, low_open=True),
    )


def check_dcp_parameters(patch=15, omega=0.95, t0=0.1, radius=60, eps=1e-3, top_fraction=0.001):
    """The parameters of :func:`dark_channel_prior` as a checked dict (ValueError naming a bad one).

    For tools that check their settings before any image is read.
    """
    patch, omega, radius, eps, t0, top_fraction = _check_dcp_params(patch, omega, t0, radius, eps, top_fraction)
    return dict(patch=patch, omega=omega, t0=t0, radius=radius, eps=eps, top_fraction=top_fraction)


def dark_channel_prior(image, patch=15, omega=0.95, t0=0.1, radius=60, eps=1e-3, top_fraction=0.001):
    """Removes haze with the dark channel prior (He, Sun and Tang, CVPR 2009 / TPAMI 2011).

    With the haze model ``I = J t + A (1 - t)``:

    1. the atmospheric light A: :func:`atmospheric_light` (the brightest
       input pixel among the top ``top_fraction`` of the dark channel);
    2. the transmission ``t = 1 - omega * dark_channel(I / A)`` over
       ``patch x patch`` windows, refined with the guided filter (radius
       ``radius``, regularisation ``eps``, the grey input as guide) instead
       of the first paper's soft matting: :func:`transmission`;
    3. the scene ``J = (I - A) / max(t, t0) + A``, clipped to [0, 1].

    The defaults are the papers' values: patch 15, omega 0.95, t0 0.1,
    top 0.1% of the dark channel (CVPR 2009), and for the guided-filter
    refinement radius 60 with eps 1e-3 (haze removal at the papers' image
    scale).
    The papers' images are about 600 x 400 pixels, the size of RESIDE's
    SOTS (620 x 460), so the sizes are used as given in pixels: neither
    ``patch`` nor ``radius`` is scaled with the image size (our choice;
    pass smaller values for much smaller images). Windows are clipped at the
    image border. Computed in float64.

    Args:
      image: float ``H x W x 3`` RGB in [0, 1], the hazy image.
      patch: odd dark-channel window side in pixels (>= 1).
      omega: share of the haze removed, in (0, 1].
      t0: lower bound of the transmission, in (0, 1).
      radius: guided-filter radius in pixels (>= 0; 0 skips the refinement).
      eps: guided-filter regularisation (> 0).
      top_fraction: share of the dark channel searched for A, in (0, 1].

    Returns:
      The de-hazed image, float32 ``H x W x 3`` in [0, 1].

    Raises:
      ValueError for a bad image or parameter.
    """
    image = _check_rgb(image)
    patch, omega, radius, eps, t0, top_fraction = _check_dcp_params(patch, omega, t0, radius, eps, top_fraction)
    airlight = _atmospheric_light(image, _dark_channel(image, patch), top_fraction)
    t = np.maximum(_transmission(image, airlight, patch, omega, radius, eps), t0)[..., np.newaxis]
    scene = (image - airlight) / t + airlight
    return np.clip(scene, 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------
# De-noising.
# --------------------------------------------------------------------------


def _import_bm3d():
    try:
        import bm3d  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError(
            "CBM3D needs the bm3d package (the BM3D authors' maintained implementation): "
            "pip install bm3d, or pip install -e '.[baselines]' in this repository"
        ) from error
    return bm3d


def bm3d_version():
    """The installed ``bm3d`` package's version; the ImportError of :func:`cbm3d` when it is missing."""
    _import_bm3d()
    from importlib import metadata  # pylint: disable=import-outside-toplevel

    try:
        return metadata.version("bm3d")
    except metadata.PackageNotFoundError:  # importable but not installed as a distribution
        return "unknown"


def cbm3d(image, sigma):
    """De-noises a colour image with CBM3D from the maintained ``bm3d`` package.

    Calls ``bm3d.bm3d_rgb(image, sigma_psd=sigma / 255, profile="np",
    colorspace="opp")`` (the package's defaults, written out so that the
    setting is pinned): the image is moved to the opponent colour space,
    blocks are matched on its luminance and both the hard-thresholding and
    the Wiener stages run, as in Dabov et al. (ICIP 2007). The result is
    clipped to [0, 1].

    Args:
      image: float ``H x W x 3`` RGB in [0, 1] (noisy values clipped to
        [0, 1]), at least :data:`CBM3D_MIN_SIDE` pixels on each side.
      sigma: standard deviation of the noise on the 0-255 scale (the
        de-noising literature's convention: 15, 25, 50), >= 0; for real
        noise of unknown level see :func:`estimate_noise_sigma`. 0 returns
        the image unchanged (there is nothing to remove, and the package
        would divide by it).

    Returns:
      float32 ``H x W x 3`` in [0, 1].

    Raises:
      ImportError naming ``pip install bm3d`` when the package is missing;
      ValueError for a bad image or sigma.
    """
    image = _check_rgb(image, min_side=CBM3D_MIN_SIDE)
    sigma = _check_real("sigma (0-255 scale)", sigma, 0.0, math.inf)
    if sigma == 0.0:
        return image.astype(np.float32)
    bm3d = _import_bm3d()
    restored = bm3d.bm3d_rgb(image, sigma_psd=sigma / 255.0, profile="np", colorspace="opp")
    return np.clip(np.asarray(restored, np.float64), 0.0, 1.0).astype(np.float32)


def estimate_noise_sigma(image, scale=1):
    """Estimates the standard deviation of white noise on the 0-255 scale (Donoho and Johnstone, 1994).

    Per channel, ``median(|d|) / 0.6745`` of the finest-scale diagonal
    detail coefficients ``d`` of the orthonormal Haar wavelet transform
    (``d = (x[2i, 2j] - x[2i, 2j+1] - x[2i+1, 2j] + x[2i+1, 2j+1]) / 2`` on
    2 x 2 blocks, which keeps white noise's sigma and cancels flat regions
    and linear ramps); the three channels' estimates are averaged. Our
    choices: the Haar wavelet (Donoho used Daubechies wavelets; Haar needs
    no library and touches the fewest pixels), rows and columns past the
    last whole block are left out, and channels are averaged rather than
    pooled.

    ``scale`` (our addition, for real photos): with ``scale = s > 1`` the
    image is first averaged over ``s x s`` blocks and multiplied by ``s``,
    which keeps the sigma of white noise, so the estimate looks at noise
    ``s`` times coarser: it is the sigma of the white noise that would have
    the same power there (noise constant over ``s x s`` blocks reads ``s``
    times its per-pixel std). Real camera noise is correlated between neighbours
    (demosaicking, denoising in the camera, JPEG), so the finest scale misses
    most of it; on 8-bit data the finest-scale coefficients also fall on a
    0.5 grid, so a weak estimate comes out as 0 or 0.74. Measured on the 20
    PolyU photos (``X_real`` against ``X_mean``, where the std of
    ``real - mean`` is 4.41 in the median): scale 1 gives 0.74 (0 for some
    photos), scale 2 gives 3.71, scale 4 6.98; for synthetic white noise of
    sigma 25 on kodim01, 26.0, 29.5 and 33.8. Texture and edges add detail
    too, more at coarser scales (the clean kodim01 reads 5.2, 11.5 and 17.8),
    so estimates run high on busy images.

    Args:
      image: float ``H x W x 3`` RGB in [0, 1], at least ``2 scale`` pixels
        on each side.
      scale: block side of the averaging before the estimate (integer >= 1;
        1 is Donoho's finest-scale estimator, right for white noise).

    Returns:
      A float >= 0 (0-255 scale).
    """
    scale = _check_int("scale", scale, 1)
    x = _check_rgb(image, min_side=2 * scale) * 255.0
    if scale > 1:
        rows, cols = (x.shape[0] // scale) * scale, (x.shape[1] // scale) * scale
        x = x[:rows, :cols].reshape(rows // scale, scale, cols // scale, scale, 3).mean(axis=(1, 3)) * scale
    height, width = (x.shape[0] // 2) * 2, (x.shape[1] // 2) * 2
    x = x[:height, :width]
    detail = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    per_channel = np.median(np.abs(detail).reshape(-1, 3), axis=0) / MAD_TO_SIGMA
    return float(per_channel.mean())
