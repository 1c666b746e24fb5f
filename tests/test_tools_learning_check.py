"""tools.learning_check: a pixel-loss training of the recipe's network or a plain CNN on the recipe's batches."""

import subprocess
import sys

import numpy as np
import pytest

from tools import learning_check

TINY_GAN = ["--flagfile=flags/unet5_lsgan.flags", "--flagfile=flags/tiny/gan.flags"]


def test_plain_cnn_is_the_identity_plus_a_correction():
    model = learning_check.plain_cnn(width=4, depth=3)
    for layer in model.layers:  # a zero last convolution leaves the input as it is
        if layer.name.startswith("conv2d") and layer.filters == 3:
            layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    image = np.random.default_rng(0).uniform(size=(1, 16, 16, 3)).astype("float32")
    np.testing.assert_allclose(model(image).numpy(), image, atol=1e-6)
    assert sum(1 for layer in model.layers if layer.__class__.__name__ == "Conv2D") == 3


@pytest.mark.parametrize("net", learning_check.NETS)
def test_learning_curve_reports_the_identity_of_the_recipe_batches(net):
    lines = []
    reports = learning_check.learning_curve(TINY_GAN, net=net, steps=3, report_every=2, plain_width=4,
                                            plain_depth=3, log=lines.append)
    assert [r["step"] for r in reports] == [2, 3]  # every report_every steps, and the last
    assert len(lines) == 2 and lines[0].startswith(f"{net} step 2: L1 ")
    for report in reports:
        # The tiny recipe's rain changes its input: the identity's error is not zero, and PSNR follows the MSE.
        assert report["identity_l1"] > 1e-3 and 5 < report["identity_psnr"] < 60
        assert np.isfinite(report["l1"]) and np.isfinite(report["psnr"])
    plain = learning_check.plain_cnn(width=4, depth=3).count_params()
    assert (reports[0]["parameters"] == plain) == (net == "plain_cnn")  # the network asked for is the one trained


def test_bad_recipe_is_one_error_line():
    result = subprocess.run([sys.executable, "-m", "tools.learning_check", "--steps=1",
                             "--train_args=--model=MEMD,--procedural=2"], capture_output=True, text=True)
    assert result.returncode != 0
    assert "exactly one of --stage_steps or --stage_epochs" in result.stderr
    assert "Traceback" not in result.stderr
