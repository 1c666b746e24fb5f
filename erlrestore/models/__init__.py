"""Restoration networks.

- :mod:`erlrestore.models.memd`: ERL-Net's MEMD baseline (MEN encoder, MDE
  decoder) and its Table 2 variants, :class:`MEMDConfig`.
- :mod:`erlrestore.models.erlnet`: ERL-Net (REN entangling MEN's embeddings,
  CLGD / MLGD), stitching a REN onto a trained MEMD, the clean-to-clean network
  and the feature outputs of the feature loss.
- :mod:`erlrestore.models.pix2pix`: the rethinking paper's generators (UNet-N,
  En/Decoder-N, with InfoAccum / SubPixUpsamp) and the PatchGAN discriminator.
- :mod:`erlrestore.models.presets`: the named networks the tools benchmark,
  each with its model family and a tiny variant for quick runs and tests.
- :mod:`erlrestore.models.flops`: the FLOPs of a network's forward pass,
  counted from the shapes its layers see.

All builders return functional ``keras.Model`` objects on channels-last float32
images of any size.
"""

from erlrestore.models.erlnet import (
    ENTANGLEMENTS,
    build_clean_to_clean,
    build_erlnet,
    encoder_feature_model,
    entangled_levels,
    erlnet_feature_model,
    erlnet_from_memd,
)
from erlrestore.models.memd import (
    VARIANTS,
    MEMDConfig,
    build_decoder,
    build_encoder,
    build_memd,
    config_from_model,
    count_params,
    memd_config,
)
from erlrestore.models.pix2pix import (
    GENERATOR_PRESETS,
    KINDS,
    WEIGHT_INITS,
    GeneratorConfig,
    build_generator,
    build_patchgan,
    generator_config,
    init_pix2pix_weights,
    patchgan_output_size,
)

__all__ = [
    "ENTANGLEMENTS",
    "GENERATOR_PRESETS",
    "KINDS",
    "VARIANTS",
    "WEIGHT_INITS",
    "GeneratorConfig",
    "MEMDConfig",
    "build_clean_to_clean",
    "build_decoder",
    "build_encoder",
    "build_erlnet",
    "build_generator",
    "build_memd",
    "build_patchgan",
    "config_from_model",
    "count_params",
    "encoder_feature_model",
    "entangled_levels",
    "erlnet_feature_model",
    "erlnet_from_memd",
    "generator_config",
    "init_pix2pix_weights",
    "memd_config",
    "patchgan_output_size",
]
