"""One side of ``tools.bench_peer``'s comparison, run in a process of its own.

    python -m tools.peer_side REQUEST.json RESULT.json

Not a tool to run by hand: :mod:`tools.bench_peer` (the parent, which imports
neither TensorFlow nor PyTorch) starts one such process per side and round.
The child reads its request (a JSON object the parent wrote), loads only
its own side's framework, sets that framework's thread pools from the
request, times the side on the input array the parent saved (``.npy``),
and writes its result as one JSON object to ``RESULT.json``. Progress and
the frameworks' own messages go to stderr; nothing is read from stdout.

Sides (:data:`SIDES`), each with the one module that stands for its framework:

* ``ours`` (``tensorflow``): erlrestore's pix2pix as ``tools.benchmark``
  builds it (:func:`tools.benchmark.build_workload`), the trainer's
  ``train_step`` in a ``tf.function`` and the generator's verified inference
  graph, XLA off;
* ``peer`` (``torch``): the published pix2pix of :mod:`tools.bench_peer` (:mod:`tools.peer_pix2pix`);
* ``fake_ours`` (``fakeflow``) and ``fake_peer`` (``faketorch``): pure-NumPy
  stand-ins with the same request and result, so that the harness (the
  processes, the order, the load gate, the statistics, the JSON) is tested
  where neither framework is installed. "Loading" their framework puts an
  empty module of that name in ``sys.modules``, so a test can tell whether
  a stand-in's framework leaked into another process.

Requests: ``{"mode": "describe", "side", "precisions", "size", "quick"}``
answers the machine's description, the precisions resolved (``[[resolved,
[requested names]], ...]``), the model's label and a size error (or null);
``{"mode": "measure", "side", "precision", "size", "batch", "steps",
"warmup", "quick", "threads", "interop_threads", "input", "seed",
"peer_autocast"}`` times the side. Every result carries the child's ``pid``
and the frameworks loaded in it (:func:`loaded_frameworks`).

Timing (:func:`time_calls`): one untimed first call (TensorFlow traces in
it), ``warmup`` untimed calls, then ``steps`` timed calls, each one's
seconds kept; inference first, then the training step, on both sides.
"""

import hashlib
import json
import os
import statistics
import sys
import time
import traceback
import types

import numpy as np

from tools.common import time_calls  # the timing loop, shared with tools.benchmark

# The side -> the module whose presence in sys.modules says that side's framework is loaded.
SIDES = {"ours": "tensorflow", "peer": "torch", "fake_ours": "fakeflow", "fake_peer": "faketorch"}
# Every module a child reports on (keras too: it comes with ours).
FRAMEWORKS = ("tensorflow", "keras", "torch", "fakeflow", "faketorch")
# erlrestore.training.devices.PRECISIONS, repeated here so that the parent need not import TensorFlow
# (tests/test_tools_peer.py checks they agree).
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
# The environment variables that size the OpenMP / MKL / BLAS pools: the parent sets them alike for both sides.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MODEL = "pix2pix"


def loaded_frameworks(modules=None):
    """The names of :data:`FRAMEWORKS` imported in this process (``modules``: ``sys.modules`` by default)."""
    modules = sys.modules if modules is None else modules
    return sorted(name for name in FRAMEWORKS if modules.get(name) is not None)


def file_sha256(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def make_input(size, batch, seed=0):
    """The pair both sides are fed: ``(2, batch, size, size, 3)`` float32 in [0, 1], ``[input, target]``.

    Drawn as :func:`tools.benchmark.random_pair_batch` draws ours (a uniform
    target, the input that plus up to 0.1 uniform noise, clipped); the
    reference maps it to [-1, 1] and NCHW itself.
    """
    rng = np.random.default_rng(seed)
    target = rng.random((batch, size, size, 3)).astype("float32")
    condition = np.clip(target + 0.1 * rng.random(target.shape), 0, 1).astype("float32")
    return np.stack([condition, target])



def _thread_env():
    return {name: os.environ.get(name) for name in THREAD_ENV}


def _read_input(request):
    pair = np.load(request["input"])
    expected = (2, request["batch"], request["size"], request["size"], 3)
    if pair.shape != expected or pair.dtype != np.float32:
        raise ValueError(f"input {request['input']}: {pair.dtype} {pair.shape}, expected float32 {expected}")
    return pair, file_sha256(request["input"])


def _timings(infer_times, train_times):
    return {"infer_s": infer_times, "train_step_s": train_times,
            "infer_median_s": statistics.median(infer_times),
            "train_step_median_s": statistics.median(train_times)}


# ---------------------------------------------------------------------------
# ours: TensorFlow
# ---------------------------------------------------------------------------


def _start_tensorflow(request):
    """TensorFlow with the request's intra- and inter-op pools, no GPU, quiet."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    if request.get("threads"):
        tf.config.threading.set_intra_op_parallelism_threads(request["threads"])
        tf.config.threading.set_inter_op_parallelism_threads(request["interop_threads"])
    tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")
    return tf


def describe_ours(request):
    _start_tensorflow(request)
    from erlrestore import machine  # pylint: disable=import-outside-toplevel
    from erlrestore.models import presets  # pylint: disable=import-outside-toplevel
    from erlrestore.training import devices  # pylint: disable=import-outside-toplevel
    from tools import benchmark  # pylint: disable=import-outside-toplevel

    resolved = {}
    for name in request["precisions"]:
        resolved.setdefault(devices.resolve_precision(name, "CPU"), []).append(name)
    size_error = None
    try:
        for precision in resolved:
            benchmark.check_size(request["size"], benchmark.model_settings(MODEL, precision, "off", request["quick"]))
    except ValueError as error:
        size_error = str(error)
    return {"machine": machine.describe(), "resolved": list(resolved.items()),
            "label": presets.PRESETS[MODEL].label, "size_error": size_error}


def measure_ours(request):
    tf = _start_tensorflow(request)
    import keras  # pylint: disable=import-outside-toplevel

    from erlrestore import inference, run_folder  # pylint: disable=import-outside-toplevel
    from erlrestore.models import memd  # pylint: disable=import-outside-toplevel
    from tools import benchmark  # pylint: disable=import-outside-toplevel

    pair, sha = _read_input(request)
    settings, trainer, networks, _ = benchmark.build_workload(MODEL, request["size"], request["batch"],
                                                              request["precision"], "off", request["quick"])
    data = (tf.constant(pair[0]), tf.constant(pair[1]))
    deployed = inference.verified_inference_graph(networks[run_folder.FINAL]).model
    infer = tf.function(lambda x: deployed(x, training=False), jit_compile=False)
    infer_times = time_calls(lambda: infer(data[0]).numpy(), request["steps"], request["warmup"])
    [stage] = benchmark.stage_list(MODEL)
    train_times = time_calls(benchmark.training_call(trainer, settings, stage, data, False), request["steps"],
                             request["warmup"])
    return {
        **_timings(infer_times, train_times),
        "input_sha256": sha,
        "precision": request["precision"],
        "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                    "inter_op": tf.config.threading.get_inter_op_parallelism_threads()},
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
        "params": {name[: -len(".keras")]: memd.count_params(net) for name, net in networks.items()},
    }


# ---------------------------------------------------------------------------
# peer: PyTorch
# ---------------------------------------------------------------------------


def measure_peer(request):
    from tools import peer_pix2pix  # pylint: disable=import-outside-toplevel

    torch = peer_pix2pix.import_torch()
    if request.get("threads"):
        torch.set_num_threads(request["threads"])
        torch.set_num_interop_threads(request["interop_threads"])
    pair, sha = _read_input(request)
    config = peer_pix2pix.TINY if request["quick"] else peer_pix2pix.FULL
    autocast = bool(request.get("peer_autocast")) and request["precision"] == "mixed_bfloat16"
    trainer, params = peer_pix2pix.build_peer(config, seed=request.get("seed", 0), autocast=autocast)
    # NHWC in [0, 1] -> NCHW in [-1, 1], the published model's range.
    condition, target = (torch.from_numpy(np.ascontiguousarray(array.transpose(0, 3, 1, 2))) * 2 - 1
                         for array in pair)
    infer_times = time_calls(lambda: trainer.infer(condition), request["steps"], request["warmup"])
    train_times = time_calls(lambda: trainer.train_step(condition, target), request["steps"], request["warmup"])
    return {
        **_timings(infer_times, train_times),
        "input_sha256": sha,
        "precision": "autocast_bfloat16" if autocast else "float32",
        "threads": {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()},
        "versions": {"torch": torch.__version__},
        "params": params,
    }


# ---------------------------------------------------------------------------
# The stand-ins: NumPy only
# ---------------------------------------------------------------------------


def _load_fake_framework(side):
    name = SIDES[side]
    sys.modules.setdefault(name, types.ModuleType(name, f"stand-in framework of tools.peer_side's {side} side"))


def describe_fake(request):
    _load_fake_framework(request["side"])
    from erlrestore import machine  # pylint: disable=import-outside-toplevel  (no TensorFlow at import)

    resolved = {}
    for name in request["precisions"]:
        resolved.setdefault("float32" if name == "auto" else name, []).append(name)
    return {"machine": {"cpu_model": machine.cpu_model(), "cpu_count": os.cpu_count(),
                        "usable_cpus": machine.usable_cpus(), "stand_in": True},
            "resolved": list(resolved.items()), "label": "NumPy stand-in", "size_error": None}


def measure_fake(request):
    """A NumPy "network": one hidden layer; the fake reference is twice as wide (so about twice as slow)."""
    side = request["side"]
    _load_fake_framework(side)
    pair, sha = _read_input(request)
    features = pair[0].reshape(request["batch"], -1)
    target = pair[1].reshape(request["batch"], -1)
    hidden = 64 * (2 if side == "fake_peer" else 1)
    weights = np.random.default_rng(request.get("seed", 0)).standard_normal((features.shape[1], hidden))
    weights = (0.01 * weights).astype(np.float32)

    def infer():
        return np.tanh(features @ weights) @ weights.T

    def train_step():
        nonlocal weights
        code = np.tanh(features @ weights)
        error = code @ weights.T - target
        gradient = features.T @ ((error @ weights) * (1 - code**2)) + error.T @ code
        weights = weights - 1e-6 * gradient.astype(np.float32)
        return float(np.mean(error**2))

    infer_times = time_calls(infer, request["steps"], request["warmup"])
    train_times = time_calls(train_step, request["steps"], request["warmup"])
    return {
        **_timings(infer_times, train_times),
        "input_sha256": sha,
        "precision": request["precision"],
        "threads": {"intra_op": request["threads"], "inter_op": request["interop_threads"]},
        "versions": {"numpy": np.__version__},
        "params": {"weights": int(weights.size)},
    }


RUNNERS = {
    ("describe", "ours"): describe_ours,
    ("describe", "fake_ours"): describe_fake,
    ("describe", "fake_peer"): describe_fake,
    ("measure", "ours"): measure_ours,
    ("measure", "peer"): measure_peer,
    ("measure", "fake_ours"): measure_fake,
    ("measure", "fake_peer"): measure_fake,
}


def run(request):
    """The result of one request (module docstring), with this process's ``pid``, frameworks and thread env."""
    started = time.time()
    runner = RUNNERS.get((request["mode"], request["side"]))
    if runner is None:
        raise ValueError(f"side {request['side']!r} cannot {request['mode']}")
    result = runner(request)
    return {**result, "side": request["side"], "mode": request["mode"], "pid": os.getpid(),
            "frameworks": loaded_frameworks(), "thread_env": _thread_env(),
            "started": started, "ended": time.time()}


def write_json(path, value):
    """Writes ``value`` as JSON to ``path`` in one step (a temporary file renamed over it)."""
    temporary = f"{path}.{os.getpid()}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(value, handle)
    os.replace(temporary, path)


def load_json(path):
    """The JSON value in the file ``path``."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def main(argv):
    if len(argv) != 3:
        print("usage: python -m tools.peer_side REQUEST.json RESULT.json (started by tools.bench_peer)",
              file=sys.stderr)
        return 2
    request = load_json(argv[1])
    try:
        result = run(request)
    except Exception:  # pylint: disable=broad-except  (the parent gets the error in the result)
        write_json(argv[2], {"error": traceback.format_exc(), "side": request.get("side"), "pid": os.getpid(),
                             "frameworks": loaded_frameworks()})
        traceback.print_exc()
        return 1
    write_json(argv[2], result)
    if request["mode"] == "measure":
        print(f"peer_side: {request['side']} {request['precision']} pid {os.getpid()}: train step "
              f"{1e3 * result['train_step_median_s']:.1f} ms, inference {1e3 * result['infer_median_s']:.1f} ms "
              f"(medians of {request['steps']})", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
