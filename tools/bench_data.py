"""Benchmark of the tf.data training pipelines (pairs per second).

    python -m tools.bench_data [--data_dir=<data>/rain12] [--batches=30] [--warmup=3]
                               [--synthetic=rain,heavy_rain]

Configurations, one output line each (name, pairs/s, batches, seconds):

* ``rain12 decode+crop b{1,8} [cache]``: the Rain12 PNG pairs through
  ``train_dataset`` (PNG decode, aligned ``--crop_size`` crop, batch), with
  and without ``cache=True`` (decoded full images kept in memory).
* ``synthetic <degradation> <clean> b8``: ``synthetic_source`` (decode a
  clean image, the degradation with its default parameters on the full image
  with a per-element seed) + crop + batch, for each degradation named in
  ``--synthetic`` (``rain`` and ``heavy_rain`` by default), from procedural
  clean images (written as PNGs to a temporary folder) and, when present,
  from Rain12's clean images.

Each configuration first runs ``--warmup`` batches (at least one full pass
over the images when caching, so the cache is filled), then times
``--batches`` batches of 8 (``8 * --batches`` batches of 1, so every
configuration times the same number of pairs). If ``--data_dir`` is missing, only the synthetic
configurations run, from procedural images. The machine (CPU count,
platform, TensorFlow version) is printed first.
"""

import math
import os
import tempfile
import time

from absl import app, flags

from erlrestore.data import root

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("data_dir", root.under_root("rain12"),
                        "Rain12 folder (rain/ + norain/); default: rain12 under $ERLRESTORE_DATA_ROOT.")
    flags.DEFINE_integer("crop_size", 320, "Crop side in pixels.", lower_bound=1)
    flags.DEFINE_integer("batches", 30, "Timed batches of 8 per configuration (8x as many of 1).", lower_bound=1)
    flags.DEFINE_integer("warmup", 3, "Untimed batches before timing.", lower_bound=0)
    flags.DEFINE_integer("procedural", 12, "Procedural clean images for the synthetic part.", lower_bound=1)
    flags.DEFINE_integer("seed", 0, "Pipeline seed.")
    flags.DEFINE_list("synthetic", ["rain", "heavy_rain"], "Degradations timed as synthetic sources.")


def time_dataset(dataset, batches, warmup):
    """(pairs, seconds) for ``batches`` batches after ``warmup`` untimed ones."""
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    pairs = 0
    start = time.perf_counter()
    for _ in range(batches):
        inp, _ = next(iterator)
        pairs += int(inp.shape[0])
    return pairs, time.perf_counter() - start


def report(name, pairs, batches, seconds):
    print(f"{name:<44s} {pairs / seconds:9.1f} pairs/s {batches:5d} batches {seconds:8.2f} s", flush=True)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from erlrestore import machine
    from erlrestore.data import image_files, pairing, pipeline, synthetic

    described = machine.describe()
    usable = "n/a" if described["usable_cpus"] is None else described["usable_cpus"]
    print(
        f"machine: os.cpu_count()={described['cpu_count']} usable_cpus={usable} "
        f"platform={described['platform']} processor={described['processor']} "
        f"python={described['python']} tensorflow={described['tensorflow']}"
    )
    print(f"crop={FLAGS.crop_size} warmup={FLAGS.warmup} batches={FLAGS.batches} seed={FLAGS.seed}")
    crop, batches, seed = FLAGS.crop_size, FLAGS.batches, FLAGS.seed

    clean_sets = []
    if os.path.isdir(FLAGS.data_dir):
        pairs = pairing.find_pairs(FLAGS.data_dir)
        print(f"data: {len(pairs)} pairs from {FLAGS.data_dir}")
        for batch in (1, 8):
            for cache in (False, True):
                dataset = pipeline.train_dataset(
                    pairs, crop_size=crop, batch_size=batch, seed=seed, cache=cache
                )
                warmup = FLAGS.warmup
                if cache:
                    warmup = max(warmup, math.ceil(len(pairs) / batch) + 1)
                count = batches * (8 // batch)  # the same number of pairs for b1 and b8
                n, seconds = time_dataset(dataset, count, warmup)
                report(f"rain12 decode+crop b{batch}{' cache' if cache else ''}", n, count, seconds)
        clean_sets.append(("rain12-clean", [p.target_path for p in pairs]))
    else:
        print(f"data: {FLAGS.data_dir} not found; running only the synthetic part")

    degradations = [(name, synthetic.make_degradation(name)) for name in FLAGS.synthetic]
    with tempfile.TemporaryDirectory() as tmp:
        size = max(crop, 64)
        images = synthetic.procedural_images(FLAGS.procedural, size, size * 3 // 2, seed=seed)
        paths = []
        for i, image in enumerate(images):
            path = os.path.join(tmp, f"clean-{i:03d}.png")
            image_files.write_image(path, image)
            paths.append(path)
        clean_sets.insert(0, (f"procedural {size}x{size * 3 // 2}", paths))
        for name, degrade in degradations:
            for label, clean_paths in clean_sets:
                source = pipeline.synthetic_source(clean_paths, degrade, seed=seed)
                dataset = pipeline.train_dataset(source, crop_size=crop, batch_size=8, seed=seed)
                n, seconds = time_dataset(dataset, batches, FLAGS.warmup)
                report(f"synthetic {name} {label} b8", n, batches, seconds)
    return 0


if __name__ == "__main__":
    define_flags()
    app.run(main)
