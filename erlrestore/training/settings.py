"""The settings a training run is made from: declared once, parsed from flags, checked.

:class:`TrainSettings` holds every setting of ``erlrestore-train``, each
declared once with its flag (:mod:`erlrestore.training.options`). The
settings every run reads are declared here; each model family's own
settings are its settings group (``ERLSettings``, ``GANSettings``: see
:mod:`erlrestore.training.families`), a base class of
:class:`TrainSettings`, so that they are flat fields and flags too.
``--model`` and ``--strategy`` offer what the registered families own, and
the defaults that differ by family (strategy, learning rate, schedule) are
resolved by the run's family.

:func:`check_settings` refuses settings that cannot make a run and returns
the strategy's stages; :func:`stage_lengths` turns ``--stage_steps`` /
``--stage_epochs`` and ``--stage_budget`` into each stage's steps.
"""

import dataclasses
import os

from erlrestore.training import devices, families, inputs, options

# Learning-rate schedules (--lr_schedule); "auto" resolves per family (TrainSettings.resolved_lr_schedule).
LR_SCHEDULES = ("auto", "linear_decay", "plateau", "constant")

STAGE_BUDGETS = ("each", "split")

# The settings groups of the registered families: bases of TrainSettings (flat fields, flags of their own).
FAMILY_SETTINGS = tuple(family.settings for family in families.all_families() if family.settings is not None)


def _keras_verbosity(flag_value):
    """--verbose: "auto" or Keras' 0, 1, 2."""
    return flag_value if flag_value == "auto" else int(flag_value)


def _strategy_choices():
    """``--strategy`` choices: "" (the model's default) and every registered family's strategies."""
    return ["", *families.strategy_names()]


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainSettings(*FAMILY_SETTINGS):
    """Everything a training run is made from; each setting is declared once, with its flag.

    ``erlrestore-train``'s flags, :func:`settings_from_argv` and the run's
    identity in ``run_config.json`` are made from these declarations
    (:mod:`erlrestore.training.options`): ``identity=True`` marks what a
    resumed run must keep (what is trained: the networks, the strategy, the
    stage lengths, the losses, the schedule, the batch size), ``family``
    the settings only one model family reads (those of the families'
    settings groups, the base classes). ``absent_means`` is the value runs
    recorded before the setting existed were trained with.
    """

    model_dir: str = options.text(None, "Checkpoints, logs, run_config.json and final.keras go here.", required=True)
    # What to train.
    model: str = options.choice("ERLNet", families.model_names, "Network: MEMD baselines / ERL-Net, or a UNet-N / En/Decoder-N "
                                "generator with a PatchGAN.", identity=True)
    # Default: the model's in its family (MA_D for ERLNet, MEMD for the baselines, GAN for generators;
    # resolved_strategy; recorded resolved).
    strategy: str = options.choice(
        "", _strategy_choices,
        "Training strategy: ERL-Net Table 1 (default MA_D; MEMD for the baselines; FT fine-tunes "
        "from --init_weights) or a generator "
        "strategy (default GAN; L1, RECON, RECON_GAN, RECON_L1, DPRE_GAN).", identity=True)
    init_weights: str = options.text(
        "", "Start from these weights instead of random ones (fine-tuning): a .keras model or "
        "pretrained:<name> of the same architecture. A resumed run continues from its checkpoint.",
        identity=True, absent_means="")
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
    def model_family(self):
        """The :class:`~erlrestore.training.families.Family` of ``model`` (ValueError for an unknown model)."""
        return families.of_model(self.model)

    @property
    def family(self):
        """The name of the family whose settings this run reads, e.g. "erl" or "gan" (``family=`` of the
        declarations)."""
        return self.model_family.name

    def resolved_strategy(self):
        """``strategy``, or the model's default strategy in its family."""
        return self.strategy or self.model_family.default_strategy(self.model)

    def resolved_learning_rate(self):
        """``learning_rate``, or (0) the family's paper value."""
        return self.learning_rate or self.model_family.learning_rate

    def resolved_lr_schedule(self):
        """The learning-rate schedule of each stage.

        ``linear_decay``: pix2pix's ``lr_policy="linear"``, constant for the
        first half of a stage's steps, then linearly down towards zero
        (:class:`~erlrestore.training.run.LinearDecay`); the default
        (``auto``) of the generative family. ``plateau``: divided by
        ``1 / plateau_factor`` after ``plateau_patience`` checkpoint intervals
        without a lower loss (never when ``plateau_patience`` is 0); the
        default of the ERL-Net family (the ERL-Net paper's). ``constant``: the
        base rate throughout. ``auto`` is the family's ``lr_schedule``.
        """
        if self.lr_schedule != "auto":
            return self.lr_schedule
        return self.model_family.lr_schedule


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
    family = families.of_model(settings.model)  # ValueError listing the models
    if family.settings is not None and not isinstance(settings, family.settings):
        raise ValueError(f"the settings of model family {family.name!r} are not part of {type(settings).__name__}: "
                         "register the family among the built-in ones (families.BUILTIN_MODULES)")
    if settings.init_weights:
        from erlrestore import pretrained

        if not pretrained.is_pretrained(settings.init_weights) and not os.path.isfile(settings.init_weights):
            raise ValueError(f"--init_weights {settings.init_weights}: no such file "
                             "(a .keras model or pretrained:<name>)")
    strategy = settings.resolved_strategy()
    stage_list = family.stages(strategy, settings.model)
    if family.check is not None:
        family.check(settings, strategy)
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
    if settings.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {settings.lr_schedule!r}; "
                         f"choose one of {', '.join(LR_SCHEDULES)}")
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
