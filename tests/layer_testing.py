"""One shared checker for every custom Keras layer of erlrestore.

``check_layer`` builds a layer from constructor arguments, runs it on data and
verifies:

1. the output shape and dtype (and that every weight has that dtype);
2. ``get_config()`` holds the constructor arguments, and ``from_config``
   rebuilds a layer whose config is equal and whose output, after copying the
   weights, is identical;
3. inside a functional model, ``model.save("x.keras")`` followed by
   ``keras.models.load_model`` gives identical outputs and an equal layer
   config.

Weights are set to random values before any comparison, so an initialiser
that happens to be all zeros cannot hide a weight that is not copied or saved.
"""

import os
import tempfile

import keras
import numpy as np


def _as_list(value):
    return list(value) if isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray)) else None


def _randomize(weights_owner, rng):
    for weight in weights_owner.weights:
        weight.assign(rng.normal(0.0, 0.2, size=tuple(weight.shape)).astype(weight.dtype))


def check_layer(
    layer_cls,
    init_kwargs,
    input_shape=None,
    input_data=None,
    expected_output_shape=None,
    expected_dtype="float32",
    model_input_shape=None,
    seed=0,
):
    """Runs the standard checks on ``layer_cls(**init_kwargs)``; returns its output.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments (must all appear unchanged in
            ``get_config()``).
        input_shape: a shape with batch, or a list of shapes for a layer taking
            a list of inputs; random normal float32 data of that shape is used.
        input_data: an array, or a list of arrays, used instead of
            ``input_shape``.
        expected_output_shape: the exact output shape on that data.
        expected_dtype: dtype of the output and of every weight.
        model_input_shape: shape(s) without batch of the ``keras.Input`` used for
            the saved functional model; defaults to the data's shape. Use
            ``(None, None, C)`` to exercise dynamic spatial sizes.
        seed: seed for the random data and weights.
    """
    rng = np.random.default_rng(seed)
    if (input_shape is None) == (input_data is None):
        raise ValueError("check_layer: give exactly one of input_shape and input_data")
    if input_data is None:
        shapes = _as_list(input_shape)
        if shapes is None:
            input_data = rng.normal(size=input_shape).astype("float32")
        else:
            input_data = [rng.normal(size=s).astype("float32") for s in shapes]
    multi = isinstance(input_data, (list, tuple))
    data = [np.asarray(d) for d in input_data] if multi else np.asarray(input_data)

    # 1. Output shape and dtype.
    layer = layer_cls(**init_kwargs)
    layer(data)  # builds
    _randomize(layer, rng)
    output = keras.ops.convert_to_numpy(layer(data))
    assert output.shape == tuple(expected_output_shape), (output.shape, expected_output_shape)
    assert str(output.dtype) == expected_dtype, output.dtype
    for weight in layer.weights:
        assert str(weight.dtype) == expected_dtype, (weight.path, weight.dtype)

    # 2. Config round trip.
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert key in config, f"{layer_cls.__name__}.get_config() lacks constructor argument {key!r}"
        assert config[key] == value, (key, config[key], value)
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config
    clone(data)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(clone(data)), output)

    # 3. Inside a functional model: save / load a .keras file.
    if model_input_shape is None:
        model_input_shape = [d.shape[1:] for d in data] if multi else data.shape[1:]
    if multi:
        inputs = [keras.Input(shape=tuple(s)) for s in model_input_shape]
    else:
        inputs = keras.Input(shape=tuple(model_input_shape))
    model_layer = layer_cls(**init_kwargs)
    model = keras.Model(inputs, model_layer(inputs))
    model_layer.set_weights(layer.get_weights())
    model_output = keras.ops.convert_to_numpy(model(data))
    np.testing.assert_array_equal(model_output, output)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
    loaded_layer = loaded.layers[-1]
    assert type(loaded_layer) is layer_cls, type(loaded_layer)
    assert loaded_layer.get_config() == model_layer.get_config()
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(data)), output)
    return output
