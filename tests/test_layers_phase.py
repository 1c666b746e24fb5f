"""PhaseConv2DTranspose: a transposed convolution as a forward convolution and depth_to_space."""

import keras
import numpy as np
import pytest

from erlrestore.layers import PhaseConv2DTranspose, phase_form_applies, phase_kernel
from layer_testing import check_layer

# (kernel_size, strides, padding of the Keras layer it replaces)
FORMS = [(4, 2, "same"), (2, 2, "valid"), (2, 2, "same"), (3, 3, "valid")]


@pytest.mark.parametrize("kernel_size, strides", [(4, 2), (2, 2), (3, 3)])
def test_phase_conv_standard_checks(kernel_size, strides):
    check_layer(
        PhaseConv2DTranspose,
        {"filters": 3, "kernel_size": kernel_size, "strides": strides, "use_bias": True},
        input_shape=(2, 5, 7, 6),
        expected_output_shape=(2, 5 * strides, 7 * strides, 3),
        model_input_shape=(None, None, 6),
    )


def _pair(kernel_size, strides, padding, use_bias, shape, seed=0):
    """A Keras Conv2DTranspose with random weights and the PhaseConv2DTranspose built from them."""
    rng = np.random.default_rng(seed)
    reference = keras.layers.Conv2DTranspose(4, kernel_size, strides=strides, padding=padding, use_bias=use_bias)
    reference.build(shape)
    weights = [rng.normal(size=tuple(w.shape)).astype("float32") for w in reference.weights]
    reference.set_weights(weights)
    phase = PhaseConv2DTranspose(4, kernel_size, strides, use_bias=use_bias)
    phase.build(shape)
    phase.set_weights([phase_kernel(weights[0], strides)] + weights[1:])
    return reference, phase


@pytest.mark.parametrize("kernel_size, strides, padding", FORMS)
@pytest.mark.parametrize("use_bias", [True, False])
def test_phase_conv_equals_the_transposed_convolution(kernel_size, strides, padding, use_bias):
    shape = (2, 5, 8, 6)  # odd and even sides
    reference, phase = _pair(kernel_size, strides, padding, use_bias, shape)
    x = np.random.default_rng(1).normal(size=shape).astype("float32")
    expected = keras.ops.convert_to_numpy(reference(x))
    got = keras.ops.convert_to_numpy(phase(x))
    assert got.shape == expected.shape == (2, 5 * strides, 8 * strides, 4)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-5)  # sums of 6 x 4 products of N(0, 1) terms
    assert np.abs(expected).max() > 1.0


def test_phase_conv_single_pixel_and_bfloat16():
    reference, phase = _pair(4, 2, "same", True, (1, 1, 1, 6))
    x = np.random.default_rng(2).normal(size=(1, 1, 1, 6)).astype("float32")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(phase(x)), keras.ops.convert_to_numpy(reference(x)),
                               atol=2e-5)
    mixed = PhaseConv2DTranspose(4, dtype="mixed_bfloat16")
    out = mixed(np.zeros((1, 3, 3, 6), "float32"))
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16" and mixed.kernel.dtype == "float32"


def test_phase_conv_rejects_other_forms():
    assert phase_form_applies(4, 2) and phase_form_applies(2, 2) and not phase_form_applies(3, 2)
    with pytest.raises(ValueError, match="kernel_size must equal strides"):
        PhaseConv2DTranspose(4, kernel_size=3, strides=2)
    with pytest.raises(ValueError, match="known channels"):
        PhaseConv2DTranspose(4).build((None, None, None, None))
