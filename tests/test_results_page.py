"""The committed records, the claims as data, and docs/RESULTS.md rendered from the records.

The first test is the guard of the page: docs/RESULTS.md's generated part must be exactly what the
records in results/ render to (run `erlrestore-reproduce --render_only` after adding records).
"""

import copy
import json
import os
import pathlib
import shutil

import numpy as np
import pytest

from erlrestore import claims, records, reproduce, results_page, verdicts

REPO = pathlib.Path(__file__).resolve().parent.parent
PAPERS = REPO.parent / "shared" / "papers"


def test_the_page_is_what_the_committed_records_render_to():
    assert results_page.default_page() == str(REPO / "docs" / "RESULTS.md")
    assert records.default_records_dir() == str(REPO / "results")
    assert results_page.page_matches(), (
        "docs/RESULTS.md and results/ disagree: run `erlrestore-reproduce --render_only`")
    page = (REPO / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    # The hand-written part is kept, below the generated one and labelled as having no records.
    before, generated, after = results_page.split_page(page)
    assert "## Earlier single-seed runs (no committed records)" in after
    assert "## Generated from the committed records" in generated
    # Every claim of the papers is on the page, with a verdict or "not run".
    for claim in claims.CLAIMS:
        assert (claim.text or claim.source) in generated, claim


# --------------------------------------------------------------------------
# The claims.
# --------------------------------------------------------------------------


def _claim(table, better, worse, kind="better"):
    found = [c for c in claims.for_table(table) if (c.better, c.worse, c.kind) == (better, worse, kind)]
    assert len(found) == 1, (table, better, worse, kind)
    return found[0]


def test_claims_name_rows_of_their_tables_and_include_the_ones_against_us():
    claims.check(reproduce.TABLES)
    for table in reproduce.TABLES.values():
        assert table.claims, table.key
        assert all(c.source for c in table.claims)
    # Conclusion (1) of ERL-Net Sec. 4.2 includes MA_A: DT is worse than every stage-wise strategy.
    for entanglement in ("clgd", "mlgd"):
        for strategy in ("ma_a", "ma_b", "ma_c", "ma_d"):
            _claim("erlnet_table3", f"erlnet_{strategy}_{entanglement}", f"erlnet_dt_{entanglement}")
            _claim("erlnet_table3", f"erlnet_{strategy}_{entanglement}", "memd")
        _claim("erlnet_table3", f"erlnet_dt_{entanglement}", "memd", "similar")
    _claim("erlnet_table3", "erlnet_ma_d_mlgd", "memd", "majority")
    best = [c for c in claims.for_table("erlnet_table3") if c.better == "erlnet_ma_d_mlgd" and c.kind == "better"]
    assert len(best) == 10  # the nine other setups and MEMD
    # Rethinking: "no performance drop on UNet-5", in Table II and in the reconstructions of Table III.
    _claim("rethinking_table2", "unet5_lsgan", "pix2pix_unet8_lsgan", "no_worse")
    _claim("rethinking_table3", "recon_unet5", "recon_pix2pix_unet8", "no_worse")
    assert len(claims.without_rows()) >= 10
    assert {c.paper for c in claims.without_rows()} == {claims.ERLNET, claims.RETHINKING}


def test_every_claim_agrees_with_the_papers_own_numbers():
    """We transcribed what the papers claim: on their own numbers each ordering holds."""
    margin = verdicts.EQUIVALENCE_MARGIN_DB
    for table in reproduce.TABLES.values():
        for claim in table.claims:
            a, b = table.row(claim.better).paper_psnr, table.row(claim.worse).paper_psnr
            if claim.table.startswith("rethinking_table1_") or claim.table in ("rethinking_fig6", "rethinking_fig13"):
                assert a is None and b is None, claim  # Fig. 3, 6 and 13 are plots: no number to check against
                continue
            gap = a - b
            if claim.kind in ("better", "majority"):
                assert gap > 0, claim
            elif claim.kind == "no_worse":
                assert gap > -margin, claim
            else:
                assert abs(gap) < margin, claim


def test_table2_columns_claim_only_what_the_paper_numbers_and_table1_claims_its_saturation():
    table2 = [(better, worse, kind) for better, worse, kind, _ in claims._TABLE2_CLAIMS]
    assert len(table2) == 5
    for key, (column, _, _) in reproduce.paper_tables.TABLE2_COLUMNS.items():
        table = reproduce.TABLES[key]
        numbered = {row.id for row in table.rows if row.paper_psnr is not None}
        found = [(c.better, c.worse, c.kind) for c in table.claims]
        # The five claims of the Rain800 column, less those with a row the paper prints "-" for.
        assert found == [c for c in table2 if c[0] in numbered and c[1] in numbered], key
        cited = "Table II; " if key == "rethinking_table2" else f"Table II, {column} column; "
        assert all(c.source.startswith(cited) for c in table.claims), key
    assert len(claims.for_table("rethinking_table2_sidd")) == 5
    assert [(c.better, c.worse) for c in claims.for_table("rethinking_table2_raincityscapes")] == [
        ("pix2pix_unet8_lsgan", "pix2pix_unet8"), ("unet5_lsgan", "pix2pix_unet8_lsgan"),
        ("unet5_lsgan_infoaccum15_subpix", "pix2pix_unet8")]
    assert [(c.better, c.worse) for c in claims.for_table("rethinking_table2_outdoorrain")] == [
        ("unet5_lsgan_infoaccum15_subpix", "pix2pix_unet8")]
    # Table I: UNet-lo beats UNet-(lo - 1); UNet-hi is no worse than every deeper UNet of the table.
    expected = {
        "rethinking_table1_denoise": [("unet2", "unet1", "better"), ("unet3", "unet4", "no_worse"),
                                      ("unet3", "unet5", "no_worse"), ("unet3", "unet6", "no_worse")],
        "rethinking_table1_derain": [("unet3", "unet2", "better"), ("unet4", "unet5", "no_worse"),
                                     ("unet4", "unet6", "no_worse")],
        "rethinking_table1_dehaze": [("unet4", "unet3", "better"), ("unet5", "unet6", "no_worse")],
    }
    for key, wanted in expected.items():
        found = claims.for_table(key)
        assert [(c.better, c.worse, c.kind) for c in found] == wanted, key
        assert all(c.source.startswith("Table I (") and "Sec. VI.1 text" in c.source and c.source.endswith("Fig. 3")
                   for c in found), key
    # What stays untested: En/Decoder's sweep and UNet-7/8.
    assert any("En/Decoder" in c.text for c in claims.without_rows())
    assert not any("SIDD" in c.source for c in claims.without_rows())


def test_fig6_and_fig13_claim_the_papers_trends_and_leave_the_rowless_list():
    # Fig. 6: each InfoAccum depth beats the one before it, and the deepest beats none.
    depth = [f"unet5_lsgan_infoaccum{n}" for n in (1, 3, 5, 10, 15, 20)]
    assert [(c.better, c.worse, c.kind) for c in claims.for_table("rethinking_fig6")] == [
        (deeper, shallower, "better") for shallower, deeper in zip(["unet5_lsgan"] + depth, depth)] + [
        ("unet5_lsgan_infoaccum20", "unet5_lsgan", "better")]
    assert all(c.source.startswith("Sec. VI.2 text (") and "App. G text (" in c.source and c.source.endswith("Fig. 6")
               for c in claims.for_table("rethinking_fig6"))
    # Fig. 13: the 1st position (ours 0, Table II's InfoAccum-15 row) beats none and every single deeper position;
    # the 2nd (ours 1) still beats none.
    first = "unet5_lsgan_infoaccum15"
    found = claims.for_table("rethinking_fig13")
    assert [(c.better, c.worse, c.kind) for c in found] == [(first, "unet5_lsgan", "better")] + [
        (first, f"unet5_lsgan_infoaccum15_at{k}", "better") for k in (1, 2, 3, 4)] + [
        ("unet5_lsgan_infoaccum15_at1", "unet5_lsgan", "better")]
    assert all(c.source.startswith("App. H.A text (") and c.source.endswith("Fig. 13") for c in found)
    assert "minor improvement" in found[-1].source and "greatest improvement" in found[0].source
    # Every claim names rows of its table (claims.check), and neither figure is left among the claims without rows.
    claims.check(reproduce.TABLES)
    for key in ("rethinking_fig6", "rethinking_fig13"):
        ids = {row.id for row in reproduce.TABLES[key].rows}
        assert all({c.better, c.worse} <= ids for c in claims.for_table(key)), key
    assert not any("Fig. 6" in c.source or "Fig. 13" in c.source for c in claims.without_rows())


def test_a_table_without_paper_numbers_renders_dashes_and_not_run(tmp_path):
    table = reproduce.TABLES["rethinking_table1_dehaze"]
    text = results_page.render_table(table, [])
    assert "No records yet" in text
    assert "| UNet-1 + LSGAN | — / — | not run | — | — | — | — |" in text
    assert "| UNet-5 + LSGAN no worse than UNet-6 + LSGAN (no drop over 0.5 dB) | Table I (" in text
    assert "| — | **not run (no records of `unet5` and `unet6`)** |" in text
    found = [_record(table.key, "unet4", s, [30.0 + s, 31.0, 32.0]) for s in range(3)]
    found += [_record(table.key, "unet3", s, [29.0 + s, 30.0, 31.0]) for s in range(3)]
    text = results_page.render_table(table, found)
    line = _line(text, "| UNet-4 + LSGAN > UNet-3 + LSGAN")
    assert "| — | +1.00 ± 0.00 dB (3/3 seeds agree" in line and line.endswith("| **undecided** |")


@pytest.mark.skipif(not PAPERS.is_dir(), reason="papers not beside the checkout")
def test_quoted_sources_are_in_the_papers():
    text = " ".join(p.read_text(encoding="utf-8") for p in PAPERS.glob("*.md"))
    text = " ".join(text.split())
    for claim in claims.CLAIMS:
        for part in claim.source.split('"')[1::2]:
            for piece in part.split(" ... "):
                assert piece in text, (claim.key, piece)


# --------------------------------------------------------------------------
# Records.
# --------------------------------------------------------------------------


def test_run_identity_covers_seed_settings_and_data(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"x" * 10)
    settings = ["--model=MEMD", "--stage_steps=4"]
    data = [f"--synthetic_clean_dir={folder}", "--degradation=rain"]
    key = records.run_key(0, settings, data)
    assert key.startswith("seed0-") and key == records.run_key(0, settings, data)
    assert records.run_key(1, settings, data) != key
    assert records.run_key(0, settings + ["--precision=float32"], data) != key
    assert records.run_key(0, settings, data[:1] + ["--degradation=haze"]) != key
    # Validation flags only draw the learning curve: the model is the same.
    assert records.run_key(0, settings, data + [f"--val_input_dir={folder}"]) == key
    # The same data elsewhere (a fresh clone, another machine) is the same run: the committed records'
    # run folders must not depend on where the data lies.
    moved = tmp_path / "elsewhere" / "photos"
    shutil.copytree(folder, moved)
    assert records.run_key(0, settings, [f"--synthetic_clean_dir={moved}", "--degradation=rain"]) == key
    # The same folder with another image in it is other data.
    (folder / "b.png").write_bytes(b"y" * 10)
    assert records.run_key(0, settings, data) != key
    assert records.test_set_key(str(folder), "", ()) != records.test_set_key(str(folder), "", ("--x",))


def test_run_folders_differ_by_seed_and_data(tmp_path):
    table = reproduce.TABLES["erlnet_table2"]
    row = table.row("memd")
    flags_dir = str(REPO / "flags")
    runs = str(tmp_path)
    one = reproduce.run_dir_for(table, row, "tiny", flags_dir, ["--procedural=4"], runs, 0)
    assert one.startswith(os.path.join(runs, "memd", "seed0-"))
    assert reproduce.run_dir_for(table, row, "tiny", flags_dir, ["--procedural=4"], runs, 1) != one
    assert reproduce.run_dir_for(table, row, "tiny", flags_dir, ["--procedural=6"], runs, 0) != one
    assert reproduce.run_dir_for(table, row, "cpu", flags_dir, ["--procedural=4"], runs, 0) != one
    command = reproduce.train_command(table, row, "tiny", flags_dir, ["--procedural=4"], one, seed=2)
    assert command.index("--seed=2") > command.index("--procedural=4")  # after the overlay's --seed


def test_flag_lines_display_paths_and_precision(tmp_path):
    lines = records.flag_lines(str(REPO / "flags" / "memd_global_residual.flags"), str(REPO))
    assert "--model=MEMD" in lines and lines[-1] == "--global_residual"
    assert not any(line.startswith("#") for line in lines)
    assert records.last_flag(["--precision=auto", "--precision=float32"], "precision") == "float32"
    root = tmp_path / "data"
    (root / "rain12").mkdir(parents=True)
    assert records.display_path(str(root / "rain12"), str(root)) == "$ERLRESTORE_DATA_ROOT/rain12"
    assert records.display_path("/somewhere/on/a/machine/set", "") == ".../machine/set"
    assert records.display_path("Rain100H/test", "") == "Rain100H/test"
    described = records.describe_data([f"--synthetic_clean_dir={root / 'rain12'}", "--degradation=rain"], str(root))
    assert described["flags"][0] == "--synthetic_clean_dir=$ERLRESTORE_DATA_ROOT/rain12"
    assert described["folders"]["synthetic_clean_dir"] == {"name": "$ERLRESTORE_DATA_ROOT/rain12", "images": 0}
    log = tmp_path / "train.log"
    log.write_text("x\ntraining memd with strategy MEMD on 1 replica(s) (default), precision mixed_bfloat16, "
                   "XLA off: a=4 steps\n", encoding="utf-8")
    assert records.precision_from_log(str(log)) == "mixed_bfloat16"
    assert records.precision_from_log(str(tmp_path / "none.log")) is None
    state = records.git_state(str(REPO))
    assert state["hash"] is None or len(state["hash"]) == 40


# --------------------------------------------------------------------------
# Rendering from records.
# --------------------------------------------------------------------------


def _record(table, row, seed, psnrs, *, set_name="set", data=("--procedural=4",), precision="float32"):
    images = [{"name": f"im{i}.png", "psnr": float(p), "ssim": 0.5} for i, p in enumerate(psnrs)]
    return {
        "schema": 1, "table": table, "row": row, "label": row, "seed": seed, "scale": "tiny",
        "run": f"seed{seed}-000000000000", "commit": {"hash": "a" * 40, "dirty": False},
        "data": {"flags": list(data), "folders": {}},
        "precision": {"requested": precision, "resolved": precision}, "budget": "split", "steps": 4,
        "train_seconds": 60.0, "curve": [1.0, 2.0, 3.0, 4.0],
        "test_sets": {set_name: {"folder": "set", "count": len(images), "images": images}},
    }


def _write(records_dir, record):
    records.write_record(records.record_path(records_dir, record["table"], record["row"], record["seed"]), record)


def _line(text, start):
    found = [line for line in text.splitlines() if line.startswith(start)]
    assert len(found) == 1, (start, text)
    return found[0]


def test_a_table_renders_means_seeds_and_three_way_verdicts(tmp_path):
    table = reproduce.TABLES["erlnet_table2"]
    base = np.array([20.0, 21.0, 22.0, 23.0, 24.0, 25.0])
    for seed in (0, 1, 2):
        _write(tmp_path, _record(table.key, "memd_minus_minus", seed, base + seed * 0.1))
        _write(tmp_path, _record(table.key, "memd_minus", seed, base + 1.0 + seed * 0.1))  # +1 dB on every image
        _write(tmp_path, _record(table.key, "memd", seed, base + 1.0 + (0.5 if seed < 2 else -0.5)))
    found = records.load_records(str(tmp_path))[table.key]
    text = results_page.render_table(table, found, level=2)
    assert _line(text, "| MEMD- (skip, no fusion) |").startswith(
        "| MEMD- (skip, no fusion) | 29.38 / 0.8327 | 23.60 ± 0.10 / 0.5000 ± 0.0000 | 0, 1, 2 | P1 | 4 "
        "| 1.0 ± 0.0 min |")
    assert "| MEMD + global input residual (ours, not in the paper) | — / — | — | not run |" in text
    assert "| P1 | tiny | --procedural=4 | float32 | split | 9 |" in text
    # MEMD- > MEMD--: +1 dB on all six images for three seeds: p = 2/64.
    assert _line(text, "| MEMD- (skip, no fusion) > MEMD--").endswith(
        "| +5.30 dB | +1.00 ± 0.00 dB (3/3 seeds agree, p = 0.0312; 6 images): reproduced | **reproduced** |")
    # MEMD > MEMD-: seeds +0.5, +0.5, -0.5: the seeds disagree.
    assert _line(text, "| MEMD (skip + fusion) > MEMD- ").endswith("**undecided** |")
    assert "2/3 seeds agree" in _line(text, "| MEMD (skip + fusion) > MEMD- ")
    # Reversed rows (B above A on every image and seed) are "not reproduced".
    for seed in (0, 1, 2):
        _write(tmp_path, _record(table.key, "memd_minus_minus", seed, base + 3.0))
    text = results_page.render_table(table, records.load_records(str(tmp_path))[table.key])
    assert _line(text, "| MEMD- (skip, no fusion) > MEMD--").endswith("**not reproduced** |")


def test_rows_trained_differently_or_missing_are_not_compared(tmp_path):
    table = reproduce.TABLES["erlnet_table2"]
    for seed in (0, 1, 2):
        _write(tmp_path, _record(table.key, "memd", seed, [30, 31, 32, 33, 34, 35]))
        _write(tmp_path, _record(table.key, "memd_minus", seed, [20, 21, 22, 23, 24, 25], precision="mixed_bfloat16"))
    text = results_page.render_table(table, records.load_records(str(tmp_path))[table.key])
    line = _line(text, "| MEMD (skip + fusion) > MEMD- ")
    assert "**undecided (the two rows' runs were not trained the same way" in line
    assert "**not run (no records of `memd_minus_minus`)**" in _line(text, "| MEMD (skip + fusion) > MEMD-- ")
    # Protocols are numbered in the table's row order: MEMD- comes before MEMD.
    assert "| P1 | tiny | --procedural=4 | mixed_bfloat16 | split | 3 |" in text
    assert "| P2 | tiny | --procedural=4 | float32 | split | 3 |" in text


def test_records_must_match_their_file_names(tmp_path):
    record = _record("erlnet_table2", "memd", 0, [1.0])
    path = tmp_path / "erlnet_table2" / "memd-seed1.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record), encoding="utf-8")
    with pytest.raises(ValueError, match="do not match its name"):
        records.load_records(str(tmp_path))
    assert records.load_records(str(tmp_path / "none")) == {}


def test_update_page_and_detect_a_page_that_disagrees(tmp_path):
    page = tmp_path / "RESULTS.md"
    shutil.copyfile(REPO / "docs" / "RESULTS.md", page)
    table = reproduce.TABLES["rethinking_table3"]
    for seed in (0, 1, 2):
        _write(tmp_path / "results", _record(table.key, "recon_unet5", seed, [30, 31, 32, 33, 34, 35, 36],
                                             set_name="kodak24"))
        _write(tmp_path / "results", _record(table.key, "recon_pix2pix_unet8", seed, [30.3] * 7,
                                             set_name="kodak24"))
    records_dir = str(tmp_path / "results")
    assert not results_page.page_matches(str(page), records_dir)
    assert results_page.update_page(str(page), records_dir) is True
    assert results_page.page_matches(str(page), records_dir)
    assert results_page.update_page(str(page), records_dir) is False
    text = page.read_text(encoding="utf-8")
    # The hand-written sections around the generated one are untouched.
    original = (REPO / "docs" / "RESULTS.md").read_text(encoding="utf-8")
    assert results_page.split_page(text)[0] == results_page.split_page(original)[0]
    assert results_page.split_page(text)[2] == results_page.split_page(original)[2]
    assert "6 record(s) in `results/`" in text
    assert "UNet-5 no worse than pix2pix (UNet-8) (no drop over 0.5 dB)" in text
    # A record changed after rendering: the page no longer matches.
    path = records.record_path(records_dir, table.key, "recon_unet5", 1)
    record = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
    changed = copy.deepcopy(record)
    changed["test_sets"]["kodak24"]["images"][0]["psnr"] += 0.5
    records.write_record(path, changed)
    assert not results_page.page_matches(str(page), records_dir)
    with pytest.raises(ValueError, match="generated section"):
        results_page.split_page("no markers here")


def test_a_tables_caveats_are_printed_beside_its_rows():
    """The UNet-8 canvas confound (issue 25) is stated under every table with UNet-8 and UNet-5 rows."""
    from erlrestore import paper_tables

    for key, table in paper_tables.TABLES.items():
        ids = {row.id for row in table.rows}
        has_unet8 = any("unet8" in i for i in ids) and any("unet5" in i for i in ids)
        assert (paper_tables.UNET8_CANVAS_CAVEAT in table.caveats) == has_unet8, key
        text = results_page.render_table(table, [])
        for caveat in table.caveats:
            title = text.index(table.title)
            assert text.index(f"**Caveat.** {caveat}") > title


def test_table1_records_give_the_page_its_fig3_plot(tmp_path):
    """Rethinking Fig. 3 (Table I's UNet-N sweep): linked by the page and drawn by write_figures once a Table I
    record exists; neither without one."""
    pytest.importorskip("matplotlib")
    records_dir = tmp_path / "results"
    page = tmp_path / "docs" / "RESULTS.md"
    page.parent.mkdir()
    page.write_text(f"intro\n\n{results_page.BEGIN}\n{results_page.END}\n", encoding="utf-8")
    link = f"({results_page.paper_figures.FIGURES_DIR}/{results_page.TABLE1_FIGURE})"
    assert link not in results_page.render_generated(str(records_dir))
    assert not any(p.endswith(results_page.TABLE1_FIGURE)
                   for p in results_page.write_figures(str(page), str(records_dir)))
    for n, psnr in ((2, 25.0), (3, 27.0), (4, 27.1)):
        _write(str(records_dir), _record("rethinking_table1_denoise", f"unet{n}", 0, [psnr, psnr + 1]))
    assert link in results_page.render_generated(str(records_dir))
    drawn = results_page.write_figures(str(page), str(records_dir))
    plot = page.parent / results_page.paper_figures.FIGURES_DIR / results_page.TABLE1_FIGURE
    assert str(plot) in drawn and plot.stat().st_size > 1000


def test_fig6_and_fig13_records_give_the_page_their_plots(tmp_path):
    """Rethinking Fig. 6 and Fig. 13: each linked under its table and drawn by write_figures once the table has a
    record of one of its rows; neither without one (as the Table I plot)."""
    pytest.importorskip("matplotlib")
    records_dir = tmp_path / "results"
    page = tmp_path / "docs" / "RESULTS.md"
    page.parent.mkdir()
    page.write_text(f"intro\n\n{results_page.BEGIN}\n{results_page.END}\n", encoding="utf-8")
    figures = page.parent / results_page.paper_figures.FIGURES_DIR
    links = {key: f"({results_page.paper_figures.FIGURES_DIR}/{name})"
             for key, (name, _) in results_page.TABLE_FIGURES.items()}
    assert set(links) == {"rethinking_fig6", "rethinking_fig13"}
    text = results_page.render_generated(str(records_dir))
    assert not any(link in text for link in links.values())
    assert results_page.write_figures(str(page), str(records_dir)) == []
    # Fig. 6 only: three seeds of L = 0 and L = 1 on two test sets, L = 1 one dB above on every image.
    for seed in (0, 1, 2):
        for row, offset in (("unet5_lsgan", 0.0), ("unet5_lsgan_infoaccum1", 1.0)):
            record = _record("rethinking_fig6", row, seed, np.arange(6) + 20.0 + offset + 0.1 * seed,
                             set_name="rain12")
            record["test_sets"]["rain100l-10"] = copy.deepcopy(record["test_sets"]["rain12"])
            _write(str(records_dir), record)
    text = results_page.render_generated(str(records_dir))
    assert links["rethinking_fig6"] in text and links["rethinking_fig13"] not in text
    # The link comes under its own table, before the next one.
    assert (text.index("### Rethinking Fig. 6, InfoAccum depth") < text.index(links["rethinking_fig6"])
            < text.index("### Rethinking Fig. 13, InfoAccum position"))
    assert _line(text, "| UNet-5 + LSGAN + InfoAccum-1 > UNet-5 + LSGAN |").endswith("**reproduced** |")
    assert "**not run (no records of `unet5_lsgan_infoaccum3`)**" in _line(
        text, "| UNet-5 + LSGAN + InfoAccum-3 > UNet-5 + LSGAN + InfoAccum-1 |")
    drawn = results_page.write_figures(str(page), str(records_dir))
    assert [os.path.basename(p) for p in drawn] == [results_page.FIG6_FIGURE]
    assert (figures / results_page.FIG6_FIGURE).read_bytes().startswith(b"\x89PNG")
    # Then Fig. 13: one seed of InfoAccum-15 at the 3rd position; the caveat stays under its title.
    _write(str(records_dir), _record("rethinking_fig13", "unet5_lsgan_infoaccum15_at2", 0, [25.0, 26.0],
                                     set_name="rain12"))
    text = results_page.render_generated(str(records_dir))
    assert links["rethinking_fig13"] in text
    assert (text.index("### Rethinking Fig. 13, InfoAccum position") < text.index("**Caveat.** The paper inserts")
            < text.index(links["rethinking_fig13"]))
    drawn = results_page.write_figures(str(page), str(records_dir))
    assert sorted(os.path.basename(p) for p in drawn) == sorted([results_page.FIG6_FIGURE, results_page.FIG13_FIGURE])
    assert (figures / results_page.FIG13_FIGURE).stat().st_size > 1000


def test_each_table_shows_its_test_sets_unrestored_input_as_the_bar(tmp_path):
    """The degraded input's score (a record's test set ``input``) is printed under the rows; none without it."""
    table = reproduce.TABLES["erlnet_table2"]
    plain = _record("erlnet_table2", "memd", 0, [30.0, 31.0])
    assert "the degraded input, unrestored" not in results_page.render_table(table, [plain])
    with_input = copy.deepcopy(plain)
    with_input["test_sets"]["set"]["input"] = {"psnr_mean": 25.12345, "ssim_mean": 0.71234}
    row = _line(results_page.render_table(table, [with_input]), "| the degraded input, unrestored")
    assert "| 25.12 / 0.7123 |" in row


def test_input_scores_are_the_inputs_y_psnr_against_the_clean_images(tmp_path):
    """Golden value: a grey image off by 10 grey levels in every channel is off by 219 * 10 / 255 on Y
    (BT.601, 16-235), so its Y-PSNR is 20 log10(255 / (2190 / 255))."""
    import cv2

    for part, value in (("input", 110), ("target", 100)):
        (tmp_path / part).mkdir()
        cv2.imwrite(str(tmp_path / part / "a.png"), np.full((32, 32, 3), value, np.uint8))
    scores = reproduce.input_scores(str(tmp_path), "", ())
    assert scores["psnr_mean"] == pytest.approx(20 * np.log10(255 / (2190 / 255)), abs=1e-4)
    assert scores["ssim_mean"] <= 1.0


def test_reproducing_a_figure_table_draws_its_plot_beside_its_report(tmp_path):
    """erlrestore-reproduce --table=rethinking_fig6 writes rethinking_fig6.png into <output_dir>/rethinking_fig6/,
    drawn from every record of the table (here none trained by this call: --rows names none)."""
    pytest.importorskip("matplotlib")
    records_dir = tmp_path / "records"
    for seed in (0, 1):
        for row, offset in (("unet5_lsgan", 0.0), ("unet5_lsgan_infoaccum1", 1.0)):
            _write(str(records_dir), _record("rethinking_fig6", row, seed, np.arange(4) + 20.0 + offset,
                                             set_name="rain12"))
    folder = tmp_path / "set"
    folder.mkdir()
    out = tmp_path / "out"
    reproduce.reproduce_table(reproduce.TABLES["rethinking_fig6"], "tiny", str(out), rows=("no_such_row",),
                              eval_sets={"rain12": (str(folder), str(folder))}, records_dir=str(records_dir),
                              log=lambda *_: None)
    figure = out / "rethinking_fig6" / results_page.FIG6_FIGURE
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert (out / "rethinking_fig6" / "results.md").is_file()
    # A table that is not a figure draws none.
    reproduce.reproduce_table(reproduce.TABLES["erlnet_table2"], "tiny", str(out), rows=("no_such_row",),
                              eval_sets={"rain12": (str(folder), str(folder))}, records_dir=str(records_dir),
                              log=lambda *_: None)
    assert not list((out / "erlnet_table2").glob("rethinking_*.png"))
