"""Tests of erlrestore.serving.limits: byte sizes, images' declared sizes and the prediction limiter."""

import threading
import time

import cv2
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import serving
from serving_testing import jpeg_header, png_header


@pytest.mark.parametrize("text, size", [("64MiB", 64 * 2**20), ("10MB", 10**7), ("1048576", 2**20),
                                        (" 2 kib ", 2048), ("1GiB", 2**30)])
def test_parse_byte_size(text, size):
    assert serving.parse_byte_size(text) == size


@pytest.mark.parametrize("text", ["64 MiBs", "-1", "0", "1.5MB", ""])
def test_parse_byte_size_refuses(text):
    with pytest.raises(ValueError, match="is not a size in bytes|must be positive"):
        serving.parse_byte_size(text)


def _encoded(image, extension, **options):
    if extension in (".gif", ".webp-pil"):
        pil = pytest.importorskip("PIL.Image")
        buffer = __import__("io").BytesIO()
        pil.fromarray(image).save(buffer, format="GIF" if extension == ".gif" else "WEBP", **options)
        return buffer.getvalue()
    ok, data = cv2.imencode(extension, image[..., ::-1])
    assert ok
    return data.tobytes()


@pytest.mark.parametrize("kind", ["png", "jpeg", "jpeg-progressive", "bmp", "gif", "webp-lossy", "webp-lossless",
                                  "webp-pil"])
def test_image_dimensions_reads_the_header_of_each_format(kind):
    image = (np.random.default_rng(0).random((13, 21, 3)) * 255).astype(np.uint8)
    if kind == "png":
        data = tf.io.encode_png(image).numpy()
    elif kind == "jpeg":
        data = tf.io.encode_jpeg(image).numpy()
    elif kind == "jpeg-progressive":
        data = tf.io.encode_jpeg(image, progressive=True).numpy()
    elif kind == "bmp":
        data = _encoded(image, ".bmp")
    elif kind == "gif":
        data = _encoded(image, ".gif")
    elif kind == "webp-lossy":
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 80])
        data = data.tobytes()
    elif kind == "webp-lossless":
        ok, data = cv2.imencode(".webp", image, [cv2.IMWRITE_WEBP_QUALITY, 101])
        data = data.tobytes()
    else:
        data = _encoded(image, ".webp-pil", lossless=False, exif=b"Exif\x00\x00")  # VP8X
    assert serving.image_dimensions(data) == (21, 13)
    decoded = tf.io.decode_image(data, channels=3, expand_animations=False)
    assert tuple(decoded.shape[:2]) == (13, 21)  # what TensorFlow would allocate


def test_image_dimensions_of_crafted_and_broken_headers():
    assert serving.image_dimensions(png_header(100_000, 70_000)) == (100_000, 70_000)
    assert serving.image_dimensions(jpeg_header(65_000, 65_000)) == (65_000, 65_000)
    assert serving.image_dimensions(jpeg_header(300, 200, frame_marker=0xC2)) == (300, 200)
    assert serving.image_dimensions(b"GIF89a" + (40_000).to_bytes(2, "little") + (9).to_bytes(2, "little")) == (
        40_000, 9)
    bmp = b"BM" + bytes(12) + (40).to_bytes(4, "little") + (5).to_bytes(4, "little", signed=True) + (
        -7).to_bytes(4, "little", signed=True)
    assert serving.image_dimensions(bmp) == (5, 7)
    for data in (b"", b"hello", b"\x89PNG\r\n\x1a\n\x00", b"\xff\xd8\xff", b"\xff\xd8" + b"\xff\xda\x00\x02",
                 b"\xff\xd8\xff\xe0\x00\x00", b"GIF89a\x01", b"BM\x00", b"RIFF\x00\x00\x00\x00WEBPVP8Z"):
        assert serving.image_dimensions(data) is None, data


def test_prediction_limiter_refuses_beyond_its_queue_and_after_its_queue_timeout():
    limiter = serving.PredictionLimiter(max_concurrent=1, max_queue=1, queue_timeout=0.05)
    with limiter.admitted(), limiter.running():
        assert limiter.counts() == (1, 1)
        with limiter.admitted():
            with pytest.raises(serving.OverloadedError, match=r"no prediction slot of 1 came free within 0\.05 s"):
                with limiter.running():
                    pass
            with pytest.raises(serving.OverloadedError, match=r"1 predictions running and 1 waiting"):
                with limiter.admitted():
                    pass
    assert limiter.counts() == (0, 0) and limiter.refused == 2
    with limiter.admitted(), limiter.running():  # free again
        assert limiter.counts() == (1, 1)


@pytest.mark.parametrize("arguments, message", [((0, 1, 1.0), "max_concurrent must be at least 1"),
                                                ((1, -1, 1.0), "max_queue must be 0 or more"),
                                                ((1, 1, 0.0), "queue_timeout must be positive")])
def test_prediction_limiter_checks_its_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        serving.PredictionLimiter(*arguments)


def _hold(limiter, pixels, entered, release):
    """In a thread: takes a slot and ``pixels`` of the budget, sets ``entered``, waits for ``release``."""
    def body():
        with limiter.admitted(), limiter.running() as turn, turn.pixels(pixels):
            entered.set()
            assert release.wait(10)
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    assert entered.wait(10)
    return thread


def test_pixel_budget_waits_in_order_of_arrival_and_refuses_after_the_queue_timeout():
    limiter = serving.PredictionLimiter(max_concurrent=4, max_queue=4, queue_timeout=0.3, max_inflight_pixels=100)
    release = threading.Event()
    holder = _hold(limiter, 60, threading.Event(), release)
    assert limiter.pixels_in_use() == (60, 0)
    with limiter.running() as turn:
        with turn.pixels(40):  # fits beside the 60
            assert limiter.pixels_in_use() == (100, 0)
        started = time.monotonic()
        with pytest.raises(serving.OverloadedError, match=r"the 41 pixels of this request did not fit within 0\.3 s "
                                                          r"in the 100 pixels .* \(--max_inflight_pixels; 60 in use\)"):
            with turn.pixels(41):
                pass
        assert time.monotonic() - started >= 0.25
    assert limiter.refused == 1 and limiter.pixels_in_use() == (60, 0)
    release.set()
    holder.join(10)
    assert limiter.pixels_in_use() == (0, 0) and limiter.counts() == (0, 0)


def test_pixel_budget_first_come_first_served_and_an_oversized_request_runs_alone():
    limiter = serving.PredictionLimiter(max_concurrent=4, max_queue=4, queue_timeout=10.0, max_inflight_pixels=100)
    release = threading.Event()
    holder = _hold(limiter, 50, threading.Event(), release)
    order = []

    def wants(pixels):
        with limiter.running() as turn, turn.pixels(pixels):
            order.append((pixels, limiter.pixels_in_use()[0]))

    big = threading.Thread(target=wants, args=(500,))  # more than the whole budget: waits for an empty budget
    big.start()
    wait = time.monotonic() + 10
    while limiter.pixels_in_use()[1] < 1 and time.monotonic() < wait:
        time.sleep(0.01)
    small = threading.Thread(target=wants, args=(10,))  # would fit now, but arrived after the big one
    small.start()
    while limiter.pixels_in_use()[1] < 2 and time.monotonic() < wait:
        time.sleep(0.01)
    assert limiter.pixels_in_use() == (50, 2) and order == []
    release.set()
    for thread in (holder, big, small):
        thread.join(10)
    assert order == [(500, 500), (10, 10)]  # the big one alone, then the small one
    assert limiter.pixels_in_use() == (0, 0) and limiter.refused == 0


def test_no_pixel_budget_never_waits():
    limiter = serving.PredictionLimiter(max_concurrent=2, max_queue=0, queue_timeout=0.1, max_inflight_pixels=0)
    with limiter.running() as first, first.pixels(10**12), limiter.running() as second, second.pixels(10**12):
        assert limiter.pixels_in_use() == (2 * 10**12, 0)


def test_check_pixels_refuses_with_400():
    assert serving.check_pixels([(10, 10), None, (5, 4)], 200, "x") == 120
    with pytest.raises(serving.ServingError, match=r"^x: image 1 is 20x10 = 200 pixels, more than the limit of "
                                                   r"100 \(--max_image_pixels\); send a smaller image$") as raised:
        serving.check_pixels([(5, 5), (20, 10)], 100, "x")
    assert raised.value.status == 400
    with pytest.raises(serving.ServingError, match=r"images 0 to 1 have 120 pixels in all") as raised:
        serving.check_pixels([(6, 10)] * 3, 100, "x")
    assert raised.value.status == 400
    assert serving.check_pixels([(10**5, 10**5)], 0, "x") == 10**10  # no limit
