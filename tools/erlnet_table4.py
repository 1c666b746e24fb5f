"""ERL-Net Table 4 (mIoR / mIoB of ERL-Net over MEMD) from the Table 3 records and their run folders.

    python -m tools.erlnet_table4 --data_root=../shared/data
    python -m tools.erlnet_table4 --records_dir=results --runs_dir=runs/reproduce/runs/cpu \\
        --data_root=../shared/data [--table=erlnet_table3] [--seeds=0,1] [--sets=rain12,rain100h-20]

For every seed that has a record of both ``erlnet_ma_d_mlgd`` (ERL-Net,
MA_D + MLGD) and ``memd`` in ``<records_dir>/<table>/`` and both run folders
(``<runs_dir>/<row>/<record's run>/final.keras``), and for every test set of
``--sets`` both records were scored on, both models restore the test set in
this process through :func:`erlrestore.evaluation.compare_models` (what
``erlrestore-evaluate --model=<ERL-Net> --baseline_model=<MEMD>`` runs), with
the scoring flags the records name, then once more with the two swapped (the
"reverse" shares: ties count for neither model, so ERL-Net's IoR is read
against MEMD's). Rain and background are the thresholded ``|rainy - clean|``
maps (the paper's rule; no rain masks). The test set's folder is the
record's, under ``--data_root``; its listing must be the one the record was
scored on (a note says when the folder moved or changed), and each model's
per-image PSNRs, image by image, must match its record within
``--psnr_tolerance`` dB: so the run folder holds the model the record
scored, and the folder the images it scored.

Each (test set, seed) gives ``<records_dir>/erlnet_table4/<set>-seed<k>.miou.json``
(``erlnet_table4_each`` for ``--table=erlnet_table3_each``): the commit it was
measured at, the two records and run folders, per-image IoR / IoB both ways
and PSNRs, and the means. Seeds without both run folders are skipped with a
note. When the records go to the checkout's ``results/``, ``docs/RESULTS.md``
and its plots are rendered again (``erlrestore-reproduce --render_only``).
"""

import os
import sys

from absl import app, flags

from erlrestore import paper_figures, records

FLAGS = flags.FLAGS
PSNR_TOLERANCE_DB = 0.01


def _rounded(value, digits=6):
    value = float(value)
    return None if value != value else round(value, digits)  # nan -> null


def _check_psnrs(label, scores, record, name, tolerance):
    """Largest |PSNR measured - PSNR recorded| of one model on one set; ValueError above ``tolerance``."""
    recorded = records.per_image_psnr(record, name)
    measured = {s.name: s.psnr for s in scores}
    if sorted(recorded) != sorted(measured):
        raise ValueError(f"{name}: {label} was measured on other images than its record holds")
    worst = max(abs(measured[n] - recorded[n]) for n in recorded)
    if worst > tolerance:
        raise ValueError(f"{name}: {label}'s PSNRs differ from its record by up to {worst:.4f} dB (> {tolerance}); "
                         "the run folder does not hold the model the record scored")
    return worst


def measure_set(model, baseline, pairs, settings):
    """(forward, reverse) :class:`erlrestore.evaluation.ModelComparison` of two restorers on ``pairs``."""
    from erlrestore import evaluation

    batch = settings.norm_statistics == "batch"
    options = dict(crop_border=settings.crop_border, quantize=settings.quantize, show_progress=False,
                   workers=settings.workers or None, training=batch, channel=settings.channel,
                   self_ensemble=settings.self_ensemble, tile=settings.tile, overlap=settings.overlap)
    forward = evaluation.compare_models(model, baseline, pairs, **options)
    reverse = evaluation.compare_models(baseline, model, pairs, **options)
    return forward, reverse


def make_record(table, seed, name, test_set, model_record, baseline_record, record_paths, forward, reverse,
                differences, listing=None):
    """The Table 4 record of one test set and seed (``listing``: image count and digest of the names and sizes
    of the images measured, :func:`erlrestore.records.folder_listing_digest`)."""
    images = []
    for score, base, iou, back in zip(forward.scores, forward.baseline_scores, forward.ious, reverse.ious):
        images.append({"name": score.name, "psnr": _rounded(score.psnr), "baseline_psnr": _rounded(base.psnr),
                       "ior": _rounded(iou[0]), "iob": _rounded(iou[1]),
                       "reverse_ior": _rounded(back[0]), "reverse_iob": _rounded(back[1])})
    return {
        "schema": 1,
        "table": table,
        "model_row": paper_figures.MODEL_ROW,
        "baseline_row": paper_figures.BASELINE_ROW,
        "seed": int(seed),
        "test_set": name,
        "folder": test_set.get("folder", ""),
        "contents": test_set.get("contents", ""),
        "listing": listing,
        "eval_flags": list(test_set.get("eval_flags", [])),
        "count": len(images),
        "maps": "rain where |Y(rainy) - Y(clean)| > its mean over the image (ERL-Net Sec. 4.3), else background",
        "commit": records.git_state(),
        "records": {"model": record_paths[0], "baseline": record_paths[1]},
        "runs": {"model": model_record["run"], "baseline": baseline_record["run"]},
        "record_commits": {"model": model_record.get("commit"), "baseline": baseline_record.get("commit")},
        "max_psnr_difference_to_records": {"model": _rounded(differences[0]), "baseline": _rounded(differences[1])},
        "miou": [_rounded(v) for v in forward.miou],
        "reverse_miou": [_rounded(v) for v in reverse.miou],
        "images": images,
    }


def measure(records_dir, runs_dir, data_root, table="erlnet_table3", seeds=(), sets=paper_figures.TABLE4_SETS,
            log=print, tolerance=PSNR_TOLERANCE_DB):
    """Measures and writes every Table 4 record the records and run folders allow; returns the paths written.

    Raises ValueError when a model's per-image PSNRs (or its images' names) disagree with its record.
    """
    from erlrestore import inference, runner
    from erlrestore.data import pairing

    if table not in paper_figures.TABLE4_FOLDERS:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(paper_figures.TABLE4_FOLDERS)}")
    found = records.load_records(records_dir).get(table, [])
    by_row = {row: {r["seed"]: r for r in found if r["row"] == row}
              for row in (paper_figures.MODEL_ROW, paper_figures.BASELINE_ROW)}
    common = sorted(set(by_row[paper_figures.MODEL_ROW]) & set(by_row[paper_figures.BASELINE_ROW]))
    if seeds:
        for seed in sorted(set(seeds) - set(common)):
            log(f"seed {seed}: no records of both {paper_figures.MODEL_ROW} and {paper_figures.BASELINE_ROW} "
                f"in {records_dir}/{table}/")
        common = [s for s in common if s in seeds]
    out_dir = os.path.join(records_dir, paper_figures.TABLE4_FOLDERS[table])
    written = []
    for seed in common:
        model_record = by_row[paper_figures.MODEL_ROW][seed]
        baseline_record = by_row[paper_figures.BASELINE_ROW][seed]
        if records.protocol(model_record) != records.protocol(baseline_record):
            log(f"seed {seed}: the two rows' runs were not trained the same way; skipped")
            continue
        finals = [os.path.join(runs_dir, r["row"], r["run"], "final.keras") for r in (model_record, baseline_record)]
        absent = [path for path in finals if not os.path.isfile(path)]
        if absent:
            log(f"seed {seed}: no {' or '.join(absent)}; skipped (the run folders are not committed)")
            continue
        record_paths = [os.path.relpath(records.record_path(records_dir, table, r["row"], seed), records_dir)
                        for r in (model_record, baseline_record)]
        restorers = {}
        for name in sets:
            test_set = model_record.get("test_sets", {}).get(name)
            other = baseline_record.get("test_sets", {}).get(name)
            if test_set is None or other is None:
                log(f"seed {seed}: {name} is not in both records; skipped")
                continue
            if test_set.get("synthesis") or other.get("contents") != test_set.get("contents"):
                raise ValueError(f"seed {seed}: the two records' {name} are not the same folder of images")
            input_dir = records.local_path(test_set["folder"], data_root)
            target_dir = records.local_path(test_set["target_folder"], data_root) if test_set.get("target_folder") else ""
            if not os.path.isdir(input_dir):
                raise ValueError(f"{name}: no folder {input_dir} (pass --data_root)")
            if records.test_set_key(input_dir, target_dir, ()) != test_set.get("contents"):
                # The key names the folder's real path too: here it may only have moved. The PSNR check decides.
                log(f"seed {seed}: {name}: {input_dir} is not where the records were scored, or it changed; "
                    "the per-image PSNRs will tell")
            settings = runner.evaluation_settings(test_set.get("eval_flags", []))
            pairs = pairing.find_pairs(input_dir, target_dir or None, layout=settings.layout,
                                       pair_order=settings.pair_order)
            if not restorers:
                batch = settings.norm_statistics == "batch"
                restorers = {"model": inference.load_restorer(finals[0], backend=settings.backend,
                                                              batch_statistics=batch),
                             "baseline": inference.load_restorer(finals[1], backend=settings.backend,
                                                                 batch_statistics=batch)}
            log(f"seed {seed}: {name} ({len(pairs)} images)")
            forward, reverse = measure_set(restorers["model"], restorers["baseline"], pairs, settings)
            differences = (_check_psnrs("ERL-Net", forward.scores, model_record, name, tolerance),
                           _check_psnrs("MEMD", forward.baseline_scores, baseline_record, name, tolerance))
            listing = list(records.folder_listing_digest(input_dir))
            record = make_record(table, seed, name, test_set, model_record, baseline_record, record_paths,
                                 forward, reverse, differences, listing)
            path = os.path.join(out_dir, paper_figures.table4_record_name(name, seed))
            records.write_record(path, record)
            log(f"  mIoR {record['miou'][0]} mIoB {record['miou'][1]} (reverse {record['reverse_miou'][0]} / "
                f"{record['reverse_miou'][1]}); PSNRs as recorded within {max(differences):.2g} dB: {path}")
            written.append(path)
    return written


def render_if_default(records_dir, log=print):
    """Renders docs/RESULTS.md and its plots again when ``records_dir`` is the checkout's ``results/``."""
    if os.path.realpath(records_dir) != os.path.realpath(records.default_records_dir()):
        return
    from erlrestore import results_page

    changed = results_page.update_page(records_dir=records_dir)
    drawn = results_page.write_figures(records_dir=records_dir)
    log(f"{results_page.default_page()}: {'rendered again' if changed else 'already up to date'}"
        + (f"; plots: {', '.join(os.path.relpath(p) for p in drawn)}" if drawn else ""))


def define_flags():
    from erlrestore import reproduce

    flags.DEFINE_string("records_dir", "", "The table records, <records_dir>/<table>/<row>-seed<k>.json; the Table 4 "
                        "records go beside them (default: the checkout's results/).")
    flags.DEFINE_string("runs_dir", "runs/reproduce/runs/cpu", "The run folders, <runs_dir>/<row>/<run>/ "
                        "(erlrestore-reproduce's <output_dir>/runs/<scale>).")
    flags.DEFINE_string("data_root", reproduce.default_data_root(), "What $ERLRESTORE_DATA_ROOT stands for in the "
                        "records' test-set folders.")
    flags.DEFINE_enum("table", "erlnet_table3", list(paper_figures.TABLE4_FOLDERS), "Our table holding both rows.")
    flags.DEFINE_list("seeds", [], "Only these seeds (default: every seed with both records and run folders).")
    flags.DEFINE_list("sets", list(paper_figures.TABLE4_SETS), "Test sets (as the records name them).")
    flags.DEFINE_float("psnr_tolerance", PSNR_TOLERANCE_DB, "Largest allowed |PSNR - the record's| in dB.",
                       lower_bound=0.0)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"--seeds are integers, got {','.join(FLAGS.seeds)}") from None
    records_dir = FLAGS.records_dir or records.default_records_dir()
    try:
        written = measure(records_dir, FLAGS.runs_dir, FLAGS.data_root, FLAGS.table, seeds, FLAGS.sets,
                          tolerance=FLAGS.psnr_tolerance)
    except (ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{len(written)} Table 4 record(s) written to "
          f"{os.path.join(records_dir, paper_figures.TABLE4_FOLDERS[FLAGS.table])}/")
    if written:
        render_if_default(records_dir)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
