"""ERL-Net family benchmark: parameter counts and training-step time per crop.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python tools/bench_erlnet.py [--crop_size=320] [--steps=10]

Prints, for the default-size networks (``MEMDConfig()``), the parameter
counts, then the wall time of one optimizer step on a ``crop_size`` crop at
batch 1 (the paper's setting) for each kind of stage: the MEMD baseline,
and ERL-Net (MLGD) stages I (MEN+MDE with the clean-to-clean net), II (REN,
L_ERL) and III (REN+MDE), plus inference time of each network. Timing is
the median over ``--steps`` steps after ``--warmup`` steps (tracing
excluded).
"""

import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from erlrestore.models import erlnet, memd
from erlrestore.training import stages
from erlrestore.training.staged import StagedTrainer

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("crop_size", 320, "Crop side in pixels.", lower_bound=16)
    flags.DEFINE_integer("batch_size", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 10, "Timed steps.", lower_bound=1)
    flags.DEFINE_integer("warmup", 2, "Untimed steps after tracing.", lower_bound=0)


def median_seconds(fn, steps, warmup):
    """Median wall time of ``fn()`` over ``steps`` calls, after a tracing call and ``warmup`` calls."""
    for _ in range(warmup + 1):  # the first call traces
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def random_pair_batch(size, batch):
    """A seeded (degraded, clean) float32 batch of ``size`` x ``size`` images."""
    rng = np.random.default_rng(0)
    clean = rng.random((batch, size, size, 3)).astype("float32")
    degraded = np.clip(clean + 0.1 * rng.random(clean.shape), 0, 1).astype("float32")
    return tf.constant(degraded), tf.constant(clean)


def _step_time(trainer, stage, data, steps, warmup):
    trainer.set_stage(stage)
    trainer.reset_optimizer(4e-4)
    step = tf.function(trainer.train_step)
    return median_seconds(lambda: [v.numpy() for v in step(data).values()], steps, warmup)


def _inference_time(model, images, steps, warmup):
    call = tf.function(lambda x: model(x, training=False))
    return median_seconds(lambda: call(images).numpy(), steps, warmup)


def main(argv):
    del argv
    print(f"machine: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}, "
          f"python {platform.python_version()}, tensorflow {tf.__version__}, keras {keras.__version__}, "
          f"devices {[d.device_type for d in tf.config.list_physical_devices()]}")
    config = memd.MEMDConfig()
    print(f"config: {config}")
    baseline = memd.build_memd(config)
    print(f"params MEMD            {memd.count_params(baseline):>10,}")
    print(f"params MEMD-           {memd.count_params(memd.build_memd(memd.memd_config('MEMD-'))):>10,}")
    print(f"params MEMD--          {memd.count_params(memd.build_memd(memd.memd_config('MEMD--'))):>10,}")
    net = erlnet.build_erlnet(config, "MLGD", ren_head_initializer="zeros")
    print(f"params ERL-Net (MLGD)  {memd.count_params(net):>10,}")
    print(f"params ERL-Net (CLGD)  {memd.count_params(erlnet.build_erlnet(config, 'CLGD')):>10,}")
    c2c = erlnet.build_clean_to_clean(config)
    print(f"params clean-to-clean  {memd.count_params(c2c):>10,}")

    size, batch = FLAGS.crop_size, FLAGS.batch_size
    data = random_pair_batch(size, batch)
    print(f"timing: {size}x{size} crops, batch {batch}, median of {FLAGS.steps} steps")
    rows = []
    trainer = StagedTrainer(baseline, None)
    trainer.compile(optimizer=keras.optimizers.Adam(4e-4), jit_compile=False)
    rows.append(("MEMD train step (L_pre)", _step_time(trainer, stages.strategy("MEMD")[0], data,
                                                          FLAGS.steps, FLAGS.warmup)))
    trainer = StagedTrainer(net, c2c)
    trainer.compile(optimizer=keras.optimizers.Adam(4e-4), jit_compile=False)
    for stage, label in zip(stages.strategy("MA_D"), ("MEN+MDE and C2C, L_pre", "REN, L_ERL", "REN+MDE, L_pre")):
        rows.append((f"ERL-Net MLGD stage {stage.name} ({label})",
                     _step_time(trainer, stage, data, FLAGS.steps, FLAGS.warmup)))
    rows.append(("MEMD inference", _inference_time(baseline, data[0], FLAGS.steps, FLAGS.warmup)))
    rows.append(("ERL-Net MLGD inference", _inference_time(net, data[0], FLAGS.steps, FLAGS.warmup)))
    for label, seconds in rows:
        print(f"{label:<52} {seconds * 1000:9.1f} ms/step  {batch / seconds:7.2f} crops/s")


if __name__ == "__main__":
    define_flags()
    app.run(main)
