"""Training strategies as data: each a tuple of stage records.

ERL-Net's Table 1 trains different branches with different losses in
sequence. A :class:`Stage` names the branches whose weights it updates and
its loss; the trainer's one ``train_step`` reads the record, so adding a
strategy is adding a tuple here, never a branch in the training loop.
Each model family's record (:mod:`erlrestore.training.families`) names
its table: :data:`STRATEGIES` the ERL-Net family's, :data:`GAN_STRATEGIES`
the generative family's.

Branches: ``men`` (main encoder), ``mde`` (main decoder), ``ren`` (residual
encoder), ``c2c`` (the clean-to-clean network whose encoder features are
the feature loss's targets). Losses: ``pre`` (pixel L1) and ``erl``
(``L_pre + lambda * L_fre``).

Where the paper leaves a choice open, ours:

* Stage I of every Module Assembly strategy (MA_*) trains the clean-to-clean
  network alongside (MEN, MDE); its loss is independent (disjoint weights),
  so this equals training it separately, in one pass over the data.
* DT ("the overall network from scratch with L_ERL") needs trained
  clean-to-clean features before L_fre means anything, so DT first trains
  the clean-to-clean net alone, then the whole ERL-Net.
* The MEMD baselines (Table 2) are one stage of (MEN, MDE) with L_pre.
* ``FT`` (our addition, not in Table 1) fine-tunes a trained ERL-Net: one
  stage of every restoration branch (MEN, REN, MDE) with L_pre, started from
  ``--init_weights`` (e.g. ``pretrained:erlnet-derain``). L_fre would need
  the clean-to-clean net, which a shipped model does not carry; MEMD is
  fine-tuned with its own strategy, ``MEMD``, so the two stay like for like.
"""

import dataclasses

BRANCHES = ("men", "mde", "ren", "c2c")
LOSSES = ("pre", "erl", "none")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One stage: the branches it trains and the restoration loss it uses.

    ``loss="none"`` means the stage trains no restoration branch (only the
    clean-to-clean net, whose reconstruction loss is always added when
    ``c2c`` is among the branches).
    """

    name: str
    branches: tuple
    loss: str

    def __post_init__(self):
        unknown = set(self.branches) - set(BRANCHES)
        if unknown:
            raise ValueError(f"stage {self.name}: unknown branches {sorted(unknown)}; known: {BRANCHES}")
        if self.loss not in LOSSES:
            raise ValueError(f"stage {self.name}: unknown loss {self.loss!r}; known: {LOSSES}")
        if not self.branches:
            raise ValueError(f"stage {self.name}: trains nothing")

    @property
    def trains_c2c(self):
        return "c2c" in self.branches

    @property
    def restoration_branches(self):
        return tuple(b for b in self.branches if b != "c2c")


_STAGE_I = Stage("I", ("men", "mde", "c2c"), "pre")

STRATEGIES = {
    "MEMD": (Stage("I", ("men", "mde"), "pre"),),
    "MA_A": (_STAGE_I, Stage("II", ("ren",), "erl")),
    "MA_B": (_STAGE_I, Stage("II", ("ren", "mde"), "erl")),
    "MA_C": (_STAGE_I, Stage("II", ("ren",), "erl"), Stage("III", ("mde",), "pre")),
    "MA_D": (_STAGE_I, Stage("II", ("ren",), "erl"), Stage("III", ("ren", "mde"), "pre")),
    "DT": (Stage("C2C", ("c2c",), "none"), Stage("I", ("men", "ren", "mde"), "erl")),
    "FT": (Stage("FT", ("men", "ren", "mde"), "pre"),),
}


def strategy(name):
    """The stage tuple of a strategy name (ValueError listing the known ones)."""
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}") from None


def needs_c2c(stages):
    """Whether any stage trains the clean-to-clean net or uses the feature loss."""
    return any(s.trains_c2c or s.loss == "erl" for s in stages)


# --------------------------------------------------------------------------
# The generative family (rethinking paper): generator + PatchGAN stages.
# --------------------------------------------------------------------------

TASKS = ("restore", "reconstruct")
ADVERSARIAL = ("none", "gan")  # "gan" is resolved to the run's GAN loss (bce or lsgan)


@dataclasses.dataclass(frozen=True)
class GANStage:
    """One stage of generator/discriminator training.

    ``task="reconstruct"`` trains on clean -> clean pairs (the paper's
    reconstruction pre-training and Table III's autoencoders);
    ``adversarial="none"`` trains the generator with L1 alone;
    ``train_generator=False`` trains only the discriminator (its optional
    pre-training, on the stage's own data when a run gives one).
    """

    name: str
    task: str = "restore"
    adversarial: str = "gan"
    train_generator: bool = True

    def __post_init__(self):
        if self.task not in TASKS:
            raise ValueError(f"stage {self.name}: unknown task {self.task!r}; known: {TASKS}")
        if self.adversarial not in ADVERSARIAL:
            raise ValueError(f"stage {self.name}: unknown adversarial {self.adversarial!r}; known: {ADVERSARIAL}")
        if not self.train_generator and self.adversarial == "none":
            raise ValueError(f"stage {self.name}: trains nothing")

    @property
    def train_discriminator(self):
        return self.adversarial != "none"


GAN_STRATEGIES = {
    # Table II rows: the restoration task with the GAN loss (+ lambda L1).
    "GAN": (GANStage("restore"),),
    # Generator alone with L1, no discriminator.
    "L1": (GANStage("restore", adversarial="none"),),
    # Table III: the generators trained as autoencoders (clean -> clean).
    "RECON": (GANStage("reconstruct", task="reconstruct", adversarial="none"),),
    # The paper's remedy for two-stage convergence: reconstruction first, then the task.
    "RECON_GAN": (GANStage("reconstruct", task="reconstruct", adversarial="none"), GANStage("restore")),
    "RECON_L1": (GANStage("reconstruct", task="reconstruct", adversarial="none"),
                 GANStage("restore", adversarial="none")),
    # Discriminator pre-training (optionally on other data), then the task.
    "DPRE_GAN": (GANStage("d_pretrain", train_generator=False), GANStage("restore")),
}


def gan_strategy(name):
    """The stage tuple of a generative-family strategy."""
    try:
        return GAN_STRATEGIES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(GAN_STRATEGIES)}") from None
