"""erlrestore-reproduce: regenerate a paper table, every row trained and scored by the ordinary tools.

    erlrestore-reproduce --table=erlnet_table2 --scale=cpu --output_dir=results/
    erlrestore-reproduce --table=all --scale=cpu
    erlrestore-reproduce --table=erlnet_table3 --scale=paper \\
        --train_flags=--train_input_dir=Rain100H/train --eval_sets=rain100h=Rain100H/test

Tables: erlnet_table2, erlnet_table3, rethinking_table2, rethinking_table3
(``all`` or a comma list). Scales: ``cpu`` (about an hour per table on a
2-core CPU, data from the shared samples under ``--data_root``), ``paper``
(the papers' settings; name the data) and ``tiny`` (tests).

Writes ``<output_dir>/<table>/results.{csv,md}`` and ``curves.png``; run
folders are ``<output_dir>/runs/<scale>/<row>/``. Running the same command
again skips finished rows and resumes unfinished ones. See
:mod:`erlrestore.reproduce`.
"""

import sys

from absl import app, flags

from erlrestore import reproduce
from erlrestore.cli import fail, run_tool

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_list("table", None, "Tables to regenerate: " + ", ".join(reproduce.TABLES) + ", or all.")
    flags.DEFINE_enum("scale", "cpu", reproduce.SCALES,
                      "cpu: narrow nets and a fixed step budget (about an hour per table on 2 cores); "
                      "paper: the papers' settings (a GPU; give the data); tiny: seconds per row (tests).")
    flags.DEFINE_string("output_dir", "results", "Reports go to <output_dir>/<table>/, runs to <output_dir>/runs/.")
    flags.DEFINE_string("data_root", reproduce.default_data_root(),
                        "Folder of the shared samples (derain-train/, rain12/, rain100l-10/, kodak24/) used by "
                        "--scale=cpu.")
    flags.DEFINE_list("eval_sets", [], "Test sets as name=input_dir[:target_dir] (default: the table's own at "
                      "--scale=cpu: rain12 and rain100l-10, or kodak24 for the reconstruction table).")
    flags.DEFINE_string("train_flags", "", "Training-data flags for every row, space separated (default at "
                        "--scale=cpu: synthetic rain over <data_root>/derain-train/clean).")
    flags.DEFINE_list("rows", [], "Only these row ids (default: every row of the table).")
    flags.DEFINE_string("flags_dir", reproduce.repository_flags_dir(), "The repository's flags/ folder.")
    flags.DEFINE_boolean("dry_run", False, "Print each row's training command and exit.")
    flags.mark_flag_as_required("table")


def _tables(names):
    if names == ["all"]:
        return list(reproduce.TABLES.values())
    unknown = [name for name in names if name not in reproduce.TABLES]
    if unknown:
        raise app.UsageError(f"unknown table {', '.join(unknown)}; choose from {', '.join(reproduce.TABLES)} or all")
    return [reproduce.TABLES[name] for name in names]


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    tables = _tables(FLAGS.table)
    known_rows = {row.id for table in tables for row in table.rows}
    unknown = sorted(set(FLAGS.rows) - known_rows)
    if unknown:
        raise app.UsageError(f"unknown row {', '.join(unknown)}; rows of these tables: {', '.join(sorted(known_rows))}")
    try:
        eval_sets = reproduce.parse_eval_sets(FLAGS.eval_sets)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    train_flags = FLAGS.train_flags.split()
    failed = 0
    for table in tables:
        if FLAGS.dry_run:
            data = train_flags or reproduce.scale_data_flags(FLAGS.scale, FLAGS.data_root)
            for row in table.rows:
                if not FLAGS.rows or row.id in FLAGS.rows:
                    print(" ".join(reproduce.train_command(table, row, FLAGS.scale, FLAGS.flags_dir, data,
                                                           f"{FLAGS.output_dir}/runs/{FLAGS.scale}/{row.id}")))
            continue
        try:
            results = reproduce.reproduce_table(
                table, FLAGS.scale, FLAGS.output_dir, flags_dir=FLAGS.flags_dir, data_root=FLAGS.data_root,
                train_flags=train_flags, eval_sets=eval_sets, rows=FLAGS.rows,
                log=lambda message: print(message, flush=True),
            )
        except (ValueError, OSError) as error:
            failed += 1
            fail(error)
            continue
        failed += sum(1 for r in results if r.error)
        print(f"{table.title}: {FLAGS.output_dir}/{table.key}/results.md", flush=True)
    if not FLAGS.dry_run:
        summary = reproduce.write_summary(FLAGS.output_dir, " ".join(["erlrestore-reproduce", *sys.argv[1:]]))
        if summary:
            print(f"all tables: {summary}", flush=True)
    if failed:
        print(f"error: {failed} row(s) or table(s) failed; run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def run():
    define_flags()
    run_tool(main, __name__)


if __name__ == "__main__":
    run()
