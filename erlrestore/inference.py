"""Running a trained model: the one place that loads models and restores images with them.

:func:`load_restorer` turns a saved model (a ``.keras`` file, a training run
folder, ``pretrained:<name>``, a TF Serving SavedModel, or, with another
backend of :mod:`erlrestore.backends`, an ONNX, LiteRT or OpenVINO model)
into a :class:`Restorer`, a callable on float32 ``[B, H, W, 3]`` batches in
[0, 1] (the other runtimes' restorers behave alike and never import
TensorFlow, nor does importing this module);
:func:`restorer_from_model` does so for an in-memory Keras model and
:func:`load_keras_model` loads the Keras model itself (for exporting it).
:func:`restore_tiled` runs a restorer on one image of any size, whole or in
overlapping tiles, optionally as the x8 self-ensemble; :func:`restore_file`
on one file and :func:`restore_paths` on files and folders (the
``erlrestore-restore`` tool). ``erlrestore-evaluate`` scores what these
return (:mod:`erlrestore.evaluation`), and the names of a SavedModel's
signatures and tensors come from :mod:`erlrestore.savedmodel_contract`.

Batch-statistics mode (``batch_statistics=True``, ``erlrestore-evaluate
--norm_statistics=batch``) calls a Keras model with ``training=True``, as
pix2pix's ``test.py`` does without ``--eval`` (:class:`KerasRestorer`).
Batch norm then normalises with the statistics of what one call sees: one
whole image, or one tile when tiling (choice: the tools restore one image or
tile per call in this mode, so statistics never mix images). SavedModels and
ONNX, LiteRT and OpenVINO models are frozen in inference mode and refuse it.

Tiling (see :func:`tile_grid`), choices made here:

* Images no larger than ``tile`` in both sides go through in one call.
  Larger ones are cut into tiles of at most ``tile x tile`` pixels; along
  each axis the tiles start every ``stride`` pixels, and the last tile ends
  exactly at the image border. ``stride`` is ``tile - overlap`` rounded
  down to a multiple of ``align``, so neighbouring tiles overlap by at least
  ``overlap`` pixels.
* ``align``: every tile starts at a multiple of it. A U-Net that pads its
  input to a multiple of ``2**depth`` and down-samples ``depth`` times is
  only translation-equivariant for shifts by multiples of ``2**depth``, so
  tiles starting elsewhere see the image on a different down-sampling grid
  and their outputs differ from the whole-image output everywhere, not only
  near their edges. By default ``align`` is the restorer's ``multiple``
  attribute: the multiple of the model's ``PadToMultiple`` layers for Keras
  models. A SavedModel does not record it, nor does a plain function; then
  :data:`DEFAULT_ALIGN` (16) is used, which fits MEMD and ERL-Net at their
  default depth 4 and every smaller power of two (a pix2pix generator of 8
  levels needs ``align=256``). A last tile starting at an aligned position
  may be up to ``align - 1`` pixels narrower than ``tile``.
* Blending window (per tile, the outer product of one weight vector per
  axis). At a tile edge that lies inside the image, the outer quarter of
  the overlap (``overlap // 4`` pixels) gets weight 0: those pixels were
  computed next to the tile's artificial border (zero padding of the
  convolutions) and are the least accurate. The next ``overlap - 2 *
  (overlap // 4)`` pixels rise along a raised-cosine (Hann) half-window
  ``0.5 - 0.5 cos(pi (i + 0.5) / n)``, which is strictly between 0 and 1
  and complementary (``w[i] + w[n-1-i] = 1``), so two tiles overlapping by
  exactly ``overlap`` cross-fade with weights summing to 1; inward of that
  the weight is 1. Tile edges on the image border keep weight 1, so border
  pixels are always covered. Every pixel has positive total weight (the
  overlap is at least twice the zero margin). The result equals the
  whole-image output wherever the model's receptive-field radius is at most
  ``overlap // 4`` (and tiles are aligned); a model with global operations
  (squeeze-and-excitation pooling, instance normalisation) can only be
  approximated, and the cross-fade hides the remaining seams.
* Memory: the restored tiles are accumulated, weighted, into a float32
  ``H x W x 3`` sum and a float32 ``H x W`` weight sum, which are divided at
  the end; the model only ever sees ``tile_batch`` tiles at a time.

x8 self-ensemble (``self_ensemble=True``; :func:`self_ensemble`,
:data:`ENSEMBLE_TRANSFORMS`), the geometric ensemble of EDSR/RCAN
(``forward_x8``): the model restores the 8 flips/rotations of the image (the
identity, rotations by 90, 180 and 270 degrees, and the same four after a
horizontal flip), each output is transformed back and the 8 are averaged.
Choices made here:

* With tiling, the WHOLE tiled restoration is ensembled (not each tile):
  each of the 8 transformed images is tiled on its own, with tiles aligned
  to the transformed image's origin as for any image, and restored exactly
  as :func:`restore_tiled` would restore it; the 8 results are transformed
  back and averaged. The result is therefore the ensemble of the 8
  whole-image restorations wherever tiling itself equals the whole-image
  restoration (module docstring above), and a U-Net's down-sampling grid
  stays anchored to each transformed image's corner, as it would be without
  tiling. (Ensembling each tile instead would anchor a flipped tile's grid
  at the tile's far edge, which is not on the transformed image's grid.)
  Rotations swap height and width, so a non-square image gives tiles of
  the swapped shape for four of the transforms.
* An image no larger than ``tile`` in both sides is restored in one call
  per transform, the transforms of equal shape batched ``tile_batch`` at a
  time (4 + 4 for a non-square image).
* Each transform's output is clipped to [0, 1] (every restorer output is)
  before the average, and the average is accumulated in float32 in the
  order of :data:`ENSEMBLE_TRANSFORMS`. It costs 8 times the model calls;
  the extra memory is two ``H x W x 3`` float32 images (the transformed
  input and the running sum) beside one tiled restoration.

Files (:func:`restore_file`): the output keeps the input's format, chosen by
the output's extension (the same as the input's in :func:`restore_paths`):
PNG and TIFF inputs with more than 8 bits per sample (16-bit, or
floating-point TIFF) are written with 16 bits, 8-bit ones with 8; JPEG is
written with quality 95 and BMP with 8 bits. The bit depth is read from the
file header (PNG ``IHDR``, TIFF ``BitsPerSample``). Writing is atomic
(:func:`erlrestore.data.image_files.write_image`). Which output files may be written
(never an input, existing ones only with ``overwrite``) is
:mod:`erlrestore.outputs`' policy, shared by every tool.
"""

import dataclasses
import math
import os
import sys
import weakref

import numpy as np

# TensorFlow, Keras, erlrestore.layers (which registers the custom layers that saved .keras models name) and
# erlrestore.inference_graph are imported where a TensorFlow model is built or loaded, not here: restoring with
# an exported model on another runtime (erlrestore.backends) never imports TensorFlow.
from erlrestore import backends, outputs, pictures, pretrained
from erlrestore.progress import Progress
from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files

# Tile alignment when the restorer's padding multiple is unknown (module docstring).
DEFAULT_ALIGN = 16

RUN_MODEL_FILE = "final.keras"  # what erlrestore-train writes in its model folder
KERAS_EXTENSIONS = (".keras", ".h5")


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
        unknown, as for SavedModels); :func:`restore_tiled` aligns tiles to it.
      batch_statistics: whether the model normalises with each batch's own
        statistics (:class:`KerasRestorer` only; False for every other model).
    """

    batch_statistics = False

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
    tools run it), and Keras also turns dropout on, so the output is random
    where the model has dropout, pix2pix's noise source. The moving
    statistics that a training-mode call updates are put back after every
    call, so restoring never changes the model. Exported SavedModels and ONNX,
    LiteRT and OpenVINO models are frozen in inference mode and cannot do this.

    ``optimize_graph=True`` (inference mode only) runs the model's inference
    graph as the exporters write it: batch norms folded into the
    convolutions before them, transposed convolutions as phase convolutions
    (:func:`erlrestore.inference_graph.optimize_verified`: only when the new
    outputs stay within 1e-5 of the model's on a fixed check image, else the
    model as it is, with a logged warning). The new model is a snapshot of
    the rewritten layers' weights at this moment (it shares the other layers
    with ``model``), so it is used for models loaded from files, which
    nothing else changes; ``model`` itself is kept as it is (for
    :func:`as_restorer` to rewrap in batch-statistics mode), which costs the
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

    def __call__(self, batch):
        if not self.batch_statistics:
            return super().__call__(batch)
        kept = [(weight, weight.numpy()) for weight in _moving_statistics(self.model)]
        try:
            return super().__call__(batch)
        finally:
            for weight, value in kept:
                weight.assign(value)


def verified_inference_graph(model, source=None):
    """``model``'s inference graph, checked within 1e-5 at its padding multiple (an ``InferenceGraph``).

    :func:`erlrestore.inference_graph.optimize_verified` with
    :func:`pad_multiple` as the check image's multiple: what the exporters
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


def load_keras_model(path):
    """Loads a Keras restoration model for inference.

    ``path`` is a ``.keras`` (or ``.h5``) file, a training run folder holding
    ``final.keras``, or ``pretrained:<name>`` (:mod:`erlrestore.pretrained`).
    erlrestore's custom layers are registered (:mod:`erlrestore.layers` is
    imported first); the model is loaded without its training
    configuration (``compile=False``), which inference does not need and
    which may reference losses unknown here.

    Raises:
      DataError naming ``path`` when it is missing, a folder without
      ``final.keras``, or cannot be loaded as a Keras model.
    """
    if pretrained.is_pretrained(path):
        return pretrained.load(path)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise image_files.DataError(f"model file {path} does not exist")
    if os.path.isdir(path):
        model_file = os.path.join(path, RUN_MODEL_FILE)
        if not os.path.isfile(model_file):
            raise image_files.DataError(f"run folder {path} has no {RUN_MODEL_FILE} (train the model first)")
        path = model_file
    import keras  # pylint: disable=import-outside-toplevel

    import erlrestore.layers  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # Keras raises many types (ValueError, OSError, zipfile errors...).
        raise image_files.DataError(f"could not load model {path}: {type(error).__name__}: {error}") from error
    if not isinstance(model, keras.Model):
        raise image_files.DataError(f"{path} holds a {type(model).__name__}, not a Keras model")
    return model


def _load_keras(path, batch_statistics):
    # A model loaded from a file belongs to its restorer alone, so it runs its inference graph.
    return restorer_from_model(load_keras_model(path), source=os.fspath(path), batch_statistics=batch_statistics,
                               optimize_graph=True)


def _refuse_batch_statistics(kind, path):
    raise image_files.DataError(
        f"{kind} {path} is frozen in inference mode: batch statistics (--norm_statistics=batch) need a Keras "
        "model (a .keras file, a training run folder or pretrained:<name>)"
    )


def _load_savedmodel(path):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    try:
        loaded = tf.saved_model.load(path)
    except Exception as error:  # TF raises many types for a bad SavedModel.
        raise image_files.DataError(f"could not load SavedModel {path}: {type(error).__name__}: {error}") from error
    signature, input_key, output_key = contract.SERVING_SIGNATURE, contract.INPUT_KEY, contract.OUTPUT_KEY
    signatures = getattr(loaded, "signatures", {})
    if signature not in signatures:
        raise image_files.DataError(
            f"SavedModel {path} has no {signature!r} signature (it has: {', '.join(sorted(signatures)) or 'none'})"
        )
    function = signatures[signature]
    inputs = function.structured_input_signature[1]
    if input_key not in inputs:
        raise image_files.DataError(
            f"the {signature!r} signature of SavedModel {path} takes {sorted(inputs)}, not {input_key!r}"
        )
    returned = function.structured_outputs
    if output_key not in returned:
        raise image_files.DataError(
            f"the {signature!r} signature of SavedModel {path} returns {sorted(returned)}, not {output_key!r}"
        )

    def call(batch):
        return function(**{input_key: batch})[output_key]

    return Restorer(call, path, multiple=None, keep_alive=loaded)


def _latest_version(path, marker):
    """The largest version folder of ``path`` that holds ``marker`` (its own spelling, e.g. ``007``), or None."""
    try:
        return contract.latest_version_folder(path, marker)
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------
# Exported models on other runtimes (erlrestore.backends' table): ONNX models
# (erlrestore-export --format=onnx) with onnxruntime here, LiteRT and OpenVINO
# models in erlrestore.runtimes.
# --------------------------------------------------------------------------

BACKENDS = backends.NAMES  # the --backend choices


class OnnxRestorer:
    """A :class:`Restorer`-compatible callable running an ONNX model with onnxruntime (CPU).

    Takes and returns float32 ``[B, H, W, 3]`` NumPy batches in [0, 1]
    (clipped), like :class:`Restorer`. ``multiple`` is read from the model's
    metadata (written by :func:`erlrestore.export.export_onnx`), else None.
    """

    batch_statistics = False

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


def _exported_file(path, backend):
    """The model file of ``backend`` (an exported format) that ``path`` names, or None.

    ``path`` is the file itself (by extension), a version folder holding
    ``backend.marker`` or a model folder of such version folders (the largest).
    """
    if os.path.isfile(path):
        return path if path.lower().endswith(backend.extensions) else None
    if os.path.isfile(os.path.join(path, backend.marker)):
        return os.path.join(path, backend.marker)
    version = _latest_version(path, backend.marker)
    return None if version is None else os.path.join(version, backend.marker)


def load_restorer(path, backend="tensorflow", batch_statistics=False):
    """Loads a restoration model from ``path`` as a :class:`Restorer`: the one loader of every tool.

    ``path`` may be:

    * ``pretrained:<name>``, a model shipped in the package
      (:mod:`erlrestore.pretrained`);
    * a ``.keras`` (or ``.h5``) model file;
    * a training run folder (``erlrestore-train``'s ``--model_dir``), which
      holds ``final.keras``;
    * a SavedModel version folder (holding ``saved_model.pb``), run through
      its ``serving_default`` signature (``images`` -> ``restored``);
    * a SavedModel model folder of version folders (TF Serving's layout,
      names of ASCII digits, :mod:`erlrestore.savedmodel_contract`); the
      largest version is loaded.

    A folder that is both (``saved_model.pb`` and ``final.keras``) is read
    as a SavedModel.

    With another backend of :mod:`erlrestore.backends`' table, ``path`` must
    instead be that runtime's exported model: the model file, a version
    folder holding it or a model folder of such version folders (the
    largest is used), as ``erlrestore-export --format=<format>`` writes it:

    * ``backend="onnxruntime"``: ``model.onnx`` (``--format=onnx``), run by
      onnxruntime on the CPU (:class:`OnnxRestorer`, as many threads as
      CPUs);
    * ``backend="litert"``: ``model.tflite`` (``--format=litert``), run by
      LiteRT's interpreter (:class:`erlrestore.runtimes.LiteRTRestorer`);
    * ``backend="openvino"``: ``model.xml`` with its ``model.bin``
      (``--format=openvino``), run by OpenVINO on the CPU in float32
      (:class:`erlrestore.runtimes.OpenVINORestorer`).

    These never import TensorFlow (LiteRT only falls back to
    ``tf.lite.Interpreter`` when ``ai-edge-litert`` is not installed).
    Keras models and SavedModels are not converted on the fly: export them
    first.

    ``batch_statistics=True`` runs a Keras model with each batch's own
    batch-norm statistics (:class:`KerasRestorer`); SavedModels and
    exported models are frozen in inference mode, so for them it is an error.
    Otherwise a Keras model runs its inference graph (batch norms folded,
    phase convolutions) when the numbers stay within 1e-5
    (:mod:`erlrestore.inference_graph`), the graph that ``erlrestore-export``
    writes.

    Raises:
      DataError naming ``path`` when it does not exist, is none of the
      above, or cannot be loaded (also when the backend's runtime is not
      installed), and for ``batch_statistics`` with a SavedModel or an
      exported model.
      ValueError for an unknown backend.
    """
    spec = backends.get(backend)  # ValueError for an unknown one
    if not spec.exported:
        return spec.load_function()(path, batch_statistics)
    if batch_statistics:
        _refuse_batch_statistics(f"{spec.label} model", path)
    return spec.load_function()(_exported_model_file(path, spec))


def _load_tensorflow(path, batch_statistics=False):
    """:func:`load_restorer` with ``backend="tensorflow"``: Keras models and SavedModels."""
    if pretrained.is_pretrained(path):
        return _load_keras(path, batch_statistics)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise image_files.DataError(f"model path {path} does not exist")
    if os.path.isfile(path):
        for other in backends.EXPORTED:
            if path.lower().endswith(other.extensions):
                raise image_files.DataError(
                    f"model file {path} is {other.models_phrase()}: run it with --backend={other.name}"
                )
        if os.path.splitext(path)[1].lower() not in KERAS_EXTENSIONS:
            raise image_files.DataError(
                f"model file {path} is not a .keras or .h5 file (give a .keras file, a training run "
                "folder or a SavedModel folder)"
            )
        return _load_keras(path, batch_statistics)
    if os.path.isfile(os.path.join(path, contract.SAVED_MODEL_FILE)):
        version = path
    elif os.path.isfile(os.path.join(path, RUN_MODEL_FILE)):
        return _load_keras(os.path.join(path, RUN_MODEL_FILE), batch_statistics)
    else:
        version = _latest_version(path, contract.SAVED_MODEL_FILE)
    if version is not None:
        if batch_statistics:
            _refuse_batch_statistics("SavedModel", version)
        return _load_savedmodel(version)
    for other in backends.EXPORTED:
        if _exported_file(path, other) is not None:
            raise image_files.DataError(
                f"folder {path} holds {other.models_phrase()}: run it with --backend={other.name}"
            )
    raise image_files.DataError(
        f"no model found in folder {path}: expected final.keras (a training run), saved_model.pb "
        "(a SavedModel version) or version folders (named by digits) holding saved_model.pb"
    )


def as_restorer(model, batch_statistics=False):
    """A restorer for ``model``: a Keras model is wrapped, a path loaded, a restorer kept.

    ``model`` may be a ``keras.Model`` (:func:`restorer_from_model`), a path
    or ``pretrained:<name>`` (:func:`load_restorer`), or a restorer (a
    :class:`Restorer`, :class:`OnnxRestorer`, or any callable on ``[B, H, W,
    3]`` batches), returned as it is. ``batch_statistics`` as for
    :func:`load_restorer`; a :class:`KerasRestorer` is rewrapped in the asked
    mode.

    Raises:
      ValueError for ``batch_statistics`` with a restorer that is not a
      Keras model's (DataError when loading such a model from a path).
    """
    if _is_keras_model(model):
        return restorer_from_model(model, batch_statistics=batch_statistics)
    if isinstance(model, (str, os.PathLike)):
        return load_restorer(model, batch_statistics=batch_statistics)
    if isinstance(model, KerasRestorer):
        if model.batch_statistics == bool(batch_statistics):
            return model
        return restorer_from_model(model.model, source=model.source, batch_statistics=batch_statistics)
    if not callable(model):
        raise TypeError(f"expected a Keras model, a model path or a restorer, got {type(model).__name__}")
    if batch_statistics:
        raise ValueError(
            f"{getattr(model, 'source', model)!r} is not a Keras model: batch statistics need a Keras model"
        )
    return model


def _model_errors():
    """What restoring one file may raise and :func:`restore_paths` reports per file instead of stopping.

    ValueError and OSError (bad files), RuntimeError (LiteRT's and OpenVINO's
    model errors) and, once TensorFlow is imported, its ``OpError``; a run
    that never imported TensorFlow cannot raise one, so it is not imported
    for this.
    """
    tf = sys.modules.get("tensorflow")
    errors = (ValueError, OSError, RuntimeError)
    return errors + (tf.errors.OpError,) if tf is not None and hasattr(tf, "errors") else errors


def _is_keras_model(model):
    """Whether ``model`` is a ``keras.Model`` (False without importing Keras when nothing has imported it)."""
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.Model)


def _exported_model_file(path, backend):
    """The model file ``path`` names for ``backend`` (an exported format), or a DataError saying what to give."""
    runs_only = f"--backend={backend.name} runs {backend.label} models only"
    export_first = f"erlrestore-export --format={backend.export_format}"
    if pretrained.is_pretrained(path):
        raise image_files.DataError(f"{path} is a Keras model: {runs_only}; export it first with {export_first}")
    path = os.fspath(path)
    if not os.path.exists(path):
        raise image_files.DataError(f"model path {path} does not exist")
    model_file = _exported_file(path, backend)
    if model_file is None:
        raise image_files.DataError(
            f"{runs_only}, and {path} is not a {'/'.join(backend.extensions)} file nor a folder "
            f"holding {backend.marker} (or version folders holding it); export a Keras model or "
            f"SavedModel first with {export_first}, or use --backend=tensorflow"
        )
    return model_file


# --------------------------------------------------------------------------
# x8 self-ensemble.
# --------------------------------------------------------------------------

# (horizontal flip first?, quarter turns counter-clockwise) of each transform:
# the identity, the three rotations, and the same four after a horizontal flip.
ENSEMBLE_TRANSFORMS = tuple((flip, turns) for flip in (False, True) for turns in range(4))


def transform_image(image, transform, axes=(0, 1)):
    """``image`` flipped horizontally (when ``transform[0]``), then rotated by ``transform[1]`` quarter turns.

    ``axes`` are the (height, width) axes: ``(0, 1)`` for ``H x W x C``,
    ``(1, 2)`` for a ``[B, H, W, C]`` batch. Returns a view.
    """
    flip, turns = transform
    if flip:
        image = np.flip(image, axis=axes[1])
    return np.rot90(image, turns, axes=axes)


def untransform_image(image, transform, axes=(0, 1)):
    """The inverse of :func:`transform_image`: ``untransform_image(transform_image(x, t), t) == x``."""
    flip, turns = transform
    image = np.rot90(image, -turns, axes=axes)
    if flip:
        image = np.flip(image, axis=axes[1])
    return image


def self_ensemble(restore, image):
    """The x8 self-ensemble of ``restore`` on one ``H x W x 3`` image (module docstring).

    Args:
      restore: a function from one ``h x w x 3`` float32 image to the
        restored image of the same shape (it is called with ``h x w`` and
        with ``w x h`` images).
      image: the degraded image.

    Returns:
      float32 ``H x W x 3``: the mean over :data:`ENSEMBLE_TRANSFORMS` of
      ``untransform_image(restore(transform_image(image, t)), t)``.

    Raises:
      ValueError when ``restore`` changes a transformed image's shape.
    """
    image = _check_image(image)
    total = np.zeros(image.shape, dtype=np.float32)
    for transform in ENSEMBLE_TRANSFORMS:
        moved = np.ascontiguousarray(transform_image(image, transform))
        restored = np.asarray(restore(moved), dtype=np.float32)
        if restored.shape != moved.shape:
            raise ValueError(
                f"self-ensemble: restoring a transformed image of shape {moved.shape} gave shape {restored.shape}"
            )
        total += untransform_image(restored, transform)
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total


_self_ensemble = self_ensemble  # restore_tiled's argument of that name hides the function there


def _ensemble_in_one_call(restorer, image, tile_batch, on_tiles=None):
    """:func:`self_ensemble` of an image that fits one tile, equal-shape transforms batched."""
    total = np.zeros(image.shape, dtype=np.float32)
    groups = {}
    for transform in ENSEMBLE_TRANSFORMS:
        groups.setdefault(transform[1] % 2, []).append(transform)
    for transforms in groups.values():
        for start in range(0, len(transforms), tile_batch):
            chunk = transforms[start : start + tile_batch]
            batch = np.stack([transform_image(image, t) for t in chunk])
            for transform, restored in zip(chunk, _run(restorer, batch)):
                total += untransform_image(np.clip(restored, 0.0, 1.0), transform)
            if on_tiles is not None:
                on_tiles(len(chunk))
    total /= np.float32(len(ENSEMBLE_TRANSFORMS))
    return total


# --------------------------------------------------------------------------
# Tiling.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile of :func:`tile_grid`: rows ``y0:y1``, columns ``x0:x1`` and its blending weight."""

    y0: int
    y1: int
    x0: int
    x1: int
    weight: np.ndarray  # float32 (y1 - y0) x (x1 - x0), >= 0


def _check_int(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_tiling(tile, overlap, align=1):
    """Validates tiling parameters; returns the stride between tile starts.

    Raises:
      ValueError unless ``tile > 2 * overlap >= 0``, ``align >= 1`` and
      ``tile - overlap >= align`` (else no aligned stride fits).
    """
    overlap = _check_int(overlap, "overlap", 0)
    tile = _check_int(tile, "tile", 1)
    align = _check_int(align, "align", 1)
    if tile <= 2 * overlap:
        raise ValueError(f"tile ({tile}) must be larger than twice the overlap ({overlap})")
    stride = (tile - overlap) // align * align
    if stride < 1:
        raise ValueError(
            f"tile - overlap ({tile - overlap}) is smaller than the alignment {align} (the model's "
            f"padding multiple); use a tile of at least {align + overlap} pixels"
        )
    return stride


def _segments(size, tile, stride, align):
    """``[(start, end), ...]`` along one axis of ``size`` pixels (see the module docstring)."""
    if size <= tile:
        return [(0, size)]
    starts = list(range(0, size - tile, stride))
    last = -(-(size - tile) // align) * align  # the first aligned start whose tile reaches no further than size
    return [(start, start + tile) for start in starts] + [(last, size)]


def _ramp(length):
    """Raised-cosine rise of ``length`` values, strictly inside (0, 1), ``r[i] + r[-1-i] = 1``."""
    return 0.5 - 0.5 * np.cos(np.pi * (np.arange(length) + 0.5) / length)


def _axis_weights(start, end, size, overlap):
    """The window of one segment ``start:end`` of an axis of ``size`` pixels."""
    weights = np.ones(end - start, dtype=np.float64)
    margin = overlap // 4
    rise = _ramp(overlap - 2 * margin)
    if start > 0:  # inner edge: drop the margin, then rise
        weights[:margin] = 0.0
        weights[margin : margin + rise.size] *= rise
    if end < size:
        weights[weights.size - margin :] = 0.0
        weights[weights.size - margin - rise.size : weights.size - margin] *= rise[::-1]
    return weights


def tile_grid(height, width, tile=512, overlap=32, align=1):
    """The tiles :func:`restore_tiled` uses for an image of ``height x width``, with their weights.

    A generator of :class:`Tile`, row by row. Tiles are at most ``tile`` pixels
    on each side, start at multiples of ``align``, overlap their neighbours
    by at least ``overlap`` pixels and end exactly at the image border (see
    the module docstring for the window). An image no larger than ``tile``
    in both sides is one tile of weight 1.

    Raises:
      ValueError for bad sizes or tiling parameters (:func:`check_tiling`).
    """
    stride = check_tiling(tile, overlap, align)
    height = _check_int(height, "height", 1)
    width = _check_int(width, "width", 1)
    rows = [(y0, y1, _axis_weights(y0, y1, height, overlap)) for y0, y1 in _segments(height, tile, stride, align)]
    cols = [(x0, x1, _axis_weights(x0, x1, width, overlap)) for x0, x1 in _segments(width, tile, stride, align)]
    for y0, y1, wy in rows:
        for x0, x1, wx in cols:
            yield Tile(y0, y1, x0, x1, np.outer(wy, wx).astype(np.float32))


def count_tiles(height, width, tile=512, overlap=32, align=1, self_ensemble=False):
    """How many tiles (model inputs) :func:`restore_tiled` restores for a ``height x width`` image.

    The number of :func:`tile_grid` tiles (1 for an image no larger than
    ``tile``, or for ``tile=None``); with ``self_ensemble``, the sum over the
    8 transforms (4 of them see the image turned, ``width x height``).
    Progress bars count these. Raises ValueError as :func:`tile_grid`.
    """
    def one(h, w):
        if tile is None or (h <= tile and w <= tile):
            return 1
        stride = check_tiling(tile, overlap, align)
        return len(_segments(h, tile, stride, align)) * len(_segments(w, tile, stride, align))

    height = _check_int(height, "height", 1)
    width = _check_int(width, "width", 1)
    if tile is not None:
        check_tiling(tile, overlap, align)
    if self_ensemble:
        return 4 * one(height, width) + 4 * one(width, height)
    return one(height, width)


def _check_image(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    return np.ascontiguousarray(image, dtype=np.float32)


def _run(restorer, batch):
    output = np.asarray(restorer(batch), dtype=np.float32)
    if output.shape != batch.shape:
        raise ValueError(f"the restorer turned a batch of shape {batch.shape} into shape {output.shape}")
    return output


def default_align(restorer, align=None):
    """``align`` when given, else the restorer's padding multiple, else :data:`DEFAULT_ALIGN`."""
    if align is not None:
        return align
    return getattr(restorer, "multiple", None) or DEFAULT_ALIGN


def restore_tiled(restorer, image, tile=512, overlap=32, align=None, tile_batch=1, self_ensemble=False,
                  on_tiles=None):
    """Restores one ``H x W x 3`` image of any size; returns float32 ``H x W x 3`` in [0, 1].

    Args:
      restorer: a callable on float32 ``[B, h, w, 3]`` batches returning the
        same shape (a :class:`Restorer`, or any function).
      image: the degraded image, float values in [0, 1].
      tile: largest tile side; an image no larger in both sides is restored
        in one call. None: never tile, the whole image goes through in one
        call (``overlap`` and ``align`` are then unused).
      overlap: least overlap of neighbouring tiles (pixels); the window
        discards ``overlap // 4`` pixels at inner tile edges and cross-fades
        over the rest (module docstring).
      align: tiles start at multiples of this; ``None``: the restorer's
        ``multiple`` attribute, or :data:`DEFAULT_ALIGN` when it has none.
      tile_batch: up to this many tiles of one size go to the restorer per
        call (faster on accelerators; memory grows with it).
      self_ensemble: average the x8 flip/rotation self-ensemble; with tiling
        the whole tiled restoration of each transformed image is ensembled
        (module docstring). 8 times the model calls.
      on_tiles: called after each model call with the number of tiles it
        restored (progress; they add up to :func:`count_tiles`).

    Raises:
      ValueError for a bad image, bad tiling parameters (``tile > 2 *
      overlap >= 0`` is required) or a restorer that changes the shape.
    """
    image = _check_image(image)
    align = default_align(restorer, align)
    tile_batch = _check_int(tile_batch, "tile_batch", 1)
    if tile is not None:
        check_tiling(tile, overlap, align)
    height, width = image.shape[:2]
    whole = tile is None or (height <= tile and width <= tile)
    if self_ensemble:
        if whole:
            return _ensemble_in_one_call(restorer, image, tile_batch, on_tiles)
        return _self_ensemble(
            lambda moved: restore_tiled(restorer, moved, tile, overlap, align, tile_batch, on_tiles=on_tiles), image
        )
    if whole:
        restored = np.clip(_run(restorer, image[np.newaxis])[0], 0.0, 1.0)
        if on_tiles is not None:
            on_tiles(1)
        return restored

    total = np.zeros(image.shape, dtype=np.float32)
    weight_sum = np.zeros(image.shape[:2], dtype=np.float32)
    pending = []

    def flush():
        batch = np.stack([image[t.y0 : t.y1, t.x0 : t.x1] for t in pending])
        for t, restored in zip(pending, _run(restorer, batch)):
            total[t.y0 : t.y1, t.x0 : t.x1] += restored * t.weight[:, :, np.newaxis]
            weight_sum[t.y0 : t.y1, t.x0 : t.x1] += t.weight
        if on_tiles is not None:
            on_tiles(len(pending))
        pending.clear()

    for t in tile_grid(height, width, tile, overlap, align):
        if pending and (len(pending) == tile_batch or t.weight.shape != pending[0].weight.shape):
            flush()
        pending.append(t)
    flush()
    total /= weight_sum[:, :, np.newaxis]
    return np.clip(total, 0.0, 1.0, out=total)


# --------------------------------------------------------------------------
# Files.
# --------------------------------------------------------------------------


def _tiff_bits(data):
    """Largest BitsPerSample of a classic TIFF's first image, or None when it cannot be read."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 8:
        return None
    if int.from_bytes(data[2:4], "little" if order == "<" else "big") != 42:
        return None  # BigTIFF or not a TIFF
    byteorder = "little" if order == "<" else "big"

    def number(offset, size):
        return int.from_bytes(data[offset : offset + size], byteorder)

    ifd = number(4, 4)
    if ifd + 2 > len(data):
        return None
    for index in range(number(ifd, 2)):
        entry = ifd + 2 + 12 * index
        if entry + 12 > len(data):
            return None
        if number(entry, 2) != 258:  # BitsPerSample (SHORT)
            continue
        count = number(entry + 4, 4)
        offset = entry + 8 if count <= 2 else number(entry + 8, 4)
        values = [number(offset + 2 * i, 2) for i in range(min(count, 8))]
        return max(values) if values else None
    return 1  # no BitsPerSample tag: the TIFF default is 1 bit


def source_bit_depth(path):
    """8 or 16: the bit depth :func:`restore_file` writes for an input file ``path``.

    16 for PNG with 16-bit samples and TIFF with more than 8 bits per sample
    (16-bit integers or floats), read from the header; 8 otherwise (JPEG,
    BMP, 8-bit or lower PNG/TIFF). A TIFF header that cannot be parsed
    (e.g. BigTIFF) gives 16, which loses nothing.
    """
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in (".png", ".tif", ".tiff"):
        return 8
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if ext == ".png":
        # Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4), then the bit depth.
        return 16 if len(head) > 24 and head[24] == 16 else 8
    bits = _tiff_bits(head)
    if bits is None:
        with open(path, "rb") as handle:
            bits = _tiff_bits(handle.read())
    return 16 if bits is None or bits > 8 else 8


def restore_file(restorer, input_path, output_path, tile=512, overlap=32, align=None, tile_batch=1,
                 self_ensemble=False, on_tiles=None, compare_path=None,
                 compare_max_width=pictures.DEFAULT_MAX_WIDTH):
    """Restores the image file ``input_path`` into ``output_path`` (atomically).

    The format follows ``output_path``'s extension; the bit depth follows the
    input (:func:`source_bit_depth`; 16-bit only where the output format
    holds it), JPEG is written with quality 95. ``self_ensemble`` and
    ``on_tiles``: see :func:`restore_tiled`. ``compare_path``: also write
    the labelled strip input | restored there
    (:func:`erlrestore.pictures.comparison_strip`, at most
    ``compare_max_width`` pixels wide). Returns ``output_path``.

    Raises:
      DataError when the input cannot be read (naming it) or when
      ``output_path`` is the input file itself; ValueError for bad tiling
      parameters.
    """
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if outputs.same_file(input_path, output_path):
        raise image_files.DataError(f"output {output_path} is the input file {input_path}; inputs are never overwritten")
    image = image_files.read_image(input_path)
    restored = restore_tiled(restorer, image, tile=tile, overlap=overlap, align=align, tile_batch=tile_batch,
                             self_ensemble=self_ensemble, on_tiles=on_tiles)
    bit_depth = source_bit_depth(input_path)
    if os.path.splitext(output_path)[1].lower() not in (".png", ".tif", ".tiff"):
        bit_depth = 8
    image_files.write_image(output_path, restored, bit_depth=bit_depth, jpeg_quality=95)
    if compare_path is not None:
        pictures.write_strip(compare_path, pictures.comparison_strip(image, restored, max_width=compare_max_width))
    return output_path


def _collect_inputs(inputs):
    """``inputs`` (a path or paths: files and folders) -> [(input file, its folder or None)]."""
    if isinstance(inputs, (str, bytes, os.PathLike)):
        inputs = [inputs]
    files = []
    for item in inputs:
        item = os.fspath(item)
        if os.path.isdir(item):
            files.extend((path, item) for path in image_files.list_images(item))
        elif os.path.isfile(item):
            if not image_files.is_image_file(item):
                raise image_files.DataError(
                    f"input {item} is not an image file (extensions: {', '.join(image_files.IMAGE_EXTENSIONS)})"
                )
            files.append((item, None))
        else:
            raise image_files.DataError(f"input {item} does not exist")
    if not files:
        raise image_files.DataError("no input images given")
    return files


def restore_targets(inputs, output_dir, overwrite=False):
    """``[(input file, output file), ...]`` for :func:`restore_paths`: outputs keep the input's file name.

    The output policy is :mod:`erlrestore.outputs`' (inputs never
    overwritten, existing outputs only with ``overwrite``, no two inputs onto
    one output); an input file given twice is restored once.

    Raises:
      DataError (before anything is written) for the refusals of
      :func:`erlrestore.outputs.output_paths`, or when an input does not
      exist / is not an image.
    """
    sources = [path for path, _ in _collect_inputs(inputs)]
    pairs = {}
    for source, target in zip(sources, outputs.output_paths(sources, output_dir, overwrite=overwrite)):
        pairs.setdefault(target, (source, target))
    return list(pairs.values())


def restore_paths(
    restorer, inputs, output_dir, tile=512, overlap=32, align=None, tile_batch=1, overwrite=False, show_progress=True,
    self_ensemble=False, compare_dir=None, compare_max_width=pictures.DEFAULT_MAX_WIDTH,
):
    """Restores image files and folders into ``output_dir``, keeping the file names.

    Args:
      restorer: see :func:`restore_tiled`.
      inputs: an image file or a folder (its images, not recursive), or a
        list of them.
      output_dir: created when missing; never an input folder.
      tile, overlap, align, tile_batch: see :func:`restore_tiled`.
      overwrite: replace existing output files (inputs are never replaced).
      show_progress: draw a progress bar on stderr, counting tiles (with an
        ETA) rather than images, so one large photo moves it too; each
        file's tiles are counted from its header before it is restored.
      self_ensemble: restore with the x8 self-ensemble (module docstring).
      compare_dir: when given, also write a labelled strip input | restored
        per file there as ``<input stem>.png``
        (:func:`erlrestore.pictures.strip_paths`: not ``output_dir``, same
        output policy), at most ``compare_max_width`` pixels wide.

    Returns:
      ``(written, failures)``: output paths written, and ``(input path,
      message)`` for each file that could not be restored (unreadable, a
      model error); the others are still restored.

    Raises:
      DataError / ValueError before anything is written, for the refusals
      of :func:`restore_targets` and bad tiling parameters.
    """
    if tile is not None:
        check_tiling(tile, overlap, default_align(restorer, align))
    _check_int(tile_batch, "tile_batch", 1)
    pairs = restore_targets(inputs, output_dir, overwrite=overwrite)
    strips = {}
    if compare_dir is not None:
        sources = [source for source, _ in pairs]
        strips = dict(zip(sources, pictures.strip_paths(sources, compare_dir, overwrite=overwrite,
                                                        beside=[output_dir])))
    os.makedirs(output_dir, exist_ok=True)

    bar = None
    if show_progress:
        tiles = {source: _file_tiles(source, tile, overlap, default_align(restorer, align), self_ensemble)
                 for source, _ in pairs}
        bar = Progress(sum(tiles.values()), desc="restoring", unit="tiles")
    order = {source: index for index, (source, _) in enumerate(pairs, 1)}

    def write(source, target):
        strip = dict(compare_path=strips.get(source), compare_max_width=compare_max_width)
        if bar is None:
            return restore_file(restorer, source, target, tile, overlap, align, tile_batch,
                                self_ensemble=self_ensemble, **strip)
        with bar.part(tiles[source], note=f"image {order[source]}/{len(pairs)}") as on_tiles:
            return restore_file(restorer, source, target, tile, overlap, align, tile_batch,
                                self_ensemble=self_ensemble, on_tiles=on_tiles, **strip)

    try:
        return outputs.collect_failures(pairs, write, errors=_model_errors(), show_progress=False, desc="restoring")
    finally:
        if bar is not None:
            bar.close()


def _file_tiles(path, tile, overlap, align, self_ensemble):
    """:func:`count_tiles` of the image file ``path`` from its header (1 when the first MiB does not tell)."""
    try:
        with open(path, "rb") as handle:
            found = image_files.declared_size(handle.read(1 << 20))
    except (OSError, ValueError):
        return 1
    if found is None or found[1] < 1 or found[2] < 1:
        return 1
    return count_tiles(found[2], found[1], tile, overlap, align, self_ensemble)
