"""The README's main job, end to end on an embedded default (``make demo``).

    python -m tools.demo --output_dir=demo_output [--clean_dir=photos/]

1. synthesizes a small paired de-raining set from generated clean images
   (or from ``--clean_dir``): a training part and a held-out test part;
2. measures the rainy test inputs (Y-PSNR/SSIM, the literature's way);
3. trains a small ERL-Net (MLGD, strategy MA_D: MEMD stage, REN stage,
   fine-tuning stage) for a few minutes on the CPU;
4. evaluates it on the held-out pairs;
5. exports the restoration network as a SavedModel in TF Serving's layout;
6. restores a test photo through that SavedModel (tiled, as for a photo of
   any size) and writes a labelled strip (``erlrestore.pictures``):
   input | restored | clean, with each one's Y-PSNR;
7. restores a real rainy photo with the shipped ``pretrained:erlnet-derain``
   (``--real_pair``: a rainy photo whose clean twin sits in the sibling
   ``norain/`` folder, by default the first Rain12 photo of
   ``../shared/data``) and writes input | restored | clean with both scores.

Why the real photo is not in the repository: the benchmark samples belong to
their authors and our rule is never to copy them into the project, so step 7
runs where ``../shared/data`` (or any Rain12-style pair given with
``--real_pair``) is at hand, and says so and carries on where it is not (and
where a checkout lacks the shipped weights).

It prints where everything is. Re-running resumes or reuses what is there.
"""

import os

from absl import app, flags

import erlrestore.cli  # noqa: F401  (quiet by default; imported before anything imports TensorFlow)
from erlrestore import evaluation, export, inference, metrics, pictures, pretrained
from erlrestore import savedmodel_contract as contract
from erlrestore.data import pairing, root, synthetic
from erlrestore.training import experiment, inputs

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("output_dir", "demo_output", "Where the demo writes everything.")
    flags.DEFINE_string("clean_dir", None, "Clean photos to degrade; default: generated images.")
    flags.DEFINE_integer("train_images", 24, "Generated clean training images.", lower_bound=1)
    flags.DEFINE_integer("test_images", 4, "Generated clean test images.", lower_bound=1)
    flags.DEFINE_integer("size", 192, "Side of the generated images in pixels.", lower_bound=64)
    flags.DEFINE_list("stage_steps", ["600", "300", "300"], "Training steps of the MA_D stages I, II, III.")
    flags.DEFINE_integer("seed", 0, "Random seed.", lower_bound=0)
    flags.DEFINE_string("real_pair", root.under_root("rain12", "rain", "rain-001.png"),
                        "A real rainy photo for the shipped model; its clean twin is the file named the same "
                        "with 'rain' replaced by 'norain' in the sibling norain/ folder (the Rain12 layout).")
    flags.DEFINE_string("pretrained_model", "erlnet-derain", "The shipped model of step 7.")


def _synthesize(output_dir):
    train_dir = os.path.join(output_dir, "data", "train")
    test_dir = os.path.join(output_dir, "data", "test")
    if FLAGS.clean_dir:
        synthetic.synthesize_folder(train_dir, "rain", clean_dir=FLAGS.clean_dir, seed=FLAGS.seed, overwrite=True)
        synthetic.synthesize_folder(test_dir, "rain", clean_dir=FLAGS.clean_dir, seed=FLAGS.seed + 1, overwrite=True)
    else:
        size = (FLAGS.size, FLAGS.size)
        synthetic.synthesize_folder(train_dir, "rain", procedural=FLAGS.train_images, size=size,
                                    seed=FLAGS.seed, overwrite=True)
        # Different seed: other scenes and other rain than the training set.
        synthetic.synthesize_folder(test_dir, "rain", procedural=FLAGS.test_images, size=size,
                                    seed=FLAGS.seed + 1000, overwrite=True)
    return train_dir, test_dir


def main(argv):
    del argv
    out = FLAGS.output_dir
    train_dir, test_dir = _synthesize(out)
    test_pairs = pairing.find_pairs(test_dir)
    print(f"1. synthesized rainy/clean pairs: train {train_dir}, test {test_dir}")

    _, before = evaluation.measure_pairs(test_pairs, show_progress=False)
    print(f"2. rainy test inputs:          {before.line()}")

    model_dir = os.path.join(out, "run")
    steps = tuple(int(s) for s in FLAGS.stage_steps)
    settings = experiment.TrainSettings(
        model_dir=model_dir, model="ERLNet", strategy="MA_D", entanglement="MLGD",
        depth=3, base_filters=16, dense_layers=3, growth_rate=8,
        stage_steps=steps, checkpoint_every=50, plateau_patience=0, verbose="auto",
        data=inputs.DataSettings(train_input_dir=train_dir, val_input_dir=test_dir, crop_size=96,
                                 batch_size=4, augment=True, cache=True, seed=FLAGS.seed),
    )
    print(f"3. training a small ERL-Net (MLGD, MA_D, stages of {steps} steps) in {model_dir}")
    final = experiment.train(settings)

    _, after = evaluation.evaluate_model(inference.load_restorer(final), test_pairs, show_progress=False)
    print(f"4. restored test images:       {after.line()}")

    base_dir = os.path.join(out, "savedmodels")
    exported_dir = os.path.join(base_dir, "erlnet_demo")
    if contract.list_versions(exported_dir, contract.SAVED_MODEL_FILE):
        saved = contract.latest_version_folder(exported_dir, contract.SAVED_MODEL_FILE)
    else:
        saved = export.export_savedmodel(final, base_dir=base_dir, name="erlnet_demo")
    print(f"5. SavedModel for TF Serving:  {saved}")

    restorer = inference.load_restorer(saved)
    degraded, clean = pairing.load_pair(test_pairs[0])
    restored = inference.restore_tiled(restorer, degraded, tile=128, overlap=32)
    sample = os.path.join(out, "sample_input_restored_clean.png")
    pictures.write_strip(sample, pictures.comparison_strip(degraded, evaluation.quantize_8bit(restored), clean))
    print(f"6. side-by-side sample:        {sample}")
    print(f"   TensorBoard logs:           {os.path.join(model_dir, 'logs')}")
    print(f"   serve it:                   erlrestore-serve --model_base_path={base_dir}")
    _restore_real_photo(out)
    print(after.line())


def _clean_twin(rainy_path):
    folder, name = os.path.split(rainy_path)
    return os.path.join(os.path.dirname(folder), "norain", "no" + name if name.startswith("rain") else name)


def _restore_real_photo(out):
    """Step 7: the shipped model on a real rainy photo, or the reason it cannot run here."""
    name = FLAGS.pretrained_model
    if name not in pretrained.list():
        print(f"7. real photo: skipped, no shipped {name!r} in this checkout "
              f"(shipped: {', '.join(pretrained.list()) or 'none yet'}; see docs/PRETRAINED.md)")
        return
    clean_path = _clean_twin(FLAGS.real_pair)
    if not (os.path.isfile(FLAGS.real_pair) and os.path.isfile(clean_path)):
        print(f"7. real photo: skipped, {FLAGS.real_pair} and its clean twin {clean_path} are not both here "
              "(pass --real_pair=<folder>/rain/<photo> with <folder>/norain/no<photo>)")
        return
    restorer = inference.load_restorer(f"pretrained:{name}")
    rainy, clean = pairing.load_pair(pairing.Pair(FLAGS.real_pair, clean_path))
    restored = evaluation.quantize_8bit(inference.restore_tiled(restorer, rainy, tile=None))
    sample = os.path.join(out, "real_input_restored_clean.png")
    before, after = (float(metrics.psnr(image, clean)) for image in (rainy, restored))
    labels = ["rainy input", f"pretrained:{name}", "clean"]
    pictures.write_strip(sample, pictures.comparison_strip(rainy, restored, clean, labels=labels,
                                                           psnrs=[before, after]))
    print(f"7. real photo by pretrained:{name}: {sample} (Y-PSNR input {before:.2f} dB, restored {after:.2f} dB)")


if __name__ == "__main__":
    define_flags()
    app.run(main)
