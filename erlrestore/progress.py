"""A dependency-free progress bar for command-line tools.

It writes to stderr, so a tool's stdout stays machine-readable (the metrics
tool's last stdout line is its summary). On a terminal the bar redraws in
place; when stderr is not a terminal (CI logs, pipes) it prints a plain line
about every 10%, and only for sets of ``log_min_items`` or more, so logs stay
short.
"""

import sys
import time


def progress(iterable, total=None, desc="", stream=None, min_items=2, log_min_items=100):
    """Yields from ``iterable`` while drawing a progress bar on ``stream``.

    Sets shorter than ``min_items`` draw nothing.
    """
    stream = sys.stderr if stream is None else stream
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    if total is not None and total < min_items:
        yield from iterable
        return
    interactive = hasattr(stream, "isatty") and stream.isatty()
    if not interactive and (total is None or total < log_min_items):
        yield from iterable
        return
    start = time.monotonic()
    last_decile = 0
    done = 0
    for item in iterable:
        yield item
        done += 1
        elapsed = time.monotonic() - start
        if total:
            fraction = done / total
            if interactive:
                filled = int(30 * fraction)
                stream.write(
                    f"\r{desc} [{'=' * filled}{'.' * (30 - filled)}] {done}/{total} {elapsed:.1f}s"
                )
                stream.flush()
            elif int(10 * fraction) > last_decile:
                last_decile = int(10 * fraction)
                stream.write(f"{desc} {done}/{total} ({100 * fraction:.0f}%) {elapsed:.1f}s\n")
        else:
            stream.write(f"\r{desc} {done} {elapsed:.1f}s")
            stream.flush()
    if interactive:
        stream.write("\n")
        stream.flush()
