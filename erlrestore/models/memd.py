"""MEMD: ERL-Net's main encoder (MEN) / main decoder (MDE) U-Net of dense blocks.

Wang, Sun and Sowmya, "ERL-Net: Entangled Representation Learning for Single
Image De-Raining", ICCV 2019, Sec. 3.2 and Table 2. The paper says only that the
network "stacks the dense block under the U-Net structure" with a feature-fusion
layer (FUS) after each skip connection; every size below is our choice.

Architecture (``d = depth``, level widths ``w_l = min(base_filters * 2**l,
max_filters)`` for ``l = 0..d``):

- **Encoder** (:func:`build_encoder`, used for MEN and, in ERL-Net, for REN):
  a 3x3 stem convolution to ``w_0``; level ``l`` applies a
  :class:`~erlrestore.layers.DenseBlock` and a 1x1 convolution to ``w_l``,
  which is the level's *embedding* (the skip feature the decoder receives,
  and the feature that ERL-Net entangles). Down-sampling is a learned 2x2
  stride-2 convolution to ``w_{l+1}`` (DenseNet's transition: compression and
  pooling in one op) that reads the dense-block output, not the embedding:
  the embeddings are pure output heads. This lets ERL-Net start REN with
  zero heads (REN adds nothing, the stitched net equals the trained MEMD)
  while REN's trunk still receives gradients; if down-sampling read a
  zero-initialised embedding, every deeper level of REN would be dead.
  Level ``d`` (the bottleneck) has no down-sampling. Outputs:
  ``[skip_0, ..., skip_{d-1}, bottleneck]`` (``skip_l`` at ``1/2**l``
  resolution), or ``[bottleneck]`` when ``skips=False``.
- **Decoder** (:func:`build_decoder`): from the bottleneck, for
  ``l = d-1..0``: 2x2 stride-2 transposed convolution to ``w_l`` (learned
  up-sampling), then MEMD: ``FeatureFusion([skip_l, up])``; MEMD-:
  ``Conv1x1_{w_l}(concat([skip_l, up]))``; MEMD--: ``up`` alone; then a
  DenseBlock. Finally activation and a 3x3 convolution to 3 channels (linear
  output; zero-initialised when ``global_residual`` so that the untrained
  network is the identity).
- **MEMD** (:func:`build_memd`): ``PadToMultiple(2**d)`` -> MEN -> MDE ->
  ``+ padded input`` (when ``global_residual``) -> ``CropToMatch`` the input.
  Any input size works; the sub-models are named ``"men"`` and ``"mde"``.
"""

import dataclasses

import keras
import numpy as np

from erlrestore.layers import IMAGE_DTYPE, NORMS, CropToMatch, DenseBlock, FeatureFusion, PadToMultiple

# variant name -> (skips, fusion); ERL-Net Table 2.
VARIANTS = {"MEMD": (True, True), "MEMD-": (True, False), "MEMD--": (False, False)}


@dataclasses.dataclass(frozen=True)
class MEMDConfig:
    """Sizes of a MEMD (and of the ERL-Net / clean-to-clean nets built on it).

    The paper gives none of these numbers; every default is our choice, sized
    for 320x320 training crops at batch size 1.

    Attributes:
        depth: number of 2x down-sampling levels (inputs are padded to a
            multiple of ``2**depth``); the encoder has ``depth + 1`` levels.
        base_filters: embedding width of level 0; doubles per level ...
        max_filters: ... up to this cap.
        dense_layers: layers per DenseBlock.
        growth_rate: DenseBlock growth rate.
        skips: U-Net skip connections (False gives MEMD--).
        fusion: FeatureFusion after each skip concatenation (False gives
            MEMD- when ``skips``); requires ``skips``.
        norm: DenseBlock normalisation, ``"none"`` (default: the paper trains
            with batch size 1), ``"instance"`` or ``"batch"``.
        global_residual: add the input image to the decoder output.
        fusion_reduction: squeeze ratio of FeatureFusion's channel attention.
        activation: activation of the dense blocks and before the last conv.
    """

    depth: int = 4
    base_filters: int = 32
    max_filters: int = 256
    dense_layers: int = 4
    growth_rate: int = 16
    skips: bool = True
    fusion: bool = True
    norm: str = "none"
    global_residual: bool = True
    fusion_reduction: int = 4
    activation: str = "relu"

    def __post_init__(self):
        for field in ("depth", "base_filters", "max_filters", "dense_layers", "growth_rate", "fusion_reduction"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MEMDConfig: {field} must be a positive integer, got {value!r}")
        if self.norm not in NORMS:
            raise ValueError(f"MEMDConfig: norm must be one of {NORMS}, got {self.norm!r}")
        if self.fusion and not self.skips:
            raise ValueError("MEMDConfig: fusion=True needs skips=True (FUS fuses skip features)")

    @property
    def multiple(self):
        """Input sizes are padded to a multiple of this (``2**depth``)."""
        return 2**self.depth

    def widths(self):
        """Embedding widths ``[w_0, ..., w_depth]``."""
        return [min(self.base_filters * 2**level, self.max_filters) for level in range(self.depth + 1)]

    def feature_levels(self):
        """Encoder level of each entry of the encoder's feature list."""
        return list(range(self.depth + 1)) if self.skips else [self.depth]


def memd_config(variant="MEMD", **overrides):
    """The config of a Table 2 variant: ``"MEMD"`` (skip + FUS), ``"MEMD-"``
    (skip, no FUS) or ``"MEMD--"`` (no skip, no FUS); ``overrides`` set other
    :class:`MEMDConfig` fields."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MEMD variant {variant!r}; choose one of {sorted(VARIANTS)}")
    skips, fusion = VARIANTS[variant]
    return MEMDConfig(skips=skips, fusion=fusion, **overrides)


def build_encoder(config, name="men", head_levels=None, head_initializer="glorot_uniform"):
    """Builds MEN (or REN): image ``[B, H, W, 3]`` -> list of embeddings.

    ``H`` and ``W`` must be multiples of ``config.multiple`` (``build_memd``
    pads). Output: ``[skip_0, ..., skip_{depth-1}, bottleneck]`` (embedding of
    level ``l`` has ``config.widths()[l]`` channels at ``1/2**l`` resolution),
    or ``[bottleneck]`` when ``config.skips`` is False. Note that Keras returns
    a bare tensor, not a one-element list, when a one-output model is called
    eagerly.

    Args:
        config: a :class:`MEMDConfig`.
        name: model name (``"men"``, ``"ren"``).
        head_levels: encoder levels that get an embedding head (default
            ``config.feature_levels()``); ERL-Net's REN gets heads only at the
            entangled levels, so it has no unused weights.
        head_initializer: initializer of the embedding heads' kernels (biases
            start at zero); ``"zeros"`` makes every output zero.
    """
    if head_levels is None:
        head_levels = config.feature_levels()
    head_levels = sorted(set(head_levels))
    if not head_levels or head_levels[0] < 0 or head_levels[-1] > config.depth:
        raise ValueError(f"build_encoder: head_levels must be non-empty levels in 0..{config.depth}, got {head_levels}")
    widths = config.widths()
    image = keras.Input(shape=(None, None, 3), name=f"{name}_image")
    h = keras.layers.Conv2D(widths[0], 3, padding="same", name="stem")(image)
    outputs = []
    for level in range(config.depth + 1):
        dense = DenseBlock(
            config.dense_layers, config.growth_rate, norm=config.norm, activation=config.activation, name=f"dense_{level}"
        )(h)
        if level in head_levels:
            outputs.append(
                keras.layers.Conv2D(widths[level], 1, kernel_initializer=head_initializer, name=f"embed_{level}")(dense)
            )
        if level < config.depth:
            h = keras.layers.Conv2D(widths[level + 1], 2, strides=2, name=f"down_{level}")(dense)
    return keras.Model(image, outputs, name=name)


def build_decoder(config, name="mde"):
    """Builds MDE: the encoder's feature list -> image ``[B, H, W, 3]`` (linear).

    Skip handling per variant (see the module docstring): FeatureFusion
    (``fusion``), concatenation + 1x1 conv (``skips`` only), or none.
    """
    widths = config.widths()
    levels = config.feature_levels()
    inputs = [
        keras.Input(shape=(None, None, widths[level]), name=f"{name}_{'bottleneck' if level == config.depth else f'skip_{level}'}")
        for level in levels
    ]
    h = inputs[-1]
    for level in reversed(range(config.depth)):
        up = keras.layers.Conv2DTranspose(widths[level], 2, strides=2, name=f"up_{level}")(h)
        if config.skips and config.fusion:
            fused = FeatureFusion(widths[level], reduction=config.fusion_reduction, name=f"fuse_{level}")(
                [inputs[level], up]
            )
        elif config.skips:
            concat = keras.layers.Concatenate(name=f"concat_{level}")([inputs[level], up])
            fused = keras.layers.Conv2D(widths[level], 1, name=f"fuse_{level}")(concat)
        else:
            fused = up
        h = DenseBlock(
            config.dense_layers, config.growth_rate, norm=config.norm, activation=config.activation, name=f"dense_{level}"
        )(fused)
    h = keras.layers.Activation(config.activation, name="out_act")(h)
    init = "zeros" if config.global_residual else "glorot_uniform"
    output = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init, name="output", dtype=IMAGE_DTYPE)(h)
    return keras.Model(inputs, output, name=name)


def _wrap(config, image, restored_padded, padded, name):
    """Adds the global residual and crops back to the input size."""
    if config.global_residual:
        restored_padded = keras.layers.Add(name="global_residual", dtype=IMAGE_DTYPE)([restored_padded, padded])
    restored = CropToMatch(name="crop", dtype=IMAGE_DTYPE)([restored_padded, image])
    return keras.Model(image, restored, name=name)


def build_memd(config=None, name="memd"):
    """Builds a MEMD: image of any size ``[B, H, W, 3]`` -> restored ``[B, H, W, 3]``.

    Sub-models ``model.get_layer("men")`` and ``model.get_layer("mde")`` can be
    frozen/trained separately. ``config`` defaults to ``MEMDConfig()``.
    """
    config = config or MEMDConfig()
    image = keras.Input(shape=(None, None, 3), name="image")
    padded = PadToMultiple(config.multiple, name="pad", dtype=IMAGE_DTYPE)(image)
    men = build_encoder(config, name="men")
    mde = build_decoder(config, name="mde")
    return _wrap(config, image, mde(men(padded)), padded, name)


def config_from_model(model):
    """Recovers the :class:`MEMDConfig` of a MEMD / ERL-Net / C2C model built here.

    Reads the layer configs of the ``men`` and ``mde`` sub-models (also works on
    a model loaded from a ``.keras`` file). ``max_filters`` is recovered as the
    default when the cap is not reached (any cap above the widths builds the
    same network).
    """
    try:
        men, mde = model.get_layer("men"), model.get_layer("mde")
        stem = men.get_layer("stem")
        block = men.get_layer("dense_0")
    except ValueError as err:
        raise ValueError(f"model {model.name!r} is not a MEMD-family model built by erlrestore ({err})") from None
    depth = sum(1 for layer in men.layers if layer.name.startswith("down_"))
    base = stem.filters
    top = men.get_layer(f"embed_{depth}").filters
    default_cap = MEMDConfig.max_filters
    max_filters = default_cap if top == base * 2**depth and default_cap >= top else top
    fusions = [layer for layer in mde.layers if isinstance(layer, FeatureFusion)]
    skips = any(layer.name == "embed_0" for layer in men.layers)
    return MEMDConfig(
        depth=depth,
        base_filters=base,
        max_filters=max_filters,
        dense_layers=block.num_layers,
        growth_rate=block.growth_rate,
        skips=skips,
        fusion=bool(fusions),
        norm=block.norm,
        global_residual=any(layer.name == "global_residual" for layer in model.layers),
        fusion_reduction=fusions[0].reduction if fusions else MEMDConfig.fusion_reduction,
        activation=keras.activations.serialize(block.activation),
    )


def count_params(model):
    """Total number of weights (trainable and not) of ``model``, as an int."""
    return int(sum(np.prod(weight.shape, dtype=np.int64) for weight in model.weights))
