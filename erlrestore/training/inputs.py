"""Training and validation data from plain settings (the train command's data flags).

Exactly one training source:

* paired files: ``train_input_dir`` (+ ``train_target_dir``), any layout of
  ``erlrestore.data.pairing``;
* TFRecord shards: ``train_tfrecords`` (a folder or glob);
* synthetic pairs made on the fly: clean images from ``synthetic_clean_dir``
  (or ``procedural`` generated ones) degraded by ``degradation``; the
  real-streak degradations (``real_rain``, ``real_heavy_rain``) also need
  ``streak_dir``, a folder of rendered rain-streak images, loaded once.

An "epoch" of the data is one pass over its images at the batch size, which
turns ``--stage_epochs`` into steps.
"""

import dataclasses
import glob
import math
import os

import tensorflow as tf

from erlrestore.data import io, pairing, pipeline, synthetic, tfrecord


@dataclasses.dataclass(frozen=True)
class DataSettings:
    train_input_dir: str = ""
    train_target_dir: str = ""
    layout: str = "auto"
    pair_order: str = ""
    train_tfrecords: str = ""
    synthetic_clean_dir: str = ""
    procedural: int = 0
    degradation: str = "rain"
    streak_dir: str = ""  # rain-streak layers of the real_rain / real_heavy_rain degradations
    degradation_params: str = ""  # "name=value;name=low,high": parameters of the degradation (synthetic.parse_params)
    val_input_dir: str = ""
    val_target_dir: str = ""
    val_max_images: int = 0
    crop_size: int = 320
    batch_size: int = 1
    augment: bool = False
    cache: bool = False
    pad_small: bool = False
    seed: int = 0
    deterministic: bool = False


def _sources_given(settings):
    return [name for name, given in (
        ("train_input_dir", settings.train_input_dir),
        ("train_tfrecords", settings.train_tfrecords),
        ("synthetic_clean_dir/procedural", settings.synthetic_clean_dir or settings.procedural),
    ) if given]


def synthetic_params(settings):
    """The degradation parameters the settings give: ``{"streaks": streak_dir}`` for the real-streak ones.

    ValueError when ``degradation`` needs a streak folder and ``streak_dir``
    is empty, or ``streak_dir`` is given to a degradation without streaks.
    """
    needs = "streaks" in synthetic.required_params(settings.degradation)
    if needs and not settings.streak_dir:
        raise ValueError(f"--degradation={settings.degradation} needs --streak_dir, a folder of rain-streak images")
    if settings.streak_dir and not needs:
        users = [n for n in synthetic.DEGRADATIONS if "streaks" in synthetic.required_params(n)]
        raise ValueError(f"--streak_dir is only used by --degradation={' or '.join(users)}, "
                         f"not {settings.degradation}")
    params = synthetic.parse_params(settings.degradation_params)
    if params:
        synthetic.check_params(settings.degradation, **params)
    if needs:
        params["streaks"] = settings.streak_dir
    return params


def check_synthetic(settings):
    """Raises ValueError for synthetic-data settings that cannot work (before anything is loaded)."""
    if settings.synthetic_clean_dir or settings.procedural or settings.streak_dir or settings.degradation_params:
        synthetic_params(settings)


def _procedural_folder(settings, cache_dir):
    """Writes ``procedural`` generated clean images once, for the synthetic source."""
    folder = os.path.join(cache_dir, f"procedural_{settings.procedural}_{settings.seed}")
    if len(glob.glob(os.path.join(folder, "clean_*.png"))) != settings.procedural:
        size = max(settings.crop_size, 64)
        images = synthetic.procedural_images(settings.procedural, size, size, seed=settings.seed)
        for i, image in enumerate(images):
            io.write_image(os.path.join(folder, f"clean_{i:05d}.png"), image)
    return folder


def training_data(settings, cache_dir):
    """Returns (``make_dataset(seed)``, images per epoch).

    ``make_dataset(seed)`` builds the pipeline of batched aligned crops with
    that pipeline seed (``settings.seed`` for the default). The sources are
    found and checked once, here, and with ``cache`` the decoded images are
    cached once and shared by every pipeline made: a run builds one per
    checkpoint interval (see :mod:`erlrestore.training.run`), and each finds
    the images already decoded.
    """
    given = _sources_given(settings)
    if len(given) != 1:
        raise ValueError(
            "give exactly one training source: --train_input_dir, --train_tfrecords, or "
            f"--synthetic_clean_dir / --procedural (got {', '.join(given) or 'none'})"
        )
    common = dict(
        crop_size=settings.crop_size,
        batch_size=settings.batch_size,
        augment=settings.augment,
        deterministic=settings.deterministic,
        pad_small=settings.pad_small,
    )
    min_size = None if settings.pad_small else settings.crop_size
    if settings.train_input_dir:
        pairs = pairing.find_pairs(
            settings.train_input_dir, settings.train_target_dir or None,
            layout=settings.layout, pair_order=settings.pair_order,
        )
        if settings.cache:  # decoded once, then shuffled whole, as train_dataset does for cached pairs
            head = pipeline.pairs_source(pairs, min_size=min_size, deterministic=settings.deterministic).cache()
            build = lambda seed: pipeline.train_dataset(head, seed=seed, shuffle_buffer=len(pairs), **common)
        else:
            build = lambda seed: pipeline.train_dataset(pairs, seed=seed, **common)
        return _maker(build, settings.seed), len(pairs)
    if settings.train_tfrecords:
        pattern = settings.train_tfrecords
        files = sorted(glob.glob(os.path.join(pattern, "*.tfrecord")) if os.path.isdir(pattern) else glob.glob(pattern))
        if not files:
            raise io.DataError(f"no TFRecord shards found at {pattern}")
        count = sum(1 for _ in tf.data.TFRecordDataset(files))
        head = pipeline.tfrecord_source(files if len(files) > 1 else files[0])
        if settings.cache:
            head = head.cache()
        return _maker(lambda seed: pipeline.train_dataset(head, seed=seed, **common), settings.seed), count
    clean_dir = settings.synthetic_clean_dir or _procedural_folder(settings, cache_dir)
    paths = io.list_images(clean_dir)
    degrade = synthetic.make_degradation(settings.degradation, **synthetic_params(settings))
    clean = pipeline.clean_images(paths)
    if settings.cache:
        clean = clean.cache()

    def build(seed):
        source = pipeline.synthetic_source(clean, degrade, seed=seed)
        return pipeline.train_dataset(source, seed=seed, **common)

    return _maker(build, settings.seed), len(paths)


def _maker(build, default_seed):
    def make_dataset(seed=None):
        return build(default_seed if seed is None else seed)
    return make_dataset


def validation_data(settings):
    """Full-size (input, target) batches of one image, or None without a validation set."""
    if not settings.val_input_dir:
        return None, []
    pairs = pairing.find_pairs(
        settings.val_input_dir, settings.val_target_dir or None,
        layout=settings.layout, pair_order=settings.pair_order,
    )
    if settings.val_max_images:
        pairs = pairs[: settings.val_max_images]
    dataset = pipeline.eval_dataset(pairs).map(lambda x, y, name: (x, y))
    return dataset.cache(), pairs


def steps_for(epochs, images, batch_size):
    """Optimizer steps in ``epochs`` passes over ``images`` images."""
    return max(1, math.ceil(epochs * images / batch_size))
