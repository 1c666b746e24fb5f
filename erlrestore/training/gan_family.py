"""The generative family (``gan``): UNet-N / En/Decoder-N generators with a PatchGAN (rethinking paper).

Its :class:`~erlrestore.training.families.Family` record, :data:`FAMILY`,
and what the record points to:

* :class:`GANSettings`: the settings only this family reads (generator,
  discriminator, losses, initialisation, the discriminator pre-training
  data), declared once with their flags; defaults are pix2pix's;
* the networks: the generator (``final.keras``) and the PatchGAN
  (``discriminator.keras``), initialised as pix2pix's published
  implementation does (``weight_init``, :func:`build_networks`);
* the trainer: :class:`~erlrestore.training.gan_trainer.GANTrainer`, two
  Adam optimizers with ``beta_1``; the strategies of
  :data:`erlrestore.training.strategies.GAN_STRATEGIES` (default GAN);
  2e-4 and pix2pix's linear decay, the plateau rule watching ``g_loss``;
* the data of the DPRE_GAN discriminator pre-training stage
  (:func:`stage_data`), the tiny variant (:func:`tiny`), the crop a
  PatchGAN needs (:func:`check_crop`) and the FLOP count of a training step
  (:func:`training_step_flops`).
"""

import dataclasses

from erlrestore import losses
from erlrestore.models import flops, pix2pix
from erlrestore.training import families, options, strategies
from erlrestore.training.gan_trainer import GANTrainer

NAME = "gan"

# TrainSettings fields of a tiny generator and PatchGAN: 4 filters, at most TINY_LEVELS levels, InfoAccum (where
# the network has one) with 2 layers growing by 2; pads to a multiple of 4.
TINY_FIELDS = {"gen_filters": 4, "d_filters": 4}
TINY_LEVELS = 2
TINY_INFO_ACCUM = {"info_accum_layers": 2, "info_accum_growth": 2}


@dataclasses.dataclass(frozen=True, kw_only=True)
class GANSettings:
    """The settings of the generative family (a base of TrainSettings; defaults: pix2pix)."""

    levels: int = options.integer(8, "Generator down/up-sampling levels N (pix2pix: 8).", lower=1, upper=8,
                                  identity=True, family=NAME)
    gen_filters: int = options.integer(64, "Generator width of the first level.", lower=1, identity=True,
                                       family=NAME)
    gen_norm: str = options.choice("batch", pix2pix.NORM_CHOICES, "Generator and discriminator "
                                   "normalisation.", identity=True, family=NAME)
    dropout: float = options.number(0.5, "Dropout of the deepest decoder blocks.", lower=0, upper=0.99,
                                    identity=True, family=NAME)
    info_accum_layers: int = options.integer(0, "InfoAccum-L layers (0: none; paper: 15).", lower=0,
                                             identity=True, family=NAME)
    info_accum_growth: int = options.integer(4, "InfoAccum growth rate per dilation path.", lower=1,
                                             identity=True, family=NAME)
    info_accum_positions: tuple = options.values((0,), int, "InfoAccum positions: 0 before the generator, k "
                                                 "before level k.", identity=True, family=NAME)
    subpixel: bool = options.boolean(False, "Top decoder up-sampling by sub-pixel convolution (SubPixUpsamp).",
                                     identity=True, family=NAME)
    gen_residual: bool = options.boolean(False, "The generator predicts a correction added to the input (our "
                                         "addition; the papers' rows: off).", identity=True, family=NAME,
                                         absent_means=False)
    gan_loss: str = options.choice("bce", list(losses.GAN_LOSSES), "Adversarial loss: pix2pix BCE or LSGAN.",
                                   identity=True, family=NAME)
    l1_weight: float = options.number(100.0, "lambda of the generator's pixel term, L1 or MSE as --pixel_loss "
                                      "says (pix2pix: 100 with L1; the name is kept for compatibility).", lower=0,
                                      identity=True, family=NAME)
    d_filters: int = options.integer(64, "PatchGAN width of the first layer.", lower=1, identity=True, family=NAME)
    d_layers: int = options.integer(5, "PatchGAN layers (paper: 5).", lower=2, identity=True, family=NAME)
    beta_1: float = options.number(0.5, "Adam beta_1 of the generative family (paper: 0.5).", lower=0, upper=1,
                                   family=NAME)
    # pix2pix's N(0, 0.02) init of both networks, or "keras" (pix2pix.WEIGHT_INITS); runs recorded before the
    # choice existed had Keras' initialisers.
    weight_init: str = options.choice(
        "pix2pix", pix2pix.WEIGHT_INITS, "Generator and discriminator initialisation: pix2pix's (conv kernels "
        "N(0, 0.02), norm scales N(1, 0.02), biases 0; from --seed) or Keras' defaults (Glorot uniform).",
        identity=True, family=NAME, absent_means="keras")
    # The generator's pixel term, weighed by l1_weight: "l1" (pix2pix) or "mse".
    pixel_loss: str = options.choice(
        "l1", ["l1", "mse"], "Generator pixel loss: L1 (pix2pix) or mean squared error (the rethinking paper's "
        "Table III autoencoders); logged as g_l1 / g_mse.", identity=True, family=NAME, absent_means="l1")
    # Data of a DPRE_GAN discriminator pre-training stage (stage_data).
    d_pretrain_input_dir: str = options.text("", "Data of the DPRE_GAN discriminator pre-training stage "
                                             "(default: the training data).", family=NAME)
    d_pretrain_target_dir: str = options.text("", "Clean images of the pre-training data, if not inside it.",
                                              family=NAME)


def generator_config(settings):
    """The :class:`~erlrestore.models.pix2pix.GeneratorConfig` of the settings (ValueError for a bad one)."""
    return pix2pix.GeneratorConfig(
        levels=settings.levels, kind=settings.model.lower(), base_filters=settings.gen_filters,
        norm=settings.gen_norm, dropout=settings.dropout, info_accum_layers=settings.info_accum_layers,
        info_accum_growth=settings.info_accum_growth, info_accum_positions=tuple(settings.info_accum_positions),
        subpixel=settings.subpixel, global_residual=settings.gen_residual,
    )


def build_networks(settings):
    """``{"final.keras": generator, "discriminator.keras": PatchGAN}``.

    Both get pix2pix's initialisation
    (:func:`~erlrestore.models.pix2pix.init_pix2pix_weights`: conv kernels
    ``N(0, 0.02)``, norm scales ``N(1, 0.02)``, biases and shifts 0) with
    ``weight_init="pix2pix"``, drawn from the run's seed (``(seed, 0)`` for
    the generator, ``(seed, 1)`` for the discriminator) so that a run is
    reproducible; ``weight_init="keras"`` keeps Keras' initialisers.
    """
    generator = pix2pix.build_generator(generator_config(settings))
    discriminator = pix2pix.build_patchgan(settings.d_filters, settings.d_layers, settings.gen_norm)
    if settings.weight_init == "pix2pix":
        pix2pix.init_pix2pix_weights(generator, seed=(settings.data.seed, 0))
        pix2pix.init_pix2pix_weights(discriminator, seed=(settings.data.seed, 1))
    return {"final.keras": generator, "discriminator.keras": discriminator}


def build_trainer(settings, networks, optimizer, jit_compile):
    """A compiled :class:`GANTrainer`, each network with its own Adam (``beta_1``, ``beta_2=0.999``)."""
    trainer = GANTrainer(networks["final.keras"], networks["discriminator.keras"], gan_loss=settings.gan_loss,
                         l1_weight=settings.l1_weight, pixel_loss=settings.pixel_loss, name="trainer")
    trainer.compile(g_optimizer=optimizer(beta_1=settings.beta_1, beta_2=0.999),
                    d_optimizer=optimizer(beta_1=settings.beta_1, beta_2=0.999), jit_compile=jit_compile)
    return trainer


def check(settings, strategy):
    """Refuses generator settings pix2pix cannot build, an unknown initialisation or pixel loss."""
    generator_config(settings)  # validates the generator fields
    if settings.weight_init not in pix2pix.WEIGHT_INITS:
        raise ValueError(f"unknown weight_init {settings.weight_init!r}; choose one of {', '.join(pix2pix.WEIGHT_INITS)}")
    if settings.pixel_loss not in losses.PIXEL_LOSSES:
        raise ValueError(f"unknown pixel loss {settings.pixel_loss!r}; choose one of {', '.join(losses.PIXEL_LOSSES)}")


def check_crop(settings, size):
    """Refuses a crop too small for the PatchGAN (its output would be empty)."""
    if pix2pix.patchgan_output_size(size, settings.d_layers) < 1:
        raise ValueError(f"a {size} px crop is too small for a {settings.d_layers}-layer PatchGAN "
                         f"(its output would be empty); use a larger size")


def stage_data(settings):
    """``{"d_pretrain": DataSettings}``: the data of DPRE_GAN's discriminator pre-training stage.

    The run's data settings with the ``d_pretrain`` folders as the only
    training source; none (``{}``: the stage trains on the run's data)
    without ``--d_pretrain_input_dir``.
    """
    if not settings.d_pretrain_input_dir:
        return {}
    data = dataclasses.replace(settings.data, train_input_dir=settings.d_pretrain_input_dir,
                               train_target_dir=settings.d_pretrain_target_dir, pairs="", train_tfrecords="",
                               synthetic_clean_dir="", procedural=0)
    return {"d_pretrain": data}  # the stage's name in strategies.GAN_STRATEGIES["DPRE_GAN"]


def tiny(fields):
    """The tiny variant of a generator's fields: :data:`TINY_FIELDS`, at most :data:`TINY_LEVELS` levels, and
    :data:`TINY_INFO_ACCUM` where the generator has InfoAccum."""
    small = {**fields, **TINY_FIELDS, "levels": min(fields.get("levels", TINY_LEVELS), TINY_LEVELS)}
    if fields.get("info_accum_layers"):
        small.update(TINY_INFO_ACCUM)
    return small


def forward_flops(networks, size):
    """Forward FLOPs at batch 1: ``{"g": F_G, "d": F_D}`` (one discriminator call on an (input, image) pair)."""
    shape = (1, size, size, 3)
    return {"g": flops.conv_flops(networks["final.keras"], shape),
            "d": flops.conv_flops(networks["discriminator.keras"], [shape, shape])}


def training_step_flops(g_forward, d_forward):
    """FLOPs of one GAN training step: ``3 F_G + 7 F_D``.

    G's forward and its backward (about twice the forward: gradients with
    respect to activations and to weights) make ``3 F_G``; D runs forward
    twice (real and fake pairs, ``2 F_D``), ``L_D`` back-propagates through
    both calls (``2 * 2 F_D``) and ``L_G``'s adversarial term
    back-propagates once more through the fake call to reach G, needing
    activation gradients only (``F_D``).
    """
    return 3 * g_forward + 7 * d_forward


def step_flops(stage, forward):
    """(training-step FLOPs, inference FLOPs) per image from :func:`forward_flops`'s counts (any stage)."""
    return training_step_flops(forward["g"], forward["d"]), forward["g"]


FAMILY = families.Family(
    name=NAME,
    models={"UNet": "GAN", "EnDec": "GAN"},
    strategies=strategies.GAN_STRATEGIES,
    learning_rate=2e-4,
    lr_schedule="linear_decay",
    plateau_monitor="g_loss",
    build_networks=build_networks,
    build_trainer=build_trainer,
    settings=GANSettings,
    check=check,
    check_crop=check_crop,
    stage_data=stage_data,
    build_restoration=lambda settings: pix2pix.build_generator(generator_config(settings)),
    tiny=tiny,
    forward_flops=forward_flops,
    step_flops=step_flops,
)
