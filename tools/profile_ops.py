"""Where the time goes: a TensorFlow profiler trace of one model's inference or training step, per op type.

``python -m tools.profile_ops --model=pix2pix --part=inference --precision=float32``
builds the model as :mod:`tools.benchmark` does (same preset, seed and
``tf.function``; for inference the inference graph that ``erlrestore-restore``
runs, or with ``--norewrite`` the Keras model as built), runs the call once untraced, then ``--steps`` calls under
``tf.profiler.experimental``, and reads the trace (an XPlane protobuf)
back. Every TensorFlow op the executor ran appears on the ``tf_Compute``
threads as an event named ``node_name:OpType``; the tool sums their
durations by op type (and, with ``--by=node``, by node) and prints each
type's milliseconds per call and its share of the summed op time, the
largest first, with the wall time per call beside it. On a CPU the op
events nest nothing and the executor runs ops one after another on these
threads, so the summed op time is close to the wall time; the remainder is
executor and Python overhead.

Fused kernels show up under their own types (``_FusedConv2D``,
``_MklFusedBatchMatMulV2``, ...), which is how to see whether Grappler's
remapper fused a convolution with its bias, add or activation. ``--trace_dir``
keeps the raw trace for TensorBoard's profile plugin.

Output: JSON on stdout (``--output`` writes it too): ``settings``, ``wall_ms``
(median per call, from the traced calls), ``op_ms`` (the summed op time per
call) and ``ops``: ``[{"op", "ms", "share", "count"}]``.
"""

import erlrestore.cli  # noqa: F401  (first: keeps TensorFlow's start-up log quiet)

import collections
import glob
import os
import shutil
import statistics
import tempfile
import time

import tensorflow as tf
from absl import app, flags

from erlrestore import inference
from tools import benchmark, common

FLAGS = flags.FLAGS

PARTS = ("inference", "train")
# Events on the compute threads that are the executor's bookkeeping, not ops.
_NOT_OPS = ("ThreadpoolListener::", "ExecutorState::", "ExecutorDoneCallback", "RunStep")


def _xplane_module():
    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=import-outside-toplevel

    return xplane_pb2


def op_times(trace_dir, by="type"):
    """``{key: (total_ps, count)}`` summed over the op events of the trace under ``trace_dir``.

    ``key`` is the op type (``by="type"``) or ``"node:Type"`` (``by="node"``).
    """
    paths = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True))
    if not paths:
        raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
    space = _xplane_module().XSpace()
    with open(paths[-1], "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.defaultdict(lambda: [0, 0])
    for plane in space.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if ":" not in name or name.startswith(_NOT_OPS):
                    continue
                key = name.rsplit(":", 1)[1] if by == "type" else name
                totals[key][0] += event.duration_ps
                totals[key][1] += 1
    return {key: tuple(value) for key, value in totals.items()}


def build_call(model, part, size, batch, precision, quick=False, rewrite=True):
    """The traced function of one part: ``(call, description)``; ``call()`` blocks until the result exists.

    Inference runs the restoration network's inference graph
    (:func:`erlrestore.inference.verified_inference_graph`, as tools.benchmark
    and ``erlrestore-restore``), or the Keras model as built with
    ``rewrite=False``.
    """
    settings, trainer, networks, data = benchmark.build_workload(model, size, batch, precision, quick=quick)
    if part == "inference":
        restoration = networks["final.keras"]
        description = "restoration network as built, training=False"
        if rewrite:
            graph = inference.verified_inference_graph(restoration)
            restoration = graph.model
            description = (f"restoration network's inference graph ({len(graph.folded)} batch norms folded, "
                           f"{len(graph.phased)} phase convolutions), training=False")
        infer = tf.function(lambda x: restoration(x, training=False))
        return lambda: infer(data[0]).numpy(), description
    stage = benchmark.stage_list(model)[-1]
    return benchmark.training_call(trainer, settings, stage, data), f"training step, stage {stage.name}"


def profile(model, part, size, batch, precision, steps, by="type", top=20, trace_dir=None, quick=False,
            rewrite=True, report=print):
    """Profiles ``steps`` calls after one untraced call; returns the result dict (module docstring)."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    call, description = build_call(model, part, size, batch, precision, quick, rewrite)
    report(f"{model} {part} ({description}), {size}x{size}, batch {batch}, {precision}: tracing and warming up")
    call()
    call()
    keep = bool(trace_dir)
    trace_dir = trace_dir or tempfile.mkdtemp(prefix="erlrestore-profile-")
    walls = []
    try:
        tf.profiler.experimental.start(trace_dir)
        try:
            for _ in range(steps):
                start = time.perf_counter()
                call()
                walls.append(time.perf_counter() - start)
        finally:
            tf.profiler.experimental.stop()
        totals = op_times(trace_dir, by=by)
    finally:
        if not keep:
            shutil.rmtree(trace_dir, ignore_errors=True)
    op_ps = sum(total for total, _ in totals.values())
    ranked = sorted(totals.items(), key=lambda item: item[1][0], reverse=True)
    ops = [
        {"op": key, "ms": total / 1e9 / steps, "share": total / op_ps if op_ps else 0.0, "count": count // steps}
        for key, (total, count) in ranked[:top]
    ]
    wall_ms = statistics.median(walls) * 1e3
    for row in ops:
        report(f"  {row['op'][:60]:60s} {row['ms']:9.2f} ms {100 * row['share']:5.1f}%  x{row['count']}")
    report(f"  summed op time {op_ps / 1e9 / steps:.1f} ms per call, wall {wall_ms:.1f} ms per call")
    return {
        "settings": {"model": model, "part": part, "size": size, "batch": batch, "precision": precision,
                     "steps": steps, "by": by, "quick": quick, "rewrite": rewrite, "description": description},
        "wall_ms": wall_ms,
        "op_ms": op_ps / 1e9 / steps,
        "ops": ops,
        "trace_dir": trace_dir if keep else None,
    }


def define_flags():
    flags.DEFINE_enum("model", "pix2pix", list(benchmark.MODEL_NAMES), "Model preset (as tools.benchmark).")
    flags.DEFINE_enum("part", "inference", list(PARTS), "What to profile.")
    flags.DEFINE_integer("size", 256, "Square input side in pixels.", lower_bound=8)
    flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"], "Keras precision.")
    flags.DEFINE_integer("steps", 5, "Traced calls (after two untraced ones).", lower_bound=1)
    flags.DEFINE_enum("by", "type", ["type", "node"], "Sum op time per op type or per graph node.")
    flags.DEFINE_integer("top", 20, "Rows to keep, the largest first.", lower_bound=1)
    flags.DEFINE_string("trace_dir", "", "Keep the raw trace here (for TensorBoard); default: a temporary folder.")
    flags.DEFINE_string("output", "", "Also write the JSON here.")
    flags.DEFINE_bool("rewrite", True, "Inference: run the inference graph (batch norm folded, phase convolutions) "
                      "as erlrestore-restore does; --norewrite: the Keras model as built.")
    flags.DEFINE_bool("quick", False, "The model's tiny variant (as tools.benchmark --quick): seconds, for tests.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common.run_and_print(lambda report: profile(
        FLAGS.model, FLAGS.part, FLAGS.size, FLAGS.batch, FLAGS.precision, FLAGS.steps, by=FLAGS.by,
        top=FLAGS.top, trace_dir=FLAGS.trace_dir or None, quick=FLAGS.quick, rewrite=FLAGS.rewrite,
        report=report), FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
