"""ERL-Net Fig. 3 and Table 4 and Rethinking Fig. 7 on docs/RESULTS.md (erlrestore.paper_figures and the two
tools that make their records: tools.erlnet_table4, tools.rethinking_fig7)."""

import fnmatch
import json
import math
import os
import pathlib
import shutil

import numpy as np
import pytest

from erlrestore import claims, paper_figures, records, results_page, verdicts

REPO = pathlib.Path(__file__).resolve().parent.parent


def _record(row, seed, psnrs, *, table="erlnet_table3", set_name="set", precision="float32"):
    images = [{"name": f"im{i}.png", "psnr": float(p), "ssim": 0.5} for i, p in enumerate(psnrs)]
    return {
        "schema": 1, "table": table, "row": row, "label": row, "seed": seed, "scale": "tiny",
        "run": f"seed{seed}-00000000000{seed}", "commit": {"hash": "a" * 40, "dirty": False},
        "data": {"flags": ["--procedural=4"], "folders": {}},
        "precision": {"requested": precision, "resolved": precision}, "budget": "split", "steps": 4,
        "train_seconds": 60.0, "curve": [1.0, 2.0],
        "test_sets": {set_name: {"folder": "set", "count": len(images), "images": images}},
    }


def _write(records_dir, record):
    records.write_record(records.record_path(str(records_dir), record["table"], record["row"], record["seed"]), record)


# --------------------------------------------------------------------------
# ERL-Net Fig. 3 from the records.
# --------------------------------------------------------------------------


def _named(values):
    return {f"im{i}.png": float(v) for i, v in enumerate(values)}


def test_fig3_shares_golden_values():
    # MEMD's mean is 27.5: im2 and im3 (25 dB) are hard, im0 and im1 (30 dB) easy. ERL-Net is above MEMD on
    # im0, im2 and im3.
    shares = paper_figures.improved_shares(_named([31, 29, 26, 26]), _named([30, 30, 25, 25]))
    assert shares == {"baseline_mean": 27.5, "count": 4, "improved": 3, "share": 0.75,
                      "hard_count": 2, "hard_improved": 2, "hard_share": 1.0,
                      "easy_count": 2, "easy_improved": 1, "easy_share": 0.5}
    # Ties: a PSNR equal to MEMD's is not improved; a MEMD PSNR equal to MEMD's mean (25) is easy.
    shares = paper_figures.improved_shares(_named([20, 31, 25, 26]), _named([20, 30, 25, 25]))
    assert (shares["improved"], shares["hard_count"], shares["hard_improved"], shares["easy_count"],
            shares["easy_improved"]) == (2, 1, 0, 3, 2)
    # Every image equal to the mean: no hard image, whose share is nan.
    shares = paper_figures.improved_shares(_named([1, 2]), _named([1, 1]))
    assert shares["hard_count"] == 0 and math.isnan(shares["hard_share"]) and shares["easy_share"] == 0.5
    with pytest.raises(ValueError, match="different images"):
        paper_figures.improved_shares(_named([1, 2, 3]), _named([1, 2]))
    with pytest.raises(ValueError, match="no images"):
        paper_figures.improved_shares({}, {})


def test_fig3_counts_as_the_live_evaluation_does():
    # erlrestore-evaluate --baseline_model counts with scoring.compare_to_baseline; the records give the same.
    from erlrestore import scoring

    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 12))
        model, base = rng.normal(30, 2, n).round(1), rng.normal(30, 2, n).round(1)
        live = scoring.compare_to_baseline(
            [scoring.ImageScore(f"im{i}.png", "", "", float(m), 0.5) for i, m in enumerate(model)],
            [scoring.ImageScore(f"im{i}.png", "", "", float(b), 0.5) for i, b in enumerate(base)])
        ours = paper_figures.improved_shares(_named(model), _named(base))
        for prefix in ("", "hard_", "easy_"):
            assert ours[f"{prefix}count"] == live[f"{prefix}count"]
            assert ours[f"{prefix}improved"] == live[f"{prefix}improved"]


def test_fig3_renders_per_set_shares_and_the_hard_easy_claim(tmp_path):
    for seed in (0, 1, 2):
        _write(tmp_path, _record("memd", seed, [30, 30, 25, 25]))
        model = [31, 29, 26, 26] if seed < 2 else [29, 31, 24, 24]  # seed 2: only im1 (easy) is improved
        _write(tmp_path, _record("erlnet_ma_d_mlgd", seed, model))
    figures = paper_figures.load(str(tmp_path), records.load_records(str(tmp_path)))
    text = paper_figures.render_fig3(figures.fig3)
    assert ("| `erlnet_table3` | set | 0, 1, 2 | 0.58 ± 0.29 (3/4, 3/4, 1/4) | 0.67 ± 0.58 (2/2, 2/2, 0/2) | "
            "0.50 ± 0.00 (1/2, 1/2, 1/2) | 2/3 seeds |") in text
    assert "(figures/erlnet_fig3.png)" in text
    claim = next(c for c in claims.without_rows() if c.figure == "erlnet_fig3")
    outcome = paper_figures.claim_outcome(claim, figures)
    assert outcome.startswith("measured, no verdict") and "set: hard above easy in 2/3 seeds" in outcome
    # Rows trained differently are not counted, as the verdicts do not compare them.
    _write(tmp_path, _record("memd", 0, [30, 30, 25, 25], precision="mixed_bfloat16"))
    fig = paper_figures.fig3_from_records("erlnet_table3", records.load_records(str(tmp_path))["erlnet_table3"])
    assert fig.shares == {} and "not trained the same way" in fig.reason
    assert paper_figures.fig3_from_records("erlnet_table3", []).reason.startswith("no records of")


# --------------------------------------------------------------------------
# ERL-Net Table 4: the tool on two tiny models.
# --------------------------------------------------------------------------


def _shift_model(path, shift):
    """A saved Keras model computing x + shift on every channel (a 1x1 convolution)."""
    import keras

    model = keras.Sequential([keras.Input((None, None, 3)), keras.layers.Conv2D(3, 1)])
    model.layers[-1].set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3), np.full(3, shift, np.float32)])
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)


def _rain_set(folder, count=2):
    from erlrestore.data import image_files

    for i in range(1, count + 1):
        clean = np.full((16, 20, 3), 0.4, np.float32)
        rainy = clean.copy()
        rainy[3 + i:6 + i, :, :] += 0.3  # a band of rain; the rest is background
        image_files.write_image(str(folder / "norain" / f"norain-00{i}.png"), clean)
        image_files.write_image(str(folder / "rain" / f"rain-00{i}.png"), rainy)


@pytest.fixture(scope="module")
def table4_case(tmp_path_factory):
    """Records of ERL-Net (x - 0.1: closer on the rain band, worse on the background) and MEMD (identity) for
    seed 0, with run folders and a test set of two images."""
    from erlrestore import evaluation
    from erlrestore.data import pairing

    root = tmp_path_factory.mktemp("table4")
    data, runs = root / "data", root / "runs"
    _rain_set(data / "set")
    pairs = pairing.find_pairs(str(data / "set"))
    contents = records.test_set_key(str(data / "set"), "", ())
    for row, shift in (("erlnet_ma_d_mlgd", -0.1), ("memd", 0.0)):
        record = _record(row, 0, [0.0, 0.0])
        model_path = runs / row / record["run"] / "final.keras"
        _shift_model(model_path, shift)
        scores, _ = evaluation.evaluate_model(str(model_path), pairs, show_progress=False)
        record["test_sets"]["set"].update(folder=f"{records.DATA_ROOT_NAME}/set", contents=contents, eval_flags=[],
                                          images=[{"name": s.name, "psnr": s.psnr, "ssim": s.ssim} for s in scores])
        _write(root / "records", record)
    return root


def test_table4_tool_measures_region_shares_both_ways(table4_case, tmp_path):
    from tools import erlnet_table4

    root = tmp_path / "case"
    shutil.copytree(table4_case, root)
    log = []
    written = erlnet_table4.measure(str(root / "records"), str(root / "runs"), str(root / "data"), sets=("set",),
                                    log=log.append)
    assert [os.path.relpath(p, root) for p in written] == ["records/erlnet_table4/set-seed0.miou.json"]
    record = json.loads(pathlib.Path(written[0]).read_text(encoding="utf-8"))
    # ERL-Net is closer on every rain pixel and farther on every background pixel; the reverse the opposite.
    assert record["miou"] == [1.0, 0.0] and record["reverse_miou"] == [0.0, 1.0]
    assert [(i["ior"], i["iob"], i["reverse_ior"], i["reverse_iob"]) for i in record["images"]] == [(1, 0, 0, 1)] * 2
    assert record["runs"] == {"model": "seed0-000000000000", "baseline": "seed0-000000000000"}
    assert record["records"]["model"] == os.path.join("erlnet_table3", "erlnet_ma_d_mlgd-seed0.json")
    assert max(record["max_psnr_difference_to_records"].values()) < 1e-4
    # The Table 4 records are not table records.
    assert set(records.load_records(str(root / "records"))) == {"erlnet_table3"}
    table4 = paper_figures.load_table4(str(root / "records"))
    text = paper_figures.render_table4(table4)
    assert "| `erlnet_table3` | set | 0 | 2 | 1.000 | 0.000 | 0.000 | 1.000 | — |" in text
    judged = {label.split(":")[0]: verdict for label, verdict, _ in paper_figures.table4_judgement(table4)}
    assert judged == {"rain regions improved": verdicts.UNDECIDED, "background improved": verdicts.UNDECIDED,
                      "more in the rain": verdicts.UNDECIDED}  # one seed decides nothing
    assert "1 seed(s); a verdict needs 3" in text

    # A run folder that lost its model: the seed is skipped, with a note.
    os.remove(root / "runs" / "memd" / "seed0-000000000000" / "final.keras")
    assert erlnet_table4.measure(str(root / "records"), str(root / "runs"), str(root / "data"), sets=("set",),
                                 log=log.append) == []
    assert "skipped" in log[-1]


def test_table4_tool_refuses_other_models_and_other_images(table4_case, tmp_path):
    from tools import erlnet_table4

    root = tmp_path / "case"
    shutil.copytree(table4_case, root)
    path = root / "records" / "erlnet_table3" / "memd-seed0.json"
    record = json.loads(path.read_text(encoding="utf-8"))
    record["test_sets"]["set"]["images"][0]["psnr"] += 0.5
    records.write_record(str(path), record)
    with pytest.raises(ValueError, match="MEMD's PSNRs differ from its record by up to 0.5"):
        erlnet_table4.measure(str(root / "records"), str(root / "runs"), str(root / "data"), sets=("set",),
                              log=lambda _: None)
    shutil.copytree(table4_case / "records", root / "records", dirs_exist_ok=True)
    _rain_set(root / "data" / "set", count=3)  # one image more than was scored
    log = []
    with pytest.raises(ValueError, match="ERL-Net was measured on other images than its record holds"):
        erlnet_table4.measure(str(root / "records"), str(root / "runs"), str(root / "data"), sets=("set",),
                              log=log.append)
    assert "is not where the records were scored, or it changed" in log[0]


def _table4_record(seed, set_name, ior, iob, reverse_ior, reverse_iob):
    images = [{"name": f"im{i}.png", "ior": a, "iob": b, "reverse_ior": c, "reverse_iob": d}
              for i, (a, b, c, d) in enumerate(zip(ior, iob, reverse_ior, reverse_iob))]
    return {"table": "erlnet_table3", "seed": seed, "test_set": set_name, "count": len(images),
            "miou": [float(np.mean(ior)), float(np.mean(iob))],
            "reverse_miou": [float(np.mean(reverse_ior)), float(np.mean(reverse_iob))],
            "commit": {"hash": "c" * 40, "dirty": False}, "images": images}


def test_table4_verdicts_use_the_rule_on_per_image_differences(tmp_path):
    folder = tmp_path / "erlnet_table4"
    folder.mkdir()
    ior = [0.6, 0.7, 0.65, 0.62, 0.68, 0.61]
    for seed in (0, 1, 2):
        record = _table4_record(seed, "rain12", ior, [0.2] * 6, [0.3] * 6, [0.7] * 6)
        (folder / paper_figures.table4_record_name("rain12", seed)).write_text(json.dumps(record), encoding="utf-8")
    table4 = paper_figures.load_table4(str(tmp_path))
    judged = {label.split(":")[0]: verdict for label, verdict, _ in paper_figures.table4_judgement(table4)}
    # Rain: IoR above the reverse IoR on all 6 images for 3 seeds (p = 2/64); background: below; rain > background.
    assert judged == {"rain regions improved": verdicts.REPRODUCED, "background improved": verdicts.NOT_REPRODUCED,
                      "more in the rain": verdicts.REPRODUCED}
    claim = next(c for c in claims.without_rows() if c.figure == "erlnet_table4")
    outcome = paper_figures.claim_outcome(claim, paper_figures.Figures({}, table4, []))
    assert outcome.startswith("undecided (rain regions improved: reproduced; background improved: not reproduced")
    # A name that disagrees with the record is refused; a table record's name is never used.
    mislabelled = _table4_record(4, "rain12", *[[0.5]] * 4)
    (folder / "rain12-seed5.miou.json").write_text(json.dumps(mislabelled), encoding="utf-8")
    with pytest.raises(ValueError, match="do not match its name"):
        paper_figures.load_table4(str(tmp_path))
    for name in (paper_figures.table4_record_name("memd", 1), paper_figures.fig7_record_name("memd", 1)):
        assert not records.RECORD_PATTERN.match(name)
        assert fnmatch.fnmatch(name, "*-seed*.json")  # what .gitignore admits under results/


# --------------------------------------------------------------------------
# Rethinking Fig. 7: the fit and the two-stage rule.
# --------------------------------------------------------------------------


def _curve(taus, amplitudes, noise, points=300, seed=0):
    t = np.arange(1, points + 1, dtype=np.float64) * 10
    y = 0.3 + sum(a * np.exp(-(t - t[0]) / tau) for a, tau in zip(amplitudes, taus))
    return t, y + np.random.default_rng(seed).normal(0, noise, t.size)


def test_fig7_fit_recovers_two_rates_and_prefers_one_exponential_for_one():
    from tools import rethinking_fig7

    t, y = _curve((60.0, 1500.0), (1.0, 0.4), noise=0.002)
    fitted = rethinking_fig7.fit_curve(t, y)
    two = fitted["fits"]["2"]
    assert two["taus"] == pytest.approx([60.0, 1500.0], rel=0.05)
    assert two["amplitudes"] == pytest.approx([1.0, 0.4], rel=0.05)
    assert fitted["outcome"]["outcome"] == "two-stage"
    assert fitted["outcome"]["bic_two"] < fitted["outcome"]["bic_one"] and two["r2"] > fitted["fits"]["1"]["r2"]

    t, y = _curve((400.0,), (1.0,), noise=0.002)
    fitted = rethinking_fig7.fit_curve(t, y)
    assert fitted["fits"]["1"]["taus"][0] == pytest.approx(400.0, rel=0.05)
    assert fitted["outcome"]["outcome"] == "one-stage"
    assert "one exponential is enough" in fitted["outcome"]["reason"]


def test_two_stage_rule_conditions():
    one = {"n": 24, "rmse": 0.1, "taus": [100.0], "amplitudes": [1.0]}
    two = {"n": 24, "rmse": 0.01, "taus": [10.0, 1000.0], "amplitudes": [1.0, 0.5], "edge": [], "pinned": []}
    assert paper_figures.two_stage_outcome(one, two)["outcome"] == "two-stage"
    assert paper_figures.two_stage_outcome(one, dict(two, edge=[0]))["outcome"] == "unresolved"
    assert paper_figures.two_stage_outcome(one, dict(two, edge=[1]))["outcome"] == "two-stage"  # slow: not settled
    rising = paper_figures.two_stage_outcome(one, dict(two, amplitudes=[1.0, -0.5]))
    assert (rising["outcome"], rising["reason"]) == ("one-stage", "a term rises: not two stages of decay")
    close = paper_figures.two_stage_outcome(one, dict(two, taus=[10.0, 50.0]))
    assert close["outcome"] == "one-stage" and "5x apart" in close["reason"]
    # Two more parameters cost 2 ln 24 = 6.4 of BIC: a 10% smaller RMSE (24 ln 0.81 = -5.1) does not pay for them.
    assert paper_figures.two_stage_outcome(one, dict(two, rmse=0.09))["outcome"] == "one-stage"


def _fake_gan_run(folder, points=24):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(folder / "logs" / "stage1_restore" / "train"))
    t = (np.arange(points) + 1) * 250.0
    with writer.as_default():
        for step, value in enumerate(0.035 + 0.03 * np.exp(-(t - t[0]) / 300) + 0.01 * np.exp(-(t - t[0]) / 4000)):
            tf.summary.scalar("epoch_g_l1", float(value), step=step)
            tf.summary.scalar("epoch_learning_rate", 1e-4, step=step)
    writer.close()
    (folder / "run_config.json").write_text(json.dumps(
        {"model": "UNet", "strategy": "GAN", "gan_loss": "lsgan", "stage_steps": [points * 250],
         "stage_budget": "each"}), encoding="utf-8")


def test_fig7_tool_writes_a_record_the_page_renders(tmp_path):
    from tools import rethinking_fig7

    run = tmp_path / "gan-run"
    _fake_gan_run(run)
    record = rethinking_fig7.make_record(str(run), command="python -m tools.rethinking_fig7 --run_dir=gan-run")
    assert list(record["curves"]) == ["epoch_g_l1"]  # the tags the run lacks are left out
    assert (record["units"], record["interval"], record["points"]) == ("optimizer steps", "250 optimizer steps", 24)
    curve = record["curves"]["epoch_g_l1"]
    assert curve["steps"][:2] == [250.0, 500.0] and len(curve["values"]) == 24
    assert curve["fits"]["2"]["taus"] == pytest.approx([300.0, 4000.0], rel=0.05)
    assert curve["outcome"]["outcome"] == "two-stage"
    assert record["seed"] == 0
    path = tmp_path / "results" / paper_figures.FIG7_FOLDER / paper_figures.fig7_record_name(record["run"], 0)
    records.write_record(str(path), record)
    found = paper_figures.load_fig7(str(tmp_path / "results"))
    assert [r["run"] for r in found] == ["gan-run"]
    assert records.load_records(str(tmp_path / "results")) == {}  # not a table record
    text = paper_figures.render_fig7(found)
    assert "| `epoch_g_l1` | 0.075 → 0.03" in text and "| **two-stage** (fast tau" in text
    assert "(figures/rethinking_fig7_gan-run-seed0.png)" in text
    claim = next(c for c in claims.without_rows() if c.figure == "rethinking_fig7")
    assert "run gan-run (g_l1 two-stage)" in paper_figures.claim_outcome(claim, paper_figures.Figures({}, {}, found))
    with pytest.raises(ValueError, match="none of the tags"):
        rethinking_fig7.make_record(str(run), tags=("epoch_d_loss",))


# --------------------------------------------------------------------------
# Rethinking Fig. 6 and Fig. 13: plots of two tables' records.
# --------------------------------------------------------------------------


def test_fig6_and_fig13_points_per_test_set_and_their_plots(tmp_path):
    from erlrestore import paper_tables

    fig6, fig13 = paper_tables.TABLES["rethinking_fig6"], paper_tables.TABLES["rethinking_fig13"]
    found = [_record("unet5_lsgan_infoaccum3", 0, [20.0, 22.0], table=fig6.key, set_name="a"),
             _record("unet5_lsgan_infoaccum3", 1, [24.0, 26.0], table=fig6.key, set_name="a"),
             _record("unet5_lsgan", 0, [18.0, 18.0], table=fig6.key, set_name="a"),
             _record("unet5_lsgan_infoaccum20", 0, [30.0, 31.0], table=fig6.key, set_name="b"),
             _record("not_a_row", 0, [99.0], table=fig6.key, set_name="c")]
    # Per record the mean over its images (21, 25), then mean and sample std over the seeds; rows in the table's
    # order, sets in the order the rows' records name them, rows the table lacks left out.
    assert paper_figures.row_points(fig6, found) == {
        "a": [("unet5_lsgan", 18.0, 0.0, 1), ("unet5_lsgan_infoaccum3", 23.0, pytest.approx(8.0 ** 0.5), 2)],
        "b": [("unet5_lsgan_infoaccum20", 30.5, 0.0, 1)]}
    assert paper_figures.row_points(fig6, []) == {}
    pyplot = paper_figures.page_parts.pyplot()
    if pyplot is None:
        pytest.skip("matplotlib is not installed")
    assert paper_figures.plot_fig6(pyplot, fig6, [], str(tmp_path / "none.png")) is None
    path = paper_figures.plot_fig6(pyplot, fig6, found, str(tmp_path / "fig6.png"))
    assert path == str(tmp_path / "fig6.png") and pathlib.Path(path).read_bytes().startswith(b"\x89PNG")
    stamp = os.path.getmtime(path)
    paper_figures.plot_fig6(pyplot, fig6, found, path)  # the same records draw the same bytes: left as they are
    assert os.path.getmtime(path) == stamp
    # Fig. 13: one group per position, "none" and the 1st - 2nd included; a row without records draws no bar.
    found = [_record(row.id, seed, [25.0 + i + seed, 26.0], table=fig13.key, set_name=name)
             for i, row in enumerate(fig13.rows) if row.id != "unet5_lsgan_infoaccum15_at3"
             for seed in (0, 1, 2) for name in ("rain12", "rain100l-10")]
    points = paper_figures.row_points(fig13, found)
    assert list(points) == ["rain12", "rain100l-10"]
    assert [p[0] for p in points["rain12"]] == [r.id for r in fig13.rows if r.id != "unet5_lsgan_infoaccum15_at3"]
    # The 1st - 2nd (row 6): (25 + 6 + seed + 26) / 2 for seeds 0, 1, 2 = 28.5, 29, 29.5.
    assert points["rain12"][-1] == ("unet5_lsgan_infoaccum15_at0+1", 29.0, 0.5, 3)
    assert paper_figures.plot_fig13(pyplot, fig13, [], str(tmp_path / "none.png")) is None
    assert not (tmp_path / "none.png").exists()
    path = paper_figures.plot_fig13(pyplot, fig13, found, str(tmp_path / "fig13.png"))
    assert pathlib.Path(path).read_bytes().startswith(b"\x89PNG")
    assert paper_figures.TABLE_PLOTS == {"rethinking_fig6": paper_figures.plot_fig6,
                                         "rethinking_fig13": paper_figures.plot_fig13}


# --------------------------------------------------------------------------
# The page.
# --------------------------------------------------------------------------


def test_the_page_renders_the_three_sections_and_draws_their_plots(tmp_path):
    records_dir = tmp_path / "results"
    for seed in (0, 1, 2):
        _write(records_dir, _record("memd", seed, [30, 30, 25, 25]))
        _write(records_dir, _record("erlnet_ma_d_mlgd", seed, [31, 29, 26, 26]))
    folder = records_dir / "erlnet_table4"
    folder.mkdir()
    record = _table4_record(0, "set", [0.6, 0.7], [0.2, 0.3], [0.3, 0.2], [0.7, 0.6])
    (folder / "set-seed0.miou.json").write_text(json.dumps(record), encoding="utf-8")
    page = tmp_path / "docs" / "RESULTS.md"
    page.parent.mkdir()
    shutil.copyfile(REPO / "docs" / "RESULTS.md", page)
    assert results_page.update_page(str(page), str(records_dir)) is True
    _, generated, _ = results_page.split_page(page.read_text(encoding="utf-8"))
    for title in ("### ERL-Net Fig. 3: the test images ERL-Net restores better than MEMD",
                  "### ERL-Net Table 4: mIoR / mIoB of ERL-Net over MEMD",
                  "### Rethinking Fig. 7: two-stage convergence of the training loss"):
        assert title in generated
    assert "| `erlnet_table3` | set | 0, 1, 2 | 0.75 ± 0.00 (3/4, 3/4, 3/4) |" in generated
    assert "| `erlnet_table3` | set | 0 | 2 | 0.650 | 0.250 | 0.250 | 0.650 | — |" in generated
    assert "No records yet: not run. Make one with `python -m tools.rethinking_fig7" in generated
    # The covered claims show what was measured; Fig. 7's, without a record, is still "not run".
    assert "| ERL-Net improves more of the hard test images (below MEMD's mean PSNR) than of the easy ones | " \
           "measured, no verdict" in generated
    assert "| the training loss converges in two stages: fast at first, then suddenly slower | not run (" in generated
    assert results_page.page_matches(str(page), str(records_dir))
    drawn = results_page.write_figures(str(page), str(records_dir))
    pytest.importorskip("matplotlib")
    assert sorted(os.path.basename(p) for p in drawn) == ["erlnet_fig3.png", "erlnet_table4.png"]
    assert all(pathlib.Path(p).read_bytes().startswith(b"\x89PNG") for p in drawn)
    assert os.path.dirname(drawn[0]) == str(tmp_path / "docs" / "figures")
    stamp = os.path.getmtime(drawn[0])
    results_page.write_figures(str(page), str(records_dir))  # the same bytes: left as they are
    assert os.path.getmtime(drawn[0]) == stamp
    # The page's text does not depend on the plots.
    shutil.rmtree(tmp_path / "docs" / "figures")
    assert results_page.page_matches(str(page), str(records_dir))


def test_committed_figure_records_match_the_shared_data(shared_data):
    # The Table 4 records were measured on the shared samples the table records name: the same listing, and
    # the images the table records scored.
    table4 = paper_figures.load_table4(str(REPO / "results"))
    found = records.load_records(str(REPO / "results"))
    checked = 0
    for key, table_records in table4.items():
        for record in table_records:
            folder = record["folder"].replace(records.DATA_ROOT_NAME, str(shared_data))
            assert list(records.folder_listing_digest(folder)) == record["listing"], record["test_set"]
            table_record = next(r for r in found[key]
                                if r["row"] == record["model_row"] and r["seed"] == record["seed"])
            assert [i["name"] for i in record["images"]] == sorted(
                records.per_image_psnr(table_record, record["test_set"]))
            checked += 1
    if not checked:
        pytest.skip("no committed Table 4 records")
