"""Helpers the tools share: the process's resident set, a synthetic test image, matplotlib when installed."""

import ctypes
import json
import resource
import sys
import time

import numpy as np

# --------------------------------------------------------------------------
# Memory: the resident set (Linux's /proc/self/status, else getrusage).
# --------------------------------------------------------------------------


def status_bytes(field):
    """A ``kB`` field (``VmRSS``, ``VmHWM``) of ``/proc/self/status`` in bytes, or None where unavailable."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes():
    """Linux's peak resident set since the last :func:`reset_peak_rss` (``VmHWM``), or None."""
    return status_bytes("VmHWM")


def max_rss_bytes():
    """The process's peak resident set so far (``ru_maxrss``: kB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value if sys.platform == "darwin" else value * 1024


def current_rss_bytes():
    """The current resident set (``VmRSS``), or the peak so far where it cannot be read."""
    value = status_bytes("VmRSS")
    return max_rss_bytes() if value is None else value


def reset_peak_rss():
    """Resets Linux's ``VmHWM`` peak to the current RSS (``/proc/self/clear_refs``); True when it worked."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return peak_rss_bytes() is not None


def release_free_heap():
    """Returns freed ``malloc`` memory to the system (glibc), so the resident set is what is alive."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --------------------------------------------------------------------------
# Test images.
# --------------------------------------------------------------------------


def synthetic_image(height, width, seed=0):
    """A float32 ``height x width x 3`` test image in [0, 1]: smooth colour ramps, stripes and mild noise."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * (7 * x + 3 * y))
    image = np.stack([0.2 + 0.6 * x + 0 * y, 0.2 + 0.6 * y + 0 * x, stripes], axis=-1)
    image += rng.normal(0.0, 0.03, image.shape).astype(np.float32)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def encode_png(image):
    """float ``H x W x 3`` RGB in [0, 1] -> 8-bit PNG bytes."""
    import cv2  # pylint: disable=import-outside-toplevel

    levels = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    ok, data = cv2.imencode(".png", cv2.cvtColor(levels, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError("OpenCV could not encode the test PNG")
    return data.tobytes()


# --------------------------------------------------------------------------
# Figures.
# --------------------------------------------------------------------------


def load_pyplot():
    """matplotlib.pyplot on the Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib  # pylint: disable=import-outside-toplevel

        matplotlib.use("Agg")
        from matplotlib import pyplot  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return pyplot


def report(line):
    """A progress line on stderr, so that stdout holds only the result."""
    print(line, file=sys.stderr, flush=True)


def run_and_print(measure, output=None):
    """Runs ``measure(report=...)`` with :func:`report`, then :func:`print_result`; its ValueError is a usage error."""
    from absl import app

    try:
        result = measure(report=report)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    print_result(result, output)


def print_result(result, output=None):
    """Prints a benchmark's ``result`` as indented JSON on stdout and, with ``output``, writes it there too."""
    text = json.dumps(result, indent=1)
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text, flush=True)


def time_calls(fn, steps, warmup, max_seconds=0.0):
    """Seconds of each of ``steps`` calls of ``fn()``, after one untimed first call and ``warmup`` untimed ones.

    The first call traces (TensorFlow) or warms caches; it is never timed.
    With ``max_seconds > 0`` the timing stops early once at least two calls
    are timed and they took ``max_seconds`` in all.
    """
    for _ in range(warmup + 1):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if max_seconds > 0 and len(times) >= 2 and sum(times) >= max_seconds:
            break
    return times
