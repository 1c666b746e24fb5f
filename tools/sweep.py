"""Architecture sweeps of the rethinking paper (Fig. 3 / 12, Fig. 6, Fig. 13): train, evaluate, tabulate, plot.

    python -m tools.sweep --sweep=levels --output_dir=sweeps/rain800 \\
        --train_input_dir=Rain800/train --val_input_dir=Rain800/test --stage_epochs=200
    python -m tools.sweep --sweep=info_accum_layers --output_dir=sweeps/rain800 --extra_flags="--gan_loss=lsgan" ...
    python -m tools.sweep --sweep=info_accum_position --output_dir=sweeps/rain800 ...

Sweeps (``--values`` replaces the default list):

- ``levels`` (Fig. 3 and Fig. 12): down/up-sampling levels N = 1..8 of the
  ``UNet`` and the ``EnDec`` (En/Decoder) generators (``--models`` picks).
- ``info_accum_layers`` (Fig. 6): a UNet-5 (``--base_levels``) with an
  InfoAccum-L module before the generator, L in 0, 1, 3, 5, 10, 15, 20.
  The paper does not list its L values; these are our choice (0 is the plain
  UNet-5 baseline, 15 the paper's InfoAccum-15).
- ``info_accum_position`` (Fig. 13): a UNet-5 with InfoAccum-15
  (``--position_info_accum_layers``) at position 0..4. Our position 0 (before
  the generator, i.e. before encoder level 0) is the paper's "1st", our ``k``
  its "(k+1)-th". A value may join positions with ``+`` (``0+1`` puts a
  module at both, like the paper's "1st - 2nd"). The paper's Fig. 13 uses the
  8-level pix2pix U-Net: ``--base_levels=8 --values=0,1,2,3,4,5,6,7,0+1+2+3+4+5+6+7``.

Every configuration is one ``erlrestore-train`` run in
``<output_dir>/<sweep>/<name>/`` (e.g. ``levels/UNet-3``,
``info_accum_layers/UNet-5_InfoAccum-10``,
``info_accum_position/UNet-5_InfoAccum-15_at-0+1``), then one
``erlrestore-evaluate`` of its ``final.keras`` on ``--eval_input_dir`` /
``--eval_target_dir`` (default: the validation set). Both run as
subprocesses of this interpreter; their output goes to ``train.log`` and
``evaluate.log`` in the run's folder. The training command is, in order:
``--extra_flags`` (a flagfile and/or flags, e.g. ``--gan_loss=lsgan`` or a
tiny variant), the data and schedule flags given here, the swept flags
(``--model``, ``--levels``, ``--info_accum_*``) and ``--model_dir``; absl
lets a later flag override an earlier one, so the swept value always wins.
The training defaults are ``erlrestore-train``'s (pix2pix: BCE GAN + 100 L1);
give the schedule with ``--stage_steps`` or ``--stage_epochs`` (here or in
``--extra_flags``). Before anything is trained, every configuration's flags
that still has to be trained are parsed and checked once by
``erlrestore-train``'s own code (``--check_flags``), so a typo fails in
seconds, not after hours.

Results: a row is appended to ``<output_dir>/results.csv`` (columns
``sweep, model, value, psnr_y, ssim_y, model_dir, seconds, error``) as soon
as each configuration finishes, so an interrupted sweep loses nothing.
``seconds`` is the wall time this invocation spent on the configuration.
A failed training or evaluation is recorded with its ``error`` (the tool's
last error line and the log's path) and the sweep goes on; the exit status
is 1 when any configuration failed, and they are listed on stderr.

Resuming: run the same command again. A configuration whose run folder has
``final.keras`` is not trained again: if ``results.csv`` already holds a
successful row for it, that row is reused as it is (``--reevaluate``
evaluates again and appends a new row, e.g. for another evaluation set);
otherwise it is only evaluated. A configuration without ``final.keras`` is
trained, and ``erlrestore-train`` resumes it from its last checkpoint. The
training arguments of every run are kept in ``sweep_command.json`` in its
folder; a finished run whose arguments differ from the current ones is
reported as failed rather than silently reused (use a new ``--output_dir``
per experimental setting). When a configuration has several rows, the last
successful one is the one plotted.

Figure: ``<output_dir>/<sweep>.png``, Y-PSNR and Y-SSIM against the swept
value, one line per model. It needs matplotlib (``pip install matplotlib``,
or the package's ``plots`` extra); without it the CSV is still written and
the tool prints that the PNG was skipped. ``--plot_only`` redraws it from
``results.csv`` without running anything.
"""

import csv
import dataclasses
import json
import os
import shlex
import sys
import time

from absl import app, flags, logging

from erlrestore import runner as experiment_runner
from erlrestore.data.image_files import DataError
from erlrestore.progress import progress
from erlrestore.run_folder import RunFolder
from erlrestore.runner import check_train_arguments  # noqa: F401  (importable from here, as before)
from tools.common import load_pyplot

FLAGS = flags.FLAGS

SWEEPS = ("levels", "info_accum_layers", "info_accum_position")
DEFAULT_VALUES = {
    "levels": ("1", "2", "3", "4", "5", "6", "7", "8"),
    "info_accum_layers": ("0", "1", "3", "5", "10", "15", "20"),
    "info_accum_position": ("0", "1", "2", "3", "4"),
}
DEFAULT_MODELS = {"levels": ("UNet", "EnDec"), "info_accum_layers": ("UNet",), "info_accum_position": ("UNet",)}
GENERATORS = ("UNet", "EnDec")
MAX_LEVELS = 8
CSV_COLUMNS = ("sweep", "model", "value", "psnr_y", "ssim_y", "model_dir", "seconds", "error")
RESULTS_FILE = "results.csv"
COMMAND_FILE = "sweep_command.json"
EVAL_SET = "evaluation"  # the name of a configuration's one test set
_X_LABELS = {
    "levels": "down/up-sampling levels N",
    "info_accum_layers": "InfoAccum layers L",
    "info_accum_position": "InfoAccum position (0 = before the generator = the paper's '1st')",
}
_TITLES = {
    "levels": "Fig. 3 / 12: generator depth",
    "info_accum_layers": "Fig. 6: InfoAccum layers",
    "info_accum_position": "Fig. 13: InfoAccum position",
}


@dataclasses.dataclass(frozen=True)
class Config:
    """One configuration of a sweep.

    ``model`` is the label of its line in the CSV and the figure (``UNet``,
    ``EnDec`` or e.g. ``UNet-5``), ``value`` the swept value as a canonical
    string, ``name`` its run folder and ``flags`` the swept training flags.
    """

    sweep: str
    model: str
    value: str
    name: str
    flags: tuple

    @property
    def key(self):
        return (self.sweep, self.model, self.value)


def _integer(sweep, value, low, high=None):
    try:
        number = int(value)
    except ValueError:
        number = None
    if number is None or number < low or (high is not None and number > high):
        bound = f"integers in {low}..{high}" if high is not None else f"integers >= {low}"
        raise ValueError(f"--values of the {sweep} sweep must be {bound}, got {value!r}")
    return number


def configurations(sweep, values=None, models=None, base_levels=5, position_info_accum_layers=15):
    """The configurations of ``sweep`` (one of :data:`SWEEPS`), in run order.

    ``values`` replaces :data:`DEFAULT_VALUES`; ``models`` the generators
    (default: UNet and EnDec for ``levels``, UNet otherwise). Raises
    ValueError naming a bad value.
    """
    if sweep not in SWEEPS:
        raise ValueError(f"unknown sweep {sweep!r}; choose one of {', '.join(SWEEPS)}")
    values = [str(v).strip() for v in (values or DEFAULT_VALUES[sweep])]
    models = list(models or DEFAULT_MODELS[sweep])
    for model in models:
        if model not in GENERATORS:
            raise ValueError(f"--models takes {' and '.join(GENERATORS)}, got {model!r}")
    if len(set(models)) != len(models):
        raise ValueError(f"--models has duplicates: {','.join(models)}")
    if not 1 <= base_levels <= MAX_LEVELS:
        raise ValueError(f"--base_levels must be in 1..{MAX_LEVELS}, got {base_levels}")
    canonical = []
    for value in values:
        if sweep == "levels":
            canonical.append(str(_integer(sweep, value, 1, MAX_LEVELS)))
        elif sweep == "info_accum_layers":
            canonical.append(str(_integer(sweep, value, 0)))
        else:
            parts = [_integer(sweep, p, 0, base_levels - 1) for p in value.split("+")]
            if len(set(parts)) != len(parts):
                raise ValueError(f"--values of the {sweep} sweep: {value!r} repeats a position")
            canonical.append("+".join(str(p) for p in sorted(parts)))
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"--values has duplicates: {','.join(values)}")

    configs = []
    for model in models:
        for value in canonical:
            if sweep == "levels":
                configs.append(Config(sweep, model, value, f"{model}-{value}",
                                      (f"--model={model}", f"--levels={value}")))
            elif sweep == "info_accum_layers":
                label = f"{model}-{base_levels}"
                configs.append(Config(sweep, label, value, f"{label}_InfoAccum-{value}", (
                    f"--model={model}", f"--levels={base_levels}", f"--info_accum_layers={value}",
                    "--info_accum_positions=0")))
            else:
                label = f"{model}-{base_levels}"
                configs.append(Config(
                    sweep, label, value, f"{label}_InfoAccum-{position_info_accum_layers}_at-{value}", (
                        f"--model={model}", f"--levels={base_levels}",
                        f"--info_accum_layers={position_info_accum_layers}",
                        f"--info_accum_positions={value.replace('+', ',')}")))
    return configs


def extra_arguments(text):
    """Splits ``--extra_flags``: flags are kept, an existing file becomes ``--flagfile=<file>``."""
    arguments = []
    for token in shlex.split(text or ""):
        if token.startswith("-"):
            arguments.append(token)
        elif os.path.isfile(token):
            arguments.append(f"--flagfile={token}")
        else:
            raise ValueError(f"--extra_flags: {token!r} is neither a flag (--name=value) nor an existing flagfile")
    return arguments


def train_arguments(config, model_dir, extra=(), data=()):
    """``erlrestore-train`` arguments of one configuration: extra, data, swept flags, model_dir (later wins)."""
    return [*extra, *data, *config.flags, f"--model_dir={model_dir}", "--verbose=0"]


# --- results.csv --------------------------------------------------------------------------------------

def read_rows(path):
    """The rows of a results CSV as dicts ([] when it does not exist); DataError for another CSV."""
    if not os.path.exists(path):
        return []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None:
            return []
        if tuple(reader.fieldnames) != CSV_COLUMNS:
            raise DataError(f"{path} has columns {','.join(reader.fieldnames)}, expected {','.join(CSV_COLUMNS)}; "
                            "use another --output_dir")
        return list(reader)


def append_row(path, row):
    """Appends one row (a dict over :data:`CSV_COLUMNS`), writing the header first into a new file."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        if new:
            writer.writeheader()
        writer.writerow({column: row.get(column, "") for column in CSV_COLUMNS})
        f.flush()
        os.fsync(f.fileno())


def latest_results(rows, sweep):
    """``{(model, value): row}``: the last successful row of each configuration of ``sweep``."""
    latest = {}
    for row in rows:
        if row["sweep"] == sweep and not row["error"] and row["psnr_y"]:
            latest[(row["model"], row["value"])] = row
    return latest


# --- Running ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    """What happened to one configuration: ``status`` is trained, evaluated, cached or failed."""

    config: Config
    status: str
    row: dict


def run_configuration(config, output_dir, extra=(), data=(), evaluation=("", "", ()), cached=None, reevaluate=False,
                      runner=experiment_runner, timeout=None):
    """Trains (unless ``final.keras`` exists) and evaluates one configuration; returns an :class:`Outcome`.

    ``evaluation`` is ``(input_dir, target_dir, extra_eval_flags)``.
    ``cached`` is the configuration's last successful CSV row, reused when
    the model exists and ``reevaluate`` is False. ``runner`` runs the
    experiment (:func:`erlrestore.runner.run`, or a stand-in with its
    ``run``); ``timeout`` bounds the training and the evaluation. Never
    raises for a failed run: the outcome's row then has ``error`` set.
    """
    start = time.monotonic()
    model_dir = os.path.join(output_dir, config.sweep, config.name)
    arguments = train_arguments(config, model_dir, extra, data)
    row = dict(sweep=config.sweep, model=config.model, value=config.value, model_dir=model_dir,
               psnr_y="", ssim_y="", seconds="", error="")

    def failed(message):
        row.update(error=message, seconds=f"{time.monotonic() - start:.1f}")
        return Outcome(config, "failed", row)

    record = os.path.join(model_dir, COMMAND_FILE)
    if RunFolder(model_dir).finished:
        if os.path.exists(record):
            with open(record, encoding="utf-8") as f:
                recorded = json.load(f).get("train_arguments")
            if recorded != arguments:
                return failed(f"{model_dir} was trained with other arguments ({COMMAND_FILE}: {recorded}); "
                              "delete the folder or use another --output_dir")
        if cached is not None and not reevaluate:
            return Outcome(config, "cached", dict(cached))
    else:
        os.makedirs(model_dir, exist_ok=True)
        with open(record, "w", encoding="utf-8") as f:
            json.dump({"train_arguments": arguments}, f, indent=2)

    input_dir, target_dir, eval_extra = evaluation
    test_set = experiment_runner.EvalSet(EVAL_SET, input_dir, target_dir, tuple(eval_extra))
    try:
        experiment = runner.run(arguments, [test_set], timeout=timeout)
        scores = experiment.scores[EVAL_SET]
        psnr, ssim = scores.metric("psnr_y"), scores.metric("ssim_y")
    except experiment_runner.RunError as error:
        return failed(str(error))
    except KeyError as error:
        return failed(f"evaluation: {error.args[0]}")
    row.update(psnr_y=f"{psnr:.4f}", ssim_y=f"{ssim:.5f}", seconds=f"{time.monotonic() - start:.1f}")
    return Outcome(config, "trained" if experiment.training else "evaluated", row)


def run_sweep(configs, output_dir, extra=(), data=(), evaluation=("", "", ()), reevaluate=False,
              runner=experiment_runner, timeout=None):
    """Runs every configuration in turn, appending each new row to ``<output_dir>/results.csv`` at once.

    Returns the list of :class:`Outcome`. ``runner`` (:mod:`erlrestore.runner`,
    or a stand-in with its ``run``) is replaceable for tests.
    """
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, RESULTS_FILE)
    rows = read_rows(csv_path)
    outcomes = []
    for config in progress(configs, desc=f"sweep {configs[0].sweep if configs else ''}"):
        cached = latest_results(rows, config.sweep).get((config.model, config.value))
        finished = RunFolder(os.path.join(output_dir, config.sweep, config.name)).finished
        logging.info("%s %s=%s: %s", config.model, config.sweep, config.value,
                     "final.keras exists" if finished else "training")
        outcome = run_configuration(config, output_dir, extra, data, evaluation, cached=cached,
                                    reevaluate=reevaluate, runner=runner, timeout=timeout)
        if outcome.status != "cached":
            append_row(csv_path, outcome.row)
            rows.append(outcome.row)
        if outcome.status == "failed":
            logging.error("%s %s=%s failed: %s", config.model, config.sweep, config.value, outcome.row["error"])
        else:
            logging.info("%s %s=%s %s: psnr_y=%s ssim_y=%s", config.model, config.sweep, config.value,
                         outcome.status, outcome.row["psnr_y"], outcome.row["ssim_y"])
        outcomes.append(outcome)
    return outcomes


# --- Figure -------------------------------------------------------------------------------------------

def _position_order(value):
    parts = [int(p) for p in value.split("+")]
    return (len(parts), parts)


def plot_sweep(rows, sweep, path):
    """Draws Y-PSNR and Y-SSIM against the swept value, one line per model.

    Uses the last successful row of each configuration. Returns False
    (drawing nothing) when matplotlib is missing; raises ValueError when
    there is no successful row of ``sweep``.
    """
    latest = latest_results(rows, sweep)
    if not latest:
        raise ValueError(f"no successful {sweep} results to plot")
    pyplot = load_pyplot()
    if pyplot is None:
        return False
    models = list(dict.fromkeys(model for model, _ in latest))
    values = list(dict.fromkeys(value for _, value in latest))
    categorical = sweep == "info_accum_position"
    values.sort(key=_position_order if categorical else int)
    figure, axes = pyplot.subplots(1, 2, figsize=(10, 4))
    for model in models:
        present = [v for v in values if (model, v) in latest]
        x = [values.index(v) for v in present] if categorical else [int(v) for v in present]
        for ax, column in zip(axes, ("psnr_y", "ssim_y")):
            ax.plot(x, [float(latest[(model, v)][column]) for v in present], "o-", label=model)
    for ax, name in zip(axes, ("Y-PSNR (dB)", "Y-SSIM")):
        ax.set_xlabel(_X_LABELS[sweep])
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if categorical:
            ax.set_xticks(range(len(values)))
            ax.set_xticklabels(values)
        else:
            ax.set_xticks(sorted(int(v) for v in values))
        ax.legend()
    figure.suptitle(_TITLES[sweep])
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return True


# --- Command line -------------------------------------------------------------------------------------

_DATA_FLAGS = ("train_input_dir", "train_target_dir", "val_input_dir", "val_target_dir", "degradation")


def define_flags():
    flags.DEFINE_enum("sweep", None, list(SWEEPS), "Which sweep: levels (Fig. 3/12), info_accum_layers (Fig. 6), "
                      "info_accum_position (Fig. 13).")
    flags.DEFINE_string("output_dir", None, "Runs go to <output_dir>/<sweep>/<name>/; results.csv and "
                        "<sweep>.png to <output_dir>.")
    flags.DEFINE_list("values", [], "Swept values (default: levels 1..8; layers 0,1,3,5,10,15,20; "
                      "positions 0..4, '+' joins positions).")
    flags.DEFINE_list("models", [], "Generators, UNet and/or EnDec (default: both for levels, UNet otherwise).")
    flags.DEFINE_integer("base_levels", 5, "Generator levels of the InfoAccum sweeps (paper: 5 for Fig. 6, "
                         "8 for Fig. 13).", lower_bound=1, upper_bound=MAX_LEVELS)
    flags.DEFINE_integer("position_info_accum_layers", 15, "InfoAccum layers of the position sweep (paper: 15).",
                         lower_bound=1)
    flags.DEFINE_string("extra_flags", "", "Flagfile(s) and/or flags given to every training run first "
                        "(e.g. 'flags/unet5_lsgan.flags' or '--gan_loss=lsgan --gen_filters=32').")
    flags.DEFINE_string("train_input_dir", None, "Passed to erlrestore-train.")
    flags.DEFINE_string("train_target_dir", None, "Passed to erlrestore-train.")
    flags.DEFINE_string("val_input_dir", None, "Passed to erlrestore-train; the default evaluation set.")
    flags.DEFINE_string("val_target_dir", None, "Passed to erlrestore-train.")
    flags.DEFINE_integer("procedural", 0, "Passed to erlrestore-train (synthetic training data).", lower_bound=0)
    flags.DEFINE_string("degradation", None, "Passed to erlrestore-train (with --procedural).")
    flags.DEFINE_list("stage_steps", [], "Passed to erlrestore-train.")
    flags.DEFINE_list("stage_epochs", [], "Passed to erlrestore-train.")
    flags.DEFINE_integer("crop_size", None, "Passed to erlrestore-train.", lower_bound=8)
    flags.DEFINE_string("eval_input_dir", None, "Evaluation images (default: --val_input_dir).")
    flags.DEFINE_string("eval_target_dir", None, "Clean evaluation images, when not inside --eval_input_dir "
                        "(default: --val_target_dir when evaluating on the validation set).")
    flags.DEFINE_string("eval_flags", "", "Extra erlrestore-evaluate flags, e.g. '--crop_border=4'.")
    flags.DEFINE_boolean("reevaluate", False, "Evaluate finished runs again even when results.csv has them.")
    flags.DEFINE_boolean("check_flags", True, "Check every configuration's training flags before training.")
    flags.DEFINE_boolean("plot_only", False, "Only redraw <sweep>.png from results.csv.")
    flags.DEFINE_integer("timeout", 0, "Seconds allowed to each training or evaluation (0: no limit).",
                         lower_bound=0)
    flags.mark_flag_as_required("sweep")
    flags.mark_flag_as_required("output_dir")


def check_eval_flags(arguments):
    """Raises for ``--eval_flags`` the runner cannot score with, or that score another channel than Y.

    absl's ``flags.Error`` names a flag that is not a scoring flag of
    ``erlrestore-evaluate`` (:class:`erlrestore.runner.EvaluationSettings`)
    or a bad value; ValueError a channel other than Y (the CSV holds
    ``psnr_y``/``ssim_y``).
    """
    if experiment_runner.evaluation_settings(arguments).channel != "y":
        raise ValueError("--eval_flags: the sweep records Y-channel scores (psnr_y, ssim_y); drop --channel")


def _data_arguments():
    arguments = [f"--{name}={getattr(FLAGS, name)}" for name in _DATA_FLAGS if getattr(FLAGS, name)]
    if FLAGS.procedural:
        arguments.append(f"--procedural={FLAGS.procedural}")
    for name in ("stage_steps", "stage_epochs"):
        if getattr(FLAGS, name):
            arguments.append(f"--{name}={','.join(getattr(FLAGS, name))}")
    if FLAGS.crop_size:
        arguments.append(f"--crop_size={FLAGS.crop_size}")
    return arguments


def _draw(output_dir, sweep, rows):
    path = os.path.join(output_dir, f"{sweep}.png")
    """Draws <sweep>.png; returns False when there were no successful results to draw."""
    try:
        drawn = plot_sweep(rows, sweep, path)
    except ValueError as error:
        print(f"note: {error}; {path} not drawn", file=sys.stderr)
        return False
    if drawn:
        print(f"wrote {path}")
    else:
        print(f"note: matplotlib is not installed, {path} was skipped (install it with `pip install matplotlib`); "
              f"the results are in {os.path.join(output_dir, RESULTS_FILE)}")
    return True


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        configs = configurations(FLAGS.sweep, FLAGS.values, FLAGS.models, FLAGS.base_levels,
                                 FLAGS.position_info_accum_layers)
        extra = extra_arguments(FLAGS.extra_flags)
        eval_extra = shlex.split(FLAGS.eval_flags)
        check_eval_flags(eval_extra)
    except (ValueError, flags.Error) as error:
        raise app.UsageError(str(error)) from None
    output_dir = FLAGS.output_dir
    csv_path = os.path.join(output_dir, RESULTS_FILE)
    if FLAGS.plot_only:
        try:
            return 0 if _draw(output_dir, FLAGS.sweep, read_rows(csv_path)) else 1
        except DataError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1

    if FLAGS.eval_input_dir:
        evaluation = (FLAGS.eval_input_dir, FLAGS.eval_target_dir or "", eval_extra)
    elif FLAGS.val_input_dir:
        evaluation = (FLAGS.val_input_dir, FLAGS.eval_target_dir or FLAGS.val_target_dir or "", eval_extra)
    else:
        raise app.UsageError("give --eval_input_dir or --val_input_dir: every trained model is evaluated "
                             "(erlrestore-synth makes a synthetic test set)")
    data = _data_arguments()
    to_train = [c for c in configs if not RunFolder(os.path.join(output_dir, c.sweep, c.name)).finished]
    if FLAGS.check_flags and to_train:
        lists = [train_arguments(c, os.path.join(output_dir, c.sweep, c.name), extra, data) for c in to_train]
        messages = check_train_arguments(lists)
        problems = [f"{c.name}: {m}" for c, m in zip(to_train, messages) if m]
        if problems:
            raise app.UsageError("erlrestore-train rejects these configurations:\n  " + "\n  ".join(problems))
    try:
        outcomes = run_sweep(configs, output_dir, extra, data, evaluation, reevaluate=FLAGS.reevaluate,
                             timeout=FLAGS.timeout or None)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted; finished configurations are in {csv_path}; run the same command again to go on",
              file=sys.stderr)
        return 130

    print(f"{'model':<10} {FLAGS.sweep:<20} {'psnr_y':>8} {'ssim_y':>8}  status")
    for outcome in outcomes:
        row = outcome.row
        print(f"{row['model']:<10} {row['value']:<20} {row['psnr_y'] or '-':>8} {row['ssim_y'] or '-':>8}  "
              f"{outcome.status}")
    print(f"results: {csv_path}")
    _draw(output_dir, FLAGS.sweep, read_rows(csv_path))
    failures = [o for o in outcomes if o.status == "failed"]
    if failures:
        print(f"{len(failures)} of {len(outcomes)} configurations failed:", file=sys.stderr)
        for outcome in failures:
            print(f"  {outcome.config.name}: {outcome.row['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
