"""The edges every erlrestore-* command shares (erlrestore.entry): -h, one-line usage errors with status 2,
data errors printed once in flag spellings, the shipped models in --model's help."""

import pathlib
import subprocess
import sys

import cv2
import numpy as np
import pytest
from absl import flags

from erlrestore import entry, pretrained

BIN = pathlib.Path(sys.executable).parent


def tool_flags(*names, booleans=()):
    """A FlagValues of its own (the process-wide FLAGS stays untouched), defining ``names`` and ``booleans``."""
    flag_values = flags.FlagValues()
    for name in names:
        flags.DEFINE_string(name, None, "", flag_values=flag_values)
    for name in booleans:
        flags.DEFINE_boolean(name, False, "", flag_values=flag_values)
    return flag_values


def test_library_keywords_are_spelled_as_flags():
    fv = tool_flags("layout", "pair_order", "input_dir", "target_dir", booleans=["overwrite", "pad_small"])
    cases = {
        "layout='side_by_side' needs pair_order='input_left' or 'target_left' (which half)":
            "--layout=side_by_side needs --pair_order=input_left or target_left (which half)",
        "If the files follow another convention, pass layout= (one of folders, reside)":
            "If the files follow another convention, pass --layout= (one of folders, reside)",
        "got input_dir=/d/input_dir and target_dir=/d/x (use layout='folders')":
            "got --input_dir=/d/input_dir and --target_dir=/d/x (use --layout=folders)",
        "replace them with --overwrite (overwrite=True) or choose another output folder":
            "replace them with --overwrite or choose another output folder",
        "pass pad_small=True, or pad_small=False": "pass --pad_small, or --nopad_small",
        "pass input_dir and target_dir explicitly": "pass --input_dir and --target_dir explicitly",
        # Left alone: a bare word without "_", paths, existing flags, names the tool has no flag for.
        "the layout of data/input_dir/ and my-target_dir, --layout=folders, crop_size 8":
            "the layout of data/input_dir/ and my-target_dir, --layout=folders, crop_size 8",
    }
    for message, spelled in cases.items():
        assert entry.flag_spelling(message, fv) == spelled
    # erlrestore-train has --train_input_dir, no --input_dir: the keyword stays.
    assert entry.flag_spelling("pass input_dir and target_dir", tool_flags("train_input_dir")) == (
        "pass input_dir and target_dir")


def test_short_h_is_help_unless_it_is_a_value():
    fv = tool_flags("input", booleans=["overwrite"])
    assert entry.short_help(["tool", "-h"], fv) == ["tool", "--help"]
    assert entry.short_help(["tool", "--overwrite", "-h"], fv) == ["tool", "--overwrite", "--help"]
    assert entry.short_help(["tool", "--input", "-h"], fv) == ["tool", "--input", "-h"]
    assert entry.short_help(["tool", "--", "-h"], fv) == ["tool", "--", "-h"]


def tool(name, *args, cwd=None):
    script = BIN / name
    if not script.exists():
        pytest.skip(f"{name} is not installed beside {sys.executable}")
    return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd)


def error_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.parametrize("name,help_flag", [("erlrestore-restore", "-h"), ("erlrestore-evaluate", "--help"),
                                            ("erlrestore-export", "-h")])
def test_help_and_h_exit_0_and_list_the_shipped_models_with_their_task(name, help_flag):
    result = tool(name, help_flag)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "USAGE" in result.stdout and "--model" in result.stdout
    shipped = pretrained.list()
    assert shipped, "the package ships no models"
    for model in shipped:
        assert f"{model} ({pretrained.task(model)})" in result.stdout, result.stdout[:3000]


@pytest.mark.slow
def test_a_flag_out_of_range_is_one_line_with_status_2():
    result = tool("erlrestore-restore", "--tile=40", "--model=m.keras", "--input=in", "--output_dir=out")
    assert result.returncode == 2
    assert error_lines(result) == ["error: --tile (40) must be larger than twice --overlap (32)"]
    assert result.stdout == ""  # no usage dump anywhere
    bounded = tool("erlrestore-metrics", "--input_dir=in", "--crop_border=-1")
    assert bounded.returncode == 2
    assert error_lines(bounded) == ["error: --crop_border=-1: -1 is not a non-negative integer"]
    assert bounded.stdout == ""


@pytest.mark.slow
def test_a_data_error_is_printed_once_in_flag_spellings(tmp_path):
    cv2.imwrite(str(tmp_path / "photo.png"), np.zeros((16, 16, 3), np.uint8))  # neither degraded nor clean
    result = tool("erlrestore-metrics", f"--input_dir={tmp_path}")
    assert result.returncode == 1
    lines = error_lines(result)
    assert len(lines) == 1 and lines[0].startswith("error: cannot tell degraded from clean images"), lines
    assert ("Pass --target_dir for two folders, or --layout=side_by_side with --pair_order=input_left or "
            "target_left") in lines[0]
    assert "layout='" not in result.stderr
