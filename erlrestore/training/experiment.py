"""A training run end to end from plain settings, for both model families.

``train(settings)`` builds what the settings name, the data and the
strategy's stages, and runs them in ``settings.model_dir`` with checkpoints
and resume (``erlrestore.training.run``):

* the ERL-Net family (``--model`` MEMD, MEMD-, MEMD--, ERLNet):
  :class:`~erlrestore.training.erl_trainer.StagedTrainer` over the restoration
  net and, for ERL-Net, the clean-to-clean net (strategies ``STRATEGIES``);
* the generative family (``--model`` UNet, EnDec):
  :class:`~erlrestore.training.gan_trainer.GANTrainer` over a UNet-N / En/Decoder-N
  generator and a PatchGAN (strategies ``GAN_STRATEGIES``).

When every stage is done it writes ``final.keras`` (the restoration network
only: MEMD/ERL-Net or the generator) and the auxiliary networks
(``c2c.keras``, ``discriminator.keras``).

The settings a run was started with are kept in ``run_config.json``; a
restart with settings that change the network, strategy or stage lengths
is refused rather than mixing two runs in one folder.

Where and how it computes (``distribution_strategy``, ``precision``,
``jit_compile``) is resolved by :mod:`erlrestore.training.devices`; the
networks, optimizers and checkpoints are made inside the distribution's scope.
Whatever the training precision, the saved ``.keras`` models are float32.

The generative family follows pix2pix's published implementation: both
networks are initialised from ``N(0, 0.02)`` (``weight_init``, see
:func:`build_networks`), the discriminator is updated before the generator
on every step (:mod:`erlrestore.training.gan_trainer`), and each stage keeps its
learning rate for half its steps, then decays it linearly
(``lr_schedule``, see :meth:`TrainSettings.resolved_lr_schedule`).

ERL-Net is built with REN's embedding heads zero-initialised: while REN is
frozen (stage I of the MA strategies) it adds exactly nothing, so stage I
trains a plain MEMD as in the paper, and stage II stitches REN on.
"""

import contextlib
import dataclasses
import json
import os

import keras
import tensorflow as tf

from erlrestore import losses
from erlrestore.data import image_files, pairing
from erlrestore.models import erlnet, memd, pix2pix
from erlrestore.training import devices, folder_lock, inputs, options, run, strategies
from erlrestore.training.gan_trainer import GANTrainer
from erlrestore.training.optimizers import FusedAdam
from erlrestore.training.erl_trainer import StagedTrainer

ERL_MODELS = ("MEMD", "MEMD-", "MEMD--", "ERLNet")
GAN_MODELS = ("UNet", "EnDec")
MODELS = ERL_MODELS + GAN_MODELS

# Learning-rate schedules (--lr_schedule); "auto" resolves per family (TrainSettings.resolved_lr_schedule).
LR_SCHEDULES = ("auto", "linear_decay", "plateau", "constant")

STAGE_BUDGETS = ("each", "split")

# The two model families (TrainSettings.family); a setting declared for one is ignored by the other.
_ERL, _GAN = "erl", "gan"


def _keras_verbosity(flag_value):
    """--verbose: "auto" or Keras' 0, 1, 2."""
    return flag_value if flag_value == "auto" else int(flag_value)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """Everything a training run is made from; each setting is declared once, with its flag.

    ``erlrestore-train``'s flags, :func:`settings_from_argv` and the run's
    identity in ``run_config.json`` are made from these declarations
    (:mod:`erlrestore.training.options`): ``identity=True`` marks what a
    resumed run must keep (what is trained: the networks, the strategy, the
    stage lengths, the losses, the schedule, the batch size), ``family``
    the settings only one model family reads. ``absent_means`` is the value
    runs recorded before the setting existed were trained with.
    """

    model_dir: str = options.text(None, "Checkpoints, logs, run_config.json and final.keras go here.", required=True)
    # What to train.
    model: str = options.choice("ERLNet", MODELS, "Network: MEMD baselines / ERL-Net, or a UNet-N / En/Decoder-N "
                                "generator with a PatchGAN.", identity=True)
    # Default: MA_D for ERLNet, MEMD for the baselines, GAN for generators (resolved_strategy; recorded resolved).
    strategy: str = options.choice(
        "", [""] + list(strategies.STRATEGIES) + list(strategies.GAN_STRATEGIES),
        "Training strategy: ERL-Net Table 1 (default MA_D; MEMD for the baselines) or a generator "
        "strategy (default GAN; L1, RECON, RECON_GAN, RECON_L1, DPRE_GAN).", identity=True)
    # ERL-Net family (defaults are our choices; the paper gives no sizes).
    entanglement: str = options.choice("MLGD", erlnet.ENTANGLEMENTS, "ERL-Net entanglement: bottleneck only or "
                                       "every level.", identity=True, family=_ERL)
    depth: int = options.integer(4, "U-Net levels (down-samplings).", lower=1, identity=True, family=_ERL)
    base_filters: int = options.integer(32, "Embedding width of the first level (doubles per level).", lower=1,
                                        identity=True, family=_ERL)
    dense_layers: int = options.integer(4, "Layers per dense block.", lower=1, identity=True, family=_ERL)
    growth_rate: int = options.integer(16, "Dense block growth rate.", lower=1, identity=True, family=_ERL)
    norm: str = options.choice("none", ["none", "instance", "batch"], "Normalisation inside dense blocks.",
                               identity=True, family=_ERL)
    global_residual: bool = options.boolean(
        True, "Restoration nets predict a correction added to the input (our addition; the paper's flagfiles "
        "say --noglobal_residual: its decoder generates the image).", identity=True, family=_ERL)
    # Not part of a run's identity: a restart may change lambda.
    fre_weight: float = options.number(0.01, "lambda of L_ERL = L_pre + lambda L_fre (paper: 0.01).", lower=0,
                                       family=_ERL)
    # L_fre: per-level mean, summed over levels (losses.FRE_REDUCTIONS).
    fre_reduction: str = options.choice(
        "mean_sum", list(losses.FRE_REDUCTIONS), "L_fre: mean |difference| of each entangled level, then summed "
        "(mean_sum) or averaged (mean_mean, = mean_sum / levels) over the levels.",
        identity=True, family=_ERL, absent_means="mean_sum")
    # Generative family (defaults: pix2pix).
    levels: int = options.integer(8, "Generator down/up-sampling levels N (pix2pix: 8).", lower=1, upper=8,
                                  identity=True, family=_GAN)
    gen_filters: int = options.integer(64, "Generator width of the first level.", lower=1, identity=True,
                                       family=_GAN)
    gen_norm: str = options.choice("batch", ["batch", "instance", "none"], "Generator and discriminator "
                                   "normalisation.", identity=True, family=_GAN)
    dropout: float = options.number(0.5, "Dropout of the deepest decoder blocks.", lower=0, upper=0.99,
                                    identity=True, family=_GAN)
    info_accum_layers: int = options.integer(0, "InfoAccum-L layers (0: none; paper: 15).", lower=0,
                                             identity=True, family=_GAN)
    info_accum_growth: int = options.integer(4, "InfoAccum growth rate per dilation path.", lower=1,
                                             identity=True, family=_GAN)
    info_accum_positions: tuple = options.values((0,), int, "InfoAccum positions: 0 before the generator, k "
                                                 "before level k.", identity=True, family=_GAN)
    subpixel: bool = options.boolean(False, "Top decoder up-sampling by sub-pixel convolution (SubPixUpsamp).",
                                     identity=True, family=_GAN)
    gen_residual: bool = options.boolean(False, "The generator predicts a correction added to the input (our "
                                         "addition; the papers' rows: off).", identity=True, family=_GAN,
                                         absent_means=False)
    gan_loss: str = options.choice("bce", list(losses.GAN_LOSSES), "Adversarial loss: pix2pix BCE or LSGAN.",
                                   identity=True, family=_GAN)
    l1_weight: float = options.number(100.0, "lambda of the generator's pixel term, L1 or MSE as --pixel_loss "
                                      "says (pix2pix: 100 with L1; the name is kept for compatibility).", lower=0,
                                      identity=True, family=_GAN)
    d_filters: int = options.integer(64, "PatchGAN width of the first layer.", lower=1, identity=True, family=_GAN)
    d_layers: int = options.integer(5, "PatchGAN layers (paper: 5).", lower=2, identity=True, family=_GAN)
    beta_1: float = options.number(0.5, "Adam beta_1 of the generative family (paper: 0.5).", lower=0, upper=1,
                                   family=_GAN)
    # pix2pix's N(0, 0.02) init of both networks, or "keras" (pix2pix.WEIGHT_INITS); runs recorded before the
    # choice existed had Keras' initialisers.
    weight_init: str = options.choice(
        "pix2pix", pix2pix.WEIGHT_INITS, "Generator and discriminator initialisation: pix2pix's (conv kernels "
        "N(0, 0.02), norm scales N(1, 0.02), biases 0; from --seed) or Keras' defaults (Glorot uniform).",
        identity=True, family=_GAN, absent_means="keras")
    # The generator's pixel term, weighed by l1_weight: "l1" (pix2pix) or "mse".
    pixel_loss: str = options.choice(
        "l1", ["l1", "mse"], "Generator pixel loss: L1 (pix2pix) or mean squared error (the rethinking paper's "
        "Table III autoencoders); logged as g_l1 / g_mse.", identity=True, family=_GAN, absent_means="l1")
    # Data of a DPRE_GAN discriminator pre-training stage (pretrain_data).
    d_pretrain_input_dir: str = options.text("", "Data of the DPRE_GAN discriminator pre-training stage "
                                             "(default: the training data).", family=_GAN)
    d_pretrain_target_dir: str = options.text("", "Clean images of the pre-training data, if not inside it.",
                                              family=_GAN)
    # Schedule.
    stage_steps: tuple = options.values((), int, "Optimizer steps per stage: one value for all stages or one per "
                                        "stage.", identity=True)
    stage_epochs: tuple = options.values((), float, "Passes over the training images per stage (paper: 400 in "
                                         "all).", identity=True)
    # One length: "each" stage gets it, or "split" it over the stages (stage_lengths).
    stage_budget: str = options.choice(
        "each", STAGE_BUDGETS, "With one --stage_steps/--stage_epochs value: give it to each stage, or split it as "
        "a total over the stages (earlier stages get the remainder steps); split refuses one value per stage.",
        identity=True, absent_means="each")
    checkpoint_every: int = options.integer(500, "Steps between checkpoints (one Keras epoch).", lower=1)
    # 0: the family's paper value (ERL-Net 4e-4, pix2pix 2e-4; resolved_learning_rate).
    learning_rate: float = options.number(0.0, "Adam learning rate at the start of each stage (0: the paper's, "
                                          "4e-4 for ERL-Net, 2e-4 for the generators).", lower=0)
    plateau_patience: int = options.integer(10, "Divide the learning rate after this many checkpoint intervals "
                                            "without a lower loss (0: never); only with the plateau --lr_schedule.",
                                            lower=0)
    plateau_factor: float = options.number(0.1, "Factor applied on a plateau (paper: 1/10).", lower=0)
    # linear_decay (pix2pix), plateau, constant; auto: per family (resolved_lr_schedule; recorded resolved).
    # Runs recorded before the choice existed had the plateau rule.
    lr_schedule: str = options.choice(
        "auto", LR_SCHEDULES, "Learning rate in each stage: linear_decay (pix2pix: constant for the first half of "
        "the stage's steps, then linearly towards 0, on both GAN optimizers), plateau (--plateau_patience, "
        "--plateau_factor), constant; auto: linear_decay for UNet/EnDec, plateau for the ERL-Net family.",
        identity=True, absent_means="plateau")
    val_every: int = options.integer(1, "Validate every N checkpoint intervals.", lower=1)
    verbose: object = options.choice("auto", ["auto", "0", "1", "2"], "Keras progress output.",
                                     convert=_keras_verbosity)
    # End this invocation at the first checkpoint after this many steps (0: run to the end).
    stop_after: int = options.integer(0, "End this invocation at the first checkpoint after this many optimizer "
                                      "steps (0: train to the end); run the same command again to continue.",
                                      lower=0)
    # Devices (erlrestore.training.devices).
    distribution_strategy: str = options.choice(
        "default", devices.DISTRIBUTIONS, "default: one device; mirrored: local GPUs (or --devices); "
        "multi_worker_mirrored: the cluster in TF_CONFIG; tpu: a TPU (--tpu).")
    precision: str = options.choice(
        "auto", devices.PRECISIONS, "Compute precision; auto: mixed_bfloat16 on CPUs with bfloat16 arithmetic "
        "(else float32), on Ampere and newer GPUs and on TPUs; mixed_float16 (with loss scaling) on older "
        "tensor-core GPUs.")
    jit_compile: str = options.choice("auto", devices.JIT_CHOICES, "XLA compilation of the train step (auto: off).")
    # After every use of the devices module in this class body: the field's name hides the module here.
    devices: tuple = options.values((), str, "Devices of the mirrored strategy, e.g. /gpu:0,/gpu:1 (default: all "
                                    "GPUs).")
    tpu: str = options.text("", "TPU name or address for --distribution_strategy=tpu (default: the local one).")
    data: inputs.DataSettings = options.group(inputs.DataSettings)

    @property
    def family(self):
        """The family whose settings this run reads: "erl" or "gan" (``family=`` of the declarations)."""
        return _GAN if self.is_gan else _ERL

    @property
    def pretrain_data(self):
        """The data of a discriminator pre-training stage: ``data`` with the d_pretrain folders, or None."""
        if not self.d_pretrain_input_dir:
            return None
        return dataclasses.replace(self.data, train_input_dir=self.d_pretrain_input_dir,
                                   train_target_dir=self.d_pretrain_target_dir, pairs="", train_tfrecords="",
                                   synthetic_clean_dir="", procedural=0)

    @property
    def is_gan(self):
        return self.model in GAN_MODELS

    def resolved_strategy(self):
        if self.strategy:
            return self.strategy
        if self.is_gan:
            return "GAN"
        return "MA_D" if self.model == "ERLNet" else "MEMD"

    def resolved_learning_rate(self):
        if self.learning_rate:
            return self.learning_rate
        return 2e-4 if self.is_gan else 4e-4

    def resolved_lr_schedule(self):
        """The learning-rate schedule of each stage.

        ``linear_decay``: pix2pix's ``lr_policy="linear"``, constant for the
        first half of a stage's steps, then linearly down towards zero
        (:class:`~erlrestore.training.run.LinearDecay`); the default
        (``auto``) of the generative family. ``plateau``: divided by
        ``1 / plateau_factor`` after ``plateau_patience`` checkpoint intervals
        without a lower loss (never when ``plateau_patience`` is 0); the
        default of the ERL-Net family (the ERL-Net paper's). ``constant``: the
        base rate throughout.
        """
        if self.lr_schedule != "auto":
            return self.lr_schedule
        return "linear_decay" if self.is_gan else "plateau"


def settings_from_argv(argv):
    """:class:`TrainSettings` from ``erlrestore-train`` arguments, in this process (no program name).

    ``settings_from_argv(["--flagfile=flags/memd.flags", "--crop_size=64", "--model_dir=runs/x"])``
    parses with the flags ``erlrestore-train`` defines for the settings, in a
    private ``FlagValues`` (the caller's own flags are untouched). Raises
    absl's ``flags.Error`` (``IllegalFlagValueError`` for a value out of
    bounds or choices, ``UnrecognizedFlagError``...) or ValueError (a bad
    list item); :func:`check_settings` then checks that they make a run.
    ``--max_image_pixels`` is a process setting of the command, not a
    training setting: it is not known here.
    """
    return options.from_argv(TrainSettings, argv)


def check_settings(settings):
    """Raises ValueError for settings that cannot make a run; returns the stages."""
    if settings.model not in MODELS:
        raise ValueError(f"unknown model {settings.model!r}; choose one of {', '.join(MODELS)}")
    strategy = settings.resolved_strategy()
    if settings.is_gan:
        if strategy not in strategies.GAN_STRATEGIES:
            raise ValueError(f"strategy {strategy} is not for generators; "
                             f"choose one of {', '.join(strategies.GAN_STRATEGIES)}")
        stage_list = strategies.gan_strategy(strategy)
        generator_config(settings)  # validates the generator fields
    else:
        if strategy not in strategies.STRATEGIES:
            raise ValueError(f"strategy {strategy} is not for {settings.model}; "
                             f"choose one of {', '.join(strategies.STRATEGIES)}")
        stage_list = strategies.strategy(strategy)
        if settings.model != "ERLNet" and strategy != "MEMD":
            raise ValueError(f"strategy {strategy} trains a residual encoder; it needs --model=ERLNet")
        if settings.model == "ERLNet" and strategy == "MEMD":
            raise ValueError("strategy MEMD trains a baseline; use --model=MEMD (or MEMD-, MEMD--)")
    if bool(settings.stage_steps) == bool(settings.stage_epochs):
        raise ValueError("give the stage lengths as exactly one of --stage_steps or --stage_epochs")
    lengths = settings.stage_steps or settings.stage_epochs
    if len(lengths) not in (1, len(stage_list)):
        raise ValueError(
            f"strategy {strategy} has {len(stage_list)} stages "
            f"({', '.join(s.name for s in stage_list)}); give 1 or {len(stage_list)} stage lengths, got {len(lengths)}"
        )
    if any(value <= 0 for value in lengths):
        raise ValueError(f"stage lengths must be positive, got {list(lengths)}")
    if settings.stage_budget not in STAGE_BUDGETS:
        raise ValueError(f"unknown stage budget {settings.stage_budget!r}; choose one of {', '.join(STAGE_BUDGETS)}")
    if settings.stage_steps:  # epochs are checked in full once train() knows the number of images
        stage_lengths(len(stage_list), stage_steps=settings.stage_steps, budget=settings.stage_budget,
                      auxiliary=auxiliary_stages(stage_list))
    elif settings.stage_budget == "split" and len(lengths) > 1:  # refused whatever the number of images
        stage_lengths(len(stage_list), stage_epochs=settings.stage_epochs, budget="split", images=1)
    if settings.fre_reduction not in losses.FRE_REDUCTIONS:
        raise ValueError(f"unknown L_fre reduction {settings.fre_reduction!r}; "
                         f"choose one of {', '.join(losses.FRE_REDUCTIONS)}")
    if settings.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {settings.lr_schedule!r}; "
                         f"choose one of {', '.join(LR_SCHEDULES)}")
    if settings.weight_init not in pix2pix.WEIGHT_INITS:
        raise ValueError(f"unknown weight_init {settings.weight_init!r}; choose one of {', '.join(pix2pix.WEIGHT_INITS)}")
    if settings.pixel_loss not in losses.PIXEL_LOSSES:
        raise ValueError(f"unknown pixel loss {settings.pixel_loss!r}; choose one of {', '.join(losses.PIXEL_LOSSES)}")
    if settings.checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be positive, got {settings.checkpoint_every}")
    if settings.stop_after < 0:
        raise ValueError(f"stop_after must be >= 0, got {settings.stop_after}")
    devices.resolve_precision(settings.precision, kind="CPU")  # validates the names
    devices.resolve_jit_compile(settings.jit_compile)
    if settings.distribution_strategy not in devices.DISTRIBUTIONS:
        raise ValueError(f"unknown distribution strategy {settings.distribution_strategy!r}; "
                         f"choose one of {', '.join(devices.DISTRIBUTIONS)}")
    return stage_list


def stage_lengths(stage_count, stage_steps=(), stage_epochs=(), budget="each", images=None, batch_size=1,
                  auxiliary=()):
    """Optimizer steps of each of a strategy's ``stage_count`` stages.

    Give exactly one of ``stage_steps`` (ints) or ``stage_epochs`` (passes
    over ``images`` training images at ``batch_size``; converted by
    :func:`erlrestore.training.inputs.steps_for`, which rounds up), as one
    value or one value per stage.

    * ``budget="each"`` (the default, and the behaviour before the option
      existed): one value is given to every stage, so a 3-stage MA_D trains
      three times as many steps as a 1-stage MEMD; one value per stage is
      used as given.
    * ``budget="split"``: one value is the whole run's total. Epochs are first
      turned into a total number of steps; the total ``T`` is then divided
      into ``stage_count`` integer parts that sum exactly to ``T``: every
      stage gets ``T // stage_count`` and the first ``T % stage_count``
      stages one step more (earlier stages get the remainder). Stages listed
      in ``auxiliary`` (indices of stages that train only the clean-to-clean
      net: DT's first stage) do not count: the total is divided over the
      stages that train the restoration network, and an auxiliary stage
      gets as many steps as the first of those. So DT's whole net gets the
      same number of steps as MEMD, and MA_D's three stages share that
      number (the clean-to-clean net trains alongside MA_D's stage I). One
      value per stage is a ValueError (the lengths already say how to split;
      use ``each``), and so is a total smaller than the number of stages.

    Returns:
      A list of ``stage_count`` positive ints.
    """
    if budget not in STAGE_BUDGETS:
        raise ValueError(f"unknown stage budget {budget!r}; choose one of {', '.join(STAGE_BUDGETS)}")
    if bool(stage_steps) == bool(stage_epochs):
        raise ValueError("give the stage lengths as exactly one of stage_steps or stage_epochs")
    values = list(stage_steps or stage_epochs)
    if len(values) not in (1, stage_count):
        raise ValueError(f"give 1 or {stage_count} stage lengths, got {len(values)}")
    if budget == "split" and len(values) > 1:
        raise ValueError(
            f"--stage_budget=split divides one total over the stages, but {len(values)} stage lengths were given "
            f"({','.join(str(v) for v in values)}); give one total or use --stage_budget=each"
        )
    if stage_epochs:
        if images is None:
            raise ValueError("stage_epochs needs the number of training images")
        values = [inputs.steps_for(e, images, batch_size) for e in values]
    if budget == "each":
        return values * stage_count if len(values) == 1 else values
    counted = [index for index in range(stage_count) if index not in set(auxiliary)] or list(range(stage_count))
    total = values[0]
    if total < len(counted):
        what = "steps" if stage_steps else f"steps ({stage_epochs[0]} epochs of {images} images)"
        raise ValueError(f"--stage_budget=split cannot divide {total} {what} over {stage_count} stages: "
                         "every stage needs at least one step")
    share, remainder = divmod(total, len(counted))
    shares = {index: share + 1 if rank < remainder else share for rank, index in enumerate(counted)}
    return [shares.get(index, shares[counted[0]]) for index in range(stage_count)]


def auxiliary_stages(stage_list):
    """Indices of stages that train only the clean-to-clean net (not counted by ``--stage_budget=split``)."""
    return tuple(index for index, stage in enumerate(stage_list)
                 if getattr(stage, "restoration_branches", None) == ())


def generator_config(settings):
    return pix2pix.GeneratorConfig(
        levels=settings.levels, kind=settings.model.lower(), base_filters=settings.gen_filters,
        norm=settings.gen_norm, dropout=settings.dropout, info_accum_layers=settings.info_accum_layers,
        info_accum_growth=settings.info_accum_growth, info_accum_positions=tuple(settings.info_accum_positions),
        subpixel=settings.subpixel, global_residual=settings.gen_residual,
    )


def build_networks(settings):
    """{file name: network} for the settings; ``final.keras`` is the restoration network.

    The generative family's two networks get pix2pix's initialisation
    (:func:`~erlrestore.models.pix2pix.init_pix2pix_weights`: conv kernels
    ``N(0, 0.02)``, norm scales ``N(1, 0.02)``, biases and shifts 0) with
    ``weight_init="pix2pix"``, drawn from the run's seed (``(seed, 0)`` for
    the generator, ``(seed, 1)`` for the discriminator) so that a run is
    reproducible; ``weight_init="keras"`` keeps Keras' initialisers.
    """
    if settings.is_gan:
        generator = pix2pix.build_generator(generator_config(settings))
        discriminator = pix2pix.build_patchgan(settings.d_filters, settings.d_layers, settings.gen_norm)
        if settings.weight_init == "pix2pix":
            pix2pix.init_pix2pix_weights(generator, seed=(settings.data.seed, 0))
            pix2pix.init_pix2pix_weights(discriminator, seed=(settings.data.seed, 1))
        return {"final.keras": generator, "discriminator.keras": discriminator}
    net, c2c = build_erl_networks(settings)
    return {"final.keras": net} if c2c is None else {"final.keras": net, "c2c.keras": c2c}


def build_trainer(settings):
    """(trainer, {file name: network to save at the end}) for the settings.

    Builds in the current ``tf.distribute`` distribution's scope, with the
    settings' precision (a Keras dtype policy) and XLA choice.
    """
    policy = devices.resolve_precision(settings.precision)
    jit = devices.resolve_jit_compile(settings.jit_compile, tf.distribute.get_strategy())
    with devices.precision_scope(policy):
        networks = build_networks(settings)
    lr = settings.resolved_learning_rate()
    if settings.is_gan:
        trainer = GANTrainer(networks["final.keras"], networks["discriminator.keras"], gan_loss=settings.gan_loss,
                             l1_weight=settings.l1_weight, pixel_loss=settings.pixel_loss, name="trainer")
        trainer.compile(
            g_optimizer=devices.wrap_optimizer(FusedAdam(lr, beta_1=settings.beta_1, beta_2=0.999), policy),
            d_optimizer=devices.wrap_optimizer(FusedAdam(lr, beta_1=settings.beta_1, beta_2=0.999), policy),
            jit_compile=jit,
        )
    else:
        trainer = StagedTrainer(networks["final.keras"], networks.get("c2c.keras"), fre_weight=settings.fre_weight,
                                fre_reduction=settings.fre_reduction, name="trainer")
        trainer.compile(optimizer=devices.wrap_optimizer(FusedAdam(lr), policy), jit_compile=jit)
    return trainer, networks


def float32_networks(settings, networks):
    """Float32 twins of ``networks`` (built under any policy) with the same weights."""
    if all(layer.dtype_policy.name == "float32" for net in networks.values() for layer in net.layers):
        return networks
    with devices.precision_scope("float32"):
        twins = build_networks(settings)
    for name in networks:
        twins[name].set_weights(networks[name].get_weights())
    return {name: twins[name] for name in networks}


def build_erl_networks(settings):
    """(restoration net, clean-to-clean net or None) for the settings."""
    variant = "MEMD" if settings.model == "ERLNet" else settings.model
    config = memd.memd_config(
        variant, depth=settings.depth, base_filters=settings.base_filters, dense_layers=settings.dense_layers,
        growth_rate=settings.growth_rate, norm=settings.norm, global_residual=settings.global_residual,
    )
    if settings.model != "ERLNet":
        return memd.build_memd(config, name=settings.model.replace("-", "_minus").lower()), None
    net = erlnet.build_erlnet(config, settings.entanglement, ren_head_initializer="zeros")
    return net, erlnet.build_clean_to_clean(config)


def run_identity(settings):
    """What ``run_config.json`` records of a run: its identity settings, as the run resolves them.

    The settings declared with ``identity=True`` that the run's family reads
    (:func:`erlrestore.training.options.identity`), with the strategy and
    the learning-rate schedule resolved (``""`` and ``auto`` are recorded
    as what they stand for), as stored in JSON (tuples become lists).
    """
    current = options.identity(settings, settings.family)
    current["strategy"] = settings.resolved_strategy()
    current["lr_schedule"] = settings.resolved_lr_schedule()
    return json.loads(json.dumps(current))


def _record_settings(settings, write=True):
    """Writes run_config.json on the first start (if ``write``); refuses a changed restart."""
    path = os.path.join(settings.model_dir, "run_config.json")
    current = run_identity(settings)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        # A setting added after the run was recorded: the run had the value it stands for.
        absent = options.absent_values(TrainSettings)
        stored = {**{k: v for k, v in absent.items() if k in current}, **stored}
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"{settings.model_dir} holds a run with other settings ({details}); "
                "resume with the same settings or use a new --model_dir"
            )
        return
    if not write:
        return
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(current, f, indent=2, sort_keys=True)
    os.replace(tmp, path)


def _save_model(model, path):
    tmp = path[: -len(".keras")] + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def train(settings):
    """Trains (or resumes) a run; returns the path of the final ``.keras`` model,
    or None when ``settings.stop_after`` ended this invocation before the end."""
    stage_list = check_settings(settings)
    # The distribution comes first: multi-worker set-up must precede any other TensorFlow op.
    distribution = devices.make_distribution(settings.distribution_strategy, settings.devices, settings.tpu)
    chief = devices.is_chief(distribution)
    replicas = distribution.num_replicas_in_sync
    if settings.data.batch_size % replicas:
        raise ValueError(f"batch_size {settings.data.batch_size} (the global batch) does not split evenly "
                         f"over {replicas} replicas")
    try:
        os.makedirs(settings.model_dir, exist_ok=True)
        lock = folder_lock.locked(settings.model_dir) if chief else contextlib.nullcontext()
        lock.__enter__()
    except folder_lock.FolderBusyError:
        raise
    except OSError as error:
        raise OSError(f"cannot write to --model_dir {settings.model_dir}: {error.strerror or error}") from None
    try:
        return _train_locked(settings, stage_list, distribution, chief, replicas)
    finally:
        lock.__exit__(None, None, None)


def _train_locked(settings, stage_list, distribution, chief, replicas):
    """:func:`train` once the model folder is this process's."""
    try:
        _record_settings(settings, write=chief)
    except OSError as error:
        raise OSError(f"cannot write to --model_dir {settings.model_dir}: {error.strerror or error}") from None
    keras.utils.set_random_seed(settings.data.seed)
    if settings.data.deterministic:
        tf.config.experimental.enable_op_determinism()

    cache_dir = os.path.join(settings.model_dir, "data")
    make_dataset, images = inputs.training_data(settings.data, cache_dir=cache_dir)
    dataset = _stage_streams(make_dataset, settings.data.seed)
    pretrain = None
    if settings.pretrain_data is not None:
        pretrain = _stage_streams(inputs.training_data(settings.pretrain_data, cache_dir=cache_dir)[0],
                                  settings.pretrain_data.seed)
    validation, val_pairs = inputs.validation_data(settings.data)
    validation = _shard_by_data(validation)
    lengths = stage_lengths(len(stage_list), settings.stage_steps, settings.stage_epochs, settings.stage_budget,
                            images=images, batch_size=settings.data.batch_size,
                            auxiliary=auxiliary_stages(stage_list))
    plans = [
        run.StagePlan(stage, steps, pretrain if stage.name == "d_pretrain" else None)
        for stage, steps in zip(stage_list, lengths)
    ]

    with distribution.scope():
        trainer, networks = build_trainer(settings)
        callbacks = []
        plateau = None
        schedule = settings.resolved_lr_schedule()
        if schedule == "plateau" and settings.plateau_patience:  # acts on the (generator's) optimizer
            plateau = run.Plateau(monitor="g_loss" if settings.is_gan else "loss", factor=settings.plateau_factor,
                                  patience=settings.plateau_patience)
        if val_pairs and chief:
            callbacks.append(BestModel(settings, networks))
            samples = [pairing.load_pair(p) for p in val_pairs[:3]]
            callbacks.append(run.ImageSamples(
                os.path.join(settings.model_dir, "logs", "samples"),
                [(tf.constant(x), tf.constant(y)) for x, y in samples], every=settings.val_every,
            ))
        run.report("training %s with strategy %s on %d replica(s) (%s), precision %s, XLA %s: %s",
                     networks["final.keras"].name, settings.resolved_strategy(), replicas,
                     settings.distribution_strategy, devices.resolve_precision(settings.precision),
                     "on" if devices.resolve_jit_compile(settings.jit_compile, distribution) else "off",
                     ", ".join(f"{p.stage.name}={p.steps} steps" for p in plans))
        finished = run.Run(trainer, settings.model_dir, chief=chief, worker_id=devices.worker_id(distribution)).run(
            plans, dataset,
            learning_rate=settings.resolved_learning_rate(),
            checkpoint_every=settings.checkpoint_every,
            validation_data=validation,
            validation_every=settings.val_every,
            callbacks=callbacks,
            verbose=settings.verbose,
            stop_after=settings.stop_after,
            plateau=plateau,
            lr_schedule=run.LinearDecay() if schedule == "linear_decay" else None,
            extra_bytes=sum(4 * net.count_params() for net in networks.values()),
        )
    if not finished:
        return None
    final = os.path.join(settings.model_dir, "final.keras")
    if chief:
        for file_name, network in float32_networks(settings, networks).items():
            _save_model(network, os.path.join(settings.model_dir, file_name))
        run.report("wrote %s", final)
    return final


class BestModel(keras.callbacks.Callback):
    """Keeps the restoration network of the best validation Y-PSNR seen so far as ``best.keras``.

    After every validation (``--val_every`` checkpoint intervals) whose
    ``val_psnr_y`` beats the one recorded in ``best.json``, the float32
    twin of the restoration network is written to ``best.keras`` (atomically)
    and ``best.json`` records the score, the stage and the interval. The
    record lives on disk, so a resumed run keeps comparing against the best
    of the whole run. ``final.keras`` is still the last weights: a short
    run on synthetic data can fit the synthetic look past the point where
    held-out data scores best, and this keeps that point.
    """

    def __init__(self, settings, networks):
        super().__init__()
        self.settings = settings
        self.networks = networks
        self.record_path = os.path.join(settings.model_dir, "best.json")

    def best_so_far(self):
        try:
            with open(self.record_path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if "val_psnr_y" not in logs:
            return
        score = float(logs["val_psnr_y"])
        best = self.best_so_far()
        if best is not None and score <= best["val_psnr_y"]:
            return
        twin = float32_networks(self.settings, {"final.keras": self.networks["final.keras"]})["final.keras"]
        _save_model(twin, os.path.join(self.settings.model_dir, "best.keras"))
        stage = getattr(self.model, "stage", None)
        record = {"val_psnr_y": score, "val_ssim_y": float(logs.get("val_ssim_y", float("nan"))),
                  "stage": getattr(stage, "name", ""), "interval": epoch + 1}
        image_files.write_bytes_atomically(self.record_path, json.dumps(record, indent=2).encode("utf-8"))


def _stage_streams(make_dataset, seed):
    """(stage index, first step) -> that stage's data, its pipeline seed
    derived from the run's seed and both numbers."""
    def stage_data(stage_index, first_step):
        stream_seed = (seed * 1_000_003 + stage_index * 100_003 + first_step) % 2**31
        return _shard_by_data(make_dataset(stream_seed))
    return stage_data


def _shard_by_data(dataset):
    """Under multi-worker distribution each worker keeps every N-th batch of the
    (identically seeded) pipeline; the sources are in-memory file lists, not
    files TensorFlow could shard."""
    if dataset is None:
        return None
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
