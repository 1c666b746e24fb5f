"""Training the ERL-Net family end to end from plain settings.

``train(settings)`` builds the network the settings name (a MEMD variant, or
ERL-Net with CLGD/MLGD entanglement and the clean-to-clean net), the data,
the strategy's stages, and runs them in ``settings.model_dir`` with
checkpoints and resume (``erlrestore.training.run``). When every stage is
done it writes ``final.keras`` (the restoration network only) and, for
ERL-Net, ``c2c.keras``.

The settings a run was started with are kept in ``run_config.json``; a
restart with settings that change the network, strategy or stage lengths
is refused rather than mixing two runs in one folder.

ERL-Net is built with REN's embedding heads zero-initialised: while REN is
frozen (stage I of the MA strategies) it adds exactly nothing, so stage I
trains a plain MEMD as in the paper, and stage II stitches REN on.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf
from absl import logging

from erlrestore.data import pairing
from erlrestore.models import erlnet, memd
from erlrestore.training import inputs, run, stages
from erlrestore.training.staged import StagedTrainer

MODELS = ("MEMD", "MEMD-", "MEMD--", "ERLNet")

# Settings that define what is trained; a resumed run must keep them.
_IDENTITY_FIELDS = ("model", "entanglement", "strategy", "depth", "base_filters", "dense_layers",
                    "growth_rate", "norm", "global_residual", "stage_steps", "stage_epochs")


@dataclasses.dataclass(frozen=True)
class ERLSettings:
    model_dir: str
    model: str = "ERLNet"
    entanglement: str = "MLGD"
    strategy: str = ""  # default: MA_D for ERLNet (the paper's best), MEMD for the baselines
    depth: int = 4
    base_filters: int = 32
    dense_layers: int = 4
    growth_rate: int = 16
    norm: str = "none"
    global_residual: bool = True
    stage_steps: tuple = ()
    stage_epochs: tuple = ()
    checkpoint_every: int = 500
    learning_rate: float = 4e-4
    fre_weight: float = 0.01
    plateau_patience: int = 10
    plateau_factor: float = 0.1
    val_every: int = 1
    verbose: object = "auto"
    data: inputs.DataSettings = dataclasses.field(default_factory=inputs.DataSettings)

    def resolved_strategy(self):
        if self.strategy:
            return self.strategy
        return "MA_D" if self.model == "ERLNet" else "MEMD"


def check_settings(settings):
    """Raises ValueError for settings that cannot make a run."""
    if settings.model not in MODELS:
        raise ValueError(f"unknown model {settings.model!r}; choose one of {', '.join(MODELS)}")
    strategy = settings.resolved_strategy()
    stage_list = stages.strategy(strategy)
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
    if settings.checkpoint_every <= 0:
        raise ValueError(f"checkpoint_every must be positive, got {settings.checkpoint_every}")
    return stage_list


def build_networks(settings):
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


def _record_settings(settings):
    """Writes run_config.json on the first start; refuses a changed restart."""
    path = os.path.join(settings.model_dir, "run_config.json")
    current = {field: getattr(settings, field) for field in _IDENTITY_FIELDS}
    current["strategy"] = settings.resolved_strategy()
    current["batch_size"] = settings.data.batch_size
    current = json.loads(json.dumps(current))  # tuples -> lists, as stored
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            stored = json.load(f)
        changed = {k: (stored.get(k), v) for k, v in current.items() if stored.get(k) != v}
        if changed:
            details = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changed.items())
            raise ValueError(
                f"{settings.model_dir} holds a run with other settings ({details}); "
                "resume with the same settings or use a new --model_dir"
            )
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
    """Trains (or resumes) a run; returns the path of the final ``.keras`` model."""
    stage_list = check_settings(settings)
    os.makedirs(settings.model_dir, exist_ok=True)
    _record_settings(settings)
    keras.utils.set_random_seed(settings.data.seed)
    if settings.data.deterministic:
        tf.config.experimental.enable_op_determinism()

    dataset, images = inputs.training_data(settings.data, cache_dir=os.path.join(settings.model_dir, "data"))
    validation, val_pairs = inputs.validation_data(settings.data)
    if settings.stage_steps:
        lengths = list(settings.stage_steps)
    else:
        lengths = [inputs.steps_for(e, images, settings.data.batch_size) for e in settings.stage_epochs]
    if len(lengths) == 1:
        lengths = lengths * len(stage_list)
    plans = [run.StagePlan(stage, steps) for stage, steps in zip(stage_list, lengths)]

    net, c2c = build_networks(settings)
    trainer = StagedTrainer(net, c2c, fre_weight=settings.fre_weight, name="trainer")
    trainer.compile(optimizer=keras.optimizers.Adam(settings.learning_rate), jit_compile=False)

    callbacks = []
    if settings.plateau_patience:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(
            monitor="loss", factor=settings.plateau_factor, patience=settings.plateau_patience, min_lr=1e-7,
        ))
    if val_pairs:
        samples = [pairing.load_pair(p) for p in val_pairs[:3]]
        callbacks.append(run.ImageSamples(
            os.path.join(settings.model_dir, "logs", "samples"),
            [(tf.constant(x), tf.constant(y)) for x, y in samples], every=settings.val_every,
        ))
    logging.info("training %s with strategy %s: %s", net.name, settings.resolved_strategy(),
                 ", ".join(f"{p.stage.name}={p.steps} steps" for p in plans))
    run.Run(trainer, settings.model_dir).run(
        plans, dataset,
        learning_rate=settings.learning_rate,
        checkpoint_every=settings.checkpoint_every,
        validation_data=validation,
        validation_every=settings.val_every,
        callbacks=callbacks,
        verbose=settings.verbose,
    )
    final = os.path.join(settings.model_dir, "final.keras")
    _save_model(net, final)
    if c2c is not None:
        _save_model(c2c, os.path.join(settings.model_dir, "c2c.keras"))
    logging.info("wrote %s", final)
    return final
