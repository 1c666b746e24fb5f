"""The papers' tables as data, and the runner that regenerates them.

``erlrestore-reproduce --table=<name> --scale=<scale> --seeds=0,1,2``
(``erlrestore.cli.reproduce``) trains every row of a table once per seed
through the ordinary training command, scores each trained model on named
test sets with the ordinary evaluation command, and writes:

* a **record** per row and seed, ``<records_dir>/<table>/<row>-seed<k>.json``
  (:mod:`erlrestore.records`; by default the checkout's committed
  ``results/``, or ``<output_dir>/records`` at ``--scale=tiny``): commit,
  settings, seed, training data, precision, budget, wall time and
  per-image scores;
* per table, into ``<output_dir>/<table>/``: ``results.csv`` (one line per
  row, seed and test set), ``results.md`` (the table rendered from the
  records: paper beside ours as mean +- std over seeds, and a three-way
  verdict, :mod:`erlrestore.verdicts`, for every claim the paper makes
  about its rows, :mod:`erlrestore.claims`) and ``curves.png`` (when
  matplotlib is installed);
* when the records went to the committed ``results/``, the generated part
  of ``docs/RESULTS.md`` (:mod:`erlrestore.results_page`).

A table is a list of :class:`Row` records; a row is a paper flagfile in
``flags/`` (the paper's own settings). A *scale* is one more flagfile per
model family, stacked after the row's, in ``flags/reproduce/<scale>_<family>.flags``:

* ``paper``: nothing changed (the papers' widths, crops, epochs); the data
  must be given (``--train_flags``, ``--eval_sets``);
* ``cpu``: narrow networks, small crops and a fixed step budget per row, so a
  table finishes in about an hour per seed on a 2-core CPU; data from the
  shared samples (``--data_root``);
* ``tiny``: seconds per row, for tests.

A run is identified by its row, scale, seed and training data
(:func:`erlrestore.records.run_key`): it trains once in
``<output_dir>/runs/<scale>/<row id>/seed<k>-<digest>/``, even when two
tables list the row (ERL-Net's MEMD is in Table 2 and Table 3), and a rerun
with another seed or other data trains a new run rather than reusing it.
Scores are kept per test set and its contents, so a test set of the same
name with other images is scored again.

Resuming: running the same command again skips runs whose model and scores
exist and resumes unfinished training from its last checkpoint (the
training command's own resume). A run that fails is reported with its error
and does not stop the others; the command then exits 1.

Choices where the papers are silent, and what the ``cpu`` scale changes, are
written in ``docs/RESULTS.md`` and the overlay flagfiles themselves.
"""

import csv
import dataclasses
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import time

from erlrestore import claims as claims_module
from erlrestore import machine, records

FAMILIES = ("erlnet", "gan", "recon")
SCALES = ("cpu", "paper", "tiny")
_SCORE_LINE = "n="


@dataclasses.dataclass(frozen=True)
class Row:
    """One row of a table: an id (its run folder), a label as the paper
    prints it, its paper flagfile (relative to ``flags/``) and the paper's
    PSNR/SSIM (None where the paper has no number)."""

    id: str
    label: str
    flagfile: str
    paper_psnr: float = None
    paper_ssim: float = None


@dataclasses.dataclass(frozen=True)
class Table:
    """A paper table: rows, the model family (selects the scale overlay),
    which column of the paper the published numbers come from, the default
    test sets per scale, and flags every evaluation of the table gets. What
    the paper claims about its rows is in :mod:`erlrestore.claims`
    (:attr:`claims`)."""

    key: str
    title: str
    paper_column: str
    family: str
    rows: tuple
    eval_sets: dict  # scale -> {name: folder relative to data_root}
    eval_flags: tuple = ()
    reconstruct: bool = False  # rows are autoencoders: test inputs are the clean images

    @property
    def claims(self):
        """Every comparison the paper states between rows of this table (:mod:`erlrestore.claims`)."""
        return claims_module.for_table(self.key)

    @property
    def comparisons(self):
        """``(better, worse)`` of the table's claims, in order."""
        return tuple((c.better, c.worse) for c in self.claims)

    def row(self, row_id):
        for row in self.rows:
            if row.id == row_id:
                return row
        raise KeyError(row_id)


_DERAIN_SETS = {"cpu": {"rain12": "rain12", "rain100l-10": "rain100l-10"}}

_STRATEGIES = ("MA_A", "MA_B", "MA_C", "MA_D", "DT")
# ERL-Net Table 3, Rain100H column (PSNR, SSIM), by (strategy, entanglement).
_TABLE3_RAIN100H = {
    ("MA_A", "CLGD"): (31.6521, 0.8687), ("MA_B", "CLGD"): (32.0452, 0.9087),
    ("MA_C", "CLGD"): (32.8027, 0.9221), ("MA_D", "CLGD"): (33.0145, 0.9294),
    ("DT", "CLGD"): (31.6214, 0.8634),
    ("MA_A", "MLGD"): (31.6804, 0.8692), ("MA_B", "MLGD"): (32.6870, 0.9247),
    ("MA_C", "MLGD"): (33.2041, 0.9364), ("MA_D", "MLGD"): (34.5724, 0.9387),
    ("DT", "MLGD"): (31.6287, 0.8673),
}


def _table3_rows():
    rows = []
    for entanglement in ("CLGD", "MLGD"):
        for strategy in _STRATEGIES:
            psnr, ssim = _TABLE3_RAIN100H[(strategy, entanglement)]
            rows.append(Row(f"erlnet_{strategy.lower()}_{entanglement.lower()}", f"{strategy} / {entanglement}",
                            f"erlnet_{strategy.lower()}_{entanglement.lower()}.flags", psnr, ssim))
    rows.append(Row("memd", "MEMD (Table 2)", "memd.flags", 31.6310, 0.8668))
    return tuple(rows)


TABLES = {
    "erlnet_table2": Table(
        key="erlnet_table2",
        title="ERL-Net Table 2",
        paper_column="Rain100H (ERL-Net, ICCV 2019, Table 2)",
        family="erlnet",
        rows=(
            Row("memd_minus_minus", "MEMD-- (no skip, no fusion)", "memd_minus_minus.flags", 24.0743, 0.7315),
            Row("memd_minus", "MEMD- (skip, no fusion)", "memd_minus.flags", 29.3782, 0.8327),
            Row("memd", "MEMD (skip + fusion)", "memd.flags", 31.6310, 0.8668),
            Row("memd_global_residual", "MEMD + global input residual (ours, not in the paper)",
                "memd_global_residual.flags"),
        ),
        eval_sets=_DERAIN_SETS,
    ),
    "erlnet_table3": Table(
        key="erlnet_table3",
        title="ERL-Net Table 3",
        paper_column="Rain100H (ERL-Net, ICCV 2019, Table 3)",
        family="erlnet",
        rows=_table3_rows(),
        eval_sets=_DERAIN_SETS,
    ),
    "rethinking_table2": Table(
        key="rethinking_table2",
        title="Rethinking Table II",
        paper_column="Rain800 de-raining (Rethinking generative methods, Table II)",
        family="gan",
        rows=(
            Row("pix2pix_unet8", "pix2pix (UNet-8)", "pix2pix_unet8.flags", 23.47, 0.7645),
            Row("pix2pix_unet8_lsgan", "pix2pix (UNet-8) + LSGAN", "pix2pix_unet8_lsgan.flags", 24.12, 0.8053),
            Row("unet5_lsgan", "UNet-5 + LSGAN", "unet5_lsgan.flags", 24.09, 0.8045),
            Row("unet5_lsgan_infoaccum15", "UNet-5 + LSGAN + InfoAccum-15", "unet5_lsgan_infoaccum15.flags",
                25.08, 0.8116),
            Row("unet5_lsgan_infoaccum15_subpix", "UNet-5 + LSGAN + InfoAccum-15 + SubPixUpsamp",
                "unet5_lsgan_infoaccum15_subpix.flags", 25.29, 0.8135),
        ),
        eval_sets=_DERAIN_SETS,
        # pix2pix's test script runs the generator in training mode (batch statistics,
        # dropout on) unless --eval is given; the paper builds on that code.
        eval_flags=("--norm_statistics=batch",),
    ),
    "rethinking_table3": Table(
        key="rethinking_table3",
        title="Rethinking Table III",
        paper_column="reconstruction (Rethinking generative methods, Table III)",
        family="recon",
        rows=(
            Row("recon_endec5", "En/Decoder", "recon_endec5.flags", 24.06, 0.7194),
            Row("recon_pix2pix_unet8", "pix2pix (UNet-8)", "recon_pix2pix_unet8.flags", 34.20, 0.9802),
            Row("recon_unet5", "UNet-5", "recon_unet5.flags", 34.28, 0.9811),
            Row("recon_unet5_infoaccum15", "UNet-5 + InfoAccum-15", "recon_unet5_infoaccum15.flags", 42.58, 0.9967),
            Row("recon_unet5_infoaccum15_subpix", "UNet-5 + InfoAccum-15 + SubPixUpsamp",
                "recon_unet5_infoaccum15_subpix.flags", 49.41, 0.9987),
        ),
        eval_sets={"cpu": {"kodak24": "kodak24"}},
        eval_flags=("--norm_statistics=batch",),
        reconstruct=True,
    ),
}


def repository_flags_dir():
    """``flags/`` of the checkout this package was installed from (``pip install -e``)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")


def default_data_root():
    """The samples folder: ``$ERLRESTORE_DATA_ROOT`` (:mod:`erlrestore.data.root`), '' when unset."""
    from erlrestore.data import root

    return root.data_root()


def scale_data_flags(scale, data_root):
    """Training-data flags a scale uses when ``--train_flags`` gives none.

    ``cpu``: rain synthesised on the fly over the clean photos of
    ``derain-train`` (never a test image), validated on ``rain100l-10``
    for the learning curves (never to pick a checkpoint). ``tiny``:
    procedural images. ``paper``: none; the user names the benchmark.
    """
    if scale == "tiny":
        return ["--procedural=4", "--degradation=rain"]
    if scale == "cpu":
        if not data_root:
            raise ValueError("--scale=cpu trains on <data_root>/derain-train; pass --data_root "
                             "(the shared samples folder) or --train_flags")
        clean = os.path.join(data_root, "derain-train", "clean")
        if not os.path.isdir(clean):
            raise ValueError(f"no training photos in {clean}; pass --data_root or --train_flags")
        return [f"--synthetic_clean_dir={clean}", "--degradation=rain"]
    return []


def scale_val_flags(table, scale, data_root, eval_sets):
    """Validation flags (learning curves): the table's first test set at ``cpu`` scale."""
    if scale != "cpu" or not eval_sets:
        return []
    name, (input_dir, target_dir) = next(iter(eval_sets.items()))
    flags = [f"--val_input_dir={input_dir}", "--val_max_images=4"]
    if target_dir:
        flags.append(f"--val_target_dir={target_dir}")
    return flags


def parse_eval_sets(values):
    """``["name=input_dir[:target_dir]", ...]`` -> {name: (input_dir, target_dir or "")}."""
    sets = {}
    for value in values:
        name, sep, folders = value.partition("=")
        if not sep or not name or not folders:
            raise ValueError(f"--eval_sets entries look like name=input_dir[:target_dir], got {value!r}")
        input_dir, _, target_dir = folders.partition(":")
        sets[name] = (input_dir, target_dir)
    return sets


def resolve_eval_sets(table, scale, data_root, given, output_dir, sources=None):
    """{name: (input_dir, target_dir)} the table is scored on.

    For reconstruction tables the test inputs are the clean images
    themselves; a folder of clean images is copied once into
    ``<output_dir>/data/<name>-<digest>/{input,target}`` so every tool pairs
    it (the digest names the source folder and its listing, so another
    folder given under the same name is never mixed with an old copy).
    ``sources``, when given, receives {name: the folder as named}.
    """
    if given:
        sets = dict(given)
    else:
        defaults = table.eval_sets.get(scale)
        if scale == "tiny" or not defaults:
            raise ValueError(f"{table.key} at --scale={scale} needs --eval_sets=name=folder[:target_folder]")
        if not data_root:
            raise ValueError(f"{table.key} is scored on {', '.join(defaults)} under --data_root; pass --data_root "
                             "or --eval_sets")
        sets = {name: (os.path.join(data_root, folder), "") for name, folder in defaults.items()}
    for name, (input_dir, target_dir) in list(sets.items()):
        if sources is not None:
            sources[name] = input_dir  # the folder as named, before a reconstruction copy replaces it
        if not os.path.isdir(input_dir):
            raise ValueError(f"test set {name}: no folder {input_dir}")
        if table.reconstruct and not target_dir:
            source = records.test_set_key(input_dir, "", ())
            sets[name] = _reconstruction_set(input_dir, os.path.join(output_dir, "data", f"{name}-{source}"))
    return sets


def _reconstruction_set(clean_dir, folder):
    images = sorted(p for p in glob.glob(os.path.join(clean_dir, "*"))
                    if os.path.splitext(p)[1].lower() in (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"))
    if not images:
        raise ValueError(f"no images in {clean_dir}")
    for part in ("input", "target"):
        os.makedirs(os.path.join(folder, part), exist_ok=True)
        for path in images:
            destination = os.path.join(folder, part, os.path.basename(path))
            if not os.path.exists(destination):
                shutil.copyfile(path, destination)
    return os.path.join(folder, "input"), os.path.join(folder, "target")


# --------------------------------------------------------------------------
# Running rows.
# --------------------------------------------------------------------------


@dataclasses.dataclass
class RowResult:
    """One run of a row (one seed): its scores, per-image scores and record, or its error."""

    row: Row
    run_dir: str
    seed: int = 0
    scores: dict = dataclasses.field(default_factory=dict)  # set name -> (psnr, ssim), means over the images
    images: dict = dataclasses.field(default_factory=dict)  # set name -> [{"name", "psnr", "ssim"}]
    steps: int = 0
    train_seconds: float = 0.0
    curve: list = dataclasses.field(default_factory=list)  # validation psnr_y per checkpoint interval
    error: str = ""
    scored_at: dict = dataclasses.field(default_factory=dict)  # set name -> git state when it was scored
    record: dict = None
    record_path: str = ""


def overlay_path(flags_dir, table, scale):
    return os.path.join(flags_dir, "reproduce", f"{scale}_{table.family}.flags")


def settings_lines(table, row, scale, flags_dir):
    """The flags a row trains with before its data: the paper flagfile's then the scale overlay's lines."""
    return (records.flag_lines(os.path.join(flags_dir, row.flagfile), os.path.dirname(flags_dir))
            + records.flag_lines(overlay_path(flags_dir, table, scale), os.path.dirname(flags_dir)))


def train_command(table, row, scale, flags_dir, data_flags, run_dir, seed=None):
    """The ``erlrestore-train`` argv of a row: paper flagfile, scale overlay, data, seed, model folder."""
    return [
        sys.executable, "-m", "erlrestore.cli.train",
        f"--flagfile={os.path.join(flags_dir, row.flagfile)}",
        f"--flagfile={overlay_path(flags_dir, table, scale)}",
        *data_flags,
        *([] if seed is None else [f"--seed={int(seed)}"]),
        f"--model_dir={run_dir}",
        "--verbose=0",
    ]


def run_dir_for(table, row, scale, flags_dir, data_flags, runs_dir, seed):
    """``<runs_dir>/<row id>/seed<k>-<digest>``: the run folder of a row, keyed by seed, settings and data."""
    key = records.run_key(seed, settings_lines(table, row, scale, flags_dir), data_flags)
    return os.path.join(runs_dir, row.id, key)


def evaluate_command(table, model_path, input_dir, target_dir, csv_path):
    command = [sys.executable, "-m", "erlrestore.cli.evaluate", f"--model={model_path}", f"--input_dir={input_dir}",
               f"--csv={csv_path}", *table.eval_flags]
    if target_dir:
        command.append(f"--target_dir={target_dir}")
    return command


def parse_score_line(text):
    """(n, psnr_y, ssim_y) from the evaluation's last line ``n=<N> psnr_y=<x> ssim_y=<y>``."""
    lines = [line for line in text.strip().splitlines() if line.startswith(_SCORE_LINE)]
    if not lines:
        raise ValueError("the evaluation printed no score line")
    fields = dict(part.split("=", 1) for part in lines[-1].split())
    return int(fields["n"]), float(fields["psnr_y"]), float(fields["ssim_y"])


def read_image_scores(csv_path):
    """[{"name", "psnr", "ssim"}] from an evaluation's per-image CSV (Y channel)."""
    images = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        for line in csv.DictReader(f):
            images.append({"name": line["name"], "psnr": float(line["psnr_y"]), "ssim": float(line["ssim_y"])})
    if not images:
        raise ValueError(f"{csv_path} holds no images")
    return images


def _run_logged(command, log_path, env):
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        completed = subprocess.run(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env, check=False)
        log.write(completed.stdout)
    if completed.returncode != 0:
        with open(log_path, encoding="utf-8") as log:
            errors = [line.strip() for line in log if line.startswith("error:") or "Error" in line]
        reason = errors[-1] if errors else f"exit status {completed.returncode}"
        raise RuntimeError(f"{os.path.basename(command[2]) if len(command) > 2 else command[0]} failed "
                           f"({reason}); see {log_path}")
    return completed.stdout


def _load_json(path, default):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def _write_json(path, value):
    from erlrestore.data import image_files

    image_files.write_bytes_atomically(path, json.dumps(value, indent=2, sort_keys=True).encode("utf-8"))


def run_row(table, row, scale, flags_dir, data_flags, eval_sets, runs_dir, env=None, log=print, *, seed=0):
    """Trains (or resumes, or skips) one row for one seed and scores it on every test set; never raises.

    The run folder is :func:`run_dir_for`'s; ``reproduce_row.json`` in it
    keeps the training time, the data flags and commit the run started
    with, and the scores per table, test set and test-set contents.
    """
    result = RowResult(row, "", seed=seed)
    env = dict(os.environ if env is None else env)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        run_dir = result.run_dir = run_dir_for(table, row, scale, flags_dir, data_flags, runs_dir, seed)
        os.makedirs(run_dir, exist_ok=True)
        state_path = os.path.join(run_dir, "reproduce_row.json")
        state = _load_json(state_path, {"train_seconds": 0.0, "scores": {}})
        state.setdefault("seed", seed)
        state.setdefault("data_flags", list(data_flags))
        final = os.path.join(run_dir, "final.keras")
        if not os.path.exists(final):
            state.setdefault("trained_at", records.git_state())  # the code's commit, not the flags folder's
            state.setdefault("machine", _machine_line())
            log(f"  training {row.id} seed {seed} in {run_dir}")
            started = time.monotonic()
            try:
                _run_logged(train_command(table, row, scale, flags_dir, data_flags, run_dir, seed=seed),
                            os.path.join(run_dir, "train.log"), env)
            finally:
                state["train_seconds"] = state.get("train_seconds", 0.0) + time.monotonic() - started
                _write_json(state_path, state)
        for name, (input_dir, target_dir) in eval_sets.items():
            # A row shared by two tables may be scored with other flags; a set of the same name may hold other images.
            digest = records.test_set_key(input_dir, target_dir, table.eval_flags)
            key = f"{table.key}:{name}:{digest}"
            csv_path = os.path.join(run_dir, f"scores_{table.key}_{name}_{digest}.csv")
            if key not in state["scores"] or not os.path.exists(csv_path):
                log(f"  scoring {row.id} seed {seed} on {name}")
                output = _run_logged(evaluate_command(table, final, input_dir, target_dir, csv_path),
                                     os.path.join(run_dir, "evaluate.log"), env)
                n, psnr, ssim = parse_score_line(output)
                state["scores"][key] = {"n": n, "psnr_y": psnr, "ssim_y": ssim, "csv": os.path.basename(csv_path),
                                        "scored_at": records.git_state()}
                _write_json(state_path, state)
            score = state["scores"][key]
            result.scores[name] = (score["psnr_y"], score["ssim_y"])
            result.scored_at[name] = score.get("scored_at")
            result.images[name] = read_image_scores(csv_path)
        result.train_seconds = state.get("train_seconds", 0.0)
        result.steps = total_steps(run_dir)
        result.curve = learning_curve(run_dir)
    except Exception as error:  # a failed row is reported; the others go on
        result.error = str(error) or type(error).__name__
        log(f"  {row.id} seed {seed} failed: {result.error}")
    return result


_MACHINE_LINE = []


def _machine_line():
    """:func:`erlrestore.machine.summary_line`, made once per process (it imports TensorFlow)."""
    if not _MACHINE_LINE:
        _MACHINE_LINE.append(machine.summary_line())
    return _MACHINE_LINE[0]


def make_record(table, result, *, scale, flags_dir, data_root, eval_sets, sources=None):
    """The committed record of one run (:mod:`erlrestore.records`) from its RowResult and run folder.

    Everything in it comes from the run (its folder, its state file and
    the scores), not from the moment the record is written: the commit is
    the one training started at, each test set names the commit it was
    scored at, so running the same command again writes the same record.
    """
    run_dir, row = result.run_dir, result.row
    state = _load_json(os.path.join(run_dir, "reproduce_row.json"), {})
    config = _load_json(os.path.join(run_dir, "run_config.json"), {})
    lines = settings_lines(table, row, scale, flags_dir)
    root = os.path.dirname(flags_dir)
    test_sets = {}
    for name, (input_dir, target_dir) in eval_sets.items():
        images = result.images[name]
        source = (sources or {}).get(name, input_dir)
        test_sets[name] = {
            "folder": records.display_path(source, data_root),
            "target_folder": records.display_path(target_dir, data_root) if target_dir and source == input_dir else "",
            "count": len(images),
            "contents": records.test_set_key(input_dir, target_dir, ()),
            "eval_flags": list(table.eval_flags),
            "scored_at": result.scored_at.get(name),
            "psnr_mean": round(result.scores[name][0], 4),
            "ssim_mean": round(result.scores[name][1], 5),
            "images": images,
        }
    return {
        "schema": records.SCHEMA,
        "table": table.key,
        "row": row.id,
        "label": row.label,
        "seed": int(result.seed),
        "scale": scale,
        "run": os.path.basename(run_dir),
        "commit": state.get("trained_at") or {"hash": None, "dirty": None},
        "settings": {
            "flagfiles": [os.path.relpath(os.path.join(flags_dir, row.flagfile), root),
                          os.path.relpath(overlay_path(flags_dir, table, scale), root)],
            "flags": lines,
            "run_config": config,
        },
        "data": records.describe_data(state.get("data_flags", []), data_root),
        "precision": {"requested": records.last_flag(lines, "precision", "auto"),
                      "resolved": records.precision_from_log(os.path.join(run_dir, "train.log"))},
        "budget": config.get("stage_budget") or records.last_flag(lines, "stage_budget", "each"),
        "steps": result.steps,
        "train_seconds": round(result.train_seconds, 1),
        "curve": [round(float(v), 4) for v in result.curve],
        "machine": state.get("machine"),
        "test_sets": test_sets,
    }


def total_steps(run_dir):
    """Optimizer steps of a run given in steps, over all its stages (0 when given in epochs), from run_config.json."""
    from erlrestore.training import experiment, strategies

    config = _load_json(os.path.join(run_dir, "run_config.json"), {})
    steps = config.get("stage_steps") or []
    strategy = config.get("strategy", "")
    stage_list = strategies.STRATEGIES.get(strategy) or strategies.GAN_STRATEGIES.get(strategy) or ()
    if not steps or not stage_list:
        return 0
    lengths = experiment.stage_lengths(len(stage_list), stage_steps=tuple(steps),
                                       budget=config.get("stage_budget", "each"),
                                       auxiliary=experiment.auxiliary_stages(stage_list))
    return int(sum(lengths))


def learning_curve(run_dir):
    """Validation Y-PSNR after each checkpoint interval, stages in order (from the TensorBoard logs)."""
    from erlrestore.training import events

    points = []
    for _, _, validation_dir in events.stage_log_dirs(run_dir, part="validation"):
        _, values = events.read_event_scalars(validation_dir, "epoch_psnr_y", missing_ok=True)
        points += values.tolist()
    return points


def curve_verdict(curve, flat_db=0.1):
    """Whether a validation curve has flattened: the mean of its last quarter against the quarter before.

    'flat' when they differ by less than ``flat_db`` dB, else 'rising +x.xx dB' or
    'falling -x.xx dB' (means of quarters, so one noisy validation does not decide it).
    """
    if len(curve) < 4:
        return "too short"
    quarter = len(curve) // 4
    last = sum(curve[-quarter:]) / quarter
    before = sum(curve[-2 * quarter:-quarter]) / quarter
    gain = last - before
    if abs(gain) < flat_db:
        return "flat"
    return f"{'rising' if gain > 0 else 'falling'} {gain:+.2f} dB"


# --------------------------------------------------------------------------
# Reports.
# --------------------------------------------------------------------------


def write_csv(path, table, results):
    """One line per run (row and seed) and test set: mean scores, the paper's, steps, time, curve, error."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["table", "row", "label", "seed", "test_set", "psnr_y", "ssim_y", "paper_psnr_y",
                         "paper_ssim_y", "steps", "train_seconds", "curve", "run", "error"])
        for r in results:
            sets = list(r.scores.items()) or [("", (math.nan, math.nan))]
            for name, (psnr, ssim) in sets:
                writer.writerow([table.key, r.row.id, r.row.label, r.seed, name, f"{psnr:.4f}", f"{ssim:.5f}",
                                 "" if r.row.paper_psnr is None else r.row.paper_psnr,
                                 "" if r.row.paper_ssim is None else r.row.paper_ssim,
                                 r.steps, f"{r.train_seconds:.0f}", curve_verdict(r.curve),
                                 os.path.basename(r.run_dir), r.error])


def plot(path, table, results, set_names):
    """Bars (paper, and ours as the mean over seeds, PSNR) and every run's validation learning curve;
    returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    by_row = {}
    for r in results:
        by_row.setdefault(r.row.id, (r.row, []))[1].append(r)
    fig, (bars, curves) = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / (1 + len(set_names))
    ours = []
    for i, (row, runs) in enumerate(by_row.values()):
        values = [row.paper_psnr]
        for name in set_names:
            scores = [r.scores[name][0] for r in runs if name in r.scores]
            values.append(sum(scores) / len(scores) if scores else math.nan)
            ours += scores
        for j, value in enumerate(values):
            if value is not None and not math.isnan(value):
                bars.bar(i + (j - len(set_names) / 2) * width, value, width, color=f"C{j}",
                         label=(["paper"] + [f"ours: {n}" for n in set_names])[j] if i == 0 else None)
        for r in runs:
            if r.curve:
                curves.plot(range(1, len(r.curve) + 1), r.curve, marker=".", label=f"{row.id} seed {r.seed}")
    bars.set_xticks(range(len(by_row)))
    bars.set_xticklabels(list(by_row), rotation=35, ha="right", fontsize=7)
    bars.set_ylabel("Y-PSNR (dB)")
    bars.set_ylim(bottom=min(ours + [20]) - 2)
    bars.legend(fontsize=7)
    bars.set_title(f"{table.title} (ours: mean over seeds)")
    curves.set_xlabel("checkpoint interval (all stages in order)")
    curves.set_ylabel("validation Y-PSNR (dB)")
    if any(r.curve for r in results):
        curves.legend(fontsize=6)
    curves.set_title("learning curves")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def parse_seeds(values):
    """``["0", "1", "2"]`` -> (0, 1, 2): distinct non-negative integers, in the order given."""
    seeds = []
    for value in values:
        try:
            seed = int(value)
        except (TypeError, ValueError):
            raise ValueError(f"--seeds takes non-negative integers, got {value!r}") from None
        if seed < 0:
            raise ValueError(f"--seeds takes non-negative integers, got {seed}")
        if seed not in seeds:
            seeds.append(seed)
    if not seeds:
        raise ValueError("--seeds names no seed")
    return tuple(seeds)


def default_records_dir(scale, output_dir):
    """Where records go unless told: the checkout's committed ``results/``; ``<output_dir>/records`` at
    ``--scale=tiny`` (test runs never touch the committed records)."""
    if scale == "tiny":
        return os.path.join(output_dir, "records")
    return records.default_records_dir()


def reproduce_table(table, scale, output_dir, *, flags_dir=None, data_root="", train_flags=(), eval_sets=None,
                    rows=None, seeds=(0,), records_dir=None, log=print):
    """Runs (or resumes) every row of ``table`` once per seed; writes a record per successful run and the
    table's reports; returns the RowResults (one per row and seed)."""
    from erlrestore import results_page

    flags_dir = os.path.abspath(flags_dir or repository_flags_dir())
    overlay = overlay_path(flags_dir, table, scale)
    if not os.path.exists(overlay):
        raise ValueError(f"no scale overlay {overlay}")
    records_dir = records_dir or default_records_dir(scale, output_dir)
    sources = {}
    sets = resolve_eval_sets(table, scale, data_root, eval_sets, output_dir, sources=sources)
    data_flags = list(train_flags) or scale_data_flags(scale, data_root)
    if scale == "paper" and not data_flags:
        raise ValueError("--scale=paper trains on the paper's benchmark: pass its data with --train_flags, e.g. "
                         "--train_flags=--train_input_dir=Rain100H/train")
    if not any(f.startswith("--val_") for f in data_flags):
        data_flags += scale_val_flags(table, scale, data_root, sets)
    chosen = table.rows if not rows else tuple(r for r in table.rows if r.id in rows)
    runs_dir = os.path.join(output_dir, "runs", scale)
    log(f"{table.title}: {len(chosen)} rows x {len(seeds)} seed(s) at scale {scale}, scored on {', '.join(sets)}")
    results = []
    for row in chosen:
        for seed in seeds:
            result = run_row(table, row, scale, flags_dir, data_flags, sets, runs_dir, log=log, seed=seed)
            if not result.error:
                result.record = make_record(table, result, scale=scale, flags_dir=flags_dir, data_root=data_root,
                                            eval_sets=sets, sources=sources)
                result.record_path = records.record_path(records_dir, table.key, row.id, seed)
                records.write_record(result.record_path, result.record)
            results.append(result)
    table_dir = os.path.join(output_dir, table.key)
    os.makedirs(table_dir, exist_ok=True)
    write_csv(os.path.join(table_dir, "results.csv"), table, results)
    stored = records.load_records(records_dir).get(table.key, [])
    report = results_page.render_table(table, stored, level=2)
    failed = [r for r in results if r.error]
    if failed:
        report += "\nFailed runs:\n\n" + "".join(f"- `{r.row.id}` seed {r.seed}: {r.error}\n" for r in failed)
    with open(os.path.join(table_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(report)
    if not plot(os.path.join(table_dir, "curves.png"), table, results, list(sets)):
        log("  matplotlib is not installed: curves.png skipped (pip install matplotlib)")
    return results


def write_summary(output_dir, command):
    """``<output_dir>/RESULTS.md``: every table report found there, in the papers' order, under one header."""
    parts = [os.path.join(output_dir, key, "results.md") for key in TABLES]
    found = [p for p in parts if os.path.exists(p)]
    if not found:
        return None
    lines = ["# Paper tables regenerated by erlrestore-reproduce", "",
             f"Command: `{command}`", "", f"Machine: {machine.summary_line()}", "",
             f"Written: {time.strftime('%Y-%m-%d %H:%M %Z')}", ""]
    for path in found:
        with open(path, encoding="utf-8") as f:
            lines.append(f.read())
    summary = os.path.join(output_dir, "RESULTS.md")
    with open(summary, "w", encoding="utf-8") as f:
        f.write("\n".join(lines))
    return summary
