"""Fig. 7 of the rethinking paper: fit a multi-term exponential to a training loss curve.

    python -m tools.fit_loss_curve --model_dir=runs/unet5 [--tag=epoch_g_l1] [--stage=] [--terms=2] \\
        [--output=fig7.png] [--steps_per_epoch=1000] [--skip=0]
    python -m tools.fit_loss_curve --csv=loss.csv [--terms=2] [--output=fig7.png]

The paper (Sec. III-C, Fig. 7) reports a *two-stage convergence*: the loss
falls fast at first, then suddenly slows down, and it shows this with a
"multinomial exponential regression". This tool fits

    loss(t) = c + sum_k a_k exp(-(t - t0) / tau_k),   k = 1..K (--terms)

to a curve, where ``t0`` is the first point's step: the ``a_k`` are the
terms' sizes at the first point (the same family of curves as with ``t`` in
the exponent; measuring from ``t0`` keeps the amplitudes finite for curves
that start late). It prints ``c``, every ``(a_k, tau_k)`` (sorted by
``tau``), R^2 and the RMSE; with two terms it names the *fast* and *slow*
time constants and the step by which the fast term has decayed to 5% of its
start (``t0 + 3 tau_fast``, our choice of "end of the first stage").

Data:
- ``--model_dir``: a run of ``erlrestore-train``; the scalar ``--tag``
  (default ``epoch_g_l1``, the generator's L1 term; ``epoch_g_loss``,
  ``epoch_d_loss`` and ``epoch_loss`` also exist) is read from the TensorBoard
  event files in ``logs/stage<k>_<name>/train/``. ``--stage`` picks the stage
  (its number ``k``, its name or its folder name); by default the last stage
  that logged the tag. ``--model_dir`` may also be a folder holding event
  files itself. TensorBoard's ``step`` there is the Keras epoch index
  (one epoch = ``--checkpoint_every`` optimizer steps): ``t`` is the number
  of finished epochs, ``(index + 1) * --steps_per_epoch``; pass the run's
  ``--checkpoint_every`` as ``--steps_per_epoch`` to get optimizer steps.
  When a resumed run logged an epoch twice, the value written last counts.
- ``--csv``: a file with a header; the step column is ``step`` and the loss
  column the first of ``--tag``, ``loss`` or ``value`` that exists
  (case-insensitive), so TensorBoard's own CSV download works as is.

Fitting: the model is linear in ``c`` and the ``a_k`` once the ``tau_k`` are
fixed, so the search is over the ``tau_k`` only (variable projection): every
combination of ``K`` values from a log-spaced grid between half the smallest
step gap and ten times the data span is scored by linear least squares; the
best one is refined by ``scipy.optimize.least_squares`` when SciPy is
installed, else by a pattern search in ``log tau`` (halving the step until it
is below 1e-6). Both work on ``t`` and ``loss`` scaled to unit range. A
``tau`` that ends on the edge of the searched range is reported: that term
is not resolved by the data (too fast for the sampling, or slower than the
curve is long).

Outputs, next to ``--output`` (a PNG): ``<stem>.json`` with the parameters
and ``<stem>.csv`` with the data, the fit and each term; these are written
whether or not matplotlib is installed. The figure (data, fit, and
``c + a_k exp(...)`` for each term) needs matplotlib
(``pip install matplotlib``, or the package's ``plots`` extra); without it
the tool says so and skips only the PNG.
"""

import csv
import dataclasses
import glob
import itertools
import json
import math
import os
import sys

import numpy as np
from absl import app, flags

from erlrestore.data.image_files import DataError
from erlrestore.training.events import read_event_scalars, stage_log_dirs
from tools.common import load_pyplot

FLAGS = flags.FLAGS

# Grid sizes per number of terms: at most a few thousand tau combinations.
_GRID_POINTS = {1: 80, 2: 60, 3: 30, 4: 18}
_GRID_MAX_SAMPLES = 2000  # points used for the grid stage (evenly subsampled)
_TAU_RANGE = (0.5, 10.0)  # x smallest step gap, x data span (in scaled units)
MIN_TAU_RATIO = 1.5  # consecutive time constants differ at least by this factor


@dataclasses.dataclass(frozen=True)
class FitResult:
    """A fitted ``loss(t) = c + sum_k a_k exp(-(t - t0) / tau_k)``.

    ``taus`` are ascending and ``amplitudes`` follow them. ``edge`` lists the
    indices of the taus that ended on the edge of the searched range;
    ``pinned`` the indices ``k`` where ``taus[k + 1] / taus[k]`` ended at
    :data:`MIN_TAU_RATIO` (the data do not separate those two terms).
    """

    offset: float
    amplitudes: tuple
    taus: tuple
    t0: float
    r2: float
    rmse: float
    n: int
    method: str
    edge: tuple = ()
    pinned: tuple = ()

    def term(self, k, t):
        """The ``k``-th exponential term (0-based) at steps ``t``."""
        t = np.asarray(t, np.float64)
        return self.amplitudes[k] * np.exp(-(t - self.t0) / self.taus[k])

    def predict(self, t):
        """The fitted curve at steps ``t``."""
        t = np.asarray(t, np.float64)
        return self.offset + sum(self.term(k, t) for k in range(len(self.taus)))

    def as_dict(self):
        out = dataclasses.asdict(self)
        out["amplitudes"] = list(self.amplitudes)
        out["taus"] = list(self.taus)
        out["edge"] = list(self.edge)
        out["pinned"] = list(self.pinned)
        if len(self.taus) == 2:
            out["fast_tau"], out["slow_tau"] = self.taus
            out["fast_stage_end"] = self.t0 + 3 * self.taus[0]
        return out


def _check_curve(steps, losses, terms):
    if not isinstance(terms, (int, np.integer)) or isinstance(terms, bool) or terms < 1:
        raise DataError(f"the number of exponential terms must be a positive integer, got {terms!r}")
    steps = np.asarray(steps, np.float64)
    losses = np.asarray(losses, np.float64)
    if steps.ndim != 1 or losses.ndim != 1 or steps.shape != losses.shape:
        raise DataError(
            f"steps and losses must be 1-D and of equal length, got shapes {steps.shape} and {losses.shape}"
        )
    needed = 2 * terms + 2
    if steps.size < needed:
        raise DataError(
            f"a {terms}-term exponential fit has {2 * terms + 1} parameters and needs at least {needed} points, "
            f"got {steps.size}"
        )
    bad_steps = np.flatnonzero(~np.isfinite(steps))
    if bad_steps.size:
        raise DataError(f"step values are not finite at positions {bad_steps[:5].tolist()}")
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
        where = ", ".join(f"step {steps[i]:g} ({losses[i]})" for i in bad[:5])
        more = f" and {bad.size - 5} more" if bad.size > 5 else ""
        raise DataError(f"the loss is not finite at {where}{more}; cut the curve before it (--skip or a shorter CSV)")
    order = np.argsort(steps, kind="stable")
    steps, losses = steps[order], losses[order]
    repeated = steps[1:][np.diff(steps) == 0]
    if repeated.size:
        raise DataError(f"steps must be distinct, step {repeated[0]:g} appears more than once")
    if np.ptp(losses) == 0:
        raise DataError(f"the loss is constant ({losses[0]:g}) over all {losses.size} points; there is nothing to fit")
    return steps, losses


def _feasible(taus, lo, hi):
    """Sorted taus within [lo, hi] with consecutive ratios of at least MIN_TAU_RATIO."""
    taus = np.clip(np.sort(np.asarray(taus, np.float64)), lo, hi)
    for k in range(1, taus.size):
        taus[k] = max(taus[k], taus[k - 1] * MIN_TAU_RATIO)
    if taus[-1] > hi:
        taus[-1] = hi
        for k in range(taus.size - 2, -1, -1):
            taus[k] = min(taus[k], taus[k + 1] / MIN_TAU_RATIO)
    return taus


def _design(s, taus):
    return np.column_stack([np.ones_like(s)] + [np.exp(-s / tau) for tau in taus])


def _project(s, y, taus):
    """Best c, a_k for fixed taus: (coefficients, residual vector)."""
    x = _design(s, taus)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    return coef, y - x @ coef


def _sse(s, y, taus):
    return float(np.sum(_project(s, y, taus)[1] ** 2))


def _grid_search(s, y, terms, lo, hi):
    if s.size > _GRID_MAX_SAMPLES:
        pick = np.unique(np.linspace(0, s.size - 1, _GRID_MAX_SAMPLES).round().astype(int))
        s, y = s[pick], y[pick]
    grid = np.geomspace(lo, hi, _GRID_POINTS.get(terms, terms + 12))
    best = None
    for taus in itertools.combinations(grid, terms):
        if terms > 1 and np.min(np.array(taus[1:]) / np.array(taus[:-1])) < MIN_TAU_RATIO:
            continue
        sse = _sse(s, y, taus)
        if best is None or sse < best[0]:
            best = (sse, np.array(taus))
    return best[1], float(np.log(grid[1] / grid[0]))


def _pattern_search(s, y, log_taus, step, lo, hi):
    """Coordinate pattern search in log tau, halving the step until it is < 1e-6."""
    log_taus = np.log(_feasible(np.exp(log_taus), lo, hi))
    best = _sse(s, y, np.exp(log_taus))
    while step > 1e-6:
        improved = False
        for k in range(log_taus.size):
            for direction in (1.0, -1.0):
                trial = log_taus.copy()
                trial[k] += direction * step
                trial = np.log(_feasible(np.exp(trial), lo, hi))
                sse = _sse(s, y, np.exp(trial))
                if sse < best:
                    best, log_taus, improved = sse, trial, True
                    break
        if not improved:
            step /= 2
    return log_taus


def _scipy_refine(s, y, log_taus, lo, hi):
    """Refines log taus with scipy.optimize.least_squares; None without SciPy or on failure."""
    try:
        from scipy import optimize
    except ImportError:
        return None
    bounds = (math.log(lo), math.log(hi))
    start = np.clip(log_taus, bounds[0] + 1e-9, bounds[1] - 1e-9)
    try:
        solution = optimize.least_squares(
            lambda v: _project(s, y, _feasible(np.exp(v), lo, hi))[1], start, bounds=bounds, method="trf", x_scale=1.0,
            xtol=1e-12, ftol=1e-12, gtol=1e-12, max_nfev=2000,
        )
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return None
    return np.log(_feasible(np.exp(solution.x), lo, hi))


def fit_exponentials(steps, losses, terms=2, use_scipy=True):
    """Fits ``loss(t) = c + sum_k a_k exp(-(t - t0) / tau_k)``; returns a :class:`FitResult`.

    ``t0`` is the smallest step. Raises :class:`DataError` for too few points
    (``2 * terms + 2`` at least), non-finite values, repeated steps or a
    constant loss. ``use_scipy=False`` forces the NumPy-only refinement.
    """
    steps, losses = _check_curve(steps, losses, terms)
    t0, span = steps[0], steps[-1] - steps[0]
    mean, scale = losses.mean(), losses.std()
    s = (steps - t0) / span
    y = (losses - mean) / scale
    lo = _TAU_RANGE[0] * float(np.min(np.diff(s)))
    hi = _TAU_RANGE[1]

    taus, grid_step = _grid_search(s, y, terms, lo, hi)
    log_taus = None
    method = "numpy"
    if use_scipy:
        log_taus = _scipy_refine(s, y, np.log(taus), lo, hi)
        if log_taus is not None and _sse(s, y, np.exp(log_taus)) <= _sse(s, y, taus) * (1 + 1e-12):
            method = "scipy"
        else:
            log_taus = None
    if log_taus is None:
        log_taus = _pattern_search(s, y, np.log(taus), grid_step, lo, hi)
    taus = _feasible(np.exp(log_taus), lo, hi)  # sorted
    coef, residual = _project(s, y, taus)
    log_taus = np.log(taus)
    edge = tuple(k for k in range(terms)
                 if min(abs(log_taus[k] - math.log(lo)), abs(log_taus[k] - math.log(hi))) < 1e-3)
    pinned = tuple(k for k in range(terms - 1) if log_taus[k + 1] - log_taus[k] < math.log(MIN_TAU_RATIO) + 1e-3)
    sse = float(np.sum((residual * scale) ** 2))
    sst = float(np.sum((losses - mean) ** 2))
    return FitResult(
        offset=float(mean + scale * coef[0]),
        amplitudes=tuple(float(scale * coef[1 + k]) for k in range(terms)),
        taus=tuple(float(tau * span) for tau in taus),
        t0=float(t0),
        r2=1.0 - sse / sst,
        rmse=math.sqrt(sse / losses.size),
        n=int(losses.size),
        method=method,
        edge=edge,
        pinned=pinned,
    )


# --- TensorBoard event files of a run ---------------------------------------------------------------


def read_run_scalars(model_dir, tag="epoch_g_l1", stage=""):
    """Reads ``tag`` of one stage of an ``erlrestore-train`` run.

    ``stage``: ``""`` for the last stage that logged ``tag``, else a stage
    number (``"2"``), name (``"restore"``) or folder name
    (``"stage2_restore"``). ``model_dir`` may also be a folder holding event
    files itself. Returns ``(steps, values, label)``, ``steps`` being the
    TensorBoard steps (Keras epoch indices for this project's runs).
    """
    if not os.path.isdir(model_dir):
        raise DataError(f"{model_dir} is not a folder")
    stages = stage_log_dirs(model_dir)
    if not stages:
        if glob.glob(os.path.join(glob.escape(model_dir), "events.out.tfevents*")):
            steps, values = read_event_scalars(model_dir, tag)
            return steps, values, model_dir
        raise DataError(f"{model_dir} has no logs/stage<k>_<name>/train folders and no event files")
    names = ", ".join(f"stage{k}_{name}" for k, name, _ in stages)
    if stage:
        chosen = [s for s in stages if stage in (str(s[0]), s[1], f"stage{s[0]}_{s[1]}")]
        if not chosen:
            raise DataError(f"{model_dir} has no stage {stage!r} (stages: {names})")
        k, name, train_dir = chosen[0]
        steps, values = read_event_scalars(train_dir, tag)
        return steps, values, f"stage{k}_{name}"
    for k, name, train_dir in reversed(stages):
        try:
            steps, values = read_event_scalars(train_dir, tag)
        except DataError:
            continue
        return steps, values, f"stage{k}_{name}"
    raise DataError(f"no stage of {model_dir} logged the scalar {tag!r} (stages: {names})")


def read_csv_curve(path, tag=""):
    """Reads ``(steps, losses)`` from a CSV with a header (see the module docstring for the columns)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except OSError as error:
        raise DataError(f"cannot read {path}: {error.strerror or error}") from None
    if not rows:
        raise DataError(f"{path} is empty")
    header = [h.strip().lower() for h in rows[0]]
    if "step" not in header:
        raise DataError(f"{path} has no 'step' column (columns: {', '.join(rows[0])})")
    candidates = [c for c in (tag.lower() if tag else "", "loss", "value") if c]
    column = next((c for c in candidates if c in header), None)
    if column is None:
        raise DataError(f"{path} has none of the loss columns {', '.join(candidates)} (columns: {', '.join(rows[0])})")
    i_step, i_loss = header.index("step"), header.index(column)
    steps, losses = [], []
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        try:
            steps.append(float(row[i_step]))
            losses.append(float(row[i_loss]))
        except (ValueError, IndexError):
            raise DataError(f"{path}, line {line}: expected numbers in columns step and {column}, got {row}") from None
    return np.array(steps), np.array(losses)


# --- Report and figure ---------------------------------------------------------------------------

def describe(result, units="steps"):
    """Human-readable lines for a fit."""
    lines = [
        f"fit: loss(t) = c + sum_k a_k exp(-(t - t0) / tau_k), t0 = {result.t0:g} {units}, "
        f"{len(result.taus)} term(s), {result.n} points, method {result.method}",
        f"c = {result.offset:.6g}",
    ]
    for k, (a, tau) in enumerate(zip(result.amplitudes, result.taus)):
        note = "  (on the edge of the searched range: not resolved by the data)" if k in result.edge else ""
        lines.append(f"term {k + 1}: a = {a:.6g}, tau = {tau:.6g} {units}{note}")
    lines.append(f"R^2 = {result.r2:.6f}, RMSE = {result.rmse:.6g}")
    for k in result.pinned:
        lines.append(f"note: terms {k + 1} and {k + 2} are held at the smallest allowed tau ratio ({MIN_TAU_RATIO}): "
                     "the data do not separate them; try fewer --terms")
    if len(result.taus) == 2:
        fast, slow = result.taus
        lines.append(
            f"two-stage convergence: fast tau = {fast:.6g} {units}, slow tau = {slow:.6g} {units} "
            f"(ratio {slow / fast:.3g}); the fast term is down to 5% of its start at t = {result.t0 + 3 * fast:.6g}"
        )
    return lines


def write_fit_csv(path, steps, losses, result):
    """Writes step, loss, fit and each term (``c`` not included) as CSV."""
    terms = [result.term(k, steps) for k in range(len(result.taus))]
    fitted = result.predict(steps)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "fit"] + [f"term_{k + 1}" for k in range(len(terms))])
        for i, step in enumerate(steps):
            writer.writerow([f"{step:.10g}", f"{losses[i]:.10g}", f"{fitted[i]:.10g}"]
                            + [f"{term[i]:.10g}" for term in terms])


def plot_fit(path, steps, losses, result, title="", units="steps"):
    """Draws data, fit and each ``c + term``; returns False (drawing nothing) without matplotlib."""
    pyplot = load_pyplot()
    if pyplot is None:
        return False
    dense = np.linspace(steps[0], steps[-1], 500)
    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    axes.plot(steps, losses, ".", markersize=3, alpha=0.6, label="loss", color="0.4")
    axes.plot(dense, result.predict(dense), "-", linewidth=2, label=f"fit (R$^2$ = {result.r2:.4f})")
    names = ["fast", "slow"] if len(result.taus) == 2 else [f"term {k + 1}" for k in range(len(result.taus))]
    for k, name in enumerate(names):
        axes.plot(dense, result.offset + result.term(k, dense), "--", linewidth=1,
                  label=rf"c + {name}: $\tau$ = {result.taus[k]:.3g}")
    axes.axhline(result.offset, color="0.6", linewidth=0.8, linestyle=":", label=f"c = {result.offset:.3g}")
    axes.set_xlabel(units)
    axes.set_ylabel("loss")
    axes.set_title(title or "multi-term exponential fit of the training loss")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot.close(figure)
    return True


# --- Command line -----------------------------------------------------------------------------------

def define_flags():
    flags.DEFINE_string("model_dir", None, "An erlrestore-train run (or a folder of event files).")
    flags.DEFINE_string("csv", None, "A CSV curve instead of --model_dir (header with step and loss/value/--tag).")
    flags.DEFINE_string("tag", "epoch_g_l1", "Scalar to fit (TensorBoard tag, or CSV column).")
    flags.DEFINE_string("stage", "", "Stage of the run: number, name or folder name (default: the last with --tag).")
    flags.DEFINE_integer("terms", 2, "Number of exponential terms K.", lower_bound=1, upper_bound=6)
    flags.DEFINE_string("output", "fig7.png", "Figure path; <stem>.json and <stem>.csv are written beside it.")
    flags.DEFINE_integer("steps_per_epoch", 1, "Optimizer steps per TensorBoard step (the run's --checkpoint_every; "
                         "1 keeps epochs).", lower_bound=1)
    flags.DEFINE_integer("skip", 0, "Leave out this many points at the start of the curve.", lower_bound=0)
    flags.DEFINE_boolean("scipy", True, "Refine with SciPy when it is installed (--noscipy: NumPy only).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if bool(FLAGS.model_dir) == bool(FLAGS.csv):
        raise app.UsageError("give exactly one of --model_dir or --csv")
    if not FLAGS.output.lower().endswith(".png"):
        raise app.UsageError(f"--output must be a .png path, got {FLAGS.output}")
    try:
        if FLAGS.model_dir:
            steps, losses, label = read_run_scalars(FLAGS.model_dir, FLAGS.tag, FLAGS.stage)
            steps = (steps + 1) * FLAGS.steps_per_epoch
            units = "epochs" if FLAGS.steps_per_epoch == 1 else "steps"
            source = f"{FLAGS.model_dir} {label} {FLAGS.tag}"
        else:
            steps, losses = read_csv_curve(FLAGS.csv, FLAGS.tag)
            units, source = "steps", FLAGS.csv
        steps, losses = steps[FLAGS.skip:], losses[FLAGS.skip:]
        result = fit_exponentials(steps, losses, FLAGS.terms, use_scipy=FLAGS.scipy)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    steps, losses = _check_curve(steps, losses, FLAGS.terms)  # sorted, as fitted

    stem = os.path.splitext(FLAGS.output)[0]
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    report = dict(result.as_dict(), source=source, tag=FLAGS.tag, units=units)
    with open(stem + ".json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    write_fit_csv(stem + ".csv", steps, losses, result)
    print(f"data: {source}, {result.n} points")
    for line in describe(result, units):
        print(line)
    print(f"wrote {stem}.json and {stem}.csv")
    if plot_fit(FLAGS.output, steps, losses, result, title=f"{source}", units=units):
        print(f"wrote {FLAGS.output}")
    else:
        print(f"note: matplotlib is not installed, {FLAGS.output} was skipped "
              "(install it with `pip install matplotlib`)")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
