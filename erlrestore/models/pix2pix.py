"""Generators and discriminator of the generative family ("Rethinking generative methods").

The paper builds on pix2pix (Isola et al., CVPR 2017) and studies:

- **UNet-N**: pix2pix's U-Net generator with ``N`` down/up levels (``N = 8``
  is pix2pix's own generator, ``N = 5`` the paper's proposal);
- **En/Decoder-N**: the "conventional" encoder-decoder of the same depth
  without skip connections, 2x2 max-pooling down and nearest-neighbour up;
- **InfoAccum-L** (:class:`~erlrestore.layers.InfoAccum`) in front of the
  generator or of any encoder level;
- **SubPixUpsamp** (:class:`~erlrestore.layers.SubPixelUpsample`) for the top
  decoder up-sampling;
- pix2pix's 70x70 **PatchGAN** discriminator, conditioned on the input.

Value range: every model here takes and returns images in ``[0, 1]``. The
networks work in ``[-1, 1]`` as pix2pix does: a ``Rescaling`` layer maps the
inputs with ``2x - 1`` and the generator's tanh output is mapped back with
``(t + 1) / 2``, so callers never see the signed range.

Any input size works for the generators: the image is padded (reflection,
:class:`~erlrestore.layers.PadToMultiple`) to a multiple of ``2**N`` and the
output cropped back (:class:`~erlrestore.layers.CropToMatch`).

Indexing used in layer names and in :class:`GeneratorConfig`: encoder level
``k = 0..N-1`` takes its input at ``1/2**k`` of the (padded) resolution and
outputs at ``1/2**(k+1)``; decoder block ``k = N-1..0`` outputs at ``1/2**k``
(block 0 is the top one, producing the full resolution). The paper's
InfoAccum position "1st" is our position 0 (before the generator, i.e. before
encoder level 0), its "(k+1)-th" our position ``k``.

Dropout: placed as pix2pix's ``UnetGenerator`` places it (see
:meth:`GeneratorConfig.dropout_levels`): rate 0.5 in the ``N - 5``
intermediate decoder blocks directly above the innermost one, i.e. blocks
``N-2, ..., 4`` (UNet-8: blocks 6, 5, 4; UNet-5 and shallower: none), never in
the innermost block ``N-1`` nor in the outer four. Keras applies dropout only
when the model is called with ``training=True``. pix2pix keeps dropout on at
test time as its noise source; call the generator with ``training=True`` to
get that behaviour (this also switches batch normalisation to batch
statistics, as pix2pix's test script does by default;
``erlrestore-evaluate --norm_statistics=batch``).

Initialisation: :func:`init_pix2pix_weights` re-draws a built model's
weights as pix2pix's ``init_weights(init_type="normal", init_gain=0.02)``
does (conv kernels ``N(0, 0.02)``, norm scales ``N(1, 0.02)``, biases and
shifts 0); the training code applies it to both networks of the generative
family unless ``--weight_init=keras``.
"""

import dataclasses
import re

import keras
import numpy as np

from erlrestore.layers import (IMAGE_DTYPE, NORMS, BatchNormalization, Conv2D, Conv2DTranspose, CropToMatch,
                               InfoAccum, PadToMultiple, SubPixelUpsample)

KINDS = ("unet", "endec")
# The normalisations of the generators and the PatchGAN (erlrestore.layers.NORMS), listed from pix2pix's
# default, batch: the order of their errors and of --gen_norm's help.
NORM_CHOICES = tuple(reversed(NORMS))
_MAX_LEVELS = 8

# Named rows of the paper (Table II / III); see generator_config().
GENERATOR_PRESETS = {
    "pix2pix": {"kind": "unet", "levels": 8},
    "unet5": {"kind": "unet", "levels": 5},
    "unet5_infoaccum15": {"kind": "unet", "levels": 5, "info_accum_layers": 15},
    "unet5_infoaccum15_subpix": {"kind": "unet", "levels": 5, "info_accum_layers": 15, "subpixel": True},
    "endec5": {"kind": "endec", "levels": 5},
}
_NAME_PATTERN = re.compile(r"^(unet|endec)([1-8])(?:_infoaccum([1-9][0-9]*))?(_subpix)?$")


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Architecture of a UNet-N or En/Decoder-N generator.

    Defaults give pix2pix's generator (UNet-8, batch norm, dropout 0.5 in
    decoder blocks 6, 5 and 4 -- the three 512-channel blocks directly above
    the innermost one --, no InfoAccum, transposed-conv up-sampling).

    Attributes:
        levels: number ``N`` of 2x down/up-sampling levels, 1..8.
        kind: ``"unet"`` (pix2pix U-Net with skip concatenations) or
            ``"endec"`` (no skips, max-pool / nearest-neighbour).
        base_filters: width of encoder level 0; doubles per level ...
        max_filters: ... up to this cap (pix2pix: 64 -> 512).
        norm: ``"batch"`` (pix2pix), ``"instance"`` (``GroupNormalization``
            with one group per channel) or ``"none"``. Also used by the
            InfoAccum modules. Batch norm uses PyTorch's defaults (momentum
            0.1, i.e. Keras ``momentum=0.9``, epsilon 1e-5), as pix2pix is a
            PyTorch model.
        dropout: dropout rate of the blocks chosen by ``dropout_blocks``
            (0 disables).
        dropout_blocks: ``None`` (default): pix2pix's rule, dropout in the
            ``max(0, N - 5)`` blocks ``N-2, ..., 4`` (pix2pix's
            ``UnetGenerator`` adds ``num_downs - 5`` dropout blocks between
            the innermost block and the outer four). An integer ``b``
            overrides the count: blocks ``N-2, N-3, ...`` downward, ``b`` of
            them, stopping above block 0; the innermost block ``N-1`` and
            the top block 0 never get dropout (as in pix2pix). The same
            block indices apply to the En/Decoder.
        info_accum_layers: layers ``L`` of each InfoAccum module; 0 = none.
        info_accum_growth: InfoAccum growth rate (our choice: 4; the paper
            says only "a relatively small value").
        info_accum_positions: where InfoAccum modules sit: position ``k``
            (``0 <= k < N``) is before encoder level ``k``; 0 is before the
            generator (on the image). Several positions are allowed. Ignored
            when ``info_accum_layers == 0``.
        subpixel: do the top decoder up-sampling with
            :class:`~erlrestore.layers.SubPixelUpsample` instead of a
            transposed convolution (UNet) or nearest-neighbour + conv (En/Decoder).
        global_residual: our addition, off in the papers' rows: the tanh
            output is a correction added to the input (``out = x + t`` on
            the [0, 1] scale, ``t`` in [-1, 1]) instead of the image itself.
            A generator that must redraw every pixel through its bottleneck
            ends below its input on mild degradations (light noise, light
            rain) for thousands of steps; with the residual it starts at the
            identity (docs/EXPERIMENTS.md, "Why the generator ended below its
            input").
    """

    levels: int = 8
    kind: str = "unet"
    base_filters: int = 64
    max_filters: int = 512
    norm: str = "batch"
    dropout: float = 0.5
    dropout_blocks: int = None
    info_accum_layers: int = 0
    info_accum_growth: int = 4
    info_accum_positions: tuple = (0,)
    subpixel: bool = False
    global_residual: bool = False

    def __post_init__(self):
        if not _is_int(self.levels) or not 1 <= self.levels <= _MAX_LEVELS:
            raise ValueError(f"GeneratorConfig: levels must be an integer in 1..{_MAX_LEVELS}, got {self.levels!r}")
        if self.kind not in KINDS:
            raise ValueError(f"GeneratorConfig: kind must be one of {KINDS}, got {self.kind!r}")
        for field in ("base_filters", "max_filters", "info_accum_growth"):
            value = getattr(self, field)
            if not _is_int(value) or value < 1:
                raise ValueError(f"GeneratorConfig: {field} must be a positive integer, got {value!r}")
        for field in ("info_accum_layers", "dropout_blocks"):
            value = getattr(self, field)
            if field == "dropout_blocks" and value is None:
                continue
            if not _is_int(value) or value < 0:
                raise ValueError(f"GeneratorConfig: {field} must be a non-negative integer, got {value!r}")
        if self.norm not in NORM_CHOICES:
            raise ValueError(f"GeneratorConfig: norm must be one of {NORM_CHOICES}, got {self.norm!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise ValueError(f"GeneratorConfig: dropout must be a rate in [0, 1), got {self.dropout!r}")
        if not isinstance(self.subpixel, bool):
            raise ValueError(f"GeneratorConfig: subpixel must be True or False, got {self.subpixel!r}")
        positions = self.info_accum_positions
        if _is_int(positions):
            positions = (positions,)
        try:
            positions = tuple(positions)
        except TypeError:
            raise ValueError(
                f"GeneratorConfig: info_accum_positions must be a sequence of integers, got {self.info_accum_positions!r}"
            ) from None
        if not positions or any(not _is_int(p) or not 0 <= p < self.levels for p in positions):
            raise ValueError(
                f"GeneratorConfig: info_accum_positions must be non-empty integers in 0..{self.levels - 1} "
                f"(0 = before the generator, k = before encoder level k), got {self.info_accum_positions!r}"
            )
        if len(set(positions)) != len(positions):
            raise ValueError(f"GeneratorConfig: info_accum_positions has duplicates: {self.info_accum_positions!r}")
        object.__setattr__(self, "info_accum_positions", tuple(sorted(positions)))

    @property
    def multiple(self):
        """Input sizes are padded to a multiple of this (``2**levels``)."""
        return 2**self.levels

    def widths(self):
        """Widths ``[w_0, ..., w_{N-1}]`` of encoder levels 0..N-1 (``min(base * 2**k, max)``)."""
        return [min(self.base_filters * 2**k, self.max_filters) for k in range(self.levels)]

    def dropout_levels(self):
        """Decoder blocks with dropout, deepest first (empty when ``dropout == 0``).

        pix2pix's ``UnetGenerator(num_downs)`` nests, from the inside out: the
        innermost block (no dropout), ``num_downs - 5`` 512-channel blocks
        with ``use_dropout``, then four outer blocks without. A block's
        up-sampling outputs at the resolution its down-sampling reads, so
        pix2pix's ``k``-th block from the outside is our decoder block
        ``k``: dropout in blocks ``N-2, ..., 4`` (UNet-8: ``[6, 5, 4]``;
        ``N <= 5``: none). ``dropout_blocks`` overrides the count, still
        starting at ``N-2`` and never reaching block 0.
        """
        if self.dropout == 0:
            return []
        count = max(0, self.levels - 5) if self.dropout_blocks is None else self.dropout_blocks
        first = self.levels - 2  # the block directly above the innermost one
        return list(range(first, max(0, first - count), -1))

    def info_accum_at(self):
        """Encoder levels preceded by an InfoAccum module (empty without InfoAccum)."""
        return list(self.info_accum_positions) if self.info_accum_layers else []


def generator_config(name, **overrides):
    """The :class:`GeneratorConfig` of a named paper row.

    Names: ``"pix2pix"`` (UNet-8), ``"unet5"``, ``"unet5_infoaccum15"``,
    ``"unet5_infoaccum15_subpix"``, ``"endec5"``, and generally
    ``"{unet|endec}{N}[_infoaccum{L}][_subpix]"`` with ``N`` in 1..8 (the
    Fig. 3 / Fig. 6 sweeps). ``overrides`` set other fields.
    """
    match = _NAME_PATTERN.match(name) if isinstance(name, str) else None
    if name == "pix2pix":
        fields = dict(GENERATOR_PRESETS["pix2pix"])
    elif match:
        kind, levels, layers, subpix = match.groups()
        fields = {"kind": kind, "levels": int(levels)}
        if layers:
            fields["info_accum_layers"] = int(layers)
        if subpix:
            fields["subpixel"] = True
    else:
        raise ValueError(
            f"unknown generator {name!r}; choose one of {sorted(GENERATOR_PRESETS)} "
            "or a name like 'unet3', 'endec7', 'unet5_infoaccum10_subpix'"
        )
    fields.update(overrides)
    return GeneratorConfig(**fields)


def _norm_layer(norm, name):
    """The normalisation layer for ``norm`` ("batch" / "instance"), or None."""
    if norm == "batch":
        return BatchNormalization(momentum=0.9, epsilon=1e-5, name=name)
    if norm == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)
    return None


def _maybe_norm(h, norm, name):
    layer = _norm_layer(norm, name)
    return h if layer is None else layer(h)


def _info_accum(h, config, level):
    if level not in config.info_accum_at():
        return h
    return InfoAccum(
        config.info_accum_layers,
        growth_rate=config.info_accum_growth,
        norm=config.norm,
        activation="leaky_relu",
        name=f"info_accum_{level}",
    )(h)


def _unet(x, config):
    """pix2pix U-Net on a signed image whose size is a multiple of 2**N; returns tanh output.

    As pix2pix (PyTorch ``UnetSkipConnectionBlock``): encoder level ``k`` is
    ``[LeakyReLU(0.2)] -> Conv4x4/2 -> [norm]`` (no activation before level 0,
    no norm on level 0 nor on the innermost level ``N-1``, whose output is
    1x1 at pix2pix's 256 px input); decoder block ``k >= 1`` is ``ReLU ->
    ConvTranspose4x4/2 -> [norm] -> [dropout]`` followed by the concatenation
    ``[skip, up]`` with encoder output ``k-1``; the top block is ``ReLU ->
    ConvTranspose4x4/2 (or SubPixelUpsample 3x3) to 3 channels -> tanh``.
    Convolutions followed by a norm have no bias. InfoAccum at position ``k``
    reads the input of encoder level ``k``; the skip features are the encoder
    outputs themselves.
    """
    widths = config.widths()
    n = config.levels
    skips = []
    h = x
    for k in range(n):
        h = _info_accum(h, config, k)
        if k > 0:
            h = keras.layers.LeakyReLU(0.2, name=f"enc_{k}_act")(h)
        norm = config.norm if 0 < k < n - 1 else "none"
        h = Conv2D(
            widths[k], 4, strides=2, padding="same", use_bias=norm == "none", name=f"enc_{k}_conv"
        )(h)
        h = _maybe_norm(h, norm, f"enc_{k}_norm")
        skips.append(h)
    dropout_levels = config.dropout_levels()
    for k in range(n - 1, 0, -1):
        h = keras.layers.ReLU(name=f"dec_{k}_act")(h)
        h = Conv2DTranspose(
            widths[k - 1], 4, strides=2, padding="same", use_bias=config.norm == "none", name=f"dec_{k}_up"
        )(h)
        h = _maybe_norm(h, config.norm, f"dec_{k}_norm")
        if k in dropout_levels:
            h = keras.layers.Dropout(config.dropout, name=f"dec_{k}_dropout")(h)
        h = keras.layers.Concatenate(name=f"dec_{k}_concat")([skips[k - 1], h])
    h = keras.layers.ReLU(name="dec_0_act")(h)
    if config.subpixel:
        h = SubPixelUpsample(3, scale=2, kernel_size=3, name="dec_0_up")(h)
    else:
        h = Conv2DTranspose(3, 4, strides=2, padding="same", name="dec_0_up")(h)
    return keras.layers.Activation("tanh", name="tanh", dtype=IMAGE_DTYPE)(h)


def _endec(x, config):
    """Conventional encoder-decoder (no skips) on a signed image; returns tanh output.

    Our widths and layers (the paper names only max-pooling and
    nearest-neighbour interpolation): encoder level ``k`` is ``Conv3x3(w_k) ->
    [norm] -> LeakyReLU(0.2) -> MaxPool2x2``; decoder block ``k = N-1..0`` is
    ``UpSampling2D(2, nearest) -> Conv3x3(w_k) -> [norm] -> ReLU -> [dropout]``
    (block 0: ``SubPixelUpsample(w_0)`` replaces up-sampling + conv when
    ``subpixel``); then ``Conv3x3`` to 3 channels and tanh. Widths mirror the
    U-Net's (``w_k = min(base * 2**k, max)``), so the bottleneck has
    ``w_{N-1}`` channels at ``1/2**N`` resolution.
    """
    widths = config.widths()
    n = config.levels
    h = x
    for k in range(n):
        h = _info_accum(h, config, k)
        h = keras.layers.Conv2D(widths[k], 3, padding="same", use_bias=config.norm == "none", name=f"enc_{k}_conv")(h)
        h = _maybe_norm(h, config.norm, f"enc_{k}_norm")
        h = keras.layers.LeakyReLU(0.2, name=f"enc_{k}_act")(h)
        h = keras.layers.MaxPooling2D(2, name=f"enc_{k}_pool")(h)
    dropout_levels = config.dropout_levels()
    for k in range(n - 1, -1, -1):
        if config.subpixel and k == 0:
            h = SubPixelUpsample(widths[0], scale=2, kernel_size=3, name="dec_0_up")(h)
        else:
            h = keras.layers.UpSampling2D(2, interpolation="nearest", name=f"dec_{k}_up")(h)
            h = keras.layers.Conv2D(
                widths[k], 3, padding="same", use_bias=config.norm == "none", name=f"dec_{k}_conv"
            )(h)
        h = _maybe_norm(h, config.norm, f"dec_{k}_norm")
        h = keras.layers.ReLU(name=f"dec_{k}_act")(h)
        if k in dropout_levels:
            h = keras.layers.Dropout(config.dropout, name=f"dec_{k}_dropout")(h)
    h = keras.layers.Conv2D(3, 3, padding="same", name="output_conv")(h)
    return keras.layers.Activation("tanh", name="tanh", dtype=IMAGE_DTYPE)(h)


def build_generator(config=None, name="generator"):
    """Builds a UNet-N / En/Decoder-N generator: image ``[B, H, W, 3]`` in [0, 1] -> same shape in [0, 1].

    ``H`` and ``W`` may be anything: the image is reflection-padded to a
    multiple of ``2**N``, mapped to ``[-1, 1]``, run through the network
    (tanh output), mapped back to ``[0, 1]`` and cropped to the input size.
    ``config`` defaults to ``GeneratorConfig()`` (pix2pix's UNet-8).
    """
    config = config or GeneratorConfig()
    if not isinstance(config, GeneratorConfig):
        raise ValueError(f"build_generator: config must be a GeneratorConfig, got {type(config).__name__}")
    image = keras.Input(shape=(None, None, 3), name="image")
    padded = PadToMultiple(config.multiple, name="pad", dtype=IMAGE_DTYPE)(image)
    signed = keras.layers.Rescaling(2.0, offset=-1.0, name="to_signed")(padded)
    body = _unet if config.kind == "unet" else _endec
    out = body(signed, config)
    if config.global_residual:
        out = keras.layers.Add(name="global_residual", dtype=IMAGE_DTYPE)([padded, out])
    else:
        out = keras.layers.Rescaling(0.5, offset=0.5, name="to_unit", dtype=IMAGE_DTYPE)(out)
    out = CropToMatch(name="crop", dtype=IMAGE_DTYPE)([out, image])
    return keras.Model(image, out, name=name)


def patchgan_output_size(size, num_layers=5):
    """Side of the PatchGAN logit map for an input side ``size``.

    Every convolution is 4x4 with one pixel of zero padding on each side
    (pix2pix), so a side ``s`` becomes ``floor((s - 2) / stride) + 1``, with
    strides 2 for the first ``num_layers - 2`` convolutions and 1 for the last
    two. A 256 px input gives pix2pix's 30x30 map.
    """
    for i in range(num_layers):
        stride = 2 if i < num_layers - 2 else 1
        size = (size - 2) // stride + 1
    return size


def build_patchgan(base_filters=64, num_layers=5, norm="batch", name="discriminator"):
    """pix2pix's PatchGAN discriminator (70x70 receptive field with the defaults).

    Inputs ``[input_image, candidate_image]``, each ``[B, H, W, 3]`` in [0, 1]
    (mapped to ``[-1, 1]`` inside, then concatenated on channels: 6
    channels). ``num_layers`` fully convolutional 4x4 layers, each preceded by
    one pixel of zero padding (as pix2pix's PyTorch ``padding=1``): the first
    ``num_layers - 1`` have widths ``min(base * 2**i, 8 * base)`` (64, 128,
    256, 512), strides 2 except the last of them (stride 1), LeakyReLU(0.2),
    a norm on all but the first (no bias where a norm follows); the last is a
    stride-1 convolution to 1 channel without activation. Output: logits
    ``[B, h, w, 1]``, ``h = patchgan_output_size(H, num_layers)``.

    Args:
        base_filters: width of the first layer.
        num_layers: total convolutions (the paper: "a 5-layer fully
            convolutional network"); at least 2.
        norm: ``"batch"`` (pix2pix), ``"instance"`` or ``"none"``.
        name: model name.
    """
    if not _is_int(base_filters) or base_filters < 1:
        raise ValueError(f"build_patchgan: base_filters must be a positive integer, got {base_filters!r}")
    if not _is_int(num_layers) or num_layers < 2:
        raise ValueError(f"build_patchgan: num_layers must be an integer >= 2, got {num_layers!r}")
    if norm not in NORM_CHOICES:
        raise ValueError(f"build_patchgan: norm must be one of {NORM_CHOICES}, got {norm!r}")
    source = keras.Input(shape=(None, None, 3), name="input_image")
    candidate = keras.Input(shape=(None, None, 3), name="candidate_image")
    h = keras.layers.Concatenate(name="concat")(
        [
            keras.layers.Rescaling(2.0, offset=-1.0, name="input_to_signed")(source),
            keras.layers.Rescaling(2.0, offset=-1.0, name="candidate_to_signed")(candidate),
        ]
    )
    for i in range(num_layers - 1):
        stride = 2 if i < num_layers - 2 else 1
        layer_norm = norm if i > 0 else "none"
        h = keras.layers.ZeroPadding2D(1, name=f"pad_{i}")(h)
        h = Conv2D(
            min(base_filters * 2**i, 8 * base_filters), 4, strides=stride, use_bias=layer_norm == "none", name=f"conv_{i}"
        )(h)
        h = _maybe_norm(h, layer_norm, f"norm_{i}")
        h = keras.layers.LeakyReLU(0.2, name=f"act_{i}")(h)
    h = keras.layers.ZeroPadding2D(1, name=f"pad_{num_layers - 1}")(h)
    logits = keras.layers.Conv2D(1, 4, name="logits", dtype=IMAGE_DTYPE)(h)
    return keras.Model([source, candidate], logits, name=name)


WEIGHT_INITS = ("pix2pix", "keras")
_KERNELS = ("kernel", "depthwise_kernel", "pointwise_kernel")


def init_pix2pix_weights(model, seed=0, gain=0.02):
    """Re-initialises a built model's weights as pix2pix does; returns the model.

    pix2pix (``networks.init_weights`` with its defaults ``init_type="normal"``,
    ``init_gain=0.02``) draws every convolution and transposed-convolution
    kernel (and any linear layer's) from ``N(0, 0.02)`` with zero biases, and
    every batch-norm scale from ``N(1, 0.02)`` with zero shifts, in the
    generator and the discriminator alike. Here every variable of
    ``model.weights`` is matched by the last part of its path, so the
    sub-layers of :class:`~erlrestore.layers.InfoAccum` and
    :class:`~erlrestore.layers.SubPixelUpsample` are covered too:

    * ``kernel``, ``depthwise_kernel``, ``pointwise_kernel``: ``N(0, gain)``;
    * ``bias``: 0;
    * ``gamma`` (batch norm and our "instance" ``GroupNormalization``, whose
      PyTorch counterpart in pix2pix has no affine parameters): ``N(1, gain)``;
    * ``beta``: 0;
    * anything else (batch-norm moving statistics, dropout seed states) is
      left alone.

    The draws come from ``numpy.random.default_rng(seed)`` in the order of
    ``model.weights`` (the architecture fixes it), so a seed gives the same
    weights on every machine and under any ``tf.distribute`` distribution.
    ``seed`` may be an int or a sequence of ints (e.g. ``(run_seed, 1)`` for
    a second network of the same run).
    """
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        kind = variable.path.rsplit("/", 1)[-1]
        shape = tuple(variable.shape)
        if kind in _KERNELS:
            values = rng.normal(0.0, gain, size=shape)
        elif kind == "gamma":
            values = rng.normal(1.0, gain, size=shape)
        elif kind in ("bias", "beta"):
            values = np.zeros(shape)
        else:
            continue
        variable.assign(values.astype(keras.backend.standardize_dtype(variable.dtype)))
    return model
