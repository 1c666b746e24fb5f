"""The ERL-Net family (``erl``): MEMD, MEMD-, MEMD-- and ERL-Net, trained stage by stage.

Its :class:`~erlrestore.training.families.Family` record, :data:`FAMILY`,
and what the record points to:

* :class:`ERLSettings`: the settings only this family reads (the networks'
  sizes, the entanglement, the feature loss), declared once with their flags;
* the networks: the restoration net and, for ERL-Net, the clean-to-clean
  net (``c2c.keras``) whose encoder features are the feature loss's targets.
  ERL-Net is built with REN's embedding heads zero-initialised: while REN is
  frozen (stage I of the MA strategies) it adds exactly nothing, so stage I
  trains a plain MEMD as in the paper, and stage II stitches REN on;
* the trainer: :class:`~erlrestore.training.erl_trainer.StagedTrainer`, one
  Adam optimizer, the strategies of ERL-Net's Table 1
  (:data:`erlrestore.training.strategies.STRATEGIES`); default MA_D for
  ERL-Net, MEMD for the baselines; 4e-4 and the plateau rule on ``loss``;
* the tiny variant (:data:`TINY_FIELDS`) and the FLOP count of a training
  step (:func:`staged_step_flops`).
"""

import dataclasses

from erlrestore import losses
from erlrestore.layers import NORMS
from erlrestore.models import erlnet, flops, memd
from erlrestore.training import families, options, strategies
from erlrestore.training.erl_trainer import StagedTrainer

NAME = "erl"

# TrainSettings (and MEMDConfig) fields of the tiny MEMD / ERL-Net: depth 2, 4 base filters, DenseBlocks of 2
# layers growing by 4; pads to a multiple of 4.
TINY_FIELDS = {"depth": 2, "base_filters": 4, "dense_layers": 2, "growth_rate": 4}


@dataclasses.dataclass(frozen=True, kw_only=True)
class ERLSettings:
    """The settings of the ERL-Net family (a base of TrainSettings; defaults are our choices, the paper gives
    no sizes)."""

    entanglement: str = options.choice("MLGD", erlnet.ENTANGLEMENTS, "ERL-Net entanglement: bottleneck only or "
                                       "every level.", identity=True, family=NAME)
    depth: int = options.integer(4, "U-Net levels (down-samplings).", lower=1, identity=True, family=NAME)
    base_filters: int = options.integer(32, "Embedding width of the first level (doubles per level).", lower=1,
                                        identity=True, family=NAME)
    dense_layers: int = options.integer(4, "Layers per dense block.", lower=1, identity=True, family=NAME)
    growth_rate: int = options.integer(16, "Dense block growth rate.", lower=1, identity=True, family=NAME)
    norm: str = options.choice("none", NORMS, "Normalisation inside dense blocks.", identity=True, family=NAME)
    global_residual: bool = options.boolean(
        True, "Restoration nets predict a correction added to the input (our addition; the paper's flagfiles "
        "say --noglobal_residual: its decoder generates the image).", identity=True, family=NAME)
    # Not part of a run's identity: a restart may change lambda.
    fre_weight: float = options.number(0.01, "lambda of L_ERL = L_pre + lambda L_fre (paper: 0.01).", lower=0,
                                       family=NAME)
    # L_fre: per-level mean, summed over levels (losses.FRE_REDUCTIONS).
    fre_reduction: str = options.choice(
        "mean_sum", list(losses.FRE_REDUCTIONS), "L_fre: mean |difference| of each entangled level, then summed "
        "(mean_sum) or averaged (mean_mean, = mean_sum / levels) over the levels.",
        identity=True, family=NAME, absent_means="mean_sum")


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


def build_networks(settings):
    """``{"final.keras": restoration net}``, with ``"c2c.keras"`` for ERL-Net."""
    net, c2c = build_erl_networks(settings)
    return {"final.keras": net} if c2c is None else {"final.keras": net, "c2c.keras": c2c}


def build_trainer(settings, networks, optimizer, jit_compile):
    """A compiled :class:`StagedTrainer` over the networks, with one Adam optimizer."""
    trainer = StagedTrainer(networks["final.keras"], networks.get("c2c.keras"), fre_weight=settings.fre_weight,
                            fre_reduction=settings.fre_reduction, name="trainer")
    trainer.compile(optimizer=optimizer(), jit_compile=jit_compile)
    return trainer


def check(settings, strategy):
    """Refuses a strategy the model cannot train and an unknown L_fre reduction."""
    if settings.model != "ERLNet" and strategy != "MEMD":
        raise ValueError(f"strategy {strategy} trains a residual encoder; it needs --model=ERLNet")
    if settings.model == "ERLNet" and strategy == "MEMD":
        raise ValueError("strategy MEMD trains a baseline; use --model=MEMD (or MEMD-, MEMD--)")
    if settings.fre_reduction not in losses.FRE_REDUCTIONS:
        raise ValueError(f"unknown L_fre reduction {settings.fre_reduction!r}; "
                         f"choose one of {', '.join(losses.FRE_REDUCTIONS)}")


def tiny(fields):
    """The tiny variant of a MEMD / ERL-Net's fields (:data:`TINY_FIELDS`)."""
    return {**fields, **TINY_FIELDS}


# Which branches of MEMD / ERL-Net a branch's output flows into (MEN and REN feed MDE).
_DOWNSTREAM = {"men": ("mde",), "ren": ("mde",), "mde": ()}


def forward_flops(networks, size):
    """Forward FLOPs at batch 1 by branch: ``{"net": {branch: F}, "c2c": {branch: F}}`` (c2c for ERL-Net)."""
    shape = (1, size, size, 3)
    counts = {"net": flops.conv_flops_by_branch(networks["final.keras"], shape)}
    if "c2c.keras" in networks:
        counts["c2c"] = flops.conv_flops_by_branch(networks["c2c.keras"], shape)
    return counts


def staged_step_flops(stage, net, c2c=None):
    """FLOPs of one :class:`~erlrestore.training.erl_trainer.StagedTrainer` step of ``stage``.

    ``net`` / ``c2c``: ``{branch: forward FLOPs}`` of the restoration net
    (``men``, ``mde`` and for ERL-Net ``ren``) and of the clean-to-clean net
    (``men``, ``mde``). The forward of every branch that runs, plus ``2 F``
    for each branch whose weights are trained (activation and weight
    gradients) and ``1 F`` for each frozen branch the gradient must pass
    through to reach a trained one (activation gradients only: MDE when MEN
    or REN trains and MDE does not); the clean-to-clean net's reconstruction
    ``3 F`` when it trains, else its MEN's forward where the feature loss
    needs its targets. Hence MEMD ``3 F``; MA stage I ``3 F_MEN + F_REN +
    3 F_MDE + 3 F_C2C``; stage II ``F_MEN + 3 F_REN + 2 F_MDE + F_C2C.MEN``;
    stage III ``F_MEN + 3 F_REN + 3 F_MDE``.
    """
    c2c = c2c or {}
    trained = set(stage.restoration_branches)
    total = 0
    if stage.loss in ("pre", "erl"):
        total += sum(net.values())  # the restoration net runs (the feature net shares its layers)
        on_path = {down for branch in trained for down in _DOWNSTREAM.get(branch, ())} - trained
        total += sum(2 * net.get(branch, 0) for branch in trained)
        total += sum(net.get(branch, 0) for branch in on_path)
    if stage.trains_c2c:
        total += 3 * sum(c2c.values())  # C2C's reconstruction: forward and backward
    elif stage.loss == "erl":
        total += c2c.get("men", 0)  # the feature-loss targets: C2C's encoder, forward only
    return int(total)


def step_flops(stage, forward):
    """(training-step FLOPs, inference FLOPs) per image from :func:`forward_flops`'s counts."""
    return staged_step_flops(stage, forward["net"], forward.get("c2c")), sum(forward["net"].values())


FAMILY = families.Family(
    name=NAME,
    models={"MEMD": "MEMD", "MEMD-": "MEMD", "MEMD--": "MEMD", "ERLNet": "MA_D"},
    strategies=strategies.STRATEGIES,
    learning_rate=4e-4,
    lr_schedule="plateau",
    plateau_monitor="loss",
    build_networks=build_networks,
    build_trainer=build_trainer,
    settings=ERLSettings,
    check=check,
    tiny=tiny,
    forward_flops=forward_flops,
    step_flops=step_flops,
)
