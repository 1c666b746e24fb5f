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
  folded and phase convolutions where that is exact within 1e-5; the FLOPs
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

FLOP convention (:func:`conv_flops`): one multiply-add is 2 FLOPs; only
convolutions and dense layers are counted (including the convolutions
inside ``InfoAccum``, ``SubPixelUpsample`` and ``DenseBlock``; InfoAccum
evaluates its dilated convolutions as matrix products with the same
multiply-adds, counted as the convolutions they compute); biases,
normalisation, activations, padding, concatenation, pixel shuffles and the
optimizer update are left out (a few percent at most). A ``Conv2D`` costs
``2 * K_h * K_w * C_in/groups * C_out * H_out * W_out`` per image; a
``Conv2DTranspose`` ``2 * K_h * K_w * C_in * C_out * H_in * W_in`` (each
*input* pixel scatters a ``K_h x K_w x C_out`` patch); a ``Dense``
``2 * C_in * C_out`` per position. Spatial sizes are those the layers really
see (the networks pad to their multiple).

FLOPs per training step:

* GAN (:func:`training_step_flops`): ``3 F_G + 7 F_D``, ``F_G`` / ``F_D`` the
  forward costs of G and of one D call. G forward + its backward (about twice
  the forward: gradients with respect to activations and to weights) =
  ``3 F_G``; D runs forward twice (real and fake pairs, ``2 F_D``), ``L_D``
  back-propagates through both calls (``2 * 2 F_D``) and ``L_G``'s
  adversarial term back-propagates once more through the fake call to reach
  G, needing activation gradients only (``F_D``).
* MEMD / ERL-Net stages (:func:`staged_step_flops`): the forward of every
  branch that runs, plus ``2 F`` for each branch whose weights are trained
  (activation and weight gradients) and ``1 F`` for each frozen branch the
  gradient must pass through to reach a trained one (activation gradients
  only; in MEMD / ERL-Net that is MDE when MEN or REN trains and MDE does
  not). Branches: MEN, REN, MDE of the restoration net and the
  clean-to-clean net C2C (its MEN alone where only the feature-loss targets
  are needed). Hence MEMD ``3 F``; stage I ``3 F_MEN + F_REN + 3 F_MDE + 3
  F_C2C``; stage II ``F_MEN + 3 F_REN + 2 F_MDE + F_C2C.MEN``; stage III
  ``F_MEN + 3 F_REN + 3 F_MDE``.
* Inference: the restoration network's forward.

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
import math
import statistics
import sys
import time
import traceback

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore import inference, machine
from erlrestore.models import memd, pix2pix, presets
from erlrestore.training import devices, experiment, strategies
from tools import common

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
    for _ in range(warmup + 1):  # the first call traces
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if max_seconds > 0 and len(times) >= 2 and sum(times) >= max_seconds:
            break
    return statistics.median(times)


def random_pair_batch(size, batch):
    """A seeded (degraded, clean) float32 batch of ``size`` x ``size`` images."""
    rng = np.random.default_rng(0)
    clean = rng.random((batch, size, size, 3)).astype("float32")
    degraded = np.clip(clean + 0.1 * rng.random(clean.shape), 0, 1).astype("float32")
    return tf.constant(degraded), tf.constant(clean)


# ---------------------------------------------------------------------------
# FLOP counting
# ---------------------------------------------------------------------------

_COUNTED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _layer_flops(layer, input_shape, output_shape):
    """FLOPs of one call of a counted layer, from the shapes it saw (see the module docstring)."""
    kernel = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # kernel (K_h, K_w, C_out, C_in); per input pixel.
        k_h, k_w, c_out, c_in = kernel
        batch, height, width = input_shape[0], input_shape[1], input_shape[2]
        return 2 * k_h * k_w * c_in * c_out * batch * height * width
    if isinstance(layer, keras.layers.Conv2D):
        # kernel (K_h, K_w, C_in / groups, C_out); per output pixel.
        k_h, k_w, c_in_per_group, c_out = kernel
        batch, height, width = output_shape[0], output_shape[1], output_shape[2]
        return 2 * k_h * k_w * c_in_per_group * c_out * batch * height * width
    # Dense: kernel (C_in, C_out), applied at every position of the leading axes.
    c_in, c_out = kernel
    positions = int(np.prod(input_shape[:-1], dtype=np.int64))
    return 2 * c_in * c_out * positions


def _named_layers(layer, prefix=""):
    """``(path, layer)`` for every layer nested in ``layer`` (depth first), paths like ``info_accum_0/conv_3_d5``."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, path + "/")


def _concrete_shape(shape):
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"conv_flops: an input shape needs a batch axis and at least one more axis, got {shape}")
    if any(d is not None and (not isinstance(d, (int, np.integer)) or d < 1) for d in shape):
        raise ValueError(f"conv_flops: input shape dimensions must be positive integers (or None for the batch), "
                         f"got {shape}")
    if any(d is None for d in shape[1:]):
        raise ValueError(f"conv_flops: only the batch dimension may be None, got {shape}")
    return tuple(1 if d is None else int(d) for d in shape)


def conv_flops_by_layer(model, input_shape):
    """Per-call FLOPs of the convolutions and dense layers of ``model`` for an input of ``input_shape``.

    ``input_shape`` includes the batch axis (``None`` counts as 1), e.g.
    ``(1, 256, 256, 3)``; for a model with several inputs, a list of shapes.
    The shapes each layer sees are recorded by running ``model`` once on
    zeros (``training=False``), so padding, nested sublayers and every
    spatial size are exactly those of a real call; the layers' own ``call``
    is wrapped for that run only. Returns a list of ``(layer path, FLOPs)``
    in call order (a layer called twice appears twice).
    """
    if isinstance(input_shape, list):
        inputs = [np.zeros(_concrete_shape(s), np.float32) for s in input_shape]
    else:
        inputs = np.zeros(_concrete_shape(input_shape), np.float32)
    named = list(_named_layers(model))
    # Layers that evaluate their convolution sub-layers' kernels without calling them (InfoAccum: one
    # matrix product per dense layer) say which shape each kernel is applied to; the FLOPs are those
    # of the direct convolutions, which such a layer performs exactly.
    formulated = [(path, layer) for path, layer in named if hasattr(layer, "conv_input_shapes")]
    inside = tuple(path + "/" for path, _ in formulated)
    counted = [(path, layer) for path, layer in named if isinstance(layer, _COUNTED) and not path.startswith(inside)]
    records = []

    def recording(path, layer, call):
        def call_and_record(x, *args, **kwargs):
            y = call(x, *args, **kwargs)
            records.append((path, _layer_flops(layer, tuple(x.shape), tuple(y.shape))))
            return y

        return call_and_record

    def recording_kernels(path, layer, call):
        def call_and_record(x, *args, **kwargs):
            y = call(x, *args, **kwargs)
            for conv, shape in layer.conv_input_shapes(tuple(x.shape)):
                records.append((f"{path}/{conv.name}", _layer_flops(conv, shape, shape[:-1] + (conv.filters,))))
            return y

        return call_and_record

    wrapped = counted + formulated
    try:
        for path, layer in counted:
            object.__setattr__(layer, "call", recording(path, layer, layer.call))
        for path, layer in formulated:
            object.__setattr__(layer, "call", recording_kernels(path, layer, layer.call))
        model(inputs, training=False)
    finally:
        for _, layer in wrapped:
            layer.__dict__.pop("call", None)
    return records


def conv_flops(model, input_shape):
    """Total FLOPs of one forward pass of ``model`` on ``input_shape`` (see :func:`conv_flops_by_layer`), an int."""
    return int(sum(flops for _, flops in conv_flops_by_layer(model, input_shape)))


def conv_flops_by_branch(model, input_shape):
    """``{top-level sublayer name: FLOPs}`` of one forward pass (e.g. ``men``, ``ren``, ``mde``)."""
    totals = {}
    for path, flops in conv_flops_by_layer(model, input_shape):
        branch = path.split("/", 1)[0]
        totals[branch] = totals.get(branch, 0) + int(flops)
    return totals


def training_step_flops(g_forward, d_forward):
    """FLOPs of one GAN training step: ``3 F_G + 7 F_D`` (derivation in the module docstring)."""
    return 3 * g_forward + 7 * d_forward


# Which branches of MEMD / ERL-Net a branch's output flows into (MEN and REN feed MDE).
_DOWNSTREAM = {"men": ("mde",), "ren": ("mde",), "mde": ()}


def staged_step_flops(stage, net, c2c=None):
    """FLOPs of one :class:`~erlrestore.training.erl_trainer.StagedTrainer` step of ``stage``.

    ``net`` / ``c2c``: ``{branch: forward FLOPs}`` of the restoration net
    (``men``, ``mde`` and for ERL-Net ``ren``) and of the clean-to-clean net
    (``men``, ``mde``). Forward of every branch that runs, ``2 F`` more for
    each trained branch, ``1 F`` for each frozen branch the gradient passes
    through (module docstring).
    """
    c2c = c2c or {}
    trained = set(stage.restoration_branches)
    total = 0
    if stage.loss in ("pre", "erl"):
        total += sum(net.values())  # the restoration net runs (the feature net shares its layers)
        on_path = {down for branch in trained for down in _DOWNSTREAM.get(branch, ())} - trained
        total += sum(2 * net.get(branch, 0) for branch in trained)
        total += sum(net.get(branch, 0) for branch in on_path)
    if stage.trains_c2c:
        total += 3 * sum(c2c.values())  # C2C's reconstruction: forward and backward
    elif stage.loss == "erl":
        total += c2c.get("men", 0)  # the feature-loss targets: C2C's encoder, forward only
    return int(total)


# ---------------------------------------------------------------------------
# The machine: description, matmul peak, memory
# ---------------------------------------------------------------------------


def default_precisions(kind=None):
    """float32 plus the device's mixed type (module docstring)."""
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
    """Resets the peak-memory counter; returns whether it could (module docstring)."""
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
    """Refuses a crop too small for the model (a GAN's PatchGAN output would be empty)."""
    if settings.is_gan:
        if pix2pix.patchgan_output_size(size, settings.d_layers) < 1:
            raise ValueError(f"a {size} px crop is too small for a {settings.d_layers}-layer PatchGAN "
                             f"(its output would be empty); use a larger size")


# ---------------------------------------------------------------------------
# One model in one configuration
# ---------------------------------------------------------------------------


def _forward_flops(networks, size):
    """Forward FLOPs at batch 1: ``{"net": {branch: F}, "c2c": ..., "d": F_D}`` (whatever applies)."""
    shape = (1, size, size, 3)
    restoration = networks["final.keras"]
    if "discriminator.keras" in networks:
        return {"g": conv_flops(restoration, shape), "d": conv_flops(networks["discriminator.keras"], [shape, shape])}
    counts = {"net": conv_flops_by_branch(restoration, shape)}
    if "c2c.keras" in networks:
        counts["c2c"] = conv_flops_by_branch(networks["c2c.keras"], shape)
    return counts


def stage_list(name):
    """The training stages of a benchmarked model, in order."""
    settings = model_settings(name, "float32", "off")
    if settings.is_gan:
        return strategies.gan_strategy(settings.resolved_strategy())
    return strategies.strategy(settings.resolved_strategy())


def _step_and_inference_flops(name, stage, forward):
    """(training FLOPs, inference FLOPs) per image from the batch-1 forward counts."""
    if "g" in forward:
        return training_step_flops(forward["g"], forward["d"]), forward["g"]
    return staged_step_flops(stage, forward["net"], forward.get("c2c")), sum(forward["net"].values())


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
    if key not in flop_cache:
        flop_cache[key] = _forward_flops(networks, size)
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
        step_flops, infer_flops = (batch * f for f in _step_and_inference_flops(name, stage, forward))
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
    del trainer, networks, restoration, deployed, infer
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
