"""The experiment runner: train a run from ``erlrestore-train`` arguments, score it on test sets, return data.

``erlrestore-reproduce`` (:mod:`erlrestore.reproduce`) and the architecture
sweeps (``tools.sweep``) run every experiment through :func:`run`::

    experiment = runner.run(["--flagfile=flags/memd.flags", "--procedural=4", "--model_dir=runs/memd"],
                            [runner.EvalSet("rain12", "data/rain12")])
    experiment.scores["rain12"].metric("psnr_y")

It trains with the training library itself (the settings parsed from the
arguments as ``erlrestore-train`` parses them, checked, then
:func:`erlrestore.training.experiment.train`) unless the run folder already
holds ``final.keras`` (an unfinished run resumes from its checkpoints),
then scores ``final.keras`` on every :class:`EvalSet` with
:func:`erlrestore.evaluation.evaluate_model`, as ``erlrestore-evaluate``
does. The answer is an :class:`Experiment`: the :class:`Training` (steps,
wall time, precision, paths) and one :class:`Scores` per set (mean and
per-image PSNR/SSIM as numbers, looked up by name with
:meth:`Scores.metric`).

Isolation: by default the work runs in a child process started with
``multiprocessing``'s ``spawn`` context, so TensorFlow's state and memory
go away with it; the child sends its results back through a pipe as Python
objects, never as printed text. Its output goes to the run folder's
``train.log`` and ``evaluate.log`` (:mod:`erlrestore.run_folder`), each
part headed by the equivalent command line. ``timeout`` bounds the
training and each evaluation. ``isolate=False`` does the same work in the
calling process, its output left where it goes.

A failure is a :class:`RunError` naming the stage (``training`` or
``evaluation``), the error and the log; what finished before it is in its
``partial`` experiment.
"""

import contextlib
import dataclasses
import multiprocessing
import os
import shlex
import sys
import time
import traceback

from erlrestore import backends
from erlrestore.data import pairing
from erlrestore.run_folder import RunFolder
from erlrestore.training import options

PROCESS_FLAG = "max_image_pixels"  # a setting of the training command's process, not of the training
# erlrestore.metrics.CHANNELS, repeated so that declaring the settings does not import TensorFlow
# (tests/test_runner.py checks they agree).
CHANNELS = ("y", "rgb")


@dataclasses.dataclass(frozen=True)
class EvaluationSettings:
    """How a test set is scored: the scoring flags of ``erlrestore-evaluate``, with their meanings there."""

    crop_border: int = options.integer(0, "Pixels removed from every side before measuring.", lower=0)
    channel: str = options.choice("y", CHANNELS, "Score on the BT.601 Y channel or on RGB.")
    norm_statistics: str = options.choice("running", ("running", "batch"),
                                          "Batch-norm statistics: running (inference mode) or batch (training=True).")
    self_ensemble: bool = options.boolean(False, "Restore with the x8 flip/rotation self-ensemble.")
    quantize: bool = options.boolean(True, "Round restored images to 8 bits before scoring.")
    tile: int = options.integer(None, "Restore images larger than this in overlapping tiles.", lower=1)
    overlap: int = options.integer(32, "With --tile: least overlap of neighbouring tiles in pixels.", lower=0)
    backend: str = options.choice("tensorflow", lambda: backends.NAMES, "The runtime that runs the model.")
    workers: int = options.integer(0, "Threads for decoding and scoring (0: one per CPU, at most 4).", lower=0)
    layout: str = options.choice("auto", pairing.LAYOUTS, "How files are paired; 'auto' detects it.")
    pair_order: str = options.choice("", ("",) + pairing.PAIR_ORDERS, "Half order for side_by_side images.")


def evaluation_settings(arguments):
    """:class:`EvaluationSettings` from ``erlrestore-evaluate`` scoring flags (``["--crop_border=4"]``).

    Raises absl's ``flags.Error`` for a flag that is not a scoring flag
    or a value the command would refuse.
    """
    return options.from_argv(EvaluationSettings, list(arguments), program="erlrestore-evaluate")


@dataclasses.dataclass(frozen=True)
class EvalSet:
    """A test set: a name, its degraded images (or a folder holding both sets), its clean images, and
    ``erlrestore-evaluate`` scoring flags (:class:`EvaluationSettings`)."""

    name: str
    input_dir: str
    target_dir: str = ""
    flags: tuple = ()

    def command(self, model_path):
        """The ``erlrestore-evaluate`` command line that scores ``model_path`` the same way (for logs)."""
        target = [f"--target_dir={self.target_dir}"] if self.target_dir else []
        return ["erlrestore-evaluate", f"--model={model_path}", f"--input_dir={self.input_dir}", *target,
                *self.flags]


@dataclasses.dataclass(frozen=True)
class Scores:
    """A model's scores on one test set: ``count`` images, mean ``psnr`` and ``ssim`` on ``channel``, and
    ``images``, one ``{"name", "psnr", "ssim"}`` per image as the per-image CSV (``csv``) holds them.

    ``extra_metrics``: ``((name, mean), ...)`` of the metrics registered beyond PSNR and SSIM
    (:func:`erlrestore.metrics.register_metric`); each image's dict has them by name too.
    """

    name: str
    count: int
    psnr: float
    ssim: float
    channel: str = "y"
    images: tuple = ()
    csv: str = ""
    extra_metrics: tuple = ()

    def metric_values(self):
        """``((name, mean), ...)``: PSNR, SSIM, then the registered metrics measured (``extra_metrics``)."""
        return (("psnr", self.psnr), ("ssim", self.ssim), *self.extra_metrics)

    def metric(self, name):
        """A score by its name: ``n`` or ``<metric>_<channel>`` (``psnr_y``, ``ssim_rgb``, ``lpips_y``...).

        Raises KeyError for a name these scores do not have (e.g. ``psnr_y``
        of scores measured on RGB).
        """
        values = {"n": self.count, **{f"{metric}_{self.channel}": value for metric, value in self.metric_values()}}
        if name not in values:
            raise KeyError(f"no score {name!r} in the scores of {self.name}; they have {', '.join(values)}")
        return values[name]


@dataclasses.dataclass(frozen=True)
class Training:
    """A finished training: its folder, ``final.keras`` (``""`` when ``--stop_after`` ended it first), the
    optimizer steps its schedule plans (:func:`total_steps`), the wall time and the precision it ran in."""

    run_dir: str
    final: str
    steps: int
    seconds: float
    precision: str


@dataclasses.dataclass
class Experiment:
    """What :func:`run` did: the run folder, its :class:`Training` (None when ``final.keras`` was there
    already) and :class:`Scores` by test-set name."""

    run_dir: str
    training: Training = None
    scores: dict = dataclasses.field(default_factory=dict)


class RunError(RuntimeError):
    """A training or an evaluation of :func:`run` failed or timed out.

    ``stage`` is ``"training"`` or ``"evaluation"``, ``log_path`` the log
    it wrote, ``seconds`` the time the failed stage ran, ``partial`` the
    :class:`Experiment` of what finished before it.
    """

    def __init__(self, message, *, stage, log_path="", seconds=0.0, partial=None):
        super().__init__(message)
        self.stage = stage
        self.log_path = log_path
        self.seconds = seconds
        self.partial = partial


def split_process_flags(arguments):
    """``(arguments less --max_image_pixels, its value or None)``: a setting of the command, not of the
    training. Raises ValueError for a value that is not a non-negative integer, as the command would."""
    kept, limit = [], None
    for argument in arguments:
        name, _, value = argument.lstrip("-").partition("=")
        if argument.startswith("--") and name == PROCESS_FLAG:
            if not value.isdigit():
                raise ValueError(f"--{PROCESS_FLAG} takes a non-negative integer, not {value!r}")
            limit = int(value)
            continue
        kept.append(argument)
    return kept, limit


def check_train_arguments(argument_lists):
    """Parses and checks every argument list with erlrestore-train's own code, in this process.

    Returns one message per list (``""`` when it is valid, else the error's
    type and text): the training settings parsed as ``erlrestore-train``
    parses them (:func:`erlrestore.training.experiment.settings_from_argv`),
    then :func:`~erlrestore.training.experiment.check_settings`; data
    folders are not opened.
    """
    from absl import flags

    from erlrestore.training import experiment  # TensorFlow: only when there is something to check

    messages = []
    for arguments in argument_lists:
        try:
            experiment.check_settings(experiment.settings_from_argv(split_process_flags(arguments)[0]))
            messages.append("")
        except (flags.Error, ValueError) as error:
            messages.append(f"{type(error).__name__}: {error}")
    return messages


def model_dir_of(arguments):
    """The run folder the training arguments name (their last ``--model_dir=``); ValueError without one."""
    folders = [a.split("=", 1)[1] for a in arguments if a.startswith("--model_dir=")]
    if not folders or not folders[-1]:
        raise ValueError("the training arguments name no run folder (--model_dir=<folder>)")
    return folders[-1]


def total_steps(run_dir):
    """Optimizer steps of a run given in steps, over all its stages (0 when given in epochs), from run_config.json."""
    from erlrestore.training import experiment, families

    config = RunFolder(run_dir).read_config()
    steps = config.get("stage_steps") or []
    try:  # the strategy table of the run's model family
        family_strategies = families.of_model(config.get("model", "")).strategies
    except ValueError:  # a model no registered family owns
        family_strategies = {}
    stage_list = family_strategies.get(config.get("strategy", "")) or ()
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


# --------------------------------------------------------------------------
# The work, in whichever process does it.
# --------------------------------------------------------------------------


def train(arguments, started=None):
    """Trains (or resumes) the run ``arguments`` describe, in this process; returns its :class:`Training`.

    ``arguments`` are ``erlrestore-train``'s (flagfiles included, no
    program name); ``--max_image_pixels`` applies while it trains.
    ``started`` (``time.monotonic()``) is when the wall time starts, by
    default now. Raises what the training raises (ValueError for settings
    that make no run, absl's ``flags.Error`` for bad flags...).
    """
    from erlrestore.data import image_files
    from erlrestore.training import devices, experiment, inputs

    started = time.monotonic() if started is None else started
    arguments, limit = split_process_flags(arguments)
    settings = experiment.settings_from_argv(arguments)
    experiment.check_settings(settings)
    inputs.check_synthetic(settings.data)
    previous = image_files.set_max_pixels(limit) if limit is not None else None
    try:
        final = experiment.train(settings)
    finally:
        if limit is not None:
            image_files.set_max_pixels(previous)
    return Training(run_dir=settings.model_dir, final=final or "", steps=total_steps(settings.model_dir),
                    seconds=time.monotonic() - started, precision=devices.resolve_precision(settings.precision))


def evaluate(model_path, eval_set, csv_path=None):
    """Scores ``model_path`` on ``eval_set`` in this process, as ``erlrestore-evaluate`` with its flags would.

    Writes the per-image scores to ``csv_path`` when given (the command's
    ``--csv`` file) and returns the :class:`Scores`.
    """
    from erlrestore import evaluation, inference

    settings = evaluation_settings(eval_set.flags)
    pairs = pairing.find_pairs(eval_set.input_dir, eval_set.target_dir or None, layout=settings.layout,
                               pair_order=settings.pair_order)
    batch = settings.norm_statistics == "batch"
    model = inference.load_restorer(model_path, backend=settings.backend, batch_statistics=batch)
    scores, summary = evaluation.evaluate_model(
        model, pairs, crop_border=settings.crop_border, quantize=settings.quantize, show_progress=False,
        workers=settings.workers or None, training=batch, channel=settings.channel,
        self_ensemble=settings.self_ensemble, tile=settings.tile, overlap=settings.overlap)
    if csv_path:
        evaluation.write_csv(csv_path, scores)
    images = tuple({"name": s.name, **{name: _as_in_csv(name, value) for name, value in s.metric_values()}}
                   for s in scores)
    return Scores(eval_set.name, summary.count, summary.psnr, summary.ssim, summary.channel, images, csv_path or "",
                  summary.extra_metrics)


def _as_in_csv(name, value):
    """``value`` of metric ``name`` rounded as the per-image CSV writes it (its ``csv_decimals``)."""
    from erlrestore import metrics

    return float(metrics.get_metric(name).csv_text(value))


@dataclasses.dataclass(frozen=True)
class _Request:
    """One :func:`run`'s work, as sent to the child process."""

    arguments: tuple
    eval_sets: tuple
    csv_paths: dict
    to_logs: bool


@contextlib.contextmanager
def _output_to(log_path, command):
    """Appends this process's stdout and stderr (file descriptors 1 and 2) to ``log_path`` meanwhile,
    after a ``$ <command>`` line."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"\n$ {shlex.join(command)}\n")
        log.flush()
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in zip((1, 2), saved):
                os.dup2(copy, fd)
                os.close(copy)


def _do(request, emit, started):
    """Does the request's training and evaluations, sending each event to ``emit`` (never raises)."""
    folder = RunFolder(model_dir_of(request.arguments))
    steps = []
    if not folder.finished:
        steps.append(("training", "", folder.train_log, ["erlrestore-train", *request.arguments],
                      lambda: train(request.arguments, started=started)))
    for eval_set in request.eval_sets:
        steps.append(("evaluation", eval_set.name, folder.evaluate_log, eval_set.command(folder.final),
                      lambda s=eval_set: evaluate(folder.final, s, request.csv_paths.get(s.name))))
    for stage, name, log_path, command, work in steps:
        emit(("stage", stage, name))
        logged = _output_to(log_path, command) if request.to_logs else contextlib.nullcontext()
        with logged:
            try:
                result = work()
                if stage == "training" and not result.final:
                    raise RuntimeError("training stopped before its end (--stop_after); run again to continue")
            except Exception as error:  # pylint: disable=broad-except  (any failure is the stage's)
                if request.to_logs:
                    traceback.print_exc()
                emit(("error", stage, f"{type(error).__name__}: {error}"))
                return
        emit(("result", result))
    emit(("done",))


def _child(sender, request):
    """The child process of an isolated :func:`run`: quiet TensorFlow defaults, the work, the results sent."""
    started = time.monotonic()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from erlrestore import cli  # noqa: F401  (the tools' quiet TensorFlow import and log levels)

    try:
        _do(request, sender.send, started)
    finally:
        sender.close()


class _Collector:
    """Turns the events of :func:`_do` into an :class:`Experiment`, a :class:`RunError`, and stage reports."""

    def __init__(self, run_dir, timeout, on_stage):
        self.experiment = Experiment(run_dir)
        self.folder = RunFolder(run_dir)
        self.timeout = timeout
        self.on_stage = on_stage
        self.stage, self.log_path = "training", self.folder.train_log
        self.stage_started = time.monotonic()
        self.error = None
        self.over = False

    def receive(self, event):
        kind = event[0]
        if kind == "stage":
            self.stage, name = event[1], event[2]
            self.log_path = self.folder.train_log if self.stage == "training" else self.folder.evaluate_log
            self.stage_started = time.monotonic()
            if self.on_stage:
                self.on_stage(self.stage, name)
        elif kind == "result" and isinstance(event[1], Training):
            self.experiment.training = event[1]
        elif kind == "result":
            self.experiment.scores[event[1].name] = event[1]
        elif kind == "error":
            self.fail(f"{event[1]} failed: {event[2]}")
        else:
            self.over = True

    def remaining(self):
        """Seconds the current stage has left (None without a timeout)."""
        return None if self.timeout is None else self.timeout - (time.monotonic() - self.stage_started)

    def fail(self, message):
        self.error = RunError(f"{message} (log: {self.log_path})", stage=self.stage, log_path=self.log_path,
                              seconds=time.monotonic() - self.stage_started, partial=self.experiment)
        self.over = True

    def result(self):
        if self.error is not None:
            raise self.error
        if not self.over:
            raise RunError(f"{self.stage} ended without a result (log: {self.log_path})", stage=self.stage,
                           log_path=self.log_path, partial=self.experiment)
        return self.experiment


def _in_child(request, collector):
    """Runs ``request`` in a spawned child process, feeding its events to ``collector`` until it is over."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(sender, request), name="erlrestore-runner")
    process.start()
    sender.close()
    timed_out = False
    try:
        while not collector.over:
            left = collector.remaining()
            if left is not None and left <= 0:
                collector.fail(f"{collector.stage} timed out after {collector.timeout:g} s")
                timed_out = True
                break
            if not receiver.poll(1.0 if left is None else min(left, 1.0)):
                continue
            try:
                collector.receive(receiver.recv())
            except EOFError:  # the child ended without a word: killed, or crashed in native code
                process.join()
                collector.fail(f"{collector.stage} failed: its process exited with status {process.exitcode}")
    finally:
        process.join(timeout=0 if timed_out else 30)
        if process.is_alive():
            process.terminate()
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
        receiver.close()


def run(arguments, eval_sets=(), *, csv_paths=None, isolate=True, timeout=None, on_stage=None):
    """Trains the run ``arguments`` describe unless it has finished, then scores it on ``eval_sets``.

    Args:
      arguments: ``erlrestore-train`` arguments (no program name); they must
        name the run folder with ``--model_dir=``.
      eval_sets: :class:`EvalSet` records, scored in order.
      csv_paths: {set name: path} of the per-image CSV files to write.
      isolate: do the work in a spawned child process (module docstring).
      timeout: seconds allowed to the training and to each evaluation
        (isolated runs only; None: no limit).
      on_stage: called with ``(stage, set name)`` as each training
        (``"training", ""``) or evaluation (``"evaluation", name``) starts.

    Returns:
      an :class:`Experiment`. Raises :class:`RunError` when a stage fails.
    """
    arguments = tuple(arguments)
    run_dir = model_dir_of(arguments)
    os.makedirs(run_dir, exist_ok=True)
    request = _Request(arguments, tuple(eval_sets), dict(csv_paths or {}), to_logs=isolate)
    collector = _Collector(run_dir, timeout if isolate else None, on_stage)
    if isolate:
        _in_child(request, collector)
    else:
        _do(request, collector.receive, time.monotonic())
    return collector.result()
