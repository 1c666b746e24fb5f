"""A toy export format for the tests: ``--format=toy`` writes ``toy.json``; ``--backend=toy`` adds a constant.

It is what a new runtime provides, at its smallest: a loader that turns
the model file into a restorer and an exporter that writes a version folder
(:class:`erlrestore.backends.Backend`). The "model" is a JSON file holding
the constant its restorer adds to every pixel (then clips to [0, 1]).
Importing this module registers nothing; ``backends.register(BACKEND)`` does.
"""

import json
import os

import numpy as np

from erlrestore import backends

MARKER = "toy.json"
ADD = 0.25  # what the exported toy model adds to every pixel value in [0, 1]


class ToyRestorer:
    """A restorer (a callable on float32 ``[B, H, W, 3]`` batches in [0, 1]) adding the file's constant."""

    multiple = None  # no padding multiple: tiles keep the default alignment
    trained_short_side = None

    def __init__(self, path):
        self.source = path
        with open(path, encoding="utf-8") as file:
            self.add = float(json.load(file)["add"])

    def __call__(self, batch):
        return np.clip(np.asarray(batch, dtype=np.float32) + self.add, 0.0, 1.0)


def export_toy(model, base_dir, name=None, version=None):
    """Writes ``<base_dir>/<name>/<version>/toy.json`` (name: the model's stem; version: 1) and returns the folder."""
    name = name or os.path.splitext(os.path.basename(os.path.normpath(os.fspath(model))))[0]
    folder = os.path.join(base_dir, name, str(version or 1))
    os.makedirs(folder)  # an existing version is refused (FileExistsError), as the real exporters do
    with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as file:
        json.dump({"add": ADD, "source": os.fspath(model)}, file)
    return folder


BACKEND = backends.Backend(
    name="toy",
    label="Toy",
    export_format="toy",
    base_dir="toy_models",
    marker=MARKER,
    extensions=(".json",),
    loader="toy_backend:ToyRestorer",
    exporter="toy_backend:export_toy",
    extra=None,
    summary="toy models from erlrestore-export --format=toy",
)
