"""The command-line progress bar."""

import io

from erlrestore.progress import progress


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
