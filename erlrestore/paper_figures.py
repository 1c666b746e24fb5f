"""Paper figures and tables that our records can give without a table of rows: ERL-Net Fig. 3 and Table 4,
Rethinking Fig. 7. Their sections of ``docs/RESULTS.md`` and their plots under ``docs/figures/``.

* **ERL-Net Fig. 3** (Sec. 4.3): the share of test images that ERL-Net
  (MA_D + MLGD, the paper's footnote 2) restores better than MEMD, over
  the whole set and over its hard and easy images. It needs nothing but
  the per-image Y-PSNRs of the ``erlnet_table3`` records (and of
  ``erlnet_table3_each`` when it has both rows): :func:`improved_shares`
  counts them per seed and test set with the rule of
  ``erlrestore-evaluate --baseline_model`` (:func:`erlrestore.scoring.compare_to_baseline`):
  improved means a strictly higher PSNR; an image is hard when MEMD's
  PSNR on it is below MEMD's mean over the set (equal counts as easy).
* **ERL-Net Table 4** (mIoR / mIoB of ERL-Net over MEMD) needs the two
  models' restorations, so ``python -m tools.erlnet_table4`` runs them
  (from the run folders the records name) and writes one record per test
  set and seed, ``results/erlnet_table4/<set>-seed<k>.miou.json``
  (:func:`table4_record_name`), read here by :func:`load_table4`.
* **Rethinking Fig. 7** (two-stage convergence of the training loss, fitted
  by a sum of exponentials) is made by ``python -m tools.rethinking_fig7``
  from a training run's TensorBoard scalars, one record per run,
  ``results/rethinking_fig7/<run>-seed<k>.fit.json``, read by :func:`load_fig7`; the
  rule that calls a curve two-stage is :func:`two_stage_outcome`.

It also draws the plots of two Rethinking figures that are tables of rows
(:mod:`erlrestore.paper_tables`): **Fig. 6** (Y-PSNR against the depth L of
the InfoAccum module, :func:`plot_fig6`) and **Fig. 13** (Y-PSNR per
position of InfoAccum-15, :func:`plot_fig13`), from the records of the
tables ``rethinking_fig6`` and ``rethinking_fig13``
(:func:`row_points`); ``docs/RESULTS.md`` links them under those tables
(:mod:`erlrestore.results_page`).

The record names are chosen so that :func:`erlrestore.records.load_records`
(``<row>-seed<k>.json``) never takes them for table records, while the
repository's ``.gitignore`` (which admits ``results/*/*-seed*.json``) lets
them be committed.

Everything here reads records and renders text; only :func:`write_figures`
needs matplotlib (without it, no PNG is written and the text is the same).
Nothing here imports TensorFlow.
"""

import dataclasses
import io
import math
import os
import re

import numpy as np

from erlrestore import page_parts, paper_tables, records, verdicts
from erlrestore.page_parts import cell as _cell
from erlrestore.page_parts import mean_std as _mean_std

MODEL_ROW = "erlnet_ma_d_mlgd"  # "ERL-Net" in the paper's Sec. 4.3 (footnote 2: MA_D + MLGD)
BASELINE_ROW = "memd"
# Our tables holding both rows, and where each one's Table 4 records go.
TABLE4_FOLDERS = {"erlnet_table3": "erlnet_table4", "erlnet_table3_each": "erlnet_table4_each"}
TABLE4_SETS = ("rain12", "rain100l-10", "rain100h-20")
FIG7_FOLDER = "rethinking_fig7"
FIGURES_DIR = "figures"  # beside the page
FIG3_FIGURE = "erlnet_fig3.png"
TABLE4_FIGURE = "erlnet_table4.png"

# ERL-Net Table 4: (mIoR, mIoB) on the paper's four data sets.
PAPER_TABLE4 = {"AGAN-Data": (0.47, 0.28), "Rain100H": (0.62, 0.19), "DID-Data": (0.43, 0.30),
                "DDN-Data": (0.51, 0.27)}
# Our test set drawn from the paper's data set (the first 20 test images of Rain100H).
PAPER_SET_OF = {"rain100h-20": "Rain100H"}

_TABLE4_NAME = re.compile(r"^(?P<set>.+)-seed(?P<seed>\d+)\.miou\.json$")
_FIG7_NAME = re.compile(r"^(?P<run>.+)-seed(?P<seed>\d+)\.fit\.json$")


# --------------------------------------------------------------------------
# ERL-Net Fig. 3: shares of improved images, from the table records.
# --------------------------------------------------------------------------


def improved_shares(model_psnr, baseline_psnr):
    """The Fig. 3 counts of one test set and seed from ``{image name: PSNR}`` of the model and the baseline.

    Improved: the model's PSNR strictly above the baseline's. Hard: the
    baseline's PSNR below its mean over the set; the rest is easy. The same
    rule as :func:`erlrestore.scoring.compare_to_baseline` (which scores
    live evaluations); this one reads records and does not import
    TensorFlow. Returns ``count``, ``improved``, ``share`` and the same
    three with ``hard_`` and ``easy_`` in front (the share of an empty
    subset is nan), and ``baseline_mean``. Raises ValueError when the two
    do not hold the same images, or hold none.
    """
    names = sorted(baseline_psnr)
    if not names:
        raise ValueError("no images to compare")
    if sorted(model_psnr) != names:
        raise ValueError("the model and the baseline were scored on different images")
    mean = math.fsum(baseline_psnr[n] for n in names) / len(names)
    improved = {n: model_psnr[n] > baseline_psnr[n] for n in names}
    hard = [n for n in names if baseline_psnr[n] < mean]
    easy = [n for n in names if not baseline_psnr[n] < mean]
    result = {"baseline_mean": mean}
    for prefix, members in (("", names), ("hard_", hard), ("easy_", easy)):
        better = sum(1 for n in members if improved[n])
        result[f"{prefix}count"] = len(members)
        result[f"{prefix}improved"] = better
        result[f"{prefix}share"] = better / len(members) if members else math.nan
    return result


@dataclasses.dataclass(frozen=True)
class Fig3:
    """Fig. 3 of one of our tables: ``shares[set][seed]`` (:func:`improved_shares`), or ``reason`` when
    its records cannot give it."""

    table: str
    shares: dict
    reason: str = ""


def fig3_from_records(table_key, table_records):
    """:class:`Fig3` of one table from its records: every seed that both rows have, every test set both
    rows were scored on. Rows trained under different protocols are not compared (as the verdicts)."""
    rows = {MODEL_ROW: {}, BASELINE_ROW: {}}
    for record in table_records:
        if record.get("row") in rows:
            rows[record["row"]][record["seed"]] = record
    missing = [row for row, found in rows.items() if not found]
    if missing:
        return Fig3(table_key, {}, "no records of " + " and ".join(f"`{m}`" for m in missing))
    seeds = sorted(set(rows[MODEL_ROW]) & set(rows[BASELINE_ROW]))
    if not seeds:
        return Fig3(table_key, {}, "the two rows share no seed")
    protocols = {records.protocol(rows[row][s]) for row in rows for s in seeds}
    if len(protocols) > 1:
        return Fig3(table_key, {}, "the two rows' runs were not trained the same way")
    shares = {}
    for seed in seeds:
        model, baseline = rows[MODEL_ROW][seed], rows[BASELINE_ROW][seed]
        for name in model.get("test_sets", {}):
            if name not in baseline.get("test_sets", {}):
                continue
            shares.setdefault(name, {})[seed] = improved_shares(records.per_image_psnr(model, name),
                                                                records.per_image_psnr(baseline, name))
    if not shares:
        return Fig3(table_key, {}, "the two rows share no test set")
    return Fig3(table_key, dict(sorted(shares.items(), key=lambda item: _set_order(item[0]))))


def fig3_all(found):
    """{table key: :class:`Fig3`} for our tables with ERL-Net and MEMD rows that have records
    (``found``: :func:`erlrestore.records.load_records`)."""
    return {key: fig3_from_records(key, found[key]) for key in TABLE4_FOLDERS if found.get(key)}


def _counts(by_seed, prefix):
    return ", ".join(f"{s[f'{prefix}improved']}/{s[f'{prefix}count']}" for _, s in sorted(by_seed.items()))


def _hard_over_easy(by_seed):
    """(seeds where the hard share is above the easy one, seeds where both shares exist)."""
    pairs = [(s["hard_share"], s["easy_share"]) for s in by_seed.values()]
    pairs = [(h, e) for h, e in pairs if not (math.isnan(h) or math.isnan(e))]
    return sum(1 for h, e in pairs if h > e), len(pairs)


def fig3_claim_outcome(fig3s):
    """What the records say about "more of the hard images than of the easy ones improved", or None."""
    parts = []
    for key, fig in fig3s.items():
        for name, by_seed in fig.shares.items():
            above, n = _hard_over_easy(by_seed)
            parts.append(f"{key} {name}: hard above easy in {above}/{n} seeds "
                         f"({_mean_std([s['hard_share'] for s in by_seed.values()], 2)} vs "
                         f"{_mean_std([s['easy_share'] for s in by_seed.values()], 2)})")
    if not parts:
        return None
    return ("measured, no verdict (two shares of different images are not a paired comparison): "
            + "; ".join(parts) + "; see \"ERL-Net Fig. 3\" above")


def render_fig3(fig3s, level=3):
    hashes = "#" * level
    lines = [f"{hashes} ERL-Net Fig. 3: the test images ERL-Net restores better than MEMD", "",
             "Counted from the per-image Y-PSNRs in the records of the Table 3 rows `erlnet_ma_d_mlgd` "
             "(ERL-Net: MA_D + MLGD, the paper's footnote 2) and `memd`, seed k against seed k; no model is run. "
             "An image is improved when ERL-Net's PSNR is strictly higher; it is hard when MEMD's PSNR on it is "
             "below MEMD's mean on that set and seed, easy otherwise (the paper's split; `erlrestore-evaluate "
             "--baseline_model` counts the same way). Shares are mean ± standard deviation over seeds, with "
             "each seed's count in brackets. The paper draws Fig. 3 without printing its values; it states "
             "that over half of the images of each of its four sets are improved (left), and that every set "
             "improves more of its hard images than of its easy ones (right). The first statement is judged "
             "in the Table 3 claims above (MA_D / MLGD against MEMD \"on more than half of the images\"); the second "
             "is a comparison of two shares of different images, which the verdict rule does not cover, so "
             "only its per-seed direction is given.", ""]
    if not fig3s:
        return "\n".join(lines + ["No records of both rows yet: not run.", ""]) + "\n"
    lines += ["| table | test set | seeds | improved, all images | hard images | easy images | "
              "hard above easy | paper (Fig. 3) |", "|---|---|---|---|---|---|---|---|"]
    paper = "over half; hard above easy"
    for key, fig in fig3s.items():
        if fig.reason:
            lines.append(f"| `{key}` | — | — | not run ({_cell(fig.reason)}) | — | — | — | {paper} |")
            continue
        for name, by_seed in fig.shares.items():
            seeds = ", ".join(str(s) for s in sorted(by_seed))
            cells = []
            for prefix in ("", "hard_", "easy_"):
                shares = [s[f"{prefix}share"] for _, s in sorted(by_seed.items())]
                cells.append(f"{_mean_std(shares, 2)} ({_counts(by_seed, prefix)})")
            above, n = _hard_over_easy(by_seed)
            lines.append(f"| `{key}` | {name} | {seeds} | " + " | ".join(cells) + f" | {above}/{n} seeds | "
                         f"{paper} |")
    lines += ["", f"![ERL-Net Fig. 3 from our records]({FIGURES_DIR}/{FIG3_FIGURE})", "",
              "Command: `erlrestore-reproduce --render_only` (the table and the plot, from the records).", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# ERL-Net Table 4: records of tools.erlnet_table4.
# --------------------------------------------------------------------------


def table4_record_name(test_set, seed):
    """``<set>-seed<k>.miou.json``: never a table record's name (``<row>-seed<k>.json``)."""
    return f"{test_set}-seed{int(seed)}.miou.json"


def load_table4(records_dir):
    """{our table key: [Table 4 records, sorted by test set and seed]} under ``records_dir``.

    Raises ValueError for a file whose test set or seed disagrees with its name.
    """
    found = {}
    for table_key, folder_name in TABLE4_FOLDERS.items():
        for _, record in records.named_records(
                os.path.join(records_dir, folder_name), _TABLE4_NAME,
                lambda m, key=table_key: {"test_set": m.group("set"), "seed": int(m.group("seed")), "table": key}):
            found.setdefault(table_key, []).append(record)
    for key in found:
        found[key].sort(key=lambda r: (_set_order(r["test_set"]), r["seed"]))
    return found


def _set_order(name):
    return (TABLE4_SETS.index(name) if name in TABLE4_SETS else len(TABLE4_SETS), name)


def _number(value):
    return math.nan if value is None else float(value)


def _image_columns(record, *keys):
    """Per-image arrays of ``keys`` (None read as nan)."""
    return [np.array([_number(image[k]) for image in record["images"]], dtype=np.float64) for k in keys]


# The three parts of the paper's Table 4 statement: (label, key of A, key of B): per image A - B > 0.
TABLE4_PARTS = (
    ("rain regions improved: IoR of ERL-Net over MEMD > IoR of MEMD over ERL-Net", "ior", "reverse_ior"),
    ("background improved: IoB of ERL-Net over MEMD > IoB of MEMD over ERL-Net", "iob", "reverse_iob"),
    ("more in the rain: IoR > IoB (ERL-Net over MEMD)", "ior", "iob"),
)


def table4_evidence(set_records, a_key, b_key):
    """:class:`erlrestore.verdicts.Evidence` of "A > B" per image on one test set over its seeds (records
    of one set, one per seed); images whose A or B is nan (an empty region) are left out."""
    set_records = sorted(set_records, key=lambda r: r["seed"])
    names = [image["name"] for image in set_records[0]["images"]]
    rows = []
    for record in set_records:
        if [image["name"] for image in record["images"]] != names:
            raise ValueError(f"{record['test_set']}: seeds measured on different images")
        a, b = _image_columns(record, a_key, b_key)
        rows.append(a - b)
    d = np.array(rows)
    keep = ~np.isnan(d).any(axis=0)
    if not keep.any():
        raise ValueError(f"{set_records[0]['test_set']}: no image has both regions")
    return verdicts.better_verdict(d[:, keep], seeds=[r["seed"] for r in set_records])


def _by_set(table_records):
    by_set = {}
    for record in table_records:
        by_set.setdefault(record["test_set"], []).append(record)
    return dict(sorted(by_set.items(), key=lambda item: _set_order(item[0])))


def table4_judgement(table4):
    """[(part label, overall verdict, {set: Evidence or reason})] over every table's Table 4 records."""
    out = []
    for label, a_key, b_key in TABLE4_PARTS:
        details, found = {}, []
        for key, table_records in table4.items():
            for name, set_records in _by_set(table_records).items():
                try:
                    evidence = table4_evidence(set_records, a_key, b_key)
                except ValueError as error:
                    details[f"{key} {name}"] = str(error)
                    found.append(verdicts.UNDECIDED)
                    continue
                details[f"{key} {name}"] = evidence
                found.append(evidence.verdict)
        out.append((label, verdicts.combine(found), details))
    return out


def _evidence_words(evidence):
    if isinstance(evidence, str):
        return evidence
    std = "" if math.isnan(evidence.std) else f" ± {evidence.std:.3f}"
    verdict = evidence.verdict
    if verdict == verdicts.UNDECIDED:
        verdict += f" ({evidence.reason})"
    return (f"{evidence.mean:+.3f}{std} ({evidence.agreeing}/{len(evidence.seeds)} seeds agree, "
            f"p = {evidence.p_value:.3g}; {evidence.n_images} images): {verdict}")


def table4_claim_outcome(table4):
    """The Table 4 claim's verdict in words, or None without records."""
    if not any(table4.values()):
        return None
    judged = table4_judgement(table4)
    parts = [f"{label.split(':')[0]}: {verdict}" for label, verdict, _ in judged]
    overall = verdicts.combine(verdict for _, verdict, _ in judged)
    return f"{overall} ({'; '.join(parts)}; see \"ERL-Net Table 4\" above)"


def render_table4(table4, level=3):
    hashes = "#" * level
    paper = ", ".join(f"{name} {r:.2f} / {b:.2f}" for name, (r, b) in PAPER_TABLE4.items())
    lines = [f"{hashes} ERL-Net Table 4: mIoR / mIoB of ERL-Net over MEMD", "",
             "IoR (IoB) of an image is the share of its rain (background) pixels where ERL-Net's Y channel is "
             "strictly closer to the clean image than MEMD's (Eq. 6-7), mIoR / mIoB their means over the test "
             "set (Eq. 8). Both models restore the test set as the table scored it (the run folders' "
             "`final.keras`, the same scoring flags, outputs rounded to 8 bits), through "
             "`erlrestore.evaluation.compare_models`, the function behind `erlrestore-evaluate "
             "--baseline_model`; the per-image PSNRs must match the table's records (the tool checks it). Rain "
             "pixels are those where |rainy - clean| on Y exceeds its mean over the image (the paper's rule; "
             "our 20 Rain100H images come without the authors' rain masks, which the paper used for "
             "Rain100H). Because ties (equal 8-bit values) count for neither model, IoR and IoB of ERL-Net "
             "over MEMD are read against the same shares of MEMD over ERL-Net (\"reverse\").", "",
             f"Paper (mIoR / mIoB): {paper}. Our `rain100h-20` is drawn from Rain100H; `rain12` and "
             "`rain100l-10` have no column in the paper's table.", ""]
    if not any(table4.values()):
        return "\n".join(lines + ["No records yet: not run. Make them with `python -m tools.erlnet_table4` "
                                  "(it needs the run folders of the Table 3 records).", ""]) + "\n"
    lines += ["| table | test set | seeds | images | mIoR (ours) | mIoB (ours) | reverse mIoR | reverse mIoB | "
              "paper mIoR / mIoB |", "|---|---|---|---|---|---|---|---|---|"]
    commits = set()
    for key, table_records in table4.items():
        for name, set_records in _by_set(table_records).items():
            columns = {k: [r[k] for r in set_records] for k in ("miou", "reverse_miou")}
            seeds = ", ".join(str(r["seed"]) for r in set_records)
            counts = sorted({r["count"] for r in set_records})
            shown = PAPER_SET_OF.get(name)
            paper_cell = (f"{PAPER_TABLE4[shown][0]:.2f} / {PAPER_TABLE4[shown][1]:.2f} ({shown})" if shown
                          else "—")
            lines.append(
                f"| `{key}` | {name} | {seeds} | {', '.join(str(c) for c in counts)} | "
                f"{_mean_std([_number(m[0]) for m in columns['miou']], 3)} | "
                f"{_mean_std([_number(m[1]) for m in columns['miou']], 3)} | "
                f"{_mean_std([_number(m[0]) for m in columns['reverse_miou']], 3)} | "
                f"{_mean_std([_number(m[1]) for m in columns['reverse_miou']], 3)} | {paper_cell} |")
            commits |= {(str((r.get("commit") or {}).get("hash") or "unknown")[:10],
                         bool((r.get("commit") or {}).get("dirty"))) for r in set_records}
    lines += ["", "Per seed (mIoR / mIoB, then reverse): " + "; ".join(
        f"{r['test_set']} seed {r['seed']}: {_number(r['miou'][0]):.3f} / {_number(r['miou'][1]):.3f}, "
        f"{_number(r['reverse_miou'][0]):.3f} / {_number(r['reverse_miou'][1]):.3f}"
        for table_records in table4.values() for r in table_records) + ".", ""]
    lines += ["The paper's statement (\"improve the quality of the de-rained images in both the rainy regions "
              "and the background regions, with more focus on the rainy regions\") in three parts, each judged "
              "by the verdict rule above on per-image differences (seed k of ERL-Net against seed k of MEMD; "
              "mean over images of A − B, ± standard deviation over seeds):", "",
              "| part | " + " | ".join(f"ours: {_cell(k)}" for k in _judged_sets(table4)) + " | verdict |",
              "|---|" + "---|" * len(_judged_sets(table4)) + "---|"]
    for label, verdict, details in table4_judgement(table4):
        cells = [_cell(_evidence_words(details[k])) if k in details else "—" for k in _judged_sets(table4)]
        lines.append(f"| {_cell(label)} | " + " | ".join(cells) + f" | **{verdict}** |")
    lines += ["", "Measured at commit(s): " + ", ".join(
        f"`{h}`" + (" (uncommitted changes)" if dirty else "") for h, dirty in sorted(commits)) + ".", "",
        f"![ERL-Net Table 4 from our records]({FIGURES_DIR}/{TABLE4_FIGURE})", "",
        "Command: `python -m tools.erlnet_table4 --data_root=../shared/data` (every seed with both records and "
        "both run folders; writes `results/erlnet_table4/<set>-seed<k>.miou.json` and renders this page).", ""]
    return "\n".join(lines) + "\n"


def _judged_sets(table4):
    return [f"{key} {name}" for key, table_records in table4.items() for name in _by_set(table_records)]


# --------------------------------------------------------------------------
# Rethinking Fig. 7: records of tools.rethinking_fig7, and the two-stage rule.
# --------------------------------------------------------------------------

FIG7_MIN_RATIO = 10.0  # slow time constant / fast one, at least


def exponential_curve(fit, t):
    """``c + sum_k a_k exp(-(t - t0) / tau_k)`` of a fit's dict (``offset``, ``amplitudes``, ``taus``, ``t0``)."""
    t = np.asarray(t, np.float64)
    return fit["offset"] + sum(a * np.exp(-(t - fit["t0"]) / tau) for a, tau in zip(fit["amplitudes"], fit["taus"]))


def bic(fit):
    """Bayesian information criterion of a least-squares fit: ``n ln(SSE / n) + p ln n``, ``p = 2K + 1``
    parameters for K terms (lower is better)."""
    n = fit["n"]
    sse = max(fit["rmse"] ** 2 * n, 1e-300)
    return n * math.log(sse / n) + (2 * len(fit["taus"]) + 1) * math.log(n)


def two_stage_outcome(one, two):
    """Whether a loss curve converges in two stages, from its one- and two-term fits (dicts as
    ``tools.fit_loss_curve.FitResult.as_dict`` gives them).

    The rule: **two-stage** when the two-term fit has the lower :func:`bic`
    (its two extra parameters pay for themselves), both of its terms decay
    (positive amplitudes), its time constants are apart by at least
    :data:`FIG7_MIN_RATIO`, and the fast one is resolved (not on the lower
    edge of the searched range, i.e. not faster than the points are
    spaced); **unresolved** when all that holds but the fast term is on
    that edge; **one-stage** otherwise (the reason says which condition
    failed). Returns ``{"outcome", "reason", "bic_one", "bic_two", "ratio"}``.
    """
    b1, b2 = bic(one), bic(two)
    fast, slow = two["taus"]
    ratio = slow / fast
    out = {"bic_one": b1, "bic_two": b2, "ratio": ratio}
    if not b2 < b1:
        return dict(out, outcome="one-stage", reason=f"one exponential is enough (BIC {b1:.1f} vs {b2:.1f})")
    if two.get("pinned"):
        return dict(out, outcome="one-stage", reason="the data do not separate the two terms")
    if min(two["amplitudes"]) <= 0:
        return dict(out, outcome="one-stage", reason="a term rises: not two stages of decay")
    if ratio < FIG7_MIN_RATIO:
        return dict(out, outcome="one-stage", reason=f"time constants only {ratio:.3g}x apart")
    if 0 in tuple(two.get("edge", ())):
        return dict(out, outcome="unresolved", reason="the fast term is faster than the points are spaced")
    return dict(out, outcome="two-stage", reason=f"fast tau {fast:.4g}, slow tau {slow:.4g} ({ratio:.3g}x), "
                f"BIC {b2:.1f} < {b1:.1f}")


def fig7_record_name(run, seed):
    """``<run>-seed<k>.fit.json`` (``k``: the seed the run trained with); never a table record's name."""
    return f"{run}-seed{int(seed)}.fit.json"


def fig7_figure(record):
    return f"rethinking_fig7_{record['run']}-seed{int(record['seed'])}.png"


def load_fig7(records_dir):
    """The Fig. 7 records under ``records_dir``, sorted by run name."""
    return [record for _, record in records.named_records(
        os.path.join(records_dir, FIG7_FOLDER), _FIG7_NAME,
        lambda m: {"run": m.group("run"), "seed": int(m.group("seed"))})]


# The order of a record's curves on the page: the generator's pixel term and total, then the discriminator's.
FIG7_TAG_ORDER = ("epoch_g_l1", "epoch_g_loss", "epoch_d_loss", "epoch_g_adv")


def _ordered_curves(record):
    curves = record["curves"]
    known = [tag for tag in FIG7_TAG_ORDER if tag in curves]
    return [(tag, curves[tag]) for tag in known + sorted(set(curves) - set(known))]


def fig7_claim_outcome(fig7):
    if not fig7:
        return None
    parts = []
    for record in fig7:
        told = ", ".join(f"{tag.removeprefix('epoch_')} {curve['outcome']['outcome']}"
                         for tag, curve in _ordered_curves(record))
        parts.append(f"run {record['run']} ({told})")
    return ("one run, no verdict (the rule is for paired test images); by the rule of \"Rethinking Fig. 7\" "
            "above: " + "; ".join(parts))


def render_fig7(fig7, level=3):
    hashes = "#" * level
    lines = [f"{hashes} Rethinking Fig. 7: two-stage convergence of the training loss", "",
             "The paper sees the loss fall fast at first and then suddenly slow down (\"a two-stage "
             "convergence in most of our experiments\") and draws it with a \"multinomial exponential "
             "regression\". We fit loss(t) = c + Σ_k a_k exp(−(t − t0)/τ_k) with one and with two terms to the "
             "per-interval means a GAN training logged (TensorBoard scalars; variable projection: the a_k and c "
             "by linear least squares for each τ, the τ by a grid and a pattern search, NumPy only: "
             "`tools/fit_loss_curve.py`). A curve is called **two-stage** when the two-term fit has the lower "
             "BIC (n ln(SSE/n) + p ln n), both terms decay, the slow τ is at least "
             f"{FIG7_MIN_RATIO:g}x the fast one and the fast one is resolved by the spacing of the points "
             "(else **unresolved**); **one-stage** otherwise. A τ on the upper edge means a term slower than "
             "the run is long: the second stage had not settled.", ""]
    if not fig7:
        return "\n".join(lines + ["No records yet: not run. Make one with `python -m tools.rethinking_fig7 "
                                  "--run_dir=<a GAN run>`.", ""]) + "\n"
    for record in fig7:
        config = record.get("config", {})
        described = ", ".join(f"{k} {v}" for k, v in config.items() if v not in ("", None, []))
        lines += [f"Run `{record['run_dir']}`, seed {record['seed']} ({described}); stage `{record['stage']}`, "
                  "one point per "
                  f"{record['interval']} ({record['points']} points, each the mean over its interval); recorded "
                  f"at commit `{str((record.get('commit') or {}).get('hash') or 'unknown')[:10]}`"
                  + (" (uncommitted changes)" if (record.get("commit") or {}).get("dirty") else "") + ".", "",
                  "| loss | first → last point | one term: τ, R² | two terms: fast τ, slow τ, R² "
                  "| BIC one / two | outcome |", "|---|---|---|---|---|---|"]
        for tag, curve in _ordered_curves(record):
            one, two, outcome = curve["fits"]["1"], curve["fits"]["2"], curve["outcome"]
            notes = [f"{('fast', 'slow')[k]} τ on the edge" for k in two.get("edge", ())]
            spacing = curve["steps"][1] - curve["steps"][0] if len(curve["steps"]) > 1 else math.inf
            if outcome["outcome"] == "two-stage" and two["taus"][0] < spacing:
                notes.append(f"fast τ below the {spacing:g} between points: the fast stage rests on the first few")
            edge_note = f" ({'; '.join(notes)})" if notes else ""
            lines.append(
                f"| `{tag}` | {curve['values'][0]:.4g} → {curve['values'][-1]:.4g} | {one['taus'][0]:.4g}, "
                f"{one['r2']:.4f} | {two['taus'][0]:.4g}, {two['taus'][1]:.4g}{edge_note}, {two['r2']:.4f} | "
                f"{outcome['bic_one']:.1f} / {outcome['bic_two']:.1f} | **{outcome['outcome']}** "
                f"({_cell(outcome['reason'])}) |")
        lines += ["", f"τ in {record['units']}. ![Rethinking Fig. 7 from run {record['run']}]"
                  f"({FIGURES_DIR}/{fig7_figure(record)})", "",
                  f"Command: `{record['command']}` (writes `results/{FIG7_FOLDER}/"
                  f"{fig7_record_name(record['run'], record['seed'])}` "
                  "and renders this page).", ""]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Rethinking Fig. 6 and Fig. 13: plots of the records of two tables of rows.
# --------------------------------------------------------------------------


def row_points(table, table_records):
    """{test set: [(row id, mean, std, seeds)]} of one table's records, rows in the table's order.

    A record's value on a set is its mean Y-PSNR over the set's images
    (:func:`erlrestore.records.set_means`); mean and standard deviation
    (sample, 0 for one seed) are over the row's seeds, as in the Table I
    plot, but each test set is kept apart: Fig. 6 and Fig. 13 are per data
    set in the paper, and our light-rain sets need not move together.
    Rows without a record on a set are left out of it; test sets are in
    the order the rows' records first name them.
    """
    by_row = {row.id: [r for r in table_records if r.get("row") == row.id] for row in table.rows}
    names = list(dict.fromkeys(name for found in by_row.values() for r in found for name in r.get("test_sets", {})))
    points = {}
    for name in names:
        for row_id, found in by_row.items():
            values = [records.set_means(r, name)[0] for r in found if name in r.get("test_sets", {})]
            if values:
                mean, std = _bar_stats(values)
                points.setdefault(name, []).append((row_id, mean, std, len(values)))
    return points


def plot_fig6(pyplot, table, table_records, path):
    """Rethinking Fig. 6 from the ``rethinking_fig6`` records: Y-PSNR against the InfoAccum depth L
    (:data:`erlrestore.paper_tables.FIG6_LAYERS`, the table's rows in order), one line per test set, mean ±
    standard deviation over seeds; returns the path, None without records."""
    points = row_points(table, table_records)
    if not points:
        return None
    layers = {row.id: n for n, row in zip(paper_tables.FIG6_LAYERS, table.rows)}
    figure, axis = pyplot.subplots(figsize=(6.4, 4.4))
    for name, found in points.items():
        axis.errorbar([layers[p[0]] for p in found], [p[1] for p in found], yerr=[p[2] for p in found], marker="o",
                      capsize=3, label=name)
    axis.set_xticks(paper_tables.FIG6_LAYERS)
    axis.set_xlabel("L, layers of the InfoAccum module before the generator (0: none)")
    axis.set_ylabel("Y-PSNR (dB), mean over seeds")
    axis.set_title("Rethinking Fig. 6 (ours): UNet-5 + LSGAN + InfoAccum-L, ± std over seeds", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(pyplot, figure, path)


def plot_fig13(pyplot, table, table_records, path):
    """Rethinking Fig. 13 from the ``rethinking_fig13`` records: a group of bars per position of
    InfoAccum-15 (:data:`erlrestore.paper_tables.FIG13_POSITIONS`, named as the paper names them, "none"
    first), one bar per test set, mean ± standard deviation over seeds; the axis starts 1 dB under the lowest
    bar, so that differences of tenths of a dB show. Returns the path, None without records."""
    points = row_points(table, table_records)
    if not points:
        return None
    ids = [row.id for row in table.rows]
    words = [paper_tables.position_words(positions) for positions in paper_tables.FIG13_POSITIONS]
    width = 0.8 / len(points)
    figure, axis = pyplot.subplots(figsize=(7.2, 4.4))
    for i, (name, found) in enumerate(points.items()):
        x = [ids.index(p[0]) + (i - (len(points) - 1) / 2) * width for p in found]
        axis.bar(x, [p[1] for p in found], width, yerr=[p[2] for p in found], capsize=3, color=f"C{i}", label=name)
    low = min(p[1] - p[2] for found in points.values() for p in found)
    high = max(p[1] + p[2] for found in points.values() for p in found)
    axis.set_ylim(low - 1.0, high + 0.5)
    axis.set_xticks(range(len(ids)))
    axis.set_xticklabels(words)
    axis.set_xlabel("position of InfoAccum-15 (1st: before the generator; k-th: before encoder level k - 1)")
    axis.set_ylabel("Y-PSNR (dB), mean over seeds")
    axis.set_title("Rethinking Fig. 13 (ours): UNet-5 + LSGAN + InfoAccum-15 by position, ± std over seeds",
                   fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(pyplot, figure, path)


# The plot of each table of rows drawn here, by table key.
TABLE_PLOTS = {"rethinking_fig6": plot_fig6, "rethinking_fig13": plot_fig13}


# --------------------------------------------------------------------------
# All three, and their plots.
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Figures:
    fig3: dict
    table4: dict
    fig7: list


def load(records_dir, found):
    """The three from ``records_dir`` (``found``: its table records, :func:`erlrestore.records.load_records`)."""
    return Figures(fig3_all(found), load_table4(records_dir), load_fig7(records_dir))


def claim_outcome(claim, figures):
    """The measured outcome of a claim no table runs but a figure here covers (``claim.figure``), or None."""
    figure = getattr(claim, "figure", "")
    if figure == "erlnet_fig3":
        return fig3_claim_outcome(figures.fig3)
    if figure == "erlnet_table4":
        return table4_claim_outcome(figures.table4)
    if figure == "rethinking_fig7":
        return fig7_claim_outcome(figures.fig7)
    return None


def render(figures, level=3):
    return [render_fig3(figures.fig3, level), render_table4(figures.table4, level), render_fig7(figures.fig7, level)]


def _save(pyplot, figure, path):
    """Writes the figure as PNG without the version stamp, and only when its bytes changed; returns path."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    pyplot.close(figure)
    data = buffer.getvalue()
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    from erlrestore.data import image_files  # pylint: disable=import-outside-toplevel

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    image_files.write_bytes_atomically(path, data)
    return path


def _bar_stats(values):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, 0.0
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def plot_fig3(pyplot, fig3s, path):
    groups = [(key, name, by_seed) for key, fig in fig3s.items() for name, by_seed in fig.shares.items()]
    if not groups:
        return None
    figure, (left, right) = pyplot.subplots(1, 2, figsize=(10, 4.2))
    labels = [name if len(fig3s) == 1 else f"{name}\n{key}" for key, name, _ in groups]
    x = np.arange(len(groups))
    stats = [_bar_stats([s["share"] for s in by_seed.values()]) for _, _, by_seed in groups]
    left.bar(x, [m for m, _ in stats], yerr=[e for _, e in stats], capsize=4, color="tab:blue")
    left.set_title("improved images, whole test set")
    width = 0.38
    for offset, prefix, colour in ((-width / 2, "hard_", "tab:red"), (width / 2, "easy_", "tab:green")):
        part = [_bar_stats([s[f"{prefix}share"] for s in by_seed.values()]) for _, _, by_seed in groups]
        right.bar(x + offset, [m for m, _ in part], width, yerr=[e for _, e in part], capsize=3, color=colour,
                  label=prefix.rstrip("_") + " images")
    right.set_title("improved images, hard and easy subsets")
    right.legend(fontsize=8)
    for axis in (left, right):
        axis.set_xticks(x)
        axis.set_xticklabels(labels, fontsize=8)
        axis.set_ylim(0, 1)
        axis.axhline(0.5, color="0.5", linewidth=0.8, linestyle="--")
        axis.set_ylabel("share of images, ERL-Net > MEMD (Y-PSNR)")
    figure.suptitle("ERL-Net Fig. 3 (ours): mean ± std over seeds; dashed: one half", fontsize=10)
    figure.tight_layout()
    return _save(pyplot, figure, path)


def plot_table4(pyplot, table4, path):
    groups = [(key, name, set_records) for key, table_records in table4.items()
              for name, set_records in _by_set(table_records).items()]
    if not groups:
        return None
    labels = [name if len(table4) == 1 else f"{name}\n{key}" for key, name, _ in groups]
    labels += [f"paper\n{name}" for name in PAPER_TABLE4]
    x = np.arange(len(labels))
    width = 0.2
    figure, axis = pyplot.subplots(figsize=(max(7, 1.2 * len(labels)), 4.2))
    series = (("mIoR", "miou", 0, "tab:blue", None), ("mIoB", "miou", 1, "tab:orange", None),
              ("reverse mIoR", "reverse_miou", 0, "tab:blue", "//"),
              ("reverse mIoB", "reverse_miou", 1, "tab:orange", "//"))
    ours, theirs = x[:len(groups)], x[len(groups):]
    for i, (label, key, index, colour, hatch) in enumerate(series):
        stats = [_bar_stats([_number(r[key][index]) for r in set_records]) for _, _, set_records in groups]
        axis.bar(ours + (i - 1.5) * width, [m for m, _ in stats], width, yerr=[e for _, e in stats], capsize=2,
                 color=colour, alpha=0.5 if hatch else 1, hatch=hatch, label=label)
        if key == "miou":  # the paper prints no reverse shares and no spread
            axis.bar(theirs + (i - 1.5) * width, [v[index] for v in PAPER_TABLE4.values()], width, color=colour)
    axis.set_xticks(x)
    axis.set_xticklabels(labels, fontsize=8)
    axis.set_ylim(0, 1)
    axis.set_ylabel("mean share of the region's pixels")
    axis.set_title("ERL-Net Table 4: ERL-Net over MEMD (reverse: MEMD over ERL-Net); mean ± std over seeds",
                   fontsize=9)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(pyplot, figure, path)


def plot_fig7(pyplot, record, path):
    curves = record["curves"]
    columns = min(2, len(curves))
    rows = math.ceil(len(curves) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(5.2 * columns, 3.6 * rows), squeeze=False)
    for axis, (tag, curve) in zip(axes.flat, _ordered_curves(record)):
        steps = np.asarray(curve["steps"], np.float64)
        dense = np.linspace(steps[0], steps[-1], 400)
        one, two = curve["fits"]["1"], curve["fits"]["2"]
        axis.plot(steps, curve["values"], "o", markersize=3, color="0.3", label="logged (interval mean)")
        axis.plot(dense, exponential_curve(two, dense), "-", color="tab:red",
                  label=f"two terms, R² {two['r2']:.3f}")
        axis.plot(dense, exponential_curve(one, dense), "--", color="tab:blue",
                  label=f"one term, R² {one['r2']:.3f}")
        # The second stage alone (the fit without its fast term); the gap to the full fit is the fast term.
        slow = dict(two, amplitudes=[two["amplitudes"][1]], taus=[two["taus"][1]])
        axis.plot(dense, exponential_curve(slow, dense), "-.", color="0.5", linewidth=1,
                  label=f"without the fast term (τ {two['taus'][0]:.3g}): c + slow term, τ {two['taus'][1]:.3g}")
        axis.set_title(f"{tag}: {curve['outcome']['outcome']}", fontsize=9)
        axis.set_xlabel(record["units"])
        axis.legend(fontsize=7)
    for axis in list(axes.flat)[len(curves):]:
        axis.set_visible(False)
    figure.suptitle(f"Rethinking Fig. 7 (ours): run {record['run']}", fontsize=10)
    figure.tight_layout()
    return _save(pyplot, figure, path)


def write_figures(figures, figures_dir):
    """Draws every plot the records give into ``figures_dir``; returns the paths ([] without matplotlib).

    A PNG whose bytes would not change is left as it is.
    """
    pyplot = page_parts.pyplot()
    if pyplot is None:
        return []
    written = [plot_fig3(pyplot, figures.fig3, os.path.join(figures_dir, FIG3_FIGURE)),
               plot_table4(pyplot, figures.table4, os.path.join(figures_dir, TABLE4_FIGURE))]
    written += [plot_fig7(pyplot, record, os.path.join(figures_dir, fig7_figure(record))) for record in figures.fig7]
    return [path for path in written if path]
