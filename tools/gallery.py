"""A gallery of the shipped models at work: ``docs/gallery`` (the README's "Gallery").

    python -m tools.gallery --data_root=../shared/data --output_dir=docs/gallery \\
        [--streak_dir=../shared/data/derain-train/streaks] [--models=erlnet-derain,...]

For every shipped model (``erlrestore.pretrained.list()``, or ``--models``)
it takes the ``--photos`` of ``<data_root>/kodak24`` (Kodak released the
Kodak24 photos for free use; the benchmark rain/haze/noise sets are not ours
to publish, so they are never used here), degrades each with the project's
own synthetic degradation for the model's task (:func:`recipes`), restores it
with the model (tiled, as ``erlrestore-restore`` does) and writes a labelled
JPEG strip input | restored | clean with each panel's PSNR against the clean
photo (``erlrestore.pictures``) as ``<model>-<n>.jpg``, n = 1, 2 (, 3). Then it
writes ``README.md`` in the same folder: every strip, what degraded it, the
scores, and the command that made them.

The degradations (photo n of ``--photos`` gets recipe n of its model's task; three photos cover every task):

* ``derain``: the three cases of the de-raining cards' held-out sets: with
  ``--streak_dir`` (a folder of rendered streak layers, e.g.
  ``derain-train/streaks``) light and heavy ``real_dense_rain`` (real
  streaks at the photo's scale, as the shipped models were trained on),
  without it the procedural ``rain`` and ``heavy_rain``; then rain with
  haze (``rain_haze``, the heavy rain model of Li et al., medium density);
* ``dehaze``: ``haze``, moderate (beta 1.0) and thick (beta 2.0);
* ``denoise``: ``gaussian_noise`` at sigma 25 and ``camera_noise`` (the
  processed-camera branch alone).

Reproducible: each degraded input depends only on ``--seed``, the photo and
the recipe (not on which models are listed), so every model of a task sees
the same inputs, and re-running the command gives the same inputs; the
degraded and restored images are rounded to 8 bits, as files would be.
Files the run writes are replaced; nothing else in ``--output_dir`` is
touched. Add a model to the package, run the same command again, and it
joins the gallery.
"""

import collections
import os
import zlib

import numpy as np
from absl import app, flags

import erlrestore.cli  # first: quiet by default (imported before anything imports TensorFlow)
from erlrestore import evaluation, inference, metrics, pictures, pretrained
from erlrestore.cli import option_groups
from erlrestore.data import image_files, synthetic

FLAGS = flags.FLAGS

PHOTO_FOLDER = "kodak24"
DEFAULT_PHOTOS = ("kodim01", "kodim23", "kodim13")
DEFAULT_MAX_WIDTH = 1600
DEFAULT_JPEG_QUALITY = 85
FRAGMENT = "README.md"

# What degrades photo n for a model of a task; ``streaks`` is filled in from --streak_dir.
Recipe = collections.namedtuple("Recipe", "label degradation params")


def recipes(task, streaks=None):
    """The degradations the gallery shows a model of ``task`` (one of ``pretrained.TASKS``): three for rain, else two.

    ``streaks``: a streak folder or ``StreakBank`` for real rendered rain;
    None: procedural rain.
    """
    if task == "derain":
        if streaks is not None:
            # The three held-out cases of the de-raining cards (tools.derain_training_data.HELDOUT_SETS).
            return [Recipe("light rain", "real_dense_rain", {"streaks": streaks, "density_level": "light"}),
                    Recipe("heavy rain", "real_dense_rain", {"streaks": streaks, "density_level": "heavy"}),
                    Recipe("rain and haze", "rain_haze", {"density_level": "medium"})]
        return [Recipe("rain", "rain", {}), Recipe("heavy rain", "heavy_rain", {}),
                Recipe("rain and haze", "rain_haze", {"density_level": "medium"})]
    if task == "dehaze":
        return [Recipe("haze", "haze", {"beta": 1.0}), Recipe("thick haze", "haze", {"beta": 2.0})]
    if task == "denoise":
        return [Recipe("Gaussian noise, sigma 25", "gaussian_noise", {"sigma": 25.0}),
                Recipe("camera noise", "camera_noise", {"gaussian_share": 0.0})]
    raise ValueError(f"no gallery degradations for task {task!r}; tasks: {', '.join(pretrained.TASKS)}")


def describe(recipe):
    """``real_rain streak_layers=1-2 scale=1-2 mix_procedural=0.5``: the degradation and its parameters."""
    parts = [recipe.degradation]
    for key, value in recipe.params.items():
        if key == "streaks":
            continue
        if isinstance(value, tuple):
            value = "-".join(f"{v:g}" for v in value)
        elif isinstance(value, float):
            value = f"{value:g}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def recipe_seed(seed, photo, recipe):
    """The stateless seed of ``recipe`` on ``photo``: a function of the three only."""
    return np.array([seed, zlib.crc32(f"{photo}|{recipe.label}|{describe(recipe)}".encode()) & 0x7FFFFFFF],
                    np.int64)


def find_photo(folder, stem):
    """The image file named ``stem`` (any image extension) in ``folder``; DataError naming both if none."""
    found = [path for path in image_files.list_images(folder)
             if os.path.splitext(os.path.basename(path))[0] == stem]
    if len(found) != 1:
        what = "no" if not found else "more than one"
        raise image_files.DataError(f"{what} photo named {stem!r} in {folder}")
    return found[0]


Entry = collections.namedtuple("Entry", "model task number file photo recipe input_psnr restored_psnr")


def build(data_root, output_dir, *, models=None, photos=DEFAULT_PHOTOS, streak_dir=None, seed=0, tile=512,
          overlap=32, channel="y", max_width=DEFAULT_MAX_WIDTH, jpeg_quality=DEFAULT_JPEG_QUALITY, log=print):
    """Writes ``<model>-<n>.jpg`` for each model and photo into ``output_dir``; returns the Entries, in order.

    ``models``: names in ``pretrained.list()`` (default: all of them).
    ``photos``: file stems in ``<data_root>/kodak24``, at least as many as a model has degradations.
    """
    photos = list(photos)
    names = pretrained.list() if models is None else list(models)
    if not names:
        raise image_files.DataError(f"no shipped models in {pretrained.models_folder()}")
    folder = os.path.join(data_root, PHOTO_FOLDER)
    # Check everything before the slow part: photos, tasks, the streak folder.
    clean = {stem: image_files.read_image(find_photo(folder, stem)) for stem in photos}
    tasks = {name: pretrained.task(name) for name in names}
    streaks = synthetic.load_streaks(streak_dir) if streak_dir and "derain" in tasks.values() else None
    plans = {name: recipes(task, streaks) for name, task in tasks.items()}
    for name, plan in plans.items():
        if len(plan) > len(photos):
            raise ValueError(f"{len(photos)} photos for the {len(plan)} degradations of {name}; give "
                             f"at least {len(plan)} --photos")
    os.makedirs(output_dir, exist_ok=True)
    degraded_cache = {}
    entries = []
    for name in names:
        restorer = inference.load_restorer(pretrained.PREFIX + name)
        for number, (stem, recipe) in enumerate(zip(photos, plans[name]), start=1):
            key = (stem, recipe.label, describe(recipe))
            if key not in degraded_cache:
                degrade = synthetic.make_degradation(recipe.degradation, **recipe.params)
                degraded = degrade(clean[stem], recipe_seed(seed, stem, recipe))
                degraded_cache[key] = evaluation.quantize_8bit(np.asarray(degraded))
            degraded = degraded_cache[key]
            restored = evaluation.quantize_8bit(inference.restore_tiled(restorer, degraded, tile=tile,
                                                                        overlap=overlap))
            psnrs = [metrics.psnr_ssim(image, clean[stem], 0, channel)[0] for image in (degraded, restored)]
            picture = pictures.comparison_strip(
                degraded, restored, clean[stem], labels=[f"input: {recipe.label}", name, "clean"], psnrs=psnrs,
                channel=channel, max_width=max_width)
            file = f"{name}-{number}.jpg"
            pictures.write_strip(os.path.join(output_dir, file), picture, jpeg_quality=jpeg_quality)
            entry = Entry(name, tasks[name], number, file, stem, recipe, *psnrs)
            entries.append(entry)
            log(f"{file}: {recipe.label} on {stem}, {pictures.psnr_text(psnrs[0], channel)} -> "
                f"{pictures.psnr_text(psnrs[1], channel)}")
    return entries


def photo_number(stem):
    """``"Kodak24 photo 23"`` for ``kodim23``; the stem itself for other names."""
    digits = "".join(ch for ch in stem if ch.isdigit())
    return f"Kodak24 photo {int(digits)}" if stem.startswith("kodim") and digits else stem


def fragment(entries, command, channel="y"):
    """The gallery's README.md (markdown): the command, then each model's strips with what made them."""
    unit = f"{pictures.CHANNEL_NAMES[channel]}-PSNR"
    lines = [
        "# Gallery",
        "",
        "The models shipped in `erlrestore.pretrained` on photos of the Kodak24 set (released by Kodak for free "
        "use), degraded with erlrestore's own synthetic degradations (`erlrestore.data.synthetic`), restored "
        "whole-photo with tiling as `erlrestore-restore` does, and shown as input | restored | clean with each "
        f"panel's {unit} against the clean photo (8-bit images, as files would be). Written by:",
        "",
        "```sh",
        command,
        "```",
        "",
        "The seeds are fixed: the same command gives the same degraded inputs (every model of a task gets the "
        "same ones). A model added to the package joins the gallery when the command is run again.",
    ]
    by_model = collections.OrderedDict()
    for entry in entries:
        by_model.setdefault(entry.model, []).append(entry)
    for name, rows in by_model.items():
        lines += ["", f"## `{name}` ({rows[0].task})", ""]
        for entry in rows:
            gain = entry.restored_psnr - entry.input_psnr
            lines += [
                f"![{name} on {entry.recipe.label}]({entry.file})",
                "",
                f"{photo_number(entry.photo)}, {entry.recipe.label} (`{describe(entry.recipe)}`): "
                f"{unit} {entry.input_psnr:.2f} dB as input, {entry.restored_psnr:.2f} dB restored "
                f"({gain:+.2f} dB).",
                "",
            ]
        lines.pop()
    return "\n".join(lines) + "\n"


def _relative(path):
    return os.path.relpath(path) if path and os.path.isabs(path) else path


def command_line(data_root, output_dir, streak_dir, models, photos, seed):
    """The command that regenerates the gallery, paths relative to the working folder."""
    parts = ["python -m tools.gallery", f"--data_root={_relative(data_root)}", f"--output_dir={_relative(output_dir)}"]
    if streak_dir:
        parts.append(f"--streak_dir={_relative(streak_dir)}")
    if models:
        parts.append(f"--models={','.join(models)}")
    if tuple(photos) != DEFAULT_PHOTOS:
        parts.append(f"--photos={','.join(photos)}")
    if seed:
        parts.append(f"--seed={seed}")
    return " ".join(parts)


def define_flags():
    flags.DEFINE_string("data_root", None, f"Folder holding {PHOTO_FOLDER}/ (the Kodak24 photos).")
    flags.DEFINE_string("output_dir", "docs/gallery", "Where the strips and README.md go.")
    flags.DEFINE_string("streak_dir", None, "Rendered rain-streak layers (e.g. <data_root>/derain-train/streaks) "
                        "for real_rain on the de-raining models; default: procedural rain and heavy_rain.")
    flags.DEFINE_list("models", None, "Shipped models to show; default: every one in erlrestore.pretrained.list().")
    flags.DEFINE_list("photos", list(DEFAULT_PHOTOS), f"The photos (file stems in {PHOTO_FOLDER}/), photo n for a model's degradation n: "
                      "three, for the three de-raining cases.")
    flags.DEFINE_integer("seed", 0, "Seed of the degradations.", lower_bound=0)
    option_groups.define_tiling_flags(512)
    flags.DEFINE_enum("channel", "y", ["y", "rgb"], "PSNR on the BT.601 Y channel or on RGB.")
    flags.DEFINE_integer("max_width", DEFAULT_MAX_WIDTH, "Strips wider than this are scaled down.", lower_bound=0)
    flags.DEFINE_integer("jpeg_quality", DEFAULT_JPEG_QUALITY, "JPEG quality of the strips.", lower_bound=1,
                         upper_bound=100)
    flags.mark_flag_as_required("data_root")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        entries = build(FLAGS.data_root, FLAGS.output_dir, models=FLAGS.models, photos=FLAGS.photos,
                        streak_dir=FLAGS.streak_dir, seed=FLAGS.seed, tile=FLAGS.tile, overlap=FLAGS.overlap,
                        channel=FLAGS.channel, max_width=FLAGS.max_width, jpeg_quality=FLAGS.jpeg_quality)
    except (image_files.DataError, ValueError) as error:
        return erlrestore.cli.fail(error)
    command = command_line(FLAGS.data_root, FLAGS.output_dir, FLAGS.streak_dir, FLAGS.models, FLAGS.photos,
                           FLAGS.seed)
    path = os.path.join(FLAGS.output_dir, FRAGMENT)
    image_files.write_bytes_atomically(path, fragment(entries, command, FLAGS.channel).encode("utf-8"))
    total = sum(os.path.getsize(os.path.join(FLAGS.output_dir, entry.file)) for entry in entries)
    print(f"wrote {len(entries)} strips ({total / 2**20:.2f} MiB) and {path}")
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
