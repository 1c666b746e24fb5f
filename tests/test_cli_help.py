"""Every console script's --help lists its own flags (absl lists only the main module's by default)."""

import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # runs the installed command lines

BIN = pathlib.Path(sys.executable).parent

TOOLS = {
    "erlrestore-client": ["--server", "--grpc", "--model_name", "--output_dir", "--[no]overwrite"],
    "erlrestore-train": ["--model_dir", "--stage_budget", "--lr_schedule", "--streak_dir", "--max_image_pixels"],
    "erlrestore-evaluate": ["--model", "--norm_statistics", "--rain_mask_dir", "--max_image_pixels", "--channel",
                            "--[no]self_ensemble"],
    "erlrestore-metrics": ["--input_dir", "--crop_border", "--max_image_pixels", "--channel"],
    "erlrestore-restore": ["--model", "--tile", "--overlap", "--max_image_pixels", "--[no]self_ensemble"],
    "erlrestore-export": ["--model", "--base_dir", "--version"],
    "erlrestore-serve": ["--model_base_path", "--port", "--grpc_port"],
    "erlrestore-synth": ["--degradation", "--streak_dir", "--output_dir"],
    "erlrestore-tfrecords": ["--output_dir"],
    "erlrestore-reproduce": ["--table", "--scale", "--rows"],
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_lists_the_tools_flags(tool):
    script = BIN / tool
    if not script.exists():
        pytest.skip(f"{tool} is not installed beside {sys.executable}")
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    # --help prints the usage to stdout and exits with status 0 (erlrestore.entry; absl alone exits with 1).
    assert result.returncode == 0 and "USAGE" in result.stdout, result.stderr[-2000:]
    for flag in TOOLS[tool]:
        assert flag in result.stdout, (tool, flag, result.stdout[:2000])
