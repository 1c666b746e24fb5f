"""Tests for erlrestore.layers (every layer also goes through layer_testing.check_layer)."""

import glob
import importlib
import inspect
import os
import pkgutil
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import erlrestore.layers
from erlrestore.layers import CropToMatch, DenseBlock, FeatureFusion, PadToMultiple
from layer_testing import check_layer


def _conv_same(x, conv):
    """Reference 3x3/1x1 'same' convolution with a Conv2D layer's weights."""
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in conv.weights)
    return tf.nn.conv2d(x, kernel, strides=1, padding="SAME").numpy() + bias


# ------------------------------------------------------------ every layer


def _layer_classes_by_module():
    """{submodule name: [the keras Layer classes it defines]} over the modules of the erlrestore.layers package."""
    found = {}
    for info in pkgutil.iter_modules(erlrestore.layers.__path__):
        module = importlib.import_module(f"erlrestore.layers.{info.name}")
        found[info.name] = [
            cls for name, cls in vars(module).items()
            if inspect.isclass(cls) and issubclass(cls, keras.layers.Layer) and cls.__module__.startswith("erlrestore.")
        ]
    return found


def test_every_layer_has_its_own_module_registration_config_and_standard_check():
    """Issue 23: one layer per file, each exported, registered as ``erlrestore>Name`` (what saved models name),
    serialized under the public module, with a get_config, and run through layer_testing.check_layer."""
    by_module = _layer_classes_by_module()
    for module, classes in by_module.items():
        assert len(classes) <= 1, f"erlrestore/layers/{module}.py defines several layers: {classes}"
    defined = {cls for classes in by_module.values() for cls in classes}
    assert defined == set(erlrestore.layers.LAYERS)
    tests = "".join(open(path, encoding="utf-8").read()
                    for path in glob.glob(os.path.join(os.path.dirname(__file__), "test_layers*.py")))
    checked = set(re.findall(r"check_layer\(\s*(\w+),", tests))
    for cls in defined:
        name = cls.__name__
        assert getattr(erlrestore.layers, name) is cls and name in erlrestore.layers.__all__
        assert keras.saving.get_registered_name(cls) == f"erlrestore>{name}"
        assert keras.saving.get_registered_object(f"erlrestore>{name}") is cls
        assert cls.__module__ == "erlrestore.layers", (name, cls.__module__)
        # Keras' own get_config serves only a layer without arguments of its own (CropToMatch).
        assert "get_config" in vars(cls) or "__init__" not in vars(cls), name
        assert name in checked, f"no test runs layer_testing.check_layer on {name}"


# ---------------------------------------------------------------- DenseBlock


@pytest.mark.parametrize("norm", ["none", "instance", "batch"])
def test_dense_block_standard_checks(norm):
    check_layer(
        DenseBlock,
        {"num_layers": 3, "growth_rate": 4, "norm": norm, "activation": "relu"},
        input_shape=(2, 8, 8, 5),
        expected_output_shape=(2, 8, 8, 5 + 3 * 4),
        model_input_shape=(None, None, 5),
    )


@pytest.mark.parametrize("channels, layers, growth", [(3, 1, 2), (5, 4, 3), (16, 2, 8)])
def test_dense_block_channel_count(channels, layers, growth):
    block = DenseBlock(layers, growth)
    out = block(np.zeros((1, 6, 7, channels), "float32"))
    assert out.shape == (1, 6, 7, channels + layers * growth)
    assert block.compute_output_shape((None, None, None, channels)) == (None, None, None, channels + layers * growth)


def test_dense_block_matches_reference_concatenation():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1, 6, 5, 3)).astype("float32")
    block = DenseBlock(2, 4)
    out = keras.ops.convert_to_numpy(block(x))
    # The block input passes through unchanged in the first channels.
    np.testing.assert_array_equal(out[..., :3], x)
    y0 = _conv_same(np.maximum(x, 0), block.conv_layers[0])
    np.testing.assert_allclose(out[..., 3:7], y0, atol=1e-5)
    y1 = _conv_same(np.maximum(np.concatenate([x, y0], -1), 0), block.conv_layers[1])
    np.testing.assert_allclose(out[..., 7:11], y1, atol=1e-5)


def test_dense_block_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"norm must be one of \('none', 'instance', 'batch'\), got 'layer'"):
        DenseBlock(2, 4, norm="layer")
    with pytest.raises(ValueError, match="growth_rate must be a positive integer, got 0"):
        DenseBlock(2, 0)


# ------------------------------------------------------------- FeatureFusion


def test_feature_fusion_standard_checks():
    check_layer(
        FeatureFusion,
        {"filters": 6, "reduction": 3},
        input_shape=[(2, 8, 8, 3), (2, 8, 8, 6)],
        expected_output_shape=(2, 8, 8, 6),
        model_input_shape=[(None, None, 3), (None, None, 6)],
    )


def test_feature_fusion_zero_combination_returns_decoder_feature():
    rng = np.random.default_rng(2)
    skip = rng.normal(size=(1, 5, 7, 4)).astype("float32")
    decoder = rng.normal(size=(1, 5, 7, 8)).astype("float32")
    fus = FeatureFusion(8)
    fus([skip, decoder])
    for weight in fus.combine.weights:
        weight.assign(np.zeros(weight.shape, "float32"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(fus([skip, decoder])), decoder)


def test_feature_fusion_matches_reference():
    rng = np.random.default_rng(3)
    skip = rng.normal(size=(2, 4, 6, 4)).astype("float32")
    decoder = rng.normal(size=(2, 4, 6, 4)).astype("float32")
    fus = FeatureFusion(4, reduction=2)
    out = keras.ops.convert_to_numpy(fus([skip, decoder]))
    assert fus.squeeze.units == 4  # 8 channels // 2
    w1, b1 = (keras.ops.convert_to_numpy(w) for w in fus.squeeze.weights)
    w2, b2 = (keras.ops.convert_to_numpy(w) for w in fus.excite.weights)
    x = np.concatenate([skip, decoder], -1)
    pooled = x.mean(axis=(1, 2))
    scale = 1.0 / (1.0 + np.exp(-(np.maximum(pooled @ w1 + b1, 0) @ w2 + b2)))
    expected = decoder + _conv_same(x * scale[:, None, None, :], fus.combine)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_feature_fusion_rejects_wrong_decoder_channels():
    fus = FeatureFusion(8, name="fus")
    with pytest.raises(ValueError, match=r"FeatureFusion 'fus' \(filters=8\) needs the decoder feature .* 8 channels, got 6"):
        fus([np.zeros((1, 4, 4, 8), "float32"), np.zeros((1, 4, 4, 6), "float32")])


# A tiny ERL-Net's train step (StagedTrainer.fit) and a forward-only tf.function, in
# float32 and in mixed_bfloat16. Run in a fresh process so that TF's C++ log (where
# Grappler reports a failed optimizer) is on and goes to stderr.
_REMAPPER_SCRIPT = r"""
import keras
import numpy as np
import tensorflow as tf

from erlrestore.models import erlnet, memd
from erlrestore.models.presets import TINY_MEMD
from erlrestore.training import strategies
from erlrestore.training.erl_trainer import StagedTrainer

rng = np.random.default_rng(0)
clean = rng.random((2, 16, 16, 3)).astype("float32")
data = tf.data.Dataset.from_tensor_slices((clean, clean)).repeat().batch(1)
for policy in ("float32", "mixed_bfloat16"):
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    config = memd.memd_config("MEMD", **TINY_MEMD)
    net, c2c = erlnet.build_erlnet(config, "MLGD"), erlnet.build_clean_to_clean(config)
    trainer = StagedTrainer(net, c2c)
    trainer.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    trainer.set_stage(strategies.strategy("MA_D")[1])  # stage II: L_ERL, the feature-loss graph
    trainer.reset_optimizer(1e-3)
    trainer.fit(data, steps_per_epoch=1, epochs=1, verbose=0)
    tf.function(lambda x: net(x, training=False))(tf.constant(clean[:1]))
    print("ran", policy, flush=True)
"""


@pytest.mark.slow
def test_erlnet_graphs_pass_grapplers_remapper():
    """FeatureFusion's add feeds a DenseBlock's ReLU *and* its concatenation. TF's
    oneDNN remapper fused Conv2D+BiasAdd+Add+ReLU across it, deleting the add the
    concatenation still reads, and dropped its whole pass ("remapper failed: ...
    fanout ... exist for missing node .../fuse_<i>/add"). A forward-only graph was
    then left with no fused op at all. See FeatureFusion and docs/BENCHMARKS.md."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0", TF_ENABLE_ONEDNN_OPTS="1", CUDA_VISIBLE_DEVICES="")
    env.pop("TF_CPP_VMODULE", None)
    proc = subprocess.run([sys.executable, "-c", _REMAPPER_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ran", "float32", "ran", "mixed_bfloat16"], proc.stdout
    if "oneDNN custom operations are on" not in proc.stderr:
        pytest.skip("this TensorFlow runs without oneDNN; the remapper path of this bug does not exist")
    failures = [line for line in proc.stderr.splitlines() if "remapper failed" in line or "Mutation::Apply" in line]
    assert not failures, "\n".join(failures)


# ------------------------------------------------------ PadToMultiple / Crop


def test_pad_to_multiple_standard_checks():
    check_layer(
        PadToMultiple,
        {"multiple": 16, "mode": "REFLECT"},
        input_shape=(1, 37, 53, 3),
        expected_output_shape=(1, 48, 64, 3),
        model_input_shape=(None, None, 3),
    )


def test_crop_to_match_standard_checks():
    out = check_layer(
        CropToMatch,
        {},
        input_shape=[(1, 48, 64, 3), (1, 37, 53, 2)],
        expected_output_shape=(1, 37, 53, 3),
        model_input_shape=[(None, None, 3), (None, None, 2)],
    )
    assert out.shape == (1, 37, 53, 3)


def test_pad_then_crop_round_trips_odd_sizes_exactly():
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(2, 37, 53, 3)).astype("float32")
    padded = keras.ops.convert_to_numpy(PadToMultiple(16)(x))
    assert padded.shape == (2, 48, 64, 3)
    np.testing.assert_array_equal(padded, np.pad(x, ((0, 0), (0, 11), (0, 11), (0, 0)), mode="reflect"))
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(CropToMatch()([padded, x])), x)


@pytest.mark.parametrize(
    "mode, height, width, np_modes",
    [
        # pad H = 11 > 5 -> edge; pad W = 8 == 8 -> symmetric; pad 4 <= 11 -> reflect.
        ("REFLECT", 5, 8, ("edge", "symmetric")),
        ("REFLECT", 12, 9, ("reflect", "reflect")),
        ("SYMMETRIC", 12, 5, ("symmetric", "edge")),
        ("EDGE", 12, 9, ("edge", "edge")),
    ],
)
def test_pad_modes_and_fallbacks_match_numpy(mode, height, width, np_modes):
    rng = np.random.default_rng(5)
    x = rng.uniform(size=(1, height, width, 2)).astype("float32")
    out = keras.ops.convert_to_numpy(PadToMultiple(16, mode=mode)(x))
    expected = np.pad(x, ((0, 0), (0, (-height) % 16), (0, 0), (0, 0)), mode=np_modes[0])
    expected = np.pad(expected, ((0, 0), (0, 0), (0, (-width) % 16), (0, 0)), mode=np_modes[1])
    np.testing.assert_array_equal(out, expected)


def test_pad_leaves_multiples_unchanged():
    x = np.arange(2 * 16 * 8 * 1, dtype="float32").reshape(2, 16, 8, 1)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(PadToMultiple(8)(x)), x)


def test_pad_and_crop_with_dynamic_shapes_in_a_graph():
    pad, crop = PadToMultiple(8), CropToMatch()

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
    def round_trip(x):
        padded = pad(x)
        return padded, crop([padded * 2.0, x])

    for shape in [(1, 9, 17, 3), (3, 16, 5, 3)]:
        x = np.random.default_rng(6).uniform(size=shape).astype("float32")
        padded, cropped = round_trip(x)
        assert padded.shape[1] % 8 == 0 and padded.shape[2] % 8 == 0
        assert padded.shape[1] - shape[1] < 8 and padded.shape[2] - shape[2] < 8
        np.testing.assert_array_equal(cropped.numpy(), 2.0 * x)


def test_pad_symbolic_shapes():
    layer = PadToMultiple(16)
    assert layer.compute_output_shape((None, 37, None, 3)) == (None, 48, None, 3)
    out = layer(keras.Input((None, None, 3)))
    assert tuple(out.shape) == (None, None, None, 3)


def test_pad_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"mode must be one of \('REFLECT', 'SYMMETRIC', 'EDGE'\), got 'wrap'"):
        PadToMultiple(8, mode="wrap")
    with pytest.raises(ValueError, match="multiple must be a positive integer, got 0"):
        PadToMultiple(0)
