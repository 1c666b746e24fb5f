"""Compute benchmark: training and inference speed, FLOPs, memory and the matmul peak, as JSON.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.benchmark [--output=benchmark.json]     # or: make benchmark
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.benchmark --models=pix2pix --sizes=256 \\
        --batch_sizes=1 --jit_compile=off,on                                          # XLA against none
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.benchmark --quick                  # tiny; the tests' run

One entry point that measures, on whatever device TensorFlow computes on
(the first GPU if there is one, else the CPU):

* the device's matmul peak: the best FLOP rate of chained square matmuls
  (``2 n^3`` FLOPs each) in a ``tf.function``, measured before and after the
  models (the best of both, since a busy moment on a shared machine can only
  lower it), in float32 and in the 16-bit
  type of each mixed precision benchmarked (bfloat16 / float16). On Ampere
  and newer GPUs TensorFlow runs float32 matmuls as TF32 by default, so the
  float32 figure there is TF32's (``machine.tf32_enabled`` says);
* for each model family, size, batch, precision and XLA choice: the time of
  one training step (median over ``--steps`` steps after the tracing call and
  ``--warmup`` untimed calls; fewer, at least 2, once the timed steps took
  ``--max_seconds``), steps/s, images/s, the model FLOPs per step,
  the achieved fraction of the matmul peak of the matching type, the
  restoration network's inference time (``training=False``, the graph that
  ``erlrestore-restore`` and the exporters run:
  :func:`erlrestore.inference.verified_inference_graph`, i.e. batch norm
  folded and phase convolutions where the check of
  :func:`erlrestore.inference_graph.optimize_verified` passes (within 1e-5
  in float32; a mixed-precision model on float32 copies, then within its
  16-bit tolerance); the FLOPs
  are the network's, which the rewrite does not change), megapixels/s,
  its fraction of the peak, and peak memory.

Models (``--models``, the presets of :mod:`erlrestore.models.presets`;
``--quick`` builds their tiny variants):

* ``memd``: MEMD (``MEMDConfig()``: depth 4, 32 base filters), stage ``I``
  (MEN+MDE, L_pre);
* ``erlnet``: ERL-Net (MLGD) with its clean-to-clean net, the three stages of
  the MA_D strategy, one record each: ``I`` (MEN+MDE and C2C, L_pre), ``II``
  (REN, L_ERL), ``III`` (REN+MDE, L_pre). The inference figures (the ERL-Net
  alone) are measured once and repeated in the three records;
* ``pix2pix``: the UNet-8 generator (64 filters) + 5-layer PatchGAN, LSGAN,
  ``L_G = adversarial + 100 L1``, stage ``restore``;
* ``unet5_infoaccum15_subpix``: UNet-5 + InfoAccum-15 + SubPixUpsamp + the
  same PatchGAN, LSGAN.

Each is built by :func:`erlrestore.training.experiment.build_trainer` (the
precision as a Keras dtype policy, image-space ends in float32; the
optimizers wrapped for ``mixed_float16``), so it is the network and step a
real run trains. A step is the trainer's ``train_step`` in a ``tf.function``
with ``jit_compile`` set from ``--jit_compile``, fed one seeded random batch.

The grid (``--grid``): ``full`` is every combination of ``--sizes`` x
``--batch_sizes`` x ``--precisions`` x ``--jit_compile``. ``reduced``, the
default on a CPU, keeps the default run under 10 minutes on 2 cores: the
first precision and first XLA choice run at every size with the first batch
and at the first size with every batch; the other precisions and XLA choices
only at the first size and first batch (on the defaults: float32 at 256 b1,
320 b1, 256 b4; mixed_bfloat16 at 256 b1). ``auto`` is ``full`` on a GPU and
``reduced`` elsewhere.

Defaults by device: batches 1 and 4 on a CPU, 1 and 16 on a GPU (a batch
that fills it); precisions float32 plus the device's mixed type
(``mixed_bfloat16`` on a CPU with AVX512_BF16/AMX and on GPUs of compute
capability 8.0 and newer, ``mixed_float16`` on 7.x, none otherwise); XLA off
on a CPU and off,on on a GPU.

FLOPs: the forward passes are counted by :mod:`erlrestore.models.flops`
(its docstring states the convention: one multiply-add is 2 FLOPs, only
convolutions and dense layers, at the shapes the layers really see); the
optimizer update is left out. A training step's FLOPs are its model
family's ``step_flops`` (:mod:`erlrestore.training.families`): the GAN
step's ``3 F_G + 7 F_D``
(:func:`erlrestore.training.gan_family.training_step_flops`), each MEMD /
ERL-Net stage's count of the branches it runs, trains and passes the
gradient through (:func:`erlrestore.training.erl_family.staged_step_flops`).
Inference: the restoration network's forward.

The fraction of peak is ``FLOPs / seconds / peak`` with the float32 peak for
``float32`` and the 16-bit type's for a mixed precision.

Peak memory (``peak_memory_bytes``, during the timed training steps, tracing
included; ``infer_peak_memory_bytes`` the same for inference): on a GPU,
TensorFlow's peak allocation on ``GPU:0`` after ``reset_memory_stats``; on a
CPU, the process's peak resident set (``VmHWM``), reset before each
measurement by returning freed heap to the system (glibc ``malloc_trim``)
and writing ``5`` to ``/proc/self/clear_refs``, so it includes the
TensorFlow runtime and everything alive in the process (the previous
configurations' networks are released first). Where the kernel
refuses the reset the figure is the running peak (``memory.resettable`` is
false).

Output: one JSON object on stdout (and in ``--output``): ``machine``,
``settings``, ``memory``, ``matmul_peak_flops`` ``{dtype: FLOP/s}``,
``matmul`` (every size measured) and ``results`` (one record per model,
stage and configuration, keys ``RECORD_KEYS``; ``params`` counts every
weight of each network: ``final`` the restoration net, ``c2c``,
``discriminator``); a human-readable table goes to stderr.
"""

import gc
import statistics
import sys
import time
import traceback

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore import inference, machine
from erlrestore.models import memd, presets
from erlrestore.training import devices, experiment
from tools import common
from tools.device_peaks import default_precisions, matmul_peak, peak_memory, reset_peak_memory

FLAGS = flags.FLAGS

MODEL_NAMES = tuple(presets.PRESETS)
PRECISION_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16", "mixed_float16": "float16"}

RECORD_KEYS = (
    "model", "label", "stage", "size", "batch", "precision", "jit", "train_step_ms", "steps_per_s",
    "images_per_s", "train_flops_per_step", "train_gflops_per_s", "train_fraction_of_peak", "infer_ms",
    "megapixels_per_s", "infer_flops", "infer_gflops_per_s", "infer_fraction_of_peak", "peak_dtype",
    "peak_memory_bytes", "infer_peak_memory_bytes", "forward_flops", "params", "error",
)


# ---------------------------------------------------------------------------
# Timing helpers
# ---------------------------------------------------------------------------


def median_seconds(fn, steps, warmup, max_seconds=0.0):
    """Median wall time of ``fn()`` over ``steps`` calls, after a tracing call and ``warmup`` calls.

    With ``max_seconds > 0`` the timing stops early once at least two calls
    are timed and they took ``max_seconds`` in all (slow steps vary less).
    """
    return statistics.median(common.time_calls(fn, steps, warmup, max_seconds))


def random_pair_batch(size, batch):
    """A seeded (degraded, clean) float32 batch of ``size`` x ``size`` images."""
    rng = np.random.default_rng(0)
    clean = rng.random((batch, size, size, 3)).astype("float32")
    degraded = np.clip(clean + 0.1 * rng.random(clean.shape), 0, 1).astype("float32")
    return tf.constant(degraded), tf.constant(clean)


# ---------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------


def build_grid(sizes, batch_sizes, precisions, jits, grid="full"):
    """``[(size, batch, precision, jit)]`` in run order (``grid``: full or reduced, module docstring)."""
    if grid not in ("full", "reduced"):
        raise ValueError(f"unknown grid {grid!r}; choose full or reduced")
    configs = []
    for precision in precisions:
        for jit in jits:
            primary = precision == precisions[0] and jit == jits[0]
            for size in sizes:
                for batch in batch_sizes:
                    if grid == "reduced":
                        if not primary and (size != sizes[0] or batch != batch_sizes[0]):
                            continue
                        if size != sizes[0] and batch != batch_sizes[0]:
                            continue
                    configs.append((size, batch, precision, jit))
    return configs


def model_settings(name, precision, jit, quick=False):
    """The ``TrainSettings`` of a benchmarked model (its preset; the tiny variant with ``quick``)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    return experiment.TrainSettings(model_dir="unused", precision=precision, jit_compile=jit, stage_steps=(1,),
                                    **presets.settings_fields(name, tiny=quick))


def check_size(size, settings):
    """Refuses a crop too small for the model (a GAN's PatchGAN output would be empty): its family's check."""
    check_crop = settings.model_family.check_crop
    if check_crop is not None:
        check_crop(settings, size)


# ---------------------------------------------------------------------------
# One model in one configuration
# ---------------------------------------------------------------------------


def stage_list(name):
    """The training stages of a benchmarked model, in order."""
    settings = model_settings(name, "float32", "off")
    return settings.model_family.stages(settings.resolved_strategy(), settings.model)


def build_workload(name, size, batch, precision, jit="off", quick=False):
    """``(settings, trainer, networks, data)`` of one model in one configuration, seeded (0) and size-checked.

    ``networks`` are :func:`erlrestore.training.experiment.build_trainer`'s
    (``networks["final.keras"]`` is the restoration network); ``data`` is a
    random ``(input, target)`` batch of ``size`` px crops.
    """
    settings = model_settings(name, precision, jit, quick)
    check_size(size, settings)
    keras.utils.set_random_seed(0)
    trainer, networks = experiment.build_trainer(settings)
    return settings, trainer, networks, random_pair_batch(size, batch)


def training_call(trainer, settings, stage, data, jit_compile=False):
    """A call running one traced training step of ``stage`` on ``data``, blocking until its losses exist."""
    trainer.set_stage(stage)
    trainer.reset_optimizer(settings.resolved_learning_rate())
    step = tf.function(trainer.train_step, jit_compile=jit_compile)
    return lambda: [v.numpy() for v in step(data).values()]


def benchmark_model(name, size, batch, precision, jit, steps, warmup, peaks, kind, quick=False, flop_cache=None,
                    max_seconds=0.0, report=print):
    """Records (one per stage) for one model in one configuration."""
    settings, trainer, networks, data = build_workload(name, size, batch, precision, jit, quick)
    use_xla = devices.resolve_jit_compile(jit)
    flop_cache = {} if flop_cache is None else flop_cache
    key = (name, size, quick)
    family = settings.model_family
    if key not in flop_cache:
        flop_cache[key] = family.count_forward(networks, size)
    forward = flop_cache[key]
    dtype = PRECISION_DTYPES[precision]
    peak = peaks.get(dtype)
    megapixels = batch * size * size / 1e6

    params = {file_name[: -len(".keras")]: memd.count_params(net) for file_name, net in networks.items()}
    restoration = networks["final.keras"]
    deployed = inference.verified_inference_graph(restoration).model
    infer = tf.function(lambda x: deployed(x, training=False), jit_compile=use_xla)
    reset_peak_memory(kind)
    infer_s = median_seconds(lambda: infer(data[0]).numpy(), steps, warmup, max_seconds)
    infer_memory = peak_memory(kind)

    records = []
    for stage in stage_list(name):
        train_step = training_call(trainer, settings, stage, data, use_xla)
        reset_peak_memory(kind)
        step_s = median_seconds(train_step, steps, warmup, max_seconds)
        train_memory = peak_memory(kind)
        step_flops, infer_flops = (batch * f for f in family.count_step(stage, forward))
        record = {
            "model": name,
            "label": presets.PRESETS[name].label,
            "stage": stage.name,
            "size": size,
            "batch": batch,
            "precision": precision,
            "jit": jit,
            "train_step_ms": step_s * 1e3,
            "steps_per_s": 1.0 / step_s,
            "images_per_s": batch / step_s,
            "train_flops_per_step": step_flops,
            "train_gflops_per_s": step_flops / step_s / 1e9,
            "train_fraction_of_peak": step_flops / step_s / peak if peak else None,
            "infer_ms": infer_s * 1e3,
            "megapixels_per_s": megapixels / infer_s,
            "infer_flops": infer_flops,
            "infer_gflops_per_s": infer_flops / infer_s / 1e9,
            "infer_fraction_of_peak": infer_flops / infer_s / peak if peak else None,
            "peak_dtype": dtype,
            "peak_memory_bytes": train_memory,
            "infer_peak_memory_bytes": infer_memory,
            "forward_flops": forward,
            "params": params,
            "error": None,
        }
        records.append(record)
        report(format_row(record))
        del train_step
    # Release this configuration's networks before the next one is built; the inference lambda reads
    # ``deployed`` from its closure, so that name is cleared rather than deleted.
    del trainer, networks, restoration
    deployed = infer = None
    keras.backend.clear_session()
    gc.collect()
    return records


def _set_fractions(record, peaks):
    """Recomputes a record's fractions of the peak (FLOPs / seconds / peak of its type)."""
    peak = peaks.get(record["peak_dtype"])
    if record.get("error") or not peak:
        return
    record["train_fraction_of_peak"] = record["train_flops_per_step"] / (record["train_step_ms"] / 1e3) / peak
    record["infer_fraction_of_peak"] = record["infer_flops"] / (record["infer_ms"] / 1e3) / peak


def _error_records(name, size, batch, precision, jit, error):
    stage_names = [s.name for s in stage_list(name)]
    records = []
    for stage in stage_names:
        record = dict.fromkeys(RECORD_KEYS)
        record.update(model=name, label=presets.PRESETS[name].label, stage=stage, size=size, batch=batch,
                      precision=precision, jit=jit, peak_dtype=PRECISION_DTYPES[precision], error=error)
        records.append(record)
    return records


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

_HEADER = (f"{'model':<18} {'stage':<7} {'size':>4} {'b':>3} {'precision':<14} {'jit':<3} {'step ms':>9} "
           f"{'steps/s':>8} {'img/s':>7} {'GFLOP/st':>9} {'%peak':>6} {'inf ms':>8} {'MP/s':>7} {'%peak':>6} "
           f"{'mem MB':>7}")


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}"


def format_row(r):
    if r.get("error"):
        return (f"{r['model']:<18} {r['stage']:<7} {r['size']:>4} {r['batch']:>3} {r['precision']:<14} "
                f"{r['jit']:<3} error: {r['error']}")
    memory = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.0f}"
    return (f"{r['model']:<18} {r['stage']:<7} {r['size']:>4} {r['batch']:>3} {r['precision']:<14} {r['jit']:<3} "
            f"{r['train_step_ms']:9.1f} {r['steps_per_s']:8.3f} {r['images_per_s']:7.2f} "
            f"{r['train_flops_per_step'] / 1e9:9.2f} {_pct(r['train_fraction_of_peak']):>6} {r['infer_ms']:8.1f} "
            f"{r['megapixels_per_s']:7.3f} {_pct(r['infer_fraction_of_peak']):>6} {memory:>7}")


def run_benchmark(models, sizes, batch_sizes, precisions, jits, grid, steps, warmup, matmul_sizes, matmul_runs=5,
                  quick=False, max_seconds=0.0, report=print):
    """Runs the matmul peak and the grid; returns the JSON dict (module docstring)."""
    for name in models:
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {name!r}; choose from {', '.join(MODEL_NAMES)}")
    for precision in precisions:
        if precision not in PRECISION_DTYPES:
            raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISION_DTYPES)}")
    for jit in jits:
        if jit not in ("on", "off"):
            raise ValueError(f"unknown jit_compile {jit!r}; choose on or off")
    kind = devices.device_type()
    if grid == "auto":
        grid = "full" if kind == "GPU" else "reduced"
    for name in models:  # refuse a size a model cannot take before spending any time
        for size in sizes:
            check_size(size, model_settings(name, "float32", "off", quick))
    started = time.perf_counter()
    description = machine.describe()
    report("machine: " + ", ".join(f"{k}={v}" for k, v in description.items()))
    dtypes = ["float32"] + [PRECISION_DTYPES[p] for p in precisions if p != "float32"]
    dtypes = list(dict.fromkeys(dtypes))
    peaks, matmul_records = matmul_peak(dtypes, matmul_sizes, runs=matmul_runs)
    for dtype, rate in peaks.items():
        report(f"matmul peak {dtype:<9} {rate / 1e9:10.1f} GFLOP/s  (best of n = {', '.join(map(str, matmul_sizes))})")
    resettable = reset_peak_memory(kind)
    configs = build_grid(sizes, batch_sizes, precisions, jits, grid)
    report(f"{len(configs)} configurations x {len(models)} models; median of {steps} steps after {warmup} warm-up"
           + (f" (fewer, at least 2, past {max_seconds:g} s)" if max_seconds > 0 else ""))
    report(_HEADER)
    results, flop_cache = [], {}
    for size, batch, precision, jit in configs:
        for name in models:
            try:
                results += benchmark_model(name, size, batch, precision, jit, steps, warmup, peaks, kind,
                                           quick=quick, flop_cache=flop_cache, max_seconds=max_seconds,
                                           report=report)
            except Exception as error:  # one failing configuration (e.g. an XLA limit) must not lose the rest
                traceback.print_exc(file=sys.stderr)
                for record in _error_records(name, size, batch, precision, jit, f"{type(error).__name__}: {error}"):
                    report(format_row(record))
                    results.append(record)
                keras.backend.clear_session()
                gc.collect()
    # Once more at the end: on a shared machine a busy moment lowers a rate, never raises it, so the best counts.
    end_peaks, end_records = matmul_peak(dtypes, matmul_sizes, runs=matmul_runs)
    matmul_records += end_records
    for dtype, rate in end_peaks.items():
        if rate > peaks[dtype]:
            report(f"matmul peak {dtype:<9} {rate / 1e9:10.1f} GFLOP/s at the end: fractions recomputed against it")
            peaks[dtype] = rate
    for record in results:
        _set_fractions(record, peaks)
    elapsed = time.perf_counter() - started
    report(f"total {elapsed:.0f} s")
    return {
        "machine": description,
        "settings": {
            "models": list(models), "sizes": list(sizes), "batch_sizes": list(batch_sizes),
            "precisions": list(precisions), "jit_compile": list(jits), "grid": grid, "steps": steps,
            "warmup": warmup, "max_seconds": max_seconds, "quick": quick, "matmul_sizes": list(matmul_sizes),
        },
        "memory": {
            "kind": "GPU:0 peak allocation" if kind == "GPU" else "process peak RSS (VmHWM)",
            "resettable": resettable,
        },
        "matmul_peak_flops": peaks,
        "matmul": matmul_records,
        "results": results,
        "elapsed_s": elapsed,
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_list("models", list(MODEL_NAMES), f"Models to benchmark, from {', '.join(MODEL_NAMES)}.")
    flags.DEFINE_list("sizes", ["256", "320"], "Square crop sides in pixels (--quick: 32).")
    flags.DEFINE_list("batch_sizes", [], "Batch sizes (default: 1 and 4 on a CPU, 1 and 16 on a GPU; --quick: 1,2).")
    flags.DEFINE_list("precisions", [], "Precisions, from float32, mixed_bfloat16, mixed_float16 "
                      "(default: float32 and the device's mixed type).")
    flags.DEFINE_list("jit_compile", [], "XLA choices to compare, from off, on (default: off on a CPU, off,on on a GPU).")
    flags.DEFINE_enum("grid", "auto", ["auto", "full", "reduced"], "Which combinations to run (module docstring).")
    flags.DEFINE_integer("steps", 5, "Timed steps per measurement (the median is reported).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed calls after the tracing call.", lower_bound=0)
    flags.DEFINE_float("max_seconds", 4.0, "Stop timing a measurement once at least 2 steps are timed and they "
                       "took this long in all (0: always --steps).", lower_bound=0.0)
    flags.DEFINE_list("matmul_sizes", [], "Matmul sides for the peak (default: 1024,2048,4096 on a CPU, 4096,8192 "
                      "on a GPU; --quick: 256,512).")
    flags.DEFINE_integer("matmul_runs", 5, "Timed calls per matmul size (the best is kept).", lower_bound=1)
    flags.DEFINE_string("output", "", "Also write the JSON here.")
    flags.DEFINE_bool("quick", False, "Tiny networks and sizes, 2 steps: seconds, for tests.")


def _ints(name, values):
    try:
        parsed = [int(v) for v in values]
    except ValueError:
        raise app.UsageError(f"--{name}: expected integers, got {','.join(values)}") from None
    if not parsed or min(parsed) < 1:
        raise app.UsageError(f"--{name}: expected positive integers, got {','.join(values)}")
    return parsed


def _given(name):
    return FLAGS[name].present


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    tf.get_logger().setLevel("ERROR")  # each configuration traces fresh functions on purpose: no retracing warnings
    kind = devices.device_type()
    quick = FLAGS.quick
    sizes = _ints("sizes", FLAGS.sizes) if _given("sizes") or not quick else [32]
    if FLAGS.batch_sizes:
        batch_sizes = _ints("batch_sizes", FLAGS.batch_sizes)
    else:
        batch_sizes = [1, 2] if quick else [1, 16] if kind == "GPU" else [1, 4]
    precisions = FLAGS.precisions or default_precisions(kind)
    jits = FLAGS.jit_compile or (["off", "on"] if kind == "GPU" else ["off"])
    if FLAGS.matmul_sizes:
        matmul_sizes = _ints("matmul_sizes", FLAGS.matmul_sizes)
    else:
        matmul_sizes = [256, 512] if quick else [4096, 8192] if kind == "GPU" else [1024, 2048, 4096]
    steps = FLAGS.steps if _given("steps") or not quick else 2
    warmup = FLAGS.warmup if _given("warmup") or not quick else 0
    matmul_runs = FLAGS.matmul_runs if _given("matmul_runs") or not quick else 2

    common.run_and_print(lambda report: run_benchmark(
        FLAGS.models, sizes, batch_sizes, precisions, jits, FLAGS.grid, steps, warmup, matmul_sizes,
        matmul_runs=matmul_runs, quick=quick, max_seconds=FLAGS.max_seconds, report=report), FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
