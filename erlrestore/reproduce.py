"""The runner that regenerates the papers' tables (the tables themselves: :mod:`erlrestore.paper_tables`).

``erlrestore-reproduce --table=<name> --scale=<scale> --seeds=0,1,2``
(``erlrestore.cli.reproduce``) trains every row of a table once per seed
and scores each trained model on named test sets through the experiment
runner (:mod:`erlrestore.runner`: the training library as
``erlrestore-train`` uses it, the scoring as ``erlrestore-evaluate`` does,
in a child process that returns the results as data), and writes:

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
  matplotlib is installed) (:mod:`erlrestore.table_reports`); the tables
  that are figures of the paper (Rethinking Fig. 6 and Fig. 13) add their
  plot, ``rethinking_fig6.png`` / ``rethinking_fig13.png``, drawn from the
  records as the page draws it;
* when the records went to the committed ``results/``, the generated part
  of ``docs/RESULTS.md`` (:mod:`erlrestore.results_page`).

A *scale* is one more flagfile per model family, stacked after the row's
paper flagfile, in ``flags/reproduce/<scale>_<family>.flags``:

* ``paper``: nothing changed (the papers' widths, crops, epochs); the data
  must be given (``--train_flags``, ``--eval_sets``);
* ``cpu``: narrow networks, small crops and a fixed step budget per row, so a
  table finishes in about an hour per seed on a 2-core CPU; data from the
  shared samples (``--data_root``), each table's own
  (:attr:`~erlrestore.paper_tables.Table.cpu_data`, :func:`scale_data_flags`):
  for the de-raining tables light to heavy rain synthesised over the
  ``derain-train`` photos, scored on ``rain12``, ``rain100l-10`` and, for
  the ERL-Net tables, ``rain100h-20``; for the de-noising tables camera
  noise over the same photos, scored on ``polyu-20``; for the de-hazing
  tables the real ``dehaze-train`` pairs, scored on ``sots-indoor-10``;
  test sets that the samples lack (Rethinking Table II's Rain1200,
  RainCityScapes and OutdoorRain columns) are synthesised once over
  ``kodak24`` (:func:`synthetic_set`);
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
training's own resume). A run that fails is reported with its error and
does not stop the others; the command then exits 1.

Choices where the papers are silent, and what the ``cpu`` scale changes, are
written in ``docs/RESULTS.md`` and the overlay flagfiles themselves.
"""

import csv
import dataclasses
import glob
import hashlib
import json
import os
import shutil
import sys
import time

from erlrestore import machine, paper_tables, records, results_page, runner
# TABLES and GROUPS: the tables and the names of several at once, importable from here.
from erlrestore.paper_tables import GROUPS, TABLES, Row, SyntheticSet  # noqa: F401
from erlrestore.run_folder import RunFolder, read_json
from erlrestore.runner import learning_curve, total_steps  # noqa: F401  (a run's facts, importable from here)
# curve_verdict and write_summary: erlrestore-reproduce and the tests use them from here.
from erlrestore.table_reports import curve_verdict, plot, plot_levels, write_csv, write_summary  # noqa: F401

SCALES = ("cpu", "paper", "tiny")
STATE_FILE = "reproduce_row.json"  # in each run folder: training time, data flags, commit and scores


def repository_flags_dir():
    """``flags/`` of the checkout this package was installed from (``pip install -e``)."""
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "flags")


def default_data_root():
    """The samples folder: ``$ERLRESTORE_DATA_ROOT`` (:mod:`erlrestore.data.root`), '' when unset."""
    from erlrestore.data import root

    return root.data_root()


# The flags after the training folder of the de-raining and the reconstruction tables at --scale=cpu (their
# TrainingData, erlrestore.paper_tables, says why).
CPU_DERAIN_DEGRADATION = paper_tables.CPU_DERAIN_DATA.flags
CPU_RECON_DEGRADATION = paper_tables.CPU_RECON_DATA.flags


def scale_data_flags(scale, data_root, table=None):
    """Training-data flags a scale uses when ``--train_flags`` gives none.

    ``cpu``: the table's :attr:`~erlrestore.paper_tables.Table.cpu_data`
    under ``data_root`` (never a test image), e.g. rain of mixed density
    synthesised on the fly over the clean photos of ``derain-train`` for
    the de-raining tables (and when ``table`` is None), camera noise over
    the same photos for de-noising, the real ``dehaze-train`` pairs for
    de-hazing. Validation (:func:`scale_val_flags`) is added apart.
    ``tiny``: procedural images. ``paper``: none; the user names the
    benchmark.
    """
    if scale == "tiny":
        return ["--procedural=4", "--degradation=rain"]
    if scale == "cpu":
        data = paper_tables.CPU_DERAIN_DATA if table is None else table.cpu_data
        if not data_root:
            raise ValueError(f"--scale=cpu trains on <data_root>/{data.folder}; pass --data_root "
                             "(the shared samples folder) or --train_flags")
        folder = os.path.join(data_root, data.folder)
        if not os.path.isdir(folder):
            raise ValueError(f"no training data in {folder}; pass --data_root or --train_flags")
        return data.data_flags(data_root)
    return []


def scale_val_flags(table, scale, data_root, eval_sets):
    """Validation flags (learning curves): the first 4 images of the table's first test set at ``cpu`` scale.

    Validation only draws the learning curve: the runs are scored on their
    last weights (``final.keras``, never the ``best.keras`` the training
    keeps by validation score) and the plateau rule watches the training
    loss, so no test set picks a checkpoint or steers the training.
    """
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


def resolve_eval_sets(table, scale, data_root, given, output_dir, sources=None, synthesized=None):
    """{name: (input_dir, target_dir)} the table is scored on.

    For reconstruction tables the test inputs are the clean images
    themselves; a folder of clean images is copied once into
    ``<output_dir>/data/<name>-<digest>/{input,target}`` so every tool pairs
    it (the digest names the source folder and its listing, so another
    folder given under the same name is never mixed with an old copy).
    A :class:`~erlrestore.paper_tables.SyntheticSet` of the table is made
    once into the same place (:func:`synthetic_set`).
    ``sources``, when given, receives {name: the folder as named} (a
    synthetic set's clean folder); ``synthesized`` receives {name: its
    SyntheticSet} for the synthetic ones.
    """
    made = {}
    if given:
        sets = dict(given)
    else:
        defaults = table.eval_sets.get(scale)
        if scale == "tiny" or not defaults:
            raise ValueError(f"{table.key} at --scale={scale} needs --eval_sets=name=folder[:target_folder]")
        if not data_root:
            raise ValueError(f"{table.key} is scored on {', '.join(defaults)} under --data_root; pass --data_root "
                             "or --eval_sets")
        sets = {}
        for name, folder in defaults.items():
            if isinstance(folder, SyntheticSet):
                clean = os.path.join(data_root, folder.clean)
                if sources is not None:
                    sources[name] = clean
                sets[name] = synthetic_set(folder, clean, output_dir, name)
                made[name] = folder
            else:
                sets[name] = (os.path.join(data_root, folder), "")
    if synthesized is not None:
        synthesized.update(made)
    for name, (input_dir, target_dir) in list(sets.items()):
        if name in made:
            continue
        if sources is not None:
            sources[name] = input_dir  # the folder as named, before a reconstruction copy replaces it
        if not os.path.isdir(input_dir):
            raise ValueError(f"test set {name}: no folder {input_dir}")
        if table.reconstruct and not target_dir:
            source = records.test_set_key(input_dir, "", ())
            sets[name] = _reconstruction_set(input_dir, os.path.join(output_dir, "data", f"{name}-{source}"))
    return sets


def synthetic_set_key(spec, clean_dir):
    """12 hex digits naming a synthetic test set: the clean folder's listing (names and sizes), the
    degradation, its parameters and the seed. The same inputs always give the same images."""
    count, listing = records.folder_listing_digest(clean_dir)
    identity = {"clean": [count, listing], "degradation": spec.degradation, "params": spec.params,
                "seed": int(spec.seed)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def synthetic_set(spec, clean_dir, output_dir, name):
    """(input_dir, target_dir) of the test set ``spec`` (a SyntheticSet) over ``clean_dir``, made once.

    The pairs are written by the library function behind
    ``erlrestore-synth`` (:func:`erlrestore.data.synthetic.synthesize_folder`:
    8-bit PNGs, photo ``i`` degraded with the seed ``(spec.seed, i * 10000)``)
    into ``<output_dir>/data/<name>-<digest>/{input,target}``
    (:func:`synthetic_set_key`). The set is written into a scratch folder
    beside it and renamed when complete, so an existing folder is always a
    whole set and is reused as it is; a set with other inputs (photos,
    degradation, parameters or seed) gets another folder.
    """
    if not os.path.isdir(clean_dir):
        raise ValueError(f"test set {name}: no folder {clean_dir} to synthesise it from")
    folder = os.path.join(output_dir, "data", f"{name}-{synthetic_set_key(spec, clean_dir)}")
    if not os.path.isdir(folder):
        from erlrestore.data import synthetic

        params = synthetic.parse_params(spec.params)
        scratch = f"{folder}.partial-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            synthetic.synthesize_folder(scratch, spec.degradation, clean_dir=clean_dir, params=params,
                                        seed=int(spec.seed), show_progress=False)
            os.replace(scratch, folder)
        except OSError:
            if not os.path.isdir(folder):  # another process may have finished the same set first
                raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return os.path.join(folder, "input"), os.path.join(folder, "target")


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
    images: dict = dataclasses.field(default_factory=dict)  # set name -> [{"name", "psnr", "ssim", ...}]
    # set name -> {metric name: mean} of the metrics registered beyond PSNR and SSIM
    extra_means: dict = dataclasses.field(default_factory=dict)
    steps: int = 0
    train_seconds: float = 0.0
    curve: list = dataclasses.field(default_factory=list)  # validation psnr_y per checkpoint interval
    error: str = ""
    scored_at: dict = dataclasses.field(default_factory=dict)  # set name -> git state when it was scored
    # set name -> {"psnr_mean", "ssim_mean"} of its unrestored inputs (input_scores; none for autoencoders)
    inputs: dict = dataclasses.field(default_factory=dict)
    record: dict = None
    record_path: str = ""


def overlay_path(flags_dir, table, scale):
    """``flags/reproduce/<scale>_<family>.flags``: the scale overlay of a table's rows."""
    return os.path.join(flags_dir, "reproduce", f"{scale}_{table.family}.flags")


def settings_lines(table, row, scale, flags_dir):
    """The flags a row trains with before its data: the paper flagfile's, the scale overlay's, then the
    table's own :attr:`~erlrestore.paper_tables.Table.train_flags`."""
    return (records.flag_lines(os.path.join(flags_dir, row.flagfile), os.path.dirname(flags_dir))
            + records.flag_lines(overlay_path(flags_dir, table, scale), os.path.dirname(flags_dir))
            + list(table.train_flags))


def train_arguments(table, row, scale, flags_dir, data_flags, run_dir, seed=None):
    """The ``erlrestore-train`` arguments of a row: paper flagfile, scale overlay, the table's own flags, data,
    seed, model folder."""
    return [
        f"--flagfile={os.path.join(flags_dir, row.flagfile)}",
        f"--flagfile={overlay_path(flags_dir, table, scale)}",
        *table.train_flags,
        *data_flags,
        *([] if seed is None else [f"--seed={int(seed)}"]),
        f"--model_dir={run_dir}",
        "--verbose=0",
    ]


def train_command(table, row, scale, flags_dir, data_flags, run_dir, seed=None):
    """The command line that trains a row as :func:`run_row` does (``--dry_run`` prints it)."""
    return [sys.executable, "-m", "erlrestore.cli.train",
            *train_arguments(table, row, scale, flags_dir, data_flags, run_dir, seed=seed)]


def run_dir_for(table, row, scale, flags_dir, data_flags, runs_dir, seed):
    """``<runs_dir>/<row id>/seed<k>-<digest>``: the run folder of a row, keyed by seed, settings and data."""
    key = records.run_key(seed, settings_lines(table, row, scale, flags_dir), data_flags)
    return os.path.join(runs_dir, row.id, key)


def _metric_names():
    """The registered metrics' names (:func:`erlrestore.metrics.metric_names`; that module imports TensorFlow)."""
    from erlrestore import metrics

    return metrics.metric_names()


def _line_decimals(name):
    from erlrestore import metrics

    return metrics.get_metric(name).line_decimals


def read_image_scores(csv_path):
    """[{"name", "psnr", "ssim", ...}] from an evaluation's per-image CSV (Y channel).

    Every registered metric (:func:`erlrestore.metrics.register_metric`)
    whose ``<name>_y`` column the CSV has is read beside PSNR and SSIM, which
    it must have.
    """
    images = []
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        names = [name for name in _metric_names() if name in ("psnr", "ssim") or f"{name}_y" in reader.fieldnames]
        for line in reader:
            images.append({"name": line["name"], **{name: float(line[f"{name}_y"]) for name in names}})
    if not images:
        raise ValueError(f"{csv_path} holds no images")
    return images


def _write_json(path, value):
    from erlrestore.data import image_files

    image_files.write_bytes_atomically(path, json.dumps(value, indent=2, sort_keys=True).encode("utf-8"))


def _run_and_keep(state, state_path, arguments, pending, csv_paths, log, label):
    """Runs the training (when the run has not finished) and the ``pending`` evaluations; keeps in
    ``state`` the training time, the resolved precision and each new score, even when a stage fails."""
    trains = not RunFolder(runner.model_dir_of(arguments)).finished
    started = time.monotonic()
    failure = None

    def on_stage(stage, name):
        if stage == "evaluation":
            log(f"  scoring {label} on {name}")

    try:
        experiment = runner.run(arguments, [eval_set for eval_set, _ in pending], csv_paths=csv_paths,
                                on_stage=on_stage)
    except runner.RunError as error:
        experiment, failure = error.partial, error
    if trains:
        training = experiment.training
        state["train_seconds"] = state.get("train_seconds", 0.0) + (
            training.seconds if training else time.monotonic() - started)
        if training:
            state["precision"] = training.precision
    for eval_set, key in pending:
        scores = experiment.scores.get(eval_set.name)
        if scores is not None:
            # Every metric measured, rounded as the summary line shows it: psnr_y, ssim_y, then registered ones.
            means = {f"{name}_y": float(f"{scores.metric(f'{name}_y'):.{_line_decimals(name)}f}")
                     for name, _ in scores.metric_values()}
            state["scores"][key] = {"n": scores.metric("n"), **means,
                                    "csv": os.path.basename(scores.csv), "scored_at": records.git_state()}
    _write_json(state_path, state)
    if failure is not None:
        raise failure


def run_row(table, row, scale, flags_dir, data_flags, eval_sets, runs_dir, log=print, *, seed=0):
    """Trains (or resumes, or skips) one row for one seed and scores it on every test set; never raises.

    The run folder is :func:`run_dir_for`'s; ``reproduce_row.json`` in it
    keeps the training time, the data flags, commit and precision the run
    started with, and the scores per table, test set and test-set contents.
    """
    result = RowResult(row, "", seed=seed)
    try:
        run_dir = result.run_dir = run_dir_for(table, row, scale, flags_dir, data_flags, runs_dir, seed)
        os.makedirs(run_dir, exist_ok=True)
        state_path = os.path.join(run_dir, STATE_FILE)
        state = read_json(state_path, {"train_seconds": 0.0, "scores": {}})
        state.setdefault("seed", seed)
        state.setdefault("data_flags", list(data_flags))
        if not RunFolder(run_dir).finished:
            state.setdefault("trained_at", records.git_state())  # the code's commit, not the flags folder's
            state.setdefault("machine", _machine_line())
            log(f"  training {row.id} seed {seed} in {run_dir}")
        pending, csv_paths, keys = [], {}, {}
        for name, (input_dir, target_dir) in eval_sets.items():
            # A row shared by two tables may be scored with other flags; a set of the same name may hold other images.
            digest = records.test_set_key(input_dir, target_dir, table.eval_flags)
            keys[name] = key = f"{table.key}:{name}:{digest}"
            csv_paths[name] = os.path.join(run_dir, f"scores_{table.key}_{name}_{digest}.csv")
            # Scores kept from before a metric was registered are scored again (only the evaluation runs).
            if (key not in state["scores"] or not os.path.exists(csv_paths[name])
                    or any(f"{metric}_y" not in state["scores"][key] for metric in _metric_names())):
                pending.append((runner.EvalSet(name, input_dir, target_dir, tuple(table.eval_flags)), key))
        if pending or not RunFolder(run_dir).finished:
            _run_and_keep(state, state_path, train_arguments(table, row, scale, flags_dir, data_flags, run_dir, seed),
                          pending, csv_paths, log, f"{row.id} seed {seed}")
        for name in eval_sets:
            score = state["scores"][keys[name]]
            result.scores[name] = (score["psnr_y"], score["ssim_y"])
            result.extra_means[name] = {metric: score[f"{metric}_y"] for metric in _metric_names()
                                        if metric not in ("psnr", "ssim") and f"{metric}_y" in score}
            result.scored_at[name] = score.get("scored_at")
            result.images[name] = read_image_scores(csv_paths[name])
            if not table.reconstruct:  # an autoencoder's input is its target: no bar to clear
                input_dir, target_dir = eval_sets[name]
                result.inputs[name] = input_scores(input_dir, target_dir, table.eval_flags)
        result.train_seconds = state.get("train_seconds", 0.0)
        result.steps = total_steps(run_dir)
        result.curve = learning_curve(run_dir)
    except Exception as error:  # a failed row is reported; the others go on
        result.error = str(error) or type(error).__name__
        log(f"  {row.id} seed {seed} failed: {result.error}")
    return result


_MACHINE_LINE = []
_INPUT_SCORES = {}  # (input_dir, target_dir, eval flags) -> input_scores(...), once per process


def input_scores(input_dir, target_dir, eval_flags):
    """``{"psnr_mean", "ssim_mean"}`` of a test set's degraded inputs against their clean images, scored as the
    table scores a model (its ``erlrestore-evaluate`` flags: pairing, channel, border): the bar a restoration
    has to clear, which the page prints under each table's rows. Measured once per set and process."""
    key = (input_dir, target_dir, tuple(eval_flags))
    if key not in _INPUT_SCORES:
        from erlrestore import metrics, scoring
        from erlrestore.data import pairing

        settings = runner.evaluation_settings(eval_flags)
        pairs = pairing.find_pairs(input_dir, target_dir or None, layout=settings.layout,
                                   pair_order=settings.pair_order)
        _, summary = scoring.measure_pairs(pairs, crop_border=settings.crop_border, show_progress=False,
                                           channel=settings.channel)
        _INPUT_SCORES[key] = {"psnr_mean": round(summary.psnr, metrics.get_metric("psnr").line_decimals),
                              "ssim_mean": round(summary.ssim, metrics.get_metric("ssim").line_decimals)}
    return dict(_INPUT_SCORES[key])


def _machine_line():
    """:func:`erlrestore.machine.summary_line`, made once per process (it imports TensorFlow)."""
    if not _MACHINE_LINE:
        _MACHINE_LINE.append(machine.summary_line())
    return _MACHINE_LINE[0]


def make_record(table, result, *, scale, flags_dir, data_root, eval_sets, sources=None, synthesized=None):
    """The committed record of one run (:mod:`erlrestore.records`) from its RowResult and run folder.

    Everything in it comes from the run (its folder, its state file and
    the scores), not from the moment the record is written: the commit is
    the one training started at, each test set names the commit it was
    scored at, so running the same command again writes the same record.
    A test set in ``synthesized`` ({name: SyntheticSet}) says how it was
    made: its clean folder, degradation, parameters and seed.
    """
    run_dir, row = result.run_dir, result.row
    state = read_json(os.path.join(run_dir, STATE_FILE), {})
    folder = RunFolder(run_dir)
    config = folder.read_config()
    lines = settings_lines(table, row, scale, flags_dir)
    root = os.path.dirname(flags_dir)
    test_sets = {}
    for name, (input_dir, target_dir) in eval_sets.items():
        images = result.images[name]
        source = (sources or {}).get(name, input_dir)
        entry = test_sets[name] = {
            "folder": records.display_path(source, data_root),
            "target_folder": records.display_path(target_dir, data_root) if target_dir and source == input_dir else "",
            "count": len(images),
            "contents": records.test_set_key(input_dir, target_dir, ()),
            "eval_flags": list(table.eval_flags),
            "scored_at": result.scored_at.get(name),
        }
        spec = (synthesized or {}).get(name)
        if spec is not None:
            entry["synthesis"] = {"clean_folder": records.display_path(source, data_root),
                                  "degradation": spec.degradation, "params": spec.params, "seed": int(spec.seed),
                                  "made_by": "erlrestore.data.synthetic.synthesize_folder (erlrestore-synth)"}
        means = {"psnr": result.scores[name][0], "ssim": result.scores[name][1], **result.extra_means.get(name, {})}
        for metric, mean in means.items():  # psnr_mean, ssim_mean, then <metric>_mean of the registered ones
            entry[f"{metric}_mean"] = round(mean, _line_decimals(metric))
        if name in result.inputs:
            entry["input"] = result.inputs[name]
        entry["images"] = images
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
        # Runs trained before the state kept the precision: the training's own line in its log.
        "precision": {"requested": records.last_flag(lines, "precision", "auto"),
                      "resolved": state.get("precision") or records.precision_from_log(folder.train_log)},
        "budget": config.get("stage_budget") or records.last_flag(lines, "stage_budget", "each"),
        "steps": result.steps,
        "train_seconds": round(result.train_seconds, 1),
        "curve": [round(float(v), 4) for v in result.curve],
        "machine": state.get("machine"),
        "test_sets": test_sets,
    }


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
    flags_dir = os.path.abspath(flags_dir or repository_flags_dir())
    overlay = overlay_path(flags_dir, table, scale)
    if not os.path.exists(overlay):
        raise ValueError(f"no scale overlay {overlay}")
    records_dir = records_dir or default_records_dir(scale, output_dir)
    sources, synthesized = {}, {}
    sets = resolve_eval_sets(table, scale, data_root, eval_sets, output_dir, sources=sources, synthesized=synthesized)
    data_flags = list(train_flags) or scale_data_flags(scale, data_root, table)
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
                                            eval_sets=sets, sources=sources, synthesized=synthesized)
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
    if table.key in paper_tables.TABLE1_KEYS:
        # Fig. 3: every Table I task recorded so far, from the records (not only this invocation's runs).
        figure = os.path.join(output_dir, "rethinking_table1.png")
        if plot_levels(figure, records.load_records(records_dir)):
            log(f"  Fig. 3 (PSNR against the number of levels): {figure}")
    figure = results_page.draw_table_figure(table.key, stored, table_dir)  # Fig. 6 / Fig. 13, beside results.md
    if figure:
        log(f"  {table.title}: {figure}")
    return results
