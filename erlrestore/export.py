"""Exporting restoration models as SavedModels for TensorFlow Serving.

``export_savedmodel`` writes a trained restoration network (a ``.keras``
file, a training run folder holding ``final.keras``, or an in-memory
``keras.Model``) in TF Serving's layout::

    <base_dir>/<name>/<version>/saved_model.pb
                               /variables/...

with two signatures, loadable by plain ``tf.saved_model.load`` (no erlrestore
import needed, the graph holds only standard TensorFlow ops):

``serving_default``
    input ``images``: float32 ``[None, None, None, 3]`` RGB in [0, 1], any
    batch size and any height/width (the models pad to their multiple and crop
    back internally); output ``restored``: float32, same shape, clipped to
    [0, 1].

``restore_bytes``
    input ``image_bytes``: string ``[None]``, each an encoded PNG, JPEG, BMP,
    GIF (first frame) or WebP image; the images of one batch may differ in
    size. Output ``restored_bytes``: string ``[None]``, each an 8-bit RGB PNG
    of its input's size. Because both names end in ``_bytes``, TF Serving's
    REST API carries them as ``{"b64": "..."}``.

Choices where the spec is silent:

* Decoding in ``restore_bytes``: PNGs (recognised by their signature) are
  decoded at 16 bits and divided by 65535, so 16-bit PNGs keep their
  precision and 8-bit PNGs give exactly ``k / 255``; other formats are
  decoded at 8 bits and divided by 255. This matches
  ``erlrestore.data.io.read_image`` value for value. Grey images are
  replicated to three channels and alpha is dropped (``channels=3``).
* Encoding: the clipped result is scaled to 255 and rounded half to even in
  float64, exactly as ``erlrestore.data.io.write_image`` (``np.rint``) and
  evaluation's ``quantize`` do, so a PNG from ``restore_bytes`` equals the
  8-bit rounding of ``serving_default``'s output on the decoded image.
* Only the restoration network is exported: the ``.keras`` model is that
  network (a GAN's discriminator or ERL-Net's clean-to-clean branch are kept
  in other files and are never needed for inference).
* Versions are positive integers; without ``version`` the next one after the
  largest existing is used. An existing version is never overwritten. The
  SavedModel is written to ``<base_dir>/<name>/.tmp-<version>-<pid>`` and then
  renamed into place, so a server watching the folder never sees a
  half-written version (TF Serving ignores folder names that are not
  integers), and a failed export leaves nothing behind.
* Model names must be a single folder name of letters, digits, ``.``, ``_``
  and ``-`` not starting with ``.`` (they appear in TF Serving's URLs).
* TensorFlow Lite export is not provided: with TF 2.21 a converted model of
  these networks kept unfrozen resource variables and produced NaN in the
  (deprecated) ``tf.lite.Interpreter``.
"""

import os
import re
import shutil

import keras
import tensorflow as tf

from erlrestore import evaluation, pretrained
from erlrestore.data import io

SERVING_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "restore_bytes"
IMAGES_KEY = "images"
RESTORED_KEY = "restored"
IMAGE_BYTES_KEY = "image_bytes"
RESTORED_BYTES_KEY = "restored_bytes"

RUN_MODEL_FILE = "final.keras"  # what erlrestore-train writes in its model folder

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_VERSION_PATTERN = re.compile(r"[0-9]+")


def list_versions(base_dir, name):
    """Sorted integer versions present under ``<base_dir>/<name>`` ([] when there is none).

    Every sub-folder whose name is a non-negative decimal integer counts (as for
    TF Serving), whether or not it holds a complete SavedModel.
    """
    folder = os.path.join(os.fspath(base_dir), name)
    if not os.path.isdir(folder):
        return []
    return sorted(
        int(entry.name)
        for entry in os.scandir(folder)
        if entry.is_dir() and _VERSION_PATTERN.fullmatch(entry.name)
    )


def _resolve_model(model_or_path):
    """(keras.Model, default name) for a model, a ``.keras`` file or a run folder."""
    if isinstance(model_or_path, keras.Model):
        return model_or_path, model_or_path.name
    if not isinstance(model_or_path, (str, os.PathLike)):
        raise TypeError(
            "model_or_path must be a keras.Model, a .keras file or a training run folder, "
            f"got {type(model_or_path).__name__}"
        )
    if pretrained.is_pretrained(model_or_path):
        return pretrained.load(model_or_path), pretrained.name_of(model_or_path)
    path = os.fspath(model_or_path)
    if os.path.isdir(path):
        model_file = os.path.join(path, RUN_MODEL_FILE)
        if not os.path.isfile(model_file):
            raise io.DataError(f"run folder {path} has no {RUN_MODEL_FILE} (train the model first)")
        return evaluation.load_model(model_file), os.path.basename(os.path.normpath(os.path.abspath(path)))
    model = evaluation.load_model(path)  # DataError naming the file when missing or unreadable
    return model, os.path.splitext(os.path.basename(path))[0]


def _check_name(name, explicit):
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        hint = "" if explicit else " (derived from the model; pass name= to choose one)"
        raise ValueError(
            f"model name {name!r} is not usable as a folder name{hint}: use letters, digits, "
            "'.', '_' and '-', not starting with '.'"
        )


def _check_version(version):
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"version must be a positive integer, got {version!r}")


def _decode(image_bytes):
    """One encoded image -> float32 ``H x W x 3`` in [0, 1] (see the module docstring)."""
    is_png = tf.equal(tf.strings.substr(image_bytes, 0, len(_PNG_SIGNATURE)), _PNG_SIGNATURE)

    def png():
        pixels = tf.io.decode_png(image_bytes, channels=3, dtype=tf.uint16)
        return tf.cast(pixels, tf.float32) / 65535.0

    def other():
        pixels = tf.io.decode_image(image_bytes, channels=3, dtype=tf.uint8, expand_animations=False)
        return tf.cast(pixels, tf.float32) / 255.0

    image = tf.cond(is_png, png, other)
    image.set_shape([None, None, 3])
    return image


def _to_png(image):
    """float32 ``H x W x 3`` -> 8-bit PNG bytes (clip, x255, round half to even in float64)."""
    levels = tf.round(tf.cast(tf.clip_by_value(image, 0.0, 1.0), tf.float64) * 255.0)
    return tf.io.encode_png(tf.cast(levels, tf.uint8))


def build_archive(model):
    """A ``keras.export.ExportArchive`` of ``model`` with both signatures (not yet written)."""

    def restore(images):
        restored = tf.cast(model(images, training=False), tf.float32)
        return tf.clip_by_value(restored, 0.0, 1.0)

    # The python argument names become the signatures' input keys.
    def serving_default(images):
        return {RESTORED_KEY: restore(images)}

    def restore_bytes(image_bytes):
        def one(data):
            return _to_png(restore(_decode(data)[tf.newaxis])[0])

        encoded = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {RESTORED_BYTES_KEY: encoded}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(  # the first endpoint is also the archive's default
        SERVING_SIGNATURE,
        serving_default,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name=IMAGES_KEY)],
    )
    archive.add_endpoint(
        BYTES_SIGNATURE,
        restore_bytes,
        input_signature=[tf.TensorSpec([None], tf.string, name=IMAGE_BYTES_KEY)],
    )
    return archive


def export_savedmodel(model_or_path, base_dir="savedmodels", name=None, version=None):
    """Writes ``model_or_path`` as ``<base_dir>/<name>/<version>/`` for TF Serving.

    Args:
      model_or_path: a ``keras.Model``, a ``.keras`` file, or a training run
        folder holding ``final.keras``.
      base_dir: TF Serving's model base folder (created when missing).
      name: the model's folder name; defaults to the ``.keras`` file's stem,
        the run folder's name, or ``model.name``.
      version: a positive integer; defaults to the largest existing version + 1
        (1 for a new model). An existing version is never overwritten.

    Returns:
      The path of the written version folder.

    Raises:
      DataError: a missing or unreadable model file, or a run folder without
        ``final.keras``.
      ValueError: a bad name or version.
      FileExistsError: the version exists already.
    """
    explicit_name = name is not None
    if version is not None:
        _check_version(version)
    if explicit_name:
        _check_name(name, explicit=True)
    model, default_name = _resolve_model(model_or_path)
    if not explicit_name:
        name = default_name
        _check_name(name, explicit=False)

    base_dir = os.fspath(base_dir)
    model_dir = os.path.join(base_dir, name)
    existing = list_versions(base_dir, name)
    if version is None:
        version = (existing[-1] + 1) if existing else 1
    destination = os.path.join(model_dir, str(version))

    def refuse_existing():
        if os.path.lexists(destination):
            next_version = max(list_versions(base_dir, name) + [version]) + 1
            raise FileExistsError(
                f"{destination} already exists; an exported version is never overwritten "
                f"(choose another version, e.g. {next_version}, or omit it to use the next one)"
            )

    refuse_existing()
    archive = build_archive(model)  # traces both signatures before anything touches the disk

    created_model_dir = not os.path.isdir(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    temp = os.path.join(model_dir, f".tmp-{version}-{os.getpid()}")
    try:
        if os.path.lexists(temp):  # left by a killed export that had this process id
            shutil.rmtree(temp)
        archive.write_out(temp, verbose=False)
        refuse_existing()  # another export may have taken this version meanwhile
        os.rename(temp, destination)
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        if created_model_dir:
            try:
                os.rmdir(model_dir)  # only if still empty
            except OSError:
                pass
        raise
    return destination
