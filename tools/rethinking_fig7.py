"""Rethinking Fig. 7 (two-stage convergence of the training loss) from a training run's logged losses.

    python -m tools.rethinking_fig7 --run_dir=runs/rethinking-derain
    python -m tools.rethinking_fig7 --run_dir=<run> [--seed=0] [--tags=epoch_g_l1,epoch_g_loss] [--stage=] \\
        [--records_dir=results]

Reads every loss scalar a stage of an ``erlrestore-train`` run logged to
TensorBoard (``logs/stage<k>_<name>/train/``; by default the last stage, and
the tags ``epoch_g_l1``, ``epoch_g_loss``, ``epoch_d_loss`` and
``epoch_g_adv`` it has: one point per checkpoint interval, the mean over
it), fits ``c + sum_k a_k exp(-(t - t0) / tau_k)`` with one and with two
terms (``tools.fit_loss_curve.fit_exponentials``, NumPy only), and calls
each curve two-stage, one-stage or unresolved by
:func:`erlrestore.paper_figures.two_stage_outcome`. ``t`` is in optimizer
steps when the run's step count (``run_config.json``) is a whole multiple
of the number of points, else in intervals.

Writes ``<records_dir>/rethinking_fig7/<run folder name>-seed<k>.fit.json``
(``--seed``: the seed the run trained with, which its folder does not
keep; ``erlrestore-train``'s default is 0): the run,
its main settings, the curves (at most ``--max_points`` points kept, evenly
picked; the fits use every point), both fits and the outcome. Run folders
are not committed; the record is. When the record goes to the checkout's
``results/``, ``docs/RESULTS.md`` and its plots are rendered again.
"""

import os
import shlex
import sys

import numpy as np
from absl import app, flags

from erlrestore import paper_figures, records

FLAGS = flags.FLAGS
DEFAULT_TAGS = ("epoch_g_l1", "epoch_g_loss", "epoch_d_loss", "epoch_g_adv")
CONFIG_KEYS = ("model", "strategy", "gan_loss", "levels", "info_accum_layers", "subpixel", "gen_filters",
               "batch_size", "l1_weight", "stage_steps", "init_weights")


def fit_curve(steps, values):
    """{"fits": {"1": ..., "2": ...}, "outcome": ...} of one curve (fit dicts of ``FitResult.as_dict``)."""
    from tools import fit_loss_curve

    one = fit_loss_curve.fit_exponentials(steps, values, 1, use_scipy=False).as_dict()
    two = fit_loss_curve.fit_exponentials(steps, values, 2, use_scipy=False).as_dict()
    return {"fits": {"1": one, "2": two}, "outcome": paper_figures.two_stage_outcome(one, two)}


def _kept(count, max_points):
    if count <= max_points:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max_points).round().astype(int))


def make_record(run_dir, tags=DEFAULT_TAGS, stage="", max_points=200, command="", seed=0):
    """The Fig. 7 record of one run (see the module docstring). Raises DataError (a ValueError) when no tag
    could be read or a curve cannot be fitted."""
    from erlrestore import runner
    from erlrestore.run_folder import RunFolder
    from tools import fit_loss_curve

    curves, labels, counts = {}, set(), set()
    for tag in tags:
        try:
            steps, values, label = fit_loss_curve.read_run_scalars(run_dir, tag, stage)
        except ValueError:
            continue
        curves[tag] = (steps, values)
        labels.add(label)
        counts.add(len(values))
    if not curves:
        raise ValueError(f"{run_dir}: none of the tags {', '.join(tags)} was logged")
    if len(labels) > 1:
        raise ValueError(f"{run_dir}: the tags come from different stages ({', '.join(sorted(labels))}); "
                         "name one with --stage")
    total = runner.total_steps(run_dir)
    points = max(counts)
    per_point = total // points if total and len(counts) == 1 and total % points == 0 else 0
    units = "optimizer steps" if per_point else "checkpoint intervals"
    config = RunFolder(run_dir).read_config()
    out = {}
    for tag, (steps, values) in curves.items():
        t = (np.asarray(steps, np.float64) + 1) * (per_point or 1)
        fitted = fit_curve(t, values)
        keep = _kept(len(values), max_points)
        out[tag] = {"steps": [float(x) for x in t[keep]], "values": [float(x) for x in np.asarray(values)[keep]],
                    "points": len(values), **fitted}
    run = os.path.basename(os.path.normpath(run_dir))
    return {
        "schema": 1,
        "figure": paper_figures.FIG7_FOLDER,
        "run": run,
        "seed": int(seed),
        "run_dir": records.display_path(run_dir),
        "config": {k: config[k] for k in CONFIG_KEYS if k in config},
        "stage": labels.pop(),
        "units": units,
        "interval": f"{per_point} optimizer steps" if per_point else "checkpoint interval",
        "points": points,
        "total_steps": total,
        "commit": records.git_state(),
        "command": command,
        "curves": out,
    }


def define_flags():
    flags.DEFINE_string("run_dir", None, "An erlrestore-train run folder (logs/stage<k>_<name>/train/ inside).")
    flags.DEFINE_list("tags", list(DEFAULT_TAGS), "Loss scalars to fit (those the run lacks are left out).")
    flags.DEFINE_string("stage", "", "Stage of the run: number, name or folder name (default: the last with the tags).")
    flags.DEFINE_integer("seed", 0, "The seed the run trained with (erlrestore-train --seed; its folder does not "
                         "keep it).", lower_bound=0)
    flags.DEFINE_string("records_dir", "", "Where the record goes, "
                        "<records_dir>/rethinking_fig7/<run>-seed<k>.fit.json "
                        "(default: the checkout's results/).")
    flags.DEFINE_integer("max_points", 200, "Points of each curve kept in the record.", lower_bound=8)
    flags.mark_flag_as_required("run_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    records_dir = FLAGS.records_dir or records.default_records_dir()
    shown = ["python -m tools.rethinking_fig7", f"--run_dir={records.display_path(FLAGS.run_dir)}"]
    if FLAGS.seed:
        shown.append(f"--seed={FLAGS.seed}")
    if FLAGS.tags != list(DEFAULT_TAGS):
        shown.append(f"--tags={','.join(FLAGS.tags)}")
    if FLAGS.stage:
        shown.append(f"--stage={FLAGS.stage}")
    try:
        record = make_record(FLAGS.run_dir, FLAGS.tags, FLAGS.stage, FLAGS.max_points,
                             command=" ".join(shown[:1] + [shlex.quote(part) for part in shown[1:]]), seed=FLAGS.seed)
        path = os.path.join(records_dir, paper_figures.FIG7_FOLDER,
                            paper_figures.fig7_record_name(record["run"], record["seed"]))
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    records.write_record(path, record)
    for tag, curve in record["curves"].items():
        two, outcome = curve["fits"]["2"], curve["outcome"]
        print(f"{tag}: {outcome['outcome']} ({outcome['reason']}); two-term taus {two['taus'][0]:.4g}, "
              f"{two['taus'][1]:.4g} {record['units']}, R^2 {two['r2']:.4f} vs one term "
              f"{curve['fits']['1']['r2']:.4f}")
    print(f"wrote {path}")
    if os.path.realpath(records_dir) == os.path.realpath(records.default_records_dir()):
        from tools.erlnet_table4 import render_if_default

        render_if_default(records_dir)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
