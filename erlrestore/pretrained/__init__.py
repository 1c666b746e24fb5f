"""Trained models shipped inside the package, by name.

    from erlrestore import pretrained
    pretrained.list()                      # names of the shipped models
    model = pretrained.load("erlnet-derain")  # a float32 keras.Model, images in [0, 1]

Every tool that takes a model also takes ``--model=pretrained:<name>``
(evaluate, restore, export and, through export, serve).

Storage: each model is two files in this folder, ``<name>.json`` (the
Keras model config, the model card and the SHA-256 of the weights) and
``<name>.npz`` (the weights, stored as float16 to halve the size; loading
casts them back to float32). :func:`save` writes both from a trained
model; the README of ``docs/PRETRAINED.md`` says how each shipped model was
trained and scored. Our choice: a config plus plain arrays rather than a
``.keras`` archive, so the package data is small, diff-able in its
metadata, and loads without pickle.

Names are lower-case words joined by ``-`` (``erlnet-derain``); an unknown
name is a :class:`~erlrestore.data.image_files.DataError` listing the known ones.
"""

import hashlib
import json
import os
import re

import numpy as np

PREFIX = "pretrained:"
PACKAGE_FOLDER = os.path.dirname(os.path.abspath(__file__))
# Another folder of models in the same format (a lab's own model zoo, tests) replaces the package's.
FOLDER_VARIABLE = "ERLRESTORE_PRETRAINED_DIR"


def models_folder():
    """Where models are looked up: ``$ERLRESTORE_PRETRAINED_DIR`` if set, else this package folder."""
    return os.environ.get(FOLDER_VARIABLE) or PACKAGE_FOLDER
_NAME = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _error(message):
    from erlrestore.data import image_files

    return image_files.DataError(message)


def list(folder=None):  # noqa: A001 - the documented name
    """Sorted names of the models in ``folder`` (default: :func:`models_folder`)."""
    folder = folder or models_folder()
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return sorted(name[: -len(".json")] for name in entries
                  if name.endswith(".json") and os.path.isfile(os.path.join(folder, name[: -len(".json")] + ".npz")))


def is_pretrained(spec):
    """Whether a ``--model`` value names a shipped model (``pretrained:<name>``)."""
    return isinstance(spec, str) and spec.startswith(PREFIX)


def name_of(spec):
    """``<name>`` of ``pretrained:<name>``."""
    return spec[len(PREFIX):] if is_pretrained(spec) else spec


def _paths(name, folder):
    folder = folder or models_folder()
    known = list(folder)
    if not isinstance(name, str) or name not in known:
        choices = ", ".join(known) if known else "none are shipped in this version"
        raise _error(f"unknown pretrained model {name!r}; known: {choices}")
    return os.path.join(folder, name + ".json"), os.path.join(folder, name + ".npz")


def info(name, folder=None):
    """The model card of ``name`` (a dict: description, training, scores...)."""
    config_path, _ = _paths(name, folder)
    with open(config_path, encoding="utf-8") as f:
        return json.load(f)["card"]


TASKS = ("derain", "dehaze", "denoise")


def task(name, folder=None):
    """What ``name`` restores: one of :data:`TASKS` (its card's ``task``)."""
    return info(name_of(name), folder)["task"]


# The card field that records the shorter image side the model was trained on (optional; pixels).
TRAINED_SHORT_SIDE = "trained_short_side"


def trained_short_side(name, folder=None):
    """The shorter image side, in pixels, that ``name``'s card says the model was trained on, or None.

    An optional card field (:data:`TRAINED_SHORT_SIDE`), written by
    ``tools.ship_pretrained --trained_short_side``: e.g. 321 for models
    trained on BSDS500 photos (481 x 321). Restoring with ``work_size=auto``
    (:mod:`erlrestore.inference`) restores much larger photos at this scale.
    A card without it says nothing about the scale (None: ``auto`` then
    means ``none``). Raises DataError for a value that is not a positive
    whole number, naming the model.
    """
    name = name_of(name)
    value = info(name, folder).get(TRAINED_SHORT_SIDE)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(f"pretrained model {name}: its card's {TRAINED_SHORT_SIDE} must be a positive whole number "
                     f"of pixels, got {value!r}")
    return value


def catalogue(folder=None):
    """``name (task)`` of every shipped model, comma-separated: for ``--help`` texts and errors."""
    names = list(folder)
    return ", ".join(f"{name} ({task(name, folder)})" for name in names) if names else "none"


def _digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def load(name, folder=None):
    """The shipped model ``name`` (or ``pretrained:<name>``) as a float32 ``keras.Model``.

    Calling it gives the raw network output, which may stray outside [0, 1].
    To restore an image array, use ``erlrestore.restore(image,
    model="pretrained:<name>")`` (:mod:`erlrestore.api`): clipped to [0, 1],
    tiled when large, in the image's own pixel type, the model loaded once.

    Raises DataError for an unknown name or damaged files (checksum).
    """
    import keras

    import erlrestore.layers  # noqa: F401 - registers the custom layers for deserialisation

    name = name_of(name)
    config_path, weights_path = _paths(name, folder)
    with open(config_path, encoding="utf-8") as f:
        record = json.load(f)
    if _digest(weights_path) != record["weights_sha256"]:
        raise _error(f"pretrained model {name}: {weights_path} does not match its checksum (damaged file)")
    model = keras.saving.deserialize_keras_object(record["model"])
    with np.load(weights_path, allow_pickle=False) as stored:
        weights = [stored[f"w{i:04d}"].astype(np.float32) for i in range(len(stored.files))]
    try:
        model.set_weights(weights)
    except ValueError as error:
        raise _error(f"pretrained model {name}: weights do not fit the architecture: {error}") from error
    return model


def save_card(name, card, folder=PACKAGE_FOLDER):
    """Replaces the model card of the shipped model ``name``; the architecture and the weights file stay as they are.

    Returns the path written. Raises DataError for an unknown name,
    ValueError for a card without a task (as :func:`save`).
    """
    if card.get("task") not in TASKS:
        raise ValueError(f"a model card needs a task, one of {', '.join(TASKS)}; got {card.get('task')!r}")
    config_path, _ = _paths(name_of(name), folder)
    with open(config_path, encoding="utf-8") as f:
        record = json.load(f)
    record["card"] = card
    from erlrestore.data import image_files

    image_files.write_bytes_atomically(config_path, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return config_path


def save(model, name, card, folder=PACKAGE_FOLDER):
    """Writes ``model`` as the shipped model ``name`` (float16 weights) with its model card; returns the paths.

    The card must say the model's ``task`` (one of :data:`TASKS`).
    """
    import keras

    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"pretrained model names are lower-case words joined by '-', got {name!r}")
    if card.get("task") not in TASKS:
        raise ValueError(f"a model card needs a task, one of {', '.join(TASKS)}; got {card.get('task')!r}")
    os.makedirs(folder, exist_ok=True)
    config_path = os.path.join(folder, name + ".json")
    weights_path = os.path.join(folder, name + ".npz")
    arrays = {f"w{i:04d}": np.asarray(w, dtype=np.float16) for i, w in enumerate(model.get_weights())}
    tmp = weights_path + ".tmp.npz"
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, weights_path)
    record = {"model": keras.saving.serialize_keras_object(model), "card": card,
              "weights_sha256": _digest(weights_path)}
    from erlrestore.data import image_files

    image_files.write_bytes_atomically(config_path, json.dumps(record, indent=1, sort_keys=True).encode("utf-8"))
    return config_path, weights_path
