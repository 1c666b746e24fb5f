"""A corpus of hostile input files, generated here, and what each one gets.

``CASES`` is the corpus: one row per kind of bad (or merely unusual) file.
Every row builds its files inside the test's ``tmp_path`` and names the
expected outcome: either a DataError whose message names the file and
matches ``error``, or the handling documented in ``erlrestore/data/image_files.py``,
checked by value in ``check``. Whatever the outcome, no file may be changed
or removed by the attempt ("lose nothing"). README.md counts the rows.
"""

import dataclasses
import hashlib
import os
import re
import struct
import subprocess
import sys
import zlib
from typing import Callable, Optional

import cv2
import numpy as np
import pytest

from erlrestore.data import image_files
from erlrestore.data.image_files import DataError, list_images, read_image
from erlrestore.data.pairing import find_pairs, load_pair

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


# ------------------------------------------------------------ file builders

def _rgb8(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _encode(ext, rgb_or_gray, params=()):
    image = rgb_or_gray[..., ::-1] if rgb_or_gray.ndim == 3 and rgb_or_gray.shape[2] == 3 else rgb_or_gray
    ok, encoded = cv2.imencode(ext, np.ascontiguousarray(image), list(params))
    assert ok, ext
    return encoded.tobytes()


def _chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def _png(width, height, depth, colour_type, rows, *extra_chunks):
    """A hand-made PNG: ``rows`` are the unfiltered scanlines (filter byte 0 added here)."""
    raw = b"".join(b"\x00" + row for row in rows)
    return (b"\x89PNG\r\n\x1a\n"
            + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
            + b"".join(extra_chunks)
            + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


PALETTE = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], np.uint8)
INDICES = np.array([[0, 1, 2, 3], [3, 2, 1, 0]], np.uint8)


def _palette_png(transparency=False):
    extra = [_chunk(b"PLTE", PALETTE.tobytes())]
    if transparency:
        extra.append(_chunk(b"tRNS", bytes([0, 128, 255, 7])))
    return _png(4, 2, 8, 3, [row.tobytes() for row in INDICES], *extra)


def _exif_orientation_jpeg(rgb, orientation=6):
    """A JPEG with an EXIF APP1 segment whose Orientation tag is ``orientation``."""
    jpeg = _encode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, 100])
    tiff = (b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1)
            + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0))
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _cmyk_jpeg():
    """An Adobe CMYK JPEG (left half cyan, right half yellow); cv2 cannot write one, Pillow can.

    Pillow comes with tensorboard (a dependency) and scikit-image (a test
    dependency); the case is skipped where it is missing.
    """
    image_module = pytest.importorskip("PIL.Image")
    import io as bytes_io

    image = image_module.new("CMYK", (16, 8), (0, 0, 255, 0))  # yellow
    image.paste((255, 0, 0, 0), (0, 0, 8, 8))  # cyan
    buffer = bytes_io.BytesIO()
    image.save(buffer, "JPEG", quality=100)
    return buffer.getvalue()


def _patched(data, offset, fmt, *values):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def _jpeg_bomb():
    """A real 16x16 JPEG whose SOF0 frame header claims 60000 x 60000 pixels."""
    data = _encode(".jpg", _rgb8(16, 16))
    sof = data.index(b"\xff\xc0")
    return _patched(data, sof + 5, ">HH", 60000, 60000)


def _bmp_bomb():
    return _patched(_encode(".bmp", _rgb8(4, 4)), 18, "<ii", 30000, 30000)


def _tiff_bomb():
    """A big-endian TIFF directory declaring 40000 x 40000 pixels and no pixel data."""
    entries = [struct.pack(">HHII", tag, 4, 1, 40000) for tag in (256, 257)]
    return b"MM\x00*" + struct.pack(">IH", 8, 2) + b"".join(entries) + struct.pack(">I", 0)


def _webp_bomb():
    """A WebP VP8X header with a 16384 x 16384 canvas."""
    body = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (16383).to_bytes(3, "little") * 2
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _write_png(path, rgb):
    return _write(path, _encode(".png", rgb))


def _write_tiff(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _float_tiff(value):
    def build(d):
        rgb = np.full((4, 4, 3), 0.5, np.float32)
        rgb[1, 2, 0] = value
        return _write_tiff(d / "f.tif", rgb)
    return build


def _without_permissions(path):
    os.chmod(path, 0)
    return path


# ------------------------------------------------------------ checks

def _close(expected_rgb8, atol=0):
    def check(got, caplog):
        assert got.shape == expected_rgb8.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, expected_rgb8 / np.float32(255), atol=atol / 255, rtol=0)
    return check


def _listing(*names):
    def check(got, caplog):
        assert [os.path.basename(p) for p in got] == list(names)
    return check


def _check_16bit(got, caplog):
    np.testing.assert_array_equal(got, SIXTEEN / np.float32(65535))


def _check_palette(got, caplog):
    np.testing.assert_array_equal(got, PALETTE[INDICES] / np.float32(255))


def _check_cmyk(got, caplog):
    assert got.shape == (8, 16, 3)
    np.testing.assert_allclose(got[4, 3], [0, 1, 1], atol=4 / 255)  # cyan
    np.testing.assert_allclose(got[4, 12], [1, 1, 0], atol=4 / 255)  # yellow


def _check_exif_pair(got, caplog):
    (inp, tgt), = got
    assert inp.shape == tgt.shape == (4, 8, 3)  # as stored: not turned to 8 x 4
    np.testing.assert_allclose(inp, tgt, atol=6 / 255)


def _check_one_pixel_pair(got, caplog):
    (inp, tgt), = got
    np.testing.assert_array_equal(inp, [[[10 / np.float32(255), 20 / np.float32(255), 30 / np.float32(255)]]])
    np.testing.assert_array_equal(tgt, [[[40 / np.float32(255), 50 / np.float32(255), 60 / np.float32(255)]]])


def _check_clipped(got, caplog):
    expected = np.full((4, 4, 3), 0.5, np.float32)
    expected[1, 2, 2] = 1.0  # written into OpenCV's channel 0, blue
    np.testing.assert_array_equal(got, expected)
    assert re.search(r"f\.tif: floating-point pixel values span \[0\.5, 7\]; clipping to \[0, 1\]", caplog.text)


def _check_bilevel(got, caplog):
    bits = np.unpackbits(np.array([0b10110000], np.uint8))[:4]
    np.testing.assert_array_equal(got[0, :, 0], bits.astype(np.float32))
    np.testing.assert_array_equal(got[..., 0], got[..., 2])


SIXTEEN = np.array([[[65535, 32768, 1], [0, 257, 40000]]], np.uint16)
GRAY = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
RGB = _rgb8(6, 8, seed=1)
STORED = np.zeros((4, 8, 3), np.uint8)
STORED[:, :4] = 250  # left half bright: turning the image would move it


def _build_exif_pair(d):
    _write(d / "rain" / "rain-1.jpg", _exif_orientation_jpeg(STORED))
    _write_png(d / "norain" / "norain-1.png", STORED)
    return d


def _build_one_pixel_pair(d):
    _write_png(d / "rain" / "rain-1.png", np.array([[[10, 20, 30]]], np.uint8))
    _write_png(d / "norain" / "norain-1.png", np.array([[[40, 50, 60]]], np.uint8))
    return d


def _build_listing_with_strangers(d):
    _write_png(d / "a.png", RGB)
    _write(d / "b.webp", _encode(".webp", RGB))
    _write(d / "c.gif", _encode(".gif", RGB))
    (d / "notes.txt").write_text("not an image")
    (d / "d.png").mkdir()  # a folder named like an image
    return d


def _build_link_outside(d):
    _write_png(d / "good.png", RGB)
    secret = _write_png(d.parent / "outside" / "secret.png", RGB)
    (d / "leak.png").symlink_to(secret)
    return d


def _build_relative_link_outside(d):
    _write_png(d / "good.png", RGB)
    _write_png(d.parent / "outside" / "secret.png", RGB)
    (d / "up.png").symlink_to(os.path.join("..", "outside", "secret.png"))
    return d


def _build_link_chain_outside(d):
    _write_png(d / "good.png", RGB)
    _write_png(d.parent / "outside" / "secret.png", RGB)
    (d / ".hop.png").symlink_to(os.path.join("..", "outside", "secret.png"))  # hidden: not listed
    (d / "chain.png").symlink_to(".hop.png")
    return d


def _build_link_inside(d):
    _write_png(d / "real.png", RGB)
    (d / "alias.png").symlink_to("real.png")
    return d


def _build_broken_link_in_folder(d):
    _write_png(d / "good.png", RGB)
    (d / "gone.png").symlink_to("missing.png")
    return d


def _build_broken_link(d):
    d.mkdir(parents=True, exist_ok=True)
    (d / "gone.png").symlink_to("missing.png")
    return d / "gone.png"


def _build_unreadable_folder(d):
    _write_png(d / "a.png", RGB)
    return _without_permissions(d)


@dataclasses.dataclass(frozen=True)
class Case:
    """One kind of hostile input.

    build(folder) writes the files into ``folder`` (created on demand) and
    returns what is tried: a file for ``via="read"`` (read_image), a folder
    for ``via="list"`` (list_images) or ``via="pairs"`` (find_pairs, then
    load_pair on every pair). ``error`` is a regex the DataError must match;
    the message must also contain ``named`` (default: the tried path).
    Otherwise ``check(result, caplog)`` checks the documented handling.
    """

    name: str
    build: Callable
    via: str = "read"
    error: str = ""
    check: Optional[Callable] = None
    named: Optional[Callable] = None  # folder -> the path(s) the message must name
    needs_non_root: bool = False


CASES = [
    # Empty, truncated and corrupt files.
    Case("zero-byte file", lambda d: _write(d / "z.png", b""), error=r"is empty \(0 bytes\)"),
    Case("truncated PNG", lambda d: _write(d / "t.png", _encode(".png", _rgb8(32, 32))[:-20]),
         error=r"is a truncated PNG \(no IEND chunk"),
    Case("PNG cut inside its header", lambda d: _write(d / "h.png", _encode(".png", RGB)[:20]),
         error=r"has a truncated or corrupt PNG header"),
    Case("truncated JPEG", lambda d: _write(d / "t.jpg", _encode(".jpg", _rgb8(64, 64))[:1500]),
         error=r"is a truncated JPEG \(no end-of-image marker FF D9\)"),
    Case("truncated BMP", lambda d: _write(d / "t.bmp", _encode(".bmp", _rgb8(16, 16))[:-100]),
         error=r"is a truncated BMP \(\d+ bytes, the header declares \d+\)"),
    Case("PNG with a corrupt compressed body",
         lambda d: _write(d / "c.png", _png(4, 4, 8, 2, [])[:33] + _chunk(b"IDAT", b"\x13" * 40)
                          + _chunk(b"IEND", b"")),
         error=r"(is not an image OpenCV can decode|could not be decoded as an image)"),
    Case("JPEG without a frame header", lambda d: _write(d / "n.jpg", b"\xff\xd8\xff\xda\x00\x02" + b"\x00" * 16
                                                         + b"\xff\xd9"),
         error=r"has a truncated or corrupt JPEG header"),
    Case("PNG declaring a zero width", lambda d: _write(d / "w0.png", _png(0, 4, 8, 2, [b""] * 4)),
         error=r"declares an empty image \(0x4 pixels"),
    Case("missing file", lambda d: d / "absent.png", error=r"image file .* does not exist"),
    # Wrong or unknown formats.
    Case("text file named .png", lambda d: _write(d / "fake.png", b"this is not an image\n" * 5),
         error=r"is not a PNG, JPEG, BMP, TIFF or WebP file \(judged by its content"),
    Case("PNG bytes named .jpg (decoded by content)", lambda d: _write(d / "p.jpg", _encode(".png", RGB)),
         check=_close(RGB)),
    Case("lossless WebP bytes named .png (decoded by content)",
         lambda d: _write(d / "w.png", _encode(".webp", RGB, [cv2.IMWRITE_WEBP_QUALITY, 101])),
         check=_close(RGB)),
    Case("PPM bytes named .png (format refused)", lambda d: _write(d / "ppm.png", _encode(".ppm", RGB)),
         error=r"is not a PNG, JPEG, BMP, TIFF or WebP file"),
    Case("unknown extensions and a folder named like an image (not listed)",
         _build_listing_with_strangers, via="list", check=_listing("a.png")),
    Case("folder named like an image, read directly",
         lambda d: (d / "dir.png").mkdir(parents=True) or d / "dir.png", error=r"is not a file"),
    # Decompression bombs: refused from the header, before decoding.
    Case("PNG declaring 100000x100000 pixels",
         lambda d: _write(d / "bomb.png", _png(100000, 100000, 8, 2, [b""])),
         error=r"declares 100000x100000 pixels \(10000\.0 megapixels.*more than the limit of 100000000 pixels"),
    Case("JPEG declaring 60000x60000 pixels", lambda d: _write(d / "bomb.jpg", _jpeg_bomb()),
         error=r"declares 60000x60000 pixels .*refused before decoding"),
    Case("BMP declaring 30000x30000 pixels", lambda d: _write(d / "bomb.bmp", _bmp_bomb()),
         error=r"declares 30000x30000 pixels .*refused before decoding"),
    Case("big-endian TIFF declaring 40000x40000 pixels", lambda d: _write(d / "bomb.tif", _tiff_bomb()),
         error=r"declares 40000x40000 pixels .*refused before decoding"),
    Case("WebP declaring 16384x16384 pixels", lambda d: _write(d / "bomb.png", _webp_bomb()),
         error=r"declares 16384x16384 pixels .*refused before decoding"),
    # Unusual but valid images: documented handling, checked by value.
    Case("1x1 images, paired for evaluation", _build_one_pixel_pair, via="pairs", check=_check_one_pixel_pair),
    Case("16-bit RGB PNG (divided by 65535)", lambda d: _write(d / "s.png", _encode(".png", SIXTEEN)),
         check=_check_16bit),
    Case("palette PNG (expanded through the palette)", lambda d: _write(d / "p.png", _palette_png()),
         check=_check_palette),
    Case("palette PNG with transparency (alpha dropped)",
         lambda d: _write(d / "pt.png", _palette_png(transparency=True)), check=_check_palette),
    Case("1-bit grey PNG (0 and 1)", lambda d: _write(d / "b.png", _png(4, 1, 1, 0, [bytes([0b10110000])])),
         check=_check_bilevel),
    Case("CMYK JPEG (converted to RGB)", lambda d: _write(d / "cmyk.jpg", _cmyk_jpeg()), check=_check_cmyk),
    Case("EXIF-rotated JPEG paired with a PNG (orientation ignored)", _build_exif_pair, via="pairs",
         check=_check_exif_pair),
    Case("grey PNG (replicated to RGB)", lambda d: _write(d / "g.png", _encode(".png", GRAY)),
         check=_close(np.repeat(GRAY[..., None], 3, axis=2))),
    Case("RGBA PNG (alpha dropped)",
         lambda d: _write(d / "rgba.png", _encode(".png", np.dstack([RGB[..., ::-1], np.full((6, 8), 9, np.uint8)]))),
         check=_close(RGB)),
    Case("grey + alpha PNG (grey kept)",
         lambda d: _write(d / "ga.png", _png(4, 3, 8, 4, [np.dstack([GRAY, 255 - GRAY])[y].tobytes()
                                                          for y in range(3)])),
         check=_close(np.repeat(GRAY[..., None], 3, axis=2))),
    Case("float32 TIFF holding NaN", _float_tiff(np.nan), error=r"contains NaN or infinite pixel values"),
    Case("float32 TIFF holding +Inf", _float_tiff(np.inf), error=r"contains NaN or infinite pixel values"),
    Case("float32 TIFF holding -Inf", _float_tiff(-np.inf), error=r"contains NaN or infinite pixel values"),
    Case("float32 TIFF above 1 (clipped, warning)", _float_tiff(7.0), check=_check_clipped),
    Case("signed 16-bit TIFF", lambda d: _write_tiff(d / "i.tif", np.zeros((4, 4, 3), np.int16)),
         error=r"has unsupported pixel type int16"),
    # Permissions (no effect for root, so skipped there).
    Case("unreadable file", lambda d: _without_permissions(_write_png(d / "locked.png", RGB)),
         error=r"cannot be read: Permission denied", needs_non_root=True),
    Case("unreadable folder", _build_unreadable_folder, via="list",
         error=r"cannot be read: Permission denied", needs_non_root=True),
    # Symbolic links.
    Case("link to a file outside the folder", _build_link_outside, via="list",
         error=r"is a symbolic link to .*outside.secret\.png, outside the image folder",
         named=lambda d: [d / "leak.png", os.path.realpath(d.parent / "outside" / "secret.png")]),
    Case("relative link (../) out of the folder", _build_relative_link_outside, via="pairs",
         error=r"is a symbolic link to .*, outside the image folder",
         named=lambda d: [d / "up.png", os.path.realpath(d.parent / "outside" / "secret.png")]),
    Case("link to a hidden link pointing out of the folder", _build_link_chain_outside, via="list",
         error=r"is a symbolic link to .*, outside the image folder", named=lambda d: [d / "chain.png"]),
    Case("link to a file inside the folder (listed)", _build_link_inside, via="list",
         check=_listing("alias.png", "real.png")),
    Case("broken link inside a listed folder", _build_broken_link_in_folder, via="list",
         error=r"is a broken symbolic link \(its target missing\.png does not exist\)",
         named=lambda d: [d / "gone.png"]),
    Case("broken link read directly", _build_broken_link,
         error=r"is a broken symbolic link \(its target missing\.png does not exist\)"),
]


def _snapshot(root):
    """Every entry under ``root``: kind, and content digest or link target."""
    entries = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                entries[path] = ("link", os.readlink(path))
            elif os.path.isdir(path):
                entries[path] = ("dir",)
            else:
                try:
                    with open(path, "rb") as handle:
                        entries[path] = ("file", hashlib.sha256(handle.read()).hexdigest())
                except PermissionError:
                    entries[path] = ("file", os.stat(path).st_size)
    return entries


def _try(case, target):
    if case.via == "read":
        return read_image(target)
    if case.via == "list":
        return list_images(target)
    return [load_pair(pair) for pair in find_pairs(target)]


@pytest.fixture
def restore_pixel_limit():
    previous = image_files.max_pixels()
    yield
    image_files.set_max_pixels(previous)


def test_corpus_names_are_unique():
    assert len({case.name for case in CASES}) == len(CASES)
    assert all(bool(case.error) != bool(case.check) for case in CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_hostile_input(case, tmp_path, caplog, restore_pixel_limit):
    if case.needs_non_root and IS_ROOT:
        pytest.skip("permissions do not apply to root")
    image_files.set_max_pixels(image_files.DEFAULT_MAX_PIXELS)
    folder = tmp_path / "data"
    target = case.build(folder)
    before = _snapshot(tmp_path)
    try:
        with caplog.at_level("WARNING"):
            if case.error:
                with pytest.raises(DataError) as raised:
                    _try(case, target)
            else:
                result = _try(case, target)
        after = _snapshot(tmp_path)
    finally:
        if case.needs_non_root:  # let pytest clean up
            os.chmod(target, 0o755 if os.path.isdir(target) else 0o644)
    assert after == before, "the attempt changed or removed files"
    if case.error:
        message = str(raised.value)
        assert re.search(case.error, message), message
        for named in case.named(folder) if case.named else [target]:
            assert str(named) in message, f"{named} not named in: {message}"
    else:
        case.check(result, caplog)


# ------------------------------------------------------------ the pixel limit

def test_pixel_limit_is_exact_configurable_and_validated(tmp_path, restore_pixel_limit):
    path = _write_png(tmp_path / "a.png", _rgb8(8, 16))
    assert image_files.max_pixels() == image_files.DEFAULT_MAX_PIXELS == 100_000_000
    assert image_files.set_max_pixels(128) == image_files.DEFAULT_MAX_PIXELS
    assert read_image(path).shape == (8, 16, 3)  # exactly at the limit
    image_files.set_max_pixels(127)
    with pytest.raises(DataError, match=r"a\.png declares 16x8 pixels .*more than the limit of 127 pixels"):
        read_image(path)
    assert image_files.set_max_pixels(0) == 127  # 0: no limit
    assert read_image(path).shape == (8, 16, 3)
    image_files.set_max_pixels(None)
    assert image_files.max_pixels() == 0
    for bad in (-1, 2.5, "10", True):
        with pytest.raises(ValueError, match="pixel limit must be a whole number"):
            image_files.set_max_pixels(bad)


def test_header_sizes_match_the_decoded_sizes(tmp_path):
    """The header readers agree with OpenCV on every writable format."""
    rgb = _rgb8(5, 7)
    files = {
        "a.png": _encode(".png", rgb),
        "a.jpg": _encode(".jpg", rgb),
        "p.jpg": _encode(".jpg", rgb, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "e.jpg": _exif_orientation_jpeg(rgb),
        "a.bmp": _encode(".bmp", rgb),
        "a.tif": _encode(".tif", rgb),
        "f.tif": _encode(".tif", rgb.astype(np.float32) / 255),
        "lossy.png": _encode(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "lossless.png": _encode(".webp", rgb, [cv2.IMWRITE_WEBP_QUALITY, 101]),
    }
    # OpenCV honours the EXIF tag when asked (IMREAD_COLOR), so the file really is "rotated".
    assert cv2.imdecode(np.frombuffer(files["e.jpg"], np.uint8), cv2.IMREAD_COLOR).shape == (7, 5, 3)
    for name, data in files.items():
        kind, width, height = image_files._declared_size(name, data)
        assert (width, height) == (7, 5), (name, kind)
        assert read_image(_write(tmp_path / name, data)).shape == (5, 7, 3), name


def test_bomb_inside_the_training_pipeline_names_the_file(tmp_path):
    tf = pytest.importorskip("tensorflow")
    from erlrestore.data.pipeline import train_dataset

    _write_png(tmp_path / "rain" / "rain-1.png", _rgb8(16, 16))
    _write_png(tmp_path / "norain" / "norain-1.png", _rgb8(16, 16))
    _write(tmp_path / "rain" / "rain-2.png", _png(100000, 100000, 8, 2, [b""]))
    _write_png(tmp_path / "norain" / "norain-2.png", _rgb8(16, 16))
    ds = train_dataset(find_pairs(tmp_path), crop_size=8, batch_size=1, shuffle_buffer=0, seed=0, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"DataError: .*rain-2\.png declares 100000x100000"):
        list(ds)


def test_one_pixel_training_crop_refused_or_padded(tmp_path):
    """The 1x1 row of the corpus in training: a clear error, or edge padding with pad_small."""
    tf = pytest.importorskip("tensorflow")
    from erlrestore.data.pipeline import train_dataset

    _build_one_pixel_pair(tmp_path)
    pairs = find_pairs(tmp_path)
    ds = train_dataset(pairs, crop_size=8, batch_size=1, shuffle_buffer=0, seed=0, repeat=False)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"rain-1\.png.*is 1x1 \(HxW\), smaller than the 8x8 crop"):
        list(ds)
    ds = train_dataset(pairs, crop_size=8, batch_size=1, shuffle_buffer=0, seed=0, pad_small=True, repeat=False)
    (inp, tgt), = [(a.numpy(), b.numpy()) for a, b in ds]
    np.testing.assert_array_equal(inp[0], np.broadcast_to(np.float32([10, 20, 30]) / 255, (8, 8, 3)))
    np.testing.assert_array_equal(tgt[0], np.broadcast_to(np.float32([40, 50, 60]) / 255, (8, 8, 3)))


@pytest.mark.slow
def test_metrics_cli_max_image_pixels_flag(tmp_path):
    """--max_image_pixels reaches the decoder: a clear error naming the file, exit status 1."""
    _write_png(tmp_path / "rain" / "rain-1.png", _rgb8(12, 12))
    _write_png(tmp_path / "norain" / "norain-1.png", _rgb8(12, 12, seed=2))

    def metrics(*flags):
        return subprocess.run(
            [sys.executable, "-m", "erlrestore.cli.metrics", f"--input_dir={tmp_path}", "--workers=1", *flags],
            capture_output=True, text=True, timeout=300,
        )

    refused = metrics("--max_image_pixels=143")
    assert refused.returncode == 1, refused.stderr[-2000:]
    assert re.search(r"error: .*rain-1\.png declares 12x12 pixels .*more than the limit of 143 pixels",
                     refused.stderr), refused.stderr[-2000:]
    allowed = metrics("--max_image_pixels=144")
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert allowed.stdout.strip().splitlines()[-1].startswith("n=1 ")


def _image_reading_command(name, folder, model_path, output_dir):
    """The arguments of one image-reading tool, run on ``folder`` (rain/ + norain/), tiny where it trains."""
    from erlrestore.models import presets

    if name == "train":
        tiny = [f"--{field}={value}" for field, value in presets.TINY_MEMD.items()]
        return ["--model=MEMD", *tiny, f"--train_input_dir={folder}", f"--model_dir={output_dir}", "--stage_steps=1",
                "--crop_size=8", "--batch_size=1", "--verbose=0"]
    if name == "evaluate":
        return [f"--model={model_path}", f"--input_dir={folder}"]
    if name == "restore":
        return [f"--model={model_path}", f"--input={folder / 'rain'}", f"--output_dir={output_dir}"]
    return [f"--input_dir={folder}", "--workers=1"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["train", "evaluate", "restore", "metrics"])
def test_every_image_reading_cli_refuses_an_image_over_max_image_pixels_before_decoding_it(
        name, tmp_path, tiny_memd_config, monkeypatch):
    """Given --max_image_pixels below an image's declared size, each tool exits 1 naming the file, undecoded.

    The image's header declares 64x64 pixels but its data cannot be decoded: had
    the tool tried to decode it, the error would say so instead.
    """
    from erlrestore.models import memd

    bomb = _write(tmp_path / "set" / "rain" / "rain-1.png", _png(64, 64, 8, 2, [b""]))  # one row of 64 declared
    _write_png(tmp_path / "set" / "norain" / "norain-1.png", _rgb8(12, 12))
    monkeypatch.setattr(image_files, "_max_pixels", 0)  # no limit: the decoder is reached, and refuses the data
    with pytest.raises(DataError, match=re.escape(f"{bomb} is not an image OpenCV can decode")):
        read_image(bomb)
    model_path = tmp_path / "tiny.keras"
    memd.build_memd(tiny_memd_config()).save(model_path)
    before = _snapshot(tmp_path / "set")

    arguments = _image_reading_command(name, tmp_path / "set", model_path, tmp_path / "out")
    result = subprocess.run([sys.executable, "-m", f"erlrestore.cli.{name}", *arguments, "--max_image_pixels=1000"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr[-3000:]
    assert re.search(rf"{re.escape(str(bomb))} declares 64x64 pixels .*more than the limit of 1000 pixels; "
                     r"refused before decoding", result.stderr), result.stderr[-3000:]
    assert "OpenCV can decode" not in result.stderr
    assert _snapshot(tmp_path / "set") == before


def test_read_errors_become_data_errors_even_as_root(tmp_path, monkeypatch):
    """The two permission rows, simulated so they also run where the tests run as root."""
    path = _write_png(tmp_path / "locked.png", RGB)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(image_files, "open", refuse, raising=False)  # the one read of the file's bytes
    with pytest.raises(DataError, match=re.escape(f"{path} cannot be read: Permission denied")):
        read_image(path)
    monkeypatch.setattr(image_files.os, "listdir", refuse)
    with pytest.raises(DataError, match=re.escape(f"image folder {tmp_path} cannot be read: Permission denied")):
        list_images(tmp_path)


def test_readme_counts_the_corpus():
    readme = os.path.join(os.path.dirname(image_files.__file__), "..", "..", "README.md")
    with open(readme, encoding="utf-8") as handle:
        match = re.search(r"Hostile inputs: (\d+) kinds", handle.read())
    assert match and int(match.group(1)) == len(CASES)
