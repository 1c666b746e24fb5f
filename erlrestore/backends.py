"""The runtimes a restoration model can run on: one table, from which the tools take their choices.

Each :class:`Backend` names ``erlrestore-restore`` / ``erlrestore-evaluate``'s
``--backend`` value, the ``erlrestore-export --format`` that writes models
for it, the file a version folder of such a model holds, the function that
loads it (:func:`erlrestore.inference.load_restorer` dispatches here) and
the function that exports it. Adding a runtime is adding a row to
``_BUILTIN``, or, from outside the package, :func:`register` before the
tool defines its flags (README, "Adding an export format (backend)").

======================  ===============  ==========================  ==============================
``--backend``           ``--format``     version folder holds        runs on
======================  ===============  ==========================  ==============================
``tensorflow``          ``saved_model``  ``saved_model.pb`` (or a    TensorFlow (also ``.keras``
                                         ``.keras`` model, run       files, run folders and
                                         folder, ``pretrained:``)    ``pretrained:<name>``)
``onnxruntime``         ``onnx``         ``model.onnx``              onnxruntime, CPU provider
``litert``              ``litert``       ``model.tflite``            LiteRT (``ai-edge-litert``),
                                                                     else ``tf.lite.Interpreter``
``openvino``            ``openvino``     ``model.xml``, ``model.bin``  OpenVINO, CPU, float32
======================  ===============  ==========================  ==============================

This module imports nothing heavy (no TensorFlow, no runtime): the command
lines build their ``--help`` from it, and the loaders and exporters are
named as ``"module:function"`` and imported only when used, so restoring
with ``onnxruntime``, ``openvino`` or ``litert`` (with ``ai-edge-litert``
installed) never imports TensorFlow.

:data:`BACKENDS`, :data:`NAMES`, :data:`FORMATS` and :data:`EXPORTED` are
views of the table that :func:`register` rebuilds: code that copies one at
import (``runner.EvaluationSettings``' ``backend`` choices, for one) sees
only the backends registered before that import.
"""

import dataclasses
import importlib

from erlrestore import savedmodel_contract as contract


@dataclasses.dataclass(frozen=True)
class Backend:
    """One runtime (a row of the module's table).

    Attributes:
      name: the ``--backend`` value.
      label: how messages name its models ("ONNX").
      export_format: the ``erlrestore-export --format`` that writes models for it.
      base_dir: ``erlrestore-export``'s default ``--base_dir`` for that format.
      marker: the model file inside a version folder; None for TensorFlow,
        which reads several forms (:func:`erlrestore.inference.load_restorer`).
      extensions: lower-case extensions of a model file given directly.
      loader: ``"module:function"``; for an exported format it is called with
        the model file and returns a restorer; for TensorFlow with ``(path,
        batch_statistics)``.
      exporter: ``"module:function"`` taking ``(model_or_path, base_dir,
        name, version)`` and returning the written version folder.
      extra: the pip extra that installs what it needs (None: always there).
      summary: its part of the ``--backend`` help.
    """

    name: str
    label: str
    export_format: str
    base_dir: str
    marker: str | None
    extensions: tuple
    loader: str
    exporter: str
    extra: str | None
    summary: str

    @property
    def exported(self):
        """True for the runtimes of exported model files (all but TensorFlow)."""
        return self.marker is not None

    def load_function(self):
        return _resolve(self.loader)

    def export_function(self):
        return _resolve(self.exporter)

    def models_phrase(self):
        """``"an ONNX model"``, ``"a LiteRT model"``: for messages."""
        article = "an" if self.label[0] in "AEIOU" else "a"
        return f"{article} {self.label} model"


_BUILTIN = (
    Backend(
        name="tensorflow", label="TensorFlow", export_format="saved_model", base_dir="savedmodels", marker=None,
        extensions=(".keras", ".h5"), loader="erlrestore.inference.loading:_load_tensorflow",
        exporter="erlrestore.export:export_savedmodel", extra=None,
        summary="Keras models (.keras, run folder, pretrained:<name>) and SavedModels",
    ),
    Backend(
        name="onnxruntime", label="ONNX", export_format="onnx", base_dir="onnx", marker=contract.ONNX_FILE,
        extensions=(".onnx",), loader="erlrestore.inference.restorers:OnnxRestorer",
        exporter="erlrestore.export:export_onnx", extra="onnx",
        summary="ONNX models from erlrestore-export --format=onnx",
    ),
    Backend(
        name="litert", label="LiteRT", export_format="litert", base_dir="litert", marker=contract.LITERT_FILE,
        extensions=(".tflite",), loader="erlrestore.runtimes:LiteRTRestorer",
        exporter="erlrestore.export:export_litert", extra="litert",
        summary="LiteRT (TensorFlow Lite) models from erlrestore-export --format=litert",
    ),
    Backend(
        name="openvino", label="OpenVINO", export_format="openvino", base_dir="openvino",
        marker=contract.OPENVINO_FILE, extensions=(".xml",), loader="erlrestore.runtimes:OpenVINORestorer",
        exporter="erlrestore.export:export_openvino", extra="openvino",
        summary="OpenVINO IR models from erlrestore-export --format=openvino",
    ),
)

_TABLE = list(_BUILTIN)  # every registered backend, the built-in ones first, in registration order

# Views of the table, rebuilt by register(): read them as backends.NAMES (not copied at import) to see every
# registered backend.
BACKENDS = {}  # name -> Backend
NAMES = ()  # the --backend choices, TensorFlow (the default) first
FORMATS = ()  # the erlrestore-export --format choices
EXPORTED = ()  # the backends of exported model files (all but TensorFlow)


def _refresh_views():
    global NAMES, FORMATS, EXPORTED  # pylint: disable=global-statement
    BACKENDS.clear()  # the one dict, updated in place, so that a reference to it stays current
    BACKENDS.update((backend.name, backend) for backend in _TABLE)
    NAMES = tuple(BACKENDS)
    FORMATS = tuple(backend.export_format for backend in _TABLE)
    EXPORTED = tuple(backend for backend in _TABLE if backend.exported)


_refresh_views()


def register(backend):
    """Adds ``backend`` (a :class:`Backend` of an exported model file) to the table, after the others; returns it.

    Its name becomes a ``--backend`` choice of ``erlrestore-restore`` and
    ``erlrestore-evaluate`` and its format an ``erlrestore-export --format``
    choice when those tools define their flags after the registration (the
    flags read :data:`NAMES` and :data:`FORMATS` then). ``loader`` is called
    with the model file (found as for the built-in formats: the file by one
    of ``extensions``, a version folder holding ``marker``, or a model folder
    of version folders) and returns a restorer, a callable on float32
    ``[B, H, W, 3]`` batches in [0, 1]; ``exporter`` as :class:`Backend` says.

    Raises:
      TypeError when ``backend`` is not a :class:`Backend`.
      ValueError for an empty field, a ``loader`` or ``exporter`` not of the
      form ``"module:function"``, no ``marker`` (only TensorFlow reads
      several forms), an extension not lower-case with its dot, or a name,
      format, marker or extension another backend has.
    """
    if not isinstance(backend, Backend):
        raise TypeError(f"register takes a backends.Backend, got {type(backend).__name__}")
    name = backend.name
    for field in ("name", "label", "export_format", "base_dir", "marker", "loader", "exporter", "summary"):
        value = getattr(backend, field)
        if not isinstance(value, str) or not value:
            raise ValueError(f"backend {name!r}: {field} must be a non-empty string, got {value!r}")
    for field in ("loader", "exporter"):
        module, colon, function = getattr(backend, field).partition(":")
        if not (module and colon and function) or ":" in function:
            raise ValueError(f"backend {name!r}: {field} must be \"module:function\", got {getattr(backend, field)!r}")
    if not isinstance(backend.extensions, tuple) or not backend.extensions or not all(
            isinstance(e, str) and len(e) > 1 and e.startswith(".") and e == e.lower() for e in backend.extensions):
        raise ValueError(f"backend {name!r}: extensions must be a non-empty tuple of lower-case extensions with "
                         f"their dot ((\".onnx\",)), got {backend.extensions!r}")
    for other in _TABLE:
        clashes = [(what, mine) for what, mine, theirs in (
            ("name", name, other.name), ("format", backend.export_format, other.export_format),
            ("marker", backend.marker, other.marker)) if mine == theirs]
        clashes += [("extension", e) for e in backend.extensions if e in other.extensions]
        if clashes:
            what, value = clashes[0]
            raise ValueError(f"backend {name!r}: {what} {value!r} is already backend {other.name!r}'s")
    _TABLE.append(backend)
    _refresh_views()
    return backend


def get(name):
    """The :class:`Backend` named ``name``; ValueError for an unknown one."""
    try:
        return BACKENDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"backend must be one of {NAMES}, got {name!r}") from None


def for_format(export_format):
    """The :class:`Backend` whose models ``erlrestore-export --format=<export_format>`` writes."""
    for backend in _TABLE:
        if backend.export_format == export_format:
            return backend
    raise ValueError(f"format must be one of {FORMATS}, got {export_format!r}")


def backend_help():
    """The ``--backend`` flag's help, one ``name: summary`` per runtime."""
    forms = "An exported model is given as its file, its version folder or its model folder (largest version)."
    return "; ".join(f"{b.name}: {b.summary}" for b in _TABLE) + ". " + forms


def format_help():
    """The ``erlrestore-export --format`` flag's help."""
    parts = ["saved_model: a SavedModel for TF Serving"]
    parts += [f"{b.export_format}: <base_dir>/<name>/<version>/{b.marker} for --backend={b.name}" for b in EXPORTED]
    return "; ".join(parts) + "."


def _resolve(target):
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)
