"""erlrestore-reproduce: regenerate a paper table, every row trained and scored by the ordinary tools.

    erlrestore-reproduce --table=erlnet_table2 --scale=cpu --seeds=0,1,2
    erlrestore-reproduce --table=all --scale=cpu
    erlrestore-reproduce --table=rethinking_table2_all --scale=cpu   # Rethinking Table II, all six columns
    erlrestore-reproduce --table=erlnet_table3 --scale=paper \\
        --train_flags=--train_input_dir=Rain100H/train --eval_sets=rain100h=Rain100H/test
    erlrestore-reproduce --render_only          # docs/RESULTS.md (and the plots in docs/figures/) from the records
    erlrestore-reproduce --render_only --check  # exit 1 when the page and the records disagree

Tables: erlnet_table2, erlnet_table3, rethinking_table1_{denoise,derain,dehaze}
(Rethinking Table I / Fig. 3: UNet-1 to UNet-6 per task), rethinking_table2
(Table II's Rain800 column), rethinking_table2_{sidd,reside,rain1200,
raincityscapes,outdoorrain} (its other columns), rethinking_table3 (``all``,
a group, ``rethinking_table1_all`` or ``rethinking_table2_all``, or a comma
list). Scales: ``cpu`` (about an hour per table and seed on a 2-core CPU,
data from the shared samples under ``--data_root``, each table its own),
``paper`` (the papers' settings; name the data) and ``tiny`` (tests).

Every row trains once per seed (``--seeds``; a verdict needs three). Each
run's record goes to ``<records_dir>/<table>/<row>-seed<k>.json`` (the
checkout's committed ``results/`` by default, ``<output_dir>/records`` at
``--scale=tiny``); run folders are
``<output_dir>/runs/<scale>/<row>/seed<k>-<digest>/`` and the per-table
reports ``<output_dir>/<table>/results.{csv,md}`` and ``curves.png``. When
the records go to ``results/``, the generated part of ``docs/RESULTS.md``
is rendered again. Running the same command again skips finished runs and
resumes unfinished ones. See :mod:`erlrestore.reproduce`.
"""

import os
import sys

from absl import app, flags

from erlrestore import records, reproduce, verdicts
from erlrestore.cli import entry_point, fail

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("table", None, "Tables to regenerate: " + ", ".join(reproduce.TABLES) + "; a group: "
                      + ", ".join(reproduce.GROUPS) + "; or all (required unless --render_only).")
    flags.DEFINE_enum("scale", "cpu", reproduce.SCALES,
                      "cpu: narrow nets and a fixed step budget (about an hour per table on 2 cores); "
                      "paper: the papers' settings (a GPU; give the data); tiny: seconds per row (tests).")
    flags.DEFINE_string("output_dir", "runs/reproduce",
                        "Reports go to <output_dir>/<table>/, run folders to <output_dir>/runs/ (keep it out of git).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Train every row once per seed (seed k of one row is compared "
                      "with seed k of another; a verdict needs at least 3).")
    flags.DEFINE_string("records_dir", "", "Where the per-run records go, <records_dir>/<table>/<row>-seed<k>.json "
                        "(default: the checkout's committed results/; <output_dir>/records at --scale=tiny).")
    flags.DEFINE_boolean("render_only", False, "Train nothing: render the generated part of --results_page, and its "
                         "plots into figures/ beside it (with matplotlib), from the records in --records_dir "
                         "(default: the committed results/).")
    flags.DEFINE_boolean("check", False, "With --render_only: write nothing, exit 1 when the page's generated part "
                         "differs from what the records render to.")
    flags.DEFINE_string("results_page", "", "The page --render_only writes (default: the checkout's docs/RESULTS.md).")
    flags.DEFINE_string("data_root", reproduce.default_data_root(),
                        "Folder of the shared samples (derain-train/, dehaze-train/, rain12/, rain100l-10/, "
                        "rain100h-20/, polyu-20/, sots-indoor-10/, kodak24/) used by --scale=cpu.")
    flags.DEFINE_list("eval_sets", [], "Test sets as name=input_dir[:target_dir] (default: the table's own at "
                      "--scale=cpu: rain12, rain100l-10 and, for the ERL-Net tables, rain100h-20; polyu-20 for "
                      "de-noising; sots-indoor-10 for de-hazing; kodak24 for the reconstruction table; rain, "
                      "rain and fog, and heavy rain synthesised once over kodak24 into <output_dir>/data/ for "
                      "Rethinking Table II's Rain1200, RainCityScapes and OutdoorRain columns).")
    flags.DEFINE_string("train_flags", "", "Training-data flags for every row, space separated (default at "
                        "--scale=cpu: the table's own; for de-raining light to heavy synthetic rain, "
                        "--degradation=dense_rain --degradation_params=density_level=mixed, over "
                        "<data_root>/derain-train/clean; the reconstruction table: the same photos; de-noising: "
                        "--degradation=camera_noise over them; de-hazing: the pairs of <data_root>/dehaze-train).")
    flags.DEFINE_list("rows", [], "Only these row ids (default: every row of the table).")
    flags.DEFINE_string("flags_dir", reproduce.repository_flags_dir(), "The repository's flags/ folder.")
    flags.DEFINE_boolean("dry_run", False, "Print each row's training command and exit.")


def _tables(names):
    """The tables ``--table`` names, in its order, each once: table keys, group names and ``all``."""
    keys, unknown = [], []
    for name in names:
        if name == "all":
            keys += list(reproduce.TABLES)
        elif name in reproduce.GROUPS:
            keys += list(reproduce.GROUPS[name])
        elif name in reproduce.TABLES:
            keys.append(name)
        else:
            unknown.append(name)
    if unknown:
        raise app.UsageError(f"unknown table {', '.join(unknown)}; choose from {', '.join(reproduce.TABLES)}, a "
                             f"group ({', '.join(reproduce.GROUPS)}) or all")
    return [reproduce.TABLES[key] for key in dict.fromkeys(keys)]


def _render(records_dir, page, check):
    from erlrestore import results_page

    page = page or results_page.default_page()
    records_dir = records_dir or records.default_records_dir()
    try:
        if check:
            if results_page.page_matches(page, records_dir):
                print(f"{page} matches the records in {records_dir}", flush=True)
                return 0
            print(f"error: {page} does not match the records in {records_dir}; run erlrestore-reproduce "
                  "--render_only", file=sys.stderr)
            return 1
        changed = results_page.update_page(page, records_dir)
        drawn = results_page.write_figures(page, records_dir)
    except (ValueError, OSError) as error:
        return fail(error)
    print(f"{page}: {'rendered again' if changed else 'already up to date'} from {records_dir}", flush=True)
    if drawn:
        print(f"plots: {', '.join(os.path.relpath(p) for p in drawn)}", flush=True)
    else:
        print(f"note: no plot drawn into {results_page.figures_dir(page)} (matplotlib is not installed, or no "
              "record gives one; the page's text does not depend on them)", flush=True)
    return 0


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.render_only:
        if FLAGS.table:
            raise app.UsageError("--render_only trains nothing; leave out --table")
        return _render(FLAGS.records_dir, FLAGS.results_page, FLAGS.check)
    if FLAGS.check:
        raise app.UsageError("--check goes with --render_only")
    if not FLAGS.table:
        raise app.UsageError("--table is required (or --render_only)")
    tables = _tables(FLAGS.table)
    known_rows = {row.id for table in tables for row in table.rows}
    unknown = sorted(set(FLAGS.rows) - known_rows)
    if unknown:
        raise app.UsageError(f"unknown row {', '.join(unknown)}; rows of these tables: {', '.join(sorted(known_rows))}")
    try:
        eval_sets = reproduce.parse_eval_sets(FLAGS.eval_sets)
        seeds = reproduce.parse_seeds(FLAGS.seeds)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    train_flags = FLAGS.train_flags.split()
    if len(seeds) < verdicts.MIN_SEEDS and not FLAGS.dry_run:
        print(f"note: {len(seeds)} seed(s); the verdicts stay undecided until a row has {verdicts.MIN_SEEDS}",
              flush=True)
    records_dir = FLAGS.records_dir or reproduce.default_records_dir(FLAGS.scale, FLAGS.output_dir)
    failed = 0
    for table in tables:
        if FLAGS.dry_run:
            data = train_flags or reproduce.scale_data_flags(FLAGS.scale, FLAGS.data_root, table)
            runs_dir = f"{FLAGS.output_dir}/runs/{FLAGS.scale}"
            for row in table.rows:
                if not FLAGS.rows or row.id in FLAGS.rows:
                    for seed in seeds:
                        run_dir = reproduce.run_dir_for(table, row, FLAGS.scale, FLAGS.flags_dir, data, runs_dir, seed)
                        print(" ".join(reproduce.train_command(table, row, FLAGS.scale, FLAGS.flags_dir, data,
                                                               run_dir, seed=seed)))
            continue
        try:
            results = reproduce.reproduce_table(
                table, FLAGS.scale, FLAGS.output_dir, flags_dir=FLAGS.flags_dir, data_root=FLAGS.data_root,
                train_flags=train_flags, eval_sets=eval_sets, rows=FLAGS.rows, seeds=seeds, records_dir=records_dir,
                log=lambda message: print(message, flush=True),
            )
        except (ValueError, OSError) as error:
            failed += 1
            fail(error)
            continue
        failed += sum(1 for r in results if r.error)
        written = sum(1 for r in results if r.record_path)
        print(f"{table.title}: {FLAGS.output_dir}/{table.key}/results.md; {written} record(s) in "
              f"{records_dir}/{table.key}/", flush=True)
    if not FLAGS.dry_run:
        summary = reproduce.write_summary(FLAGS.output_dir, " ".join(["erlrestore-reproduce", *sys.argv[1:]]))
        if summary:
            print(f"all tables: {summary}", flush=True)
        if os.path.realpath(records_dir) == os.path.realpath(records.default_records_dir()):
            _render(records_dir, FLAGS.results_page, check=False)
    if failed:
        print(f"error: {failed} run(s) or table(s) failed; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
