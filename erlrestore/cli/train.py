"""erlrestore-train: train a restoration model from absl flags (or a flagfile).

    erlrestore-train --flagfile=flags/erlnet_ma_d_mlgd.flags --train_input_dir=Rain100H/train \
        --val_input_dir=Rain100H/test --model_dir=runs/erlnet_ma_d_mlgd
    erlrestore-train --flagfile=flags/unet5_lsgan_infoaccum15_subpix.flags --train_input_dir=Rain800/train \
        --model_dir=runs/unet5_ia15_subpix

One command for both families: ``--model`` MEMD / MEMD- / MEMD-- / ERLNet
(ERL-Net paper) or UNet / EnDec (generators with a PatchGAN, rethinking
paper). Flags of the other family are ignored.

Run it again with the same flags to resume an interrupted run: finished
stages are skipped and the current one continues from its last checkpoint.
``--stop_after=N`` ends a time-boxed invocation at the first checkpoint
after N steps; the same command continues later.

Devices: ``--distribution_strategy`` (default, mirrored over local GPUs or
``--devices``, multi_worker_mirrored from ``TF_CONFIG``, tpu),
``--precision`` (auto, float32, mixed_bfloat16, mixed_float16) and
``--jit_compile`` (auto, on, off); see :mod:`erlrestore.training.devices`.
``--batch_size`` is the global batch, split over the replicas.
"""

import dataclasses
import sys

from absl import app, flags

from erlrestore.cli import apply_max_image_pixels, define_max_image_pixels_flag, fail, show_flags_in_help

from erlrestore import losses
from erlrestore.data import io, pairing, synthetic
from erlrestore.models import erlnet
from erlrestore.training import devices, experiment, inputs, stages

FLAGS = flags.FLAGS


def define_flags():
    # What to train.
    flags.DEFINE_enum("model", "ERLNet", experiment.MODELS,
                      "Network: MEMD baselines / ERL-Net, or a UNet-N / En/Decoder-N generator with a PatchGAN.")
    flags.DEFINE_enum("strategy", "", [""] + list(stages.STRATEGIES) + list(stages.GAN_STRATEGIES),
                      "Training strategy: ERL-Net Table 1 (default MA_D; MEMD for the baselines) or a generator "
                      "strategy (default GAN; L1, RECON, RECON_GAN, RECON_L1, DPRE_GAN).")
    # ERL-Net family.
    flags.DEFINE_enum("entanglement", "MLGD", erlnet.ENTANGLEMENTS, "ERL-Net entanglement: bottleneck only or every level.")
    flags.DEFINE_integer("depth", 4, "U-Net levels (down-samplings).", lower_bound=1)
    flags.DEFINE_integer("base_filters", 32, "Embedding width of the first level (doubles per level).", lower_bound=1)
    flags.DEFINE_integer("dense_layers", 4, "Layers per dense block.", lower_bound=1)
    flags.DEFINE_integer("growth_rate", 16, "Dense block growth rate.", lower_bound=1)
    flags.DEFINE_enum("norm", "none", ["none", "instance", "batch"], "Normalisation inside dense blocks.")
    flags.DEFINE_boolean("global_residual", True, "Restoration nets predict a correction added to the input (our "
                         "addition; the paper's flagfiles say --noglobal_residual: its decoder generates the image).")
    flags.DEFINE_float("fre_weight", 0.01, "lambda of L_ERL = L_pre + lambda L_fre (paper: 0.01).", lower_bound=0)
    flags.DEFINE_enum("fre_reduction", "mean_sum", list(losses.FRE_REDUCTIONS),
                      "L_fre: mean |difference| of each entangled level, then summed (mean_sum) or averaged "
                      "(mean_mean, = mean_sum / levels) over the levels.")
    # Generative family (defaults: pix2pix).
    flags.DEFINE_integer("levels", 8, "Generator down/up-sampling levels N (pix2pix: 8).", lower_bound=1, upper_bound=8)
    flags.DEFINE_integer("gen_filters", 64, "Generator width of the first level.", lower_bound=1)
    flags.DEFINE_enum("gen_norm", "batch", ["batch", "instance", "none"], "Generator and discriminator normalisation.")
    flags.DEFINE_float("dropout", 0.5, "Dropout of the deepest decoder blocks.", lower_bound=0, upper_bound=0.99)
    flags.DEFINE_integer("info_accum_layers", 0, "InfoAccum-L layers (0: none; paper: 15).", lower_bound=0)
    flags.DEFINE_integer("info_accum_growth", 4, "InfoAccum growth rate per dilation path.", lower_bound=1)
    flags.DEFINE_list("info_accum_positions", ["0"], "InfoAccum positions: 0 before the generator, k before level k.")
    flags.DEFINE_boolean("subpixel", False, "Top decoder up-sampling by sub-pixel convolution (SubPixUpsamp).")
    flags.DEFINE_enum("gan_loss", "bce", list(losses.GAN_LOSSES), "Adversarial loss: pix2pix BCE or LSGAN.")
    flags.DEFINE_float("l1_weight", 100.0, "lambda of the generator's pixel term, L1 or MSE as --pixel_loss says "
                       "(pix2pix: 100 with L1; the name is kept for compatibility).", lower_bound=0)
    flags.DEFINE_enum("pixel_loss", "l1", ["l1", "mse"], "Generator pixel loss: L1 (pix2pix) or mean squared error "
                      "(the rethinking paper's Table III autoencoders); logged as g_l1 / g_mse.")
    flags.DEFINE_enum("weight_init", "pix2pix", ["pix2pix", "keras"], "Generator and discriminator initialisation: "
                      "pix2pix's (conv kernels N(0, 0.02), norm scales N(1, 0.02), biases 0; from --seed) or "
                      "Keras' defaults (Glorot uniform).")
    flags.DEFINE_integer("d_filters", 64, "PatchGAN width of the first layer.", lower_bound=1)
    flags.DEFINE_integer("d_layers", 5, "PatchGAN layers (paper: 5).", lower_bound=2)
    flags.DEFINE_float("beta_1", 0.5, "Adam beta_1 of the generative family (paper: 0.5).", lower_bound=0, upper_bound=1)
    flags.DEFINE_string("d_pretrain_input_dir", "", "Data of the DPRE_GAN discriminator pre-training stage "
                        "(default: the training data).")
    flags.DEFINE_string("d_pretrain_target_dir", "", "Clean images of the pre-training data, if not inside it.")
    # Data.
    flags.DEFINE_string("train_input_dir", "", "Degraded training images (or a folder holding both sets).")
    flags.DEFINE_string("train_target_dir", "", "Clean training images, when not inside --train_input_dir.")
    flags.DEFINE_enum("layout", "auto", pairing.LAYOUTS, "How files pair (see erlrestore.data.pairing).")
    flags.DEFINE_enum("pair_order", "", ["", "input_left", "target_left"], "Half order of side_by_side images.")
    flags.DEFINE_string("train_tfrecords", "", "TFRecord shards (folder or glob) written by erlrestore-tfrecords.")
    flags.DEFINE_string("synthetic_clean_dir", "", "Clean photos degraded on the fly by --degradation.")
    flags.DEFINE_integer("procedural", 0, "Generate this many clean images and degrade them on the fly.", lower_bound=0)
    flags.DEFINE_enum("degradation", "rain", sorted(synthetic.DEGRADATIONS), "Synthetic degradation.")
    flags.DEFINE_string("streak_dir", "", "Folder of rendered rain-streak images (grey PNGs), required by "
                        "--degradation=real_rain / real_heavy_rain.")
    flags.DEFINE_string("degradation_params", "", "Parameters of --degradation as name=value;name=low,high "
                        "(e.g. streak_layers=1,12;veil_share=0.35; see erlrestore.data.synthetic).")
    flags.DEFINE_string("val_input_dir", "", "Validation images (full size), measured with Y-PSNR/SSIM.")
    flags.DEFINE_string("val_target_dir", "", "Clean validation images, when not inside --val_input_dir.")
    flags.DEFINE_integer("val_max_images", 0, "Validate on at most this many pairs (0: all).", lower_bound=0)
    flags.DEFINE_integer("val_every", 1, "Validate every N checkpoint intervals.", lower_bound=1)
    flags.DEFINE_integer("crop_size", 320, "Random crop side (paper: 320).", lower_bound=8)
    flags.DEFINE_integer("batch_size", 1, "Batch size (paper: 1).", lower_bound=1)
    flags.DEFINE_boolean("augment", False, "Random flips / 90-degree rotations (paper: none).")
    flags.DEFINE_boolean("cache", False, "Keep decoded images in memory.")
    flags.DEFINE_boolean("pad_small", False, "Reflect-pad images smaller than the crop instead of failing.")
    define_max_image_pixels_flag()  # --max_image_pixels, shared with the other tools
    flags.DEFINE_integer("seed", 0, "Random seed (weights, crops, synthetic degradations).", lower_bound=0)
    flags.DEFINE_boolean("deterministic", False, "Deterministic ops and data order (slower).")
    # Schedule.
    flags.DEFINE_list("stage_steps", [], "Optimizer steps per stage: one value for all stages or one per stage.")
    flags.DEFINE_list("stage_epochs", [], "Passes over the training images per stage (paper: 400 in all).")
    flags.DEFINE_enum("stage_budget", "each", list(experiment.STAGE_BUDGETS),
                      "With one --stage_steps/--stage_epochs value: give it to each stage, or split it as a total "
                      "over the stages (earlier stages get the remainder steps); split refuses one value per stage.")
    flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints (one Keras epoch).", lower_bound=1)
    flags.DEFINE_float("learning_rate", 0.0, "Adam learning rate at the start of each stage (0: the paper's, "
                       "4e-4 for ERL-Net, 2e-4 for the generators).", lower_bound=0)
    flags.DEFINE_integer("plateau_patience", 10, "Divide the learning rate after this many checkpoint intervals "
                         "without a lower loss (0: never); only with the plateau --lr_schedule.", lower_bound=0)
    flags.DEFINE_float("plateau_factor", 0.1, "Factor applied on a plateau (paper: 1/10).", lower_bound=0)
    flags.DEFINE_enum("lr_schedule", "auto", ["auto", "linear_decay", "plateau", "constant"],
                      "Learning rate in each stage: linear_decay (pix2pix: constant for the first half of the "
                      "stage's steps, then linearly towards 0, on both GAN optimizers), plateau (--plateau_patience, "
                      "--plateau_factor), constant; auto: linear_decay for UNet/EnDec, plateau for the ERL-Net family.")
    flags.DEFINE_string("model_dir", None, "Checkpoints, logs, run_config.json and final.keras go here.")
    flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"], "Keras progress output.")
    flags.DEFINE_integer("stop_after", 0, "End this invocation at the first checkpoint after this many optimizer "
                         "steps (0: train to the end); run the same command again to continue.", lower_bound=0)
    # Devices.
    flags.DEFINE_enum("distribution_strategy", "default", devices.STRATEGIES,
                      "default: one device; mirrored: local GPUs (or --devices); multi_worker_mirrored: the "
                      "cluster in TF_CONFIG; tpu: a TPU (--tpu).")
    flags.DEFINE_list("devices", [], "Devices of the mirrored strategy, e.g. /gpu:0,/gpu:1 (default: all GPUs).")
    flags.DEFINE_string("tpu", "", "TPU name or address for --distribution_strategy=tpu (default: the local one).")
    flags.DEFINE_enum("precision", "auto", devices.PRECISIONS,
                      "Compute precision; auto: mixed_bfloat16 on CPUs with bfloat16 arithmetic (else float32), "
                      "on Ampere and newer GPUs and on TPUs; mixed_float16 (with loss scaling) on older "
                      "tensor-core GPUs.")
    flags.DEFINE_enum("jit_compile", "auto", devices.JIT_CHOICES, "XLA compilation of the train step (auto: off).")
    flags.mark_flag_as_required("model_dir")


def _numbers(name, values, kind):
    try:
        return tuple(kind(v) for v in values)
    except ValueError:
        raise app.UsageError(f"--{name} takes comma-separated {kind.__name__}s, got {','.join(values)}") from None


def settings_from_flags():
    data = inputs.DataSettings(
        train_input_dir=FLAGS.train_input_dir, train_target_dir=FLAGS.train_target_dir, layout=FLAGS.layout,
        pair_order=FLAGS.pair_order, train_tfrecords=FLAGS.train_tfrecords,
        synthetic_clean_dir=FLAGS.synthetic_clean_dir, procedural=FLAGS.procedural, degradation=FLAGS.degradation,
        streak_dir=FLAGS.streak_dir, degradation_params=FLAGS.degradation_params,
        val_input_dir=FLAGS.val_input_dir, val_target_dir=FLAGS.val_target_dir, val_max_images=FLAGS.val_max_images,
        crop_size=FLAGS.crop_size, batch_size=FLAGS.batch_size, augment=FLAGS.augment, cache=FLAGS.cache,
        pad_small=FLAGS.pad_small, seed=FLAGS.seed, deterministic=FLAGS.deterministic,
    )
    verbose = FLAGS.verbose if FLAGS.verbose == "auto" else int(FLAGS.verbose)
    pretrain_data = None
    if FLAGS.d_pretrain_input_dir:
        pretrain_data = dataclasses.replace(data, train_input_dir=FLAGS.d_pretrain_input_dir,
                                            train_target_dir=FLAGS.d_pretrain_target_dir, train_tfrecords="",
                                            synthetic_clean_dir="", procedural=0)
    return experiment.TrainSettings(
        model_dir=FLAGS.model_dir, model=FLAGS.model, entanglement=FLAGS.entanglement, strategy=FLAGS.strategy,
        depth=FLAGS.depth, base_filters=FLAGS.base_filters, dense_layers=FLAGS.dense_layers,
        growth_rate=FLAGS.growth_rate, norm=FLAGS.norm, global_residual=FLAGS.global_residual,
        levels=FLAGS.levels, gen_filters=FLAGS.gen_filters, gen_norm=FLAGS.gen_norm, dropout=FLAGS.dropout,
        info_accum_layers=FLAGS.info_accum_layers, info_accum_growth=FLAGS.info_accum_growth,
        info_accum_positions=_numbers("info_accum_positions", FLAGS.info_accum_positions, int),
        subpixel=FLAGS.subpixel, gan_loss=FLAGS.gan_loss, l1_weight=FLAGS.l1_weight, d_filters=FLAGS.d_filters,
        d_layers=FLAGS.d_layers, beta_1=FLAGS.beta_1, pretrain_data=pretrain_data,
        pixel_loss=FLAGS.pixel_loss, weight_init=FLAGS.weight_init, lr_schedule=FLAGS.lr_schedule,
        stage_steps=_numbers("stage_steps", FLAGS.stage_steps, int),
        stage_epochs=_numbers("stage_epochs", FLAGS.stage_epochs, float), stage_budget=FLAGS.stage_budget,
        fre_reduction=FLAGS.fre_reduction,
        checkpoint_every=FLAGS.checkpoint_every, learning_rate=FLAGS.learning_rate, fre_weight=FLAGS.fre_weight,
        plateau_patience=FLAGS.plateau_patience, plateau_factor=FLAGS.plateau_factor, val_every=FLAGS.val_every,
        verbose=verbose, data=data, stop_after=FLAGS.stop_after,
        distribution_strategy=FLAGS.distribution_strategy, devices=tuple(FLAGS.devices), tpu=FLAGS.tpu,
        precision=FLAGS.precision, jit_compile=FLAGS.jit_compile,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    apply_max_image_pixels()
    settings = settings_from_flags()
    try:
        experiment.check_settings(settings)
        inputs.check_synthetic(settings.data)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    try:
        final = experiment.train(settings)
    except (io.DataError, ValueError, FloatingPointError, OSError) as error:
        return fail(error)
    except KeyboardInterrupt:
        print(f"interrupted; run the same command again to resume from the last checkpoint in {settings.model_dir}",
              file=sys.stderr)
        return 130
    if final is None:
        print(f"stopped after --stop_after={settings.stop_after} steps; run the same command again to continue "
              f"from the last checkpoint in {settings.model_dir}")
        return 0
    print(f"model: {final}")
    return 0


def run():
    define_flags()
    show_flags_in_help(__name__)
    app.run(main)


if __name__ == "__main__":
    run()
