"""The REST server: TF Serving's ``/v1/models/...`` endpoints over HTTP/1.1, one request per connection."""

import http.server
import json
import re
import socket
import threading
import time
import urllib.parse

from absl import logging

from erlrestore.serving import codec, limits, page
from erlrestore.serving import tracker as tracker_module
from erlrestore.serving.errors import OverloadedError, ServingError

MAX_MODEL_NAME_CHARS = 255
MAX_VERSION_DIGITS = 18
_ROUTE = re.compile(
    r"/v1/models/(?P<name>[^/:]+)"
    r"(?:/versions/(?P<version>[0-9]+)|/labels/(?P<label>[^/:]+))?"
    r"(?P<suffix>/metadata|:[A-Za-z]+)?",
    re.ASCII,
)
_PROGRESS_ROUTE = re.compile(r"/v1/progress/(?P<id>[^/]*)", re.ASCII)
REQUEST_ID_HEADER = "X-Request-Id"


class _Handler(http.server.BaseHTTPRequestHandler):
    """Routes TF Serving REST requests to the server's ModelRepository; one request per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "erlrestore-serve"
    error_content_type = "application/json"

    def setup(self):
        self.timeout = self.server.request_timeout
        super().setup()

    def handle(self):
        self._status = None
        self._sent = 0
        self._started = time.monotonic()
        self._unread_body = None  # bytes announced by Content-Length and not read (None: not looked at yet)
        self._progress = None  # the RequestProgress of a :predict request
        self.server._track(self.connection)
        try:
            self.close_connection = True
            self.handle_one_request()
        except (ConnectionError, TimeoutError) as error:  # the client went away mid-response
            logging.info("connection from %s ended early: %s", self.client_address[0], error)
        finally:
            self.server._untrack(self.connection)
            if self._status is not None:
                line = getattr(self, "requestline", "") or "-"
                logging.info(
                    '%s "%s" %d %d bytes %.1f ms',
                    self.client_address[0], line[:200], self._status, self._sent,
                    1000.0 * (time.monotonic() - self._started),
                )

    def parse_request(self):
        self.server._mark_busy(self.connection)
        return super().parse_request()

    # The standard library's messages go to our one-line-per-request log instead.
    def log_request(self, code="-", size="-"):
        pass

    def log_error(self, format, *args):  # pylint: disable=redefined-builtin
        pass

    def __getattr__(self, name):
        # Every method (GET, POST, PUT, DELETE, ...) goes through _dispatch, so
        # that unknown paths answer 404 and wrong methods 405, never 501.
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def send_error(self, code, message=None, explain=None):
        """Errors found by the standard library's request parsing, sent as JSON."""
        text = message or self.responses.get(code, ("error",))[0]
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            # An unparsable request line leaves the version at HTTP/0.9, for
            # which no status line would be written; answer as HTTP/1.0.
            self.request_version = "HTTP/1.0"
        self._send_json(code, {"error": text})

    def _send_json(self, status, payload, headers=(), compact=False):
        # Compact answers (predictions) are encoded in pieces (codec.encode_json), never as one string.
        chunks = codec.encode_json(payload) if compact else [json.dumps(payload, indent=1).encode("utf-8")]
        length = sum(len(chunk) for chunk in chunks)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        if self._progress is not None:
            self.send_header(REQUEST_ID_HEADER, self._progress.request_id)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            for chunk in chunks:
                self.wfile.write(chunk)
        self._status, self._sent = status, length

    def _send_asset(self, status, asset):
        """A file of the page (a page.Asset), with its content type and headers."""
        self.send_response(status)
        self.send_header("Content-Type", asset.content_type)
        self.send_header("Content-Length", str(len(asset.body)))
        for key, value in asset.headers:
            self.send_header(key, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(asset.body)
        self._status, self._sent = status, len(asset.body)

    def _content_length(self):
        text = self.headers.get("Content-Length")
        if text is None:
            if self.headers.get("Transfer-Encoding"):
                raise ServingError(
                    411, "send the body with a Content-Length header (chunked transfer encoding is not supported)"
                )
            raise ServingError(411, "a Content-Length header is required")
        if not text.strip().isdigit():
            raise ServingError(400, f"invalid Content-Length header {text!r}")
        length = int(text)
        self._unread_body = length
        if length > self.server.max_request_bytes:
            raise ServingError(
                413,
                f"the request body of {length} bytes is larger than the limit of {self.server.max_request_bytes} bytes",
            )
        return length

    def handle_expect_100(self):
        # Refuse an over-sized body before the client sends it.
        try:
            self._content_length()
        except ServingError as error:
            if error.status == 413:
                self._send_json(413, {"error": error.message})
                return False
        return super().handle_expect_100()

    def _read_body(self, length):
        try:
            body = self.rfile.read(length)
        except (TimeoutError, socket.timeout):
            self._unread_body = 0  # a client this slow is not waited for again
            raise ServingError(
                408, f"the request body was not received within {self.server.request_timeout:g} s"
            ) from None
        self._unread_body = 0
        if len(body) < length:
            raise ServingError(400, f"the request body ended after {len(body)} of {length} bytes")
        return body

    def _discard_unread_body(self, seconds=2.0):
        """After refusing a body unread: lets the client finish sending, so it can read the refusal.

        Closing a socket with unread data makes the kernel reset the
        connection, and a client still sending would then never see the
        answer. The response is flushed, our side is shut for writing, and
        whatever arrives in the next ``seconds`` is read in small pieces and
        thrown away (never kept).
        """
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                self.connection.settimeout(max(0.05, deadline - time.monotonic()))
                if not self.connection.recv(65536):
                    break
        except OSError:
            pass

    def _request_path(self):
        """The path of the request target, without query or fragment (absolute-form targets are accepted)."""
        target = self.path
        if target.startswith("/"):
            return target.split("?", 1)[0].split("#", 1)[0]
        return urllib.parse.urlsplit(target).path

    def _route(self):
        """``(allowed methods, handler)`` for the request path; ServingError 404 when unknown.

        The model name is percent-decoded and checked (``_model_name``); it
        is only ever a key of the repository's dictionary, never part of a
        file path. Versions are at most MAX_VERSION_DIGITS digits.
        """
        path = self._request_path()
        page_route = page.route(path, self.server)  # the page (erlrestore.serving.page): /, /ui/...
        if page_route is not None:
            return page_route
        progress_match = _PROGRESS_ROUTE.fullmatch(path)
        if progress_match:
            return ("GET",), lambda: (200, self._progress_of(progress_match.group("id")), False)
        match = _ROUTE.fullmatch(path)
        if not match:
            raise ServingError(
                404, f"unknown path {path[:200]!r}; expected /v1/models/<name>[/versions/<n>][/metadata | :predict] "
                "or /v1/progress/<request id>"
            )
        name = _model_name(match.group("name"))
        version = match.group("version")
        if version is not None and len(version.lstrip("0")) > MAX_VERSION_DIGITS:
            shown = version[:30] + ("..." if len(version) > 30 else "")
            raise ServingError(400, f"version {shown} has more than {MAX_VERSION_DIGITS} digits")
        version = None if version is None else int(version)
        suffix = match.group("suffix")
        if match.group("label") is not None:
            raise ServingError(404, "version labels are not supported by erlrestore-serve; use /versions/<n>")
        repository = self.server.repository
        if suffix is None:
            return ("GET",), lambda: (200, repository.status(name, version), False)
        if suffix == "/metadata":
            return ("GET",), lambda: (200, repository.metadata(name, version), False)
        if suffix == ":predict":
            def predict():
                length = self._content_length()
                repository.get(name, version)  # 404 before the body is read
                self._progress = self.server.tracker.begin(self.headers.get(REQUEST_ID_HEADER), name, version)
                limiter = self.server.limiter
                with limiter.admitted():
                    body = self._read_body(length)
                    with limiter.running() as turn:
                        return 200, repository.predict_json(name, version, body, turn, self._progress), True
            return ("POST",), predict
        raise ServingError(404, f"{suffix!r} is not supported by erlrestore-serve (only :predict)")

    def _dispatch(self):
        try:
            try:
                allowed, action = self._route()
                if self.command not in allowed:
                    self._send_json(
                        405, {"error": f"method {self.command} is not allowed here (use {', '.join(allowed)})"},
                        headers=[("Allow", ", ".join(allowed))],
                    )
                    self._after_refusal()
                    return
                status, payload, compact = action()
            except ServingError as error:
                self._end_progress(error.status, error.message)
                headers = [("Retry-After", "1")] if isinstance(error, OverloadedError) else []
                self._send_json(error.status, {"error": error.message}, headers=headers)
                self._after_refusal()
                return
            except Exception as error:  # a fault of the server or the model: 500, keep serving
                logging.exception("error answering %s %s", self.command, self.path)
                message = f"internal server error: {type(error).__name__}: {error}"
                self._end_progress(500, message)
                self._send_json(500, {"error": message})
                return
            self._end_progress(status)
            if isinstance(payload, page.Asset):
                self._send_asset(status, payload)
            else:
                self._send_json(status, payload, compact=compact)
        except (ConnectionError, TimeoutError) as error:
            logging.info("could not answer %s: %s", self.client_address[0], error)
        finally:
            payload = None  # the answer is sent: drop it before handing freed memory back
            if self._progress is not None and self._progress.pixels >= limits.RELEASE_AFTER_PIXELS:
                limits.release_memory()

    def _end_progress(self, status, error=None):
        if self._progress is not None:
            self._progress.end(status, error)

    def _progress_of(self, request_id):
        """The progress endpoint's answer for ``request_id``; ServingError 404 when unknown."""
        try:
            request_id = tracker_module.check_request_id(urllib.parse.unquote(request_id, errors="strict"))
        except UnicodeDecodeError:
            raise ServingError(400, "the request id is not valid percent-encoded UTF-8") from None
        snapshot = self.server.tracker.snapshot(request_id)
        if snapshot is None:
            raise ServingError(
                404, f"no request {request_id!r} is known here (not arrived yet, or ended more than "
                f"{self.server.tracker.keep_seconds:g} s ago)"
            )
        return snapshot

    def _after_refusal(self):
        # A body that was announced but not read (refused before reading it,
        # or sent with a method that takes none) is drained, so that the
        # client can read the refusal instead of a connection reset.
        if self._unread_body is None:
            text = self.headers.get("Content-Length", "") if self.headers is not None else ""
            self._unread_body = int(text) if text.strip().isdigit() else 0
        if self._unread_body > 0:
            self._discard_unread_body()


def _model_name(quoted):
    """The percent-decoded model name of a URL; ServingError 400 for names no model folder can have.

    Names are dictionary keys only, so nothing could be read through them;
    names that could not be folder names (``.``, ``..``, separators, NUL and
    other control characters, invalid UTF-8, longer than
    MAX_MODEL_NAME_CHARS) are refused outright rather than looked up.
    """
    try:
        name = urllib.parse.unquote(quoted, errors="strict")
    except UnicodeDecodeError:
        raise ServingError(400, f"model name {quoted[:80]!r} is not valid percent-encoded UTF-8") from None
    if len(name) > MAX_MODEL_NAME_CHARS:
        raise ServingError(400, f"model name of {len(name)} characters is longer than {MAX_MODEL_NAME_CHARS}")
    if name in (".", "..") or "/" in name or "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ServingError(
            400, f"model name {name[:80]!r} is not a folder name (no '/', '\\\\', '.', '..' or control characters)"
        )
    return name


def _busy_response(limit):
    body = json.dumps({"error": f"the server is busy: {limit} connections are open, the most it takes; retry later"})
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    return (head + body).encode("utf-8")


class RestServer(http.server.ThreadingHTTPServer):
    """A ThreadingHTTPServer answering TF Serving REST requests from a ModelRepository.

    One thread per connection, and one request per connection. Load is
    bounded three ways:

    * ``max_connections`` connections (and so threads) at once; one more is
      answered 503 straight away (best effort: written without waiting and
      closed) and never gets a thread.
    * ``:predict`` requests go through ``limiter`` (a PredictionLimiter,
      shared with gRPC when both run): at most ``max_concurrent`` run at
      once, holding at most ``max_inflight_pixels`` pixels of images
      together, and ``max_queue`` more are admitted to read their body and
      wait, each up to ``queue_timeout`` s; beyond that 503 ``{"error":
      ...}`` with ``Retry-After: 1``. Bodies held in memory are so bounded
      by ``(max_concurrent + max_queue) * max_request_bytes``. Status,
      metadata and progress requests are cheap and not queued.
    * A request must arrive within ``request_timeout`` s (408 otherwise).

    ``tracker`` (a :class:`~erlrestore.serving.tracker.ProgressTracker`,
    default a new one) keeps the progress of each ``:predict`` request for
    ``GET /v1/progress/<request id>``.

    Use ``serve_forever()`` in one thread and, to stop, ``shutdown()`` from
    another, then ``close(drain_timeout)``: it stops listening (new
    connections are refused), ends idle connections (connected but no
    request yet), waits up to ``drain_timeout`` s (None: no limit) for the
    requests in flight to be answered and returns how many were not.
    ``server_port`` is the bound port (useful with port 0).
    """

    daemon_threads = True  # close() waits for them, up to its drain timeout
    block_on_close = False

    def __init__(self, repository, host="127.0.0.1", port=8501, max_request_bytes=limits.DEFAULT_MAX_REQUEST_BYTES,
                 request_timeout=limits.DEFAULT_REQUEST_TIMEOUT, *, max_concurrent=limits.DEFAULT_MAX_CONCURRENT,
                 max_queue=limits.DEFAULT_MAX_QUEUE, queue_timeout=limits.DEFAULT_QUEUE_TIMEOUT,
                 max_connections=limits.DEFAULT_MAX_CONNECTIONS, max_inflight_pixels=limits.DEFAULT_MAX_INFLIGHT_PIXELS,
                 limiter=None, tracker=None):
        if int(max_connections) < 1:
            raise ValueError(f"max_connections must be at least 1, got {max_connections}")
        self.repository = repository
        self.max_request_bytes = int(max_request_bytes)
        self.request_timeout = float(request_timeout)
        self.max_connections = int(max_connections)
        self.limiter = limiter or limits.PredictionLimiter(max_concurrent, max_queue, queue_timeout,
                                                           max_inflight_pixels)
        self.tracker = tracker or tracker_module.ProgressTracker()
        self._busy = _busy_response(self.max_connections)
        # The listen backlog (socketserver's default is 5): a burst of clients
        # beyond it would wait for SYN retransmits (a second or more) instead
        # of being accepted, or refused with a 503.
        self.request_queue_size = max(self.max_connections, 16)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._idle = set()
        self._connections = 0
        self._closing = False
        self.refused_connections = 0
        if ":" in host:
            self.address_family = socket.AF_INET6
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise OSError(error.errno, f"cannot listen on {host}:{port}: {error.strerror or error}") from error

    def open_connections(self):
        """Connections being handled now."""
        with self._lock:
            return self._connections

    def process_request(self, request, client_address):
        with self._lock:
            admit = not self._closing and self._connections < self.max_connections
            if admit:
                self._connections += 1
            else:
                self.refused_connections += 1
        if not admit:
            self._refuse(request)
            return
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address),
                                  name="erlrestore-serve-request", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had
            self._connection_done()
            self._refuse(request)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connection_done()

    def _connection_done(self):
        with self._lock:
            self._connections -= 1
            self._changed.notify_all()

    def _refuse(self, connection):
        # In the accepting thread: nothing here may block. What the client
        # already sent is read first so that closing does not reset the
        # connection before the 503 arrives.
        try:
            connection.setblocking(False)
            try:
                while connection.recv(65536):
                    pass
            except OSError:
                pass
            connection.send(self._busy)
        except OSError:
            pass
        self.shutdown_request(connection)

    def _track(self, connection):
        with self._lock:
            if self._closing:
                _shutdown_read(connection)
            else:
                self._idle.add(connection)

    def _mark_busy(self, connection):
        with self._lock:
            self._idle.discard(connection)

    def _untrack(self, connection):
        with self._lock:
            self._idle.discard(connection)

    def close(self, drain_timeout=None):
        """After serve_forever() returned: stops listening, ends idle connections and waits for in-flight requests.

        Waits at most ``drain_timeout`` seconds (None: until they are all
        answered); returns the number of connections still being handled
        then (0 when every request in flight was answered). Their threads
        are daemon threads, so they do not keep the process alive.
        """
        with self._lock:
            self._closing = True
            idle = list(self._idle)
        self.server_close()
        for connection in idle:
            _shutdown_read(connection)
        deadline = None if drain_timeout is None else time.monotonic() + float(drain_timeout)
        with self._lock:
            while self._connections:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._changed.wait(remaining)
            return self._connections


def _shutdown_read(connection):
    try:
        connection.shutdown(socket.SHUT_RD)
    except OSError:
        pass
