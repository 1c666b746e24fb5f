"""``erlrestore-serve``: serves exported SavedModels over TF Serving's REST API (and optionally gRPC).

    erlrestore-serve --model_base_path=savedmodels [--model_name=memd] [--host=127.0.0.1] [--port=8501]
                     [--max_request_bytes=64MiB] [--grpc_port=8500] [--max_concurrent=4] [--max_queue=32]
                     [--queue_timeout=30] [--max_connections=128] [--max_image_pixels=100000000]
                     [--max_inflight_pixels=32000000] [--tile=512] [--overlap=32] [--align=0]
                     [--drain_timeout=30] [--work_size=none|<pixels>]

Serves every integer version of ``<model_base_path>/<model_name>/`` (by
default every model folder under ``--model_base_path``; the largest version
is the default) until SIGTERM or Ctrl-C. Then it stops accepting
connections, finishes the requests in flight and exits 0; if some are still
running after ``--drain_timeout`` seconds it exits 1 without waiting for
them. Images larger than ``--tile`` are restored in overlapping tiles, as
``erlrestore-restore`` restores them (same defaults, same pixels), so memory
is bounded by the tile rather than the image; ``--max_inflight_pixels``
bounds the pixels of the images being restored at once, and
``GET /v1/progress/<request id>`` tells how many tiles of a request are done.
``--work_size=<pixels>`` restores photos whose shorter side is more than 1.5
times it at that scale, as ``erlrestore-restore --work_size`` does (a
SavedModel has no card for ``auto``: give 321 for ``erlnet-derain`` and
``memd-derain``; default none).
``GET /`` answers a page for restoring photos in a browser through the same
API (:mod:`erlrestore.serving.page`); its address is logged at start-up.
Endpoints, limits and error codes: see :mod:`erlrestore.serving`. It
binds 127.0.0.1 unless ``--host`` says otherwise; there is no authentication,
so expose it beyond the machine only behind something that adds it.
"""

import logging as std_logging
import os
import sys

from absl import app, flags, logging

from erlrestore.cli import entry_point, fail, flag_settings, option_groups

from erlrestore import inference, serving
from erlrestore.data import image_files

FLAGS = flags.FLAGS


def define_flags(flag_values=FLAGS):
    """Defines the flags on ``flag_values`` (the global FLAGS by default)."""
    fv = flag_values
    flags.DEFINE_string("model_base_path", None, "Folder holding <model_name>/<integer version>/saved_model.pb.",
                        flag_values=fv)
    flags.DEFINE_list("model_name", [], "Model(s) to serve (comma-separated); default: every model folder.",
                      flag_values=fv)
    flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0 or :: for every interface).",
                        flag_values=fv)
    flags.DEFINE_integer("port", 8501, "REST port (0: any free port, logged at start-up).", lower_bound=0,
                         upper_bound=65535, flag_values=fv)
    flags.DEFINE_string("max_request_bytes", "64MiB", "Largest accepted request body (bytes, or e.g. 64MiB, 10MB).",
                        flag_values=fv)
    flags.DEFINE_integer("grpc_port", 0, "gRPC port; 0 disables gRPC (needs tensorflow-serving-api).",
                         lower_bound=0, upper_bound=65535, flag_values=fv)
    flags.DEFINE_float("request_timeout", serving.DEFAULT_REQUEST_TIMEOUT,
                       "Seconds a client may take to send its request.", lower_bound=0.1, flag_values=fv)
    flags.DEFINE_integer("max_concurrent", serving.DEFAULT_MAX_CONCURRENT,
                         "Predictions run at once (REST and gRPC together).", lower_bound=1, flag_values=fv)
    flags.DEFINE_integer("max_queue", serving.DEFAULT_MAX_QUEUE,
                         "Predictions that may wait for a turn; more are answered 503.", lower_bound=0,
                         flag_values=fv)
    flags.DEFINE_float("queue_timeout", serving.DEFAULT_QUEUE_TIMEOUT,
                       "Seconds a prediction may wait for a turn before it is answered 503.", lower_bound=0.001,
                       flag_values=fv)
    flags.DEFINE_integer("max_connections", serving.DEFAULT_MAX_CONNECTIONS,
                         "Open REST connections (one thread each); more are answered 503.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_integer("max_image_pixels", serving.DEFAULT_MAX_IMAGE_PIXELS,
                         "Largest width x height an encoded image in a request may declare in its header "
                         "(all images of a request together); larger ones are refused with 400. 0: no limit.",
                         lower_bound=0, flag_values=fv)
    flags.DEFINE_integer("max_inflight_pixels", serving.DEFAULT_MAX_INFLIGHT_PIXELS,
                         "Pixels the images of the predictions running at once may hold together; a prediction "
                         "that does not fit waits (up to --queue_timeout, then 503). One larger than this runs "
                         "alone. 0: no budget.", lower_bound=0, flag_values=fv)
    option_groups.define_tiling_flags(serving.DEFAULT_TILE, overlap=serving.DEFAULT_OVERLAP, align=True,
                                      zero_untiled=True, lower_bound=0, flag_values=fv)
    option_groups.define_work_size_flag(auto=False, flag_values=fv)
    flags.DEFINE_float("drain_timeout", serving.DEFAULT_DRAIN_TIMEOUT,
                       "On SIGTERM/SIGINT, seconds to wait for the requests in flight.", lower_bound=0.0,
                       flag_values=fv)
    flags.mark_flag_as_required("model_base_path", flag_values=fv)


def settings_from_flags(flag_values=FLAGS):
    """The keyword arguments of :func:`erlrestore.serving.serve` from parsed flags; app.UsageError for bad values."""
    fv = flag_values
    try:
        max_request_bytes = serving.parse_byte_size(fv.max_request_bytes)
    except ValueError as error:
        raise app.UsageError(f"--max_request_bytes: {error}") from None
    if fv.grpc_port and fv.grpc_port == fv.port:
        raise app.UsageError(f"--grpc_port and --port are both {fv.port}; use two different ports")
    if fv.grpc_port and not serving.grpc_available():
        raise app.UsageError(f"--grpc_port={fv.grpc_port}: {serving.GRPC_MISSING_MESSAGE}")
    if not fv.host.strip():
        raise app.UsageError("--host is empty (use 127.0.0.1, 0.0.0.0 or ::)")
    if fv.tile:
        try:
            inference.check_tiling(fv.tile, fv.overlap, fv.align or inference.DEFAULT_ALIGN)
        except ValueError as error:
            raise app.UsageError(f"--tile/--overlap/--align: {error}") from None
    try:
        work_size = inference.parse_work_size(fv.work_size)
        valid = work_size != inference.AUTO  # a SavedModel has no card to read a training scale from
    except ValueError:
        valid = False
    if not valid:
        raise app.UsageError(f"--work_size must be none or a whole number of pixels >= 1 (e.g. 321), got "
                             f"{fv.work_size!r} (SavedModels record no training scale, so there is no auto)")
    return dict(
        flag_settings(("model_base_path", "port", "grpc_port", "request_timeout", "max_concurrent", "max_queue",
                       "queue_timeout", "max_connections", "max_image_pixels", "drain_timeout",
                       "max_inflight_pixels", "tile", "overlap"), fv),
        model_names=fv.model_name or None,
        host=fv.host.strip(),
        max_request_bytes=max_request_bytes,
        align=fv.align or None,
        work_size=work_size,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    settings = settings_from_flags()
    # A server's INFO lines are its own output (the address it listens on, one line per request, shutdown).
    logging.set_verbosity(logging.INFO)
    try:
        unfinished = serving.serve(**settings)
    except (image_files.DataError, OSError, serving.GrpcUnavailableError) as error:
        return fail(error)
    if unfinished:
        # Threads still running the model are abandoned: end the process now
        # rather than let interpreter shutdown run under them.
        std_logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # pylint: disable=protected-access
    return 0


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
