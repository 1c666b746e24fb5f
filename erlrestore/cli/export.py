"""erlrestore-export: write a restoration model as a SavedModel for TensorFlow Serving, or as ONNX, LiteRT or OpenVINO.

    erlrestore-export --model=runs/memd_rain100l                 # a training run folder (final.keras)
    erlrestore-export --model=memd.keras [--base_dir=savedmodels] [--name=memd] [--version=3]
    erlrestore-export --model=memd.keras --format=onnx [--base_dir=onnx]   # <base_dir>/<name>/<version>/model.onnx
    erlrestore-export --model=memd.keras --format=litert [--base_dir=litert]        # .../model.tflite
    erlrestore-export --model=memd.keras --format=openvino [--base_dir=openvino]    # .../model.xml + model.bin

Writes ``<base_dir>/<name>/<version>/`` (see ``erlrestore.export``) with the
signatures ``serving_default`` (``images`` -> ``restored``, float32 in [0, 1])
and ``restore_bytes`` (``image_bytes`` -> ``restored_bytes``, encoded images
in, PNGs out). ``--name`` defaults to the .keras file's stem or the run
folder's name; ``--version`` to the largest existing version + 1. An
existing version is never overwritten.

``--format=onnx`` writes ``<base_dir>/<name>/<version>/model.onnx`` instead
(same naming and versioning; ``--base_dir`` defaults to ``onnx`` so that a
TF Serving folder never gets a version it cannot load): input ``images``,
float32 ``[N, H, W, 3]`` in [0, 1] with dynamic N, H and W, output
``restored`` (same shape, clipped to [0, 1]), the same computation as
``serving_default``. Needs ``pip install 'erlrestore[onnx]'``.

``--format=litert`` writes ``<base_dir>/<name>/<version>/model.tflite``
(``--base_dir`` defaults to ``litert``; signature ``serving_default``,
``images`` -> ``restored`` with dynamic N, H and W) and ``--format=openvino``
an OpenVINO IR, ``model.xml`` + ``model.bin`` (default ``openvino``; float32
weights), the same way. Both are converted from a SavedModel of the model
and checked against it (within 1e-3 on a check image) before anything is
written. OpenVINO needs ``pip install 'erlrestore[openvino]'``; LiteRT needs
only TensorFlow (``erlrestore[litert]`` adds the interpreter that restores
without it). ``erlrestore-restore --backend=onnxruntime|litert|openvino``
runs what these write (``erlrestore.backends`` lists the formats).

The last line on stdout is the written version folder.
"""

import os

from absl import app, flags, logging

from erlrestore import backends, pretrained
from erlrestore.cli import entry_point, fail, finish, option_groups

FLAGS = flags.FLAGS


def define_flags():
    option_groups.define_model_flags(saved_models=False, backend=False)
    flags.DEFINE_enum("format", "saved_model", list(backends.FORMATS), backends.format_help())
    defaults = ", ".join(f"{b.base_dir} for --format={b.export_format}" for b in backends.BACKENDS.values())
    flags.DEFINE_string("base_dir", None,
                        f"Base folder; models go to <base_dir>/<name>/<version>/ (default: {defaults}).")
    flags.DEFINE_string("name", None, "Model name (folder); default: the .keras file's stem or run folder's name.")
    flags.DEFINE_integer("version", None, "Version to write (a positive integer); default: largest existing + 1.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.version is not None and FLAGS.version < 1:
        raise app.UsageError(f"--version must be a positive integer, got {FLAGS.version}")
    if FLAGS.name is not None and not FLAGS.name:
        raise app.UsageError("--name may not be empty (omit it to derive the name from --model)")
    if FLAGS.base_dir is not None and not FLAGS.base_dir:
        raise app.UsageError("--base_dir may not be empty")
    backend = backends.for_format(FLAGS.format)
    base_dir = FLAGS.base_dir or backend.base_dir
    if not pretrained.is_pretrained(FLAGS.model) and not os.path.exists(FLAGS.model):
        raise app.UsageError(f"--model={FLAGS.model} does not exist (a .keras file or a training run folder)")

    # Imported here so that usage errors come back without loading TensorFlow.
    from erlrestore.data import image_files

    write = backend.export_function()  # imports erlrestore.export, and TensorFlow with it
    try:
        path = write(FLAGS.model, base_dir=base_dir, name=FLAGS.name, version=FLAGS.version)
    except (image_files.DataError, ValueError, OSError, ImportError) as error:  # FileExistsError is an OSError
        return fail(error)
    logging.info("exported %s", path)
    return finish(path)


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
