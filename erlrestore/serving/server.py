"""``serve()``: loads the models and runs the REST (and optional gRPC) server until SIGTERM or SIGINT."""

import signal
import threading
import time

from absl import logging

from erlrestore import inference
from erlrestore.serving import grpc_api, limits, tiling
from erlrestore.serving.repository import load_models
from erlrestore.serving.rest import RestServer
from erlrestore.serving.tracker import ProgressTracker


def serve(model_base_path, model_names=None, host="127.0.0.1", port=8501,
          max_request_bytes=limits.DEFAULT_MAX_REQUEST_BYTES, grpc_port=0,
          request_timeout=limits.DEFAULT_REQUEST_TIMEOUT, max_concurrent=limits.DEFAULT_MAX_CONCURRENT,
          max_queue=limits.DEFAULT_MAX_QUEUE, queue_timeout=limits.DEFAULT_QUEUE_TIMEOUT,
          max_connections=limits.DEFAULT_MAX_CONNECTIONS, max_image_pixels=limits.DEFAULT_MAX_IMAGE_PIXELS,
          drain_timeout=limits.DEFAULT_DRAIN_TIMEOUT, max_inflight_pixels=limits.DEFAULT_MAX_INFLIGHT_PIXELS,
          tile=tiling.DEFAULT_TILE, overlap=tiling.DEFAULT_OVERLAP, align=None, work_size=None):
    """Loads the models and serves them until SIGTERM or SIGINT (blocking); returns the requests left unfinished.

    On a signal the server stops accepting connections (new ones are
    refused), ends idle ones, and answers the requests in flight, waiting at
    most ``drain_timeout`` seconds for them (REST and gRPC alike); it returns
    how many were still running then (0 after a clean drain). A second
    signal while draining is not intercepted (it ends the process). Signal
    handlers are installed only when called from the main thread. ``tile``,
    ``overlap`` and ``align`` are the tiling of large images
    (:class:`erlrestore.serving.tiling.TileSettings`; ``tile=0`` never
    tiles) and ``work_size`` the working scale of large photos (pixels, or
    None: none); the other arguments are the limits of the PredictionLimiter,
    RestServer and ModelRepository.

    Raises:
      DataError for models that cannot be loaded, OSError when a port cannot
      be bound, GrpcUnavailableError for ``grpc_port`` without
      tensorflow-serving-api, ValueError for a limit out of range.
    """
    if grpc_port and not grpc_api.grpc_available():
        raise grpc_api.GrpcUnavailableError(grpc_api.GRPC_MISSING_MESSAGE)
    limiter = limits.PredictionLimiter(max_concurrent, max_queue, queue_timeout, max_inflight_pixels)
    settings = tiling.TileSettings(tile, overlap, align, work_size)
    repository = load_models(model_base_path, model_names)
    repository.max_image_pixels = max_image_pixels
    repository.tiling = settings
    tracker = ProgressTracker()
    rest = RestServer(repository, host, port, max_request_bytes, request_timeout, max_connections=max_connections,
                      limiter=limiter, tracker=tracker)
    grpc_server = None
    try:
        if grpc_port:
            grpc_server, bound = grpc_api.make_grpc_server(repository, host, grpc_port, max_request_bytes,
                                                           limiter=limiter, tracker=tracker)
            logging.info("gRPC PredictionService on %s:%d", host, bound)
    except BaseException:
        rest.server_close()
        raise
    for name, versions in repository.models.items():
        logging.info("serving model %r versions %s (default %d)", name, sorted(versions), max(versions))
    logging.info(
        "limits: %d predictions at once holding up to %s pixels and %d waiting (up to %g s each), %d connections, "
        "bodies up to %d bytes, images up to %s pixels", limiter.max_concurrent,
        limiter.max_inflight_pixels or "any number of", limiter.max_queue, limiter.queue_timeout,
        rest.max_connections, rest.max_request_bytes, max_image_pixels or "any number of",
    )
    if settings.tile:
        logging.info("images larger than %d pixels in either side are restored in %dx%d tiles overlapping by %d "
                     "(aligned to %d), as erlrestore-restore does", settings.tile, settings.tile, settings.tile,
                     settings.overlap, settings.align)
    else:
        logging.info("tiling is off (--tile=0): every image goes through the model whole")
    if settings.work_size is not None:
        logging.info("images whose shorter side exceeds %g pixels are restored at %d and the correction brought "
                     "back to full size, as erlrestore-restore --work_size=%d does",
                     inference.WORK_MARGIN * settings.work_size, settings.work_size, settings.work_size)
    logging.info("REST API on http://%s:%d/v1/models/<name>", host, rest.server_port)
    shown = f"[{host}]" if ":" in host else host
    logging.info("page in a browser: http://%s:%d/ (pick a model, drop a photo)", shown, rest.server_port)

    previous = {}

    def on_signal(signum, frame):  # pylint: disable=unused-argument
        logging.info("received %s: finishing the requests in flight (up to %g s) and stopping",
                     signal.Signals(signum).name, drain_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        threading.Thread(target=rest.shutdown, daemon=True).start()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    unfinished = 0
    try:
        rest.serve_forever()
    finally:
        started = time.monotonic()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        grpc_stopped = grpc_server.stop(drain_timeout) if grpc_server is not None else None
        unfinished = rest.close(drain_timeout)
        if grpc_stopped is not None:
            grpc_stopped.wait(max(0.0, drain_timeout - (time.monotonic() - started)))
        if unfinished:
            logging.warning("stopped with %d request(s) unanswered after the %g s drain timeout", unfinished,
                            drain_timeout)
        else:
            logging.info("stopped")
    return unfinished
