"""Limits under load: request sizes, images' pixels, and the predictions and pixels in flight at once.

The defaults here are those of ``erlrestore-serve``'s flags; the module
docstring of :mod:`erlrestore.serving` describes how they bound the server.
"""

import collections
import contextlib
import ctypes
import ctypes.util
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
# Pixels of the images that predictions running at once may hold: two 12-megapixel photos and change.
DEFAULT_MAX_INFLIGHT_PIXELS = 32_000_000
# After a prediction of at least this many pixels, freed heap memory is handed back to the system.
RELEASE_AFTER_PIXELS = 1_000_000
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


_MALLOC_TRIM = []  # [the C library's malloc_trim, or None], looked up once


def release_memory():
    """Hands the heap memory freed so far back to the system (glibc's ``malloc_trim(0)``); True if it could.

    A large request's buffers (body, decoded image, blending sums, answer)
    are freed when it ends, but glibc keeps freed memory in its arenas (one
    per thread that allocated, and the server answers each connection in
    its own thread), so the process would stay at its peak resident size.
    The server calls this after each prediction of at least
    :data:`RELEASE_AFTER_PIXELS` pixels. False (nothing done) where the C
    library has no ``malloc_trim`` (not glibc).
    """
    if not _MALLOC_TRIM:
        function = None
        try:
            library = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            function = library.malloc_trim
            function.argtypes = [ctypes.c_size_t]
            function.restype = ctypes.c_int
        except (OSError, AttributeError):
            function = None
        _MALLOC_TRIM.append(function)
    function = _MALLOC_TRIM[0]
    if function is None:
        return False
    function(0)
    return True


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
    """Refuses (ServingError 400) encoded images in ``values`` whose headers declare more than ``limit`` pixels.

    ``values`` is an iterable of bytes; the limit applies to each image and
    to their total (a batch of many large images is as costly as one huge
    one). Data whose size cannot be read from its header is not counted.
    ``limit`` None or 0 turns the check off. Returns the ``(width, height)``
    of each image (None where the header does not tell), in order.
    """
    sizes = [image_dimensions(value) if isinstance(value, (bytes, bytearray, memoryview)) else None
             for value in values]
    check_pixels(sizes, limit, what, ("declares", "declare"))
    return sizes


def check_pixels(sizes, limit, what, verbs=("is", "have")):
    """Refuses (ServingError 400) images of ``sizes`` (``(width, height)`` or None) above ``limit`` pixels.

    Each image, and all of them together, may have at most ``limit`` pixels
    (``--max_image_pixels``; None or 0: no limit). ``verbs`` word the
    message for one image and for several. Returns the total.
    """
    total = 0
    for index, size in enumerate(sizes):
        if size is None:
            continue
        pixels = size[0] * size[1]
        if limit and pixels > limit:
            raise ServingError(
                400,
                f"{what}: image {index} {verbs[0]} {size[0]}x{size[1]} = {pixels} pixels, more than the limit of "
                f"{limit} (--max_image_pixels); send a smaller image",
            )
        total += pixels
        if limit and total > limit:
            raise ServingError(
                400,
                f"{what}: images 0 to {index} {verbs[1]} {total} pixels in all, more than the limit of {limit} "
                "(--max_image_pixels); send fewer images per request",
            )
    return total


class PredictionLimiter:
    """Bounds the predictions in flight: how many run at once, how many pixels they hold, how many wait.

    * Slots: at most ``max_concurrent`` predictions run (parse, model,
      answer) at the same time.
    * Pixels: the images of running predictions hold at most
      ``max_inflight_pixels`` pixels together (None or 0: no budget). A
      prediction's pixels are its images' sizes (``N x H x W`` of a float
      batch, what each encoded image declares in its header), the memory it
      holds while tiling (decoded image, blending sums, answer) grows with
      them. A prediction whose pixels do not fit waits, in order of arrival
      (first come, first served, so a large image is not starved by a
      stream of small ones); one larger than the whole budget runs when no
      other prediction holds pixels (``max_image_pixels`` refuses larger
      images before that).
    * Queue: up to ``max_queue`` more requests are admitted (read their
      body) and wait.

    A request that finds ``max_concurrent + max_queue`` already admitted,
    or whose waits (for a slot, then for pixels) last longer than
    ``queue_timeout`` seconds in all, gets OverloadedError (503 /
    UNAVAILABLE), as TF Serving answers when its batching queue is full.

    Use::

        with limiter.admitted():            # everything the request holds memory for
            body = read_body()
            with limiter.running() as turn:   # a slot: parsing, the model, the answer
                arrays = parse(body)
                with turn.pixels(count):      # the images' pixels, while the model runs
                    outputs = model(arrays)
                answer(outputs)
    """

    def __init__(self, max_concurrent=DEFAULT_MAX_CONCURRENT, max_queue=DEFAULT_MAX_QUEUE,
                 queue_timeout=DEFAULT_QUEUE_TIMEOUT, max_inflight_pixels=DEFAULT_MAX_INFLIGHT_PIXELS):
        if int(max_concurrent) < 1:
            raise ValueError(f"max_concurrent must be at least 1, got {max_concurrent}")
        if int(max_queue) < 0:
            raise ValueError(f"max_queue must be 0 or more, got {max_queue}")
        if not float(queue_timeout) > 0:
            raise ValueError(f"queue_timeout must be positive, got {queue_timeout}")
        if max_inflight_pixels is not None and int(max_inflight_pixels) < 0:
            raise ValueError(f"max_inflight_pixels must be 0 (no budget) or more, got {max_inflight_pixels}")
        self.max_concurrent = int(max_concurrent)
        self.max_queue = int(max_queue)
        self.queue_timeout = float(queue_timeout)
        self.max_inflight_pixels = int(max_inflight_pixels or 0)
        self._lock = threading.Lock()
        self._slot_free = threading.Condition(self._lock)
        self._pixels_free = threading.Condition(self._lock)
        self._admitted = 0
        self._running = 0
        self._pixels = 0
        self._pixel_queue = collections.deque()  # tickets of the predictions waiting for pixels, oldest first
        self.refused = 0  # requests answered OverloadedError so far

    def counts(self):
        """``(admitted, running)`` now."""
        with self._lock:
            return self._admitted, self._running

    def pixels_in_use(self):
        """``(pixels held by running predictions, predictions waiting for pixels)`` now."""
        with self._lock:
            return self._pixels, len(self._pixel_queue)

    @contextlib.contextmanager
    def admitted(self):
        with self._lock:
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
            with self._lock:
                self._admitted -= 1

    @contextlib.contextmanager
    def running(self):
        """Waits for a slot; yields a :class:`Turn` (whose ``pixels()`` waits for pixels within the same deadline)."""
        turn = Turn(self, time.monotonic() + self.queue_timeout)
        with self._lock:
            while self._running >= self.max_concurrent:
                remaining = turn.deadline - time.monotonic()
                if remaining <= 0:
                    self.refused += 1
                    raise OverloadedError(
                        f"the server is busy: no prediction slot of {self.max_concurrent} came free within "
                        f"{self.queue_timeout:g} s; retry later"
                    )
                self._slot_free.wait(remaining)
            self._running += 1
        try:
            yield turn
        finally:
            with self._lock:
                self._running -= 1
                self._slot_free.notify()

    def _fits(self, count):
        budget = self.max_inflight_pixels
        return not budget or self._pixels == 0 or self._pixels + count <= budget

    @contextlib.contextmanager
    def _hold_pixels(self, count, deadline):
        count = max(0, int(count))
        ticket = object()
        with self._lock:
            self._pixel_queue.append(ticket)
            try:
                while self._pixel_queue[0] is not ticket or not self._fits(count):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        self.refused += 1
                        raise OverloadedError(
                            f"the server is busy: the {count} pixels of this request did not fit within "
                            f"{self.queue_timeout:g} s in the {self.max_inflight_pixels} pixels that predictions "
                            f"may hold at once (--max_inflight_pixels; {self._pixels} in use); retry later"
                        )
                    self._pixels_free.wait(remaining)
                self._pixels += count
            finally:
                self._pixel_queue.remove(ticket)
                self._pixels_free.notify_all()  # the next in line may fit now
        try:
            yield
        finally:
            with self._lock:
                self._pixels -= count
                self._pixels_free.notify_all()


class Turn:
    """A running prediction's hold on its :class:`PredictionLimiter` (from ``running()``).

    ``deadline`` (``time.monotonic()`` seconds) ends its waiting: the slot
    and the pixels share one ``queue_timeout``.
    """

    def __init__(self, limiter, deadline):
        self.limiter = limiter
        self.deadline = deadline

    def pixels(self, count):
        """A context holding ``count`` pixels of the budget; waits (in order of arrival) until they fit."""
        return self.limiter._hold_pixels(count, self.deadline)  # pylint: disable=protected-access
