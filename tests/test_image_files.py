"""Tests for erlrestore.data.image_files: decoding, listing and writing images."""

import os
import struct
import zlib

import cv2
import numpy as np
import pytest

from erlrestore.data import image_files
from erlrestore.data.image_files import DataError, list_images, read_image, write_image


def _bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _rgb8(h=6, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def _gray_alpha_png(gray, alpha):
    """A minimal 8-bit grey+alpha PNG (colour type 4), which cv2.imwrite cannot make."""
    h, w = gray.shape
    rows = b"".join(b"\x00" + np.dstack([gray, alpha])[y].tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n"
            + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 4, 0, 0, 0))
            + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


# ---------------------------------------------------------------- list_images

def test_list_images_sorted_case_insensitive_skips_non_images(tmp_path):
    img = _bgr(_rgb8())
    for name in ["b.png", "a.JPG", "c.tiff", "d.Bmp", "e.jpeg", "f.TIF"]:
        cv2.imwrite(str(tmp_path / name.lower()), img)
        os.rename(tmp_path / name.lower(), tmp_path / name)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / ".hidden.png").write_bytes(b"")
    (tmp_path / "sub.png").mkdir()  # a folder named like an image
    got = list_images(tmp_path)
    assert got == [str(tmp_path / n) for n in ["a.JPG", "b.png", "c.tiff", "d.Bmp", "e.jpeg", "f.TIF"]]


def test_list_images_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"image folder .*nope does not exist"):
        list_images(tmp_path / "nope")


def test_list_images_not_a_folder(tmp_path):
    (tmp_path / "x.png").write_bytes(b"x")
    with pytest.raises(DataError, match=r"x\.png is not a folder"):
        list_images(tmp_path / "x.png")


def test_list_images_empty_folder(tmp_path):
    (tmp_path / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"contains no images \(looked for \.png, \.jpg, \.jpeg"):
        list_images(tmp_path)


# ---------------------------------------------------------------- read_image

def test_read_8bit_png_exact(tmp_path):
    rgb = _rgb8()
    cv2.imwrite(str(tmp_path / "a.png"), _bgr(rgb))
    got = read_image(tmp_path / "a.png")
    assert got.dtype == np.float32 and got.shape == (6, 8, 3)
    np.testing.assert_array_equal(got, rgb.astype(np.float32) / np.float32(255))
    assert got[0, 0, 0] == np.float32(rgb[0, 0, 0]) / np.float32(255)  # R stays first


def test_read_16bit_png(tmp_path):
    rgb = np.zeros((4, 5, 3), np.uint16)
    rgb[..., 0] = 65535
    rgb[..., 1] = 32768
    rgb[..., 2] = 1
    cv2.imwrite(str(tmp_path / "a.png"), _bgr(rgb))
    got = read_image(tmp_path / "a.png")
    assert got.dtype == np.float32
    assert np.all(got[..., 0] == 1.0)
    np.testing.assert_allclose(got[..., 1], 32768 / 65535, rtol=1e-7)
    np.testing.assert_allclose(got[..., 2], 1 / 65535, rtol=1e-6)


def test_read_grayscale_png_replicated(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    got = read_image(tmp_path / "g.png")
    assert got.shape == (6, 8, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], gray / np.float32(255))


def test_read_gray_alpha_png_keeps_gray(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    alpha = np.full((3, 4), 7, np.uint8)
    (tmp_path / "ga.png").write_bytes(_gray_alpha_png(gray, alpha))
    got = read_image(tmp_path / "ga.png")
    assert got.shape == (3, 4, 3)
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], gray / np.float32(255))


def test_read_rgba_drops_alpha(tmp_path):
    rgb = _rgb8(5, 7)
    bgra = np.dstack([_bgr(rgb), np.full((5, 7), 3, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    got = read_image(tmp_path / "a.png")
    assert got.shape == (5, 7, 3)
    np.testing.assert_array_equal(got, rgb / np.float32(255))


@pytest.mark.parametrize("ext", [".bmp", ".tif", ".tiff"])
def test_read_lossless_formats_exact(tmp_path, ext):
    rgb = _rgb8(seed=3)
    cv2.imwrite(str(tmp_path / f"a{ext}"), _bgr(rgb))
    np.testing.assert_array_equal(read_image(tmp_path / f"a{ext}"), rgb / np.float32(255))


def test_read_jpeg_close_and_rgb_order(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200  # strongly red
    rgb[..., 2] = 30
    cv2.imwrite(str(tmp_path / "a.jpg"), _bgr(rgb), [cv2.IMWRITE_JPEG_QUALITY, 100])
    got = read_image(tmp_path / "a.jpg")
    assert got.shape == (16, 16, 3)
    np.testing.assert_allclose(got, rgb / 255.0, atol=3 / 255)


def test_read_jpeg_with_trailing_bytes_is_not_truncated(tmp_path):
    rgb = _rgb8(16, 16)
    ok, enc = cv2.imencode(".jpg", _bgr(rgb))
    base = enc.tobytes()
    (tmp_path / "short_tail.jpg").write_bytes(base + b"\x00" * 50)
    (tmp_path / "long_tail.jpg").write_bytes(base + b"\x00" * 5000)  # EOI not in the last KB
    reference = read_image(tmp_path / "short_tail.jpg")
    np.testing.assert_array_equal(read_image(tmp_path / "long_tail.jpg"), reference)


def test_read_unicode_path(tmp_path):
    rgb = _rgb8()
    ok, enc = cv2.imencode(".png", _bgr(rgb))
    path = tmp_path / "régen_雨.png"
    path.write_bytes(enc.tobytes())
    np.testing.assert_array_equal(read_image(path), rgb / np.float32(255))


def test_read_float_tiff(tmp_path, caplog):
    rgb = np.linspace(-0.5, 1.5, 4 * 4 * 3, dtype=np.float32).reshape(4, 4, 3)
    cv2.imwrite(str(tmp_path / "f.tif"), _bgr(rgb))
    with caplog.at_level("WARNING"):
        got = read_image(tmp_path / "f.tif")
    np.testing.assert_array_equal(got, np.clip(rgb, 0, 1))
    assert "f.tif: floating-point pixel values span [-0.5, 1.5]; clipping" in caplog.text


def test_read_float_tiff_nan(tmp_path):
    rgb = np.full((4, 4, 3), 0.5, np.float32)
    rgb[1, 2, 0] = np.nan
    cv2.imwrite(str(tmp_path / "n.tif"), rgb)
    with pytest.raises(DataError, match=r"n\.tif contains NaN or infinite pixel values"):
        read_image(tmp_path / "n.tif")


def test_read_unsupported_dtype(tmp_path):
    cv2.imwrite(str(tmp_path / "i.tif"), np.zeros((4, 4, 3), np.int16))
    with pytest.raises(DataError, match=r"i\.tif has unsupported pixel type int16"):
        read_image(tmp_path / "i.tif")


def test_read_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"image file .*missing\.png does not exist"):
        read_image(tmp_path / "missing.png")


def test_read_zero_byte_file(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"z\.png is empty \(0 bytes\)"):
        read_image(tmp_path / "z.png")


def test_read_truncated_png(tmp_path):
    ok, enc = cv2.imencode(".png", _bgr(_rgb8(32, 32)))
    data = enc.tobytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) - 20])
    with pytest.raises(DataError, match=r"t\.png is a truncated PNG \(no IEND chunk"):
        read_image(tmp_path / "t.png")


def test_read_truncated_jpeg(tmp_path):
    ok, enc = cv2.imencode(".jpg", _bgr(_rgb8(64, 64)))
    data = enc.tobytes()
    (tmp_path / "t.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(DataError, match=r"t\.jpg is a truncated JPEG \(no end-of-image marker"):
        read_image(tmp_path / "t.jpg")


def test_read_truncated_bmp(tmp_path):
    ok, enc = cv2.imencode(".bmp", _bgr(_rgb8(16, 16)))
    data = enc.tobytes()
    (tmp_path / "t.bmp").write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"t\.bmp is a truncated BMP \(\d+ bytes, the header declares"):
        read_image(tmp_path / "t.bmp")


def test_read_text_file_named_png(tmp_path):
    (tmp_path / "fake.png").write_text("this is not an image\n" * 5)
    with pytest.raises(DataError, match=r"fake\.png is not a PNG, JPEG, BMP, TIFF or WebP file"):
        read_image(tmp_path / "fake.png")


def test_read_folder_is_not_a_file(tmp_path):
    (tmp_path / "d.png").mkdir()
    with pytest.raises(DataError, match=r"d\.png is not a file"):
        read_image(tmp_path / "d.png")


# ---------------------------------------------------------------- write_image

@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".TIFF"])
def test_write_8bit_round_trip(tmp_path, ext):
    rgb = _rgb8(seed=5) / np.float32(255)
    path = tmp_path / "deep" / "er" / f"out{ext}"
    write_image(path, rgb)
    np.testing.assert_array_equal(read_image(path), rgb)
    assert sorted(os.listdir(path.parent)) == [f"out{ext}"]  # no temporary left behind


@pytest.mark.parametrize("ext", [".png", ".tiff"])
def test_write_16bit_round_trip(tmp_path, ext):
    values = np.random.default_rng(1).integers(0, 65536, (5, 6, 3))
    rgb = values / 65535.0
    write_image(tmp_path / f"o{ext}", rgb, bit_depth=16)
    raw = cv2.imread(str(tmp_path / f"o{ext}"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16
    np.testing.assert_array_equal(raw[:, :, ::-1], values)
    np.testing.assert_allclose(read_image(tmp_path / f"o{ext}"), rgb, atol=1e-7)


def test_write_rounds_and_clips(tmp_path):
    rgb = np.array([[[-0.3, 1.7, 0.6 / 255]], [[1.4 / 255, 0.5, 1.0]]], np.float32)
    write_image(tmp_path / "c.png", rgb)
    raw = cv2.imread(str(tmp_path / "c.png"), cv2.IMREAD_UNCHANGED)[:, :, ::-1]
    np.testing.assert_array_equal(raw, [[[0, 255, 1]], [[1, 128, 255]]])


def test_write_jpeg(tmp_path):
    rgb = np.full((16, 16, 3), 0.4, np.float32)
    write_image(tmp_path / "a.JPG", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "a.JPG"), rgb, atol=2 / 255)


def test_write_unknown_extension(tmp_path):
    with pytest.raises(DataError, match=r"cannot write .*a\.gif: unknown image extension '\.gif'"):
        write_image(tmp_path / "a.gif", np.zeros((2, 2, 3)))


def test_write_16bit_jpeg_rejected(tmp_path):
    with pytest.raises(DataError, match=r"cannot write .*a\.jpg with 16 bits per channel"):
        write_image(tmp_path / "a.jpg", np.zeros((2, 2, 3)), bit_depth=16)


def test_write_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="bit_depth must be 8 or 16, got 12"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 3)), bit_depth=12)
    with pytest.raises(ValueError, match=r"expected an H x W x 3 image, got shape \(2, 2, 4\)"):
        write_image(tmp_path / "a.png", np.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="contains NaN or infinite values"):
        write_image(tmp_path / "a.png", np.full((2, 2, 3), np.nan))
    assert not (tmp_path / "a.png").exists()


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.png"
    write_image(path, np.zeros((4, 4, 3)))
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk went away")

    monkeypatch.setattr(image_files.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        write_image(path, np.ones((4, 4, 3)))
    assert path.read_bytes() == before  # the old file is intact
    assert os.listdir(tmp_path) == ["keep.png"]  # and the temporary is gone
