"""Where and how a run computes: distribution (``tf.distribute``), precision and XLA.

``erlrestore-train`` exposes three choices, each resolved here:

* ``--distribution_strategy``:

  - ``default``: one device (the first GPU if any, else the CPU);
  - ``mirrored``: synchronous data parallelism over the local GPUs, or over
    the devices named by ``--devices`` (e.g. ``/gpu:0,/gpu:1``);
  - ``multi_worker_mirrored``: the same across machines, the cluster given
    by the ``TF_CONFIG`` environment variable (every worker runs the same
    command; worker 0 is the chief that writes checkpoints, logs and the
    final models);
  - ``tpu``: a TPU found by ``TPUClusterResolver`` (``--tpu`` names it).

  ``--batch_size`` is the *global* batch: each of ``R`` replicas gets
  ``batch_size / R`` examples. The trainers divide their mean losses by
  ``R`` before taking gradients, because the optimizer sums gradients over
  replicas, so a step equals one step on the whole batch on one device.
  Batch normalisation keeps per-replica statistics (Keras' default), so a
  batch-norm network matches a single device only when each replica's
  share is what the single device would normalise over.

* ``--precision``: ``float32``, ``mixed_bfloat16`` or ``mixed_float16``
  (Keras dtype policies: variables stay float32, most computation runs in
  the 16-bit type). The networks keep their image-space ends in float32 —
  the padding, the last convolution, the global residual, tanh and the
  crop, and the discriminator's logits — so outputs and losses are float32.
  ``mixed_float16`` wraps every optimizer (both of a GAN) in
  ``keras.optimizers.LossScaleOptimizer``, and the trainers scale each loss.
  ``auto`` picks, per device type, what ``tools/benchmark.py`` measured
  fastest (see :func:`resolve_precision`).

* ``--jit_compile`` (XLA): ``on``, ``off`` or ``auto`` (see
  :func:`resolve_jit_compile`).
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

DISTRIBUTIONS = ("default", "mirrored", "multi_worker_mirrored", "tpu")  # --distribution_strategy values
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
JIT_CHOICES = ("auto", "on", "off")


def make_distribution(name, devices=(), tpu=""):
    """The ``tf.distribute.Strategy`` called ``name`` (one of ``DISTRIBUTIONS``).

    Must run before TensorFlow places anything on the devices (for
    ``multi_worker_mirrored``: before any other TensorFlow op).
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"unknown distribution strategy {name!r}; choose one of {', '.join(DISTRIBUTIONS)}")
    devices = [d for d in devices if d]
    if devices and name != "mirrored":
        raise ValueError(f"--devices applies to the mirrored strategy only, not {name!r}")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if devices:
            known = {d.name.lower() for d in tf.config.list_logical_devices()}
            missing = [d for d in devices if _canonical_device(d) not in known]
            if missing:
                raise ValueError(f"unknown devices {missing}; this machine has {sorted(known)}")
        return tf.distribute.MirroredStrategy(devices=devices or None)
    if name == "multi_worker_mirrored":
        _check_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as error:
        raise ValueError(f"no TPU found ({error}); use another --distribution_strategy") from None
    return tf.distribute.TPUStrategy(resolver)


def _canonical_device(name):
    """'/gpu:1' or 'GPU:1' -> '/device:gpu:1' (lower case), as TensorFlow names logical devices."""
    name = name.strip().lower().lstrip("/")
    if name.startswith("device:"):
        name = name[len("device:"):]
    if name.startswith("job:"):
        return "/" + name
    return "/device:" + name


def _check_tf_config():
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        raise ValueError("multi_worker_mirrored needs the cluster in the TF_CONFIG environment variable")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        if task["type"] not in ("worker", "chief") or not isinstance(task["index"], int):
            raise KeyError("task")
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(
            f"TF_CONFIG is not a usable cluster spec ({error}); expected "
            '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}'
        ) from None
    if not workers:
        raise ValueError("TF_CONFIG lists no workers")


def is_chief(distribution):
    """True for the worker that writes checkpoints, logs and models (always, outside multi-worker)."""
    resolver = getattr(distribution, "cluster_resolver", None)
    if resolver is None or not isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in resolver.cluster_spec().as_dict())


def worker_id(distribution):
    resolver = getattr(distribution, "cluster_resolver", None)
    if resolver is None or not isinstance(distribution, tf.distribute.MultiWorkerMirroredStrategy):
        return 0
    return int(resolver.task_id)


def device_type():
    """'GPU', 'TPU' or 'CPU': the kind of device the run computes on."""
    if tf.config.list_logical_devices("TPU"):
        return "TPU"
    if tf.config.list_physical_devices("GPU"):
        return "GPU"
    return "CPU"


def cpu_has_bfloat16():
    """True when the CPU has native bfloat16 arithmetic (AVX512_BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(name, kind=None):
    """The Keras dtype policy for ``--precision`` ``name`` on a ``kind`` device.

    ``auto``:

    * CPU: ``mixed_bfloat16`` when the CPU has native bfloat16 arithmetic
      (AVX512_BF16 or AMX), else ``float32``. On the 2-vCPU AVX512_BF16 VM,
      ``tools/benchmark.py`` measured mixed_bfloat16 1.34-1.57x faster than
      float32 in training for every network (MEMD, each ERL-Net stage,
      pix2pix, UNet-5+InfoAccum-15+SubPix) and 1.2-2.1x in inference
      (docs/BENCHMARKS.md, which also compares the restoration quality).
    * GPU: ``mixed_bfloat16`` on compute capability 8.0 and newer (Ampere,
      Hopper: tensor cores, no loss scaling needed), ``mixed_float16`` on 7.x,
      ``float32`` before. Not measured here (no GPU was available); the
      choice follows the hardware's documented tensor-core types.
    * TPU: ``mixed_bfloat16``.
    """
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {', '.join(PRECISIONS)}")
    if name != "auto":
        return name
    kind = kind or device_type()
    if kind == "TPU":
        return "mixed_bfloat16"
    if kind == "GPU":
        major = _gpu_compute_capability()[0]
        if major >= 8:
            return "mixed_bfloat16"
        return "mixed_float16" if major >= 7 else "float32"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


def _gpu_compute_capability():
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return (0, 0)
    details = tf.config.experimental.get_device_details(gpus[0])
    return tuple(details.get("compute_capability", (0, 0)))


def resolve_jit_compile(value, distribution=None):
    """``--jit_compile`` as a bool.

    ``auto`` is off: on the 2-vCPU CPU XLA measured slower than TensorFlow's
    own kernels for pix2pix at 256x256 (training 458 vs 438 ms/step in
    float32, 464 vs 307 ms in mixed_bfloat16; docs/BENCHMARKS.md); on GPUs
    it is unmeasured here.
    ``on`` is honoured everywhere except a TPU (which always compiles).
    """
    if value not in JIT_CHOICES:
        raise ValueError(f"unknown jit_compile {value!r}; choose one of {', '.join(JIT_CHOICES)}")
    if isinstance(distribution, tf.distribute.TPUStrategy):
        return True
    return value == "on"


@contextlib.contextmanager
def precision_scope(policy):
    """Layers built inside use dtype ``policy``; the previous global policy is restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def wrap_optimizer(optimizer, policy):
    """``optimizer`` with dynamic loss scaling when ``policy`` is ``mixed_float16``."""
    if policy == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
