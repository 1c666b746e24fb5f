"""A dependency-free progress bar for command-line tools, counting any unit (images, tiles) with an ETA.

It writes to stderr, so a tool's stdout stays machine-readable (the metrics
tool's last stdout line is its summary). On a terminal the bar redraws in
place after every step; when stderr is not a terminal (CI logs, pipes) it
prints a plain line about every 10%, and only for jobs of ``log_min_items``
units or more, or once the job has run ``log_min_seconds``, so logs of short
jobs stay empty and long ones still say how far they got.

:func:`progress` wraps an iterable (one unit per item); :class:`Progress`
is the counter underneath, for work whose units are not items of a loop:
``erlrestore-restore`` counts tiles with it (one 12-megapixel photo is one
image but about 60 tiles of 512 pixels, so a bar over images would sit at
0/1 until the end).

The estimated time left (``ETA``) is the elapsed time per unit done so far
times the units left; it is shown once a unit is done. Units of unequal cost
(edge tiles are smaller) make it approximate.
"""

import sys
import time


def format_seconds(seconds):
    """``"42s"``, ``"3m05s"`` or ``"1h02m"``: a short duration for progress lines."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def eta_seconds(done, total, elapsed):
    """Seconds left at the mean rate so far; None before the first unit or without a total."""
    if not total or done <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


class Progress:
    """Counts ``done`` of ``total`` units and draws them on ``stream`` (stderr by default).

    Call :meth:`update` with the units just finished (``note`` replaces the
    text shown after the counts, e.g. ``"image 2/5"``) and :meth:`close` at
    the end (or use it as a context manager). ``total`` may be None (unknown):
    then only the count and the elapsed time are drawn, and only on a
    terminal. Jobs shorter than ``min_items`` draw nothing.
    """

    def __init__(self, total, desc="", unit="", stream=None, min_items=2, log_min_items=100, log_min_seconds=10.0):
        self.stream = sys.stderr if stream is None else stream
        self.total = total
        self.desc = desc
        self.unit = unit
        self.done = 0
        self.note = ""
        self.start = time.monotonic()
        self._interactive = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._min_items = min_items
        self._log_min_items = log_min_items
        self._log_min_seconds = log_min_seconds
        self._last_decile = 0
        self._drawn = False

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def elapsed(self):
        return time.monotonic() - self.start

    def eta(self):
        """Seconds left (see the module docstring), or None."""
        return eta_seconds(self.done, self.total, self.elapsed())

    def update(self, count=1, note=None):
        """Adds ``count`` finished units (0 just redraws, e.g. for a new ``note``)."""
        self.done += count
        if note is not None:
            self.note = note
        if self.total is not None and self.total < self._min_items:
            return
        elapsed = self.elapsed()
        unit = f" {self.unit}" if self.unit else ""
        note = f" {self.note}" if self.note else ""
        if not self.total:
            if self._interactive:
                self.stream.write(f"\r{self.desc} {self.done}{unit}{note} {elapsed:.1f}s")
                self.stream.flush()
                self._drawn = True
            return
        fraction = min(1.0, self.done / self.total)
        eta = self.eta()
        eta_text = "" if eta is None or self.done >= self.total else f" ETA {format_seconds(eta)}"
        if self._interactive:
            filled = int(30 * fraction)
            self.stream.write(
                f"\r{self.desc} [{'=' * filled}{'.' * (30 - filled)}] {self.done}/{self.total}{unit}{note} "
                f"{elapsed:.1f}s{eta_text}\x1b[K"
            )
            self.stream.flush()
            self._drawn = True
        elif int(10 * fraction) > self._last_decile:
            if self.total >= self._log_min_items or elapsed >= self._log_min_seconds:
                self.stream.write(
                    f"{self.desc} {self.done}/{self.total}{unit} ({100 * fraction:.0f}%){note} {elapsed:.1f}s"
                    f"{eta_text}\n"
                )
            self._last_decile = int(10 * fraction)

    def part(self, estimate, note=None):
        """A :class:`Part` of ``estimate`` units of this bar (one file's tiles, say), shown with ``note``."""
        return Part(self, estimate, note)

    def close(self):
        """Ends the bar's line on a terminal."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class Part:
    """``estimate`` units of a :class:`Progress` counted by one piece of work; a context manager.

    Call it with the units just done (it is the ``on_tiles`` callback of
    :func:`erlrestore.inference.restore_tiled`); :meth:`resize` replaces the
    estimate once the real size is known. More units than the estimate grow
    the bar's total; on leaving, units not done (the work failed, or the
    estimate was high) are counted as done, so the bar still ends at its
    total.
    """

    def __init__(self, bar, estimate, note=None):
        self.bar = bar
        self.size = int(estimate)
        self.done = 0
        bar.update(0, note=note)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        if self.done < self.size:
            self.bar.update(self.size - self.done)
            self.done = self.size

    def resize(self, size):
        """Makes this part ``size`` units (at least those done), changing the bar's total to match."""
        size = max(int(size), self.done)
        self.bar.total = (self.bar.total or 0) + size - self.size
        self.size = size
        self.bar.update(0)

    def __call__(self, count=1):
        if self.done + count > self.size:
            self.resize(self.done + count)
        self.done += count
        self.bar.update(count)


def progress(iterable, total=None, desc="", stream=None, min_items=2, log_min_items=100, log_min_seconds=None):
    """Yields from ``iterable`` while drawing a :class:`Progress` bar (one unit per item) on ``stream``.

    Sets shorter than ``min_items`` draw nothing. Without a terminal, lines
    are logged for sets of ``log_min_items`` or more, or (when
    ``log_min_seconds`` is given) once the loop has run that long.
    """
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    bar = Progress(total, desc=desc, stream=stream, min_items=min_items, log_min_items=log_min_items,
                   log_min_seconds=float("inf") if log_min_seconds is None else log_min_seconds)
    try:
        for item in iterable:
            yield item
            bar.update(1)
    finally:
        bar.close()
