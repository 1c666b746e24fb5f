"""What an erlrestore SavedModel promises: signature names, tensor keys, version folders.

:mod:`erlrestore.export` writes SavedModels (and ONNX models) in TF Serving's
layout ``<base_dir>/<name>/<version>/``; :mod:`erlrestore.inference` and
:mod:`erlrestore.serving` read them. They all take the names below from here,
so the writer and the readers cannot drift apart.

``serving_default`` (:data:`SERVING_SIGNATURE`) takes :data:`INPUT_KEY`, a
float32 ``[N, H, W, 3]`` batch in [0, 1], and returns :data:`OUTPUT_KEY`, the
restored batch of the same shape clipped to [0, 1]. ``restore_bytes``
(:data:`BYTES_SIGNATURE`) takes :data:`BYTES_INPUT_KEY`, a string ``[N]`` of
encoded images, and returns :data:`BYTES_OUTPUT_KEY`, a string ``[N]`` of
8-bit PNGs. A SavedModel version folder holds :data:`SAVED_MODEL_FILE`; an
ONNX version folder holds :data:`ONNX_FILE`, whose graph has the same input
and output names as ``serving_default`` and whose metadata records the
model's padding multiple under :data:`ONNX_MULTIPLE_KEY`. A LiteRT version
folder holds :data:`LITERT_FILE` (signature ``serving_default``, the same
names, the multiple in the flatbuffer's metadata under the same key); an
OpenVINO one :data:`OPENVINO_FILE` and :data:`OPENVINO_WEIGHTS_FILE` (the same
names, the multiple in the ``rt_info`` section :data:`OPENVINO_RT_INFO`).

Version folders (choice where TF Serving's documentation is silent on
spelling): a version is a sub-folder whose name consists of ASCII digits
only (``"7"``, ``"007"``). Python's ``str.isdigit`` also accepts digits of
other scripts and superscripts such as ``"²"``, for which ``int()`` fails or
which TF Serving would not load, so such folders are ignored, as are files
and names with any other character (``.tmp-3-123``, written by an export in
progress).
"""

import os

SERVING_SIGNATURE = "serving_default"
BYTES_SIGNATURE = "restore_bytes"
INPUT_KEY = "images"
OUTPUT_KEY = "restored"
BYTES_INPUT_KEY = "image_bytes"
BYTES_OUTPUT_KEY = "restored_bytes"

SAVED_MODEL_FILE = "saved_model.pb"  # inside a SavedModel version folder
ONNX_FILE = "model.onnx"  # inside an ONNX version folder
ONNX_MULTIPLE_KEY = "erlrestore.multiple"  # ONNX metadata: the model's padding multiple (tile alignment)
LITERT_FILE = "model.tflite"  # inside a LiteRT version folder; metadata under the ONNX keys
OPENVINO_FILE = "model.xml"  # inside an OpenVINO version folder, beside OPENVINO_WEIGHTS_FILE
OPENVINO_WEIGHTS_FILE = "model.bin"
OPENVINO_RT_INFO = "erlrestore"  # OpenVINO rt_info section: "multiple", "model", "folded_batch_norms"


def is_version_name(name):
    """True when ``name`` is a version folder's name: one or more ASCII digits."""
    return name.isascii() and name.isdigit()


def version_entries(base_dir, marker=None):
    """Sorted ``(int version, folder name)`` of each version folder in ``base_dir`` (holding ``marker`` if given)."""
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        return []
    entries = []
    for entry in os.scandir(base_dir):
        if not is_version_name(entry.name) or not entry.is_dir():
            continue
        if marker is not None and not os.path.isfile(os.path.join(entry.path, marker)):
            continue
        entries.append((int(entry.name), entry.name))
    return sorted(entries)


def list_versions(base_dir, marker=None):
    """Sorted integer versions of the version folders in ``base_dir`` ([] when none or no such folder).

    Every sub-folder whose name is entirely ASCII digits counts (as for TF
    Serving), whether or not it holds a complete model; with ``marker`` (a
    file name such as ``"saved_model.pb"``), only folders holding that file.
    Two spellings of one number (``"7"`` and ``"007"``) give it twice.
    """
    return [version for version, _ in version_entries(base_dir, marker)]


def latest_version(base_dir, marker=None):
    """The largest version in ``base_dir`` (see :func:`list_versions`).

    Raises:
      FileNotFoundError: ``base_dir`` is not a folder, or it has no version
        folder (holding ``marker``, when given).
    """
    return _latest_entry(base_dir, marker)[0]


def latest_version_folder(base_dir, marker=None):
    """The path of the largest version folder in ``base_dir``, in the folder's own spelling (e.g. ``007``).

    Raises FileNotFoundError as :func:`latest_version` does.
    """
    return os.path.join(os.fspath(base_dir), _latest_entry(base_dir, marker)[1])


def _latest_entry(base_dir, marker):
    base_dir = os.fspath(base_dir)
    if not os.path.isdir(base_dir):
        raise FileNotFoundError(f"{base_dir} is not a folder, so it holds no model versions")
    entries = version_entries(base_dir, marker)
    if not entries:
        holding = f" holding {marker}" if marker else ""
        raise FileNotFoundError(
            f"{base_dir} has no version folder{holding} (versions are sub-folders named by ASCII digits, e.g. 1)"
        )
    return entries[-1]
