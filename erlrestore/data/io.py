"""Decoding and writing images.

Every image leaves :func:`read_image` as a float32 ``H x W x 3`` RGB array with
values in [0, 1], whatever its file format, bit depth or channel count, and
every problem with a file is raised as a :class:`DataError` whose message
names the file and the reason. Decoding goes through OpenCV
(``cv2.imdecode`` on the file's bytes, so paths with non-ASCII characters work
on every platform).

Choices made where a convention had to be picked:

* Alpha channels are dropped (not composited over a background): benchmark
  images with alpha are fully opaque, and restoration works on the colour.
* Grey + alpha (2 channels) keeps the grey channel, replicated to RGB.
* EXIF orientation is ignored (``IMREAD_UNCHANGED``): a degraded image and its
  clean partner must stay pixel-aligned, and they are stored the same way.
* Floating-point images (32/64-bit TIFF) must be finite; values outside
  [0, 1] are clipped and a warning naming the file and the range found is
  logged with ``absl.logging``.
* Truncated PNG and JPEG files are detected from their bytes (PNG: the IEND
  chunk; JPEG: the end-of-image marker ``FF D9``), because some OpenCV builds
  decode a truncated JPEG into a partly grey image with only a warning.
"""

import os
import uuid

import cv2
import numpy as np
from absl import logging

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8"
_JPEG_EOI = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
# How many trailing bytes may follow a PNG's IEND chunk / a JPEG's EOI marker.
_TAIL_BYTES = 1024

_EIGHT_BIT_ONLY = (".jpg", ".jpeg", ".bmp")


class DataError(ValueError):
    """Bad input data (missing, empty, corrupt or unpairable files).

    The message always names the offending file(s).
    """


def _extensions_text():
    return ", ".join(IMAGE_EXTENSIONS)


def is_image_file(path):
    """True when ``path``'s extension (any case) is one of IMAGE_EXTENSIONS."""
    return os.path.splitext(os.fspath(path))[1].lower() in IMAGE_EXTENSIONS


def list_images(folder):
    """Sorted full paths of the image files directly inside ``folder``.

    Not recursive. Hidden files (names starting with ``.``), sub-folders and
    files with other extensions are not images and are left out. Raises
    DataError when ``folder`` does not exist, is not a folder, or holds no
    images.
    """
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise DataError(f"image folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is not a folder")
    paths = []
    for name in os.listdir(folder):
        if name.startswith(".") or not is_image_file(name):
            continue
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            paths.append(path)
    if not paths:
        raise DataError(f"{folder} contains no images (looked for {_extensions_text()})")
    return sorted(paths)


def _check_complete(path, data):
    """Raises DataError when PNG/JPEG/BMP bytes are visibly truncated."""
    tail = data[-_TAIL_BYTES:]
    if data.startswith(_PNG_SIGNATURE):
        if b"IEND" not in tail:
            raise DataError(f"{path} is a truncated PNG (no IEND chunk at the end of the file)")
    elif data.startswith(_JPEG_SOI):
        # Inside entropy-coded data every 0xFF byte is followed by 0x00 or a
        # restart marker, so FF D9 is the real end of the image. A few bytes
        # may trail it; accept EOI anywhere after the last start-of-scan too.
        last_scan = data.rfind(_JPEG_SOS)
        if _JPEG_EOI not in tail and not 0 <= last_scan < data.rfind(_JPEG_EOI):
            raise DataError(f"{path} is a truncated JPEG (no end-of-image marker FF D9)")
    elif data.startswith(b"BM") and len(data) >= 6:
        declared = int.from_bytes(data[2:6], "little")
        if len(data) < declared:
            raise DataError(
                f"{path} is a truncated BMP ({len(data)} bytes, the header declares {declared})"
            )


def _to_float(path, image):
    if image.dtype == np.uint8:
        return image.astype(np.float32) / np.float32(255.0)
    if image.dtype == np.uint16:
        return image.astype(np.float32) / np.float32(65535.0)
    if image.dtype in (np.float32, np.float64):
        if not np.all(np.isfinite(image)):
            raise DataError(f"{path} contains NaN or infinite pixel values")
        lo, hi = float(image.min()), float(image.max())
        if lo < 0.0 or hi > 1.0:
            logging.warning(
                "%s: floating-point pixel values span [%g, %g]; clipping to [0, 1]", path, lo, hi
            )
        return np.clip(image, 0.0, 1.0).astype(np.float32)
    raise DataError(
        f"{path} has unsupported pixel type {image.dtype} (expected 8- or 16-bit unsigned "
        "integers or 32/64-bit floats)"
    )


def _to_rgb(path, image):
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.ndim != 3:
        raise DataError(f"{path} decoded to an array of unsupported shape {image.shape}")
    channels = image.shape[2]
    if channels in (1, 2):  # grey, or grey + alpha: keep the grey channel
        return np.repeat(image[:, :, :1], 3, axis=2)
    if channels == 3:
        return image[:, :, ::-1]  # BGR -> RGB
    if channels == 4:
        return image[:, :, 2::-1]  # BGRA -> RGB, alpha dropped
    raise DataError(f"{path} has {channels} channels (expected 1, 2, 3 or 4)")


def read_image(path):
    """Reads an image file as float32 ``H x W x 3`` RGB in [0, 1].

    8-bit data is divided by 255 and 16-bit data by 65535. Grey images are
    replicated to three channels, alpha is dropped, floating-point data is
    checked for NaN/Inf and clipped to [0, 1] with a logged warning (see the
    module docstring). Raises DataError naming ``path`` when the file is
    missing, empty, truncated, not a decodable image or of an unsupported
    pixel type.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"image file {path} does not exist")
    if not os.path.isfile(path):
        raise DataError(f"{path} is not a file")
    buffer = np.fromfile(path, dtype=np.uint8)
    if buffer.size == 0:
        raise DataError(f"{path} is empty (0 bytes)")
    _check_complete(path, buffer.tobytes())
    try:
        image = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"{path} could not be decoded as an image: {exc}") from exc
    if image is None:
        raise DataError(f"{path} is not an image OpenCV can decode (corrupt or unsupported format)")
    if image.size == 0:
        raise DataError(f"{path} decoded to an empty image of shape {image.shape}")
    return np.ascontiguousarray(_to_float(path, _to_rgb(path, image)), dtype=np.float32)


def write_image(path, rgb, bit_depth=8, *, jpeg_quality=95):
    """Writes float RGB in [0, 1] to ``path`` atomically.

    The format follows the extension (.png, .jpg/.jpeg, .bmp, .tif/.tiff, any
    case). ``rgb`` is ``H x W x 3`` (``H x W`` or ``H x W x 1`` is written as
    grey); values are clipped to [0, 1], scaled to 255 (``bit_depth=8``) or
    65535 (``bit_depth=16``, PNG and TIFF only) and rounded to the nearest
    integer. Parent folders are created. The bytes go to a temporary file in
    the same folder, which then replaces ``path`` (``os.replace``), so an
    interrupted write never leaves a half-written image.

    Raises DataError for an unknown extension or 16 bits in JPEG/BMP, and
    ValueError for a bad array or bit depth.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        raise DataError(
            f"cannot write {path}: unknown image extension {ext!r} (use one of {_extensions_text()})"
        )
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth!r}")
    if bit_depth == 16 and ext in _EIGHT_BIT_ONLY:
        raise DataError(f"cannot write {path} with 16 bits per channel: use .png or .tiff")
    array = np.asarray(rgb, dtype=np.float64)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)) or array.size == 0:
        raise ValueError(f"cannot write {path}: expected an H x W x 3 image, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"cannot write {path}: the image contains NaN or infinite values")
    scale, dtype = (255.0, np.uint8) if bit_depth == 8 else (65535.0, np.uint16)
    pixels = np.rint(np.clip(array, 0.0, 1.0) * scale).astype(dtype)
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels[:, :, ::-1])  # RGB -> BGR for OpenCV
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext in (".jpg", ".jpeg") else []
    ok, encoded = cv2.imencode(ext, pixels, params)
    if not ok:
        raise DataError(f"OpenCV could not encode {path}")

    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open honours the umask, unlike tempfile.mkstemp's 0600.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(encoded.tobytes())
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise
