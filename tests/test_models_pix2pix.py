"""Tests for the generative family: UNet-N / En/Decoder-N generators and the PatchGAN."""

import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.layers import BatchNormalization, Conv2D, Conv2DTranspose, InfoAccum, SubPixelUpsample
from erlrestore.models import (
    GeneratorConfig,
    build_generator,
    build_patchgan,
    count_params,
    generator_config,
    init_pix2pix_weights,
    patchgan_output_size,
)


def _tiny(**fields):
    fields.setdefault("base_filters", 4)
    fields.setdefault("max_filters", 16)
    return GeneratorConfig(**fields)


def _randomize(model, seed=0, scale=0.2):
    """Random weights everywhere (BN moving variances kept positive)."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        values = rng.normal(0.0, scale, size=tuple(weight.shape))
        if "moving_variance" in weight.path:
            values = np.abs(values) + 0.5
        weight.assign(values.astype("float32"))


def _layers_of(model, cls):
    return [layer for layer in model.layers if type(layer) is cls]


def _roundtrip(model, inputs):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(inputs, training=False)),
        keras.ops.convert_to_numpy(model(inputs, training=False)),
    )
    return loaded


# ------------------------------------------------------------------ generator


@pytest.mark.parametrize("kind", ["unet", "endec"])
@pytest.mark.parametrize("levels", [1, 3, 5, 8])
def test_generator_keeps_odd_sizes_and_unit_range(kind, levels):
    base = 2 if levels == 8 else 4
    model = build_generator(_tiny(kind=kind, levels=levels, base_filters=base, max_filters=8, norm="instance"))
    shape = (1, 20, 28, 3) if levels == 8 else (2, 19, 23, 3)
    # Large weights saturate tanh, so the [-1, 1] -> [0, 1] mapping is exercised at its ends.
    _randomize(model, seed=levels, scale=1.0)
    x = np.random.default_rng(levels).uniform(size=shape).astype("float32")
    y = keras.ops.convert_to_numpy(model(x, training=False))
    assert y.shape == shape
    assert y.min() >= 0.0 and y.max() <= 1.0
    assert y.max() - y.min() > 0.5


def test_generator_maps_unit_range_to_signed_and_back():
    model = build_generator(_tiny(levels=2, norm="none"))
    _randomize(model)
    probe = keras.Model(
        model.input, [model.get_layer("to_signed").output, model.get_layer("tanh").output, model.output]
    )
    x = np.random.default_rng(1).uniform(size=(1, 8, 8, 3)).astype("float32")
    signed, tanh, out = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_allclose(signed, 2 * x - 1, atol=1e-6)
    np.testing.assert_allclose(out, (tanh + 1) / 2, atol=1e-6)


@pytest.mark.parametrize("kind", ["unet", "endec"])
def test_global_residual_adds_the_tanh_output_to_the_input(kind):
    model = build_generator(_tiny(kind=kind, levels=2, norm="none", global_residual=True))
    _randomize(model)
    probe = keras.Model(model.input, [model.get_layer("tanh").output, model.output])
    x = np.random.default_rng(2).uniform(size=(1, 11, 9, 3)).astype("float32")
    tanh, out = (keras.ops.convert_to_numpy(t) for t in probe(x))
    np.testing.assert_allclose(out, x + tanh[:, :11, :9], atol=1e-6)
    # Zero weights in the last layer: tanh(0) = 0, so the residual generator starts at the identity.
    last = model.get_layer("dec_0_up" if kind == "unet" else "output_conv")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), x, atol=1e-6)
    assert "global_residual" not in {layer.name for layer in build_generator(_tiny(kind=kind, levels=2)).layers}


def test_generator_any_size_crop_matches_padded_run():
    # A size that is already a multiple of 2**N is not padded; an odd crop of it is.
    model = build_generator(_tiny(levels=3, norm="none"))
    _randomize(model)
    x = np.random.default_rng(2).uniform(size=(1, 16, 24, 3)).astype("float32")
    assert model.get_layer("pad").multiple == 8
    padded = keras.Model(model.inputs, model.get_layer("pad").output)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(padded(x)), x)  # a multiple goes in as it is
    out_full = keras.ops.convert_to_numpy(model(x))
    assert out_full.shape == x.shape
    # The odd crop is mirrored at the bottom/right up to 16x24, run, and the top-left 13x21 kept:
    # exactly the padded run done by hand (not just the right shape).
    crop = x[:, :13, :21]
    out_crop = keras.ops.convert_to_numpy(model(crop))
    assert out_crop.shape == (1, 13, 21, 3)
    by_hand = np.pad(crop, ((0, 0), (0, 3), (0, 3), (0, 0)), mode="reflect")
    np.testing.assert_allclose(out_crop, keras.ops.convert_to_numpy(model(by_hand))[:, :13, :21], rtol=0, atol=1e-6)
    # Padding elsewhere (top/left, cropping the bottom-right) would give other pixels.
    elsewhere = np.pad(crop, ((0, 0), (3, 0), (3, 0), (0, 0)), mode="reflect")
    assert np.abs(out_crop - keras.ops.convert_to_numpy(model(elsewhere))[:, 3:, 3:]).max() > 1e-3


def test_pix2pix_unet8_layout():
    config = generator_config("pix2pix")
    assert config == GeneratorConfig(levels=8, kind="unet", norm="batch", dropout=0.5)
    model = build_generator(config)
    encoder = [model.get_layer(f"enc_{k}_conv") for k in range(8)]
    assert [conv.filters for conv in encoder] == [64, 128, 256, 512, 512, 512, 512, 512]
    assert all(conv.kernel_size == (4, 4) and conv.strides == (2, 2) for conv in encoder)
    decoder = [model.get_layer(f"dec_{k}_up") for k in range(7, -1, -1)]
    assert [conv.filters for conv in decoder] == [512, 512, 512, 512, 256, 128, 64, 3]
    assert all(type(conv) is Conv2D for conv in encoder)  # erlrestore's: faster training steps, Keras' weights
    assert all(type(conv) is Conv2DTranspose and conv.strides == (2, 2) for conv in decoder)
    # Norm on encoder levels 1..6 only (not the first, not the innermost), on every inner decoder block.
    norms = sorted(layer.name for layer in _layers_of(model, BatchNormalization))
    assert norms == sorted([f"enc_{k}_norm" for k in range(1, 7)] + [f"dec_{k}_norm" for k in range(1, 8)])
    assert [layer.negative_slope for layer in _layers_of(model, keras.layers.LeakyReLU)] == [0.2] * 7
    assert count_params(model) == 54_424_387


@pytest.mark.parametrize("levels", [1, 3, 5])
def test_unet_concatenates_mirrored_encoder_features(levels):
    model = build_generator(_tiny(levels=levels))
    concats = _layers_of(model, keras.layers.Concatenate)
    assert sorted(layer.name for layer in concats) == sorted(f"dec_{k}_concat" for k in range(1, levels))
    for k in range(1, levels):
        skip_layer = model.get_layer(f"enc_{k - 1}_norm" if 0 < k - 1 < levels - 1 else f"enc_{k - 1}_conv")
        skip, up = model.get_layer(f"dec_{k}_concat").input
        assert skip is skip_layer.output
        assert skip.shape[-1] == up.shape[-1] == model.get_layer(f"enc_{k - 1}_conv").filters
    assert not _layers_of(model, keras.layers.MaxPooling2D) and not _layers_of(model, keras.layers.UpSampling2D)


@pytest.mark.parametrize("levels", [1, 3, 5])
def test_endec_has_no_skips_and_uses_pool_and_nearest_upsampling(levels):
    model = build_generator(_tiny(kind="endec", levels=levels))
    assert not _layers_of(model, keras.layers.Concatenate)
    assert not _layers_of(model, keras.layers.Conv2DTranspose)
    pools = _layers_of(model, keras.layers.MaxPooling2D)
    ups = _layers_of(model, keras.layers.UpSampling2D)
    assert len(pools) == len(ups) == levels
    assert all(p.pool_size == (2, 2) for p in pools)
    assert all(u.size == (2, 2) and u.interpolation == "nearest" for u in ups)
    assert [model.get_layer(f"enc_{k}_conv").kernel_size for k in range(levels)] == [(3, 3)] * levels


@pytest.mark.parametrize("kind", ["unet", "endec"])
def test_only_unet_output_bypasses_the_bottleneck(kind):
    # A model from the bottleneck to the output is only well defined when nothing else
    # (no skip connection) reaches the decoder; for the U-Net Keras refuses the graph.
    model = build_generator(_tiny(kind=kind, levels=3))
    bottleneck = model.get_layer("enc_2_pool" if kind == "endec" else "enc_2_conv").output
    if kind == "endec":
        decoder = keras.Model(bottleneck, model.get_layer("tanh").output)
        assert decoder.inputs[0].shape[1:] == (None, None, 16)
    else:
        with pytest.raises(ValueError, match="not connected to `inputs`"):
            keras.Model(bottleneck, model.get_layer("tanh").output)


@pytest.mark.parametrize("kind", ["unet", "endec"])
def test_info_accum_positions(kind):
    config = _tiny(kind=kind, levels=3, info_accum_layers=2, info_accum_growth=3, info_accum_positions=[2, 0])
    assert config.info_accum_positions == (0, 2)
    model = build_generator(config)
    modules = _layers_of(model, InfoAccum)
    assert sorted(m.name for m in modules) == ["info_accum_0", "info_accum_2"]
    first = model.get_layer("info_accum_0")
    assert first.input is model.get_layer("to_signed").output  # before the generator: on the image
    assert (first.num_layers, first.growth_rate, first.norm) == (2, 3, "batch")
    assert model.get_layer("enc_0_conv").input.shape[-1] == 3 + 3 * 3 * 2
    # Position 2 reads encoder level 1's output and feeds encoder level 2.
    level1_width = model.get_layer("enc_1_conv").filters
    assert model.get_layer("info_accum_2").input.shape[-1] == level1_width
    assert model.get_layer("enc_2_conv").input.shape[-1] == level1_width + 18
    # info_accum_layers == 0: positions are ignored.
    assert not _layers_of(build_generator(_tiny(kind=kind, levels=3, info_accum_positions=(1,))), InfoAccum)


@pytest.mark.parametrize("kind", ["unet", "endec"])
def test_subpixel_replaces_top_upsampling_only(kind):
    plain = build_generator(_tiny(kind=kind, levels=3))
    sub = build_generator(_tiny(kind=kind, levels=3, subpixel=True))
    assert not _layers_of(plain, SubPixelUpsample)
    (layer,) = _layers_of(sub, SubPixelUpsample)
    assert layer.name == "dec_0_up" and layer.scale == 2
    assert layer.filters == (3 if kind == "unet" else 4)
    if kind == "unet":
        assert len(_layers_of(sub, Conv2DTranspose)) == len(_layers_of(plain, Conv2DTranspose)) - 1
    else:
        assert len(_layers_of(sub, keras.layers.UpSampling2D)) == 2
    x = np.random.default_rng(5).uniform(size=(1, 11, 13, 3)).astype("float32")
    assert sub(x).shape == (1, 11, 13, 3)


@pytest.mark.parametrize("kind", ["unet", "endec"])
@pytest.mark.parametrize(
    "levels, fields, expected",
    [
        # pix2pix's rule: num_downs - 5 blocks directly above the innermost (N-1), never it nor the outer four.
        (8, {}, [6, 5, 4]),
        (7, {}, [5, 4]),
        (6, {}, [4]),
        (5, {}, []),
        (4, {}, []),
        (1, {}, []),
        # An explicit count starts at N-2 and never reaches the innermost block or block 0.
        (5, {"dropout_blocks": 1}, [3]),
        (5, {"dropout_blocks": 9}, [3, 2, 1]),
        (8, {"dropout_blocks": 0}, []),
        (2, {"dropout_blocks": 3}, []),
        (8, {"dropout": 0.0}, []),
    ],
)
def test_dropout_only_in_configured_levels(kind, levels, fields, expected):
    config = _tiny(kind=kind, levels=levels, base_filters=2, max_filters=4, **fields)
    assert config.dropout_levels() == expected
    model = build_generator(config)
    dropouts = _layers_of(model, keras.layers.Dropout)
    assert sorted(d.name for d in dropouts) == sorted(f"dec_{k}_dropout" for k in expected)
    assert all(d.rate == config.dropout for d in dropouts)


def test_pix2pix_unet8_dropout_matches_the_pytorch_generator():
    """pix2pix UnetGenerator(num_downs=8): Dropout(0.5) after the up-convolution + norm of the three
    512-channel blocks next to the innermost one, whose up-convolutions output 512 channels at 1/64, 1/32,
    1/16 of the input; none in the innermost (output at 1/128) nor in the 256/128/64-channel blocks."""
    model = build_generator(GeneratorConfig())
    dropouts = _layers_of(model, keras.layers.Dropout)
    assert sorted(d.name for d in dropouts) == ["dec_4_dropout", "dec_5_dropout", "dec_6_dropout"]
    for k in (4, 5, 6):
        assert model.get_layer(f"dec_{k}_up").filters == 512
        assert model.get_layer(f"dec_{k}_dropout").rate == 0.5
    assert model.get_layer("dec_3_up").filters == 256  # first block without dropout going outward
    assert GeneratorConfig(levels=5).dropout_levels() == []


def test_dropout_active_only_when_training():
    model = build_generator(_tiny(levels=3, norm="none", dropout=0.5, dropout_blocks=1))
    _randomize(model)
    x = np.random.default_rng(6).uniform(size=(1, 16, 16, 3)).astype("float32")
    a, b = (keras.ops.convert_to_numpy(model(x, training=False)) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(0)
    c = keras.ops.convert_to_numpy(model(x, training=True))
    assert np.abs(c - a).max() > 1e-4


@pytest.mark.parametrize(
    "config",
    [
        dict(kind="unet", levels=3, norm="batch", info_accum_layers=2, info_accum_positions=(0, 1), subpixel=True),
        dict(kind="endec", levels=2, norm="instance", info_accum_layers=1, subpixel=True),
    ],
)
def test_generator_keras_roundtrip(config):
    model = build_generator(_tiny(**config))
    _randomize(model, seed=8)
    x = np.random.default_rng(8).uniform(size=(2, 13, 17, 3)).astype("float32")
    loaded = _roundtrip(model, x)
    assert count_params(loaded) == count_params(model)


def test_generator_config_names():
    assert generator_config("unet5") == GeneratorConfig(levels=5)
    row = generator_config("unet5_infoaccum15_subpix")
    assert (row.kind, row.levels, row.info_accum_layers, row.info_accum_positions, row.subpixel) == (
        "unet",
        5,
        15,
        (0,),
        True,
    )
    assert generator_config("unet5_infoaccum15") == GeneratorConfig(levels=5, info_accum_layers=15)
    assert generator_config("endec5") == GeneratorConfig(kind="endec", levels=5)
    assert generator_config("endec3", norm="none") == GeneratorConfig(kind="endec", levels=3, norm="none")
    with pytest.raises(ValueError, match="unknown generator 'unet9'"):
        generator_config("unet9")


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"levels": 0}, r"levels must be an integer in 1\.\.8, got 0"),
        ({"levels": 9}, r"levels must be an integer in 1\.\.8, got 9"),
        ({"kind": "resnet"}, r"kind must be one of \('unet', 'endec'\), got 'resnet'"),
        ({"norm": "layer"}, r"norm must be one of \('batch', 'instance', 'none'\), got 'layer'"),
        ({"dropout": 1.0}, r"dropout must be a rate in \[0, 1\), got 1\.0"),
        ({"levels": 3, "info_accum_positions": (3,)}, r"info_accum_positions must be non-empty integers in 0\.\.2"),
        ({"info_accum_positions": (1, 1)}, r"info_accum_positions has duplicates: \(1, 1\)"),
        ({"info_accum_layers": -1}, r"info_accum_layers must be a non-negative integer, got -1"),
        ({"dropout_blocks": -1}, r"dropout_blocks must be a non-negative integer, got -1"),
    ],
)
def test_generator_config_rejects_bad_values(fields, message):
    with pytest.raises(ValueError, match=message):
        GeneratorConfig(**fields)


# ------------------------------------------------------------------- PatchGAN


def test_patchgan_output_size_formula():
    # floor((s - 2) / stride) + 1 per 4x4 conv with padding 1: 256 -> 128, 64, 32, 31, 30.
    assert patchgan_output_size(256) == 30
    assert patchgan_output_size(64) == 6
    assert patchgan_output_size(70, num_layers=3) == (((70 - 2) // 2 + 1 - 2) // 1 + 1 - 2) // 1 + 1


def test_patchgan_layout_and_patch_map_on_64px():
    model = build_patchgan(base_filters=4)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [4, 8, 16, 32, 1]
    assert [c.strides for c in convs] == [(2, 2), (2, 2), (2, 2), (1, 1), (1, 1)]
    assert all(c.kernel_size == (4, 4) for c in convs)
    assert convs[-1].activation is keras.activations.linear
    assert sorted(layer.name for layer in _layers_of(model, BatchNormalization)) == [
        "norm_1",
        "norm_2",
        "norm_3",
    ]
    a, b = np.zeros((2, 64, 64, 3), "float32"), np.ones((2, 64, 64, 3), "float32")
    assert model([a, b]).shape == (2, 6, 6, 1)
    assert model([a[:, :50, :37], b[:, :50, :37]]).shape == (
        2,
        patchgan_output_size(50),
        patchgan_output_size(37),
        1,
    )


def test_patchgan_receptive_field_is_70_and_conditioned_on_input():
    model = build_patchgan(base_filters=2, norm="none")
    _randomize(model, scale=0.5)
    rng = np.random.default_rng(9)
    source = tf.constant(rng.uniform(size=(1, 128, 128, 3)).astype("float32"))
    candidate = tf.constant(rng.uniform(size=(1, 128, 128, 3)).astype("float32"))
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([source, candidate])
        logit = model([source, candidate])[0, 7, 7, 0]
    for grad in (tape.gradient(logit, source), tape.gradient(logit, candidate)):
        rows, cols = np.nonzero(np.abs(grad.numpy()[0]).sum(-1))
        assert (rows.min(), rows.max(), cols.min(), cols.max()) == (33, 102, 33, 102)


def test_patchgan_keras_roundtrip():
    model = build_patchgan(base_filters=4, norm="batch")
    _randomize(model, seed=10)
    rng = np.random.default_rng(10)
    inputs = [rng.uniform(size=(1, 40, 36, 3)).astype("float32") for _ in range(2)]
    _roundtrip(model, inputs)


def test_patchgan_rejects_bad_arguments():
    with pytest.raises(ValueError, match="build_patchgan: num_layers must be an integer >= 2, got 1"):
        build_patchgan(num_layers=1)
    with pytest.raises(ValueError, match=r"build_patchgan: norm must be one of \('batch', 'instance', 'none'\), got 'spectral'"):
        build_patchgan(norm="spectral")


# ------------------------------------------------------------ initialisation


def _by_kind(model, kind):
    return [w for w in model.weights if w.path.rsplit("/", 1)[-1] == kind]


def _pooled(weights):
    return np.concatenate([np.ravel(keras.ops.convert_to_numpy(w)) for w in weights])


@pytest.mark.parametrize("network", ["generator", "discriminator"])
def test_init_pix2pix_weights_draws_pix2pix_normal_init(network):
    """pix2pix init_weights('normal', 0.02): conv kernels N(0, 0.02), biases 0, BN scales N(1, 0.02), shifts 0."""
    if network == "generator":
        config = GeneratorConfig(levels=5, base_filters=32, info_accum_layers=2, subpixel=True)
        model = build_generator(config)
        big = model.get_layer("enc_3_conv").kernel  # 4x4x128x256
    else:
        model = build_patchgan()
        big = model.get_layer("conv_3").kernel  # 4x4x256x512
    moving_before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights if "moving_" in w.path]
    glorot = keras.ops.convert_to_numpy(big).copy()  # Keras' default: uniform, |w| <= sqrt(6 / (fan_in + fan_out))
    init_pix2pix_weights(model, seed=7)
    values = keras.ops.convert_to_numpy(big)
    assert values.size > 500_000
    assert abs(float(values.std()) - 0.02) < 0.002 and abs(float(values.mean())) < 0.001
    # Normal, not uniform: more than 4 sigma out in half a million draws, beyond any Glorot bound here.
    assert np.abs(values).max() > 0.08 > 2 * np.abs(glorot).max()
    kernels = _pooled(_by_kind(model, "kernel"))
    assert abs(float(kernels.std()) - 0.02) < 0.002
    gammas = _pooled(_by_kind(model, "gamma"))
    assert gammas.size > 500
    assert abs(float(gammas.mean()) - 1.0) < 0.005 and abs(float(gammas.std()) - 0.02) < 0.002
    for kind in ("bias", "beta"):
        assert _by_kind(model, kind)
        assert not np.any(_pooled(_by_kind(model, kind)))
    moving_after = [keras.ops.convert_to_numpy(w) for w in model.weights if "moving_" in w.path]
    assert moving_after and all(np.array_equal(a, b) for a, b in zip(moving_before, moving_after))
    if network == "generator":  # sub-layers of InfoAccum and SubPixelUpsample are re-drawn too
        sub = [w for w in model.weights if w.path.startswith(("info_accum_0/", "dec_0_up/"))]
        sub_kernels = _pooled([w for w in sub if w.path.endswith("/kernel")])
        assert sub_kernels.size > 1000 and abs(float(sub_kernels.std()) - 0.02) < 0.003
        assert not np.any(_pooled([w for w in sub if w.path.endswith("/bias")]))


def test_init_pix2pix_weights_is_seeded():
    config = _tiny(levels=3, norm="instance")
    a, b, c = (build_generator(config) for _ in range(3))
    init_pix2pix_weights(a, seed=(1, 0))
    init_pix2pix_weights(b, seed=(1, 0))
    init_pix2pix_weights(c, seed=(1, 1))
    for wa, wb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(wa), keras.ops.convert_to_numpy(wb))
    assert not np.array_equal(_pooled(_by_kind(a, "kernel")), _pooled(_by_kind(c, "kernel")))
