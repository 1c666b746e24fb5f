"""Limits under load: request sizes, images' declared pixels, and predictions running or waiting at once.

The defaults here are those of ``erlrestore-serve``'s flags; the module
docstring of :mod:`erlrestore.serving` describes how they bound the server.
"""

import contextlib
import re
import threading
import time

from erlrestore.data import image_files
from erlrestore.serving.errors import OverloadedError, ServingError

DEFAULT_MAX_REQUEST_BYTES = 64 * 1024 * 1024
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_MAX_CONCURRENT = 4
DEFAULT_MAX_QUEUE = 32
DEFAULT_QUEUE_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 128
DEFAULT_DRAIN_TIMEOUT = 30.0
DEFAULT_MAX_IMAGE_PIXELS = 100_000_000  # as erlrestore.data.image_files.DEFAULT_MAX_PIXELS
_SIZE = re.compile(r"\s*([0-9]+)\s*([kmgt]i?b)?\s*", re.IGNORECASE)
_SIZE_UNITS = {
    None: 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}


def parse_byte_size(text):
    """Bytes in ``text``: an integer, optionally with a unit (``KB/MB/GB/TB`` = 1000^n, ``KiB/MiB/GiB/TiB`` = 1024^n).

    Units are case-insensitive (``64MiB``, ``64 mib``, ``1000000``). Raises
    ValueError naming ``text`` for anything else, and for zero.
    """
    match = _SIZE.fullmatch(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a size in bytes (examples: 1048576, 64MiB, 10MB)")
    unit = match.group(2).lower() if match.group(2) else None
    size = int(match.group(1)) * _SIZE_UNITS[unit]
    if size <= 0:
        raise ValueError(f"size {text!r} must be positive")
    return size


def image_dimensions(data):
    """``(width, height)`` an encoded image declares in its header, or None when it cannot be told.

    Reads only the header (:func:`erlrestore.data.image_files.declared_size`: PNG,
    JPEG, BMP, GIF, TIFF, WebP) without decoding any pixels, so that an
    image declaring a huge size (a decompression bomb) can be refused before
    TensorFlow allocates it. None for other data, or a header cut short;
    such data is left to the decoder, which refuses what it cannot read.
    """
    try:
        found = image_files.declared_size(data)
    except image_files.HeaderError:
        return None
    return None if found is None else found[1:]


def check_image_pixels(values, limit, what):
    """Refuses (ServingError 413) encoded images in ``values`` whose headers declare more than ``limit`` pixels.

    ``values`` is an iterable of bytes; the limit applies to each image and
    to their total (a batch of many large images is as costly as one huge
    one). Data whose size cannot be read from its header is not counted.
    ``limit`` None or 0 turns the check off.
    """
    if not limit:
        return
    total = 0
    for index, value in enumerate(values):
        size = image_dimensions(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
        if size is None:
            continue
        pixels = size[0] * size[1]
        if pixels > limit:
            raise ServingError(
                413,
                f"{what}: image {index} declares {size[0]}x{size[1]} = {pixels} pixels, more than the limit of "
                f"{limit} (--max_image_pixels)",
            )
        total += pixels
        if total > limit:
            raise ServingError(
                413,
                f"{what}: images 0 to {index} declare {total} pixels in all, more than the limit of {limit} "
                "(--max_image_pixels); send fewer images per request",
            )


class PredictionLimiter:
    """Bounds the predictions that run at once, and those that wait for a turn.

    At most ``max_concurrent`` predictions run at the same time; up to
    ``max_queue`` more are admitted and wait, each at most ``queue_timeout``
    seconds for a turn (turns go to waiters in about the order they came,
    not strictly). A request that finds ``max_concurrent + max_queue``
    already admitted, or whose wait runs out, gets OverloadedError (503 /
    UNAVAILABLE), as TF Serving answers when its batching queue is full.

    Use ``with limiter.admitted():`` around everything a request holds
    memory for (reading its body), and ``with limiter.running():`` inside it
    around the work itself (parsing, the model, the answer).
    """

    def __init__(self, max_concurrent=DEFAULT_MAX_CONCURRENT, max_queue=DEFAULT_MAX_QUEUE,
                 queue_timeout=DEFAULT_QUEUE_TIMEOUT):
        if int(max_concurrent) < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if int(max_queue) < 0:
            raise ValueError(f"max_queue must be 0 or more, got {max_queue}")
        if not float(queue_timeout) > 0:
            raise ValueError(f"queue_timeout must be positive, got {queue_timeout}")
        self.max_concurrent = int(max_concurrent)
        self.max_queue = int(max_queue)
        self.queue_timeout = float(queue_timeout)
        self._condition = threading.Condition()
        self._admitted = 0
        self._running = 0
        self.refused = 0  # requests answered OverloadedError so far

    def counts(self):
        """``(admitted, running)`` now."""
        with self._condition:
            return self._admitted, self._running

    @contextlib.contextmanager
    def admitted(self):
        with self._condition:
            if self._admitted >= self.max_concurrent + self.max_queue:
                self.refused += 1
                raise OverloadedError(
                    f"the server is busy ({self.max_concurrent} predictions running and {self.max_queue} waiting, "
                    "the most it takes); retry later"
                )
            self._admitted += 1
        try:
            yield
        finally:
            with self._condition:
                self._admitted -= 1

    @contextlib.contextmanager
    def running(self):
        deadline = time.monotonic() + self.queue_timeout
        with self._condition:
            while self._running >= self.max_concurrent:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.refused += 1
                    raise OverloadedError(
                        f"the server is busy: no prediction slot of {self.max_concurrent} came free within "
                        f"{self.queue_timeout:g} s; retry later"
                    )
                self._condition.wait(remaining)
            self._running += 1
        try:
            yield
        finally:
            with self._condition:
                self._running -= 1
                self._condition.notify()
