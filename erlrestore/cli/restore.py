"""erlrestore-restore: restore image files or folders of any size with a trained model.

    erlrestore-restore --model=runs/memd --input=photo.png --output_dir=restored
    erlrestore-restore --model=savedmodels/erlnet --input=rainy/ --output_dir=restored \\
        [--tile=512] [--overlap=32] [--tile_batch=1] [--align=0] [--overwrite] [--self_ensemble] [--compare]
        [--work_size=auto|none|<pixels>]

``--model`` is a ``.keras`` file, a training run folder (``final.keras``
inside), a SavedModel version folder or a SavedModel model folder (the
largest version is used). With ``--backend=onnxruntime``, ``litert`` or
``openvino`` (``erlrestore.backends``) it is instead that runtime's model
as ``erlrestore-export --format=onnx|litert|openvino`` writes it: the
``model.onnx`` / ``model.tflite`` / ``model.xml`` file, its version folder,
or the model folder (largest version), run on the CPU by onnxruntime,
LiteRT or OpenVINO with the same tiling, without importing TensorFlow
(LiteRT needs ``ai-edge-litert`` for that, else it runs TensorFlow's
interpreter). A Keras model or SavedModel given with another backend (or
an exported model with ``--backend=tensorflow``) is an error, not
converted: export it first. ``--input`` is an image file or a folder (its
images, not recursive). Each restored image is written to ``--output_dir``
under the input's file name, in the input's format and bit depth (16-bit PNG
and TIFF stay 16-bit, JPEG is written with quality 95). Images larger than
``--tile`` are restored in overlapping tiles (see ``erlrestore.inference``).

``--self_ensemble`` averages the x8 geometric self-ensemble: the model
restores the 8 flips/rotations of each image, the outputs are transformed
back and averaged (8 times the model calls). With tiling, each transformed
image is tiled and restored whole, then the 8 restorations are averaged.

``--work_size`` is the working scale (``erlrestore.inference``): with
``auto`` (the default) and a shipped model whose card records the scale it
was trained at (``trained_short_side``: 321 for ``erlnet-derain`` and
``memd-derain``, trained on 481 x 321 BSDS500 photos), an image whose
shorter side is more than 1.5 times that is shrunk (area averaging) to it,
restored there, and the model's correction is upsampled and added to the
full-size image, so a large photo keeps its own detail and is restored at
the scale the model knows. ``auto`` does nothing for other models; ``none``
restores every image at its own scale; a number of pixels sets the working
shorter side for any model.

``--compare`` also writes, per image, a labelled strip input | restored to
``<output_dir>/compare/<input stem>.png`` (``erlrestore.pictures``); strips
wider than ``--compare_max_width`` (2400 px by default; 0: no limit) are
scaled down, the labels staying legible. Strips follow the output policy
below too (two inputs with one stem, ``a.png`` and ``a.jpg``, are refused
with ``--compare``).

Output files follow ``erlrestore.outputs``' policy, the same for every tool:
inputs are never overwritten (an ``--output_dir`` that holds an input image,
or would put an output onto an input file, is refused), two inputs that would
give one output are refused, and existing output files are refused (the
error names the first few) unless ``--overwrite`` is given. All of this is
checked before the model is loaded.

A file that cannot be restored (unreadable, a model error) does not stop the
others: at the end one ``failed: <path>: <reason>`` line per failure goes to
stderr and the tool exits 1. Otherwise the last stdout line is
``restored <N> images to <DIR>``.
"""

import sys

from absl import app, flags

from erlrestore.cli import (apply_max_image_pixels, define_max_image_pixels_flag, entry_point, fail, finish,
                            option_groups)

from erlrestore import inference, pictures
from erlrestore.data import image_files

FLAGS = flags.FLAGS


def define_flags():
    option_groups.define_model_flags()
    flags.DEFINE_string("input", None, "An image file or a folder of images to restore.")
    option_groups.define_output_flags(option_groups.NAMED_AS_INPUT, required=True)
    option_groups.define_tiling_flags(512, tile_batch=True, align=True)
    option_groups.define_self_ensemble_flag()
    option_groups.define_work_size_flag()
    option_groups.define_compare_flags("input | restored")
    define_max_image_pixels_flag()
    flags.mark_flag_as_required("input")


def work_size_flag(value):
    """The parsed ``--work_size`` (``"auto"``, None or pixels); app.UsageError listing the valid forms."""
    try:
        return inference.parse_work_size(value)
    except ValueError:
        raise app.UsageError(f"--work_size must be {inference.WORK_SIZE_FORMS}; got {value!r}") from None


def _check_flags():
    option_groups.check_tiling_flags(FLAGS.tile, FLAGS.overlap)
    if FLAGS.tile_batch < 1:
        raise app.UsageError(f"--tile_batch must be >= 1, got {FLAGS.tile_batch}")
    if FLAGS.align < 0:
        raise app.UsageError(f"--align must be >= 0 (0: automatic), got {FLAGS.align}")
    return work_size_flag(FLAGS.work_size)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    apply_max_image_pixels()
    work_size = _check_flags()
    output_dir = FLAGS.output_dir
    try:
        # Refuse bad inputs / outputs before the model is loaded.
        targets = inference.restore_targets(FLAGS.input, output_dir, overwrite=FLAGS.overwrite)
        strips = option_groups.compare_dir(output_dir) if FLAGS.compare else None
        if strips:
            pictures.strip_paths([source for source, _ in targets], strips, overwrite=FLAGS.overwrite,
                                 beside=[output_dir])
        restorer = inference.load_restorer(FLAGS.model, backend=FLAGS.backend)
        working = inference.resolve_work_size(work_size, restorer)
        if working is not None:
            print(f"working scale: images whose shorter side exceeds {inference.WORK_MARGIN * working:g} px are "
                  f"restored at {working} px and the correction brought back to full size")
        written, failures = inference.restore_paths(
            restorer,
            FLAGS.input,
            output_dir,
            tile=FLAGS.tile,
            overlap=FLAGS.overlap,
            align=FLAGS.align or None,
            tile_batch=FLAGS.tile_batch,
            overwrite=FLAGS.overwrite,
            self_ensemble=FLAGS.self_ensemble,
            compare_dir=strips,
            compare_max_width=FLAGS.compare_max_width,
            work_size=work_size,
        )
    except (image_files.DataError, ValueError) as error:
        return fail(error)
    if failures:
        for path, message in failures:
            print(f"failed: {path}: {message}", file=sys.stderr)
        print(
            f"error: {len(failures)} of {len(written) + len(failures)} images failed "
            f"(restored {len(written)} to {output_dir})",
            file=sys.stderr,
        )
        return 1
    if strips:
        print(f"comparison strips in {strips}")
    return finish(f"restored {len(written)} images to {output_dir}")


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
