"""A training run end to end from plain settings, for every registered model family.

``train(settings)`` builds what the settings name, the data and the
strategy's stages, and runs them in ``settings.model_dir`` with checkpoints
and resume (``erlrestore.training.run``). The run's model family
(``settings.model_family``, :mod:`erlrestore.training.families`) builds
the networks and the trainer:

* the ERL-Net family (``--model`` MEMD, MEMD-, MEMD--, ERLNet;
  :mod:`erlrestore.training.erl_family`):
  :class:`~erlrestore.training.erl_trainer.StagedTrainer` over the restoration
  net and, for ERL-Net, the clean-to-clean net (strategies ``STRATEGIES``);
* the generative family (``--model`` UNet, EnDec;
  :mod:`erlrestore.training.gan_family`):
  :class:`~erlrestore.training.gan_trainer.GANTrainer` over a UNet-N / En/Decoder-N
  generator and a PatchGAN (strategies ``GAN_STRATEGIES``), following
  pix2pix's published implementation (initialisation, update order, linear
  learning-rate decay).

When every stage is done it writes ``final.keras`` (the restoration network
only: MEMD/ERL-Net or the generator) and the auxiliary networks
(``c2c.keras``, ``discriminator.keras``).

The settings (:class:`~erlrestore.training.settings.TrainSettings`) a run
was started with are kept in ``run_config.json``; a restart with settings
that change the network, strategy or stage lengths is refused rather than
mixing two runs in one folder.

Where and how it computes (``distribution_strategy``, ``precision``,
``jit_compile``) is resolved by :mod:`erlrestore.training.devices`; the
networks, optimizers and checkpoints are made inside the distribution's scope.
Whatever the training precision, the saved ``.keras`` models are float32.
"""

import contextlib
import json
import os

import keras
import tensorflow as tf

from erlrestore.data import image_files, pairing
from erlrestore.training import devices, folder_lock, inputs, options, run
from erlrestore.training.optimizers import FusedAdam
from erlrestore.training.settings import TrainSettings, auxiliary_stages, check_settings, stage_lengths
# Re-exported: callers (erlrestore.runner, the tests, README's examples) parse a run's settings as
# experiment.settings_from_argv, beside experiment.train.
from erlrestore.training.settings import settings_from_argv  # noqa: F401


def build_networks(settings):
    """{file name: network} for the settings, as the run's family builds them; ``final.keras`` is the
    restoration network (e.g. ``c2c.keras``, ``discriminator.keras`` beside it)."""
    return settings.model_family.build_networks(settings)


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

    def optimizer(**adam):
        """A fresh Adam at the run's learning rate, wrapped for its precision."""
        return devices.wrap_optimizer(FusedAdam(lr, **adam), policy)

    trainer = settings.model_family.build_trainer(settings, networks, optimizer, jit)
    return trainer, networks


def load_initial_weights(network, spec):
    """Sets ``network``'s weights from ``spec``: a ``.keras`` file, a run folder or ``pretrained:<name>``.

    ValueError when the source cannot be read or its weights do not fit
    ``network`` (a count or the first shape that differs, by variable path).
    """
    from erlrestore import inference  # the loader of every model spec (file, run folder, pretrained:<name>)

    try:
        source = inference.load_keras_model(spec)
    except ValueError as error:  # DataError: missing, or not a Keras model
        raise ValueError(f"--init_weights {spec}: {error}") from None
    theirs, ours = source.weights, network.weights
    if len(theirs) != len(ours):
        raise ValueError(f"--init_weights {spec}: {len(theirs)} weights, the network being trained has "
                         f"{len(ours)}; give a model of the same architecture (flags)")
    for mine, other in zip(ours, theirs):
        if tuple(mine.shape) != tuple(other.shape):
            raise ValueError(f"--init_weights {spec}: {other.path} has shape {tuple(other.shape)}, "
                             f"the network's {mine.path} {tuple(mine.shape)}; give a model of the same "
                             "architecture (flags)")
    network.set_weights(source.get_weights())


def float32_networks(settings, networks):
    """Float32 twins of ``networks`` (built under any policy) with the same weights."""
    if all(layer.dtype_policy.name == "float32" for net in networks.values() for layer in net.layers):
        return networks
    with devices.precision_scope("float32"):
        twins = build_networks(settings)
    for name in networks:
        twins[name].set_weights(networks[name].get_weights())
    return {name: twins[name] for name in networks}


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
    # Stages with data of their own (the family's stage_data, e.g. a discriminator pre-training's).
    own_data = {name: _stage_streams(inputs.training_data(data, cache_dir=cache_dir)[0], data.seed)
                for name, data in settings.model_family.own_stage_data(settings).items()}
    validation, val_pairs = inputs.validation_data(settings.data)
    validation = _shard_by_data(validation)
    lengths = stage_lengths(len(stage_list), settings.stage_steps, settings.stage_epochs, settings.stage_budget,
                            images=images, batch_size=settings.data.batch_size,
                            auxiliary=auxiliary_stages(stage_list))
    plans = [
        run.StagePlan(stage, steps, own_data.get(stage.name))
        for stage, steps in zip(stage_list, lengths)
    ]

    with distribution.scope():
        trainer, networks = build_trainer(settings)
        if settings.init_weights:  # a resumed run's checkpoint then replaces these
            load_initial_weights(networks["final.keras"], settings.init_weights)
        callbacks = []
        plateau = None
        schedule = settings.resolved_lr_schedule()
        if schedule == "plateau" and settings.plateau_patience:  # acts on the (generator's) optimizer
            plateau = run.Plateau(monitor=settings.model_family.plateau_monitor, factor=settings.plateau_factor,
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
