"""The reports ``erlrestore-reproduce`` writes beside a table's records: CSV, curves and the summary page.

Per table, into ``<output_dir>/<table>/``: ``results.csv`` (:func:`write_csv`,
one line per row, seed and test set) and ``curves.png`` (:func:`plot`, when
matplotlib is installed); for the whole invocation ``<output_dir>/RESULTS.md``
(:func:`write_summary`); after a Rethinking Table I task,
``<output_dir>/rethinking_table1.png`` (:func:`plot_levels`: the paper's
Fig. 3 from the records of every Table I task). The table rendered from the records
(``results.md``) is :mod:`erlrestore.results_page`'s. They read the runs
of :mod:`erlrestore.reproduce` (its ``RowResult``: row, seed, scores, steps,
time, curve, error).
"""

import csv
import math
import os
import time

from erlrestore import machine, page_parts, records
from erlrestore.paper_tables import TABLES


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
    plt = page_parts.pyplot()
    if plt is None:
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


def level_points(table, table_records):
    """``[(N, mean, std, seeds)]`` of a Table I task: per row UNet-N, each record's PSNR averaged over the
    table's test sets (each set's mean over its images, sets weighted equally), then mean and standard
    deviation over the seeds (std 0 for one seed). Rows without records are left out."""
    from erlrestore.paper_tables import TABLE1_LEVELS

    points = []
    for level, row in zip(TABLE1_LEVELS, table.rows):
        values = []
        for record in table_records:
            sets = record.get("test_sets", {})
            if record.get("row") != row.id or not sets:
                continue
            values.append(sum(records.set_means(record, name)[0] for name in sets) / len(sets))
        if values:
            mean = sum(values) / len(values)
            std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5 if len(values) > 1 else 0.0
            points.append((level, mean, std, len(values)))
    return points


def plot_levels(path, records_by_table):
    """Rethinking Fig. 3 from the records of the Table I tables: mean Y-PSNR (+- std over seeds) against
    the number N of down-and-up-sampling levels, one line per task.

    ``records_by_table`` is :func:`erlrestore.records.load_records`'s
    {table key: [record]}. Returns False without matplotlib or when no Table
    I table has a record.
    """
    from erlrestore.paper_tables import TABLE1_KEYS

    lines = [(TABLES[key], level_points(TABLES[key], records_by_table.get(key, []))) for key in TABLE1_KEYS]
    lines = [(table, points) for table, points in lines if points]
    if not lines:
        return False
    plt = page_parts.pyplot()
    if plt is None:
        return False
    fig, axis = plt.subplots(figsize=(6.4, 4.4))
    for table, points in lines:
        sets = sorted({name for r in records_by_table.get(table.key, []) for name in r.get("test_sets", {})})
        axis.errorbar([p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
                      capsize=3, label=f"{table.title.split(', ')[-1]} ({', '.join(sets)})")
    axis.set_xlabel("N, down-and-up-sampling levels of the UNet")
    axis.set_ylabel("Y-PSNR (dB), mean over seeds")
    axis.set_xticks(sorted({p[0] for _, points in lines for p in points}))
    axis.set_title("Rethinking Fig. 3 / Table I (ours)")
    axis.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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
