"""erlrestore-reproduce: the tables as data, seeds, records, and a tiny end-to-end run with resume, a failing row,
per-seed run folders and a test set that changed under its name.

The verdict rule is tested in tests/test_verdicts.py, the records and the rendered page in
tests/test_results_page.py."""

import csv
import dataclasses
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


NEW_TABLE2 = ("rethinking_table2_sidd", "rethinking_table2_reside", "rethinking_table2_rain1200",
              "rethinking_table2_raincityscapes", "rethinking_table2_outdoorrain")
TABLE1 = ("rethinking_table1_denoise", "rethinking_table1_derain", "rethinking_table1_dehaze")
FIGURES = ("rethinking_fig6", "rethinking_fig13")


def test_every_row_names_a_flagfile_and_every_comparison_names_rows_of_its_table():
    assert set(reproduce.TABLES) == {"erlnet_table2", "erlnet_table3", "erlnet_table3_each", "rethinking_table2",
                                     "rethinking_table3", *NEW_TABLE2, *TABLE1, *FIGURES}
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


def test_eval_sets_parsing():
    assert reproduce.parse_eval_sets(["a=x", "b=y:z"]) == {"a": ("x", ""), "b": ("y", "z")}
    with pytest.raises(ValueError, match="name=input_dir"):
        reproduce.parse_eval_sets(["just_a_folder"])


def _data_root(tmp_path, photos=2):
    """A data root holding what the cpu defaults name: derain-train/clean, dehaze-train and the tables' test sets."""
    root = tmp_path / "data"
    clean = root / "derain-train" / "clean"
    clean.mkdir(parents=True)
    for i in range(photos):
        (clean / f"photo{i}.jpg").write_bytes(b"x" * (10 + i))
    for name in ("rain12", "rain100l-10", "rain100h-20", "kodak24", "polyu-20", "sots-indoor-10", "dehaze-train"):
        (root / name).mkdir()
    return root


def test_cpu_scale_trains_de_raining_tables_on_light_to_heavy_rain(tmp_path):
    from erlrestore.data import synthetic

    root = _data_root(tmp_path)
    clean = f"--synthetic_clean_dir={root / 'derain-train' / 'clean'}"
    # Rain whose level (light, medium, heavy) is drawn per image, from the clean photos alone.
    mixed = [clean, "--degradation=dense_rain", "--degradation_params=density_level=mixed"]
    assert reproduce.scale_data_flags("cpu", str(root)) == mixed
    for key in ("erlnet_table2", "erlnet_table3", "rethinking_table2"):
        assert reproduce.scale_data_flags("cpu", str(root), reproduce.TABLES[key]) == mixed, key
    # The autoencoders train clean -> clean: their data flags (and so their run folders) are as before.
    assert reproduce.scale_data_flags("cpu", str(root), reproduce.TABLES["rethinking_table3"]) == [
        clean, "--degradation=rain"]
    # dense_rain needs no streak folder, and its parameters are valid.
    assert "streaks" not in synthetic.required_params("dense_rain")
    synthetic.check_params("dense_rain", **synthetic.parse_params("density_level=mixed"))
    assert reproduce.scale_data_flags("tiny", str(root)) == ["--procedural=4", "--degradation=rain"]
    assert reproduce.scale_data_flags("paper", str(root)) == []
    with pytest.raises(ValueError, match="pass --data_root"):
        reproduce.scale_data_flags("cpu", "")


def test_erlnet_tables_are_scored_on_heavy_rain_and_validated_on_the_first_set_only(tmp_path):
    root = _data_root(tmp_path)
    for key in ("erlnet_table2", "erlnet_table3"):
        table = reproduce.TABLES[key]
        assert list(table.eval_sets["cpu"]) == ["rain12", "rain100l-10", "rain100h-20"], key
        sets = reproduce.resolve_eval_sets(table, "cpu", str(root), None, str(tmp_path / "out"))
        assert sets["rain100h-20"] == (str(root / "rain100h-20"), "")
        # The learning curve watches the first 4 images of rain12; no other test set is named in training.
        val = reproduce.scale_val_flags(table, "cpu", str(root), sets)
        assert val == [f"--val_input_dir={root / 'rain12'}", "--val_max_images=4"]
        assert not any("rain100" in flag for flag in val)
    assert list(reproduce.TABLES["rethinking_table2"].eval_sets["cpu"]) == ["rain12", "rain100l-10"]
    assert list(reproduce.TABLES["rethinking_table3"].eval_sets["cpu"]) == ["kodak24"]


def test_other_training_data_is_another_run(tmp_path):
    # A rerun with other training data into the same output folder trains a new run, never reuses the old one.
    root = _data_root(tmp_path)
    table, flags_dir, runs = reproduce.TABLES["erlnet_table2"], str(REPO / "flags"), str(tmp_path / "runs")
    row = table.row("memd")
    clean = f"--synthetic_clean_dir={root / 'derain-train' / 'clean'}"
    new = reproduce.scale_data_flags("cpu", str(root), table)
    old = [clean, "--degradation=rain"]
    heavy = [clean, "--degradation=dense_rain", "--degradation_params=density_level=heavy"]
    folders = {tuple(flags): reproduce.run_dir_for(table, row, "cpu", flags_dir, flags, runs, 0)
               for flags in (new, old, heavy)}
    assert len(set(folders.values())) == 3
    assert reproduce.run_dir_for(table, row, "cpu", flags_dir, new, runs, 1) != folders[tuple(new)]
    # Validation flags draw the learning curve only: same run.
    assert reproduce.run_dir_for(table, row, "cpu", flags_dir, new + [f"--val_input_dir={root / 'rain12'}"], runs,
                                 0) == folders[tuple(new)]


def test_record_and_page_say_what_a_cpu_row_trained_on(tmp_path):
    from erlrestore import records, results_page

    root = _data_root(tmp_path, photos=3)
    table = reproduce.TABLES["erlnet_table2"]
    data = reproduce.scale_data_flags("cpu", str(root), table)
    sets = reproduce.resolve_eval_sets(table, "cpu", str(root), None, str(tmp_path / "out"))
    data += reproduce.scale_val_flags(table, "cpu", str(root), sets)
    found = []
    for row_id, degradation in (("memd", data), ("memd_minus", None)):
        run_dir = tmp_path / "runs" / row_id
        run_dir.mkdir(parents=True)
        (run_dir / "run_config.json").write_text(json.dumps({"model": "MEMD", "strategy": "MEMD"}), encoding="utf-8")
        # memd_minus trained on the old rain: another protocol, so the two rows are not compared.
        flags = degradation or [data[0], "--degradation=rain"]
        (run_dir / reproduce.STATE_FILE).write_text(json.dumps({"data_flags": flags, "scores": {}}), encoding="utf-8")
        images = [{"name": f"im{i}.png", "psnr": 14.0 + i, "ssim": 0.5} for i in range(3)]
        result = reproduce.RowResult(table.row(row_id), str(run_dir), seed=0,
                                     scores={name: (15.0, 0.5) for name in sets},
                                     images={name: images for name in sets})
        found.append(reproduce.make_record(table, result, scale="cpu", flags_dir=str(REPO / "flags"),
                                           data_root=str(root), eval_sets=sets))
    record = found[0]
    assert record["data"]["flags"] == [
        "--synthetic_clean_dir=$ERLRESTORE_DATA_ROOT/derain-train/clean", "--degradation=dense_rain",
        "--degradation_params=density_level=mixed", "--val_input_dir=$ERLRESTORE_DATA_ROOT/rain12",
        "--val_max_images=4"]
    assert record["data"]["folders"]["synthetic_clean_dir"] == {
        "name": "$ERLRESTORE_DATA_ROOT/derain-train/clean", "images": 3}
    assert set(record["test_sets"]) == {"rain12", "rain100l-10", "rain100h-20"}
    assert record["test_sets"]["rain100h-20"]["folder"] == "$ERLRESTORE_DATA_ROOT/rain100h-20"
    text = results_page.render_table(table, found)
    # The protocols table names each protocol's training data (numbered in row order: MEMD- comes first).
    assert ("| P1 | cpu | --synthetic_clean_dir=$ERLRESTORE_DATA_ROOT/derain-train/clean --degradation=rain; "
            "synthetic_clean_dir: $ERLRESTORE_DATA_ROOT/derain-train/clean (3 images) |") in text
    assert ("| P2 | cpu | --synthetic_clean_dir=$ERLRESTORE_DATA_ROOT/derain-train/clean --degradation=dense_rain "
            "--degradation_params=density_level=mixed; synthetic_clean_dir: $ERLRESTORE_DATA_ROOT/derain-train/clean "
            "(3 images) |") in text
    assert "ours: rain100h-20 (PSNR / SSIM)" in text
    assert records.protocol(found[0]) != records.protocol(found[1])


def test_cpu_training_rain_spans_the_test_sets_input_range(shared_data):
    # rain12 / rain100l-10 inputs are 30.1 / 29.7 dB Y-PSNR, rain100h-20's 13.35 dB: the training rain must cover
    # both ends (12 derain-train photos, the degradation as training draws it, seeded as erlrestore-synth does).
    import numpy as np

    from erlrestore import metrics
    from erlrestore.data import image_files, synthetic

    flags = reproduce.scale_data_flags("cpu", str(shared_data))
    named = dict(flag[2:].split("=", 1) for flag in flags)
    degrade = synthetic.make_degradation(named["degradation"], **synthetic.parse_params(named["degradation_params"]))
    paths = image_files.list_images(named["synthetic_clean_dir"])[:12]
    scores = []
    for i, path in enumerate(paths):
        clean = image_files.read_image(path)
        rainy = np.asarray(degrade(clean, synthetic.derive_seed(0, i)))
        to_8bit = lambda x: np.round(np.clip(np.asarray(x), 0.0, 1.0) * 255.0).astype(np.uint8)
        scores.append(metrics.psnr_ssim(to_8bit(rainy), to_8bit(clean))[0])
    assert min(scores) < 16.0 and max(scores) > 28.0, scores
    assert 18.0 < float(np.mean(scores)) < 26.0, scores


def test_curve_verdict():
    assert reproduce.curve_verdict([20.0, 21.0]) == "too short"
    assert reproduce.curve_verdict([20, 25, 28, 29, 29.0, 29.05, 29.02, 29.08]) == "flat"
    assert reproduce.curve_verdict([20, 22, 24, 26, 28, 30, 32, 34]) == "rising +4.00 dB"
    assert reproduce.curve_verdict([30, 31, 32, 32, 32, 31, 30, 29]) == "falling -2.00 dB"


def test_seeds_and_where_records_go(tmp_path):
    assert reproduce.parse_seeds(["0", "1", "2", "1"]) == (0, 1, 2)
    for bad in (["-1"], ["x"], []):
        with pytest.raises(ValueError):
            reproduce.parse_seeds(bad)
    # Test runs never write into the committed results/.
    assert reproduce.default_records_dir("tiny", str(tmp_path)) == str(tmp_path / "records")
    assert reproduce.default_records_dir("cpu", str(tmp_path)) == str(REPO / "results")


def test_csv_has_a_line_per_seed_and_test_set(tmp_path):
    table = reproduce.TABLES["erlnet_table2"]
    results = [reproduce.RowResult(table.row("memd"), f"runs/memd/seed{seed}-abc", seed=seed,
                                   scores={"a": (30.0 + seed, 0.9), "b": (29.0, 0.8)}, steps=4)
               for seed in (0, 1)]
    results.append(reproduce.RowResult(table.row("memd_minus"), "runs/memd_minus/seed0-abc", error="boom"))
    path = tmp_path / "results.csv"
    reproduce.write_csv(str(path), table, results)
    with open(path, encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert [(r["row"], r["seed"], r["test_set"]) for r in lines] == [
        ("memd", "0", "a"), ("memd", "0", "b"), ("memd", "1", "a"), ("memd", "1", "b"), ("memd_minus", "0", "")]
    assert lines[2]["psnr_y"] == "31.0000" and lines[2]["run"] == "seed1-abc"
    assert lines[-1]["error"] == "boom"


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
def test_tiny_table_records_seeds_resumes_and_survives_a_failing_row(tiny_test_set, tmp_path):
    flags_dir = tmp_path / "flags"
    shutil.copytree(REPO / "flags", flags_dir)
    # A broken row: its training fails, the other rows go on.
    (flags_dir / "memd_minus.flags").write_text("--model=NoSuchModel\n", encoding="utf-8")
    out = tmp_path / "out"
    committed = sorted(p for p in (REPO / "results").rglob("*")) if (REPO / "results").is_dir() else []
    args = ["--table=erlnet_table2", "--scale=tiny", f"--output_dir={out}", f"--flags_dir={flags_dir}",
            "--rows=memd_minus,memd", "--seeds=0,1", f"--eval_sets=tiny={tiny_test_set}",
            f"--train_flags=--procedural=4 --degradation=rain --val_input_dir={tiny_test_set}"]
    first = _reproduce(*args)
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]
    assert "memd_minus seed 0 failed" in first.stdout and "memd_minus seed 1 failed" in first.stdout
    assert "2 run(s) or table(s) failed" in first.stderr

    with open(out / "erlnet_table2" / "results.csv", encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert sorted((r["row"], r["seed"]) for r in lines) == [("memd", "0"), ("memd", "1"), ("memd_minus", "0"),
                                                            ("memd_minus", "1")]
    for line in lines:
        if line["row"] == "memd":
            assert line["error"] == "" and line["test_set"] == "tiny" and line["steps"] == "4"
            assert 0 < float(line["psnr_y"]) < 100 and line["paper_psnr_y"] != ""
        else:
            assert "NoSuchModel" in line["error"] or "train" in line["error"]

    # One record per successful run, in <output_dir>/records at this scale; the committed results/ untouched.
    records_dir = out / "records" / "erlnet_table2"
    assert sorted(p.name for p in records_dir.iterdir()) == ["memd-seed0.json", "memd-seed1.json"]
    assert (sorted(p for p in (REPO / "results").rglob("*")) if (REPO / "results").is_dir() else []) == committed
    seed0 = json.loads((records_dir / "memd-seed0.json").read_text(encoding="utf-8"))
    record = json.loads((records_dir / "memd-seed1.json").read_text(encoding="utf-8"))
    assert (record["table"], record["row"], record["seed"], record["scale"]) == ("erlnet_table2", "memd", 1, "tiny")
    assert record["run"].startswith("seed1-")
    assert len(record["commit"]["hash"]) == 40 and isinstance(record["commit"]["dirty"], bool)
    assert record["test_sets"]["tiny"]["scored_at"]["hash"] == record["commit"]["hash"]
    assert "TensorFlow" in record["machine"]
    assert record["settings"]["flagfiles"] == ["flags/memd.flags", "flags/reproduce/tiny_erlnet.flags"]
    assert "--model=MEMD" in record["settings"]["flags"] and record["settings"]["run_config"]["model"] == "MEMD"
    assert record["data"]["flags"][:2] == ["--procedural=4", "--degradation=rain"]
    assert record["data"]["folders"]["val_input_dir"]["images"] == 4  # two pairs: inputs and targets
    assert record["precision"] == {"requested": "float32", "resolved": "float32"}
    assert record["budget"] == "split" and record["steps"] == 4 and record["train_seconds"] > 0
    scores = record["test_sets"]["tiny"]
    assert scores["count"] == 2 and len(scores["images"]) == 2
    assert {"name", "psnr", "ssim"} == set(scores["images"][0])
    assert scores["psnr_mean"] == pytest.approx(sum(i["psnr"] for i in scores["images"]) / 2, abs=1e-3)
    # The unrestored input's score, the bar the page prints under the rows, measured the same way.
    assert scores["input"] == reproduce.input_scores(str(tiny_test_set), "", ())
    # Each seed has its own run folder (the training seed is the flag after the overlay's).
    runs = sorted(p.name for p in (out / "runs" / "tiny" / "memd").iterdir())
    assert len(runs) == 2 and runs[0].startswith("seed0-") and runs[1].startswith("seed1-")
    assert "--seed=1" in (out / "runs" / "tiny" / "memd" / runs[1] / "train.log").read_text(encoding="utf-8")
    assert len(reproduce.learning_curve(str(out / "runs" / "tiny" / "memd" / runs[0]))) == 2
    report = (out / "erlnet_table2" / "results.md").read_text(encoding="utf-8")
    assert "## ERL-Net Table 2" in report and "Failed runs:" in report
    assert "**not run (no records of `memd_minus`)**" in report

    # Fixed row, same command: finished runs are skipped (not retrained nor rescored), the failed ones run.
    shutil.copyfile(REPO / "flags" / "memd_minus.flags", flags_dir / "memd_minus.flags")
    final = out / "runs" / "tiny" / "memd" / runs[0] / "final.keras"
    stamp = final.stat().st_mtime_ns
    second = _reproduce(*args)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert "training memd_minus seed 0" in second.stdout and "training memd_minus seed 1" in second.stdout
    assert "training memd seed" not in second.stdout and "scoring memd seed" not in second.stdout
    assert final.stat().st_mtime_ns == stamp
    # Nothing about memd changed, so neither did its records (no churn in git from a rerun).
    assert json.loads((records_dir / "memd-seed0.json").read_text(encoding="utf-8")) == seed0
    report = (out / "erlnet_table2" / "results.md").read_text(encoding="utf-8")
    claim = [line for line in report.splitlines() if line.startswith("| MEMD (skip + fusion) > MEMD- ")]
    assert len(claim) == 1 and "/2 seeds agree" in claim[0]
    assert claim[0].endswith("undecided (2 seed(s); a verdict needs 3) | **undecided** |")
    summary = (out / "RESULTS.md").read_text(encoding="utf-8")
    assert "Command: `erlrestore-reproduce --table=erlnet_table2 --scale=tiny" in summary
    assert "Machine: " in summary and "## ERL-Net Table 2" in summary

    # The same test-set name over other images is scored again, without retraining.
    subset = tmp_path / "subset"
    for part in ("input", "target"):
        (subset / part).mkdir(parents=True)
        first_image = sorted((tiny_test_set / part).iterdir())[0]
        shutil.copyfile(first_image, subset / part / first_image.name)
    third = _reproduce(*[a for a in args if not a.startswith(("--rows", "--seeds", "--eval_sets"))],
                       "--rows=memd", "--seeds=1", f"--eval_sets=tiny={subset}")
    assert third.returncode == 0, third.stdout + third.stderr[-3000:]
    assert "scoring memd seed 1 on tiny" in third.stdout and "training memd" not in third.stdout
    record = json.loads((records_dir / "memd-seed1.json").read_text(encoding="utf-8"))
    assert record["test_sets"]["tiny"]["count"] == 1
    assert sorted(p.name for p in (out / "runs" / "tiny" / "memd").iterdir()) == runs


@pytest.mark.slow
def test_cli_help_lists_its_flags_and_bad_values_are_usage_errors(tmp_path):
    help_text = _reproduce("--help", timeout=120).stdout
    for flag in ("--table", "--scale", "--output_dir", "--rows", "--eval_sets", "--train_flags", "--seeds",
                 "--records_dir", "--render_only", "--check"):
        assert flag in help_text
    bad = _reproduce("--table=erlnet_table9", timeout=120)
    assert bad.returncode != 0 and "unknown table erlnet_table9" in bad.stderr
    bad_row = _reproduce("--table=erlnet_table2", "--rows=nope", timeout=120)
    assert bad_row.returncode != 0 and "unknown row nope" in bad_row.stderr
    bad_seed = _reproduce("--table=erlnet_table2", "--seeds=0,x", timeout=120)
    assert bad_seed.returncode == 2 and "--seeds takes non-negative integers" in bad_seed.stderr
    no_table = _reproduce(timeout=120)
    assert no_table.returncode == 2 and "--table is required" in no_table.stderr
    dry = _reproduce("--table=erlnet_table3", "--scale=tiny", "--dry_run", "--seeds=0,1", timeout=120)
    assert dry.returncode == 0, dry.stderr[-2000:]
    commands = dry.stdout.strip().splitlines()
    assert len(commands) == 22
    assert all("reproduce/tiny_erlnet.flags" in c for c in commands)
    assert os.path.join("runs", "tiny", "erlnet_ma_d_mlgd", "seed1-") in dry.stdout
    assert sum("--seed=1 " in c for c in commands) == 11
    # At --scale=cpu the de-raining rows train on light to heavy rain, the autoencoders on the photos as before.
    cpu = _reproduce("--table=erlnet_table2,rethinking_table3", "--scale=cpu", "--dry_run", "--seeds=0",
                     f"--data_root={_data_root(tmp_path)}", f"--output_dir={tmp_path / 'out'}", timeout=120)
    assert cpu.returncode == 0, cpu.stderr[-2000:]
    commands = cpu.stdout.strip().splitlines()
    assert len(commands) == 4 + 5
    assert all("--degradation=dense_rain --degradation_params=density_level=mixed " in c for c in commands[:4])
    assert all("--degradation=rain " in c and "dense_rain" not in c for c in commands[4:])

    # --render_only writes the page from the records; --check says whether they agree.
    page = tmp_path / "RESULTS.md"
    shutil.copyfile(REPO / "docs" / "RESULTS.md", page)
    empty = tmp_path / "records"
    # The committed page holds the committed records' tables, so against no records it is stale until rendered.
    first = _reproduce("--render_only", f"--records_dir={empty}", f"--results_page={page}", timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    check = _reproduce("--render_only", "--check", f"--records_dir={empty}", f"--results_page={page}", timeout=120)
    assert check.returncode == 0, check.stderr[-2000:]
    table = reproduce.TABLES["erlnet_table2"]
    images = [{"name": f"im{i}.png", "psnr": 30.0 + i, "ssim": 0.9} for i in range(3)]
    record = {"table": table.key, "row": "memd", "seed": 0, "scale": "tiny", "data": {"flags": ["--procedural=4"]},
              "precision": {"requested": "float32", "resolved": "float32"}, "budget": "split", "steps": 4,
              "train_seconds": 6.0, "commit": {"hash": "b" * 40, "dirty": True},
              "test_sets": {"tiny": {"folder": "set", "count": 3, "images": images}}}
    (empty / table.key).mkdir(parents=True)
    (empty / table.key / "memd-seed0.json").write_text(json.dumps(record), encoding="utf-8")
    stale = _reproduce("--render_only", "--check", f"--records_dir={empty}", f"--results_page={page}", timeout=120)
    assert stale.returncode == 1 and "does not match the records" in stale.stderr
    render = _reproduce("--render_only", f"--records_dir={empty}", f"--results_page={page}", timeout=120)
    assert render.returncode == 0 and "rendered again" in render.stdout
    assert "| MEMD (skip + fusion) | 31.63 / 0.8668 | 31.00 / 0.9000 | 0 | P1 |" in page.read_text(encoding="utf-8")
    again = _reproduce("--render_only", "--check", f"--records_dir={empty}", f"--results_page={page}", timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    both = _reproduce("--render_only", "--table=erlnet_table2", timeout=120)
    assert both.returncode == 2 and "leave out --table" in both.stderr


@pytest.mark.parametrize("budget, steps, expected", [
    ("each", 4, {"DT": 8, "MA_D": 12, "MEMD": 4}),
    ("split", 6, {"DT": 12, "MA_D": 6, "MEMD": 6}),  # DT's auxiliary stage gets the steps of its stage I
])
def test_steps_column_counts_dts_auxiliary_clean_to_clean_stage(tmp_path, budget, steps, expected):
    # The records' (and the results page's) steps of a run: DT trains the clean-to-clean net alone first
    # (C2C), then the restoration net; both stages' optimizer steps count.
    for strategy, total in expected.items():
        run_dir = tmp_path / f"{strategy}-{budget}"
        run_dir.mkdir()
        (run_dir / "run_config.json").write_text(json.dumps(
            {"model": "MEMD" if strategy == "MEMD" else "ERLNet", "strategy": strategy, "stage_steps": [steps],
             "stage_budget": budget}), encoding="utf-8")
        assert reproduce.total_steps(str(run_dir)) == total, strategy


# --------------------------------------------------------------------------
# Rethinking Table II's other columns and Table I / Fig. 3.
# --------------------------------------------------------------------------


def _paper_table2():
    """{column index: [(psnr, ssim) or None per row]} read from the paper's Table II (tab-separated lines)."""
    lines = (PAPERS / "rethinking-generative-restoration.md").read_text(encoding="utf-8").splitlines()
    start = lines.index(next(line for line in lines if line.startswith("pix2pix (UNet-8)\t")))
    rows = []
    for line in lines[start:start + 5]:
        cells = line.split("\t")[1:]
        rows.append([None if cells[2 * c] == "-" else (float(cells[2 * c]), float(cells[2 * c + 1]))
                     for c in range(6)])
    return rows


@pytest.mark.skipif(not PAPERS.is_dir(), reason="papers not beside the checkout")
def test_every_table2_column_has_the_papers_numbers_and_the_same_rows():
    paper = _paper_table2()
    # The paper's column order: SIDD, RESIDE, Rain800, Rain1200, RainCityScapes, OutdoorRain-8-2.
    keys = ("rethinking_table2_sidd", "rethinking_table2_reside", "rethinking_table2", "rethinking_table2_rain1200",
            "rethinking_table2_raincityscapes", "rethinking_table2_outdoorrain")
    assert tuple(reproduce.paper_tables.TABLE2_COLUMNS) == keys
    reference = reproduce.TABLES["rethinking_table2"]
    for column, key in enumerate(keys):
        table = reproduce.TABLES[key]
        assert (table.family, table.eval_flags) == ("gan", ("--norm_statistics=batch",)), key
        assert [(r.id, r.label, r.flagfile) for r in table.rows] == [(r.id, r.label, r.flagfile)
                                                                     for r in reference.rows], key
        for i, row in enumerate(table.rows):
            numbers = None if row.paper_psnr is None else (row.paper_psnr, row.paper_ssim)
            assert numbers == paper[i][column], (key, row.id)
    # Spot checks, one per column, and the "-" cells.
    assert reproduce.TABLES["rethinking_table2_sidd"].row("unet5_lsgan_infoaccum15_subpix").paper_psnr == 26.62
    assert reproduce.TABLES["rethinking_table2_reside"].row("pix2pix_unet8").paper_ssim == 0.9233
    assert reproduce.TABLES["rethinking_table2"].row("unet5_lsgan").paper_psnr == 24.09
    assert reproduce.TABLES["rethinking_table2_rain1200"].row("pix2pix_unet8_lsgan").paper_psnr == 29.53
    cityscapes = reproduce.TABLES["rethinking_table2_raincityscapes"]
    assert cityscapes.row("unet5_lsgan").paper_ssim == 0.9653
    assert cityscapes.row("unet5_lsgan_infoaccum15").paper_psnr is None
    outdoor = reproduce.TABLES["rethinking_table2_outdoorrain"]
    assert outdoor.row("unet5_lsgan_infoaccum15_subpix").paper_psnr == 27.5
    assert [r.id for r in outdoor.rows if r.paper_psnr is None] == ["pix2pix_unet8_lsgan", "unet5_lsgan_infoaccum15"]


def test_table1_tables_sweep_unet_levels_with_no_paper_numbers():
    from erlrestore import records

    for key in TABLE1:
        table = reproduce.TABLES[key]
        assert [r.id for r in table.rows] == [f"unet{n}" for n in range(1, 7)], key
        assert all(r.paper_psnr is None and r.paper_ssim is None for r in table.rows), key
        assert table.family == "gan" and table.eval_flags == ("--norm_statistics=batch",)
    for n in range(1, 7):
        # The paper's UNet-5 + LSGAN row with --levels=N after it (the last value wins).
        lines = records.flag_lines(str(REPO / "flags" / "table1" / f"unet{n}.flags"), str(REPO))
        assert lines[:-1] == records.flag_lines(str(REPO / "flags" / "unet5_lsgan.flags"), str(REPO))
        assert lines[-1] == f"--levels={n}" and records.last_flag(lines, "levels") == str(n)
    assert reproduce.TABLES["rethinking_table1_derain"].eval_sets == reproduce.TABLES["rethinking_table2"].eval_sets
    assert list(reproduce.TABLES["rethinking_table1_denoise"].eval_sets["cpu"]) == ["polyu-20"]
    assert list(reproduce.TABLES["rethinking_table1_dehaze"].eval_sets["cpu"]) == ["sots-indoor-10"]


def test_unet_n_flagfiles_build_every_level_at_the_tiny_and_cpu_crops(monkeypatch):
    import numpy as np

    from erlrestore.inference import restorers
    from erlrestore.training import experiment

    monkeypatch.chdir(REPO)  # the nested flagfile is named from the repository root
    for n in range(1, 7):
        for scale, crop in (("tiny", 32), ("cpu", 96)):
            settings = experiment.settings_from_argv([
                f"--flagfile=flags/table1/unet{n}.flags", f"--flagfile=flags/reproduce/{scale}_gan.flags",
                "--procedural=4", "--model_dir=unused", "--gen_filters=2", "--d_filters=2"])
            experiment.check_settings(settings)
            assert (settings.model, settings.levels, settings.data.crop_size) == ("UNet", n, crop)
            if scale == "cpu" and n not in (1, 6):
                continue  # the extremes at the cpu crop; every N at the tiny one
            networks = experiment.build_networks(settings)
            generator = networks["final.keras"]
            image = np.random.default_rng(n).uniform(size=(1, crop, crop, 3)).astype("float32")
            assert tuple(generator(image, training=False).shape) == (1, crop, crop, 3)
            # UNet-N halves its input N times: the crop is padded to a multiple of 2^N (96 -> 128 for N = 6).
            assert restorers.pad_multiple(generator) == 2 ** n
            assert networks["discriminator.keras"]([image, image], training=False).shape[0] == 1


def test_fig6_and_fig13_tables_sweep_infoaccum_depth_and_position_as_the_rain800_column():
    from erlrestore import paper_tables, records

    rain800 = reproduce.TABLES["rethinking_table2"]
    fig6, fig13 = reproduce.TABLES["rethinking_fig6"], reproduce.TABLES["rethinking_fig13"]
    for table in (fig6, fig13):
        # Trained and scored as the Rain800 column: its data, test sets and evaluation flags; no paper numbers.
        assert (table.family, table.eval_sets, table.eval_flags, table.cpu_data, table.train_flags) == (
            "gan", rain800.eval_sets, rain800.eval_flags, rain800.cpu_data, rain800.train_flags), table.key
        assert all(r.paper_psnr is None and r.paper_ssim is None for r in table.rows), table.key
        # The rows shared with Table II are Table II's own: the same id and flagfile.
        for row_id in ("unet5_lsgan", "unet5_lsgan_infoaccum15"):
            assert table.row(row_id).flagfile == rain800.row(row_id).flagfile, (table.key, row_id)
    assert reproduce.GROUPS["rethinking_figs_6_13"] == ("rethinking_fig6", "rethinking_fig13")

    def lines(flagfile):
        return records.flag_lines(str(REPO / "flags" / flagfile), str(REPO))

    # Fig. 6: L = 0, 1, 3, 5, 10, 15, 20; the new rows are the UNet-5 + LSGAN flagfile with --info_accum_layers=L.
    assert paper_tables.FIG6_LAYERS == (0, 1, 3, 5, 10, 15, 20)
    assert [r.id for r in fig6.rows] == ["unet5_lsgan", "unet5_lsgan_infoaccum1", "unet5_lsgan_infoaccum3",
                                         "unet5_lsgan_infoaccum5", "unet5_lsgan_infoaccum10",
                                         "unet5_lsgan_infoaccum15", "unet5_lsgan_infoaccum20"]
    base = lines("unet5_lsgan.flags")
    for layers, row in zip(paper_tables.FIG6_LAYERS, fig6.rows):
        assert records.last_flag(lines(row.flagfile), "info_accum_layers", "0") == str(layers), row.id
        if layers not in (0, 15):
            assert row.flagfile == f"fig6/unet5_lsgan_infoaccum{layers}.flags"
            assert lines(row.flagfile) == base + [f"--info_accum_layers={layers}"], row.id
    # Fig. 13: none, then InfoAccum-15 at positions 0 (the paper's 1st, Table II's row) to 4, then 0 and 1.
    assert [r.id for r in fig13.rows] == [
        "unet5_lsgan", "unet5_lsgan_infoaccum15", "unet5_lsgan_infoaccum15_at1", "unet5_lsgan_infoaccum15_at2",
        "unet5_lsgan_infoaccum15_at3", "unet5_lsgan_infoaccum15_at4", "unet5_lsgan_infoaccum15_at0+1"]
    assert [paper_tables.position_words(p) for p in paper_tables.FIG13_POSITIONS] == [
        "none", "1st", "2nd", "3rd", "4th", "5th", "1st - 2nd"]
    infoaccum15 = lines("unet5_lsgan_infoaccum15.flags")
    assert records.last_flag(infoaccum15, "info_accum_positions") is None  # the default, 0: see the parse test
    for positions, row in zip(paper_tables.FIG13_POSITIONS[2:], fig13.rows[2:]):
        value = ",".join(str(k) for k in positions)
        assert row.flagfile == f"fig13/unet5_lsgan_infoaccum15_at{'+'.join(str(k) for k in positions)}.flags"
        assert lines(row.flagfile) == infoaccum15 + [f"--info_accum_positions={value}"], row.id
        assert paper_tables.position_words(positions) in row.label, row.id
    # The paper's Fig. 13 backbone is UNet-8; ours UNet-5: said under the table.
    assert len(fig13.caveats) == 1 and "UNet-8" in fig13.caveats[0] and "UNet-5" in fig13.caveats[0]
    assert not fig6.caveats
    # Every flagfile of the two tables, and only those, is in flags/fig6 and flags/fig13.
    named = {r.flagfile for t in (fig6, fig13) for r in t.rows if "/" in r.flagfile}
    assert named == {str(p.relative_to(REPO / "flags")) for d in ("fig6", "fig13")
                     for p in (REPO / "flags" / d).glob("*.flags")}


def test_fig6_and_fig13_flagfiles_parse_and_place_infoaccum(monkeypatch):
    """Every row of the two tables through erlrestore-train's own parser with both overlays: the depth and the
    positions the paper's figure asks for (the Table II rows included: --info_accum_positions defaults to 0, so
    InfoAccum-15 there is the paper's "1st"); the generators of the new rows built at the tiny scale, with their
    modules where the row says."""
    from erlrestore import paper_tables
    from erlrestore.training import experiment

    monkeypatch.chdir(REPO)  # the nested flagfiles are named from the repository root
    wanted = {}
    for layers, row in zip(paper_tables.FIG6_LAYERS, reproduce.TABLES["rethinking_fig6"].rows):
        wanted[row.id] = (layers, (0,), row.flagfile)
    for positions, row in zip(paper_tables.FIG13_POSITIONS, reproduce.TABLES["rethinking_fig13"].rows):
        assert wanted.setdefault(row.id, (15 if positions else 0, positions or (0,), row.flagfile)) == (
            15 if positions else 0, positions or (0,), row.flagfile), row.id
    assert len(wanted) == 7 + 5
    for row_id, (layers, positions, flagfile) in wanted.items():
        for scale, crop in (("tiny", 32), ("cpu", 96)):
            settings = experiment.settings_from_argv([
                f"--flagfile=flags/{flagfile}", f"--flagfile=flags/reproduce/{scale}_gan.flags",
                "--procedural=4", "--model_dir=unused"])
            experiment.check_settings(settings)
            assert (settings.model, settings.levels, settings.gan_loss, settings.data.crop_size) == (
                "UNet", 5, "lsgan", crop), (row_id, scale)
            assert (settings.info_accum_layers, tuple(settings.info_accum_positions)) == (layers, positions), (
                row_id, scale)
        if "/" not in flagfile:
            continue  # Table II's rows: built by its own tests
        settings = experiment.settings_from_argv([
            f"--flagfile=flags/{flagfile}", "--flagfile=flags/reproduce/tiny_gan.flags", "--procedural=4",
            "--model_dir=unused", "--gen_filters=2", "--d_filters=2"])
        generator = experiment.build_networks(settings)["final.keras"]
        placed = sorted(int(layer.name.rsplit("_", 1)[1]) for layer in generator.layers
                        if layer.name.startswith("info_accum_"))
        assert placed == list(positions if layers else ()), row_id


def test_cpu_data_of_every_table(tmp_path):
    root = _data_root(tmp_path)
    clean = f"--synthetic_clean_dir={root / 'derain-train' / 'clean'}"
    mixed = [clean, "--degradation=dense_rain", "--degradation_params=density_level=mixed"]
    expected = {
        # The tables that existed before: their flags (and so their run folders and records) must not change.
        "erlnet_table2": mixed, "erlnet_table3": mixed, "erlnet_table3_each": mixed, "rethinking_table2": mixed,
        "rethinking_table3": [clean, "--degradation=rain"],
        # Table II's other columns and Table I.
        "rethinking_table2_rain1200": mixed, "rethinking_table1_derain": mixed,
        "rethinking_table2_sidd": [clean, "--degradation=camera_noise"],
        "rethinking_table1_denoise": [clean, "--degradation=camera_noise"],
        "rethinking_table2_reside": [f"--train_input_dir={root / 'dehaze-train'}"],
        "rethinking_table1_dehaze": [f"--train_input_dir={root / 'dehaze-train'}"],
        "rethinking_table2_raincityscapes": [clean, "--degradation=rain_cityscapes",
                                             "--degradation_params=density_level=medium"],
        "rethinking_table2_outdoorrain": [clean, "--degradation=rain_haze",
                                          "--degradation_params=density_level=heavy"],
        # Fig. 6 and Fig. 13: the Rain800 column's data.
        "rethinking_fig6": mixed, "rethinking_fig13": mixed,
    }
    assert set(expected) == set(reproduce.TABLES)
    for key, flags in expected.items():
        assert reproduce.scale_data_flags("cpu", str(root), reproduce.TABLES[key]) == flags, key
    # Every degradation named is registered and takes its parameters.
    from erlrestore.data import synthetic

    for flags in expected.values():
        named = dict(flag[2:].split("=", 1) for flag in flags[1:])
        if "degradation" in named:
            synthetic.check_params(named["degradation"], **synthetic.parse_params(named.get("degradation_params")))
    (root / "dehaze-train").rmdir()
    with pytest.raises(ValueError, match="no training data in"):
        reproduce.scale_data_flags("cpu", str(root), reproduce.TABLES["rethinking_table2_reside"])
    with pytest.raises(ValueError, match="dehaze-train; pass --data_root"):
        reproduce.scale_data_flags("cpu", "", reproduce.TABLES["rethinking_table1_dehaze"])
    # Rain1200 trains exactly as the Rain800 column: the same run folders, trained once for both tables.
    flags_dir, runs = str(REPO / "flags"), str(tmp_path / "runs")
    rain800, rain1200 = reproduce.TABLES["rethinking_table2"], reproduce.TABLES["rethinking_table2_rain1200"]
    for row in rain800.rows:
        assert (reproduce.run_dir_for(rain800, row, "cpu", flags_dir, mixed, runs, 0)
                == reproduce.run_dir_for(rain1200, rain1200.row(row.id), "cpu", flags_dir, mixed, runs, 0))
    # Fig. 6 and Fig. 13 share Table II's UNet-5 + LSGAN rows (L = 0 / no InfoAccum, and InfoAccum-15 before the
    # generator): the same run folders, trained once for the three tables; their other rows are runs of their own.
    folders = {reproduce.run_dir_for(rain800, row, "cpu", flags_dir, mixed, runs, seed)
               for row in rain800.rows for seed in (0, 1)}
    for key, shared in (("rethinking_fig6", {"unet5_lsgan", "unet5_lsgan_infoaccum15"}),
                        ("rethinking_fig13", {"unet5_lsgan", "unet5_lsgan_infoaccum15"})):
        table = reproduce.TABLES[key]
        for row in table.rows:
            for seed in (0, 1):
                folder = reproduce.run_dir_for(table, row, "cpu", flags_dir, mixed, runs, seed)
                assert (folder in folders) == (row.id in shared), (key, row.id, seed)
                if row.id in shared:
                    assert folder == reproduce.run_dir_for(rain800, rain800.row(row.id), "cpu", flags_dir, mixed,
                                                           runs, seed), (key, row.id, seed)
    fig6, fig13 = reproduce.TABLES["rethinking_fig6"], reproduce.TABLES["rethinking_fig13"]
    new_folders = [reproduce.run_dir_for(t, r, "cpu", flags_dir, mixed, runs, 0) for t in (fig6, fig13)
                   for r in t.rows if r.id not in ("unet5_lsgan", "unet5_lsgan_infoaccum15")]
    assert len(set(new_folders)) == len(new_folders) == 5 + 5


def test_committed_records_keep_their_run_folders(shared_data):
    # The records in results/ name the run folder they came from; the cpu data flags must still lead there.
    from erlrestore import records

    found = records.load_records(str(REPO / "results"))
    checked = 0
    for key, table_records in found.items():
        table = reproduce.TABLES[key]
        data = reproduce.scale_data_flags("cpu", str(shared_data), table)
        shown = records.describe_data(data, str(shared_data))["flags"]
        for record in table_records:
            if record["scale"] != "cpu":
                continue
            # The committed records were trained on the scale's own data, flag for flag.
            assert records.training_data_flags(record["data"]["flags"]) == shown, (key, record["row"])
            folder = reproduce.run_dir_for(table, table.row(record["row"]), "cpu", str(REPO / "flags"), data,
                                           "runs", record["seed"])
            assert os.path.basename(folder) == record["run"], (key, record["row"], record["seed"])
            checked += 1
    if not checked:
        pytest.skip("no committed cpu records")


def test_table_groups_and_all(tmp_path):
    from absl import app

    from erlrestore.cli import reproduce as cli

    assert [t.key for t in cli._tables(["rethinking_table2_all"])] == list(reproduce.paper_tables.TABLE2_COLUMNS)
    assert [t.key for t in cli._tables(["rethinking_table1_all"])] == list(TABLE1)
    assert [t.key for t in cli._tables(["rethinking_figs_6_13"])] == list(FIGURES)
    assert [t.key for t in cli._tables(["all"])] == list(reproduce.TABLES)
    # Each table once, in the order named.
    assert [t.key for t in cli._tables(["rethinking_table2_sidd", "rethinking_table2_all"])] == [
        "rethinking_table2_sidd", "rethinking_table2_reside", "rethinking_table2", "rethinking_table2_rain1200",
        "rethinking_table2_raincityscapes", "rethinking_table2_outdoorrain"]
    with pytest.raises(app.UsageError, match="unknown table nope"):
        cli._tables(["nope"])


def _photos(folder, count=2, size=(40, 56)):
    import numpy as np

    from erlrestore.data import image_files

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i in range(count):
        image_files.write_image(str(folder / f"photo{i}.png"), rng.uniform(size=(*size, 3)))
    return folder


def _folder_bytes(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(pathlib.Path(folder).rglob("*"))
            if p.is_file()}


def test_synthetic_test_sets_are_deterministic_and_made_once(tmp_path, monkeypatch):
    from erlrestore.data import synthetic

    clean = _photos(tmp_path / "clean")
    spec = reproduce.SyntheticSet("clean", "dense_rain", "density_level=light", 1)
    first = reproduce.synthetic_set(spec, str(clean), str(tmp_path / "a"), "rain")
    folder = pathlib.Path(first[0]).parent
    assert folder.parent == tmp_path / "a" / "data" and folder.name.startswith("rain-")
    assert first == (str(folder / "input"), str(folder / "target"))
    made = _folder_bytes(folder)
    assert sorted(made) == ["input/photo0.png", "input/photo1.png", "target/photo0.png", "target/photo1.png"]
    assert made["input/photo0.png"] != made["target/photo0.png"]
    assert not [p for p in (tmp_path / "a" / "data").iterdir() if p != folder]  # no scratch folder left
    # Same inputs, same bytes, elsewhere.
    again = reproduce.synthetic_set(spec, str(clean), str(tmp_path / "b"), "rain")
    assert _folder_bytes(pathlib.Path(again[0]).parent) == made
    # Another seed: other rain, same clean targets, another folder.
    other = reproduce.synthetic_set(reproduce.SyntheticSet("clean", "dense_rain", "density_level=light", 2),
                                    str(clean), str(tmp_path / "a"), "rain")
    assert pathlib.Path(other[0]).parent != folder
    other_bytes = _folder_bytes(pathlib.Path(other[0]).parent)
    assert other_bytes["input/photo0.png"] != made["input/photo0.png"]
    assert other_bytes["target/photo0.png"] == made["target/photo0.png"]
    # Other parameters or other photos: another folder.
    heavy = reproduce.SyntheticSet("clean", "dense_rain", "density_level=heavy", 1)
    assert reproduce.synthetic_set_key(heavy, str(clean)) != reproduce.synthetic_set_key(spec, str(clean))
    key = reproduce.synthetic_set_key(spec, str(clean))
    _photos(tmp_path / "clean", count=3)
    assert reproduce.synthetic_set_key(spec, str(clean)) != key
    (clean / "photo2.png").unlink()
    # The second call reuses the set: nothing is synthesised, nothing rewritten.
    stamp = (folder / "input" / "photo0.png").stat().st_mtime_ns

    def refuse(*args, **kwargs):
        raise AssertionError("synthesised again")

    monkeypatch.setattr(synthetic, "synthesize_folder", refuse)
    assert reproduce.synthetic_set(spec, str(clean), str(tmp_path / "a"), "rain") == first
    assert (folder / "input" / "photo0.png").stat().st_mtime_ns == stamp


def test_tables_make_their_synthetic_sets_and_records_say_how(tmp_path):
    from erlrestore import results_page

    root = _data_root(tmp_path)
    _photos(root / "kodak24", count=2, size=(36, 48))
    out = tmp_path / "out"
    table = reproduce.TABLES["rethinking_table2_rain1200"]
    sources, synthesized = {}, {}
    sets = reproduce.resolve_eval_sets(table, "cpu", str(root), None, str(out), sources=sources,
                                       synthesized=synthesized)
    assert list(sets) == ["kodak24-rain-light", "kodak24-rain-medium", "kodak24-rain-heavy"]
    assert {spec.params for spec in synthesized.values()} == {f"density_level={level}"
                                                              for level in ("light", "medium", "heavy")}
    assert len({spec.seed for spec in synthesized.values()}) == 3
    for name, (input_dir, target_dir) in sets.items():
        assert pathlib.Path(input_dir).parent.parent == out / "data" and pathlib.Path(input_dir).parent.name.startswith(
            name + "-")
        assert sorted(os.listdir(input_dir)) == sorted(os.listdir(target_dir)) == ["photo0.png", "photo1.png"]
        assert sources[name] == str(root / "kodak24")
    # The learning curve watches the first synthetic set.
    assert reproduce.scale_val_flags(table, "cpu", str(root), sets) == [
        f"--val_input_dir={sets['kodak24-rain-light'][0]}", "--val_max_images=4",
        f"--val_target_dir={sets['kodak24-rain-light'][1]}"]
    for key, degradation in (("rethinking_table2_raincityscapes", "rain_cityscapes"),
                             ("rethinking_table2_outdoorrain", "rain_haze")):
        made = {}
        (name, _), = reproduce.resolve_eval_sets(reproduce.TABLES[key], "cpu", str(root), None, str(out),
                                                 synthesized=made).items()
        assert made[name].degradation == degradation and made[name].clean == "kodak24"
    # A record says how each set was made; the page says it too.
    run_dir = tmp_path / "runs" / "unet5_lsgan"
    run_dir.mkdir(parents=True)
    (run_dir / "run_config.json").write_text(json.dumps({"model": "UNet", "strategy": "GAN"}), encoding="utf-8")
    images = [{"name": f"photo{i}.png", "psnr": 20.0 + i, "ssim": 0.5} for i in range(2)]
    result = reproduce.RowResult(table.row("unet5_lsgan"), str(run_dir), seed=0,
                                 scores={name: (20.5, 0.5) for name in sets}, images={name: images for name in sets})
    record = reproduce.make_record(table, result, scale="cpu", flags_dir=str(REPO / "flags"), data_root=str(root),
                                   eval_sets=sets, sources=sources, synthesized=synthesized)
    light = record["test_sets"]["kodak24-rain-light"]
    assert light["folder"] == "$ERLRESTORE_DATA_ROOT/kodak24" and light["target_folder"] == ""
    assert light["synthesis"] == {"clean_folder": "$ERLRESTORE_DATA_ROOT/kodak24", "degradation": "dense_rain",
                                  "params": "density_level=light", "seed": synthesized["kodak24-rain-light"].seed,
                                  "made_by": "erlrestore.data.synthetic.synthesize_folder (erlrestore-synth)"}
    text = results_page.render_table(table, [record])
    assert (f"kodak24-rain-heavy: `dense_rain` (density_level=heavy), seed "
            f"{synthesized['kodak24-rain-heavy'].seed}, synthesised over $ERLRESTORE_DATA_ROOT/kodak24 (2 images)"
            ) in text
    # A record of a plain folder has no synthesis entry (the existing tables' records are unchanged).
    rain12 = reproduce.TABLES["rethinking_table2"]
    plain = reproduce.make_record(rain12, dataclasses.replace(result, row=rain12.row("unet5_lsgan"),
                                                              scores={"rain12": (20.5, 0.5)},
                                                              images={"rain12": images}),
                                  scale="cpu", flags_dir=str(REPO / "flags"), data_root=str(root),
                                  eval_sets={"rain12": (str(root / "rain12"), "")})
    assert "synthesis" not in plain["test_sets"]["rain12"]


def _level_record(key, row, seed, psnrs):
    images = [{"name": f"im{i}.png", "psnr": p, "ssim": 0.8} for i, p in enumerate(psnrs)]
    return {"table": key, "row": row, "seed": seed, "scale": "tiny", "data": {"flags": ["--procedural=4"]},
            "precision": {"requested": "float32", "resolved": "float32"}, "budget": "split", "steps": 4,
            "train_seconds": 1.0, "commit": {"hash": "a" * 40, "dirty": False},
            "test_sets": {"a": {"folder": "a", "count": len(images), "images": images},
                          "b": {"folder": "b", "count": 1, "images": images[:1]}}}


def test_fig3_points_and_plot_from_records(tmp_path):
    from erlrestore import table_reports

    key = "rethinking_table1_derain"
    found = {key: [_level_record(key, "unet2", 0, [20.0, 22.0]), _level_record(key, "unet2", 1, [24.0, 26.0]),
                   _level_record(key, "unet4", 0, [30.0, 30.0])]}
    table = reproduce.TABLES[key]
    # Per record: the sets' means weighted equally ((21 + 20) / 2 = 20.5, (25 + 24) / 2 = 24.5); then over seeds.
    assert table_reports.level_points(table, found[key]) == [(2, 22.5, pytest.approx(8.0 ** 0.5), 2),
                                                             (4, 30.0, 0.0, 1)]
    assert not table_reports.plot_levels(str(tmp_path / "none.png"), {})
    pytest.importorskip("matplotlib")
    assert table_reports.plot_levels(str(tmp_path / "fig3.png"), found)
    assert (tmp_path / "fig3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_tiny_table1_run_records_renders_and_plots(tiny_test_set, tmp_path):
    # Train two UNet-N rows at --scale=tiny, then: records, the table's report with Table I's claims, Fig. 3.
    from erlrestore import records, results_page

    out = tmp_path / "out"
    args = ["--table=rethinking_table1_derain", "--scale=tiny", f"--output_dir={out}", "--rows=unet1,unet2",
            "--seeds=0", f"--eval_sets=tiny={tiny_test_set}",
            f"--train_flags=--procedural=4 --degradation=rain --val_input_dir={tiny_test_set}"]
    result = _reproduce(*args, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    found = records.load_records(str(out / "records"))
    assert sorted(r["row"] for r in found["rethinking_table1_derain"]) == ["unet1", "unet2"]
    record = next(r for r in found["rethinking_table1_derain"] if r["row"] == "unet2")
    assert record["settings"]["flagfiles"] == ["flags/table1/unet2.flags", "flags/reproduce/tiny_gan.flags"]
    assert record["settings"]["run_config"]["levels"] == 2
    report = (out / "rethinking_table1_derain" / "results.md").read_text(encoding="utf-8")
    assert "## Rethinking Table I / Fig. 3, de-raining" in report
    assert "| UNet-2 + LSGAN | — / — | " in report and "| UNet-6 + LSGAN | — / — | — | not run |" in report
    assert "| UNet-3 + LSGAN > UNet-2 + LSGAN | Table I (" in report
    text = results_page.render_table(reproduce.TABLES["rethinking_table1_derain"], found["rethinking_table1_derain"])
    assert "UNet-4 + LSGAN no worse than UNet-6 + LSGAN" in text
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (out / "rethinking_table1.png").exists()
    else:
        assert (out / "rethinking_table1.png").is_file()


def test_table3_under_the_papers_budget_trains_each_stage_the_full_count_as_its_own_runs(tmp_path):
    """erlnet_table3_each: Table 3's rows and claims with --stage_budget=each after the overlay; its runs are
    keyed apart from erlnet_table3's (split), and its records say which budget they trained under."""
    split, each = reproduce.TABLES["erlnet_table3"], reproduce.TABLES["erlnet_table3_each"]
    assert [r.id for r in each.rows] == [r.id for r in split.rows]
    assert [(c.better, c.worse, c.kind) for c in each.claims] == [(c.better, c.worse, c.kind) for c in split.claims]
    assert all(c.table == "erlnet_table3_each" for c in each.claims)
    flags_dir = str(REPO / "flags")
    row = each.row("erlnet_ma_d_mlgd")
    arguments = reproduce.train_arguments(each, row, "cpu", flags_dir, [], str(tmp_path), seed=0)
    overlay = arguments.index(f"--flagfile={reproduce.overlay_path(flags_dir, each, 'cpu')}")
    assert arguments[overlay + 1] == "--stage_budget=each"  # after the overlay's --stage_budget=split: it wins
    assert "--stage_budget=each" not in reproduce.train_arguments(split, row, "cpu", flags_dir, [], str(tmp_path))
    lines = reproduce.settings_lines(each, row, "cpu", flags_dir)
    assert lines[-1] == "--stage_budget=each" and "--stage_budget=split" in lines
    runs = str(tmp_path / "runs")
    assert (reproduce.run_dir_for(each, row, "cpu", flags_dir, [], runs, 0)
            != reproduce.run_dir_for(split, row, "cpu", flags_dir, [], runs, 0))
    from erlrestore.cli import reproduce as cli

    assert [t.key for t in cli._tables(["erlnet_table3_both"])] == ["erlnet_table3", "erlnet_table3_each"]
