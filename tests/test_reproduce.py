"""erlrestore-reproduce: the tables as data, seeds, records, and a tiny end-to-end run with resume, a failing row,
per-seed run folders and a test set that changed under its name.

The verdict rule is tested in tests/test_verdicts.py, the records and the rendered page in
tests/test_results_page.py."""

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


def test_eval_sets_parsing():
    assert reproduce.parse_eval_sets(["a=x", "b=y:z"]) == {"a": ("x", ""), "b": ("y", "z")}
    with pytest.raises(ValueError, match="name=input_dir"):
        reproduce.parse_eval_sets(["just_a_folder"])


def _data_root(tmp_path, photos=2):
    """A data root holding what the cpu defaults name: derain-train/clean and the tables' test sets."""
    root = tmp_path / "data"
    clean = root / "derain-train" / "clean"
    clean.mkdir(parents=True)
    for i in range(photos):
        (clean / f"photo{i}.jpg").write_bytes(b"x" * (10 + i))
    for name in ("rain12", "rain100l-10", "rain100h-20", "kodak24"):
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
