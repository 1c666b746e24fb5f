"""InfoAccum alone: the layer-by-layer dilated convolutions against the block's matrix-product formulation.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_infoaccum [--output=runs/bench_infoaccum.json]
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_infoaccum --norm=batch --precisions=float32
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_infoaccum --quick      # tiny; the tests' run

One :class:`~erlrestore.layers.InfoAccum` block (default: the paper's
InfoAccum-15, growth rate 4, on a 256x256 RGB input, batch 1, instance norm)
with seeded random weights, computed two ways on the same weights:

* ``direct``: the formulation as the paper writes it -- each dense layer
  calls its normalisation layer and its three dilated ``Conv2D`` layers and
  concatenates (:func:`direct_info_accum`; what ``InfoAccum.call`` did before
  it became a matrix product);
* ``matmul``: ``InfoAccum.call`` itself -- channels-first features, one
  ``(C, 27 g)`` matrix product per layer, shifted sums for the dilations,
  per-channel statistics computed once (the class docstring).

Two parts, each a ``tf.function`` (XLA off): ``forward`` (``training=False``)
and ``train`` (``training=True`` forward, a scalar loss, the gradients of
every trainable weight; no optimizer update). The two formulations are timed
interleaved -- in each of ``--rounds`` rounds every (formulation, part) runs
once, after a tracing call and ``--warmup`` untimed calls -- so that a busy
moment on a shared machine hits both; the tool reports per formulation the
median and the minimum over rounds and the speed-up as the median of the
per-round ratios (direct time / matmul time) and as the ratio of medians.

FLOPs are those of the direct convolutions (``2 * 9 * C_l * g`` per pixel and
branch, summed over the layers; the matrix-product formulation does the same
multiply-adds), ``3x`` that for a training step (forward, activation and
weight gradients, as :mod:`tools.benchmark` counts); GFLOP/s use the median
time, and ``fraction_of_peak`` divides by the matmul peak of the matching type
(:func:`tools.benchmark.matmul_peak`; float32 for ``float32``, bfloat16 for
``mixed_bfloat16``), measured before and after the rounds (the best of both).

Before timing, both formulations run once on the same input and the tool
records their largest output difference and the largest gradient difference
relative to each gradient's magnitude (``check``).

Output: one JSON object on stdout (and in ``--output``): ``machine``,
``settings``, ``matmul_peak_flops``, ``check`` and ``results`` (one record per
precision and part); progress lines go to stderr.
"""

import erlrestore.cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore import machine
from erlrestore.layers import NORMS, InfoAccum
from tools import benchmark, common

FLAGS = flags.FLAGS

PRECISIONS = {"float32": "float32", "mixed_bfloat16": "bfloat16"}
FORMULATIONS = ("direct", "matmul")
PARTS = ("forward", "train")


def direct_info_accum(block, x, training):
    """InfoAccum layer by layer: each dense layer's norm layer, activation and three dilated ``Conv2D`` layers."""
    for i in range(block.num_layers):
        h = block.norm_layers[i](x, training=training) if block.norm_layers else x
        h = block._activation_fn(h)  # pylint: disable=protected-access
        x = keras.ops.concatenate([x] + [conv(h) for conv in block.conv_layers[i]], axis=-1)
    return x


def forward_flops(block, input_shape):
    """FLOPs of one forward pass: the direct convolutions' multiply-adds, 2 FLOPs each."""
    total = 0
    for conv, shape in block.conv_input_shapes(tuple(input_shape)):
        k_h, k_w, c_in, c_out = (int(d) for d in conv.kernel.shape)
        total += 2 * k_h * k_w * c_in * c_out * int(np.prod(shape[:-1]))
    return total


def build_block(layers, growth, norm, precision, channels, seed=0):
    """A built InfoAccum with seeded random weights (positive moving variances)."""
    block = InfoAccum(layers, growth_rate=growth, norm=norm, dtype=precision)
    block.build((None, None, None, channels))
    rng = np.random.default_rng(seed)
    for weight in block.weights:
        shape = tuple(weight.shape)
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 1.5, shape)
        elif "kernel" in weight.path:
            value = rng.normal(0.0, (2.0 / (9 * shape[2])) ** 0.5, shape)  # He-scaled, so values stay O(1)
        else:
            value = rng.normal(0.0, 0.1, shape) + (1.0 if "gamma" in weight.path else 0.0)
        weight.assign(value.astype("float32"))
    return block


def make_calls(block, x, upstream):
    """``{(formulation, part): tf.function}``; each returns tensors to fetch."""
    forward = {
        "direct": lambda t, training: direct_info_accum(block, tf.cast(t, block.compute_dtype), training),
        "matmul": lambda t, training: block(t, training=training),
    }
    def train_step(run):
        def step():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.cast(run(x, True), tf.float32) * upstream)
            return loss, tape.gradient(loss, block.trainable_weights)

        return step

    # Ordered part by part, so that the two formulations of a part run back to back in each round.
    calls = {(name, "forward"): tf.function(lambda run=run: run(x, False)) for name, run in forward.items()}
    calls.update({(name, "train"): tf.function(train_step(run)) for name, run in forward.items()})
    return calls


def _fetch(result):
    for tensor in tf.nest.flatten(result):
        tensor.numpy()


def check(block, x, upstream):
    """Both formulations on the same input: largest output difference, largest relative gradient difference."""
    outputs, gradients = {}, {}
    for name, run in (("direct", lambda t: direct_info_accum(block, tf.cast(t, block.compute_dtype), True)),
                      ("matmul", lambda t: block(t, training=True))):
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = tf.cast(run(x), tf.float32)
            loss = tf.reduce_sum(out * upstream)
        outputs[name] = out.numpy()
        gradients[name] = [g.numpy() for g in tape.gradient(loss, [x] + block.trainable_weights)]
    reference = np.abs(outputs["direct"]).max()
    gradient_error = max(float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))
                         for a, b in zip(gradients["matmul"], gradients["direct"]))
    return {"max_abs_output_difference": float(np.abs(outputs["matmul"] - outputs["direct"]).max()),
            "max_abs_output": float(reference), "max_relative_gradient_difference": gradient_error}


def time_interleaved(calls, rounds, warmup):
    """``{key: [seconds per round]}``: every call once per round, in turn."""
    for call in calls.values():
        for _ in range(warmup + 1):  # the first call traces
            _fetch(call())
    times = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            start = time.perf_counter()
            _fetch(call())
            times[key].append(time.perf_counter() - start)
    return times


def summarize(times, precision, part, flops):
    """One result record from the per-round times of both formulations (``*_fraction_of_peak`` filled later)."""
    record = {"precision": precision, "part": part, "flops": flops}
    medians = {}
    for name in FORMULATIONS:
        seconds = times[(name, part)]
        medians[name] = statistics.median(seconds)
        record[f"{name}_ms"] = medians[name] * 1e3
        record[f"{name}_min_ms"] = min(seconds) * 1e3
        record[f"{name}_gflops_per_s"] = flops / medians[name] / 1e9
        record[f"{name}_fraction_of_peak"] = None
    ratios = [d / m for d, m in zip(times[("direct", part)], times[("matmul", part)])]
    record["speedup"] = statistics.median(ratios)
    record["speedup_of_medians"] = medians["direct"] / medians["matmul"]
    return record


def run(size, batch, layers, growth, norm, channels, precisions, rounds, warmup, matmul_sizes, matmul_runs,
        report=print):
    """The whole measurement; returns the JSON dict (module docstring)."""
    for precision in precisions:
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    description = machine.describe()
    report("machine: " + machine.summary_line(description))
    dtypes = list(dict.fromkeys(PRECISIONS[p] for p in precisions))
    peaks, _ = benchmark.matmul_peak(dtypes, matmul_sizes, runs=matmul_runs)
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(0.0, 1.0, (batch, size, size, channels)).astype("float32"))
    upstream = tf.constant(rng.normal(0.0, 1.0, (batch, size, size, channels + 3 * growth * layers))
                           .astype("float32"))
    results, checks = [], {}
    for precision in precisions:
        block = build_block(layers, growth, norm, precision, channels)
        flops = forward_flops(block, x.shape)
        checks[precision] = check(block, x, upstream)
        report(f"{precision}: check {checks[precision]}")
        times = time_interleaved(make_calls(block, x, upstream), rounds, warmup)
        for part, part_flops in (("forward", flops), ("train", 3 * flops)):
            record = summarize(times, precision, part, part_flops)
            results.append(record)
            report(f"{precision:<15} {part:<8} direct {record['direct_ms']:9.1f} ms  "
                   f"matmul {record['matmul_ms']:9.1f} ms  speed-up {record['speedup']:.2f}x  "
                   f"({record['matmul_gflops_per_s']:.1f} GFLOP/s)")
    after, _ = benchmark.matmul_peak(dtypes, matmul_sizes, runs=matmul_runs)  # best of before and after
    peaks = {dtype: max(rate, after.get(dtype, 0.0)) for dtype, rate in peaks.items()}
    for record in results:
        peak = peaks.get(PRECISIONS[record["precision"]])
        for name in FORMULATIONS:
            record[f"{name}_fraction_of_peak"] = record[f"{name}_gflops_per_s"] * 1e9 / peak if peak else None
    return {
        "machine": description,
        "settings": {"size": size, "batch": batch, "layers": layers, "growth": growth, "norm": norm,
                     "channels": channels, "precisions": list(precisions), "rounds": rounds, "warmup": warmup,
                     "matmul_sizes": list(matmul_sizes), "jit_compile": False},
        "matmul_peak_flops": peaks,
        "check": checks,
        "results": results,
    }


def define_flags():
    flags.DEFINE_integer("size", 256, "Square input side in pixels (--quick: 16).", lower_bound=1)
    flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("layers", 15, "Dense layers of the block (--quick: 2).", lower_bound=1)
    flags.DEFINE_integer("growth", 4, "Growth rate per dilation branch.", lower_bound=1)
    flags.DEFINE_enum("norm", "instance", list(NORMS), "The block's normalisation.")
    flags.DEFINE_integer("channels", 3, "Input channels.", lower_bound=1)
    flags.DEFINE_list("precisions", [], "From float32, mixed_bfloat16 (default: float32, plus mixed_bfloat16 "
                      "where the CPU has bfloat16 arithmetic or on a GPU).")
    flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds (--quick: 2).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed calls after the tracing call (--quick: 0).", lower_bound=0)
    flags.DEFINE_list("matmul_sizes", [], "Matmul sides for the peak (default: 1024,2048; --quick: 128).")
    flags.DEFINE_integer("matmul_runs", 3, "Timed calls per matmul size (the best is kept; --quick: 1).",
                         lower_bound=1)
    flags.DEFINE_string("output", "", "Also write the JSON here.")
    flags.DEFINE_bool("quick", False, "A tiny block and input, 2 rounds: seconds, for tests.")


def _value(name, quick_value):
    """The flag's value, or ``quick_value`` under --quick when the flag was not given."""
    return quick_value if FLAGS.quick and not FLAGS[name].present else FLAGS[name].value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    tf.get_logger().setLevel("ERROR")
    precisions = FLAGS.precisions or [p for p in benchmark.default_precisions() if p in PRECISIONS]
    matmul_sizes = [int(n) for n in FLAGS.matmul_sizes] or ([128] if FLAGS.quick else [1024, 2048])
    common.run_and_print(lambda report: run(
        _value("size", 16), FLAGS.batch, _value("layers", 2), FLAGS.growth, FLAGS.norm, FLAGS.channels, precisions,
        _value("rounds", 2), _value("warmup", 0), matmul_sizes, _value("matmul_runs", 1), report=report),
        FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
