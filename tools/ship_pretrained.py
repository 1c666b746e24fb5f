"""Package a trained run as a shipped model (``erlrestore.pretrained``), checked against float32.

    python -m tools.ship_pretrained --run_dir=runs/erlnet-derain --name=erlnet-derain \
        --description="ERL-Net (MLGD, MA_D) de-raining, light rain (thin streaks)" \
        --eval_sets=rain12=../shared/data/rain12,rain100l-10=../shared/data/rain100l-10

Takes the run's ``best.keras`` (the best validation score; ``--use=final``
for the last weights), stores it with float16 weights in
``erlrestore/pretrained/<name>.{json,npz}`` and writes its model card into
the JSON: the run's settings (``run_config.json``), where the kept weights
come from (``best.json``), the steps trained and their wall time (read from
the run's TensorBoard logs), the machine, and the Y-PSNR/SSIM of the stored
model on each ``--eval_sets`` folder. Before writing it checks that the
float16 weights score within ``--max_db_change`` (0.01 dB) of the float32
model on every set, and refuses otherwise.

``--trained_short_side=<pixels>`` records the shorter side of the photos the
model was trained on in the card (``trained_short_side``; 321 for the
BSDS500 photos of ``derain-train``), which ``--work_size=auto`` of the
restoring tools reads (:func:`erlrestore.pretrained.trained_short_side`).
It is given, not guessed: the run records crop sizes, not the photos'
scale. Without it the card has no such field, and ``auto`` restores at the
image's own scale.
"""

import json
import os
import sys
import tempfile

from absl import app, flags

from erlrestore import evaluation, inference, machine, pretrained, reproduce
from erlrestore.data import pairing
from erlrestore.training import events

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("run_dir", None, "The training run (erlrestore-train's --model_dir).")
    flags.DEFINE_string("name", None, "Name to ship it under: lower-case words joined by '-'.")
    flags.DEFINE_string("description", "", "One line for the model card.")
    flags.DEFINE_enum("task", None, list(pretrained.TASKS), "What the model restores (the card's task).")
    flags.DEFINE_enum("channel", "y", ["y", "rgb"], "What the card's PSNR/SSIM are measured on: the Y channel "
                      "(de-raining, de-hazing papers) or RGB (de-noising papers).")
    flags.DEFINE_enum("use", "best", ["best", "final"], "best.keras (best validation score) or final.keras.")
    flags.DEFINE_list("eval_sets", [], "Scored for the model card: name=folder (rain/ + norain/ inside) or "
                      "name=input_dir:target_dir.")
    flags.DEFINE_list("baselines", [], "Classical baselines measured on the same images, for the card: "
                      "set_name=record.json, a record written by tools.classical_baselines --record.")
    flags.DEFINE_float("max_db_change", 0.01, "Largest PSNR change allowed by float16 storage.", lower_bound=0)
    flags.DEFINE_string("folder", pretrained.PACKAGE_FOLDER, "Where to write (default: the package).")
    flags.DEFINE_integer("trained_short_side", None, "Shorter side in pixels of the photos the model was trained "
                         "on (321 for BSDS500), recorded in the card for --work_size=auto; unset: not recorded.",
                         lower_bound=1)
    flags.mark_flags_as_required(["run_dir", "name", "task"])


def _json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def training_history(run_dir):
    """Steps and wall time of a run, from its TensorBoard logs (:func:`erlrestore.training.events.sittings`).

    The wall time is the sum over sittings (training processes). Time a
    process spent stopped (``kill -STOP`` while a benchmark had the machine)
    counts, the steps a stop threw away (after the last checkpoint) do not.
    ``planned_steps`` is the run's schedule (``run_config.json``);
    ``intervals_logged`` counts the checkpoint intervals that finished, an
    interval that a resumed process repeated once.
    """
    intervals, wall_seconds = set(), 0.0
    # The restoration family logs its loss as epoch_loss, the generative family as epoch_g_loss.
    for stage, steps, seconds in events.sittings(run_dir) or events.sittings(run_dir, tag="epoch_g_loss"):
        intervals.update((stage, step) for step in steps)
        wall_seconds += seconds
    return {"planned_steps": reproduce.total_steps(run_dir), "intervals_logged": len(intervals),
            "wall_hours": round(wall_seconds / 3600, 2)}


def baseline_scores(record_path, set_name, count, channel):
    """The card's entry for a classical baseline's record on the same set (checked: same channel and count)."""
    record = _json(record_path)
    if record is None or "mean" not in record:
        raise ValueError(f"--baselines: {record_path} is not a record of tools.classical_baselines")
    if record["channel"] != channel or record["count"] != count:
        raise ValueError(f"--baselines: {record_path} scored {record['count']} images on channel {record['channel']}; "
                         f"{set_name} has {count} on channel {channel}")
    c = channel
    return {"method": record["method"], "settings": record["settings"],
            f"psnr_{c}": round(record["mean"][f"psnr_{c}"], 4), f"ssim_{c}": round(record["mean"][f"ssim_{c}"], 5)}


def score_entry(ours, degraded, channel, **extra):
    """A card's scores of one set: the model's (``ours``) and the input's (``degraded``) Summary, rounded, + ``extra``."""
    c = channel
    return {"n": ours.count, f"psnr_{c}": round(ours.psnr, 4), f"ssim_{c}": round(ours.ssim, 5),
            f"input_psnr_{c}": round(degraded.psnr, 4), f"input_ssim_{c}": round(degraded.ssim, 5), **extra}


def ship(run_dir, name, description, use, eval_sets, max_db_change, folder, task="derain", channel="y",
         baselines=None, trained_short_side=None):
    source = os.path.join(run_dir, f"{use}.keras")
    model = inference.load_keras_model(source)
    card = {
        "description": description,
        "task": task,
        "score_channel": channel,
        "source": f"{use}.keras of the run",
        "run_config": _json(os.path.join(run_dir, "run_config.json")),
        "kept_weights": _json(os.path.join(run_dir, "best.json")) if use == "best" else "last",
        "training": training_history(run_dir),
        "machine": machine.summary_line(),
        "parameters": int(model.count_params()),
        "scores": {},
    }
    if trained_short_side is not None:
        card[pretrained.TRAINED_SHORT_SIDE] = int(trained_short_side)
    with tempfile.TemporaryDirectory() as scratch:
        pretrained.save(model, name, card, folder=scratch)
        stored = pretrained.load(name, folder=scratch)
        for set_name, (input_dir, target_dir) in eval_sets.items():
            pairs = pairing.find_pairs(input_dir, target_dir or None)
            _, ours, _, degraded = evaluation.evaluate_model(stored, pairs, channel=channel, return_input=True)
            _, reference = evaluation.evaluate_model(model, pairs, channel=channel)
            change = abs(ours.psnr - reference.psnr)
            if change > max_db_change:
                raise ValueError(f"float16 storage moves the PSNR on {set_name} by {change:.4f} dB "
                                 f"(more than {max_db_change} dB); not shipped")
            c = channel
            card["scores"][set_name] = score_entry(ours, degraded, c, **{f"float32_psnr_{c}": round(reference.psnr, 4)})
            if set_name in (baselines or {}):
                card["scores"][set_name]["baseline"] = baseline_scores(baselines[set_name], set_name, ours.count, c)
            print(f"{set_name}: {ours.line()} (input: psnr_{c}={degraded.psnr:.4f}; "
                  f"float32 weights: psnr_{c}={reference.psnr:.4f})")
    return pretrained.save(model, name, card, folder=folder)


def eval_sets_flag(values):
    """``--eval_sets`` parsed ({name: (input_dir, target_dir)}); app.UsageError for a malformed entry."""
    try:
        return reproduce.parse_eval_sets(values)
    except ValueError as error:
        raise app.UsageError(f"--eval_sets entries look like name=path: {error}") from None


def baselines_flag(values, sets):
    """``--baselines`` parsed ({set name: record path}); app.UsageError for a malformed entry or a set that
    ``--eval_sets`` (``sets``) does not score (a baseline is quoted beside the model's score on the same images)."""
    try:
        baselines = dict(entry.split("=", 1) for entry in values)
    except ValueError as error:
        raise app.UsageError(f"--baselines entries look like name=path: {error}") from None
    unknown = sorted(set(baselines) - set(sets))
    if unknown:
        raise app.UsageError(f"--baselines names sets not in --eval_sets: {', '.join(unknown)}")
    return baselines


def report_written(paths):
    for path in paths:
        print(f"wrote {path} ({os.path.getsize(path) / 2**20:.2f} MiB)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sets = eval_sets_flag(FLAGS.eval_sets)
    baselines = baselines_flag(FLAGS.baselines, sets)
    paths = ship(FLAGS.run_dir, FLAGS.name, FLAGS.description, FLAGS.use, sets, FLAGS.max_db_change, FLAGS.folder,
                 task=FLAGS.task, channel=FLAGS.channel, baselines=baselines,
                 trained_short_side=FLAGS.trained_short_side)
    report_written(paths)
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
