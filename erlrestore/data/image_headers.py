"""Bit depths read from image file headers (PNG ``IHDR``, TIFF ``BitsPerSample``), without decoding pixels.

:func:`erlrestore.inference.source_bit_depth` uses these to write restored
PNG and TIFF files with the input's depth (16 bits for deep inputs, 8
otherwise). Image sizes from headers are :func:`erlrestore.data.image_files.declared_size`'s.
Both functions take the first bytes of a file and never raise for data
that is short or of another format: they return None.
"""

# Signature (8 bytes) + IHDR length (4) + "IHDR" (4) + width (4) + height (4), then the bit depth byte.
_PNG_BIT_DEPTH_OFFSET = 24
_TIFF_MAGIC = 42  # classic TIFF; BigTIFF (43) is not read
_TIFF_BITS_PER_SAMPLE = 258  # the BitsPerSample tag (type SHORT)


def png_bit_depth(data):
    """The bit depth per sample that a PNG's ``IHDR`` declares (1, 2, 4, 8 or 16), or None when ``data`` is too short.

    ``data`` is the start of a PNG file; the signature is not checked (the
    caller knows the format).
    """
    if len(data) <= _PNG_BIT_DEPTH_OFFSET:
        return None
    return data[_PNG_BIT_DEPTH_OFFSET]


def tiff_bits_per_sample(data):
    """Largest BitsPerSample of a classic TIFF's first image, or None when ``data`` does not tell.

    ``data`` is the start of the file (or all of it). None for another
    format, BigTIFF, or an image file directory that lies beyond ``data``;
    1 when the first directory has no BitsPerSample tag (the TIFF default).
    At most the first 8 values are read (one per sample).
    """
    order = {b"II": "little", b"MM": "big"}.get(bytes(data[:2]))
    if order is None or len(data) < 8:
        return None
    if int.from_bytes(data[2:4], order) != _TIFF_MAGIC:
        return None  # BigTIFF or not a TIFF

    def number(offset, size):
        return int.from_bytes(data[offset : offset + size], order)

    ifd = number(4, 4)
    if ifd + 2 > len(data):
        return None
    for index in range(number(ifd, 2)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(data):
            return None
        if number(entry, 2) != _TIFF_BITS_PER_SAMPLE:
            continue
        count = number(entry + 4, 4)
        offset = entry + 8 if count <= 2 else number(entry + 8, 4)
        values = [number(offset + 2 * i, 2) for i in range(min(count, 8))]
        return max(values) if values else None
    return 1  # no BitsPerSample tag: the TIFF default is 1 bit
