"""FLOPs of a Keras network's forward pass, counted from the shapes its layers really see.

Convention: one multiply-add is 2 FLOPs; only convolutions and dense layers
are counted (including the convolutions inside ``InfoAccum``,
``SubPixelUpsample`` and ``DenseBlock``; InfoAccum evaluates its dilated
convolutions as matrix products with the same multiply-adds, counted as the
convolutions they compute); biases, normalisation, activations, padding,
concatenation and pixel shuffles are left out (a few percent at most). A
``Conv2D`` costs ``2 * K_h * K_w * C_in/groups * C_out * H_out * W_out`` per
image; a ``Conv2DTranspose`` ``2 * K_h * K_w * C_in * C_out * H_in * W_in``
(each *input* pixel scatters a ``K_h x K_w x C_out`` patch); a ``Dense``
``2 * C_in * C_out`` per position. Spatial sizes are those the layers really
see (the networks pad to their multiple).

What a training step costs on top of the forward passes depends on the
model family (its ``step_flops``, :mod:`erlrestore.training.families`);
``python -m tools.benchmark`` reports both.
"""

import keras
import numpy as np

_COUNTED = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, keras.layers.Dense)


def _layer_flops(layer, input_shape, output_shape):
    """FLOPs of one call of a counted layer, from the shapes it saw (see the module docstring)."""
    kernel = tuple(int(d) for d in layer.kernel.shape)
    if isinstance(layer, keras.layers.Conv2DTranspose):
        # kernel (K_h, K_w, C_out, C_in); per input pixel.
        k_h, k_w, c_out, c_in = kernel
        batch, height, width = input_shape[0], input_shape[1], input_shape[2]
        return 2 * k_h * k_w * c_in * c_out * batch * height * width
    if isinstance(layer, keras.layers.Conv2D):
        # kernel (K_h, K_w, C_in / groups, C_out); per output pixel.
        k_h, k_w, c_in_per_group, c_out = kernel
        batch, height, width = output_shape[0], output_shape[1], output_shape[2]
        return 2 * k_h * k_w * c_in_per_group * c_out * batch * height * width
    # Dense: kernel (C_in, C_out), applied at every position of the leading axes.
    c_in, c_out = kernel
    positions = int(np.prod(input_shape[:-1], dtype=np.int64))
    return 2 * c_in * c_out * positions


def _named_layers(layer, prefix=""):
    """``(path, layer)`` for every layer nested in ``layer`` (depth first), paths like ``info_accum_0/conv_3_d5``."""
    for child in layer._flatten_layers(include_self=False, recursive=False):
        path = f"{prefix}{child.name}"
        yield path, child
        yield from _named_layers(child, path + "/")


def _concrete_shape(shape):
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"conv_flops: an input shape needs a batch axis and at least one more axis, got {shape}")
    if any(d is not None and (not isinstance(d, (int, np.integer)) or d < 1) for d in shape):
        raise ValueError(f"conv_flops: input shape dimensions must be positive integers (or None for the batch), "
                         f"got {shape}")
    if any(d is None for d in shape[1:]):
        raise ValueError(f"conv_flops: only the batch dimension may be None, got {shape}")
    return tuple(1 if d is None else int(d) for d in shape)


def conv_flops_by_layer(model, input_shape):
    """Per-call FLOPs of the convolutions and dense layers of ``model`` for an input of ``input_shape``.

    ``input_shape`` includes the batch axis (``None`` counts as 1), e.g.
    ``(1, 256, 256, 3)``; for a model with several inputs, a list of shapes.
    The shapes each layer sees are recorded by running ``model`` once on
    zeros (``training=False``), so padding, nested sublayers and every
    spatial size are exactly those of a real call; the layers' own ``call``
    is wrapped for that run only. Returns a list of ``(layer path, FLOPs)``
    in call order (a layer called twice appears twice).
    """
    if isinstance(input_shape, list):
        inputs = [np.zeros(_concrete_shape(s), np.float32) for s in input_shape]
    else:
        inputs = np.zeros(_concrete_shape(input_shape), np.float32)
    named = list(_named_layers(model))
    # Layers that evaluate their convolution sub-layers' kernels without calling them (InfoAccum: one
    # matrix product per dense layer) say which shape each kernel is applied to; the FLOPs are those
    # of the direct convolutions, which such a layer performs exactly.
    formulated = [(path, layer) for path, layer in named if hasattr(layer, "conv_input_shapes")]
    inside = tuple(path + "/" for path, _ in formulated)
    counted = [(path, layer) for path, layer in named if isinstance(layer, _COUNTED) and not path.startswith(inside)]
    records = []

    def recording(path, layer, call):
        def call_and_record(x, *args, **kwargs):
            y = call(x, *args, **kwargs)
            records.append((path, _layer_flops(layer, tuple(x.shape), tuple(y.shape))))
            return y

        return call_and_record

    def recording_kernels(path, layer, call):
        def call_and_record(x, *args, **kwargs):
            y = call(x, *args, **kwargs)
            for conv, shape in layer.conv_input_shapes(tuple(x.shape)):
                records.append((f"{path}/{conv.name}", _layer_flops(conv, shape, shape[:-1] + (conv.filters,))))
            return y

        return call_and_record

    wrapped = counted + formulated
    try:
        for path, layer in counted:
            object.__setattr__(layer, "call", recording(path, layer, layer.call))
        for path, layer in formulated:
            object.__setattr__(layer, "call", recording_kernels(path, layer, layer.call))
        model(inputs, training=False)
    finally:
        for _, layer in wrapped:
            layer.__dict__.pop("call", None)
    return records


def conv_flops(model, input_shape):
    """Total FLOPs of one forward pass of ``model`` on ``input_shape`` (see :func:`conv_flops_by_layer`), an int."""
    return int(sum(flops for _, flops in conv_flops_by_layer(model, input_shape)))


def conv_flops_by_branch(model, input_shape):
    """``{top-level sublayer name: FLOPs}`` of one forward pass (e.g. ``men``, ``ren``, ``mde``)."""
    totals = {}
    for path, flops in conv_flops_by_layer(model, input_shape):
        branch = path.split("/", 1)[0]
        totals[branch] = totals.get(branch, 0) + int(flops)
    return totals
