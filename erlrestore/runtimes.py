"""Restorers for exported models on LiteRT and OpenVINO (``--backend=litert`` / ``--backend=openvino``).

Both take and return float32 ``[B, H, W, 3]`` NumPy batches in [0, 1]
(clipped), like :class:`erlrestore.inference.Restorer`, so
:func:`erlrestore.inference.restore_tiled` tiles them as any other model;
``multiple`` (the tile alignment) is read from the model file, where
:mod:`erlrestore.export` wrote it. :func:`erlrestore.inference.load_restorer`
finds the model file (file, version folder or model folder) and builds them
through :mod:`erlrestore.backends`' table. Importing this module imports
neither TensorFlow nor a runtime.

:class:`LiteRTRestorer` runs a ``model.tflite`` (``erlrestore-export
--format=litert``) through its ``serving_default`` signature with the
interpreter of the ``ai-edge-litert`` package (LiteRT, TensorFlow Lite's
successor; no TensorFlow needed) and its default XNNPACK CPU delegate,
as many threads as CPUs. Without that package it falls back to
``tf.lite.Interpreter``, which TensorFlow 2.21 still ships but has
deprecated in its favour (its deprecation warning is not repeated here).
Height, width and batch are dynamic in the model; the signature runner
resizes the input to each batch, so a new tile size costs a re-preparation
of the delegate, and tiles of one size reuse it. LiteRT prints an ``INFO:
Created TensorFlow Lite XNNPACK delegate`` line on its first call and
ignores ``TF_CPP_MIN_LOG_LEVEL``; the restorer makes that first call at load
time on a small batch, with the process's stderr sent to /dev/null while
``TF_CPP_MIN_LOG_LEVEL`` hides INFO lines (the tools set it unless ``-v``).

:class:`OpenVINORestorer` runs a ``model.xml`` + ``model.bin`` IR
(``erlrestore-export --format=openvino``) with the ``openvino`` package on
its CPU device in float32: ``INFERENCE_PRECISION_HINT`` is set to f32,
because OpenVINO's CPU plugin otherwise computes in bfloat16 on processors
that have it (AVX-512 BF16, AMX), which moved a tiny MEMD's output by
1.1e-3 at 321x481 where float32 stays within 1e-7 of the SavedModel.

The interpreters hold mutable state (a LiteRT interpreter, an OpenVINO
infer request), so each restorer runs one call at a time (a lock); make one
restorer per thread for parallel calls.
"""

import contextlib
import os
import sys
import threading
import warnings

import numpy as np

from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files


def _batch(batch):
    from erlrestore.inference.restorers import _as_batch  # pylint: disable=import-outside-toplevel

    return _as_batch(batch)


def _checked(source, batch, output):
    from erlrestore.inference.restorers import _same_shape  # pylint: disable=import-outside-toplevel

    return _same_shape(source, batch, np.clip(np.asarray(output, dtype=np.float32), 0.0, 1.0))


def _positive_int(text):
    try:
        value = int(text)
    except (TypeError, ValueError):
        return None
    return value if value >= 1 else None


def _info_logs_hidden():
    """Whether ``TF_CPP_MIN_LOG_LEVEL`` asks to hide native INFO lines (1 or more)."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") or 0) >= 1
    except ValueError:
        return False


@contextlib.contextmanager
def native_stderr_muted(mute=True):
    """File descriptor 2 at /dev/null inside the block (native libraries' log lines); Python errors still raise.

    Nothing happens when ``mute`` is false or the descriptors cannot be
    arranged. The tools' quiet TensorFlow import (``erlrestore.cli``) uses it too.
    """
    if not mute:
        yield
        return
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        sys.stderr.flush()
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# --------------------------------------------------------------------------
# LiteRT.
# --------------------------------------------------------------------------


def litert_interpreter_class():
    """``(Interpreter class, "ai_edge_litert" or "tf.lite")``: LiteRT's own interpreter, else TensorFlow's.

    Raises:
      ImportError naming the extra when neither is there.
    """
    try:
        from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    except ImportError as litert_error:
        try:
            import tensorflow as tf  # pylint: disable=import-outside-toplevel

            return tf.lite.Interpreter, "tf.lite"
        except (ImportError, AttributeError):
            raise ImportError(
                f"--backend=litert needs the ai-edge-litert package ({litert_error}); install it with "
                "pip install 'erlrestore[litert]'"
            ) from litert_error
    return Interpreter, "ai_edge_litert"


def _tflite_schema():
    try:
        from ai_edge_litert import schema_py_generated  # pylint: disable=import-outside-toplevel
    except ImportError:
        from tensorflow.lite.python import schema_py_generated  # pylint: disable=import-outside-toplevel
    return schema_py_generated


def tflite_metadata(content):
    """``{name: bytes}`` of the metadata entries of a ``.tflite`` flatbuffer (``{}`` when it has none).

    Raises:
      ValueError when ``content`` cannot be read as a TFLite model.
    """
    schema = _tflite_schema()
    try:
        model = schema.Model.GetRootAs(content, 0)
        entries = {}
        for index in range(model.MetadataLength()):
            entry = model.Metadata(index)
            buffer = model.Buffers(entry.Buffer())
            if buffer.Offset() > 1:  # stored after the flatbuffer (models over 2 GB)
                data = bytes(content[buffer.Offset() : buffer.Offset() + buffer.Size()])
            elif buffer.DataLength():
                data = buffer.DataAsNumpy().tobytes()
            else:
                data = b""
            entries[(entry.Name() or b"").decode("utf-8", "replace")] = data
    except Exception as error:  # flatbuffers raises struct/index errors for bad bytes
        raise ValueError(f"not a TFLite model ({type(error).__name__}: {error})") from error
    return entries


class LiteRTRestorer:
    """A restorer running a ``.tflite`` model's ``serving_default`` signature (see the module docstring).

    Attributes: ``source`` (the file), ``multiple`` (from the model's
    metadata, None when absent), ``runtime`` (``"ai_edge_litert"`` or
    ``"tf.lite"``), ``batch_statistics`` (always False).
    """

    batch_statistics = False

    def __init__(self, path, threads=None):
        interpreter_class, self.runtime = litert_interpreter_class()
        self.source = os.fspath(path)
        try:
            with open(self.source, "rb") as handle:
                content = handle.read()
            metadata = tflite_metadata(content)
            with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice: the fallback is deliberate
                warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated")
                self._interpreter = interpreter_class(model_content=content, num_threads=threads or os.cpu_count() or 1)
            signatures = self._interpreter.get_signature_list()
        except Exception as error:  # the interpreters raise ValueError / RuntimeError for bad files
            raise image_files.DataError(
                f"could not load LiteRT model {self.source}: {type(error).__name__}: {error}"
            ) from error
        signature = signatures.get(contract.SERVING_SIGNATURE)
        if signature is None:
            raise image_files.DataError(
                f"LiteRT model {self.source} has no {contract.SERVING_SIGNATURE!r} signature "
                f"(it has: {', '.join(sorted(signatures)) or 'none'})"
            )
        if list(signature["inputs"]) != [contract.INPUT_KEY] or contract.OUTPUT_KEY not in signature["outputs"]:
            raise image_files.DataError(
                f"LiteRT model {self.source} maps {list(signature['inputs'])} to {list(signature['outputs'])}, "
                f"not [{contract.INPUT_KEY!r}] to {contract.OUTPUT_KEY!r}"
            )
        self._runner = self._interpreter.get_signature_runner(contract.SERVING_SIGNATURE)
        self.multiple = _positive_int(metadata.get(contract.ONNX_MULTIPLE_KEY, b"").decode("ascii", "replace"))
        self._lock = threading.Lock()
        side = self.multiple or 16
        try:
            with native_stderr_muted(_info_logs_hidden()):  # the delegate's set-up line (module docstring)
                self(np.zeros((1, side, side, 3), np.float32))
        except (RuntimeError, ValueError) as error:
            raise image_files.DataError(
                f"could not run LiteRT model {self.source}: {type(error).__name__}: {error}"
            ) from error

    def __call__(self, batch):
        batch = _batch(batch)
        with self._lock:
            output = self._runner(**{contract.INPUT_KEY: batch})[contract.OUTPUT_KEY]
        return _checked(self.source, batch, output)

    def __repr__(self):
        return f"LiteRTRestorer(source={self.source!r}, multiple={self.multiple}, runtime={self.runtime!r})"


# --------------------------------------------------------------------------
# OpenVINO.
# --------------------------------------------------------------------------


def import_openvino():
    """The ``openvino`` module; ImportError naming the extra when it is missing."""
    try:
        import openvino  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise ImportError(
            f"OpenVINO export and --backend=openvino need the openvino package ({error}); install it with "
            "pip install 'erlrestore[openvino]'"
        ) from error
    return openvino


def openvino_rt_info(model, key):
    """The string under ``erlrestore/<key>`` in an OpenVINO model's rt_info, or None."""
    path = [contract.OPENVINO_RT_INFO, key]
    if not model.has_rt_info(path):
        return None
    return model.get_rt_info(path).astype(str)


class OpenVINORestorer:
    """A restorer running an OpenVINO IR (``model.xml`` + ``model.bin``) on the CPU in float32.

    Attributes: ``source`` (the ``.xml`` file), ``multiple`` (from the
    model's rt_info, None when absent), ``batch_statistics`` (always False).
    ``threads``: OpenVINO's inference threads (None: its default, every core).
    """

    batch_statistics = False

    def __init__(self, path, threads=None):
        try:
            openvino = import_openvino()
        except ImportError as error:
            raise image_files.DataError(str(error)) from error
        from openvino import properties  # pylint: disable=import-outside-toplevel

        self.source = os.fspath(path)
        core = openvino.Core()
        try:
            model = core.read_model(self.source)
        except Exception as error:  # OpenVINO raises RuntimeError (and others) for bad or incomplete IRs
            raise image_files.DataError(
                f"could not load OpenVINO model {self.source}: {type(error).__name__}: {error}"
            ) from error
        inputs = [sorted(port.get_names()) for port in model.inputs]
        outputs = [sorted(port.get_names()) for port in model.outputs]
        if len(inputs) != 1 or contract.INPUT_KEY not in inputs[0]:
            raise image_files.DataError(
                f"OpenVINO model {self.source} takes inputs {inputs}, not [{contract.INPUT_KEY!r}]"
            )
        if not any(contract.OUTPUT_KEY in names for names in outputs):
            raise image_files.DataError(f"OpenVINO model {self.source} returns {outputs}, not {contract.OUTPUT_KEY!r}")
        self.multiple = _positive_int(openvino_rt_info(model, "multiple"))
        config = {properties.hint.inference_precision: openvino.Type.f32}
        if threads:
            config[properties.inference_num_threads] = int(threads)
        try:
            compiled = core.compile_model(model, "CPU", config)
        except Exception as error:
            raise image_files.DataError(
                f"could not compile OpenVINO model {self.source} for the CPU: {type(error).__name__}: {error}"
            ) from error
        self._output = compiled.output(contract.OUTPUT_KEY)
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, batch):
        batch = _batch(batch)
        with self._lock:
            output = self._request.infer({contract.INPUT_KEY: batch})[self._output]
        return _checked(self.source, batch, output)

    def __repr__(self):
        return f"OpenVINORestorer(source={self.source!r}, multiple={self.multiple})"
