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
* The format is decided by the file's content, not its extension (the
  extension only decides whether :func:`list_images` lists the file): PNG
  bytes in ``x.jpg`` decode as the PNG they are. The content must be PNG,
  JPEG, BMP, TIFF (classic or BigTIFF) or WebP; anything else OpenCV might
  decode (GIF, PPM, AVIF, Radiance HDR, ...) is refused, because its declared
  size cannot be checked before decoding (next point).
* Decompression bombs: the width and height an image declares in its header
  (PNG IHDR, JPEG SOFn, BMP info header, TIFF first IFD, WebP VP8/VP8L/VP8X)
  are read before anything is decoded, and an image of more than
  :func:`max_pixels` pixels (default ``DEFAULT_MAX_PIXELS``, 100 megapixels)
  is refused. Change it with :func:`set_max_pixels` or the CLIs'
  ``--max_image_pixels`` flag; 0 turns the check off (OpenCV then applies
  its own limit, ``CV_IO_MAX_IMAGE_PIXELS``, 2**30 by default).
* Palette PNGs are expanded to RGB through their palette, 1/2/4-bit PNGs are
  scaled to 8 bits by OpenCV, and CMYK JPEGs are converted to RGB by
  OpenCV's plain CMYK formula (no ICC colour management).
* Symbolic links: :func:`list_images` refuses (DataError naming the link and
  its target) an image entry that is a symbolic link resolving outside the
  folder being listed, so a shared data folder cannot pull in files from
  elsewhere; links to files inside the folder are listed like files. A
  broken link named like an image is a DataError too, not silently skipped.
  The folder itself may be a link, and a file named explicitly (such as
  ``erlrestore-restore --input=link.png``) is read wherever it points.
* A folder named like an image (``x.png/``) is not listed; files that cannot
  be read (permissions) are DataErrors naming the file.
"""

import os
import uuid
from io import BytesIO

import cv2
import imagesize
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

# The default pixel limit. The largest images of the supported benchmarks are
# SIDD's full frames (about 16 megapixels) and a current high-end camera
# writes 50-100 megapixels; 100 megapixels leaves that room while bounding one
# decode at about 1.2 GB of float32 RGB output (plus the decoder's own
# buffer, 800 MB for 16-bit RGBA), instead of the many gigabytes a tiny file
# declaring 100000 x 100000 pixels would make OpenCV allocate.
DEFAULT_MAX_PIXELS = 100_000_000
_max_pixels = DEFAULT_MAX_PIXELS


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
    DataError when ``folder`` does not exist, is not a folder, cannot be
    read, or holds no images, and when an image entry is a broken symbolic
    link or a link resolving outside ``folder`` (see the module docstring).
    """
    folder = os.fspath(folder)
    if not os.path.exists(folder):
        raise DataError(f"image folder {folder} does not exist")
    if not os.path.isdir(folder):
        raise DataError(f"{folder} is not a folder")
    try:
        names = os.listdir(folder)
    except OSError as exc:
        raise DataError(f"image folder {folder} cannot be read: {exc.strerror or exc}") from exc
    real_folder = os.path.realpath(folder)
    paths = []
    for name in names:
        if name.startswith(".") or not is_image_file(name):
            continue
        path = os.path.join(folder, name)
        if os.path.islink(path):
            _check_link(path, folder, real_folder)
        if os.path.isfile(path):
            paths.append(path)
    if not paths:
        raise DataError(f"{folder} contains no images (looked for {_extensions_text()})")
    return sorted(paths)


def _check_link(path, folder, real_folder):
    """Raises DataError for a broken link or one resolving outside ``folder``."""
    target = os.path.realpath(path)
    if not os.path.exists(path):
        raise DataError(
            f"{path} is a broken symbolic link (its target {os.readlink(path)} does not exist)"
        )
    if os.path.commonpath([real_folder, target]) != real_folder:
        raise DataError(
            f"{path} is a symbolic link to {target}, outside the image folder {folder}; links "
            "in a data folder may only point inside it (copy the file in instead)"
        )


def max_pixels():
    """The current pixel limit of :func:`read_image` (0: no limit)."""
    return _max_pixels


def set_max_pixels(limit):
    """Sets the largest image (width * height) :func:`read_image` decodes.

    ``limit`` is a positive pixel count, or 0 (or None) for no limit of ours
    (OpenCV's own limit still applies). Returns the previous limit, so a
    caller can restore it. The limit is process-wide (module state), so it
    also covers decoding inside tf.data pipelines of the same process.
    """
    global _max_pixels
    limit = 0 if limit is None else limit
    if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
        raise ValueError(f"the pixel limit must be a whole number >= 0 (0: no limit), got {limit!r}")
    previous, _max_pixels = _max_pixels, int(limit)
    return previous


class HeaderError(ValueError):
    """An image header that cannot be read; the message says why ("has a ... header")."""


_READ_FORMATS = ("PNG", "JPEG", "BMP", "TIFF", "WebP")  # what read_image decodes (OpenCV)


def _kind_of(data):
    """The format ``data`` is in, judged by its magic bytes (None: none we read)."""
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data.startswith(_JPEG_SOI):
        return "JPEG"
    if data.startswith(b"BM"):
        return "BMP"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return None


def declared_size(data):
    """``(format, width, height)`` an encoded image declares in its header, without decoding it.

    Formats: PNG, JPEG, BMP, GIF, TIFF and WebP, judged by content. Returns
    None for data in other formats; raises :class:`HeaderError` for a header
    cut short or corrupt. The header is read by the ``imagesize`` library
    (header only, no pixel data; sizes as stored, without applying an EXIF
    rotation, as OpenCV decodes them here); OpenCV does the decoding. The
    serving code uses it too, to refuse decompression bombs before
    TensorFlow decodes them.
    """
    if not isinstance(data, bytes):
        data = bytes(data)
    kind = _kind_of(data)
    if kind is None:
        return None
    try:
        width, height = imagesize.get(BytesIO(data), exif_rotation=False)
    except Exception:  # imagesize raises several types for a header cut short (struct.error, ValueError...)
        raise HeaderError(f"has a truncated or corrupt {kind} header") from None
    if width < 0 or height < 0:  # imagesize's answer for a header it cannot read
        if kind == "GIF" and len(data) >= 10:  # imagesize 2.0 reads GIF's unsigned 16-bit sizes as signed
            return kind, int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
        raise HeaderError(f"has a truncated or corrupt {kind} header")
    return kind, width, height


def _declared_size(path, data):
    """(format, width, height) from the header of ``data``, or DataError."""
    try:
        found = declared_size(data)
    except HeaderError as error:
        raise DataError(f"{path} {error}") from None
    if found is None or found[0] not in _READ_FORMATS:
        raise DataError(
            f"{path} is not a PNG, JPEG, BMP, TIFF or WebP file (judged by its content, first bytes "
            f"{data[:8]!r}); other formats are refused because their size cannot be checked before "
            "decoding"
        )
    kind, width, height = found
    if width <= 0 or height <= 0:
        raise DataError(f"{path} declares an empty image ({width}x{height} pixels, width x height)")
    return kind, width, height


def _check_size(path, data):
    """Raises DataError when the header declares more than max_pixels() pixels."""
    kind, width, height = _declared_size(path, data)
    limit = _max_pixels
    if limit and width * height > limit:
        raise DataError(
            f"{path} declares {width}x{height} pixels ({width * height / 1e6:.1f} megapixels, width x "
            f"height), more than the limit of {limit} pixels; refused before decoding (a "
            "decompression bomb?). Raise the limit with --max_image_pixels or "
            "erlrestore.data.image_files.set_max_pixels() if the image is genuine"
        )


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
    missing (or a broken link), unreadable, empty, truncated, not a PNG,
    JPEG, BMP, TIFF or WebP by content, larger than :func:`max_pixels`
    declares, not decodable or of an unsupported pixel type. The size is
    checked from the header before anything is decoded.

    The same as :func:`decode_image` of :func:`read_file_bytes`; callers that
    also need the file's bytes (its header) call those two, so the file is
    read once.
    """
    path = os.fspath(path)
    return decode_image(read_file_bytes(path), path)


def read_file_bytes(path):
    """All the bytes of the image file ``path``, read in one go (one ``open``).

    Raises DataError naming ``path`` when it is missing (or a broken link),
    not a file, unreadable or empty. Nothing is decoded or checked beyond
    that: :func:`decode_image` does it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        if os.path.islink(path):
            raise DataError(
                f"image file {path} is a broken symbolic link (its target {os.readlink(path)} "
                "does not exist)"
            )
        raise DataError(f"image file {path} does not exist")
    if not os.path.isfile(path):
        raise DataError(f"{path} is not a file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise DataError(f"{path} cannot be read: {exc.strerror or exc}") from exc
    if not data:
        raise DataError(f"{path} is empty (0 bytes)")
    return data


def decode_image(data, path):
    """Decodes the encoded image ``data`` (a file's bytes) as :func:`read_image` does.

    ``path`` only names the image in the DataErrors (for an empty,
    truncated, oversized, undecodable or unsupported image; see
    :func:`read_image`).
    """
    path = os.fspath(path)
    if not isinstance(data, bytes):
        data = bytes(data)
    if not data:
        raise DataError(f"{path} is empty (0 bytes)")
    _check_size(path, data)
    _check_complete(path, data)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
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

    write_bytes_atomically(path, encoded.tobytes())


def write_bytes_atomically(path, data):
    """Writes ``data`` to ``path`` through a temporary file in the same folder
    and a rename, so ``path`` is never left half-written; makes the folder."""
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open honours the umask, unlike tempfile.mkstemp's 0600.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        try:
            os.remove(temp)
        except OSError:
            pass
        raise
