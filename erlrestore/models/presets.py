"""Named networks at full size, each with a tiny variant: one table for the tools and the tests.

:data:`PRESETS` maps a name to a label and to the
:class:`~erlrestore.training.settings.TrainSettings` fields that choose the
network (for the generative family also its PatchGAN and losses) at the size
the papers train it; the fields' ``model`` names its model family
(:attr:`Preset.family`, :mod:`erlrestore.training.families`):

* ``memd``: MEMD (``MEMDConfig()``: depth 4, 32 base filters), strategy MEMD;
* ``erlnet``: ERL-Net with MLGD entanglement and its clean-to-clean net,
  strategy MA_D;
* ``pix2pix``: UNet-8 (64 filters) + 5-layer PatchGAN, LSGAN,
  ``L_G = adversarial + 100 L1``;
* ``unet5_infoaccum15_subpix``: UNet-5 + InfoAccum-15 + SubPixUpsamp + the
  same PatchGAN, LSGAN.

:func:`settings_fields` also takes any generator name
:func:`erlrestore.models.pix2pix.generator_config` knows (``unet3``,
``endec5``...), for the tools that restore with a generator alone.

The tiny variant is the model family's (its ``tiny``): it keeps each
network's structure and shrinks it so that it builds and runs in well under
a second on a CPU: MEMD / ERL-Net at depth 2 with 4 base filters and
DenseBlocks of 2 layers growing by 4 (:data:`TINY_MEMD`, fields of both
``MEMDConfig`` and ``TrainSettings``); generators at most 2 levels deep with
4 filters, InfoAccum with 2 layers growing by 2, and a 4-filter PatchGAN.
Tiny networks pad to a multiple of 4.
``python -m tools.benchmark --quick``, ``python -m tools.bench_deploy --tiny``
and the tests build them.
"""

import dataclasses

from erlrestore.models import pix2pix
from erlrestore.training import erl_family, families

# MEMDConfig (and TrainSettings) fields of the tiny MEMD / ERL-Net: the ERL-Net family's (erl_family.TINY_FIELDS),
# by the name the tests and tools build tiny MEMDs with. The generators' are gan_family's (gan_family.tiny).
TINY_MEMD = erl_family.TINY_FIELDS


@dataclasses.dataclass(frozen=True)
class Preset:
    """A named network: how reports label it and its ``TrainSettings`` fields at full size."""

    label: str
    fields: dict

    @property
    def family(self):
        """The :class:`~erlrestore.training.families.Family` of the preset's model."""
        return families.of_model(self.fields["model"])


_GAN_LOSSES = {"gan_loss": "lsgan", "l1_weight": 100.0}

PRESETS = {
    "memd": Preset("MEMD", {"model": "MEMD"}),
    "erlnet": Preset("ERL-Net MLGD", {"model": "ERLNet", "strategy": "MA_D", "entanglement": "MLGD"}),
    "pix2pix": Preset("pix2pix UNet-8 + PatchGAN", {"model": "UNet", "levels": 8, "gen_filters": 64, **_GAN_LOSSES}),
    "unet5_infoaccum15_subpix": Preset(
        "UNet-5+InfoAccum-15+SubPixUpsamp + PatchGAN",
        {"model": "UNet", "levels": 5, "gen_filters": 64, "info_accum_layers": 15, "subpixel": True, **_GAN_LOSSES}),
}


def generator_fields(name):
    """``TrainSettings`` fields of the generator called ``name`` (ValueError for a name pix2pix does not know)."""
    config = pix2pix.generator_config(name)
    return {"model": "UNet" if config.kind == "unet" else "EnDec", "levels": config.levels,
            "info_accum_layers": config.info_accum_layers, "subpixel": config.subpixel}


def tiny_fields(fields):
    """The tiny variant of a network's ``TrainSettings`` fields: its model family's (module docstring)."""
    return families.of_model(fields["model"]).tiny_fields(fields)


def settings_fields(name, tiny=False):
    """``TrainSettings`` fields of a preset or generator name, full size or tiny.

    Raises:
      ValueError for a name that is neither a preset nor a generator name.
    """
    fields = dict(PRESETS[name].fields) if name in PRESETS else generator_fields(name)
    return tiny_fields(fields) if tiny else fields
