"""The command-line progress bar, and erlrestore-restore's count of tiles."""

import io

import numpy as np

from erlrestore import inference
from erlrestore.data import image_files
from erlrestore.progress import Progress, format_seconds, progress


class FakeTerminal(io.StringIO):
    def isatty(self):
        return True


def test_yields_every_item_and_stays_quiet_on_short_logged_sets():
    stream = io.StringIO()
    assert list(progress(range(20), desc="x", stream=stream)) == list(range(20))
    assert stream.getvalue() == ""


def test_logs_about_every_tenth_on_long_sets():
    stream = io.StringIO()
    assert sum(progress(range(200), desc="scoring", stream=stream)) == sum(range(200))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0].startswith("scoring 20/200 (10%)")
    assert lines[-1].startswith("scoring 200/200 (100%)")


def test_redraws_in_place_on_a_terminal():
    stream = FakeTerminal()
    list(progress(range(4), desc="t", stream=stream))
    text = stream.getvalue()
    assert text.count("\r") == 4
    assert "4/4" in text and text.endswith("\n")


def test_progress_counts_units_with_an_eta_and_parts_adjust_the_total():
    stream = FakeTerminal()
    bar = Progress(10, desc="restoring", unit="tiles", stream=stream)
    with bar.part(4, note="image 1/2") as part:
        part(1)
        assert "1/10 tiles image 1/2" in stream.getvalue() and "ETA " in stream.getvalue()
        part(5)  # more than its estimate of 4: the total grows
        assert bar.total == 12 and part.size == 6
    with bar.part(6, note="image 2/2") as part:
        part(2)  # then fails: the rest is counted as done when it is left
    assert bar.done == bar.total == 12
    bar.close()
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert last.startswith("restoring [" + "=" * 30 + "] 12/12 tiles image 2/2") and "ETA" not in last
    assert stream.getvalue().endswith("\n")
    assert format_seconds(42.4) == "42s" and format_seconds(185) == "3m05s" and format_seconds(3720) == "1h02m"


def test_logs_a_long_job_even_with_few_units(monkeypatch):
    clock = iter(range(0, 1000, 20))  # every reading of the clock is 20 s later
    monkeypatch.setattr("erlrestore.progress.time.monotonic", lambda: next(clock))
    stream = io.StringIO()
    bar = Progress(4, desc="restoring", unit="tiles", stream=stream, log_min_items=100, log_min_seconds=10.0)
    for _ in range(4):
        bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("restoring 1/4 tiles (25%)") and "ETA" in lines[0]


def test_restore_tiled_reports_every_tile_it_counts():
    x = np.random.default_rng(0).random((40, 70, 3), dtype=np.float32)
    for options in (dict(tile_batch=1), dict(tile_batch=3), dict(self_ensemble=True), dict(tile=None),
                    dict(tile=128, self_ensemble=True)):
        options = {"tile": 32, "overlap": 8, **options}
        calls = []
        restored = inference.restore_tiled(lambda batch: batch, x, on_tiles=calls.append, **options)
        np.testing.assert_allclose(restored, x, atol=1e-6)
        expected = inference.count_tiles(40, 70, options["tile"], 8, inference.DEFAULT_ALIGN,
                                         options.get("self_ensemble", False))
        assert sum(calls) == expected, options
    assert inference.count_tiles(40, 70, 32, 8, 16) == 8
    assert inference.count_tiles(40, 70, 32, 8, 16, self_ensemble=True) == 8 * 8
    assert inference.count_tiles(20, 20, 32, 8, 16, self_ensemble=True) == 8  # one call per transform


def test_restore_paths_progress_counts_tiles_of_every_image(tmp_path, monkeypatch):
    """Each file's tiles are counted when it is read (once); files not read yet count as the mean so far."""
    image_files.write_image(tmp_path / "in" / "a_big.png", np.random.default_rng(1).random((40, 70, 3)))
    image_files.write_image(tmp_path / "in" / "b_big.png", np.random.default_rng(3).random((40, 70, 3)))
    image_files.write_image(tmp_path / "in" / "c_small.png", np.random.default_rng(2).random((8, 8, 3)))
    stream = FakeTerminal()
    monkeypatch.setattr("sys.stderr", stream)
    written, failures = inference.restore_paths(lambda batch: batch, tmp_path / "in", tmp_path / "out", tile=32,
                                                overlap=8)
    assert failures == [] and len(written) == 3
    text = stream.getvalue()
    assert "1/24 tiles image 1/3" in text  # a_big.png: 8 tiles, and 8 estimated for each of the other two
    assert "9/24 tiles image 2/3" in text and "ETA" in text  # b_big.png: 8 as estimated
    assert "16/17 tiles image 3/3" in text  # c_small.png: 1, the total is now exact
    assert text.rstrip("\n").rsplit("\r", 1)[-1].startswith("restoring [" + "=" * 30 + "] 17/17 tiles image 3/3")


def test_restore_paths_progress_survives_unreadable_files(tmp_path, monkeypatch):
    image_files.write_image(tmp_path / "in" / "a.png", np.random.default_rng(1).random((40, 70, 3)))
    (tmp_path / "in" / "b.png").write_bytes(b"not a png")
    image_files.write_image(tmp_path / "in" / "c.png", np.random.default_rng(2).random((40, 70, 3)))
    stream = FakeTerminal()
    monkeypatch.setattr("sys.stderr", stream)
    written, failures = inference.restore_paths(lambda batch: batch, tmp_path / "in", tmp_path / "out", tile=32,
                                                overlap=8)
    assert len(written) == 2 and [path for path, _ in failures] == [str(tmp_path / "in" / "b.png")]
    # b.png's estimate (8, from a.png) counts as done when it fails: the bar still ends full.
    assert text_end(stream).startswith("restoring [" + "=" * 30 + "] 24/24 tiles image 3/3")


def text_end(stream):
    return stream.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
