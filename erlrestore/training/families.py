"""Model families as registered objects: one table from a family's name to everything that differs by family.

A *family* is a set of ``--model`` choices trained the same way: the
ERL-Net family (``erl``: MEMD, MEMD-, MEMD--, ERLNet;
:mod:`erlrestore.training.erl_family`) and the generative family of the
rethinking paper (``gan``: UNet, EnDec with a PatchGAN;
:mod:`erlrestore.training.gan_family`). Everything the training code,
the presets and the benchmarks need to know about a family is a field of
its :class:`Family` record, so no code outside the family's own module
branches on which family a run belongs to:

* ``settings``: its settings group, a frozen dataclass of
  :mod:`erlrestore.training.options` declarations tagged ``family=<name>``
  (a base of :class:`~erlrestore.training.settings.TrainSettings`, so its
  fields are flags of ``erlrestore-train`` and part of the run's identity
  only for runs of this family);
* ``models``: the ``--model`` choices it owns, each with its default
  strategy; ``strategies``: its strategy table (name -> stage records);
* ``learning_rate``, ``lr_schedule`` and ``plateau_monitor``: its defaults
  (what ``--learning_rate=0`` and ``--lr_schedule=auto`` stand for, and the
  logged loss the plateau rule watches);
* ``build_networks`` and ``build_trainer``: the networks of a run
  (``{file name: network}``, ``final.keras`` the restoration network) and
  the compiled trainer over them; ``build_restoration``: the restoration
  network alone (deployment benchmarks);
* ``check``: the family's own refusals of settings, ``check_crop`` of a
  crop size;
* ``stage_data``: the data of stages that train on other data than the
  run's (the generative family's discriminator pre-training);
* ``tiny``: its tiny variant (``TrainSettings`` fields -> fields of a
  network that builds and runs in well under a second on a CPU);
* ``forward_flops`` and ``step_flops``: its FLOP count
  (:mod:`erlrestore.models.flops`).

Registering a family (:func:`register`) adds its models to ``--model`` and
its strategies to ``--strategy`` of ``erlrestore-train`` (the flags read
the table when they are defined). The built-in families are registered on
the first look-up, before any other, so their order (the order of the
choices in ``--help``) never depends on import order.
"""

import dataclasses
import importlib
from typing import Callable, Mapping, Optional

# The modules of the built-in families, in registration order; each defines FAMILY.
BUILTIN_MODULES = ("erlrestore.training.erl_family", "erlrestore.training.gan_family")

_TABLE = {}  # name -> Family, in registration order
_loaded = False


@dataclasses.dataclass(frozen=True)
class Family:
    """Everything that differs between model families (module docstring).

    Required: ``name`` (the ``family=`` tag of its settings), ``models``
    ({--model choice: its default strategy}), ``strategies`` ({strategy
    name: a tuple of stage records, each with a ``name``}),
    ``learning_rate``, ``lr_schedule`` (``linear_decay``, ``plateau`` or
    ``constant``), ``build_networks(settings) -> {file name: network}`` and
    ``build_trainer(settings, networks, optimizer, jit_compile) -> trainer``,
    where ``optimizer(**adam_arguments)`` makes a fresh Adam at the run's
    learning rate (wrapped for the run's precision) and the trainer, a
    :class:`~erlrestore.training.base.RestorationTrainer` with
    ``checkpoint_items()`` and ``reset_optimizer(learning_rate)``, comes back
    compiled.

    Optional hooks (None: see the method that uses it):
    ``check(settings, strategy)`` raises ValueError for settings the family
    cannot train; ``check_crop(settings, size)`` for a crop its networks
    cannot take; ``stage_data(settings)`` -> ``{stage name: DataSettings}``
    for the stages with data of their own; ``build_restoration(settings)``;
    ``tiny(fields)``; ``forward_flops(networks, size)``;
    ``step_flops(stage, forward)``.
    """

    name: str
    models: Mapping[str, str]
    strategies: Mapping[str, tuple]
    learning_rate: float
    lr_schedule: str
    build_networks: Callable
    build_trainer: Callable
    plateau_monitor: str = "loss"
    settings: Optional[type] = None
    check: Optional[Callable] = None
    check_crop: Optional[Callable] = None
    stage_data: Optional[Callable] = None
    build_restoration: Optional[Callable] = None
    tiny: Optional[Callable] = None
    forward_flops: Optional[Callable] = None
    step_flops: Optional[Callable] = None

    def default_strategy(self, model):
        """The strategy a run of ``model`` gets without ``--strategy``."""
        return self.models[model]

    def stages(self, strategy, model):
        """The stage records of one of the family's strategies (ValueError naming the family's strategies)."""
        if strategy not in self.strategies:
            raise ValueError(f"strategy {strategy} is not for {model}; choose one of {', '.join(self.strategies)}")
        return self.strategies[strategy]

    def own_stage_data(self, settings):
        """``{stage name: DataSettings}`` of the stages that do not train on the run's data (``stage_data``;
        None: every stage trains on it)."""
        return {} if self.stage_data is None else self.stage_data(settings)

    def restoration_network(self, settings):
        """The restoration network alone (``build_restoration``; None: ``final.keras`` of ``build_networks``)."""
        if self.build_restoration is not None:
            return self.build_restoration(settings)
        return self.build_networks(settings)["final.keras"]

    def tiny_fields(self, fields):
        """The tiny variant of ``TrainSettings`` fields (``tiny``; None: the fields as they are)."""
        return dict(fields) if self.tiny is None else self.tiny(dict(fields))

    def count_forward(self, networks, size):
        """Forward FLOPs at batch 1 on ``size`` px (``forward_flops``; None: ``{"net": F}`` of ``final.keras``)."""
        if self.forward_flops is not None:
            return self.forward_flops(networks, size)
        from erlrestore.models import flops  # pylint: disable=import-outside-toplevel

        return {"net": flops.conv_flops(networks["final.keras"], (1, size, size, 3))}

    def count_step(self, stage, forward):
        """(training-step FLOPs, inference FLOPs) per image from :meth:`count_forward`'s counts.

        ``step_flops``; None: the restoration network's forward and its
        backward (twice the forward), ``(3 F, F)``.
        """
        if self.step_flops is not None:
            return self.step_flops(stage, forward)
        return 3 * forward["net"], forward["net"]


def register(family):
    """Adds ``family`` to the table (after the built-in ones); returns it.

    Raises ValueError for a name already registered, a model or a default
    strategy another family owns, a default strategy that is not the
    family's, or a settings declaration not tagged with the family's name.
    """
    _load_builtin()
    _add(family)
    return family


def _add(family):
    if family.name in _TABLE:
        raise ValueError(f"model family {family.name!r} is already registered")
    if not family.models:
        raise ValueError(f"model family {family.name!r} owns no models")
    for model, strategy in family.models.items():
        owner = next((f.name for f in _TABLE.values() if model in f.models), None)
        if owner:
            raise ValueError(f"model {model!r} of family {family.name!r} already belongs to family {owner!r}")
        if strategy not in family.strategies:
            raise ValueError(f"model {model!r} of family {family.name!r}: default strategy {strategy!r} is not "
                             f"one of its strategies ({', '.join(family.strategies)})")
    if family.settings is not None:
        from erlrestore.training import options  # pylint: disable=import-outside-toplevel

        untagged = [field.name for field, flag in options.declared(family.settings) if flag.family != family.name]
        if untagged:
            raise ValueError(f"settings of family {family.name!r} not declared with family={family.name!r}: "
                             f"{', '.join(untagged)}")
    _TABLE[family.name] = family


def _load_builtin():
    """Registers the built-in families once, first (their modules each define ``FAMILY``)."""
    global _loaded  # pylint: disable=global-statement
    if _loaded:
        return
    _loaded = True  # before the imports: a family module that looks a family up must not load them again
    try:
        for module in BUILTIN_MODULES:
            _add(importlib.import_module(module).FAMILY)
    except BaseException:
        _TABLE.clear()
        _loaded = False
        raise


def all_families():
    """The registered families, in registration order."""
    _load_builtin()
    return tuple(_TABLE.values())


def get(name):
    """The family registered as ``name`` (ValueError listing the registered ones)."""
    _load_builtin()
    try:
        return _TABLE[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; registered: {', '.join(_TABLE)}") from None


def model_names():
    """Every ``--model`` choice, family by family in registration order."""
    return tuple(model for family in all_families() for model in family.models)


def strategy_names():
    """Every strategy name of every family, in registration order (a name two families use, once)."""
    return tuple(dict.fromkeys(name for family in all_families() for name in family.strategies))


def of_model(model):
    """The family that owns ``--model=model`` (ValueError listing every model)."""
    for family in all_families():
        if model in family.models:
            return family
    raise ValueError(f"unknown model {model!r}; choose one of {', '.join(model_names())}")
