"""Noise: white Gaussian, Poisson-Gaussian (shot + read noise) and blind camera noise.

* ``gaussian_noise``: sigma on the 0-255 scale (the de-noising literature's
  convention).
* ``poisson_gaussian_noise``: shot noise + read noise (Foi et al. 2008).
* ``camera_noise``: blind noise, white Gaussian or a camera's, per image (below).

Camera noise: one degradation,
``camera_noise``, trains a single blind de-noiser for the two
kinds of noise de-noising papers test on:

* **Gaussian** (with probability ``gaussian_share``): additive white noise of
  standard deviation ``sigma`` (0-255 scale), the synthetic benchmarks'
  noise (Kodak24 / CBSD68 at sigma 15, 25, 50);
* **camera** (otherwise): the noise of a processed camera photo (PolyU, SIDD,
  DND sRGB), made the way a camera makes it:

  1. undo the display gamma (``x ** 2.2``) to get linear light;
  2. shot noise and read noise in linear light (Foi et al. 2008):
     ``Poisson(peak * x) / peak + N(0, (read_sigma / 255)^2)``, ``peak``
     drawn log-uniformly (photons at white; smaller is noisier);
  3. demosaicking and denoising in the camera correlate the noise across
     neighbouring pixels and across channels: the noise field is blended
     with its 3x3 binomial blur (rescaled to the same variance) by a weight
     drawn in ``[0, spatial_correlation]``, and with its channel mean by a
     weight in ``[0, channel_correlation]``;
  4. the gamma again, then JPEG at a quality drawn from ``jpeg_quality``
     (the real sets are camera JPEGs).

Every result is quantized to 8 bits, as the test sets' noisy images are
stored. Parameters take a number or a ``(low, high)`` range, sampled per
image from the stateless seed, like every degradation of
:mod:`erlrestore.data.degradations`.
"""

import math

import tensorflow as tf

from erlrestore.data.degradations.common import (
    _as_batch,
    _as_range,
    _as_seed,
    _check_probability,
    _per_image,
    _restore_rank,
    _sample,
    _split,
)

# The parameters declared here; ``sigma`` and ``peak`` mean the same in all three degradations.
PARAM_CHECKS = {
    "sigma": lambda v: _as_range("sigma", v, 0.0),
    "peak": lambda v: _as_range("peak", v, 0.0, low_open=True),
    "gaussian_share": lambda v: _check_probability("gaussian_share", v),
    "read_sigma": lambda v: _as_range("read_sigma", v, 0.0),
    "spatial_correlation": lambda v: _check_probability("spatial_correlation", v),
    "channel_correlation": lambda v: _check_probability("channel_correlation", v),
    "jpeg_quality": lambda v: _as_range("jpeg_quality", v, 1.0, 100.0),
}


def add_gaussian_noise(clean, seed, *, sigma=25.0):
    """Adds white Gaussian noise, independent per pixel and channel.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      sigma: standard deviation on the 0-255 scale (>= 0), the denoising
        literature's convention (sigma = 15, 25, 50); the noise added to
        [0, 1] images has std ``sigma / 255``. A (low, high) pair is sampled
        per image (blind denoising).

    The result is clipped to [0, 1], which lowers the effective std near
    black and white.
    """
    x, rank = _as_batch(clean, "add_gaussian_noise")
    seed = _as_seed(seed, "add_gaussian_noise")
    sigma = PARAM_CHECKS["sigma"](sigma)
    seeds = _split(seed, 2)
    batch = tf.shape(x)[0]
    std = _per_image(_sample(sigma, seeds[0], [batch]), batch) / 255.0
    noise = tf.random.stateless_normal(tf.shape(x), seeds[1], dtype=tf.float32)
    return _restore_rank(x + std * noise, rank)


def add_poisson_gaussian_noise(clean, seed, *, peak=50.0, sigma=5.0):
    """Adds signal-dependent Poisson-Gaussian noise (shot noise + read noise).

    The sensor model of Foi et al. (2008)::

        y = Poisson(peak * x) / peak + N(0, (sigma / 255)^2)

    ``peak`` is the expected photon count of a white pixel (smaller is
    darker light and noisier); the shot noise has variance ``x / peak``. The
    Poisson counts are *sampled exactly* with ``tf.random.stateless_poisson``
    (no Gaussian approximation), independently per pixel and channel, then
    Gaussian read noise with std ``sigma / 255`` is added. Result clipped.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      peak: photons at white (> 0); a (low, high) pair is sampled per image.
      sigma: read-noise std on the 0-255 scale (>= 0); may be a pair.
    """
    x, rank = _as_batch(clean, "add_poisson_gaussian_noise")
    seed = _as_seed(seed, "add_poisson_gaussian_noise")
    peak = PARAM_CHECKS["peak"](peak)
    sigma = PARAM_CHECKS["sigma"](sigma)
    seeds = _split(seed, 4)
    batch = tf.shape(x)[0]
    photons = _per_image(_sample(peak, seeds[0], [batch]), batch)
    std = _per_image(_sample(sigma, seeds[1], [batch]), batch) / 255.0
    lam = tf.maximum(x, 0.0) * photons
    counts = tf.random.stateless_poisson(tf.shape(x), seeds[2], lam, dtype=tf.float32)
    read = tf.random.stateless_normal(tf.shape(x), seeds[3], dtype=tf.float32)
    return _restore_rank(counts / photons + std * read, rank)


# ---------------------------------------------------------------------------
# Blind camera noise
# ---------------------------------------------------------------------------

GAMMA = 2.2
# Variance of a 3x3 binomial blur of white noise, relative to the noise: (sum of squared taps).
# A plain list, not a tensor: a tensor made at import would start TensorFlow's runtime before a distribution
# strategy can configure it (MultiWorkerMirroredStrategy refuses that).
_BINOMIAL = [0.25, 0.5, 0.25]
_BLUR_STD = 6.0 / 16.0


def _blur3(noise):
    """3x3 binomial blur of a [B, H, W, C] tensor (reflected borders), per channel."""
    taps = tf.constant(_BINOMIAL)
    kernel = tf.tensordot(taps, taps, axes=0)[:, :, tf.newaxis, tf.newaxis]
    channels = tf.shape(noise)[-1]
    kernel = tf.tile(kernel, [1, 1, channels, 1])
    padded = tf.pad(noise, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")


def _jpeg(images, quality):
    """Each image of a [B, H, W, 3] float batch through JPEG at its own integer quality."""
    def one(args):
        image, q = args
        encoded = tf.image.convert_image_dtype(image, tf.uint8, saturate=True)
        return tf.image.convert_image_dtype(tf.image.adjust_jpeg_quality(encoded, q), tf.float32)

    return tf.map_fn(one, (images, quality), fn_output_signature=tf.float32)


def camera_branch(x, seeds, *, peak, read_sigma, spatial_correlation, channel_correlation, jpeg_quality, sample):
    """The camera noise of a [B, H, W, 3] batch in [0, 1] (before quantization); ``seeds``: 7 seeds."""
    batch = tf.shape(x)[0]
    per_image = lambda v: tf.reshape(v, [batch, 1, 1, 1])  # noqa: E731
    log_peak = sample((math.log(peak[0]), math.log(peak[1])), seeds[0], [batch])
    photons = per_image(tf.exp(log_peak))
    linear = tf.maximum(x, 0.0) ** GAMMA
    counts = tf.random.stateless_poisson(tf.shape(x), seeds[1], linear * photons, dtype=tf.float32)
    read = per_image(sample(read_sigma, seeds[2], [batch]) / 255.0)
    noise = counts / photons - linear + read * tf.random.stateless_normal(tf.shape(x), seeds[3])
    spatial = per_image(sample((0.0, spatial_correlation), seeds[4], [batch]))
    noise = (1.0 - spatial) * noise + spatial * _blur3(noise) / _BLUR_STD
    channel = per_image(sample((0.0, channel_correlation), seeds[5], [batch]))
    noise = (1.0 - channel) * noise + channel * tf.reduce_mean(noise, axis=-1, keepdims=True)
    shown = tf.clip_by_value(linear + noise, 0.0, 1.0) ** (1.0 / GAMMA)
    quality = tf.cast(tf.round(sample(jpeg_quality, seeds[6], [batch])), tf.int32)
    return _jpeg(shown, quality)


def add_camera_noise(clean, seed, *, gaussian_share=0.5, sigma=(0.0, 55.0), peak=(20.0, 30000.0),
                     read_sigma=(0.0, 5.0), spatial_correlation=0.8, channel_correlation=0.5,
                     jpeg_quality=(70.0, 98.0)):
    """Blind noise: white Gaussian on a ``gaussian_share`` of the images, a camera's noise on the rest.

    Args:
      clean: float32 ``[H, W, 3]`` or ``[B, H, W, 3]`` in [0, 1].
      seed: shape-[2] integer stateless seed.
      gaussian_share: probability that an image gets white Gaussian noise.
      sigma: the Gaussian noise's std on the 0-255 scale (range: blind).
      peak: photons at white of the camera branch (> 0), drawn log-uniformly.
      read_sigma: the camera branch's read-noise std, 0-255 scale, in linear light.
      spatial_correlation: the largest blend weight with the blurred noise (0-1).
      channel_correlation: the largest blend weight with the channel mean (0-1).
      jpeg_quality: the camera branch's JPEG quality (1-100).

    Returns float32 of the input's shape, clipped to [0, 1] and quantized
    to multiples of 1/255.
    """
    x, rank = _as_batch(clean, "add_camera_noise")
    seed = _as_seed(seed, "add_camera_noise")
    share = PARAM_CHECKS["gaussian_share"](gaussian_share)
    sigma = PARAM_CHECKS["sigma"](sigma)
    peak = PARAM_CHECKS["peak"](peak)
    read_sigma = PARAM_CHECKS["read_sigma"](read_sigma)
    spatial_correlation = PARAM_CHECKS["spatial_correlation"](spatial_correlation)
    channel_correlation = PARAM_CHECKS["channel_correlation"](channel_correlation)
    jpeg_quality = PARAM_CHECKS["jpeg_quality"](jpeg_quality)
    seeds = _split(seed, 10)
    batch = tf.shape(x)[0]
    # A branch no image can take (gaussian_share 0 or 1) is not computed: the camera branch's JPEG round trip
    # is the costly part. The seeds are split the same way, so the result is the same as computing both.
    if share > 0.0:
        std = _per_image(_sample(sigma, seeds[0], [batch]), batch) / 255.0
        gaussian = x + std * tf.random.stateless_normal(tf.shape(x), seeds[1])
    if share < 1.0:
        camera = camera_branch(x, seeds[2:9], peak=peak, read_sigma=read_sigma,
                               spatial_correlation=spatial_correlation, channel_correlation=channel_correlation,
                               jpeg_quality=jpeg_quality, sample=_sample)
    if share == 1.0:
        noisy = gaussian
    elif share == 0.0:
        noisy = camera
    else:
        pick = tf.random.stateless_uniform([batch, 1, 1, 1], seeds[9]) < share
        noisy = tf.where(pick, gaussian, camera)
    quantized = tf.round(tf.clip_by_value(noisy, 0.0, 1.0) * 255.0) / 255.0
    return _restore_rank(quantized, rank)
