"""Reading scalars back from the TensorBoard event files of a run.

``erlrestore-train`` logs each stage's scalars to
``<model_dir>/logs/stage<k>_<name>/train/`` and ``.../validation/`` (tags
``epoch_<name>``, step = the checkpoint interval's index;
:mod:`erlrestore.training.run`). :func:`read_event_scalars` reads one tag of
one such folder and :func:`stage_log_dirs` lists a run's folders in stage
order; ``erlrestore-reproduce``'s learning curves and
``tools.fit_loss_curve`` both read through them. :func:`sittings` tells
what each training process logged and for how long (``tools.ship_pretrained``'s
model cards).
"""

import glob
import os
import re

import numpy as np

from erlrestore.data.image_files import DataError

_STAGE_DIR = re.compile(r"^stage(\d+)_(.+)$")
_EVENT_FILES = "events.out.tfevents*"
_CREATED = re.compile(r"tfevents\.(\d+)\.")  # the writer's start time (seconds) in the file name


def _events(path):
    """The events of one file, read by TensorBoard's own loader (TF1 ``simple_value`` scalars arrive as tensors)."""
    from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=import-outside-toplevel

    return event_file_loader.EventFileLoader(path).Load()


def _load(path):
    try:
        return list(_events(path))
    except Exception as error:  # the loader raises protobuf and I/O errors of several types
        raise DataError(f"{path}: not a TensorBoard event file ({error})") from None


def _scalar(tensor, tag, path):
    from tensorboard.util import tensor_util  # pylint: disable=import-outside-toplevel

    try:
        values = np.asarray(tensor_util.make_ndarray(tensor), np.float64)
    except Exception as error:  # unsupported dtypes and malformed tensors
        raise DataError(f"{path}: summary {tag!r} is not a number ({error})") from None
    if values.size != 1:
        raise DataError(f"{path}: summary {tag!r} is not a scalar (it holds {values.size} values)")
    return float(values.reshape(-1)[0])


def read_event_scalars(log_dir, tag, missing_ok=False):
    """Reads scalar ``tag`` from the TensorBoard event files directly in ``log_dir``.

    Returns ``(steps, values)`` as float64 arrays sorted by step; when a step
    was logged more than once (a resumed run), the value written last counts.
    Handles TF2 tensor summaries (what Keras 3 writes) and TF1-style
    ``simple_value`` ones, read by TensorBoard's own event-file loader.
    Raises :class:`DataError` when there are no event files or the tag is
    missing (naming the tags found); with ``missing_ok`` those two cases
    return empty arrays instead. Unreadable files and non-scalar values of
    ``tag`` always raise.
    """
    paths = sorted(glob.glob(os.path.join(glob.escape(log_dir), _EVENT_FILES)))
    if not paths and not missing_ok:
        raise DataError(f"no TensorBoard event files ({_EVENT_FILES}) in {log_dir}")
    found = {}
    tags = set()
    for path in paths:
        for event in _load(path):
            for value in event.summary.value:
                tags.add(value.tag)
                if value.tag != tag or value.WhichOneof("value") != "tensor":
                    continue
                number = _scalar(value.tensor, tag, path)
                key = event.step
                if key not in found or event.wall_time >= found[key][0]:
                    found[key] = (event.wall_time, number)
    if not found and not missing_ok:
        listed = ", ".join(sorted(tags)) or "none"
        raise DataError(f"no scalar {tag!r} in the event files of {log_dir} (tags found: {listed})")
    steps = np.array(sorted(found), np.float64)
    return steps, np.array([found[int(k)][1] for k in steps], np.float64)


def stage_log_dirs(model_dir, part="train"):
    """``[(number, name, folder)]`` of a run's ``logs/stage<k>_<name>/<part>`` folders, by stage number.

    ``part`` is ``"train"`` or ``"validation"``; stages without that folder are left out.
    """
    logs = os.path.join(model_dir, "logs")
    stages = []
    if os.path.isdir(logs):
        for entry in os.listdir(logs):
            match = _STAGE_DIR.match(entry)
            folder = os.path.join(logs, entry, part)
            if match and os.path.isdir(folder):
                stages.append((int(match.group(1)), match.group(2), folder))
    return sorted(stages)


def sittings(model_dir, tag="epoch_loss"):
    """``[(stage name, steps, seconds)]``: one per event file of the run's ``train`` folders.

    A training process writes one file per stage it runs, so the files are
    its sittings. ``steps`` are those at which the file logged ``tag`` (the
    checkpoint intervals it finished); ``seconds`` run from the file's
    creation (the time in its name) to its last ``tag`` event. A file that
    logged no ``tag`` is left out.
    """
    found = []
    for _, name, folder in stage_log_dirs(model_dir):
        for path in sorted(glob.glob(os.path.join(glob.escape(folder), _EVENT_FILES))):
            created = _CREATED.search(os.path.basename(path))
            logged = [event for event in _load(path) if any(value.tag == tag for value in event.summary.value)]
            if created and logged:
                found.append((name, [event.step for event in logged],
                              max(event.wall_time for event in logged) - int(created.group(1))))
    return found
