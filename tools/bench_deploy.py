"""Deployment benchmark: tiled restoration throughput and memory, and REST serving latency.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_deploy [--part=all|restore|serving]
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_deploy --part=restore --models=memd --sizes=4000x3000
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_deploy --part=restore --models=memd --sizes=481x321 \\
        --backends=tensorflow --backends=onnxruntime --backends=litert --backends=openvino   # runtimes compared
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_deploy --tiny      # seconds; what the tests run

It prints one line for the machine, one line per figure, and last a single
JSON line with every number (keys: ``machine``, ``settings``, ``restore``,
``serving``; a part that was not run is ``null``), for scripts.

The networks are UNTRAINED (fresh Keras initialisation, seeded): only the
timing and memory mean anything, not the restored pixels. Timing does not
depend on the weights' values (dense convolutions, no sparsity shortcuts),
so trained models of the same configuration run at the same speed. An
untrained MEMD / ERL-Net is the identity (zero-initialised output convolution
plus the global residual), which still computes every layer.

``--part=restore`` (:func:`restore_part`): for each model of ``--models``
and each ``WIDTHxHEIGHT`` of ``--sizes`` a fresh Python subprocess
(``python -m tools.bench_deploy --worker``, started in the folder holding
``tools/``; it writes its result as JSON to the file ``--result_json`` names,
in a temporary folder of the parent, which reads it back) builds the default-size model, wraps it with
:func:`erlrestore.inference.restorer_from_model` and restores one synthetic
image with :func:`erlrestore.inference.restore_tiled` (``--tile``,
``--overlap``, ``--tile_batch``; the tiles start at multiples of the model's
padding multiple, 16 for MEMD / ERL-Net at depth 4 and 32 for a UNet-5
generator, so edge tiles can be narrower than ``--tile``). One untimed
warm-up call (tracing) comes first, then ``--repeats`` timed calls; the
reported time is their median and the throughput is ``width * height / 1e6``
divided by it (megapixels per second). Models: the restoration networks of
the presets in :mod:`erlrestore.models.presets`, or of any generator name
:func:`erlrestore.models.pix2pix.generator_config` knows:

* ``memd``: ``MEMDConfig()`` (depth 4, 32 base filters);
* ``erlnet``: ERL-Net with MLGD entanglement on ``MEMDConfig()``;
* ``unet5_infoaccum15_subpix``, ``pix2pix``, ``unet3``...: the generator
  (batch norm in inference mode, dropout off: ``training=False``).

Peak memory, measured inside each worker so that models and sizes never
share a process (Python and TensorFlow keep freed memory in their
allocators, and a process's peak can only grow):

* ``baseline_rss_mb``: the current resident set (``VmRSS`` from
  ``/proc/self/status``; where that file does not exist, ``ru_maxrss``)
  after importing TensorFlow, building the model and creating the input
  image, just before the warm-up call;
* ``peak_rss_mb``: the process's peak resident set at the end,
  ``resource.getrusage(RUSAGE_SELF).ru_maxrss``;
* ``peak_rss_growth_mb`` = ``peak_rss_mb - baseline_rss_mb``: what
  restoring one image needs on top of the loaded model, tracing included
  (the first call of a process pays it too);
* ``steady_peak_rss_growth_mb``: the same over the timed calls only (after
  the warm-up), from Linux's ``VmHWM`` after resetting it by writing ``5`` to
  ``/proc/self/clear_refs``; ``null`` where the kernel does not allow that.
* ``gpu_peak_mb``: on a GPU, TensorFlow's peak allocation on ``GPU:0``
  during warm-up and timed calls (``tf.config.experimental.get_memory_info``);
  RSS does not see device memory. ``null`` without a GPU.

``tracemalloc`` is not used: it sees only allocations made through Python's
allocator, not TensorFlow's C++ buffers.

``--part=serving`` (:func:`serving_part`): exports a default-size MEMD
(untrained) with :func:`erlrestore.export.export_savedmodel` to a temporary
folder, loads it with :func:`erlrestore.serving.load_models` and serves it
with :class:`erlrestore.serving.RestServer` on ``127.0.0.1`` at a free port
(port 0), in this process (a background thread; only loopback is used).
After one untimed warm-up request whose answer is checked (a PNG of the
input's size), ``--clients`` threads send ``--requests`` requests in all
(each client takes the next request when its previous one is answered) with
``restore_bytes_rest`` from :mod:`erlrestore.client`: the same
``--image_size`` square synthetic PNG each time, to the ``restore_bytes``
signature. Reported: latency (send to answer decoded, per request) p50, p95
and max in milliseconds, and requests per second (answered requests divided
by the wall time from the first send to the last answer). Bounded: each
request times out after ``--request_timeout`` seconds, and no request is
started after ``--time_limit`` seconds (``stopped_early`` then says so).
Percentiles interpolate linearly between order statistics (NumPy's default
``linear`` method). Note that clients and server share one Python process,
so the clients' JSON/base64 work competes with the server's for the GIL; on
the image sizes used it is small next to the model.

``--tiny`` swaps in the presets' tiny variants (MEMD/ERL-Net depth 2 with 4
base filters, generators at most 2 levels deep) and small defaults
(``--sizes=72x40 --tile=32 --overlap=8 --repeats=1 --clients=2 --requests=6
--image_size=24``); flags given on the command line still win. It exists for
the tests.

The tool exits with status 1 when a worker failed or a serving request
failed (after printing the JSON line).
"""

import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from absl import app, flags

from erlrestore import machine
from tools import common
from tools.client_load import latency_summary, percentile, run_clients  # noqa: F401  (percentile: for the tests)

FLAGS = flags.FLAGS

PARTS = ("all", "restore", "serving")
DEFAULT_MODELS = ("memd", "erlnet", "unet5_infoaccum15_subpix")
DEFAULT_SIZES = "512x512,4000x3000"
SERVING_MODEL_NAME = "memd"
WORKER_RESULT_FILE = "result.json"  # in a temporary folder of run_worker's, named to the worker by --result_json
JSON_KEYS = ("machine", "settings", "restore", "serving")
RESTORE_KEYS = (
    "model", "backend", "runtime", "width", "height", "megapixels", "tile", "overlap", "align", "tiles",
    "tile_batch", "params", "untrained", "warmup_calls", "timed_calls", "seconds", "seconds_all", "megapixels_per_second",
    "baseline_rss_mb", "peak_rss_mb", "peak_rss_growth_mb", "steady_peak_rss_growth_mb", "gpu_peak_mb",
)
SERVING_KEYS = (
    "model", "untrained", "image_size", "png_bytes", "clients", "requests", "completed", "errors",
    "first_error", "stopped_early", "wall_seconds", "requests_per_second", "latency_ms_p50",
    "latency_ms_p95", "latency_ms_max", "latency_ms_mean",
)

# Defaults --tiny puts in place of flags not given on the command line.
TINY_DEFAULTS = {
    "sizes": "72x40",
    "tile": 32,
    "overlap": 8,
    "repeats": 1,
    "clients": 2,
    "requests": 6,
    "image_size": 24,
}

# Where ``python -m tools.bench_deploy`` finds the tools package: the workers start there.
_TOOLS_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_SIZE_PATTERN = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")
_MB = 1024.0 * 1024.0


# --------------------------------------------------------------------------
# Parsing and small helpers (no TensorFlow).
# --------------------------------------------------------------------------


def parse_sizes(text):
    """``"512x512,4000x3000"`` -> ``[(512, 512), (4000, 3000)]`` as ``(width, height)``.

    Raises:
      ValueError naming the bad entry (not ``WIDTHxHEIGHT`` of positive
      integers), or for an empty list.
    """
    sizes = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        match = _SIZE_PATTERN.fullmatch(item.lower())
        if not match:
            raise ValueError(f"bad size {item!r}: expected WIDTHxHEIGHT with positive integers, e.g. 4000x3000")
        sizes.append((int(match.group(1)), int(match.group(2))))
    if not sizes:
        raise ValueError("no sizes given: expected a comma-separated list like 512x512,4000x3000")
    return sizes


def parse_models(text):
    """Comma-separated model names -> list (order kept, duplicates dropped).

    The presets of :mod:`erlrestore.models.presets` (``memd``, ``erlnet``,
    ``pix2pix``, ``unet5_infoaccum15_subpix``) and generator names of
    :func:`erlrestore.models.pix2pix.generator_config` (e.g. ``unet3``) are
    accepted.

    Raises:
      ValueError naming an unknown model, or for an empty list.
    """
    from erlrestore.models import presets  # pylint: disable=import-outside-toplevel

    names = []
    for name in (text or "").split(","):
        name = name.strip()
        if not name or name in names:
            continue
        if name not in presets.PRESETS:
            try:
                presets.settings_fields(name)
            except ValueError:
                raise ValueError(
                    f"unknown model {name!r}: choose memd, erlnet or a generator name such as "
                    "unet5_infoaccum15_subpix or pix2pix"
                ) from None
        names.append(name)
    if not names:
        raise ValueError(f"no models given: expected a comma-separated list like {','.join(DEFAULT_MODELS)}")
    return names


# --------------------------------------------------------------------------
# Models and images.
# --------------------------------------------------------------------------


def build_model(name, tiny=False, seed=0):
    """The untrained restoration network ``name`` (see :func:`parse_models`), full size or tiny.

    The network training builds from the same settings
    (:mod:`erlrestore.training.experiment`), with Keras' initialisation from
    ``seed``, without a discriminator or clean-to-clean net.
    """
    import keras  # pylint: disable=import-outside-toplevel

    from erlrestore.models import presets  # pylint: disable=import-outside-toplevel
    from erlrestore.training.settings import TrainSettings  # pylint: disable=import-outside-toplevel

    keras.utils.set_random_seed(seed)
    settings = TrainSettings(model_dir="unused", **presets.settings_fields(name, tiny))
    return settings.model_family.restoration_network(settings)


def decode_png_shape(data):
    """``(height, width)`` from a PNG's IHDR chunk; ValueError when ``data`` is not a PNG."""
    if len(data) < 24 or not data.startswith(b"\x89PNG\r\n\x1a\n") or data[12:16] != b"IHDR":
        raise ValueError("the answer is not a PNG")
    return int.from_bytes(data[20:24], "big"), int.from_bytes(data[16:20], "big")


# --------------------------------------------------------------------------
# Part 1: tiled restoration (one worker subprocess per model and size).
# --------------------------------------------------------------------------


def measure_restore(name, width, height, tile, overlap, tile_batch=1, repeats=1, tiny=False, backend="tensorflow"):
    """Runs in a worker: times ``restore_tiled`` of one model on one image; returns a result dict (RESTORE_KEYS).

    Another ``backend`` of :mod:`erlrestore.backends` (``onnxruntime``,
    ``litert``, ``openvino``) exports the same model (same seed, same
    weights) in that runtime's format to a temporary folder with the
    table's exporter and times it through
    :func:`erlrestore.inference.load_restorer` with that backend (ONNX
    Runtime's CPU provider, LiteRT's XNNPACK CPU delegate, OpenVINO's CPU
    device in float32) instead of TensorFlow. ``runtime`` in the result says
    which interpreter ran LiteRT (``ai_edge_litert`` or ``tf.lite``); for the
    other backends it is the backend's name.
    """
    import tempfile  # pylint: disable=import-outside-toplevel

    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from erlrestore import backends, inference  # pylint: disable=import-outside-toplevel
    from erlrestore.models import memd  # pylint: disable=import-outside-toplevel

    model = build_model(name, tiny=tiny)
    spec = backends.get(backend)
    if spec.exported:
        scratch = tempfile.mkdtemp(prefix=f"bench-{backend}-")
        exported = spec.export_function()(model, base_dir=scratch, name="m")
        restorer = inference.load_restorer(exported, backend=backend)
    else:
        restorer = inference.restorer_from_model(model, source=name)
    align = restorer.multiple or inference.DEFAULT_ALIGN
    tiles = sum(1 for _ in inference.tile_grid(height, width, tile, overlap, align))
    image = common.synthetic_image(height, width)
    gpus = tf.config.list_physical_devices("GPU")

    def restore():
        return inference.restore_tiled(restorer, image, tile=tile, overlap=overlap, tile_batch=tile_batch)

    gc.collect()
    baseline = common.current_rss_bytes()
    if gpus:
        tf.config.experimental.reset_memory_stats("GPU:0")
    output = restore()  # warm-up: traces the tf.function
    if output.shape != image.shape:
        raise RuntimeError(f"{name} restored a {image.shape} image into {output.shape}")
    del output
    gc.collect()
    steady_baseline = common.current_rss_bytes()
    can_reset = common.reset_peak_rss()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        restore()
        times.append(time.perf_counter() - began)
    peak = common.max_rss_bytes()
    steady_peak = common.peak_rss_bytes() if can_reset else None
    gpu_peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / _MB if gpus else None
    seconds = statistics.median(times)
    megapixels = width * height / 1e6
    return {
        "model": name,
        "backend": backend,
        "runtime": getattr(restorer, "runtime", backend),
        "width": width,
        "height": height,
        "megapixels": megapixels,
        "tile": tile,
        "overlap": overlap,
        "align": align,
        "tiles": tiles,
        "tile_batch": tile_batch,
        "params": memd.count_params(model),
        "untrained": True,
        "warmup_calls": 1,
        "timed_calls": repeats,
        "seconds": seconds,
        "seconds_all": times,
        "megapixels_per_second": megapixels / seconds,
        "baseline_rss_mb": baseline / _MB,
        "peak_rss_mb": peak / _MB,
        "peak_rss_growth_mb": max(0, peak - baseline) / _MB,
        "steady_peak_rss_growth_mb": None if steady_peak is None else max(0, steady_peak - steady_baseline) / _MB,
        "gpu_peak_mb": gpu_peak,
    }


def _worker_command(name, width, height, tile, overlap, tile_batch, repeats, tiny, backend="tensorflow",
                    result_json=None):
    """The worker's command line; it writes its result dict as JSON to ``result_json``."""
    return [
        sys.executable, "-m", "tools.bench_deploy", "--worker", f"--models={name}", f"--sizes={width}x{height}",
        f"--tile={tile}", f"--overlap={overlap}", f"--tile_batch={tile_batch}", f"--repeats={repeats}",
        "--tiny" if tiny else "--notiny", f"--backends={backend}",
    ] + ([] if result_json is None else [f"--result_json={result_json}"])


def run_worker(name, width, height, tile, overlap, tile_batch=1, repeats=1, tiny=False, timeout=3600.0,
               backend="tensorflow"):
    """:func:`measure_restore` in a fresh subprocess; returns its result dict.

    The worker writes the dict as JSON to a file in a temporary folder of
    this process (``--result_json``), read back once it exits with status 0;
    its stdout is not read.

    Raises:
      RuntimeError (with the end of the worker's stderr) when the worker
      fails, times out or writes no result.
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    what = f"restore worker for {name} ({backend}) at {width}x{height}"
    with tempfile.TemporaryDirectory(prefix="bench_deploy_worker_") as folder:
        result_json = os.path.join(folder, WORKER_RESULT_FILE)
        command = _worker_command(name, width, height, tile, overlap, tile_batch, repeats, tiny, backend,
                                  result_json=result_json)
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False,
                                  cwd=_TOOLS_PARENT)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{what} did not finish within {timeout:g} s") from None
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed (exit status {done.returncode}):\n{tail}")
        try:
            with open(result_json, encoding="utf-8") as handle:
                return json.load(handle)
        except OSError:
            raise RuntimeError(f"{what} exited with status 0 but wrote no result to {result_json}:\n{tail}") from None
        except ValueError as error:
            raise RuntimeError(f"{what} wrote a result that is not JSON ({error}):\n{tail}") from None


def _runtime_label(result):
    """``tensorflow``, ``onnxruntime``, ``litert/tf.lite``...: the backend, and the interpreter when it differs."""
    backend = result.get("backend", "tensorflow")
    runtime = result.get("runtime") or backend
    return backend if runtime == backend else f"{backend}/{runtime}"


def format_restore(result):
    """One printed line for a restore result."""
    steady = result["steady_peak_rss_growth_mb"]
    gpu = result["gpu_peak_mb"]
    return (
        f"restore {result['model']} [{_runtime_label(result)}] {result['width']}x{result['height']} "
        f"({result['tiles']} tile(s) of <= {result['tile']} px, overlap {result['overlap']}, align {result['align']}): "
        f"{result['megapixels_per_second']:.3f} MP/s, {result['seconds']:.3f} s/image "
        f"(median of {result['timed_calls']} after 1 warm-up), peak RSS +{result['peak_rss_growth_mb']:.1f} MB "
        f"over {result['baseline_rss_mb']:.1f} MB"
        + ("" if steady is None else f" (timed calls only +{steady:.1f} MB)")
        + ("" if gpu is None else f", GPU peak {gpu:.1f} MB")
    )


def restore_part(models, sizes, tile, overlap, tile_batch=1, repeats=1, tiny=False, worker_timeout=3600.0,
                 emit=print, backends=("tensorflow",)):
    """Runs :func:`run_worker` for every model and size, one after another; returns ``(results, errors)``.

    ``emit`` gets one line per result (or failure). A failing worker is
    reported in ``errors`` (``{"model", "width", "height", "error"}``) and
    the others still run.
    """
    from erlrestore import inference  # pylint: disable=import-outside-toplevel

    inference.check_tiling(tile, overlap)
    results, errors = [], []
    for name in models:
        for width, height in sizes:
            for backend in backends:  # back to back, so their ratio is a same-run figure
                try:
                    result = run_worker(name, width, height, tile, overlap, tile_batch, repeats, tiny,
                                        worker_timeout, backend)
                except RuntimeError as error:
                    errors.append({"model": name, "backend": backend, "width": width, "height": height,
                                   "error": str(error)})
                    emit(f"restore {name} [{backend}] {width}x{height}: FAILED: {error}")
                    continue
                results.append(result)
                emit(format_restore(result))
    return results, errors


# --------------------------------------------------------------------------
# Part 2: serving.
# --------------------------------------------------------------------------


def serving_part(clients=4, requests=40, image_size=256, tiny=False, request_timeout=120.0, time_limit=600.0):
    """Exports an untrained MEMD, serves it on 127.0.0.1 and loads it with concurrent clients; returns SERVING_KEYS.

    Raises:
      RuntimeError when the warm-up request fails or answers something that
      is not a PNG of the input's size (nothing is timed then).
    """
    from erlrestore import client, export, serving  # pylint: disable=import-outside-toplevel

    png = common.encode_png(common.synthetic_image(image_size, image_size, seed=1))
    model = build_model(SERVING_MODEL_NAME, tiny=tiny)
    with tempfile.TemporaryDirectory(prefix="bench_deploy_") as base:
        export.export_savedmodel(model, base, name=SERVING_MODEL_NAME, version=1)
        repository = serving.load_models(base, [SERVING_MODEL_NAME])
        server = serving.RestServer(repository, host="127.0.0.1", port=0)
        thread = threading.Thread(target=server.serve_forever, name="bench-server", daemon=True)
        thread.start()
        url = f"http://127.0.0.1:{server.server_port}"
        try:
            def send():
                answer = client.restore_bytes_rest(url, SERVING_MODEL_NAME, png, timeout=request_timeout)
                if decode_png_shape(answer) != (image_size, image_size):
                    raise ValueError(f"answer of size {decode_png_shape(answer)}, expected {image_size}x{image_size}")
                return answer

            try:
                send()  # warm-up
            except Exception as error:  # pylint: disable=broad-except
                raise RuntimeError(f"the warm-up request to {url} failed: {type(error).__name__}: {error}") from error
            outcome = run_clients(send, clients, requests, time_limit=time_limit)
        finally:
            server.shutdown()
            server.close()
            thread.join(timeout=30)
    result = {
        "model": SERVING_MODEL_NAME,
        "untrained": True,
        "image_size": image_size,
        "png_bytes": len(png),
        "clients": clients,
        "requests": requests,
        "completed": len(outcome["latencies"]),
        "errors": outcome["errors"],
        "first_error": outcome["first_error"],
        "stopped_early": outcome["stopped_early"],
        "wall_seconds": outcome["wall_seconds"],
    }
    result.update(latency_summary(outcome["latencies"], outcome["wall_seconds"]))
    return result


def format_serving(result):
    """One printed line for the serving result."""

    def ms(key):
        return "n/a" if result[key] is None else f"{result[key]:.1f} ms"

    rps = "n/a" if result["requests_per_second"] is None else f"{result['requests_per_second']:.2f}"
    return (
        f"serving {result['model']} restore_bytes, {result['image_size']}x{result['image_size']} PNG "
        f"({result['png_bytes']} bytes), {result['clients']} clients: {result['completed']}/{result['requests']} "
        f"answered, latency p50 {ms('latency_ms_p50')}, p95 {ms('latency_ms_p95')}, max {ms('latency_ms_max')}, "
        f"{rps} requests/s, {result['errors']} error(s)" + (", stopped at the time limit" if result["stopped_early"]
                                                            else "")
    )


# --------------------------------------------------------------------------
# Command line.
# --------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_enum("part", "all", list(PARTS), "Which benchmark to run.")
    flags.DEFINE_string("models", ",".join(DEFAULT_MODELS),
                        "Restore part: comma-separated models (memd, erlnet, or a generator name).")
    flags.DEFINE_string("sizes", DEFAULT_SIZES, "Restore part: comma-separated image sizes WIDTHxHEIGHT.")
    from erlrestore import backends  # pylint: disable=import-outside-toplevel
    from erlrestore.cli import option_groups  # pylint: disable=import-outside-toplevel

    option_groups.define_tiling_flags(512, tile_batch=True, lower_bound=0)  # the restore part's tiling

    flags.DEFINE_multi_enum("backends", ["tensorflow"], list(backends.NAMES),
                            "Restore part: runtimes measured back to back on the same model (repeat the flag; "
                            "onnxruntime needs the [onnx] extra, openvino the [openvino] extra, litert runs "
                            "ai-edge-litert from the [litert] extra, else tf.lite.Interpreter).")
    flags.DEFINE_integer("repeats", 3, "Restore part: timed calls after the warm-up (the median is reported).",
                         lower_bound=1)
    flags.DEFINE_float("worker_timeout", 3600.0, "Restore part: seconds one model/size worker may take.",
                       lower_bound=1.0)
    flags.DEFINE_integer("clients", 4, "Serving part: concurrent clients.", lower_bound=1)
    flags.DEFINE_integer("requests", 40, "Serving part: requests in all (not per client).", lower_bound=1)
    flags.DEFINE_integer("image_size", 256, "Serving part: side of the square PNG sent.", lower_bound=1)
    flags.DEFINE_float("request_timeout", 120.0, "Serving part: seconds to wait for each answer.", lower_bound=0.1)
    flags.DEFINE_float("time_limit", 600.0, "Serving part: no request is started after this many seconds.",
                       lower_bound=0.1)
    flags.DEFINE_bool("tiny", False, "Tiny models and small defaults (for tests); explicit flags still win.")
    flags.DEFINE_bool("worker", False, "Internal: measure one model and size, write the result to --result_json, "
                      "exit.")
    flags.DEFINE_string("result_json", None, "Internal, with --worker: the file the worker writes its result to "
                        "(JSON); the parent names a file in a temporary folder of its own.")


def _apply_tiny_defaults():
    for name, value in TINY_DEFAULTS.items():
        if not FLAGS[name].present:
            setattr(FLAGS, name, value)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.tiny:
        _apply_tiny_defaults()
    try:
        models = parse_models(FLAGS.models)
        sizes = parse_sizes(FLAGS.sizes)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if FLAGS.tile <= 2 * FLAGS.overlap:
        raise app.UsageError(f"--tile ({FLAGS.tile}) must be larger than twice --overlap ({FLAGS.overlap})")

    if FLAGS.worker:
        if len(models) != 1 or len(sizes) != 1:
            raise app.UsageError("--worker measures exactly one model and one size")
        if not FLAGS.result_json:
            raise app.UsageError("--worker needs --result_json, the file its result is written to")
        (width, height), = sizes
        result = measure_restore(models[0], width, height, FLAGS.tile, FLAGS.overlap, FLAGS.tile_batch,
                                 FLAGS.repeats, FLAGS.tiny, FLAGS.backends[0])
        with open(FLAGS.result_json, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        return 0

    description = machine.describe()
    print(f"machine: {description['processor']}, os.cpu_count()={description['cpu_count']}, "
          f"python {description['python']}, tensorflow {description['tensorflow']}, keras {description['keras']}, "
          f"devices {description['devices']}"
          + (" (tiny models)" if FLAGS.tiny else " (untrained default-size models)"), flush=True)
    report = {key: None for key in JSON_KEYS}
    report["machine"] = description
    report["settings"] = {
        "part": FLAGS.part, "tiny": FLAGS.tiny, "models": models, "sizes": [f"{w}x{h}" for w, h in sizes],
        "tile": FLAGS.tile, "overlap": FLAGS.overlap, "tile_batch": FLAGS.tile_batch, "repeats": FLAGS.repeats,
        "backends": FLAGS.backends,
        "clients": FLAGS.clients, "requests": FLAGS.requests, "image_size": FLAGS.image_size,
    }
    failed = False
    if FLAGS.part in ("all", "restore"):
        results, errors = restore_part(models, sizes, FLAGS.tile, FLAGS.overlap, FLAGS.tile_batch, FLAGS.repeats,
                                       FLAGS.tiny, FLAGS.worker_timeout, emit=lambda line: print(line, flush=True),
                                       backends=FLAGS.backends)
        report["restore"] = results
        if errors:
            report["restore_errors"] = errors
            failed = True
    if FLAGS.part in ("all", "serving"):
        try:
            result = serving_part(FLAGS.clients, FLAGS.requests, FLAGS.image_size, FLAGS.tiny,
                                  FLAGS.request_timeout, FLAGS.time_limit)
        except RuntimeError as error:
            print(f"serving: FAILED: {error}", flush=True)
            report["serving_error"] = str(error)
            failed = True
        else:
            report["serving"] = result
            print(format_serving(result), flush=True)
            failed = failed or bool(result["errors"])
    print(json.dumps(report), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
