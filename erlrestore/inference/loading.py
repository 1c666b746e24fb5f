"""Loading models: :func:`load_restorer`, the one loader of every tool, and :func:`as_restorer`.

:func:`load_restorer` turns a saved model (a ``.keras`` file, a training run
folder, ``pretrained:<name>``, a TF Serving SavedModel, or, with another
backend of :mod:`erlrestore.backends`' table, an ONNX, LiteRT or OpenVINO
model) into a restorer (:mod:`erlrestore.inference.restorers`). Which
backends exist, which file a version folder of each holds, which function
loads it and which exports it are rows of that one table; this module reads
it to recognise a model file or folder and to load it, and to tell a user
who gave another runtime's model which ``--backend`` runs it.
:func:`load_keras_model` loads the Keras model itself (for exporting it).
Restoring with an exported model on another runtime never imports
TensorFlow, nor does importing this module.
"""

import os
import sys

from erlrestore import backends, pretrained
from erlrestore import savedmodel_contract as contract
from erlrestore.data import image_files
from erlrestore.inference.restorers import KerasRestorer, Restorer, restorer_from_model

BACKENDS = backends.NAMES  # the --backend choices at import (backends.NAMES: with those registered since)
RUN_MODEL_FILE = "final.keras"  # what erlrestore-train writes in its model folder
KERAS_EXTENSIONS = backends.get("tensorflow").extensions  # (".keras", ".h5")


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
    restorer = restorer_from_model(load_keras_model(path), source=os.fspath(path), batch_statistics=batch_statistics,
                                   optimize_graph=True)
    if pretrained.is_pretrained(path):  # the card may say the scale it was trained at (work_size="auto")
        restorer.trained_short_side = pretrained.trained_short_side(path)
    return restorer


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
      onnxruntime on the CPU (:class:`~erlrestore.inference.restorers.OnnxRestorer`, as many threads as
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
        rewrapped = restorer_from_model(model.model, source=model.source, batch_statistics=batch_statistics)
        rewrapped.trained_short_side = model.trained_short_side
        return rewrapped
    if not callable(model):
        raise TypeError(f"expected a Keras model, a model path or a restorer, got {type(model).__name__}")
    if batch_statistics:
        raise ValueError(
            f"{getattr(model, 'source', model)!r} is not a Keras model: batch statistics need a Keras model"
        )
    return model


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
