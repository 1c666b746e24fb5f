"""tools.profile_ops: a profiler trace of a tiny model read back per op type."""

import pytest

from tools import profile_ops


@pytest.mark.parametrize("part", ["inference", "train"])
def test_profile_reads_the_ops_back(part):
    lines = []
    result = profile_ops.profile("pix2pix", part, 32, 1, "float32", 2, top=50, quick=True, report=lines.append)
    kinds = {row["op"] for row in result["ops"]}
    assert any("Conv2D" in kind for kind in kinds), kinds  # the generator's convolutions were traced
    if part == "train":
        assert any("Conv2DBackpropFilter" in kind for kind in kinds), kinds  # and the gradients
    assert all(row["ms"] >= 0 and row["count"] >= 1 for row in result["ops"])
    assert 0.99 < sum(row["share"] for row in result["ops"]) <= 1.0 + 1e-9  # top=50 keeps every op type
    assert result["wall_ms"] > 0 and 0 < result["op_ms"]
    assert result["settings"]["quick"] and lines[-1].startswith("  summed op time")


def test_profile_by_node_names_graph_nodes():
    result = profile_ops.profile("pix2pix", "inference", 32, 1, "float32", 1, by="node", top=3, quick=True,
                                 report=lambda line: None)
    assert len(result["ops"]) == 3
    assert all(":" in row["op"] for row in result["ops"])  # "node_name:OpType"


def test_profile_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown part"):
        profile_ops.profile("pix2pix", "backward", 32, 1, "float32", 1, quick=True)
    with pytest.raises(ValueError, match="at least 1"):
        profile_ops.profile("pix2pix", "inference", 32, 1, "float32", 0, quick=True)


def test_profile_inference_graph_or_model_as_built():
    rewritten = profile_ops.profile("pix2pix", "inference", 32, 1, "float32", 1, top=50, quick=True,
                                    report=lambda line: None)
    built = profile_ops.profile("pix2pix", "inference", 32, 1, "float32", 1, top=50, quick=True, rewrite=False,
                                report=lambda line: None)
    assert "phase convolutions" in rewritten["settings"]["description"]
    kinds = {which: {row["op"] for row in result["ops"]} for which, result in (("new", rewritten), ("old", built))}
    assert any("Conv2DBackpropInput" in kind for kind in kinds["old"])  # Keras's transposed convolutions
    assert not any("Conv2DBackpropInput" in kind for kind in kinds["new"])  # phase convolutions instead
    assert any("DepthToSpace" in kind for kind in kinds["new"])
