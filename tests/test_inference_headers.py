"""erlrestore.data.image_headers: bit depths read from PNG and TIFF headers, and the depth restored files get."""

import struct

import cv2
import numpy as np
import pytest

from erlrestore import inference
from erlrestore.data import image_headers


def _tiff(order, entries, magic=42, ifd=8, tail=b""):
    """A classic TIFF header with one image file directory of ``entries`` (tag, type, count, value bytes)."""
    mark = b"II" if order == "<" else b"MM"
    head = mark + struct.pack(order + "HI", magic, ifd)
    directory = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        directory += struct.pack(order + "HHI", tag, kind, count) + value.ljust(4, b"\0")
    return head + directory + struct.pack(order + "I", 0) + tail


@pytest.mark.parametrize("depth", [8, 16])
def test_png_bit_depth_of_real_files(tmp_path, depth):
    dtype = np.uint16 if depth == 16 else np.uint8
    path = tmp_path / "image.png"
    assert cv2.imwrite(str(path), np.zeros((5, 7, 3), dtype))
    data = path.read_bytes()
    assert image_headers.png_bit_depth(data) == depth
    assert image_headers.png_bit_depth(data[:24]) is None  # cut before the depth byte
    assert inference.source_bit_depth(path) == depth


@pytest.mark.parametrize("order", ["<", ">"])
def test_tiff_bits_per_sample_inline_and_at_an_offset(order):
    bits_tag, short = 258, 3
    # One sample: the value sits in the entry itself.
    inline = _tiff(order, [(256, short, 1, struct.pack(order + "H", 9)),
                           (bits_tag, short, 1, struct.pack(order + "H", 16))])
    assert image_headers.tiff_bits_per_sample(inline) == 16
    # Three samples (6 bytes) do not fit in the entry: it holds their offset, after the directory (8 + 2 + 12 + 4).
    values = struct.pack(order + "HHH", 8, 16, 8)
    offset = _tiff(order, [(bits_tag, short, 3, struct.pack(order + "I", 26))], tail=values)
    assert image_headers.tiff_bits_per_sample(offset) == 16  # the largest
    assert image_headers.tiff_bits_per_sample(_tiff(order, [(256, short, 1, b"\0\1")])) == 1  # no tag: the default


def test_tiff_headers_that_do_not_tell_give_none():
    whole = _tiff("<", [(258, 3, 1, struct.pack("<H", 8))])
    assert image_headers.tiff_bits_per_sample(whole) == 8
    assert image_headers.tiff_bits_per_sample(_tiff("<", [], magic=43)) is None  # BigTIFF
    assert image_headers.tiff_bits_per_sample(b"\x89PNG\r\n\x1a\n" + bytes(30)) is None  # not a TIFF
    assert image_headers.tiff_bits_per_sample(whole[:6]) is None  # shorter than the header
    assert image_headers.tiff_bits_per_sample(_tiff("<", [], ifd=4096)) is None  # directory beyond the data
    assert image_headers.tiff_bits_per_sample(whole[:14]) is None  # entry cut short


def test_a_tiff_whose_directory_is_past_the_first_bytes_is_read_whole(tmp_path):
    # The directory after 100 KB of pixel data: the first 64 KiB do not tell, the whole file does.
    order, pixels = "<", bytes(100_000)
    data = b"II" + struct.pack("<HI", 42, 8 + len(pixels)) + pixels
    data += struct.pack("<H", 1) + struct.pack("<HHI", 258, 3, 1) + struct.pack("<H", 8).ljust(4, b"\0")
    data += struct.pack(order + "I", 0)
    path = tmp_path / "late.tif"
    path.write_bytes(data)
    assert image_headers.tiff_bits_per_sample(data[: 1 << 16]) is None
    assert inference.source_bit_depth(path) == 8
