"""The graph a model runs for inference: batch norm folded, transposed convolutions as forward ones.

Two rewrites of a trained functional model, each exact up to float rounding;
the rewritten model is for inference only (``training=False``).

**Batch-norm folding.** In inference mode (``training=False``) a ``BatchNormalization`` layer is a
fixed per-channel affine map ``y = (x - mean) * scale + beta`` with ``scale =
gamma / sqrt(moving_variance + epsilon)``. When ``x`` is the output of a
convolution, the map can be absorbed into that convolution's kernel and
bias, and the batch-norm layer disappears from the graph:

* ``Conv2D`` (kernel ``(kh, kw, in, out)``): each output channel ``c`` of
  the kernel is multiplied by ``scale[c]`` (the last axis);
* ``Conv2DTranspose`` (kernel ``(kh, kw, out, in)``): the same along axis 2;
* the new bias is ``(bias - mean) * scale + beta``, with ``bias = 0`` for a
  convolution without one; the folded convolution always has a bias.

**Phase convolutions.** A ``Conv2DTranspose`` with kernel 4, stride 2 and
"same" padding (pix2pix's decoder) or with kernel == stride is replaced by
:class:`erlrestore.layers.PhaseConv2DTranspose` with the same name and the
same (folded) weights rearranged: the same multiply-adds, run by TensorFlow as
a forward convolution and ``depth_to_space`` instead of
``Conv2DBackpropInput``, which its oneDNN CPU kernels run slower (most of
all on the deep, few-pixel levels; docs/BENCHMARKS.md).

:func:`optimize` does both on a functional ``keras.Model``;
:func:`optimize_verified` also checks on a fixed random input that the new
model computes what the original computes, and falls back to the original
otherwise. A float32 model is compared with its rewrite within
:data:`TOLERANCE` (1e-5). For a model that computes in 16 bits (the
mixed-precision policies) that comparison cannot tell a subtly wrong
rewrite from rounding, so the check has two steps: the rewrite's arithmetic
is verified on float32 copies of the model and of its rewrite
(:func:`float32_copy`) within :data:`TOLERANCE`, and only then is the
16-bit rewrite compared with the 16-bit model, within the looser
:data:`TOLERANCES` entry of its precision, which catches what breaks the
16-bit graph itself (NaN, overflow, gross errors). The exporters
(:func:`erlrestore.export.export_savedmodel`,
:func:`erlrestore.export.export_onnx`) and the loader of ``.keras`` models
(:func:`erlrestore.inference.load_restorer`) call :func:`optimize_verified`, so an
exported model and the ``.keras`` file it came from run the same graph.

Choices made here:

* What is folded: a ``keras.layers.BatchNormalization`` or
  :class:`erlrestore.layers.BatchNormalization` (exactly those
  classes: the second differs only in training mode) called once in the model on one tensor, without ``training`` or a
  mask, normalising the channel axis, whose input is the output of a
  ``Conv2D`` or ``Conv2DTranspose``, Keras' or erlrestore's (exactly those
  classes: erlrestore's differ only in training mode) that is called once in the model, has a linear activation, no
  LoRA and no quantisation and the batch norm's compute dtype, and whose
  output nothing else reads (no other layer, not a model output).
  Everything else (batch norm after other layers, ``GroupNormalization``,
  erlrestore's custom layers, dropout...) stays as it is. The model's graph
  is read from its call nodes (``model._nodes_by_depth``, the private
  attribute ``clone_model`` itself walks), so only calls inside this model
  count, not calls of the same layers in other models.
* Nested models (a functional model used as a layer, e.g. MEMD's ``men`` /
  ``mde``, whose up-sampling transposed convolutions therefore stay) and
  layers with sub-layers (``InfoAccum``, ``DenseBlock``) are left as they
  are. Sequential and subclassed
  models are returned unchanged.
* The graph is rebuilt as ``keras.models.clone_model`` rebuilds it (new
  ``Input`` tensors run through the model's graph, ``model._run_through_graph``)
  with two hooks: one returns a new convolution (its config with
  ``use_bias=True``, or a phase convolution) for each convolution to fold
  or rewrite and the very same layer
  object for every other layer, the other passes a folded batch norm's input
  through instead of calling it. The new convolutions' weights are assigned
  after the graph is built. So the folded model SHARES every unchanged layer
  (and its variables) with the original: it is a view for inference, cheap
  in memory, not an independent copy; fold again after changing the
  original's weights. ``clone_model`` itself is not called because it
  recompiles a compiled model's copy (which fails for a loss given as a
  lambda); the folded model is not compiled.
* Arithmetic: folding reads the variables (float32 under a mixed-precision
  policy, whose layers compute in bfloat16/float16 but keep float32
  variables), combines the per-channel vectors (gamma, beta, moving
  statistics, bias) in float64 and scales the kernel in float32; the results
  are stored in the variable dtype. The folded convolution keeps its dtype
  policy, so a ``mixed_bfloat16`` model folds into a ``mixed_bfloat16``
  model.
* A model with nothing to rewrite is returned unchanged: the same object.
"""

import collections
from typing import NamedTuple

import keras
import numpy as np
from absl import logging

from erlrestore import layers

# Largest max-abs difference (float32 outputs, inference mode) between the
# folded and the original model on the check input for the folded one to be used,
# for a model that computes in float32 (or float64).
TOLERANCE = 1e-5

# The tolerance of optimize_verified's comparison of a rewritten model with the
# model itself, per compute dtype (the model's lowest precision, see
# compute_precision). The two graphs do the same arithmetic in a different order
# with differently rounded weights (a folded kernel is rounded to the compute
# dtype after scaling, the original before; the original rounds the convolution
# output before the batch norm, the folded graph does not), so their outputs
# differ by a few roundings of the compute dtype, carried through the network. In
# float32 (unit roundoff 2**-24) that stays below 1e-5.
#
# bfloat16 (8-bit significand, unit roundoff 2**-8 ~ 3.9e-3) and float16 (11-bit,
# 2**-11 ~ 4.9e-4) were measured on small-width models of this package, weights
# as at initialisation (pix2pix init, batch-norm statistics taken from the
# model's own activations and perturbed as in tests/test_inference_graph.py), the
# last layer scaled so that the pre-tanh output has std 0.5, 1 or 2 (no trained
# model was at hand; 1 is a guess for one), max abs over check_inputs (64x64;
# UNet-8: 256x256).
# Correct rewrite vs original, bfloat16 / float16:
#   UNet-5 + InfoAccum + SubPixUpsamp  0.012 / 0.020 / 0.032   0.0016 / 0.0028 / 0.0051
#   pix2pix UNet-8                     0.011 / 0.019 / 0.040   0.0019 / 0.0030 / 0.0070
#   En/Decoder-5                       0.049 / 0.094 / 0.173   0.0058 / 0.0104 / 0.0202
#   MEMD / ERL-Net, depth 3, widths 8..32, output residual std 0.1 / 0.3 (phase
#   convolutions only; optimize leaves these nested sub-models alone, so the
#   decoder was rewritten by hand): 0 in bfloat16, <= 0.0022 in float16.
# (A rerun of the same measurement moved the bfloat16 numbers by up to 15%.)
# That is the models' own 16-bit noise: the original differs from the same
# weights run in float32 by 0.010-0.032 (UNets) and 0.022-0.071 (En/Decoder) in
# bfloat16, and the rewrite's RMS error against float32 is about the original's.
# Deliberately wrong rewrites (one layer at a time, smallest over the layers and
# the three output scales, both 16-bit dtypes):
#   transposed-convolution kernel flipped (phase form)  >= 0.29 (UNets), >= 0.16 (ERL-Net)
#   variance used as the standard deviation (no sqrt)   >= 0.50
#   moving mean left out of the folded bias             >= 0.049
#   one channel's variance doubled                      0.010-0.17: overlaps the correct range
#   epsilon left out / one variance off by 10%          indistinguishable from rounding
# So no 16-bit tolerance catches every wrong fold: small per-channel errors drown
# in the rounding. In float32 they do not: the correct rewrites above differ by
# <= 8e-6, a doubled variance by >= 9e-3. Hence the two steps of
# optimize_verified for a model that computes in 16 bits:
#   1. the rewrite's arithmetic: float32 copies of the model and of its rewrite
#      (float32_copy: same architecture and weights, every layer in float32)
#      are compared within TOLERANCE, which catches the algebra mistakes above;
#   2. the 16-bit graph that will run: the rewrite of the model itself against
#      the model, within the entry below, which only has to catch what goes
#      wrong in 16 bits or breaks the graph (NaN, overflow, a flipped or
#      mis-laid kernel, a missing square root) without refusing a correct
#      rewrite's rounding.
# Step 2 is all there is when no float32 copy can be built (optimize_verified
# logs it); it then has the blind spots above (a left-out mean, from 0.049, can
# pass in bfloat16). bfloat16: 0.08 (20 unit roundoffs), twice the pix2pix
# generators' largest correct difference and half the smallest flipped kernel.
# float16: 0.02 (40 unit roundoffs), 2.9 times the generators' largest correct
# difference, 2.5 times below a left-out mean and 12 below a flipped kernel. An
# En/Decoder with a large output scale can exceed them; it then keeps its
# original graph, which computes the same, only slower.
TOLERANCES = {"float64": TOLERANCE, "float32": TOLERANCE, "float16": 2e-2, "bfloat16": 8e-2}

# Floating compute dtypes from the lowest precision to the highest.
_PRECISION_ORDER = ("bfloat16", "float16", "float32", "float64")

# The compute dtypes whose rewrites optimize_verified first checks on float32 copies.
_SIXTEEN_BIT = ("bfloat16", "float16")

# Dtype policy names (and dtypes) that float32_copy replaces by "float32" where a
# configuration gives them as a plain string.
_SIXTEEN_BIT_POLICIES = frozenset({"mixed_bfloat16", "mixed_float16", "bfloat16", "float16"})

# The check input of optimize_verified: 1 x side x side x channels with side the
# smallest multiple of the model's padding multiple that is at least this.
CHECK_SIZE = 64
CHECK_SEED = 0

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose, layers.Conv2D, layers.Conv2DTranspose)
_TRANSPOSED_CONVOLUTIONS = (keras.layers.Conv2DTranspose, layers.Conv2DTranspose)
_BATCH_NORMS = (keras.layers.BatchNormalization, layers.BatchNormalization)


class InferenceGraph(NamedTuple):
    """What :func:`optimize` / :func:`optimize_verified` return.

    Attributes:
      model: the model to run: the optimized model, or the input model
        itself when nothing changed (or, for :func:`optimize_verified`, when
        the optimized model was rejected).
      folded: names of the batch-norm layers absorbed into ``model``'s
        convolutions (empty when none); ``len(folded)`` is the count.
      phased: names of the ``Conv2DTranspose`` layers that ``model`` runs as
        :class:`~erlrestore.layers.PhaseConv2DTranspose` (empty when none).
      max_difference: :func:`optimize_verified`'s measured max-abs difference
        between the outputs of the optimized graph of the input model (the
        graph returned, or the one refused) and of the input model itself, on
        its check input, both computing in the model's own precision (16-bit
        for a mixed-precision model): for a returned rewrite, how far the
        graph that runs is from its original. None when nothing was compared
        (nothing to rewrite, an error, or a 16-bit model whose rewrite was
        refused on its float32 copies before its own graph was compared).
      float32_difference: for a model that computes in 16 bits, the same
        difference between float32 copies of the model and of its rewrite
        (:func:`float32_copy`), which :func:`optimize_verified` checks within
        :data:`TOLERANCE` first. None for a float32 model (its
        ``max_difference`` is already in float32) and when no float32 copy
        could be built.
    """

    model: keras.Model
    folded: tuple = ()
    phased: tuple = ()
    max_difference: float = None
    float32_difference: float = None


def _graph_nodes(model):
    """Every call node of ``model``'s own graph (not of other models sharing its layers)."""
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def _channel_axis(conv):
    return -1 if conv.data_format == "channels_last" else 1


def _plain_linear(conv):
    """A built convolution without activation, LoRA or quantisation: its kernel and bias are all it computes."""
    return (
        conv.built
        and conv.activation is keras.activations.linear
        and not getattr(conv, "lora_enabled", False)
        and getattr(conv, "quantization_mode", None) is None
    )


def _foldable(conv, bn, rank):
    """Whether ``bn`` (reading only ``conv``'s output) can be absorbed into ``conv``."""
    if type(conv) not in _CONVOLUTIONS or type(bn) not in _BATCH_NORMS:
        return False
    if not _plain_linear(conv) or not bn.built:
        return False  # (an activation: the batch norm reads the activated output)
    if conv.compute_dtype != bn.compute_dtype:
        return False
    return bn.axis % rank == _channel_axis(conv) % rank


def _find_pairs(model):
    """``[(conv, bn), ...]`` of the foldable pairs of ``model``'s graph, in graph order."""
    nodes = _graph_nodes(model)
    calls = collections.Counter(id(node.operation) for node in nodes)
    readers = collections.Counter(id(tensor) for node in nodes for tensor in node.input_tensors)
    outputs = {id(tensor) for tensor in model.outputs}
    pairs = []
    for node in nodes:
        bn = node.operation
        if type(bn) not in _BATCH_NORMS or calls[id(bn)] != 1:
            continue
        arguments = node.arguments
        if len(arguments.args) != 1 or len(node.input_tensors) != 1:
            continue
        if any(value is not None for value in arguments.kwargs.values()):
            continue  # called with training= or a mask (Keras records mask=None on every call)
        tensor = node.input_tensors[0]
        if arguments.args[0] is not tensor:
            continue
        conv = tensor._keras_history.operation
        if conv is None or calls[id(conv)] != 1 or readers[id(tensor)] != 1 or id(tensor) in outputs:
            continue
        if _foldable(conv, bn, len(tensor.shape)):
            pairs.append((conv, bn))
    order = {id(layer): index for index, layer in enumerate(model.layers)}
    return sorted(pairs, key=lambda pair: order.get(id(pair[0]), len(order)))


def _folded_weights(conv, bn):
    """(kernel, bias) of ``conv`` with ``bn``'s inference-mode affine map absorbed (float32 kernel, float64 bias).

    The per-channel vectors are combined in float64; the kernel is scaled in
    float32 (one rounding per element, and no float64 copy of a big kernel).
    """
    kernel = np.array(conv.kernel.numpy(), np.float32)
    channels = kernel.shape[-2] if type(conv) in _TRANSPOSED_CONVOLUTIONS else kernel.shape[-1]

    def vector(variable, default):
        if variable is None:
            return np.full(channels, default, np.float64)
        return np.asarray(variable.numpy(), np.float64).reshape(channels)

    gamma = vector(bn.gamma if bn.scale else None, 1.0)
    beta = vector(bn.beta if bn.center else None, 0.0)
    mean = vector(bn.moving_mean, 0.0)
    variance = vector(bn.moving_variance, 1.0)
    bias = vector(conv.bias if conv.use_bias else None, 0.0)
    scale = gamma / np.sqrt(variance + float(bn.epsilon))
    if type(conv) in _TRANSPOSED_CONVOLUTIONS:
        kernel *= scale.astype(np.float32)[:, np.newaxis]  # (kh, kw, out, in): axis 2 is the output channel
    else:
        kernel *= scale.astype(np.float32)  # (kh, kw, in, out): the last axis is the output channel
    return kernel, (bias - mean) * scale + beta


def _phase_ready(conv):
    """Whether ``conv`` is a ``Conv2DTranspose`` that :class:`~erlrestore.layers.PhaseConv2DTranspose` computes."""
    if type(conv) not in _TRANSPOSED_CONVOLUTIONS or not _plain_linear(conv):
        return False
    (kernel, kernel_w), (stride, stride_w) = conv.kernel_size, conv.strides
    if kernel != kernel_w or stride != stride_w or tuple(conv.dilation_rate) != (1, 1):
        return False
    if conv.data_format != "channels_last" or conv.output_padding is not None:
        return False
    return layers.phase_form_applies(kernel, stride) and (kernel == stride or conv.padding == "same")


def _phase_candidates(model):
    """The ``Conv2DTranspose`` layers of ``model``'s graph that become phase convolutions, in layer order."""
    nodes = _graph_nodes(model)
    calls = collections.Counter(id(node.operation) for node in nodes)
    return [layer for layer in model.layers if calls[id(layer)] == 1 and _phase_ready(layer)]


def _weights(variable):
    return None if variable is None else np.array(variable.numpy(), np.float32)


def optimize(model):
    """The inference graph of ``model``: batch norms folded, transposed convolutions as phase convolutions.

    For a user: ``optimize(model).model`` computes what ``model(x,
    training=False)`` computes, with fewer and faster ops; use it for
    inference only, as it has no batch norm left to train or to run with
    batch statistics. Returns an :class:`InferenceGraph`.

    Two rewrites, each exact up to float rounding:

    * every batch norm that directly follows a convolution is folded into it
      (the module docstring says which pairs);
    * every ``Conv2DTranspose`` with kernel 4 / stride 2 / "same" padding
      (pix2pix's decoder) or kernel == stride (MEMD's up-sampling), linear
      and undilated, becomes an :class:`erlrestore.layers.PhaseConv2DTranspose`
      of the same name (after folding its batch norm, if any): the same
      multiply-adds as a forward convolution, which TensorFlow's CPU kernels
      run faster than ``Conv2DBackpropInput``.

    ``model`` must be a functional ``keras.Model``; the result is a new
    functional model with the same inputs and outputs that shares every
    layer it does not change with ``model`` (see the module docstring).
    ``result.folded`` names the absorbed batch norms, ``result.phased`` the
    rewritten transposed convolutions. A model with nothing to change (or
    that is not functional) comes back unchanged, as the same object. This
    does not check the numbers; :func:`optimize_verified` does.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "_nodes_by_depth"):
        return InferenceGraph(model)
    pairs = _find_pairs(model)
    phased = _phase_candidates(model)
    if not pairs and not phased:
        return InferenceGraph(model)
    new_weights = {}  # id(original conv) -> (kernel, bias or None) of the conv that replaces it
    for conv, bn in pairs:
        new_weights[id(conv)] = _folded_weights(conv, bn)
    for conv in phased:
        if id(conv) not in new_weights:
            new_weights[id(conv)] = (_weights(conv.kernel), _weights(conv.bias) if conv.use_bias else None)
    phased_ids = {id(conv) for conv in phased}
    replacements = {}  # id(original conv) -> (new layer, kernel, bias)
    for conv in model.layers:
        if id(conv) not in new_weights:
            continue
        kernel, bias = new_weights[id(conv)]
        if id(conv) in phased_ids:
            stride = conv.strides[0]
            layer = layers.PhaseConv2DTranspose(conv.filters, conv.kernel_size[0], stride, use_bias=bias is not None,
                                                dtype=conv.dtype_policy, name=conv.name)
            kernel = layers.phase_kernel(kernel, stride)
        else:
            config = conv.get_config()
            # Zeros instead of random draws (the folded weights are assigned below; drawing a big kernel is slow).
            config.update(use_bias=True, kernel_initializer="zeros", bias_initializer="zeros")
            layer = type(conv).from_config(config)
        replacements[id(conv)] = (layer, kernel, bias)
    dropped = {id(bn) for _, bn in pairs}

    def clone_function(layer):
        replacement = replacements.get(id(layer))
        return layer if replacement is None else replacement[0]

    def call_function(layer, *args, **kwargs):
        if id(layer) in dropped:
            return args[0]
        return layer(*args, **kwargs)

    # What keras.models.clone_model does with these two hooks, without copying a compiled model's
    # compile configuration (clone_model recompiles the copy, which fails for a loss given as a lambda).
    inputs = keras.tree.map_structure(
        lambda tensor: keras.Input(batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name), model.input)
    outputs = model._run_through_graph(inputs, operation_fn=clone_function, call_fn=call_function)
    optimized = keras.Model(inputs, outputs, name=model.name)
    for layer, kernel, bias in replacements.values():
        layer.kernel.assign(kernel.astype(keras.backend.standardize_dtype(layer.kernel.dtype)))
        if bias is not None:
            layer.bias.assign(bias.astype(keras.backend.standardize_dtype(layer.bias.dtype)))
    return InferenceGraph(optimized, tuple(bn.name for _, bn in pairs), tuple(conv.name for conv in phased))


def check_inputs(model, multiple=None):
    """The fixed random inputs of :func:`optimize_verified` for ``model`` (one float32 array per model input).

    Batch 1; every unknown dimension (height, width) is the smallest
    multiple of ``multiple`` (1 when None) that is at least
    :data:`CHECK_SIZE`; values uniform in [0, 1) from seed :data:`CHECK_SEED`.
    """
    multiple = int(multiple or 1)
    side = -(-CHECK_SIZE // multiple) * multiple
    rng = np.random.default_rng(CHECK_SEED)
    arrays = []
    for tensor in model.inputs:
        shape = [1] + [side if dim is None else int(dim) for dim in tensor.shape[1:]]
        arrays.append(rng.random(shape).astype(np.float32))
    return arrays


def max_difference(model_a, model_b, inputs):
    """Largest absolute difference between two models' float32 outputs (inference mode) on ``inputs``.

    NaN when an output is not finite in either model (or the structures differ).
    """
    arguments = inputs[0] if len(inputs) == 1 else inputs
    outputs_a = keras.tree.flatten(model_a(arguments, training=False))
    outputs_b = keras.tree.flatten(model_b(arguments, training=False))
    if len(outputs_a) != len(outputs_b):
        return float("nan")
    worst = 0.0
    for a, b in zip(outputs_a, outputs_b):
        a = np.asarray(keras.ops.convert_to_numpy(a), np.float32)
        b = np.asarray(keras.ops.convert_to_numpy(b), np.float32)
        if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
            return float("nan")
        worst = max(worst, float(np.max(np.abs(a - b), initial=0.0)))
    return worst


def _computing_layers(model):
    """The layers of ``model`` that compute: nested models' layers and sub-layers included, input layers and the
    nested models themselves (whose policy is whatever was global when they were built) left out."""
    flatten = getattr(model, "_flatten_layers", None)
    for layer in flatten(include_self=False, recursive=True) if flatten else ():
        if not isinstance(layer, (keras.layers.InputLayer, keras.Model)):
            yield layer


def compute_precision(model):
    """The lowest-precision floating dtype that a layer of ``model`` computes in ("float32" when none).

    Reads every layer's ``compute_dtype``, nested models' layers and
    sub-layers included (input layers, and nested models themselves, whose
    policy is whatever was global when they were built, are skipped: their
    layers do the computing); a model mixing
    float32 and bfloat16 layers (a mixed-precision model keeps its image
    layers in float32) is "bfloat16". Dtypes outside :data:`TOLERANCES` are
    ignored.
    """
    found = set()
    for layer in _computing_layers(model):
        dtype = getattr(layer, "compute_dtype", None)
        if dtype is not None:
            found.add(keras.backend.standardize_dtype(dtype))
    for dtype in _PRECISION_ORDER:
        if dtype in found:
            return dtype
    return "float32"


def default_tolerance(model):
    """``(precision, tolerance)``: :func:`compute_precision` of ``model`` and its entry in :data:`TOLERANCES`."""
    precision = compute_precision(model)
    return precision, TOLERANCES[precision]


def _float32_config(value):
    """A model configuration (nested dicts and lists) with every dtype policy float32 and no compile configuration."""
    if isinstance(value, list):
        return [_float32_config(item) for item in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("class_name")
    if kind == "DTypePolicy" and isinstance(value.get("config"), dict):
        return {**value, "config": {**value["config"], "name": "float32"}}
    if isinstance(kind, str) and (kind.endswith("DTypePolicy") or kind == "DTypePolicyMap"):
        raise ValueError(f"a {kind} (quantized or per-layer dtype policy) has no plain float32 form")
    copied = {}
    for key, item in value.items():
        if key == "compile_config":
            continue  # the copy is not compiled (a loss given as a lambda would not even deserialize)
        if key == "dtype" and isinstance(item, str) and item in _SIXTEEN_BIT_POLICIES:
            copied[key] = "float32"
        else:
            copied[key] = _float32_config(item)
    return copied


def float32_copy(model):
    """A float32 twin of ``model``: the same architecture and the same weights, every layer computing in float32.

    What :func:`optimize_verified` checks a 16-bit model's rewrite on. The
    copy is rebuilt as ``type(model).from_config(model.get_config())``
    (every layer's ``get_config``, nested models and this package's
    registered custom layers included; not compiled) from a configuration in
    which every dtype policy is float32: Keras 3 writes a layer's policy as
    ``{"module": "keras", "class_name": "DTypePolicy", "config": {"name":
    "mixed_bfloat16"}}``, and a 16-bit policy given as a plain string is
    replaced too. It is rebuilt while float32 is the global policy (so a
    sub-layer that a layer creates without a dtype is float32 as well) and
    given ``model``'s weights (``get_weights`` / ``set_weights``; the
    variables of a mixed-precision model are float32 already, a pure 16-bit
    model's are widened exactly). ``model`` and the global dtype policy are
    left as they were.

    Raises (``ValueError``, ``TypeError``...) when no such copy can be made:
    a layer Keras cannot deserialize (an unregistered custom class, a
    ``Lambda`` in safe mode), a quantized dtype policy, weights that do not
    fit the rebuilt model, or a layer that still computes in 16 bits.
    """
    config = _float32_config(model.get_config())  # not serialize_keras_object: that also serializes the compilation
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        copy = type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    if not isinstance(copy, keras.Model):
        raise TypeError(f"the configuration of {model.name!r} rebuilt a {type(copy).__name__}, not a model")
    copy.set_weights(model.get_weights())  # a different count or shape raises
    narrow = sorted({layer.name for layer in _computing_layers(copy)
                     if keras.backend.standardize_dtype(layer.compute_dtype) in _SIXTEEN_BIT})
    if narrow:
        raise ValueError(f"layers of the copy still compute in 16 bits: {', '.join(narrow)}")
    return copy


def _float32_check(model, result, inputs, precision):
    """Step 1 of :func:`optimize_verified` for a 16-bit model: ``(difference, None)``, or ``(None, why)`` without one.

    ``difference``: :func:`max_difference` of :func:`float32_copy` of
    ``model`` and of that copy's :func:`optimize`, which must rewrite the
    same layers as ``result`` (``model``'s rewrite) did.
    """
    try:
        original = float32_copy(model)
        rewritten = optimize(original)
        if (rewritten.folded, rewritten.phased) != (result.folded, result.phased):
            raise ValueError(f"the float32 copy's rewrite is not the {precision} model's (it folds "
                             f"{list(rewritten.folded)} and rewrites {list(rewritten.phased)})")
        return max_difference(original, rewritten.model, inputs), None
    except Exception as error:  # pylint: disable=broad-except  # no copy: the 16-bit check alone
        return None, f"{type(error).__name__}: {error}"


def optimize_verified(model, multiple=None, tolerance=None, source=None):
    """:func:`optimize`, kept only when its numbers agree with the original; an :class:`InferenceGraph`.

    Both models run in inference mode on :func:`check_inputs` (``multiple``:
    the model's padding multiple, so the check image needs no padding), on
    the CPU: on Ampere and newer GPUs TensorFlow runs float32 convolutions
    as TF32 by default, whose inputs keep 10 mantissa bits (relative
    rounding near 1e-3), which would swamp the rewrites' own rounding; the
    check is about the rewritten arithmetic, which is the same on every
    device. For a float32 model: when the largest absolute difference of
    their (float32) outputs is at most ``tolerance``, the optimized model is
    returned and an info line logged; otherwise (including a NaN difference
    or an error while rewriting or running the check) the ORIGINAL model is
    returned with ``folded == phased == ()`` and a warning says why: a
    different model is never used silently. A model with nothing to rewrite
    is returned at once, without a check. ``source`` names the model in the
    log lines.

    ``tolerance=None`` (the default) takes the tolerance of the precision
    the model computes in (:func:`default_tolerance`): 1e-5
    (:data:`TOLERANCE`) for a float32 model, the looser
    :data:`TOLERANCES` entry for one built under ``mixed_bfloat16`` or
    ``mixed_float16``; a number given here bounds the comparison in the
    model's own precision whatever that is (step 2 below for a 16-bit
    model). The log lines name the precision and the tolerance.

    A model that computes in 16 bits is checked in two steps (the comment
    above :data:`TOLERANCES` says why), and the log lines say which ran:

    1. its rewrite's arithmetic: :func:`float32_copy` of the model and the
       same :func:`optimize` of that copy (which must rewrite the same
       layers) are compared within :data:`TOLERANCE` (whatever
       ``tolerance`` says); a larger difference refuses the rewrite, and
       the 16-bit graph is not compared (``max_difference`` None,
       ``float32_difference`` the refused difference);
    2. only then its 16-bit rewrite against the model, within
       ``tolerance``: a guard against NaN, overflow and gross breakage of
       the 16-bit graph, which is all that a 16-bit tolerance can see.

    When no float32 copy can be made (an unknown layer, any error while
    building, rewriting or running it), a warning says so and step 2 is the
    only check. ``max_difference`` is always the difference of the 16-bit
    rewrite (the graph returned, or the one refused) against the model;
    ``float32_difference`` that of the float32 copies (see
    :class:`InferenceGraph`).
    """
    name = source or f"model {getattr(model, 'name', model)!r}"
    float32_difference = unusable = difference = None
    try:
        result = optimize(model)
        if result.model is model:
            return result
        precision, default = default_tolerance(model)
        inputs = check_inputs(model, multiple)
        with keras.device("cpu:0"):  # not TF32: GPUs run float32 convolutions with 10-bit mantissas by default
            if precision in _SIXTEEN_BIT:
                float32_difference, unusable = _float32_check(model, result, inputs, precision)
            if float32_difference is None or float32_difference <= TOLERANCE:
                difference = max_difference(model, result.model, inputs)
    except Exception as error:  # an optimisation: never let it break an export or a load
        logging.warning("%s: inference graph not optimized (%s: %s); using the model as it is",
                        name, type(error).__name__, error)
        return InferenceGraph(model)
    shape = "x".join(str(dim) for dim in inputs[0].shape)
    if tolerance is None:
        tolerance, rule = default, f"the {precision} tolerance"
    else:
        rule = f"the tolerance given; the model computes in {precision}"
    if precision not in _SIXTEEN_BIT:
        if not difference <= tolerance:  # also catches NaN
            logging.warning(
                "%s: inference graph not optimized: its output differs by %.3g (> %.3g, %s) on a %s check input; "
                "using the model as it is", name, difference, tolerance, rule, shape)
            return InferenceGraph(model, max_difference=difference)
        logging.info("%s: folded %d batch-norm layers into their convolutions and rewrote %d transposed convolutions "
                     "(max difference %.3g <= %.3g, %s, on a %s check input)", name, len(result.folded),
                     len(result.phased), difference, tolerance, rule, shape)
        return result._replace(max_difference=difference)
    if unusable is not None:
        logging.warning("%s: no float32 copy to verify the inference graph's arithmetic on (%s); checking its %s "
                        "graph alone, which catches only gross errors", name, unusable, precision)
        alone = f"the {precision} check alone, no float32 copy"
        if not difference <= tolerance:  # also catches NaN
            logging.warning(
                "%s: inference graph not optimized: its %s output differs by %.3g (> %.3g, %s; %s) on a %s check "
                "input; using the model as it is", name, precision, difference, tolerance, rule, alone, shape)
            return InferenceGraph(model, max_difference=difference)
        logging.info("%s: folded %d batch-norm layers into their convolutions and rewrote %d transposed convolutions "
                     "(%s: max difference %.3g <= %.3g, %s, on a %s check input)", name, len(result.folded),
                     len(result.phased), alone, difference, tolerance, rule, shape)
        return result._replace(max_difference=difference)
    if not float32_difference <= TOLERANCE:  # also catches NaN
        logging.warning(
            "%s: inference graph not optimized: on float32 copies of the model and of the graph their outputs differ "
            "by %.3g (> %.3g, the float32 tolerance; the model computes in %s) on a %s check input; "
            "using the model as it is", name, float32_difference, TOLERANCE, precision, shape)
        return InferenceGraph(model, float32_difference=float32_difference)
    verified = f"verified in float32 within {TOLERANCE:.3g} (max difference {float32_difference:.3g})"
    if not difference <= tolerance:  # also catches NaN
        logging.warning(
            "%s: inference graph not optimized: %s, but its %s output differs by %.3g (> %.3g, %s) on a %s check "
            "input; using the model as it is", name, verified, precision, difference, tolerance, rule, shape)
        return InferenceGraph(model, max_difference=difference, float32_difference=float32_difference)
    logging.info("%s: folded %d batch-norm layers into their convolutions and rewrote %d transposed convolutions "
                 "(%s, and the %s graph within %.3g (max difference %.3g, %s), on a %s check input)", name,
                 len(result.folded), len(result.phased), verified, precision, tolerance, difference, rule, shape)
    return result._replace(max_difference=difference, float32_difference=float32_difference)
