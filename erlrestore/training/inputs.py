"""Training and validation data from plain settings (the train command's data flags).

Exactly one training source:

* paired files: ``train_input_dir`` (+ ``train_target_dir``), any layout of
  ``erlrestore.data.pairing``, or ``pairs``, a CSV file listing them
  (``pairing.pairs_from_csv``; ``val_pairs`` likewise for validation);
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

from erlrestore.data import image_files, pairing, pipeline, synthetic
from erlrestore.training import options


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """The data settings of a run, each declared once with its flag (:mod:`erlrestore.training.options`)."""

    train_input_dir: str = options.text("", "Degraded training images (or a folder holding both sets).")
    train_target_dir: str = options.text("", "Clean training images, when not inside --train_input_dir.")
    layout: str = options.choice("auto", pairing.LAYOUTS, "How files pair (see erlrestore.data.pairing).")
    pairs: str = options.text("", "A CSV file of input,target training pairs (paths relative to its folder, or "
                              "absolute) for names no layout pairs; instead of --train_input_dir.")
    val_pairs: str = options.text("", "A CSV file of input,target validation pairs; instead of --val_input_dir.")
    pair_order: str = options.choice("", ("",) + pairing.PAIR_ORDERS, "Half order of side_by_side images.")
    train_tfrecords: str = options.text("", "TFRecord shards (folder or glob) written by erlrestore-tfrecords.")
    synthetic_clean_dir: str = options.text("", "Clean photos degraded on the fly by --degradation.")
    procedural: int = options.integer(0, "Generate this many clean images and degrade them on the fly.", lower=0)
    degradation: str = options.choice("rain", lambda: sorted(synthetic.DEGRADATIONS), "Synthetic degradation.")
    # Rain-streak layers of the real_rain / real_heavy_rain degradations.
    streak_dir: str = options.text("", "Folder of rendered rain-streak images (grey PNGs), required by "
                                   "--degradation=real_rain / real_heavy_rain.")
    # "name=value;name=low,high": parameters of the degradation (synthetic.parse_params).
    degradation_params: str = options.text("", "Parameters of --degradation as name=value;name=low,high "
                                           "(e.g. streak_layers=1,12;veil_share=0.35; see erlrestore.data.synthetic).")
    val_input_dir: str = options.text("", "Validation images (full size), measured with Y-PSNR/SSIM.")
    val_target_dir: str = options.text("", "Clean validation images, when not inside --val_input_dir.")
    val_max_images: int = options.integer(0, "Validate on at most this many pairs (0: all).", lower=0)
    crop_size: int = options.integer(320, "Random crop side (paper: 320).", lower=8)
    # The global batch (split over the replicas); a resumed run keeps it.
    batch_size: int = options.integer(1, "Batch size (paper: 1).", lower=1, identity=True)
    augment: bool = options.boolean(False, "Random flips / 90-degree rotations (paper: none).")
    cache: bool = options.boolean(False, "Keep decoded images in memory.")
    pad_small: bool = options.boolean(False, "Reflect-pad images smaller than the crop instead of failing.")
    seed: int = options.integer(0, "Random seed (weights, crops, synthetic degradations).", lower=0)
    deterministic: bool = options.boolean(False, "Deterministic ops and data order (slower).")


def _sources_given(settings):
    return [name for name, given in (
        ("train_input_dir", settings.train_input_dir),
        ("pairs", settings.pairs),
        ("train_tfrecords", settings.train_tfrecords),
        ("synthetic_clean_dir/procedural", settings.synthetic_clean_dir or settings.procedural),
    ) if given]


def _paired_files(settings, role):
    """The pairs of the training (``role="train"``) or validation (``"val"``) set: its CSV list, or its folders."""
    listed = settings.pairs if role == "train" else settings.val_pairs
    input_dir, target_dir = getattr(settings, f"{role}_input_dir"), getattr(settings, f"{role}_target_dir")
    if listed:
        if input_dir or target_dir:
            flag = "pairs" if role == "train" else "val_pairs"
            raise ValueError(f"--{flag}={listed} lists the pairs itself; drop --{role}_input_dir and "
                             f"--{role}_target_dir")
        return pairing.pairs_from_csv(listed)
    return pairing.find_pairs(input_dir, target_dir or None, layout=settings.layout, pair_order=settings.pair_order)


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
            image_files.write_image(os.path.join(folder, f"clean_{i:05d}.png"), image)
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
            "give exactly one training source: --train_input_dir, --pairs, --train_tfrecords, or "
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
    if settings.train_input_dir or settings.pairs:
        pairs = _paired_files(settings, "train")
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
            raise image_files.DataError(f"no TFRecord shards found at {pattern}")
        count = sum(1 for _ in tf.data.TFRecordDataset(files))
        head = pipeline.tfrecord_source(files if len(files) > 1 else files[0])
        if settings.cache:
            head = head.cache()
        return _maker(lambda seed: pipeline.train_dataset(head, seed=seed, **common), settings.seed), count
    clean_dir = settings.synthetic_clean_dir or _procedural_folder(settings, cache_dir)
    paths = image_files.list_images(clean_dir)
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
    if not settings.val_input_dir and not settings.val_pairs:
        return None, []
    pairs = _paired_files(settings, "val")
    if settings.val_max_images:
        pairs = pairs[: settings.val_max_images]
    dataset = pipeline.eval_dataset(pairs).map(lambda x, y, name: (x, y))
    return dataset.cache(), pairs


def steps_for(epochs, images, batch_size):
    """Optimizer steps in ``epochs`` passes over ``images`` images."""
    return max(1, math.ceil(epochs * images / batch_size))
