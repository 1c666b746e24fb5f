"""The committed records of ``erlrestore-reproduce``: one JSON file per table row and seed.

``results/<table>/<row>-seed<k>.json`` (the repository's ``results/``
folder, committed; run folders stay under ``--output_dir``, out of git)
holds everything needed to judge a row without its run folder:

* ``commit``: the git commit the run started training at and whether the
  working tree had uncommitted changes then (each test set's
  ``scored_at`` says the same of its scoring), and the ``machine``;
* ``settings``: the flag lines of the row's paper flagfile and the scale
  overlay (comments dropped, nested flagfiles expanded) and the run's own
  ``run_config.json``;
* ``seed``, ``scale``, the training ``data`` (its flags, each folder named
  relative to the data root with its image count), ``precision`` (asked
  for and what the run resolved it to), ``budget`` (``each``/``split``),
  ``steps``, ``train_seconds`` (wall time, summed over resumed sittings),
  the validation ``curve``;
* ``test_sets``: per test set its folder, image count, the means
  ``psnr_mean``/``ssim_mean`` and per-image ``psnr``/``ssim`` (Y channel)
  by image ``name``; a metric registered with
  :func:`erlrestore.metrics.register_metric` when the set was scored is
  there too, by its name (``<name>_mean`` and ``<name>`` per image; read
  with :func:`per_image_scores`).

:func:`run_key` is a run's identity: the seed, the settings and the
training data (flags and the listing of every folder they name). Run
folders are named by it, so a rerun with another seed or other data trains
a new run instead of reusing an old one.
"""

import hashlib
import json
import os
import re
import subprocess

import numpy as np

SCHEMA = 1
RECORD_PATTERN = re.compile(r"^(?P<row>.+)-seed(?P<seed>\d+)\.json$")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
DATA_ROOT_NAME = "$ERLRESTORE_DATA_ROOT"


def repository_root():
    """The checkout this package was installed from (``pip install -e``)."""
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_records_dir():
    """``results/`` of the checkout: the committed records."""
    return os.path.join(repository_root(), "results")


def git_state(root=None):
    """{"hash": commit or None, "dirty": uncommitted changes to tracked files (bool) or None} of ``root``."""
    root = root or repository_root()
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=60, check=False)
        if head.returncode != 0:
            return {"hash": None, "dirty": None}
        status = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.SubprocessError):
        return {"hash": None, "dirty": None}
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return {"hash": head.stdout.strip(), "dirty": dirty}


def flag_lines(path, root=None):
    """The flags of a flagfile, one per line, comments and blank lines dropped, nested ``--flagfile`` expanded.

    A nested flagfile is looked for as written, then relative to ``root``
    (the checkout; the paper flagfiles name each other as ``flags/x.flags``).
    """
    root = root or repository_root()
    lines = []
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("--flagfile="):
                nested = line.split("=", 1)[1]
                if not os.path.exists(nested):
                    nested = os.path.join(root, nested)
                lines += flag_lines(nested, root)
            else:
                lines.append(line)
    return lines


def last_flag(lines, name, default=None):
    """The value the last ``--name=value`` of ``lines`` gives (absl: the last one wins)."""
    value = default
    for line in lines:
        if line.startswith(f"--{name}="):
            value = line.split("=", 1)[1]
    return value


def _images_under(folder):
    found = []
    for parent, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                found.append(os.path.join(parent, name))
    return found


def folder_listing_digest(folder):
    """(image count, sha256 of the images' relative paths and sizes) of ``folder``, sub-folders included."""
    digest = hashlib.sha256()
    images = _images_under(folder)
    for path in images:
        digest.update(f"{os.path.relpath(path, folder)}\0{os.path.getsize(path)}\n".encode("utf-8"))
    return len(images), digest.hexdigest()


def local_path(shown, data_root=""):
    """The inverse of :func:`display_path` for a record's folder: ``$ERLRESTORE_DATA_ROOT/...`` under
    ``data_root`` on this machine (ValueError without one), anything else as written."""
    if shown == DATA_ROOT_NAME or shown.startswith(DATA_ROOT_NAME + "/"):
        if not data_root:
            raise ValueError(f"the record's test set is {shown}: pass --data_root")
        return os.path.join(data_root, shown[len(DATA_ROOT_NAME) + 1:])
    return shown


def display_path(path, data_root=""):
    """``path`` for a committed record: under the data root as ``$ERLRESTORE_DATA_ROOT/...``, else relative
    paths as given and absolute ones as ``.../<parent>/<name>`` (no machine paths in git)."""
    if data_root:
        real, root = os.path.realpath(path), os.path.realpath(data_root)
        if real == root or real.startswith(root + os.sep):
            rel = os.path.relpath(real, root)
            return DATA_ROOT_NAME if rel == "." else f"{DATA_ROOT_NAME}/{rel}"
    if not os.path.isabs(path):
        return path
    parts = os.path.normpath(path).split(os.sep)
    return ".../" + "/".join(p for p in parts[-2:] if p)


def _flag_path(flag):
    """(name, value) of ``--name=value`` when value names an existing file or folder, else None."""
    if not flag.startswith("--") or "=" not in flag:
        return None
    name, value = flag[2:].split("=", 1)
    if value and os.path.exists(value):
        return name, value
    return None


def describe_data(data_flags, data_root=""):
    """The training data of a run for its record: flags (paths shown by :func:`display_path`) and, for
    every flag that names a folder, that folder's name and image count."""
    shown, folders = [], {}
    for flag in data_flags:
        named = _flag_path(flag)
        if named is None:
            shown.append(flag)
            continue
        name, value = named
        shown.append(f"--{name}={display_path(value, data_root)}")
        if os.path.isdir(value):
            count, _ = folder_listing_digest(value)
            folders[name] = {"name": display_path(value, data_root), "images": count}
    return {"flags": shown, "folders": folders}


def training_data_flags(data_flags):
    """The flags that decide what is trained on (validation flags only draw the learning curve)."""
    return [f for f in data_flags if not f.startswith(("--val_", "--noval_"))]


def run_key(seed, settings_lines, data_flags):
    """``seed<k>-<12 hex>``: a run's identity from its seed, settings and training data.

    The digest covers the flag lines (row and overlay), the training-data
    flags, and the contents of every file or folder they name (a folder's
    listing of relative names and sizes, a file's sha256) but not where it
    lies: the same data under another path (a fresh clone, another
    machine, a moved data root) keeps its runs and the committed records'
    run folders. Validation flags are left out (they do not change the
    model).
    """
    identity = {"seed": int(seed), "settings": list(settings_lines), "data": []}
    for flag in training_data_flags(data_flags):
        named = _flag_path(flag)
        if named is None:
            identity["data"].append(flag)
            continue
        name, value = named
        entry = {"flag": name}
        if os.path.isdir(value):
            entry["images"], entry["listing"] = folder_listing_digest(value)
        else:
            with open(value, "rb") as f:
                entry["sha256"] = hashlib.sha256(f.read()).hexdigest()
        identity["data"].append(entry)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()
    return f"seed{int(seed)}-{digest[:12]}"


def test_set_key(input_dir, target_dir, eval_flags):
    """A test set's identity for reusing scores: its folders' listings and the evaluation flags."""
    identity = {"flags": list(eval_flags), "folders": []}
    for folder in (input_dir, target_dir):
        if folder:
            identity["folders"].append([os.path.realpath(folder), *folder_listing_digest(folder)])
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:12]


_PRECISION_LINE = re.compile(r"precision (\S+), XLA")


def precision_from_log(log_path):
    """The precision the training run resolved (from its "training ... precision X, XLA ..." line), or None."""
    found = None
    try:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            for line in f:
                match = _PRECISION_LINE.search(line)
                if match:
                    found = match.group(1)
    except OSError:
        return None
    return found


def record_path(records_dir, table_key, row_id, seed):
    return os.path.join(records_dir, table_key, f"{row_id}-seed{int(seed)}.json")


def write_record(path, record):
    from erlrestore.data import image_files

    text = json.dumps(record, indent=1, sort_keys=True) + "\n"
    image_files.write_bytes_atomically(path, text.encode("utf-8"))


def named_records(folder, pattern, identity):
    """``[(match, record), ...]`` of the JSON files directly in ``folder`` whose names ``pattern`` matches,
    sorted by name ([] when there is no such folder).

    ``identity(match)`` gives ``{field: value}`` that the record must hold
    (what its name says it is); a record that disagrees is a ValueError (a
    renamed or hand-edited record), which names the file.
    """
    found = []
    if not os.path.isdir(folder):
        return found
    for name in sorted(os.listdir(folder)):
        match = pattern.match(name)
        if not match:
            continue
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
        expected = identity(match)
        if {field: record.get(field) for field in expected} != expected:
            raise ValueError(f"{path}: its {', '.join(expected)} do not match its name")
        found.append((match, record))
    return found


def load_records(records_dir):
    """{table key: [record, ...]} of every ``<table>/<row>-seed<k>.json`` under ``records_dir``.

    Raises ValueError for a file whose name and contents disagree (a
    renamed or hand-edited record).
    """
    found = {}
    if not os.path.isdir(records_dir):
        return found
    for table_key in sorted(os.listdir(records_dir)):
        for _, record in named_records(
                os.path.join(records_dir, table_key), RECORD_PATTERN,
                lambda m, key=table_key: {"table": key, "row": m.group("row"), "seed": int(m.group("seed"))}):
            found.setdefault(table_key, []).append(record)
    return found


def set_means(record, test_set):
    """``(psnr, ssim)``: the means over the images of one record's test set, from its per-image scores."""
    images = record["test_sets"][test_set]["images"]
    return (float(np.mean([i["psnr"] for i in images])), float(np.mean([i["ssim"] for i in images])))


def per_image_scores(record, test_set, metric="psnr"):
    """{image name: score} of ``metric`` (``psnr``, ``ssim`` or a registered one) in one record on one
    test set (None when the record has no such set; KeyError when its images lack the metric)."""
    scores = record.get("test_sets", {}).get(test_set)
    if scores is None:
        return None
    return {image["name"]: image[metric] for image in scores["images"]}


def per_image_psnr(record, test_set):
    """{image name: psnr} of one record on one test set (None when the record has no such set)."""
    return per_image_scores(record, test_set, "psnr")


def protocol(record):
    """What must be equal for two records to be compared: scale, training data, precision, budget."""
    data = record.get("data", {})
    folders = tuple(sorted((name, folder.get("name"), folder.get("images"))
                           for name, folder in data.get("folders", {}).items() if not name.startswith("val_")))
    return (
        record.get("scale"),
        tuple(training_data_flags(data.get("flags", []))),
        folders,
        record.get("precision", {}).get("resolved") or record.get("precision", {}).get("requested"),
        record.get("budget"),
    )
