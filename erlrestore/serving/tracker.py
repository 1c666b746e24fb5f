"""Progress of the predictions in flight, by request id, for ``GET /v1/progress/<request id>``.

A client names its ``:predict`` request with an ``X-Request-Id`` header (1
to :data:`MAX_REQUEST_ID_CHARS` characters out of letters, digits and
``-._~``; a page can use ``crypto.randomUUID()``), or gRPC metadata
``x-request-id``; without one the server makes one up. The REST answer
carries it back in its own ``X-Request-Id`` header. While the request runs,
and :data:`KEEP_SECONDS` after it ended, :meth:`ProgressTracker.snapshot`
(the endpoint) tells::

    {"request_id": "7c1e...", "model": "memd", "version": "2", "state": "running",
     "tiles_done": 12, "tiles_total": 63, "pixels": 12000000,
     "elapsed_seconds": 9.8, "running_seconds": 9.1, "eta_seconds": 38.7, "status": null}

``state`` is ``"waiting"`` (admitted: reading its body, waiting for a slot
or for pixels of the budget), ``"running"`` (the model runs; ``tiles_total``
is known), ``"done"`` (answered 200) or ``"failed"`` (answered an error;
``status`` is the HTTP status, ``error`` the message). ``tiles_total`` is
the number of model calls the request needs: the tiles of each tiled image
(:func:`erlrestore.inference.count_tiles`), 1 for a request run whole.
``eta_seconds`` is the running time per tile done so far times the tiles
left (null before the first tile, 0 at the end). A page polls the endpoint
(every second, say) until ``state`` is ``done`` or ``failed``; it answers
404 for an id the server does not know (not arrived yet, or forgotten).

Bounded: at most :data:`MAX_ENTRIES` ids are remembered; the oldest ended
ones are forgotten first, and every ended one after :data:`KEEP_SECONDS`.
An id already used by a request still in flight is refused (400), so one
request's progress is never mixed with another's.
"""

import re
import threading
import time
import uuid

from erlrestore.progress import eta_seconds
from erlrestore.serving.errors import ServingError

MAX_REQUEST_ID_CHARS = 128
KEEP_SECONDS = 300.0
MAX_ENTRIES = 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._~-]{1,%d}" % MAX_REQUEST_ID_CHARS, re.ASCII)


def check_request_id(text):
    """``text`` when it is a valid request id; ServingError 400 otherwise."""
    if not isinstance(text, str) or not _REQUEST_ID.fullmatch(text):
        shown = repr(text[:40]) if isinstance(text, str) else type(text).__name__
        raise ServingError(
            400, f"request id {shown} is not 1 to {MAX_REQUEST_ID_CHARS} letters, digits or '-._~' "
            "(X-Request-Id header)"
        )
    return text


def new_request_id():
    """A fresh random request id (32 hex digits)."""
    return uuid.uuid4().hex


class RequestProgress:
    """One request's progress; updated by the thread answering it, read by the progress endpoint."""

    def __init__(self, request_id, model=None, version=None):
        self.request_id = request_id
        self.model = model
        self.version = version
        self.state = "waiting"
        self.tiles_done = 0
        self.tiles_total = None
        self.pixels = 0
        self.status = None
        self.error = None
        self.created = time.monotonic()
        self.started = None
        self.ended = None
        self._lock = threading.Lock()

    def set_model(self, model, version):
        with self._lock:
            self.model, self.version = model, version

    def start(self, tiles_total, pixels=0):
        """The model starts: ``tiles_total`` model calls to go, for images of ``pixels`` pixels."""
        with self._lock:
            self.state = "running"
            self.tiles_total = int(tiles_total)
            self.pixels = int(pixels)
            self.started = time.monotonic()

    def advance(self, tiles=1):
        """``tiles`` more model calls done (the ``on_tiles`` callback of the tiled path)."""
        with self._lock:
            self.tiles_done += int(tiles)

    def end(self, status, error=None):
        """The request was answered with HTTP ``status`` (200: done)."""
        with self._lock:
            self.status = int(status)
            self.error = error
            self.state = "done" if self.status == 200 else "failed"
            if self.state == "done" and self.tiles_total is not None:
                self.tiles_done = self.tiles_total
            self.ended = time.monotonic()

    def ended_at(self):
        with self._lock:
            return self.ended

    def snapshot(self):
        """The JSON object of the progress endpoint (module docstring)."""
        with self._lock:
            now = self.ended if self.ended is not None else time.monotonic()
            running = None if self.started is None else now - self.started
            if self.state == "done":
                eta = 0.0
            elif self.state == "running" and running is not None:
                eta = eta_seconds(self.tiles_done, self.tiles_total, running)
            else:
                eta = None
            answer = {
                "request_id": self.request_id,
                "model": self.model,
                "version": None if self.version is None else str(self.version),
                "state": self.state,
                "tiles_done": self.tiles_done,
                "tiles_total": self.tiles_total,
                "pixels": self.pixels,
                "elapsed_seconds": round(now - self.created, 3),
                "running_seconds": None if running is None else round(running, 3),
                "eta_seconds": None if eta is None else round(eta, 3),
                "status": self.status,
            }
            if self.error is not None:
                answer["error"] = self.error
            return answer


class ProgressTracker:
    """The :class:`RequestProgress` of recent requests by id (bounded; see the module docstring)."""

    def __init__(self, keep_seconds=KEEP_SECONDS, max_entries=MAX_ENTRIES):
        self.keep_seconds = float(keep_seconds)
        self.max_entries = int(max_entries)
        self._entries = {}  # request id -> RequestProgress, in order of arrival
        self._lock = threading.Lock()

    def begin(self, request_id=None, model=None, version=None):
        """A new RequestProgress for ``request_id`` (None: a fresh id); ServingError 400 for a bad or busy id."""
        request_id = new_request_id() if request_id is None else check_request_id(request_id)
        entry = RequestProgress(request_id, model, version)
        with self._lock:
            self._forget_old()
            previous = self._entries.get(request_id)
            if previous is not None and previous.ended_at() is None:
                raise ServingError(400, f"request id {request_id!r} is in use by a request in flight; use a new id")
            self._entries.pop(request_id, None)
            self._entries[request_id] = entry
        return entry

    def _forget_old(self):
        now = time.monotonic()
        ended = [(key, entry.ended_at()) for key, entry in self._entries.items()]
        ended = [(key, at) for key, at in ended if at is not None]
        for key, at in ended:
            if now - at > self.keep_seconds:
                del self._entries[key]
        excess = len(self._entries) - self.max_entries + 1
        for key, at in sorted((item for item in ended if item[0] in self._entries), key=lambda item: item[1]):
            if excess <= 0:
                break
            del self._entries[key]
            excess -= 1

    def snapshot(self, request_id):
        """The progress of ``request_id`` as JSON, or None when unknown or forgotten."""
        with self._lock:
            entry = self._entries.get(request_id)
        return None if entry is None else entry.snapshot()

    def __len__(self):
        with self._lock:
            return len(self._entries)
