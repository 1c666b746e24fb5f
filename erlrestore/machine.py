"""The machine a figure was measured or a model was trained on: CPU, memory, devices, library versions.

One description serves every report that names its machine: the benchmarks'
JSON (``tools.benchmark``, ``tools.bench_deploy``, ``tools.bench_data``),
the header of ``erlrestore-reproduce``'s ``RESULTS.md`` and the model cards of
shipped models (:func:`summary_line`).
"""

import os
import platform
import re


def cpu_model():
    """The CPU's model name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            match = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.MULTILINE)
        if match:
            return match.group(1).strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib():
    """Physical memory in GiB, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def usable_cpus():
    """CPUs this process may run on (its affinity), or None where that cannot be read."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def describe():
    """CPU, memory, platform, Python / TensorFlow / Keras versions and the device TensorFlow computes on.

    Keys: ``cpu_model``, ``cpu_count``, ``usable_cpus``, ``memory_gib``,
    ``cpu_bfloat16``, ``processor``, ``platform``, ``python``,
    ``tensorflow``, ``keras``, ``devices`` (physical device types),
    ``device_type`` and ``device_name``; on a GPU also
    ``compute_capability`` and ``tf32_enabled``.
    """
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    from erlrestore.training import devices  # pylint: disable=import-outside-toplevel

    description = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "memory_gib": memory_gib(),
        "cpu_bfloat16": devices.cpu_has_bfloat16(),
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": [d.device_type for d in tf.config.list_physical_devices()],
        "device_type": devices.device_type(),
        "device_name": cpu_model(),
    }
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        description["device_name"] = details.get("device_name", "GPU")
        description["compute_capability"] = list(details.get("compute_capability", ()))
        description["tf32_enabled"] = bool(tf.config.experimental.tensor_float_32_execution_enabled())
    return description


def summary_line(description=None):
    """One line naming the machine: ``<CPU model>, <n> cores[, <m> GiB], TensorFlow <version>``.

    ``description`` is a :func:`describe` result (made here when not given).
    """
    description = description or describe()
    memory = description.get("memory_gib")
    return (f"{description['cpu_model']}, {description['cpu_count']} cores"
            + ("" if memory is None else f", {memory:.0f} GiB") + f", TensorFlow {description['tensorflow']}")
