"""The layout of a training run's folder (``erlrestore-train --model_dir``), named in one place.

A run folder holds:

* ``final.keras``: the restoration network once every stage is done (its
  presence means the run finished), and the auxiliary networks beside it
  (``c2c.keras``, ``discriminator.keras``);
* ``best.keras`` and ``best.json``: the network of the best validation
  Y-PSNR so far and that score's record (runs with a validation set);
* ``run_config.json``: the settings that make the run what it is (a restart
  with other ones is refused);
* ``checkpoints/``: the checkpoints a resumed run continues from;
* ``logs/stage<k>_<name>/{train,validation}/``: each stage's TensorBoard
  scalars (``k`` counts from 1), and ``logs/samples/``: validation images;
* ``train.log`` and ``evaluate.log``: what the experiment runner
  (:mod:`erlrestore.runner`) saw the training and the evaluations print.

:class:`RunFolder` gives every path; the file names are the module's
constants, for the code that writes them.
"""

import dataclasses
import json
import os
import re

FINAL = "final.keras"
BEST = "best.keras"
BEST_RECORD = "best.json"
CONFIG = "run_config.json"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
SAMPLES = "samples"
TRAIN_LOG = "train.log"
EVALUATE_LOG = "evaluate.log"
STAGE_LOG = re.compile(r"^stage(\d+)_(.+)$")


def stage_log_name(number, name):
    """``stage<k>_<name>``: the log folder of stage ``number`` (from 1) called ``name``."""
    return f"stage{int(number)}_{name}"


def parse_stage_log_name(folder_name):
    """``(k, name)`` of a ``stage<k>_<name>`` folder name, or None for any other name."""
    match = STAGE_LOG.match(folder_name)
    return (int(match.group(1)), match.group(2)) if match else None


class _Entry:
    """A path of the run folder as a read-only attribute of :class:`RunFolder`: ``<folder>/<name>``."""

    def __init__(self, name, doc):
        self.name = name
        self.__doc__ = f"``{name}``: {doc}"

    def __get__(self, folder, owner=None):
        return self if folder is None else os.path.join(folder.path, self.name)


@dataclasses.dataclass(frozen=True)
class RunFolder:
    """The paths of one run folder, ``path`` (nothing is created or read until asked)."""

    path: str

    final = _Entry(FINAL, "the finished run's restoration network.")
    best = _Entry(BEST, "the restoration network of the best validation score.")
    best_record = _Entry(BEST_RECORD, "the best validation score, its stage and interval.")
    config = _Entry(CONFIG, "the run's identity settings.")
    checkpoints = _Entry(CHECKPOINTS, "where a resumed run continues from.")
    logs = _Entry(LOGS, "the TensorBoard folders.")
    train_log = _Entry(TRAIN_LOG, "the output of the runner's trainings of this run.")
    evaluate_log = _Entry(EVALUATE_LOG, "the output of the runner's evaluations of this run.")

    def stage_logs(self, number, name):
        """``logs/stage<k>_<name>/``: the TensorBoard folder of one stage."""
        return os.path.join(self.logs, stage_log_name(number, name))

    @property
    def finished(self):
        """Whether every stage is done (``final.keras`` exists)."""
        return os.path.exists(self.final)

    def read_config(self):
        """``run_config.json`` as a dict; ``{}`` when the run has none (not started) or it cannot be read."""
        return read_json(self.config, {})


def read_json(path, default):
    """The JSON value in ``path``, or ``default`` when the file is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default
