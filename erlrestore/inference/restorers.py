"""Restorers: trained models as callables on float32 ``[B, H, W, 3]`` batches in [0, 1].

:class:`Restorer` wraps a TensorFlow function (a loaded SavedModel's
signature), :class:`KerasRestorer` an in-memory Keras model
(:func:`restorer_from_model`), :class:`OnnxRestorer` an ONNX model run by
onnxruntime; the LiteRT and OpenVINO restorers live in
:mod:`erlrestore.runtimes`. They all return NumPy float32 arrays of the
batch's shape, clipped to [0, 1], and carry ``source``, ``multiple`` (the
padding multiple that tiles are aligned to, or None),
``batch_statistics`` and ``trained_short_side`` (the working scale of
``work_size="auto"``, :mod:`erlrestore.inference.work_scale`).
:mod:`erlrestore.inference.loading` builds them from files.

Batch-statistics mode (``batch_statistics=True``, ``erlrestore-evaluate
--norm_statistics=batch``) calls a Keras model with ``training=True``, as
pix2pix's ``test.py`` does without ``--eval`` (:class:`KerasRestorer`).
Batch norm then normalises with the statistics of what one call sees: one
whole image, or one tile when tiling (choice: the tools restore one image or
tile per call in this mode, so statistics never mix images). SavedModels and
ONNX, LiteRT and OpenVINO models are frozen in inference mode and refuse it.

TensorFlow, Keras and :mod:`erlrestore.layers` are imported where a model is
wrapped, not when this module is imported.
"""

import math
import os
import weakref

import numpy as np

from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files


def _clipped(function):
    """``function`` (tensor ``[B, H, W, 3]`` -> tensor) cast, clipped and traced once for any batch and size."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def restore(batch):
        return tf.clip_by_value(tf.cast(function(batch), tf.float32), 0.0, 1.0)

    return restore


def _as_batch(batch):
    """``batch`` as a contiguous float32 ``[B, H, W, 3]`` array (ValueError for another shape)."""
    batch = np.ascontiguousarray(batch, dtype=np.float32)
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(f"a restorer takes a [B, H, W, 3] batch, got shape {batch.shape}")
    return batch


def _same_shape(source, batch, output):
    """``output``, after checking that the model from ``source`` kept ``batch``'s shape."""
    if output.shape != batch.shape:
        raise ValueError(
            f"the model from {source} turned a batch of shape {batch.shape} into shape "
            f"{output.shape}; a restoration model must keep the size"
        )
    return output


class Restorer:
    """A restoration model as a callable on float32 ``[B, H, W, 3]`` batches in [0, 1].

    Calling it returns a NumPy float32 array of the batch's shape, clipped to
    [0, 1]. The model runs inside one ``tf.function`` whose input signature
    has dynamic batch, height and width, so tiles and images of different
    sizes reuse one trace.

    Attributes:
      source: where the model was loaded from (a path), or a description.
      multiple: the model pads its input to a multiple of this (None when
        unknown, as for SavedModels);
        :func:`erlrestore.inference.restore_tiled` aligns tiles to it.
      batch_statistics: whether the model normalises with each batch's own
        statistics (:class:`KerasRestorer` only; False for every other model).
      trained_short_side: the shorter image side the model was trained on
        (pixels), which ``work_size="auto"`` restores large images at; set
        by :func:`erlrestore.inference.load_restorer` from a shipped
        model's card, None otherwise.
    """

    batch_statistics = False
    trained_short_side = None

    def __init__(self, function, source, multiple=None, keep_alive=None):
        """Wraps ``function`` (tensor ``[B, H, W, 3]`` -> tensor of the same shape)."""
        self.source = source
        self.multiple = None if multiple is None else int(multiple)
        self._keep_alive = keep_alive  # the Keras model / loaded SavedModel the function uses
        self._function = _clipped(function)

    def __call__(self, batch):
        import tensorflow as tf  # pylint: disable=import-outside-toplevel

        batch = _as_batch(batch)
        return _same_shape(self.source, batch, np.asarray(self._function(tf.constant(batch))))

    def __repr__(self):
        return f"{type(self).__name__}(source={self.source!r}, multiple={self.multiple})"


def pad_multiple(model):
    """The least common multiple of the ``multiple`` of every PadToMultiple layer in ``model`` (None if none)."""
    from erlrestore import layers  # pylint: disable=import-outside-toplevel

    result = None
    stack = [model]
    seen = set()
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, layers.PadToMultiple):
            result = math.lcm(result or 1, int(layer.multiple))
        stack.extend(getattr(layer, "layers", None) or [])
    return result


def _moving_statistics(model):
    """The model's batch-norm moving statistics (``moving_mean`` / ``moving_variance``)."""
    return [w for w in model.non_trainable_weights if w.path.rsplit("/", 1)[-1].startswith("moving_")]


def _seed_states(model):
    """The states of the model's random-number generators (Keras' ``SeedGenerator``: dropout's), in model order."""
    return [v for v in model.non_trainable_variables if v.path.rsplit("/", 1)[-1] == "seed_generator_state"]


# model -> {training: its traced, clipped function}. A Keras model's function
# is traced once per model (and mode) and shared by every KerasRestorer of it,
# so that wrapping one model again and again (evaluating it several times)
# does not trace again. The function reaches the model through a weak
# reference, so that the cache does not keep models alive; the restorer does.
_KERAS_FUNCTIONS = weakref.WeakKeyDictionary()


def _keras_function(model, training):
    try:
        return _KERAS_FUNCTIONS[model][training]
    except (KeyError, TypeError):
        pass
    model_ref = weakref.ref(model)

    def call(batch):
        output = model_ref()(batch, training=training)
        if isinstance(output, (list, tuple)):
            raise ValueError(f"Keras model {model_ref().name!r} returns {len(output)} outputs; expected one "
                             "restored image")
        return output

    function = _clipped(call)
    try:
        _KERAS_FUNCTIONS.setdefault(model, {})[training] = function
    except TypeError:  # not weak-referenceable: just do not cache
        pass
    return function


class KerasRestorer(Restorer):
    """A :class:`Restorer` around an in-memory Keras model.

    By default the model runs in inference mode (``training=False``: batch
    norm uses its moving statistics, dropout is off).

    ``batch_statistics=True`` calls it with ``training=True`` instead,
    pix2pix's default test mode (its ``test.py`` without ``--eval`` leaves the
    networks in PyTorch's train mode): batch norm normalises with the
    statistics of the batch itself (one image, or one tile, per call as the
    tools run it), and Keras also turns dropout on, pix2pix's noise source.
    Choice: the dropout masks are drawn from fixed seeds, set again before
    every call (generator ``k`` of the model starts at ``[k + 1, 0]``), so
    a model restores an image the same way every time and in any company
    (a score does not depend on the run or on the other images evaluated;
    unseeded, a pix2pix UNet-8's mean Y-PSNR on ten images moved by 0.05 dB
    between runs). pix2pix's ``test.py`` leaves its masks unseeded; the
    expected score is the same. The moving statistics that a training-mode
    call updates are put back after every call, so restoring never changes
    the model. Exported SavedModels and ONNX,
    LiteRT and OpenVINO models are frozen in inference mode and cannot do this.

    ``optimize_graph=True`` (inference mode only) runs the model's inference
    graph as the exporters write it: batch norms folded into the
    convolutions before them, transposed convolutions as phase convolutions
    (:func:`erlrestore.inference_graph.optimize_verified`: only when the new
    outputs stay close to the model's on a fixed check image -- within 1e-5
    for a float32 model; for a ``mixed_bfloat16`` / ``mixed_float16`` one,
    within 1e-5 on float32 copies of both and then within 0.08 / 0.02 in
    its own precision --, else the model as it is, with a logged warning).
    The new model is a snapshot of the rewritten layers' weights at this
    moment (it shares the other layers with ``model``), so it is used for
    models loaded from files, which nothing else changes; ``model`` itself is kept as it is (for
    :func:`erlrestore.inference.as_restorer` to rewrap in batch-statistics mode), which costs the
    memory of the rewritten convolutions' weights a second time.

    Attributes (beside :class:`Restorer`'s): ``model``, the Keras model (as
    given, never rewritten); ``folded_batch_norms`` and
    ``phased_convolutions``, the names of the batch-norm layers folded and
    of the transposed convolutions rewritten in the model that runs (empty
    when none).
    """

    def __init__(self, model, source=None, batch_statistics=False, optimize_graph=False):
        self.model = model
        self.source = source or f"Keras model {model.name!r}"
        self.multiple = pad_multiple(model)
        self.batch_statistics = bool(batch_statistics)
        running = model
        self.folded_batch_norms = self.phased_convolutions = ()
        if optimize_graph and not self.batch_statistics:
            graph = verified_inference_graph(model, source=self.source)
            running, self.folded_batch_norms, self.phased_convolutions = graph.model, graph.folded, graph.phased
        self._keep_alive = running
        self._function = _keras_function(running, self.batch_statistics)
        # Batch-statistics mode: the moving statistics to put back and the dropout seeds to set, found once.
        self._moving = _moving_statistics(model) if self.batch_statistics else []
        self._seeds = [(state, np.array([k + 1, 0], dtype=state.dtype))
                       for k, state in enumerate(_seed_states(model))] if self.batch_statistics else []

    def __call__(self, batch):
        if not self.batch_statistics:
            return super().__call__(batch)
        kept = [(weight, weight.numpy()) for weight in self._moving]
        for state, start in self._seeds:
            state.assign(start)
        try:
            return super().__call__(batch)
        finally:
            for weight, value in kept:
                weight.assign(value)


def verified_inference_graph(model, source=None):
    """``model``'s inference graph, checked at its padding multiple (an ``InferenceGraph``).

    :func:`erlrestore.inference_graph.optimize_verified` with
    :func:`pad_multiple` as the check image's multiple and its default
    tolerances (1e-5 for a float32 model; a 16-bit one is checked on float32
    copies within 1e-5, then in its precision): what the exporters
    write and what a restorer of a model file runs. ``source`` names the
    model in the log lines (default: its name).
    """
    from erlrestore import inference_graph  # pylint: disable=import-outside-toplevel

    return inference_graph.optimize_verified(model, multiple=pad_multiple(model),
                                             source=source or f"model {model.name!r}")


def restorer_from_model(model, source=None, batch_statistics=False, optimize_graph=False):
    """A :class:`KerasRestorer` around an in-memory Keras model (inference mode unless ``batch_statistics``).

    The graph is not rewritten by default: an in-memory model may still
    change (evaluation during training) and a rewritten snapshot
    (``optimize_graph=True``) would not follow it.
    """
    return KerasRestorer(model, source=source, batch_statistics=batch_statistics, optimize_graph=optimize_graph)


# --------------------------------------------------------------------------
# ONNX models (erlrestore-export --format=onnx) with onnxruntime; LiteRT and
# OpenVINO models are run by erlrestore.runtimes.
# --------------------------------------------------------------------------


class OnnxRestorer:
    """A :class:`Restorer`-compatible callable running an ONNX model with onnxruntime (CPU).

    Takes and returns float32 ``[B, H, W, 3]`` NumPy batches in [0, 1]
    (clipped), like :class:`Restorer`. ``multiple`` is read from the model's
    metadata (written by :func:`erlrestore.export.export_onnx`), else None.
    """

    batch_statistics = False
    trained_short_side = None

    def __init__(self, path, threads=None):
        try:
            import onnxruntime
        except ImportError as error:
            raise image_files.DataError(
                f"--backend=onnxruntime needs onnxruntime ({error}); install it with pip install 'erlrestore[onnx]'"
            ) from error
        self.source = path
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        try:
            self._session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception types
            raise image_files.DataError(f"could not load ONNX model {path}: {type(error).__name__}: {error}") from error
        inputs = [i.name for i in self._session.get_inputs()]
        returned = [o.name for o in self._session.get_outputs()]
        if inputs != [contract.INPUT_KEY]:
            raise image_files.DataError(f"ONNX model {path} takes inputs {inputs}, not [{contract.INPUT_KEY!r}]")
        if contract.OUTPUT_KEY not in returned:
            raise image_files.DataError(f"ONNX model {path} returns {returned}, not {contract.OUTPUT_KEY!r}")
        metadata = self._session.get_modelmeta().custom_metadata_map
        try:
            self.multiple = int(metadata[contract.ONNX_MULTIPLE_KEY])
        except (KeyError, ValueError):
            self.multiple = None

    def __call__(self, batch):
        batch = _as_batch(batch)
        output = self._session.run([contract.OUTPUT_KEY], {contract.INPUT_KEY: batch})[0]
        return _same_shape(self.source, batch, np.clip(np.asarray(output, dtype=np.float32), 0.0, 1.0))

    def __repr__(self):
        return f"OnnxRestorer(source={self.source!r}, multiple={self.multiple})"
