"""Re-score a shipped model's card on evaluation sets, weights untouched.

    python -m tools.rescore_card --name=erlnet-derain \\
        --eval_sets=rain100h-20=../shared/data/rain100h-20,heldout-heavy=runs/derain-data/heldout-heavy \\
        [--baselines=set=record.json] [--drop=old-set] [--folder=<pretrained folder>]

For when the sets a card quotes change after the model shipped (a new
benchmark sample, held-out sets made another way): each ``--eval_sets``
entry is scored with the stored (float16) weights, as users get them, and
written into the card's ``scores`` with the input's scores beside it,
replacing an entry of the same name; ``--drop`` removes entries whose set no
longer exists. Everything else in the card (training history, kept weights,
the working scale) and the weights themselves stay as they are. An entry
written here has no ``float32_psnr_*`` (the float32 weights are not
shipped) and says ``"rescored": true``. ``--baselines`` quotes a classical
method's record (``tools.classical_baselines --record``) beside a set scored
here, as ``tools.ship_pretrained --baselines`` does at shipping.
"""

import sys

from absl import app, flags

from erlrestore import evaluation, pretrained
from erlrestore.data import pairing
from tools import ship_pretrained

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("name", None, "The shipped model (erlrestore.pretrained.list()).")
    flags.DEFINE_list("eval_sets", [], "Sets to score: name=folder (rain/ + norain/ inside) or "
                      "name=input_dir:target_dir.")
    flags.DEFINE_list("baselines", [], "Classical baselines measured on the same images, quoted beside the "
                      "sets scored here: set_name=record.json, a record written by tools.classical_baselines --record.")
    flags.DEFINE_list("drop", [], "Card entries to remove (sets that no longer exist).")
    flags.DEFINE_string("folder", pretrained.PACKAGE_FOLDER, "The pretrained folder (default: the package).")
    flags.mark_flag_as_required("name")


def rescore(name, eval_sets, drop=(), folder=pretrained.PACKAGE_FOLDER, log=print, baselines=None):
    """Scores ``name`` on ``eval_sets`` ({set: (input_dir, target_dir)}) into its card; returns the path written.

    ``baselines`` ({set: record path}) quotes a classical baseline's record
    beside sets scored here. ValueError (before anything is written or
    scored) for a ``drop`` entry the card does not have or that is also
    scored, and for a baseline of a set not scored here or whose record
    scored other images (count or channel).
    """
    card = pretrained.info(name, folder=folder)
    scores = dict(card.get("scores", {}))
    missing = sorted(set(drop) - set(scores))
    if missing:
        raise ValueError(f"--drop: the card of {name} has no scores for {', '.join(missing)} "
                         f"(it has {', '.join(sorted(scores)) or 'none'})")
    both = sorted(set(drop) & set(eval_sets))
    if both:
        raise ValueError(f"--drop and --eval_sets both name {', '.join(both)}")
    unscored = sorted(set(baselines or {}) - set(eval_sets))
    if unscored:
        raise ValueError(f"baselines name sets not scored here: {', '.join(unscored)}")
    pairs = {set_name: pairing.find_pairs(input_dir, target_dir or None)
             for set_name, (input_dir, target_dir) in eval_sets.items()}  # every set checked before scoring
    c = card.get("score_channel", "y")
    quoted = {set_name: ship_pretrained.baseline_scores(path, set_name, len(pairs[set_name]), c)
              for set_name, path in (baselines or {}).items()}
    model = pretrained.load(name, folder=folder)
    for set_name in drop:
        del scores[set_name]
    for set_name, set_pairs in pairs.items():
        _, ours, _, degraded = evaluation.evaluate_model(model, set_pairs, channel=c, return_input=True,
                                                         show_progress=False)
        scores[set_name] = ship_pretrained.score_entry(ours, degraded, c, rescored=True)
        if set_name in quoted:
            scores[set_name]["baseline"] = quoted[set_name]
        log(f"{set_name}: {ours.line()} (input: psnr_{c}={degraded.psnr:.4f})")
    card["scores"] = scores
    return (pretrained.save_card(name, card, folder=folder),)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sets = ship_pretrained.eval_sets_flag(FLAGS.eval_sets)
    if not sets and not FLAGS.drop:
        raise app.UsageError("nothing to do: give --eval_sets and/or --drop")
    try:
        paths = rescore(FLAGS.name, sets, FLAGS.drop, FLAGS.folder,
                        baselines=ship_pretrained.baselines_flag(FLAGS.baselines, sets))
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    ship_pretrained.report_written(paths)
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
