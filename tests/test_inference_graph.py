"""The inference graph (erlrestore.inference_graph): batch norm folded, phase convolutions; in export and loading."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore import export, inference, inference_graph
from erlrestore.layers import Conv2D, Conv2DTranspose, PhaseConv2DTranspose
from erlrestore.models import erlnet, memd, pix2pix
from erlrestore.training import devices

TOLERANCE = inference_graph.TOLERANCE
CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, Conv2D, Conv2DTranspose)


def batch_norms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def batch_norms_after_convolutions(model):
    """Names of the batch norms whose input is a Conv2D / Conv2DTranspose output (counted from the graph)."""
    return {bn.name for bn in batch_norms(model) if type(bn.input._keras_history.operation) in CONVOLUTIONS}


def set_statistics(model, seed=0, size=64):
    """Gives every batch norm statistics of the model's own activations, then perturbs them and gamma/beta.

    A batch norm left at its initial values (mean 0, variance 1, gamma 1, beta
    0) makes folding nearly the identity; statistics unrelated to the
    activations (e.g. variance 1 for activations of scale 0.01) make the
    network's numbers explode as no trained network's do. So: one
    training-mode call with momentum 0 sets the moving statistics to those of
    a random batch, then means move by up to a fifth of a standard deviation,
    variances scale by 0.5..2, and gamma ~ N(1, 0.3), beta ~ N(0, 0.3).
    """
    rng = np.random.default_rng(seed)
    layers = batch_norms(model)
    momentum = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(rng.random((2, size, size, 3)).astype(np.float32), training=True)
    for layer, kept in zip(layers, momentum):
        layer.momentum = kept
        channels = layer.moving_mean.shape[0]
        std = np.sqrt(layer.moving_variance.numpy())
        mean = layer.moving_mean.numpy() + rng.normal(0.0, 0.2, channels) * std
        variance = layer.moving_variance.numpy() * rng.uniform(0.5, 2.0, channels)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))
        if layer.scale:
            layer.gamma.assign(rng.normal(1.0, 0.3, channels).astype(np.float32))
        if layer.center:
            layer.beta.assign(rng.normal(0.0, 0.3, channels).astype(np.float32))
    return model


def generator(seed=0, **fields):
    config = pix2pix.GeneratorConfig(**{"levels": 4, "base_filters": 4, "max_filters": 16, **fields})
    model = pix2pix.build_generator(config)
    pix2pix.init_pix2pix_weights(model, seed=seed, gain=0.3)
    return set_statistics(model, seed)


def outputs(model, x):
    return model(x, training=False).numpy()


def max_difference(a, b, x):
    return float(np.abs(outputs(a, x) - outputs(b, x)).max())


@pytest.fixture(autouse=True)
def global_dtype_policy():
    """Puts the global dtype policy back after each test (the mixed-precision tests build under other policies)."""
    previous = keras.config.dtype_policy()
    yield
    keras.config.set_dtype_policy(previous)


@pytest.fixture(scope="module")
def unet():
    # UNet-4 with dropout in block 2: batch norm after Conv2D (encoder) and Conv2DTranspose (decoder).
    return generator(seed=1, dropout_blocks=1)


@pytest.fixture(scope="module")
def odd_batch():
    return np.random.default_rng(7).random((2, 37, 53, 3)).astype(np.float32)


def test_unet_folds_every_batch_norm_after_a_convolution(unet, odd_batch):
    expected = batch_norms_after_convolutions(unet)
    assert expected == {bn.name for bn in batch_norms(unet)} and len(expected) == 5
    result = inference_graph.optimize(unet)
    assert set(result.folded) == expected and len(result.folded) == 5
    folded = result.model
    assert folded is not unet and batch_norms(folded) == []
    assert len(folded.layers) == len(unet.layers) - 5
    for name in ("enc_1_conv", "enc_2_conv", "dec_3_up", "dec_2_up", "dec_1_up"):
        layer = folded.get_layer(name)  # a new convolution, now with a bias
        assert layer is not unet.get_layer(name) and layer.use_bias and not unet.get_layer(name).use_bias
    # Both kinds were folded: Conv2D in the encoder, Conv2DTranspose in the decoder (which became phase
    # convolutions, the top one with its own bias and no batch norm too).
    assert type(folded.get_layer("enc_1_conv")) is Conv2D
    assert result.phased == ("dec_3_up", "dec_2_up", "dec_1_up", "dec_0_up")
    assert all(type(folded.get_layer(name)) is PhaseConv2DTranspose for name in result.phased)
    # Unchanged layers are shared, with their weights (the dropout and the custom padding layer among them).
    for name in ("pad", "dec_2_dropout", "enc_0_conv", "crop"):
        assert folded.get_layer(name) is unet.get_layer(name)

    assert np.abs(outputs(unet, odd_batch) - 0.5).max() > 0.1  # not a flat output
    difference = max_difference(unet, folded, odd_batch)
    assert difference <= TOLERANCE, difference
    # The original is untouched and still has its batch norms.
    assert len(batch_norms(unet)) == 5


def test_folded_weights_follow_the_formula():
    # Conv2DTranspose with a bias of its own before a batch norm without scale; Conv2D before one without center.
    image = keras.Input((None, None, 3))
    up = keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same", name="up")(image)
    up = keras.layers.BatchNormalization(scale=False, epsilon=1e-3, name="up_norm")(up)
    conv = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(up)
    conv = keras.layers.BatchNormalization(center=False, name="conv_norm")(conv)
    model = keras.Model(image, conv)
    rng = np.random.default_rng(3)
    model.get_layer("up").bias.assign(rng.normal(0.0, 0.3, 5).astype(np.float32))
    set_statistics(model, seed=3, size=16)

    result = inference_graph.optimize(model)
    assert result.folded == ("up_norm", "conv_norm")
    folded = result.model
    assert [type(layer).__name__ for layer in folded.layers] == ["InputLayer", "Conv2DTranspose", "Conv2D"]

    up_layer, up_norm = model.get_layer("up"), model.get_layer("up_norm")
    scale = 1.0 / np.sqrt(up_norm.moving_variance.numpy().astype(np.float64) + 1e-3)
    np.testing.assert_allclose(folded.get_layer("up").kernel.numpy(),
                               up_layer.kernel.numpy() * scale[:, None], rtol=1e-6)  # axis 2: output channels
    np.testing.assert_allclose(
        folded.get_layer("up").bias.numpy(),
        (up_layer.bias.numpy() - up_norm.moving_mean.numpy()) * scale + up_norm.beta.numpy(), rtol=1e-6, atol=1e-7)
    conv_layer, conv_norm = model.get_layer("conv"), model.get_layer("conv_norm")
    scale = conv_norm.gamma.numpy() / np.sqrt(conv_norm.moving_variance.numpy() + conv_norm.epsilon)
    np.testing.assert_allclose(folded.get_layer("conv").kernel.numpy(), conv_layer.kernel.numpy() * scale, rtol=1e-6)
    np.testing.assert_allclose(folded.get_layer("conv").bias.numpy(), -conv_norm.moving_mean.numpy() * scale,
                               rtol=1e-6, atol=1e-7)

    x = rng.random((1, 9, 11, 3)).astype(np.float32)
    assert max_difference(model, folded, x) <= TOLERANCE


def test_endec_with_subpixel_folds_all_but_the_batch_norm_after_the_custom_layer(odd_batch):
    model = generator(seed=2, kind="endec", subpixel=True, dropout_blocks=1)
    expected = batch_norms_after_convolutions(model)
    assert {bn.name for bn in batch_norms(model)} - expected == {"dec_0_norm"}  # it reads SubPixelUpsample
    result = inference_graph.optimize(model)
    assert set(result.folded) == expected and len(result.folded) == 7
    assert [bn.name for bn in batch_norms(result.model)] == ["dec_0_norm"]
    assert result.model.get_layer("dec_0_norm") is model.get_layer("dec_0_norm")
    difference = max_difference(model, result.model, odd_batch)
    assert difference <= TOLERANCE, difference


def test_what_is_not_folded():
    image = keras.Input((None, None, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(image)
    a = keras.layers.BatchNormalization(name="a_norm")(a)  # folded
    b = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="b")(a)
    b = keras.layers.BatchNormalization(name="b_norm")(b)  # reads an activated output
    c = keras.layers.Conv2D(4, 3, padding="same", name="c")(b)
    c_norm = keras.layers.BatchNormalization(name="c_norm")(c)  # the convolution's output is read twice
    d = keras.layers.Add(name="d")([c, c_norm])
    d = keras.layers.BatchNormalization(name="d_norm")(d)  # after a layer that is not a convolution
    e = keras.layers.Conv2D(4, 1, name="e")(d)
    e = keras.layers.GroupNormalization(groups=-1, name="e_norm")(e)  # not batch norm
    model = keras.Model(image, e)
    set_statistics(model, size=16)
    result = inference_graph.optimize(model)
    assert result.folded == ("a_norm",)
    assert {bn.name for bn in batch_norms(result.model)} == {"b_norm", "c_norm", "d_norm"}
    x = np.random.default_rng(4).random((1, 16, 16, 3)).astype(np.float32)
    assert max_difference(model, result.model, x) <= TOLERANCE


def test_instance_norm_model_only_gets_phase_convolutions(odd_batch):
    model = generator(seed=3, norm="instance")
    before = outputs(model, odd_batch)
    result = inference_graph.optimize_verified(model, multiple=16)
    assert result.folded == () and result.phased == ("dec_3_up", "dec_2_up", "dec_1_up", "dec_0_up")
    assert result.max_difference <= TOLERANCE
    assert max_difference(model, result.model, odd_batch) <= TOLERANCE
    np.testing.assert_array_equal(outputs(model, odd_batch), before)  # the original is untouched


def test_instance_norm_model_exports_with_phase_convolutions(odd_batch, tmp_path):
    # GroupNormalization needs the channel count after a phase convolution even when a SavedModel traces
    # (None, None, None, 3) images.
    model = generator(seed=4, norm="instance")
    version = export.export_savedmodel(model, tmp_path, name="instance")
    restore = tf.saved_model.load(version).signatures["serving_default"]
    got = restore(images=tf.constant(odd_batch))["restored"].numpy()
    assert np.abs(got - np.clip(outputs(model, odd_batch), 0.0, 1.0)).max() <= TOLERANCE


@pytest.mark.parametrize("kernel_size, strides, padding", [(4, 2, "same"), (2, 2, "valid"), (2, 2, "same")])
def test_transposed_convolutions_become_phase_convolutions(kernel_size, strides, padding, odd_batch):
    image = keras.Input((None, None, 3))
    up = keras.layers.Conv2DTranspose(5, kernel_size, strides=strides, padding=padding, name="up")(image)
    model = keras.Model(image, keras.layers.Conv2D(3, 1, name="out")(up))
    rng = np.random.default_rng(6)
    model.get_layer("up").bias.assign(rng.normal(0.0, 0.3, 5).astype(np.float32))
    result = inference_graph.optimize(model)
    assert result.folded == () and result.phased == ("up",)
    assert type(result.model.get_layer("up")) is PhaseConv2DTranspose
    assert result.model.get_layer("out") is model.get_layer("out")
    assert max_difference(model, result.model, odd_batch) <= TOLERANCE


def test_transposed_convolutions_that_stay():
    image = keras.Input((None, None, 3))
    a = keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", name="k3s2")(image)  # no phase form
    b = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="valid", name="valid")(a)  # output 2n + 2
    c = keras.layers.Conv2DTranspose(4, 4, strides=2, padding="same", activation="relu", name="relu")(b)
    d = keras.layers.Conv2DTranspose(4, 4, strides=1, padding="same", name="stride1")(c)
    model = keras.Model(image, d)
    assert inference_graph.optimize(model).model is model


def test_nested_models_are_left_unfolded():
    inner_input = keras.Input((None, None, 3))
    inner = keras.layers.BatchNormalization(name="inner_norm")(keras.layers.Conv2D(3, 3, padding="same")(inner_input))
    inner = keras.Model(inner_input, inner, name="inner")
    image = keras.Input((None, None, 3))
    model = keras.Model(image, inner(image))
    result = inference_graph.optimize(model)
    assert result.model is model and result.folded == ()


def test_compiled_sequential_and_subclassed_models():
    image = keras.Input((None, None, 3))
    model = keras.Model(image, keras.layers.BatchNormalization(name="norm")(keras.layers.Conv2D(3, 3)(image)))
    model.compile(optimizer="adam", loss=lambda y, p: keras.ops.mean(keras.ops.abs(y - p)))  # not deserialisable
    result = inference_graph.optimize(model)
    assert result.folded == ("norm",) and not result.model.compiled
    sequential = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()])
    assert inference_graph.optimize(sequential) == (sequential, (), (), None, None)  # left as it is


def test_verified_folding_keeps_the_original_when_the_numbers_differ(unet, monkeypatch):
    result = inference_graph.optimize_verified(unet, multiple=16)
    assert len(result.folded) == 5 and result.max_difference <= TOLERANCE
    logged = []
    monkeypatch.setattr(inference_graph.logging, "warning", lambda message, *args: logged.append(message % args))
    rejected = inference_graph.optimize_verified(unet, multiple=16, tolerance=-1.0, source="the test model")
    assert rejected.model is unet and rejected.folded == rejected.phased == ()
    assert rejected.max_difference == result.max_difference
    assert logged and logged[-1].startswith("the test model: inference graph not optimized: its output differs")
    assert "1x64x64x3" in logged[-1] and "(> -1, the tolerance given; the model computes in float32)" in logged[-1]
    # A float32 model's default tolerance is float32's 1e-5, named in the log line.
    monkeypatch.setattr(inference_graph.logging, "info", lambda message, *args: logged.append(message % args))
    assert inference_graph.optimize_verified(unet, multiple=16).max_difference == result.max_difference
    assert "<= 1e-05, the float32 tolerance, on a 1x64x64x3 check input" in logged[-1]
    assert inference_graph.optimize_verified(unet, multiple=16, tolerance=0.5 * result.max_difference).model is unet

    def broken(model):
        raise RuntimeError("simulated")

    monkeypatch.setattr(inference_graph, "optimize", broken)
    failed = inference_graph.optimize_verified(unet)
    assert failed.model is unet and failed.folded == ()
    assert "inference graph not optimized (RuntimeError: simulated)" in logged[-1]


def test_check_inputs_follow_the_padding_multiple(unet):
    assert [x.shape for x in inference_graph.check_inputs(unet)] == [(1, 64, 64, 3)]
    assert [x.shape for x in inference_graph.check_inputs(unet, multiple=48)] == [(1, 96, 96, 3)]
    assert [x.shape for x in inference_graph.check_inputs(unet, multiple=256)] == [(1, 256, 256, 3)]
    np.testing.assert_array_equal(inference_graph.check_inputs(unet)[0], inference_graph.check_inputs(unet)[0])  # fixed


def tiny_generator(policy, seed=5):
    """A UNet-3 (widths 4, 8) built under dtype ``policy``, with batch-norm statistics; the global policy is kept."""
    with devices.precision_scope(policy):
        model = pix2pix.build_generator(pix2pix.GeneratorConfig(levels=3, base_filters=4, max_filters=8))
    pix2pix.init_pix2pix_weights(model, seed=seed, gain=0.3)
    return set_statistics(model, seed=seed, size=32)


def record_logs(monkeypatch):
    """The list that inference_graph's info and warning lines are appended to from now on, formatted."""
    logged = []
    monkeypatch.setattr(inference_graph.logging, "info", lambda message, *args: logged.append(message % args))
    monkeypatch.setattr(inference_graph.logging, "warning", lambda message, *args: logged.append(message % args))
    return logged


def no_float32_copy(monkeypatch):
    """Makes float32_copy fail, as for a model with a layer Keras cannot rebuild."""
    def fail(model):
        raise ValueError("simulated: no copy")

    monkeypatch.setattr(inference_graph, "float32_copy", fail)


def sixteen_bit_difference(model, graph, multiple=8):
    """What optimize_verified's 16-bit comparison measures: ``graph`` against ``model`` on the check input."""
    with keras.device("cpu:0"):
        return inference_graph.max_difference(model, graph, inference_graph.check_inputs(model, multiple))


def test_mixed_bfloat16_model_folds_and_runs(odd_batch):
    model = tiny_generator("mixed_bfloat16")
    assert keras.config.dtype_policy().name == "float32"  # precision_scope put the global policy back
    result = inference_graph.optimize(model)
    assert len(result.folded) == 3
    folded = result.model
    for name in ("enc_1_conv", "dec_1_up"):
        layer = folded.get_layer(name)  # a Conv2D and a PhaseConv2DTranspose
        assert layer is not model.get_layer(name)
        assert layer.dtype_policy.name == "mixed_bfloat16" and layer.kernel.dtype == "float32"
        assert layer.compute_dtype == "bfloat16"
    # The folded weights come from the float32 variables, in float32 or better.
    norm = model.get_layer("enc_1_norm")
    scale = norm.gamma.numpy() / np.sqrt(norm.moving_variance.numpy() + norm.epsilon)
    np.testing.assert_allclose(folded.get_layer("enc_1_conv").kernel.numpy(),
                               model.get_layer("enc_1_conv").kernel.numpy() * scale, rtol=1e-6)
    got, want = outputs(folded, odd_batch), outputs(model, odd_batch)
    assert got.dtype == np.float32 and got.shape == odd_batch.shape and np.isfinite(got).all()
    assert np.abs(got - want).max() < 0.05  # bfloat16 rounds differently in the two graphs
    # ... by more than float32's 1e-5. The verified fold (exporters, loading) checks the rewrite on float32 copies
    # within 1e-5, then the bfloat16 graph within bfloat16's tolerance: the rewrite is used.
    verified = inference_graph.optimize_verified(model, multiple=8)
    assert verified.model is not model and len(verified.folded) == 3 and len(verified.phased) == 3
    assert verified.float32_difference <= TOLERANCE
    assert TOLERANCE < verified.max_difference <= inference_graph.TOLERANCES["bfloat16"]
    assert np.abs(outputs(verified.model, odd_batch) - want).max() <= inference_graph.TOLERANCES["bfloat16"]


def test_compute_precision_is_the_lowest_precision_a_layer_computes_in(unet):
    assert inference_graph.default_tolerance(unet) == ("float32", TOLERANCE)
    assert inference_graph.default_tolerance(tiny_generator("mixed_bfloat16")) == (
        "bfloat16", inference_graph.TOLERANCES["bfloat16"])
    assert inference_graph.default_tolerance(tiny_generator("mixed_float16")) == (
        "float16", inference_graph.TOLERANCES["float16"])
    # The tolerances: float32's 1e-5, looser for 16-bit floats, bfloat16 (8-bit significand) the loosest.
    assert inference_graph.TOLERANCES["float32"] == TOLERANCE == 1e-5
    assert TOLERANCE < inference_graph.TOLERANCES["float16"] < inference_graph.TOLERANCES["bfloat16"]

    def model_of(*policies):
        image = keras.Input((None, None, 3))  # layers of the given policies; a nested model's count too
        h = keras.layers.Conv2D(3, 1, dtype=policies[0])(image)
        for policy in policies[1:-1]:
            h = keras.layers.Conv2D(3, 1, dtype=policy)(h)
        inner_input = keras.Input((None, None, 3))
        inner = keras.Model(inner_input, keras.layers.Conv2D(3, 1, dtype=policies[-1])(inner_input))
        return keras.Model(image, inner(h))

    assert inference_graph.compute_precision(model_of("float32", "float32")) == "float32"
    assert inference_graph.compute_precision(model_of("float32", "mixed_bfloat16", "float32")) == "bfloat16"
    assert inference_graph.compute_precision(model_of("float32", "float32", "mixed_float16")) == "float16"
    assert inference_graph.compute_precision(model_of("mixed_float16", "mixed_bfloat16", "float32")) == "bfloat16"
    assert inference_graph.compute_precision(model_of("float64", "float64")) == "float64"
    assert inference_graph.compute_precision(object()) == "float32"  # nothing to read


def computing_layers(model):
    """Every layer of ``model`` that computes, nested models' layers and sub-layers included."""
    return [layer for layer in model._flatten_layers(include_self=False, recursive=True)
            if not isinstance(layer, (keras.layers.InputLayer, keras.Model))]


@pytest.mark.parametrize("family", ["unet", "erlnet"])
def test_float32_copy_has_the_architecture_and_weights_in_float32(family, odd_batch):
    # A UNet with InfoAccum (sub-layers), SubPixelUpsample and dropout; an ERL-Net (nested MEN / MDE models,
    # DenseBlock and FeatureFusion sub-layers). Both mixed_bfloat16, the UNet compiled with a lambda loss.
    with devices.precision_scope("mixed_bfloat16"):
        if family == "unet":
            model = pix2pix.build_generator(pix2pix.GeneratorConfig(
                levels=3, base_filters=4, max_filters=8, info_accum_layers=2, subpixel=True, dropout_blocks=1))
            model.compile(optimizer="adam", loss=lambda y, p: keras.ops.mean(keras.ops.abs(y - p)))
        else:
            model = erlnet.build_erlnet(memd.memd_config(depth=2, base_filters=4, max_filters=8, dense_layers=2,
                                                         growth_rate=4))
    rng = np.random.default_rng(8)
    for variable in model.weights:  # no weight left at a constant initial value
        variable.assign(rng.normal(1.0, 0.2, variable.shape).astype(np.float32))
    assert {layer.compute_dtype for layer in computing_layers(model)} == {"bfloat16", "float32"}
    copy = inference_graph.float32_copy(model)
    assert keras.config.dtype_policy().name == "float32"
    assert copy is not model and not copy.compiled
    layers = computing_layers(copy)
    assert len(layers) == len(computing_layers(model))
    assert all(layer.dtype_policy.name == "float32" and layer.compute_dtype == "float32" for layer in layers)
    assert inference_graph.compute_precision(copy) == "float32"
    assert [layer.name for layer in layers] == [layer.name for layer in computing_layers(model)]
    # The same weights, one by one, in new variables.
    assert len(copy.weights) == len(model.weights) > 0
    for mine, theirs in zip(copy.weights, model.weights):
        assert mine.path == theirs.path and mine.dtype == "float32" and mine is not theirs
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    # The original is untouched, and the two compute the same function up to bfloat16 rounding.
    assert {layer.compute_dtype for layer in computing_layers(model)} == {"bfloat16", "float32"}
    got, want = outputs(copy, odd_batch[:1]), outputs(model, odd_batch[:1])
    assert got.dtype == np.float32 and np.abs(got - want).max() < 0.25 * np.abs(want).max()


@keras.saving.register_keras_serializable(package="erlrestore_tests")
class ConvWithoutDtype(keras.layers.Layer):
    """A layer whose Conv2D sub-layer is created without a dtype, so it takes the global policy when built."""

    def __init__(self, filters, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.conv = keras.layers.Conv2D(filters, 1, name="inner")

    def build(self, input_shape):
        self.conv.build(input_shape)

    def call(self, inputs):
        return self.conv(inputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.filters,)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters}


def test_float32_copy_widens_pure_16_bit_layers_and_refuses_what_it_cannot_rebuild():
    with devices.precision_scope("mixed_bfloat16"):
        image = keras.Input((None, None, 3))
        h = keras.layers.Conv2D(4, 3, padding="same", dtype="bfloat16", name="conv")(image)  # bfloat16 variables
        h = ConvWithoutDtype(4, name="wrapper")(h)
        model = keras.Model(image, keras.layers.Conv2D(3, 1, dtype="mixed_float16", name="out")(h))
    assert model.get_layer("conv").kernel.dtype == "bfloat16"
    assert model.get_layer("wrapper").conv.dtype_policy.name == "mixed_bfloat16"  # the global policy at its build
    # Built while another policy is global: every layer of the copy computes in float32 all the same, sub-layers
    # included, and the global policy is left as it was.
    with devices.precision_scope("mixed_float16"):
        copy = inference_graph.float32_copy(model)
        assert keras.config.dtype_policy().name == "mixed_float16"
    assert [layer.compute_dtype for layer in computing_layers(copy)] == ["float32"] * 4
    assert copy.get_layer("wrapper").conv.dtype_policy.name == "float32"
    assert copy.get_layer("conv").kernel.dtype == "float32"
    np.testing.assert_array_equal(copy.get_layer("conv").kernel.numpy(),
                                  model.get_layer("conv").kernel.numpy().astype(np.float32))
    for mine, theirs in zip(copy.weights, model.weights):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy().astype(np.float32))
    # A Lambda layer is not rebuilt from its configuration (Keras' safe mode): no copy, an error.
    with devices.precision_scope("mixed_bfloat16"):
        image = keras.Input((None, None, 3))
        lambda_model = keras.Model(image, keras.layers.Lambda(lambda x: 2.0 * x)(keras.layers.Conv2D(3, 1)(image)))
    with devices.precision_scope("mixed_float16"):
        with pytest.raises(ValueError, match="Lambda"):
            inference_graph.float32_copy(lambda_model)
        assert keras.config.dtype_policy().name == "mixed_float16"  # also after a failure


@pytest.mark.parametrize("policy, precision", [("mixed_bfloat16", "bfloat16"), ("mixed_float16", "float16")])
def test_mixed_precision_models_are_verified_in_float32_then_in_their_own_precision(policy, precision, monkeypatch):
    model = tiny_generator(policy)
    logged = record_logs(monkeypatch)
    result = inference_graph.optimize_verified(model, multiple=8, source="the test model")
    tolerance = inference_graph.TOLERANCES[precision]
    assert result.model is not model and result.folded == ("enc_1_norm", "dec_2_norm", "dec_1_norm")
    assert result.phased == ("dec_2_up", "dec_1_up", "dec_0_up")
    assert result.float32_difference <= TOLERANCE  # the rewrite's arithmetic, on float32 copies
    # max_difference is the returned 16-bit graph's, against the 16-bit model.
    assert TOLERANCE < result.max_difference <= tolerance
    assert result.max_difference == sixteen_bit_difference(model, result.model)
    assert logged[-1].startswith("the test model: folded 3 batch-norm layers")
    assert (f"(verified in float32 within 1e-05 (max difference {result.float32_difference:.3g}), and the {precision} "
            f"graph within {tolerance:.3g} (max difference {result.max_difference:.3g}, the {precision} tolerance), "
            f"on a 1x64x64x3 check input)") in logged[-1]
    assert len(logged) == 1  # no warning
    # An explicit tolerance applies to the 16-bit graph (the float32 step keeps 1e-5): float32's refuses it.
    strict = inference_graph.optimize_verified(model, multiple=8, tolerance=TOLERANCE, source="the test model")
    assert strict.model is model and strict.folded == strict.phased == ()
    assert strict.max_difference == result.max_difference and strict.float32_difference == result.float32_difference
    assert logged[-1].startswith("the test model: inference graph not optimized: verified in float32 within 1e-05")
    assert (f"but its {precision} output differs by {result.max_difference:.3g} (> 1e-05, the tolerance given; "
            f"the model computes in {precision})") in logged[-1]


def subtly_wrong_fold(damage, name="dec_1_norm"):
    """A _folded_weights that reads channel 0 of batch norm ``name`` slightly wrong (and the others right).

    "variance": its variance 5% too large; "mean": its mean off by a twentieth of its standard deviation.
    On the tiny generator either moves the output by about as much as bfloat16's rounding does.
    """
    real_fold = inference_graph._folded_weights

    def wrong_fold(conv, bn):
        if bn.name != name:
            return real_fold(conv, bn)
        variable = bn.moving_variance if damage == "variance" else bn.moving_mean
        kept = variable.numpy()
        wrong = kept.copy()
        if damage == "variance":
            wrong[0] *= 1.05
        else:
            wrong[0] += 0.05 * np.sqrt(bn.moving_variance.numpy()[0])
        try:
            variable.assign(wrong)
            return real_fold(conv, bn)
        finally:
            variable.assign(kept)

    return wrong_fold


@pytest.mark.parametrize("damage", ["variance", "mean"])
def test_a_subtly_wrong_rewrite_of_a_mixed_bfloat16_model_is_refused_by_the_float32_check(damage, odd_batch,
                                                                                          monkeypatch):
    model = tiny_generator("mixed_bfloat16")
    want = outputs(model, odd_batch)
    correct = sixteen_bit_difference(model, inference_graph.optimize(model).model)
    monkeypatch.setattr(inference_graph, "_folded_weights", subtly_wrong_fold(damage))
    wrong = inference_graph.optimize(model).model
    # The test means something: in bfloat16 the wrong rewrite differs by less than bfloat16's tolerance (by less
    # than twice as much as the correct one), so the 16-bit comparison alone would use it ...
    wrong_difference = sixteen_bit_difference(model, wrong)
    assert wrong_difference <= 0.6 * inference_graph.TOLERANCES["bfloat16"] and wrong_difference < 2 * correct
    # ... and does, when there is no float32 copy to check on:
    with monkeypatch.context() as patch:
        no_float32_copy(patch)
        blind = inference_graph.optimize_verified(model, multiple=8)
    assert blind.model is not model and len(blind.folded) == 3 and blind.float32_difference is None
    # With the float32 copies the rewrite is refused: the error is thousands of float32 tolerances.
    logged = record_logs(monkeypatch)
    result = inference_graph.optimize_verified(model, multiple=8, source="the test model")
    assert result.model is model and result.folded == result.phased == ()
    assert result.float32_difference > 1000 * TOLERANCE
    assert result.max_difference is None  # the bfloat16 graph was not compared
    assert len(logged) == 1 and logged[0].startswith(
        "the test model: inference graph not optimized: on float32 copies of the model and of the graph their "
        f"outputs differ by {result.float32_difference:.3g} (> 1e-05, the float32 tolerance; the model computes in "
        "bfloat16) on a 1x64x64x3 check input")
    np.testing.assert_array_equal(outputs(result.model, odd_batch), want)


@pytest.mark.parametrize("damage", ["variance", "flipped"])
@pytest.mark.parametrize("copy", ["float32 copy", "no copy"])
def test_a_grossly_wrong_rewrite_of_a_mixed_bfloat16_model_is_refused(damage, copy, odd_batch, monkeypatch):
    # The fold reads one batch norm's variance four times too large (its scale halves), or every transposed
    # convolution becomes a phase convolution of its kernel turned by 180 degrees: refused on the float32 copies,
    # and by the bfloat16 comparison alone when there is no copy.
    model = tiny_generator("mixed_bfloat16")
    want = outputs(model, odd_batch)
    real_fold, real_phase_kernel = inference_graph._folded_weights, inference_graph.layers.phase_kernel

    def wrong_fold(conv, bn):
        kernel, bias = real_fold(conv, bn)
        if bn.name != "dec_1_norm":
            return kernel, bias
        variance = bn.moving_variance.numpy()
        try:
            bn.moving_variance.assign(variance * 4.0)
            return real_fold(conv, bn)
        finally:
            bn.moving_variance.assign(variance)

    if damage == "variance":
        monkeypatch.setattr(inference_graph, "_folded_weights", wrong_fold)
    else:
        monkeypatch.setattr(inference_graph.layers, "phase_kernel",
                            lambda kernel, stride: real_phase_kernel(kernel[::-1, ::-1], stride))
    if copy == "no copy":
        no_float32_copy(monkeypatch)
    wrong = inference_graph.optimize(model).model
    assert np.abs(outputs(wrong, odd_batch) - want).max() > inference_graph.TOLERANCES["bfloat16"]
    result = inference_graph.optimize_verified(model, multiple=8)
    assert result.model is model and result.folded == result.phased == ()
    if copy == "no copy":
        assert result.float32_difference is None and result.max_difference > inference_graph.TOLERANCES["bfloat16"]
    else:
        assert result.float32_difference > inference_graph.TOLERANCES["bfloat16"] and result.max_difference is None
    np.testing.assert_array_equal(outputs(result.model, odd_batch), want)


def test_a_rewrite_that_breaks_only_the_16_bit_graph_is_refused(monkeypatch):
    # optimize() gives the bfloat16 model's rewrite a NaN kernel and leaves the float32 copy's right: the float32
    # step passes, the bfloat16 comparison refuses.
    model = tiny_generator("mixed_bfloat16")
    real_optimize = inference_graph.optimize

    def optimize_breaking_16_bits(candidate):
        result = real_optimize(candidate)
        if inference_graph.compute_precision(candidate) == "bfloat16":
            kernel = result.model.get_layer("dec_1_up").kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))
        return result

    monkeypatch.setattr(inference_graph, "optimize", optimize_breaking_16_bits)
    logged = record_logs(monkeypatch)
    result = inference_graph.optimize_verified(model, multiple=8, source="the test model")
    assert result.model is model and result.folded == result.phased == ()
    assert result.float32_difference <= TOLERANCE and np.isnan(result.max_difference)
    assert logged[-1].startswith("the test model: inference graph not optimized: verified in float32 within 1e-05")
    assert "but its bfloat16 output differs by nan (> 0.08, the bfloat16 tolerance)" in logged[-1]


def mixed_model_with_a_float32_convolution():
    """mixed_bfloat16 Conv2D + batch norm (folded), then a float32 Conv2D + mixed batch norm (not folded in 16 bits:
    their compute dtypes differ, so a float32 copy, where they agree, would fold both)."""
    with devices.precision_scope("mixed_bfloat16"):
        image = keras.Input((None, None, 3))
        h = keras.layers.BatchNormalization(name="a_norm")(keras.layers.Conv2D(4, 3, padding="same", name="a")(image))
        h = keras.layers.Conv2D(3, 3, padding="same", dtype="float32", name="b")(h)
        model = keras.Model(image, keras.layers.BatchNormalization(name="b_norm")(h))
    return set_statistics(model, seed=9, size=16)


@pytest.mark.parametrize("why", ["copy fails", "different rewrite"])
def test_without_a_usable_float32_copy_the_16_bit_check_alone_is_done_and_logged(why, monkeypatch):
    if why == "copy fails":
        model = tiny_generator("mixed_bfloat16")
        no_float32_copy(monkeypatch)
        reason = "(ValueError: simulated: no copy)"
    else:
        model = mixed_model_with_a_float32_convolution()
        reason = "(ValueError: the float32 copy's rewrite is not the bfloat16 model's (it folds ['a_norm', 'b_norm']"
    logged = record_logs(monkeypatch)
    result = inference_graph.optimize_verified(model, multiple=8, source="the test model")
    assert result.model is not model and result.folded == (("enc_1_norm", "dec_2_norm", "dec_1_norm")
                                                           if why == "copy fails" else ("a_norm",))
    assert result.float32_difference is None
    assert result.max_difference == sixteen_bit_difference(model, result.model)
    assert result.max_difference <= inference_graph.TOLERANCES["bfloat16"]
    assert len(logged) == 2
    assert logged[0].startswith("the test model: no float32 copy to verify the inference graph's arithmetic on "
                                + reason)
    assert logged[0].endswith("checking its bfloat16 graph alone, which catches only gross errors")
    assert (f"(the bfloat16 check alone, no float32 copy: max difference {result.max_difference:.3g} <= 0.08, "
            f"the bfloat16 tolerance, on a ") in logged[1]
    # Refused by the 16-bit check alone: the warning says which check it was.
    refused = inference_graph.optimize_verified(model, multiple=8, tolerance=0.0, source="the test model")
    assert refused.model is model and refused.float32_difference is None
    assert refused.max_difference == result.max_difference
    assert (f"inference graph not optimized: its bfloat16 output differs by {result.max_difference:.3g} (> 0, the "
            "tolerance given; the model computes in bfloat16; the bfloat16 check alone, no float32 copy)") in logged[-1]


def test_savedmodel_export_and_keras_loading_run_the_same_folded_graph(unet, odd_batch, tmp_path):
    want = np.clip(outputs(unet, odd_batch), 0.0, 1.0)
    version = export.export_savedmodel(unet, tmp_path / "sm", name="unet")
    loaded = tf.saved_model.load(version)
    names = [variable.name for variable in loaded.variables]
    assert names and not any("moving_" in name or "gamma" in name for name in names)  # no batch norm left
    got = loaded.signatures["serving_default"](images=tf.constant(odd_batch))["restored"].numpy()
    assert np.abs(got - want).max() <= TOLERANCE

    # erlrestore-restore on the .keras file runs the same folded graph.
    unet.save(tmp_path / "unet.keras")
    from_keras = inference.load_restorer(tmp_path / "unet.keras")
    assert len(from_keras.folded_batch_norms) == 5 and len(batch_norms(from_keras.model)) == 5
    assert np.abs(from_keras(odd_batch) - got).max() <= TOLERANCE
    assert np.abs(from_keras(odd_batch) - want).max() <= TOLERANCE
    # Batch statistics need the batch norms: not folded then, also when rewrapping a folded restorer.
    statistics = inference.load_restorer(tmp_path / "unet.keras", batch_statistics=True)
    assert statistics.folded_batch_norms == ()
    rewrapped = inference.as_restorer(from_keras, batch_statistics=True)
    assert rewrapped.model is from_keras.model and rewrapped.folded_batch_norms == ()
    assert np.abs(rewrapped(odd_batch[:1]) - from_keras(odd_batch[:1])).max() > 0.01  # batch statistics used
    # In-memory models are not folded by default.
    assert inference.restorer_from_model(unet).folded_batch_norms == ()


def test_onnx_export_records_the_folding(unet, odd_batch, tmp_path):
    pytest.importorskip("tf2onnx")
    ort = pytest.importorskip("onnxruntime")

    def metadata_and_output(model, name):
        session = ort.InferenceSession(f"{export.export_onnx(model, tmp_path, name=name)}/model.onnx",
                                       providers=["CPUExecutionProvider"])
        return session.get_modelmeta().custom_metadata_map, session.run(["restored"], {"images": odd_batch})[0]

    metadata, got = metadata_and_output(unet, "unet")
    assert metadata[export.ONNX_FOLDED_KEY] == "5"
    assert np.abs(got - np.clip(outputs(unet, odd_batch), 0.0, 1.0)).max() <= 1e-4  # test_export_onnx's tolerance
    image = keras.Input((None, None, 3))
    plain = keras.Model(image, keras.layers.Conv2D(3, 1, name="conv")(image))  # nothing to fold
    assert metadata_and_output(plain, "plain")[0][export.ONNX_FOLDED_KEY] == "0"


@pytest.mark.parametrize("damage", ["wrong", "nan"])
def test_export_and_loading_never_use_an_inference_graph_that_fails_its_check(unet, odd_batch, tmp_path, monkeypatch,
                                                                              damage):
    # optimize() made to return a rewritten model whose first folded convolution is wrong (its kernel doubled) or
    # gives NaN: the verification must keep the model as it is for the exporters and for a loaded model file.
    real_optimize = inference_graph.optimize

    def damaged_optimize(model):
        result = real_optimize(model)
        kernel = result.model.get_layer("enc_1_conv").kernel  # a new layer of the rewritten model only
        kernel.assign(kernel.numpy() * 2.0 if damage == "wrong" else np.full(kernel.shape, np.nan, np.float32))
        return result

    monkeypatch.setattr(inference_graph, "optimize", damaged_optimize)
    want = np.clip(outputs(unet, odd_batch), 0.0, 1.0)
    checked = inference.verified_inference_graph(unet)
    assert checked.model is unet and checked.folded == checked.phased == ()
    assert np.isnan(checked.max_difference) if damage == "nan" else checked.max_difference > TOLERANCE

    version = export.export_savedmodel(unet, tmp_path / "sm", name="unet")
    loaded = tf.saved_model.load(version)
    assert any("moving_" in variable.name for variable in loaded.variables)  # the batch norms were kept
    got = loaded.signatures["serving_default"](images=tf.constant(odd_batch))["restored"].numpy()
    assert np.isfinite(got).all() and np.abs(got - want).max() <= TOLERANCE

    unet.save(tmp_path / "unet.keras")
    restorer = inference.load_restorer(tmp_path / "unet.keras")
    assert restorer.folded_batch_norms == restorer.phased_convolutions == ()
    restored = restorer(odd_batch)
    assert np.isfinite(restored).all() and np.abs(restored - want).max() <= TOLERANCE
