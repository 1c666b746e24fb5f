"""erlrestore-reproduce: the tables as data, the reports, and a tiny end-to-end run with resume and a failing row."""

import csv
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from erlrestore import reproduce

REPO = pathlib.Path(__file__).resolve().parent.parent
PAPERS = REPO.parent / "shared" / "papers"


def test_every_row_names_a_flagfile_and_every_comparison_names_rows_of_its_table():
    assert set(reproduce.TABLES) == {"erlnet_table2", "erlnet_table3", "rethinking_table2", "rethinking_table3"}
    for table in reproduce.TABLES.values():
        ids = [row.id for row in table.rows]
        assert len(ids) == len(set(ids)), table.key
        for row in table.rows:
            assert (REPO / "flags" / row.flagfile).is_file(), row.flagfile
        for better, worse in table.comparisons:
            assert better in ids and worse in ids, (table.key, better, worse)
        for scale in reproduce.SCALES:
            assert (REPO / "flags" / "reproduce" / f"{scale}_{table.family}.flags").is_file()
    table3 = reproduce.TABLES["erlnet_table3"]
    assert len(table3.rows) == 11  # 5 strategies x 2 entanglements + MEMD


@pytest.mark.skipif(not PAPERS.is_dir(), reason="papers not beside the checkout")
def test_published_numbers_are_the_papers():
    erlnet = (PAPERS / "erl-net-iccv2019.md").read_text(encoding="utf-8")
    rethinking = (PAPERS / "rethinking-generative-restoration.md").read_text(encoding="utf-8")
    for key, text, digits in (("erlnet_table2", erlnet, 4), ("erlnet_table3", erlnet, 4),
                              ("rethinking_table2", rethinking, 2), ("rethinking_table3", rethinking, 2)):
        for row in reproduce.TABLES[key].rows:
            if row.paper_psnr is not None:
                assert f"{row.paper_psnr:.{digits}f}" in text, (key, row.id, row.paper_psnr)
                assert f"{row.paper_ssim:.4f}" in text, (key, row.id, row.paper_ssim)


PARSE_STACKED = """
import sys
from absl import flags
from erlrestore.cli import train
from erlrestore.training import experiment
train.define_flags()
for pair in sys.argv[1:]:
    row, overlay = pair.split(",")
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["erlrestore-train", "--flagfile=" + row, "--flagfile=" + overlay, "--procedural=4",
                 "--model_dir=unused"])
    settings = train.settings_from_flags()
    experiment.check_settings(settings)
    print(row, overlay, settings.stage_steps, settings.stage_budget, settings.data.crop_size,
          settings.global_residual, settings.resolved_lr_schedule())
"""


@pytest.mark.slow
def test_every_row_parses_with_every_scale_overlay():
    pairs = []
    for table in reproduce.TABLES.values():
        for row in table.rows:
            for scale in ("cpu", "tiny"):
                pairs.append(f"flags/{row.flagfile},flags/reproduce/{scale}_{table.family}.flags")
    result = subprocess.run([sys.executable, "-c", PARSE_STACKED, *sorted(set(pairs))], capture_output=True,
                            text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in result.stdout.splitlines()}
    # cpu scale: one total budget, split over the stages; the ERL-Net rows keep the paper's absent residual.
    assert rows[("flags/erlnet_ma_d_mlgd.flags", "flags/reproduce/cpu_erlnet.flags")] == [
        "(2400,)", "split", "64", "False", "constant"]
    assert rows[("flags/memd_global_residual.flags", "flags/reproduce/cpu_erlnet.flags")][3] == "True"
    assert rows[("flags/pix2pix_unet8.flags", "flags/reproduce/cpu_gan.flags")] == [
        "(2000,)", "split", "96", "True", "linear_decay"]


def test_score_line_and_eval_sets_parsing():
    assert reproduce.parse_score_line("log\nn=12 psnr_y=30.1354 ssim_y=0.85540\n") == (12, 30.1354, 0.8554)
    with pytest.raises(ValueError, match="no score line"):
        reproduce.parse_score_line("error: nothing")
    assert reproduce.parse_eval_sets(["a=x", "b=y:z"]) == {"a": ("x", ""), "b": ("y", "z")}
    with pytest.raises(ValueError, match="name=input_dir"):
        reproduce.parse_eval_sets(["just_a_folder"])


def test_curve_verdict():
    assert reproduce.curve_verdict([20.0, 21.0]) == "too short"
    assert reproduce.curve_verdict([20, 25, 28, 29, 29.0, 29.05, 29.02, 29.08]) == "flat"
    assert reproduce.curve_verdict([20, 22, 24, 26, 28, 30, 32, 34]) == "rising +4.00 dB"
    assert reproduce.curve_verdict([30, 31, 32, 32, 32, 31, 30, 29]) == "falling -2.00 dB"


def _result(row, **scores):
    return reproduce.RowResult(row, "", scores={name: (value, 0.9) for name, value in scores.items()})


def test_verdicts_need_the_paper_order_on_every_test_set():
    table = reproduce.TABLES["erlnet_table2"]
    results = [
        _result(table.row("memd_minus_minus"), a=20.0, b=21.0),
        _result(table.row("memd_minus"), a=22.0, b=20.5),  # better on a, worse on b
        _result(table.row("memd"), a=23.0, b=22.0),
    ]
    found = {(better, worse): (paper, ours, ok) for better, worse, paper, ours, ok in
             reproduce.verdicts(table, results)}
    assert found[("memd", "memd_minus")][2] is True
    assert found[("memd_minus", "memd_minus_minus")][2] is False
    assert found[("memd_minus", "memd_minus_minus")][1] == {"a": 2.0, "b": -0.5}
    assert found[("memd", "memd_minus_minus")][0] == pytest.approx(31.6310 - 24.0743)
    text = reproduce.markdown(table, results, ["a", "b"])
    assert "## ERL-Net Table 2" in text
    assert "| MEMD- (skip, no fusion) > MEMD-- (no skip, no fusion) | +5.30 dB | +2.00 dB, -0.50 dB | no |" in text
    assert "31.63 / 0.8668" in text


def _reproduce(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "erlrestore.cli.reproduce", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout)


@pytest.fixture(scope="module")
def tiny_test_set(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_test")
    result = subprocess.run([sys.executable, "-m", "erlrestore.cli.synth", "--procedural=2", "--size=64",
                             "--degradation=rain", f"--output_dir={folder}/set"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return folder / "set"


@pytest.mark.slow
def test_tiny_table_runs_reports_resumes_and_survives_a_failing_row(tiny_test_set, tmp_path):
    flags_dir = tmp_path / "flags"
    shutil.copytree(REPO / "flags", flags_dir)
    # A broken row: its training fails, the other rows go on.
    (flags_dir / "memd_minus.flags").write_text("--model=NoSuchModel\n", encoding="utf-8")
    out = tmp_path / "results"
    args = ["--table=erlnet_table2", "--scale=tiny", f"--output_dir={out}", f"--flags_dir={flags_dir}",
            "--rows=memd_minus_minus,memd_minus,memd", f"--eval_sets=tiny={tiny_test_set}",
            f"--train_flags=--procedural=4 --degradation=rain --val_input_dir={tiny_test_set}"]
    first = _reproduce(*args)
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]
    assert "memd_minus failed" in first.stdout
    assert "1 row(s) or table(s) failed" in first.stderr

    with open(out / "erlnet_table2" / "results.csv", encoding="utf-8") as f:
        rows = {r["row"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"memd_minus_minus", "memd_minus", "memd"}
    assert "NoSuchModel" in rows["memd_minus"]["error"] or "train" in rows["memd_minus"]["error"]
    for good in ("memd_minus_minus", "memd"):
        assert rows[good]["error"] == ""
        assert rows[good]["test_set"] == "tiny"
        assert 0 < float(rows[good]["psnr_y"]) < 100
        assert rows[good]["steps"] == "4"
        assert rows[good]["paper_psnr_y"] != ""
    report = (out / "erlnet_table2" / "results.md").read_text(encoding="utf-8")
    assert "## ERL-Net Table 2" in report and "Failed rows:" in report
    assert "| MEMD (skip + fusion) > MEMD-- (no skip, no fusion) | +7.56 dB |" in report
    # Learning curves come from the runs' validation logs (one point per checkpoint interval of 2 steps).
    record = json.loads((out / "runs" / "tiny" / "memd" / "reproduce_row.json").read_text())
    assert set(record["scores"]) == {"erlnet_table2:tiny"}
    assert len(reproduce.learning_curve(str(out / "runs" / "tiny" / "memd"))) == 2

    # Fixed row, same command: finished rows are skipped (not retrained nor rescored), the failed one runs.
    shutil.copyfile(REPO / "flags" / "memd_minus.flags", flags_dir / "memd_minus.flags")
    final = out / "runs" / "tiny" / "memd" / "final.keras"
    stamp = final.stat().st_mtime_ns
    second = _reproduce(*args)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert "training memd_minus " in second.stdout
    assert "training memd " not in second.stdout and "scoring memd on" not in second.stdout
    assert final.stat().st_mtime_ns == stamp
    with open(out / "erlnet_table2" / "results.csv", encoding="utf-8") as f:
        assert all(r["error"] == "" for r in csv.DictReader(f))
    summary = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "Command: `erlrestore-reproduce --table=erlnet_table2 --scale=tiny" in summary
    assert "Machine: " in summary and "## ERL-Net Table 2" in summary


@pytest.mark.slow
def test_cli_help_lists_its_flags_and_bad_values_are_usage_errors():
    help_text = _reproduce("--help", timeout=120).stdout
    for flag in ("--table", "--scale", "--output_dir", "--rows", "--eval_sets", "--train_flags"):
        assert flag in help_text
    bad = _reproduce("--table=erlnet_table9", timeout=120)
    assert bad.returncode != 0 and "unknown table erlnet_table9" in bad.stderr
    bad_row = _reproduce("--table=erlnet_table2", "--rows=nope", timeout=120)
    assert bad_row.returncode != 0 and "unknown row nope" in bad_row.stderr
    dry = _reproduce("--table=erlnet_table3", "--scale=tiny", "--dry_run", timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    commands = dry.stdout.strip().splitlines()
    assert len(commands) == 11
    assert all("reproduce/tiny_erlnet.flags" in c for c in commands)
    assert os.path.join("runs", "tiny", "erlnet_ma_d_mlgd") in dry.stdout
