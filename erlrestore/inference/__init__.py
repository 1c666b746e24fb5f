"""Running a trained model: the one place that loads models and restores images with them.

The package's modules, each with one job (every public name is also
importable from ``erlrestore.inference`` itself):

* :mod:`~erlrestore.inference.restorers`: restorers, callables on float32
  ``[B, H, W, 3]`` batches in [0, 1] (:class:`Restorer`,
  :class:`KerasRestorer` via :func:`restorer_from_model`,
  :class:`OnnxRestorer`; LiteRT and OpenVINO ones in
  :mod:`erlrestore.runtimes`), and batch-statistics mode;
* :mod:`~erlrestore.inference.loading`: :func:`load_restorer` turns a saved
  model (a ``.keras`` file, a training run folder, ``pretrained:<name>``, a
  TF Serving SavedModel, or, with another backend of
  :mod:`erlrestore.backends`' table, an ONNX, LiteRT or OpenVINO model)
  into a restorer; :func:`as_restorer` accepts any of these or a Keras
  model; :func:`load_keras_model` loads the Keras model itself (for
  exporting it);
* :mod:`~erlrestore.inference.tiling`: :func:`restore_tiled` restores one
  image of any size, whole or in overlapping tiles (:func:`tile_grid`,
  :func:`count_tiles`);
* :mod:`~erlrestore.inference.ensemble`: the x8 self-ensemble
  (:func:`self_ensemble`);
* :mod:`~erlrestore.inference.work_scale`: the working scale of large
  photos (``work_size``: :func:`parse_work_size`, :func:`working_shape`,
  :func:`transfer_correction`);
* :mod:`~erlrestore.inference.files`: :func:`restore_file` on one file and
  :func:`restore_paths` on files and folders (the ``erlrestore-restore``
  tool), keeping each file's format and bit depth.

``erlrestore-evaluate`` scores what these return
(:mod:`erlrestore.evaluation`), and the names of a SavedModel's signatures
and tensors come from :mod:`erlrestore.savedmodel_contract`. Importing this
package imports neither TensorFlow nor a runtime: they are imported where
a model is loaded, so restoring with an exported model on another runtime
never imports TensorFlow.
"""

from erlrestore.inference.ensemble import ENSEMBLE_TRANSFORMS, self_ensemble, transform_image, untransform_image
from erlrestore.inference.files import restore_file, restore_paths, restore_targets, source_bit_depth
from erlrestore.inference.loading import (
    BACKENDS,
    KERAS_EXTENSIONS,
    RUN_MODEL_FILE,
    as_restorer,
    load_keras_model,
    load_restorer,
)
from erlrestore.inference.restorers import (
    KerasRestorer,
    OnnxRestorer,
    Restorer,
    pad_multiple,
    restorer_from_model,
    verified_inference_graph,
)
from erlrestore.inference.tiling import (
    DEFAULT_ALIGN,
    Tile,
    check_tiling,
    count_tiles,
    default_align,
    restore_tiled,
    tile_grid,
)
from erlrestore.inference.work_scale import (
    AUTO,
    NONE,
    WORK_MARGIN,
    WORK_SIZE_FORMS,
    parse_work_size,
    resolve_work_size,
    to_working_scale,
    transfer_correction,
    working_shape,
)

__all__ = [
    "AUTO",
    "BACKENDS",
    "DEFAULT_ALIGN",
    "ENSEMBLE_TRANSFORMS",
    "KERAS_EXTENSIONS",
    "KerasRestorer",
    "NONE",
    "OnnxRestorer",
    "RUN_MODEL_FILE",
    "Restorer",
    "Tile",
    "WORK_MARGIN",
    "WORK_SIZE_FORMS",
    "as_restorer",
    "check_tiling",
    "count_tiles",
    "default_align",
    "load_keras_model",
    "load_restorer",
    "pad_multiple",
    "parse_work_size",
    "resolve_work_size",
    "restore_file",
    "restore_paths",
    "restore_targets",
    "restore_tiled",
    "restorer_from_model",
    "self_ensemble",
    "source_bit_depth",
    "tile_grid",
    "to_working_scale",
    "transfer_correction",
    "transform_image",
    "untransform_image",
    "verified_inference_graph",
    "working_shape",
]
