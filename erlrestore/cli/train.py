"""erlrestore-train: train a restoration model from absl flags (or a flagfile).

    erlrestore-train --flagfile=flags/erlnet_ma_d_mlgd.flags --train_input_dir=Rain100H/train \
        --val_input_dir=Rain100H/test --model_dir=runs/erlnet_ma_d_mlgd
    erlrestore-train --flagfile=flags/unet5_lsgan_infoaccum15_subpix.flags --train_input_dir=Rain800/train \
        --model_dir=runs/unet5_ia15_subpix

One command for every registered model family
(:mod:`erlrestore.training.families`): ``--model`` MEMD / MEMD- / MEMD-- /
ERLNet (ERL-Net paper) or UNet / EnDec (generators with a PatchGAN,
rethinking paper). Flags of the other families are ignored.

Run it again with the same flags to resume an interrupted run: finished
stages are skipped and the current one continues from its last checkpoint.
``--stop_after=N`` ends a time-boxed invocation at the first checkpoint
after N steps; the same command continues later.

Devices: ``--distribution_strategy`` (default, mirrored over local GPUs or
``--devices``, multi_worker_mirrored from ``TF_CONFIG``, tpu),
``--precision`` (auto, float32, mixed_bfloat16, mixed_float16) and
``--jit_compile`` (auto, on, off); see :mod:`erlrestore.training.devices`.
``--batch_size`` is the global batch, split over the replicas.

Every flag here except ``--max_image_pixels`` is a field of
:class:`~erlrestore.training.settings.TrainSettings` (of its ``data`` group
or of a model family's settings group), declared once there with its help,
bounds and role in the run's identity (:mod:`erlrestore.training.options`);
a new setting is added there, not here.
"""

import sys

from absl import app, flags

from erlrestore.cli import apply_max_image_pixels, define_max_image_pixels_flag, entry_point, fail, finish

from erlrestore.data import image_files
from erlrestore.training import experiment, inputs, options

FLAGS = flags.FLAGS


def define_flags():
    """One flag per training setting, made from its declaration in TrainSettings (and its data group)."""
    options.define_flags(experiment.TrainSettings, FLAGS, module_name=__name__)
    define_max_image_pixels_flag()  # --max_image_pixels, shared with the other tools


def settings_from_flags():
    """TrainSettings from the parsed flags; ValueError for a bad list item (``--stage_steps=x``)."""
    return options.from_flags(experiment.TrainSettings, FLAGS)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    apply_max_image_pixels()
    try:
        settings = settings_from_flags()
        experiment.check_settings(settings)
        inputs.check_synthetic(settings.data)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    try:
        final = experiment.train(settings)
    except (image_files.DataError, ValueError, FloatingPointError, OSError) as error:
        return fail(error)
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume from the last checkpoint in {settings.model_dir}",
              file=sys.stderr)
        return 130
    if final is None:
        return finish(f"stopped after --stop_after={settings.stop_after} steps; run the same command again to "
                      f"continue from the last checkpoint in {settings.model_dir}")
    return finish(f"model: {final}")


run = entry_point(define_flags, main, __name__)

if __name__ == "__main__":
    run()
