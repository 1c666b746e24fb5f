"""What the benchmarks measure of the machine itself: the matmul peak, peak memory and the mixed precision.

* :func:`matmul_peak`: the best FLOP rate of chained square matmuls
  (``2 n^3`` FLOPs each) in a ``tf.function``, per dtype;
* :func:`reset_peak_memory` / :func:`peak_memory`: on a GPU, TensorFlow's
  peak allocation on ``GPU:0``; on a CPU, the process's peak resident set
  (``VmHWM``), reset by returning freed heap to the system and writing
  ``5`` to ``/proc/self/clear_refs`` where the kernel allows it;
* :func:`default_precisions`: float32 plus the device's mixed type.

``python -m tools.benchmark`` (whose module docstring says how it uses them)
and ``python -m tools.bench_infoaccum`` share them.
"""

import math
import time

import tensorflow as tf

from erlrestore.training import devices
from tools import common


def default_precisions(kind=None):
    """float32 plus the device's mixed type.

    mixed_bfloat16 on a CPU with bfloat16 arithmetic, on TPUs and on GPUs of
    compute capability 8.0 and newer; mixed_float16 on 7.x; none otherwise.
    """
    kind = kind or devices.device_type()
    if kind == "GPU":
        major = devices._gpu_compute_capability()[0]
        if major >= 8:
            return ["float32", "mixed_bfloat16"]
        return ["float32", "mixed_float16"] if major >= 7 else ["float32"]
    if kind == "TPU":
        return ["float32", "mixed_bfloat16"]
    return ["float32", "mixed_bfloat16"] if devices.cpu_has_bfloat16() else ["float32"]


def matmul_peak(dtypes, sizes, runs=5, min_call_seconds=0.05):
    """``({dtype: best FLOP/s}, [per-size records])`` of chained ``n x n`` matmuls.

    For each dtype and size a ``tf.function`` multiplies ``x <- x @ b``
    ``reps`` times (reps chosen so that one call lasts at least
    ``min_call_seconds``; the chain keeps every product needed, so nothing
    is pruned), then sums ``x`` to fetch a scalar. Each call costs
    ``2 n^3 reps`` FLOPs; the rate is that over the best of ``runs`` calls.
    """
    peaks, records = {}, []
    for dtype in dtypes:
        for n in sizes:
            rng = tf.random.Generator.from_seed(0)
            x = tf.cast(rng.normal((n, n)), dtype)
            b = tf.cast(rng.normal((n, n)) / math.sqrt(n), dtype)

            def chain(reps):
                @tf.function(jit_compile=False)
                def run(x, b):
                    for _ in range(reps):
                        x = tf.linalg.matmul(x, b)
                    return tf.reduce_sum(tf.cast(x, tf.float32))
                return run

            one = chain(1)
            one(x, b).numpy()  # trace
            start = time.perf_counter()
            one(x, b).numpy()
            single = time.perf_counter() - start
            reps = max(1, min(64, math.ceil(min_call_seconds / max(single, 1e-9))))
            run = chain(reps) if reps > 1 else one
            run(x, b).numpy()
            best = math.inf
            for _ in range(runs):
                start = time.perf_counter()
                run(x, b).numpy()
                best = min(best, time.perf_counter() - start)
            rate = 2.0 * n**3 * reps / best
            records.append({"dtype": dtype, "n": n, "reps": reps, "seconds": best, "flops_per_s": rate})
            peaks[dtype] = max(peaks.get(dtype, 0.0), rate)
    return peaks, records


def reset_peak_memory(kind):
    """Resets the peak-memory counter of ``kind`` (GPU or else the CPU); returns whether it could."""
    if kind == "GPU":
        try:
            tf.config.experimental.reset_memory_stats("GPU:0")
            return True
        except (ValueError, tf.errors.OpError):
            return False
    common.release_free_heap()
    return common.reset_peak_rss()


def peak_memory(kind):
    """Peak bytes since the last reset: GPU:0's peak allocation, or the process's VmHWM."""
    if kind == "GPU":
        try:
            return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])
        except (ValueError, tf.errors.OpError):
            return None
    return common.peak_rss_bytes()
