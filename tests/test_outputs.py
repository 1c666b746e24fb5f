"""erlrestore.outputs: the one output-file policy of the tools, and collecting per-file failures."""

import os
import subprocess
import sys

import pytest

from erlrestore import outputs
from erlrestore.data import image_files


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_names_kept_or_png_stems(tmp_path):
    inputs = [touch(tmp_path / "in" / "a.jpg"), touch(tmp_path / "in" / "b.tif")]
    out = tmp_path / "out"
    assert outputs.output_paths(inputs, out) == [str(out / "a.jpg"), str(out / "b.tif")]
    assert outputs.output_paths(inputs, out, extension=".png") == [str(out / "a.png"), str(out / "b.png")]
    assert not out.exists()  # planning writes nothing


def test_output_folder_holding_an_input_or_a_reference_is_refused(tmp_path):
    image = touch(tmp_path / "in" / "a.png")
    clean = touch(tmp_path / "clean" / "a.png")
    with pytest.raises(image_files.DataError, match=f"output folder {tmp_path / 'in'} holds the input image {image}; write "
                                           "restored images to a different folder"):
        outputs.output_paths([image], tmp_path / "in", extension=".png")
    with pytest.raises(image_files.DataError, match=f"holds the clean image {clean}"):
        outputs.output_paths([image], tmp_path / "clean", extension=".png", references=[clean])
    (tmp_path / "link").symlink_to(tmp_path / "in")  # the input folder under another name
    with pytest.raises(image_files.DataError, match="holds the input image"):
        outputs.output_paths([image], tmp_path / "link", overwrite=True)
    # An input reached through a link in another folder: the folder it really lives in is refused too.
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.png").symlink_to(image)
    with pytest.raises(image_files.DataError, match="holds the input image"):
        outputs.output_paths([tmp_path / "elsewhere" / "b.png"], tmp_path / "in", extension=".png")


def test_output_onto_an_input_through_a_hard_link_is_refused(tmp_path):
    image = touch(tmp_path / "in" / "a.png")
    (tmp_path / "out").mkdir()
    os.link(image, tmp_path / "out" / "a.png")
    with pytest.raises(image_files.DataError, match=f"output {tmp_path / 'out' / 'a.png'} would overwrite the input {image}"):
        outputs.output_paths([image], tmp_path / "out", overwrite=True)


def test_two_inputs_of_one_name_are_refused_the_same_file_twice_is_not(tmp_path):
    a_png, a_jpg = touch(tmp_path / "in" / "a.png"), touch(tmp_path / "in" / "a.jpg")
    with pytest.raises(image_files.DataError, match=rf"inputs {a_png} and {a_jpg} share the name 'a': both would be restored "
                                           rf"to {tmp_path / 'out' / 'a.png'}"):
        outputs.output_paths([a_png, a_jpg], tmp_path / "out", extension=".png")
    # Missing files of one name are two files too.
    with pytest.raises(image_files.DataError, match="share the name 'x'"):
        outputs.output_paths([tmp_path / "p" / "x.png", tmp_path / "q" / "x.png"], tmp_path / "out")
    same = [a_png, os.path.join(tmp_path, "in", ".", "a.png")]  # one file, two spellings
    assert outputs.output_paths(same, tmp_path / "out") == [str(tmp_path / "out" / "a.png")] * 2


def test_existing_outputs_are_refused_unless_overwrite(tmp_path):
    inputs = [touch(tmp_path / "in" / f"{i}.png") for i in range(5)]
    out = tmp_path / "out"
    for i in range(4):
        touch(out / f"{i}.png", b"old")
    (out / "4.png").symlink_to(out / "missing")  # a broken link is an existing output too
    with pytest.raises(image_files.DataError) as raised:
        outputs.output_paths(inputs, out)
    assert str(raised.value) == (
        f"5 output file(s) already exist: {out / '0.png'}, {out / '1.png'}, {out / '2.png'} and 2 more; replace "
        "them with --overwrite (overwrite=True) or choose another output folder"
    )
    assert outputs.output_paths(inputs, out, overwrite=True) == [str(out / f"{i}.png") for i in range(5)]
    with pytest.raises(image_files.DataError, match=r"^1 output file\(s\) already exist: .*0\.png; replace"):
        outputs.output_paths(inputs[:1], out)


def test_collect_failures_goes_on_and_describes_each_failure():
    def write(source, target):
        if source == "bad":
            raise image_files.DataError("bad is a truncated PNG")
        if source == "missing":
            raise FileNotFoundError("no such file")
        return target

    pairs = [("a", "A"), ("bad", "B"), ("missing", "M"), ("c", "C")]
    written, failures = outputs.collect_failures(pairs, write, errors=(OSError, ValueError), show_progress=False)
    assert written == ["A", "C"]
    assert failures == [("bad", "bad is a truncated PNG"), ("missing", "FileNotFoundError: no such file")]
    _, failures = outputs.collect_failures(pairs, write, errors=(OSError, ValueError), shown_as_is=(Exception,),
                                           show_progress=False)
    assert failures[1] == ("missing", "no such file")

    def buggy(source, target):
        raise KeyError(source)

    with pytest.raises(KeyError):  # not a file's failure: propagates
        outputs.collect_failures(pairs, buggy, errors=(OSError,), show_progress=False)


def test_the_policy_needs_no_tensorflow():
    code = "import sys, erlrestore.outputs; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
