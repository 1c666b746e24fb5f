"""Tests for erlrestore.models (MEMD variants, ERL-Net CLGD/MLGD, C2C, feature outputs)."""

import dataclasses
import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from erlrestore.layers import FeatureFusion
from erlrestore.models import (
    MEMDConfig,
    build_clean_to_clean,
    build_erlnet,
    build_memd,
    config_from_model,
    count_params,
    encoder_feature_model,
    entangled_levels,
    erlnet_feature_model,
    erlnet_from_memd,
    memd_config,
)
from erlrestore.models.presets import TINY_MEMD as TINY


def tiny(variant="MEMD", **overrides):
    return memd_config(variant, **{**TINY, **overrides})


def randomize(model, seed=0):
    """Random weights, so that identity-at-init cannot make comparisons pass."""
    rng = np.random.default_rng(seed)
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.3, size=tuple(weight.shape)).astype("float32"))
    return model


def image(shape, seed=1):
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def run(model, x):
    return keras.ops.convert_to_numpy(model(x))


def save_and_load(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        return keras.models.load_model(path)


# ------------------------------------------------------- independent counts


def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _dense(cin, cfg):
    return sum(_conv(3, cin + i * cfg.growth_rate, cfg.growth_rate) for i in range(cfg.dense_layers))


def expected_params(cfg, entanglement=None):
    """Parameter count from the architecture description, independent of the code."""
    w = [min(cfg.base_filters * 2**level, cfg.max_filters) for level in range(cfg.depth + 1)]
    grow = cfg.dense_layers * cfg.growth_rate
    all_heads = list(range(cfg.depth + 1)) if cfg.skips else [cfg.depth]

    def encoder(heads):
        total = _conv(3, 3, w[0])
        for level in range(cfg.depth + 1):
            total += _dense(w[level], cfg)
            if level in heads:
                total += _conv(1, w[level] + grow, w[level])
            if level < cfg.depth:
                total += _conv(2, w[level] + grow, w[level + 1])
        return total

    decoder = _conv(3, w[0] + grow, 3)
    for level in range(cfg.depth):
        cin = w[cfg.depth] if level == cfg.depth - 1 else w[level + 1] + grow
        decoder += _conv(2, cin, w[level]) + _dense(w[level], cfg)
        c = 2 * w[level]
        if cfg.fusion:
            hidden = c // cfg.fusion_reduction
            decoder += (c * hidden + hidden) + (hidden * c + c) + _conv(1, c, w[level])
        elif cfg.skips:
            decoder += _conv(1, c, w[level])
    total = encoder(all_heads) + decoder
    if entanglement == "MLGD":
        total += encoder(all_heads)
    elif entanglement == "CLGD":
        total += encoder([cfg.depth])
    return total


# ------------------------------------------------------------------- MEMD


@pytest.mark.parametrize("variant", ["MEMD", "MEMD-", "MEMD--"])
def test_memd_output_shape_equals_input_shape(variant):
    model = randomize(build_memd(tiny(variant)))
    for shape in [(1, 37, 53, 3), (2, 32, 32, 3), (1, 17, 40, 3)]:
        out = run(model, image(shape))
        assert out.shape == shape and out.dtype == np.float32
        assert np.isfinite(out).all()


def test_untrained_memd_with_global_residual_is_the_identity():
    x = image((1, 37, 53, 3))
    np.testing.assert_array_equal(run(build_memd(tiny()), x), x)


def _zero_output_conv(model):
    output = model.get_layer("mde").get_layer("output")
    output.kernel.assign(np.zeros(output.kernel.shape, "float32"))
    output.bias.assign(np.zeros(output.bias.shape, "float32"))
    return model


@pytest.mark.parametrize("variant", ["MEMD", "MEMD-", "MEMD--"])
@pytest.mark.parametrize("builder", ["memd", "erlnet"])
def test_global_residual_is_the_only_way_the_input_is_added_back(variant, builder):
    """The paper's nets generate the image: without the global residual, a zero last conv gives a constant image."""
    x = image((2, 21, 30, 3), seed=11)
    outputs = {}
    for residual in (False, True):
        cfg = tiny(variant, global_residual=residual)
        model = build_memd(cfg) if builder == "memd" else build_erlnet(cfg, "CLGD")
        randomize(model, seed=12)
        assert np.abs(run(model, x) - x).max() > 1e-2  # random weights: neither the identity nor constant
        assert ("global_residual" in [layer.name for layer in model.layers]) == residual
        assert config_from_model(model).global_residual == residual
        outputs[residual] = run(_zero_output_conv(model), x)
    # Without the residual the output is whatever the decoder's last conv makes: zero weights, zero image.
    np.testing.assert_array_equal(outputs[False], np.zeros_like(x))
    # With it, the same zero decoder output leaves exactly the input.
    np.testing.assert_array_equal(outputs[True], x)


def test_without_global_residual_the_last_conv_starts_random_not_zero():
    output = build_memd(tiny(global_residual=False)).get_layer("mde").get_layer("output")
    assert np.any(output.kernel.numpy())
    output = build_memd(tiny(global_residual=True)).get_layer("mde").get_layer("output")
    assert not np.any(output.kernel.numpy())  # identity at init, the correction grows from zero


def test_variants_differ_in_skips_and_fusion():
    structure = {}
    for variant in ["MEMD", "MEMD-", "MEMD--"]:
        mde = build_memd(tiny(variant)).get_layer("mde")
        structure[variant] = (
            len(mde.inputs),
            sum(isinstance(layer, FeatureFusion) for layer in mde.layers),
            sum(isinstance(layer, keras.layers.Concatenate) for layer in mde.layers),
        )
    # (decoder inputs, FUS layers, plain skip concatenations); depth 2.
    assert structure == {"MEMD": (3, 2, 0), "MEMD-": (3, 0, 2), "MEMD--": (1, 0, 0)}


@pytest.mark.parametrize("variant", ["MEMD", "MEMD-"])
def test_skip_features_reach_the_output(variant):
    mde = randomize(build_memd(tiny(variant)).get_layer("mde"))
    rng = np.random.default_rng(2)
    features = [rng.normal(size=(1, 8 // 2**i, 8 // 2**i, c)).astype("float32") for i, c in enumerate([4, 8, 16])]
    base = run(mde, features)
    features[0] = features[0] + 1.0
    assert np.abs(run(mde, features) - base).max() > 1e-3


def test_memd_config_variants_and_errors():
    assert (memd_config("MEMD").skips, memd_config("MEMD").fusion) == (True, True)
    assert (memd_config("MEMD-").skips, memd_config("MEMD-").fusion) == (True, False)
    assert (memd_config("MEMD--").skips, memd_config("MEMD--").fusion) == (False, False)
    assert MEMDConfig().widths() == [32, 64, 128, 256, 256]
    assert MEMDConfig().multiple == 16
    with pytest.raises(ValueError, match=r"unknown MEMD variant 'MEMD---'; choose one of \['MEMD', 'MEMD-', 'MEMD--'\]"):
        memd_config("MEMD---")
    with pytest.raises(ValueError, match="fusion=True needs skips=True"):
        MEMDConfig(skips=False, fusion=True)
    with pytest.raises(ValueError, match="depth must be a positive integer, got 0"):
        MEMDConfig(depth=0)
    with pytest.raises(ValueError, match=r"norm must be one of .* got 'group'"):
        MEMDConfig(norm="group")


@pytest.mark.parametrize("variant", ["MEMD", "MEMD-", "MEMD--"])
def test_config_from_model_recovers_the_config(variant):
    cfg = tiny(variant, norm="instance")
    assert config_from_model(build_memd(cfg)) == cfg
    capped = tiny(variant, max_filters=8)
    assert config_from_model(build_memd(capped)) == capped


# ----------------------------------------------------------------- ERL-Net


def test_entangled_levels_clgd_vs_mlgd():
    cfg = tiny()
    assert entangled_levels(cfg, "CLGD") == [2]
    assert entangled_levels(cfg, "MLGD") == [0, 1, 2]
    for entanglement, count in [("CLGD", 1), ("MLGD", cfg.depth + 1)]:
        model = build_erlnet(cfg, entanglement)
        adds = [layer.name for layer in model.layers if layer.name.startswith("entangle_")]
        assert len(adds) == count
        assert {m.name for m in model.layers if isinstance(m, keras.Model)} == {"men", "ren", "mde"}
    assert entangled_levels(tiny("MEMD--"), "CLGD") == [0]
    with pytest.raises(ValueError, match=r"MLGD entangles the skip embeddings, but this config has skips=False"):
        entangled_levels(tiny("MEMD--"), "MLGD")
    with pytest.raises(ValueError, match=r"unknown entanglement 'mlgd'; choose one of \('CLGD', 'MLGD'\)"):
        build_erlnet(cfg, "mlgd")


def test_ren_has_mens_weight_shapes():
    mlgd = build_erlnet(tiny(), "MLGD")
    men = [(w.path, tuple(w.shape)) for w in mlgd.get_layer("men").weights]
    ren = [(w.path, tuple(w.shape)) for w in mlgd.get_layer("ren").weights]
    assert ren == men
    # CLGD: REN is MEN without the (unused) skip embedding heads.
    clgd = build_erlnet(tiny(), "CLGD")
    ren = [(w.path, tuple(w.shape)) for w in clgd.get_layer("ren").weights]
    assert ren == [item for item in men if not item[0].startswith(("embed_0/", "embed_1/"))]


@pytest.mark.parametrize("entanglement", ["CLGD", "MLGD"])
def test_erlnet_output_shape_equals_input_shape(entanglement):
    model = randomize(build_erlnet(tiny(), entanglement))
    for shape in [(1, 37, 53, 3), (2, 32, 32, 3)]:
        assert run(model, image(shape)).shape == shape


@pytest.mark.parametrize("builder", ["memd", "erlnet"])
def test_keras_file_round_trip_gives_identical_outputs(builder):
    cfg = tiny()
    model = build_memd(cfg) if builder == "memd" else build_erlnet(cfg, "MLGD")
    randomize(model)
    x = image((1, 21, 30, 3))
    expected = run(model, x)
    assert np.abs(expected - x).max() > 1e-2  # not the identity
    loaded = save_and_load(model)
    np.testing.assert_array_equal(run(loaded, x), expected)
    assert config_from_model(loaded) == cfg
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("entanglement", ["CLGD", "MLGD"])
def test_erlnet_from_memd_reproduces_the_memd_exactly(entanglement):
    memd = randomize(build_memd(tiny()), seed=3)
    erl = erlnet_from_memd(memd, entanglement)
    x = image((2, 19, 26, 3))
    memd_out = run(memd, x)
    assert np.abs(memd_out - x).max() > 1e-2
    np.testing.assert_array_equal(run(erl, x), memd_out)
    for sub in ("men", "mde"):
        for a, b in zip(memd.get_layer(sub).weights, erl.get_layer(sub).weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    ren = erl.get_layer("ren")
    for layer in ren.layers:
        if layer.name.startswith("embed_"):
            assert all(not np.any(w.numpy()) for w in layer.weights), layer.name
    # REN's trunk is fresh, not a copy of MEN's.
    assert not np.array_equal(ren.get_layer("stem").kernel.numpy(), erl.get_layer("men").get_layer("stem").kernel.numpy())


def test_entanglement_acts_only_at_entangled_levels():
    memd = randomize(build_memd(tiny()), seed=4)
    x = image((1, 16, 24, 3))
    base = run(memd, x)
    mlgd, clgd = erlnet_from_memd(memd, "MLGD"), erlnet_from_memd(memd, "CLGD")
    # A residual at skip level 0 changes the MLGD output ...
    mlgd.get_layer("ren").get_layer("embed_0").bias.assign(np.ones(4, "float32"))
    assert np.abs(run(mlgd, x) - base).max() > 1e-3
    # ... while CLGD's REN has no head there, only at the bottleneck.
    with pytest.raises(ValueError, match="embed_0"):
        clgd.get_layer("ren").get_layer("embed_0")
    clgd.get_layer("ren").get_layer("embed_2").bias.assign(np.ones(16, "float32"))
    assert np.abs(run(clgd, x) - base).max() > 1e-3


def test_feature_models_give_entangled_sums_and_targets():
    cfg = tiny()
    memd = randomize(build_memd(cfg), seed=5)
    erl = erlnet_from_memd(memd, "MLGD")
    x = image((1, 37, 53, 3))  # padded to 40 x 56
    levels = entangled_levels(cfg, "MLGD")
    targets = encoder_feature_model(memd, levels)(x)["features"]
    assert [tuple(t.shape) for t in targets] == [(1, 40, 56, 4), (1, 20, 28, 8), (1, 10, 14, 16)]
    out = erlnet_feature_model(erl)(x)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out["restored"]), run(memd, x))
    # Zero REN: the entangled sums are MEN's features.
    for feature, target in zip(out["features"], targets):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(feature), keras.ops.convert_to_numpy(target))
    erl.get_layer("ren").get_layer("embed_1").bias.assign(np.full(8, 0.5, "float32"))
    shifted = erlnet_feature_model(erl)(x)["features"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(shifted[1]), keras.ops.convert_to_numpy(targets[1]) + 0.5, atol=1e-6
    )
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(shifted[0]), keras.ops.convert_to_numpy(targets[0]))
    with pytest.raises(ValueError, match="has no 'entangle_<i>' layers; pass an ERL-Net"):
        erlnet_feature_model(memd)


def test_erlnet_from_memd_rejects_wrong_models():
    erl = build_erlnet(tiny(), "CLGD")
    with pytest.raises(ValueError, match="already has a residual encoder 'ren'; pass a MEMD"):
        erlnet_from_memd(erl)
    with pytest.raises(ValueError, match="cannot copy 'men' from 'memd': its weight shapes do not match"):
        erlnet_from_memd(build_memd(tiny()), config=tiny(growth_rate=8))


def test_clean_to_clean_has_no_global_residual():
    cfg = tiny()
    c2c = build_clean_to_clean(cfg)
    assert config_from_model(c2c) == dataclasses.replace(cfg, global_residual=False)
    assert "global_residual" not in [layer.name for layer in c2c.layers]
    x = image((1, 16, 16, 3))
    assert np.abs(run(c2c, x) - x).max() > 1e-3  # the untrained C2C is not the identity
    features = encoder_feature_model(c2c, entangled_levels(cfg, "CLGD"))(x)["features"]
    assert [tuple(f.shape) for f in features] == [(1, 4, 4, 16)]
    # Whatever the restoration net's setting, C2C generates its image: a zero last conv gives zero.
    for residual in (True, False):
        c2c = randomize(build_clean_to_clean(tiny(global_residual=residual)), seed=13)
        np.testing.assert_array_equal(run(_zero_output_conv(c2c), x), np.zeros_like(x))


# ------------------------------------------------------------ param counts


@pytest.mark.parametrize("variant", ["MEMD", "MEMD-", "MEMD--"])
def test_tiny_parameter_counts_match_the_architecture(variant):
    cfg = tiny(variant)
    assert count_params(build_memd(cfg)) == expected_params(cfg)
    for entanglement in ["CLGD", "MLGD"] if cfg.skips else ["CLGD"]:
        assert count_params(build_erlnet(cfg, entanglement)) == expected_params(cfg, entanglement)


def test_default_parameter_counts(capsys):
    cfg = MEMDConfig()
    counts = {
        "MEMD": count_params(build_memd(cfg)),
        "ERL-Net (MLGD)": count_params(build_erlnet(cfg, "MLGD")),
        "ERL-Net (CLGD)": count_params(build_erlnet(cfg, "CLGD")),
    }
    with capsys.disabled():
        print("\ndefault parameter counts:", counts)
    assert counts == {
        "MEMD": expected_params(cfg),
        "ERL-Net (MLGD)": expected_params(cfg, "MLGD"),
        "ERL-Net (CLGD)": expected_params(cfg, "CLGD"),
    }
    assert counts["MEMD"] == 2_486_259 and counts["ERL-Net (MLGD)"] == 3_796_051


def test_zero_ren_heads_still_let_the_whole_ren_learn():
    memd = randomize(build_memd(tiny()), seed=6)
    erl = erlnet_from_memd(memd, "CLGD")
    ren = erl.get_layer("ren")
    x, y = image((1, 16, 16, 3), seed=7), image((1, 16, 16, 3), seed=8)

    def grads():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(erl(x) - y))
        return {w.path: g for w, g in zip(ren.trainable_weights, tape.gradient(loss, ren.trainable_weights))}

    first = grads()
    assert np.any(first["embed_2/kernel"].numpy())  # the zero head gets a gradient at once
    assert not np.any(first["stem/kernel"].numpy())  # the trunk waits for the head
    ren.get_layer("embed_2").kernel.assign(np.full((1, 1, 24, 16), 0.01, "float32"))  # "after one update"
    second = grads()
    dead = [path for path, g in second.items() if not np.any(g.numpy())]
    assert dead == []
