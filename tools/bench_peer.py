"""A reference for the compute benchmark: the published pix2pix in PyTorch against erlrestore's pix2pix.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_peer [--output=runs/bench_peer.json]
    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python -m tools.bench_peer --quick      # tiny; the tests' run

Needs PyTorch (``pip install -e '.[peer]'``; the CPU build is enough and much
smaller: ``pip install torch --index-url https://download.pytorch.org/whl/cpu``).
Without it the tool stops with that advice; importing this module and
``--help`` work without it.

The peer ("the reference") is pix2pix as Isola et al. published it (CVPR 2017)
with the defaults of the authors' PyTorch implementation, written here from
that description:

* generator ``unet_256`` (:func:`build_generator`): a U-Net of 8 levels with
  ``ngf = 64`` filters at the top, doubling per level up to ``8 ngf``; every
  down and up step a 4x4 convolution / transposed convolution of stride 2
  and padding 1. Down steps: LeakyReLU(0.2) then the convolution then
  BatchNorm (the outermost step has no activation before it and no norm
  after; the innermost no norm). Up steps: ReLU, the transposed convolution
  on the concatenation of the skip and the deeper output, BatchNorm, and
  Dropout(0.5) in the three blocks next to the innermost; the outermost up
  step ends in Tanh instead of a norm. As in the original, only the
  outermost transposed convolution has a bias (the original's
  ``use_bias`` is off with BatchNorm, for every other convolution);
  54.41 M parameters;
* discriminator ``basic`` (:func:`build_discriminator`): the 70x70 PatchGAN
  with ``n_layers = 3``, ``ndf = 64``: 4x4 convolutions, strides 2, 2, 2, 1
  and 1, padding 1, filters 64, 128, 256, 512, 1, LeakyReLU(0.2) between
  them and BatchNorm after the middle three (which have no bias); its input
  is ``concat(input, output)``, 6 channels, and a 256x256 pair gives 30x30
  patch scores; 2.77 M parameters;
* weights drawn as the original's ``normal`` initialisation: convolutions
  N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0;
* one training step (:class:`PeerTrainer`): LSGAN (mean squared error
  against 1 for real, 0 for fake) plus 100 x L1; Adam(2e-4, betas 0.5 and
  0.999) for each network; the generator's forward, then the
  discriminator's step on the real and the detached fake pair (loss halved),
  then the generator's step with the discriminator frozen;
* inference: the generator in eval mode (BatchNorm's running statistics,
  no dropout) under ``torch.inference_mode()``.

Everything runs in float32 on the CPU with ``torch.set_num_threads(N)``.

Ours is the ``pix2pix`` row of ``tools.benchmark`` (UNet-8, 64 filters, the
PatchGAN, LSGAN, 100 L1), measured by calling
:func:`tools.benchmark.benchmark_model` itself: the trainer
:func:`erlrestore.training.experiment.build_trainer` makes, its
``train_step`` in a ``tf.function``, and for inference the generator's
inference graph (``training=False``; batch norm folded and phase
convolutions when exact within 1e-5, as ``erlrestore-restore`` and the
exporters run it), XLA off. The peer's eval-mode generator is PyTorch's own
inference path (PyTorch does not fold batch norm in eager mode). The networks match up to 576
biases: erlrestore's PatchGAN (``d_layers=5`` counts all five
convolutions) is the peer's ``n_layers=3`` one, 2,768,705 trainable
parameters each; erlrestore's generator has a bias on its outermost and
innermost down convolutions (no norm follows them) where the original has
none: 54,414,531 against 54,413,955.

Precisions (``--precisions``, default ``float32,auto``): each is resolved
with :func:`erlrestore.training.devices.resolve_precision` (``auto`` is
mixed_bfloat16 on a CPU with bfloat16 arithmetic, float32 elsewhere) and
run once, even when two names resolve alike. The peer stays float32 in
every block: it is the reference as published.

Threads (``--threads``, default: the CPUs this process may use): TensorFlow's
intra-op pool and ``torch.set_num_threads`` get the same N. TensorFlow
is kept off any GPU, so both run on the CPU.

Timing: for each precision, ``--rounds`` rounds; in each, ours and the peer
are measured back to back, ours first in rounds 1, 3, ... and the peer
first in rounds 2, 4, ..., so a change of load on a shared machine falls on
both. Each
measurement is :func:`tools.benchmark.median_seconds`: the median of
``--steps`` calls after one untimed first call (ours traces in it) and
``--warmup`` untimed calls, for a training step and for inference. Each
side's figure is the median over the rounds; ``train_speedup`` and
``infer_speedup`` are the peer's seconds over ours (above 1: ours is faster
than the reference).

Output: one JSON object on stdout (and in ``--output``): ``machine``
(:func:`erlrestore.machine.describe`), ``settings``, ``peer`` (what the
reference is, its parameter counts, the torch version and threads) and
``results``, one per resolved precision: ``precision``, ``requested`` (the
names that resolved to it), ``ours`` and ``peer`` (``train_step_s``,
``infer_s``, the per-round ``train_step_s_rounds`` / ``infer_s_rounds``,
``params``), ``train_speedup`` and ``infer_speedup``. The peer's ``params``
count torch parameters (BatchNorm's running statistics are buffers, not
counted); ours count every weight, as ``tools.benchmark`` does (BatchNorm's
moving statistics included: 54,424,387 and 2,770,497). Progress goes to stderr.
"""

import functools
import statistics
import sys
import time

from absl import app, flags

from erlrestore import machine
from erlrestore.models import presets
from tools import benchmark, common

FLAGS = flags.FLAGS

INSTALL_HINT = "PyTorch is not installed: pip install -e '.[peer]'"

# The published models' sizes: unet_256 (8 levels, 64 filters) and the basic PatchGAN (3 layers, 64 filters).
FULL = {"levels": 8, "ngf": 64, "ndf": 64, "d_layers": 3}
# --quick: the same structure, 5 levels (the fewest the published layout has) and 4 filters, on 32 px.
TINY = {"levels": 5, "ngf": 4, "ndf": 4, "d_layers": 3}
QUICK_SIZE = 32

LEARNING_RATE = 2e-4
BETAS = (0.5, 0.999)
L1_WEIGHT = 100.0


class TorchMissing(RuntimeError):
    """PyTorch cannot be imported (the ``peer`` extra is not installed)."""


def import_torch():
    """The ``torch`` module, or :class:`TorchMissing` with the install advice."""
    try:
        import torch  # pylint: disable=import-outside-toplevel
    except ImportError as error:
        raise TorchMissing(INSTALL_HINT) from error
    return torch


# ---------------------------------------------------------------------------
# The peer's networks (module docstring), defined once torch is imported.
# ---------------------------------------------------------------------------


def level_filters(levels, ngf):
    """Filters of each U-Net level, outermost first: ``ngf`` doubling per level, at most ``8 ngf``."""
    return [ngf * min(2**i, 8) for i in range(levels)]


@functools.cache
def _modules():
    """The peer's ``nn.Module`` classes (built on first use, so torch is imported only then)."""
    torch = import_torch()
    nn = torch.nn

    class UNetGenerator(nn.Module):
        """pix2pix's U-Net generator; ``unet_256`` with ``levels=8, ngf=64`` (module docstring)."""

        def __init__(self, levels=8, ngf=64, in_channels=3, out_channels=3, dropout=0.5):
            super().__init__()
            if levels < 5:
                raise ValueError(f"the published U-Net layout needs at least 5 levels, got {levels}")
            self.levels = levels
            filters = level_filters(levels, ngf)
            down = []
            for i, width in enumerate(filters):
                if i == 0:  # outermost: the image straight into the convolution, no norm after
                    down.append(nn.Conv2d(in_channels, width, 4, 2, 1, bias=False))
                    continue
                layers = [nn.LeakyReLU(0.2), nn.Conv2d(filters[i - 1], width, 4, 2, 1, bias=False)]
                if i < levels - 1:  # the innermost has no norm
                    layers.append(nn.BatchNorm2d(width))
                down.append(nn.Sequential(*layers))
            self.down = nn.ModuleList(down)
            up = []
            for i, width in enumerate(filters):
                # Up step of level i: from the level's output (the innermost) or the concatenation of the
                # level's skip and the deeper up step (twice the width), to level i - 1's width.
                width_in = width if i == levels - 1 else 2 * width
                if i == 0:
                    up.append(nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(width_in, out_channels, 4, 2, 1),
                                            nn.Tanh()))
                    continue
                layers = [nn.ReLU(), nn.ConvTranspose2d(width_in, filters[i - 1], 4, 2, 1, bias=False),
                          nn.BatchNorm2d(filters[i - 1])]
                if 4 <= i < levels - 1:  # the 8 ngf blocks between the four outer ones and the innermost
                    layers.append(nn.Dropout(dropout))
                up.append(nn.Sequential(*layers))
            self.up = nn.ModuleList(up)

        def forward(self, x):
            skips = []
            for step in self.down:
                x = step(x)
                skips.append(x)
            x = self.up[-1](skips[-1])
            for i in range(self.levels - 2, -1, -1):
                x = self.up[i](torch.cat([skips[i], x], 1))
            return x

    class PatchDiscriminator(nn.Module):
        """pix2pix's PatchGAN; the 70x70 ``basic`` one with ``layers=3, ndf=64`` (module docstring)."""

        def __init__(self, ndf=64, layers=3, in_channels=6):
            super().__init__()
            body = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2)]
            width = ndf
            for n in range(1, layers + 1):
                stride = 2 if n < layers else 1
                new_width = ndf * min(2**n, 8)
                body += [nn.Conv2d(width, new_width, 4, stride, 1, bias=False), nn.BatchNorm2d(new_width),
                         nn.LeakyReLU(0.2)]
                width = new_width
            body.append(nn.Conv2d(width, 1, 4, 1, 1))
            self.body = nn.Sequential(*body)

        def forward(self, condition, image):
            return self.body(torch.cat([condition, image], 1))

    return UNetGenerator, PatchDiscriminator


def init_weights(module, gain=0.02):
    """The original's ``normal`` initialisation: convolutions N(0, gain), BatchNorm scales N(1, gain), biases 0."""
    torch = import_torch()
    nn = torch.nn
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(layer.weight, 0.0, gain)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, gain)
            nn.init.zeros_(layer.bias)
    return module


def build_generator(levels=8, ngf=64):
    """The peer's U-Net generator, initialised (``unet_256`` by default)."""
    return init_weights(_modules()[0](levels=levels, ngf=ngf))


def build_discriminator(ndf=64, layers=3):
    """The peer's PatchGAN on ``concat(input, output)``, initialised (the 70x70 ``basic`` one by default)."""
    return init_weights(_modules()[1](ndf=ndf, layers=layers))


def count_params(module):
    """Number of parameters of a torch module."""
    return sum(p.numel() for p in module.parameters())


class PeerTrainer:
    """The published pix2pix training step (LSGAN + 100 L1, Adam 2e-4 / 0.5 / 0.999; module docstring)."""

    def __init__(self, generator, discriminator, l1_weight=L1_WEIGHT, learning_rate=LEARNING_RATE, betas=BETAS):
        torch = import_torch()
        self.torch = torch
        self.generator = generator
        self.discriminator = discriminator
        self.l1_weight = l1_weight
        self.g_optimizer = torch.optim.Adam(generator.parameters(), lr=learning_rate, betas=betas)
        self.d_optimizer = torch.optim.Adam(discriminator.parameters(), lr=learning_rate, betas=betas)

    def _set_d_trainable(self, trainable):
        for p in self.discriminator.parameters():
            p.requires_grad_(trainable)

    @staticmethod
    def _lsgan(torch, scores, real):
        target = torch.ones_like(scores) if real else torch.zeros_like(scores)
        return torch.nn.functional.mse_loss(scores, target)

    def train_step(self, condition, target):
        """One D step then one G step on a batch; returns ``{"d_loss", "g_loss", "l1"}`` as floats."""
        torch = self.torch
        self.generator.train()
        self.discriminator.train()
        fake = self.generator(condition)

        self._set_d_trainable(True)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss = 0.5 * (self._lsgan(torch, self.discriminator(condition, fake.detach()), False)
                        + self._lsgan(torch, self.discriminator(condition, target), True))
        d_loss.backward()
        self.d_optimizer.step()

        self._set_d_trainable(False)
        self.g_optimizer.zero_grad(set_to_none=True)
        adversarial = self._lsgan(torch, self.discriminator(condition, fake), True)
        l1 = torch.nn.functional.l1_loss(fake, target)
        g_loss = adversarial + self.l1_weight * l1
        g_loss.backward()
        self.g_optimizer.step()
        self._set_d_trainable(True)
        return {"d_loss": float(d_loss.detach()), "g_loss": float(g_loss.detach()), "l1": float(l1.detach())}

    def infer(self, condition):
        """The generator's output in eval mode under ``torch.inference_mode()``."""
        self.generator.eval()
        with self.torch.inference_mode():
            return self.generator(condition)


def random_pair(size, batch, seed=0):
    """A seeded (condition, target) float32 NCHW batch in [-1, 1] (the peer's Tanh range)."""
    torch = import_torch()
    generator = torch.Generator().manual_seed(seed)
    target = torch.rand((batch, 3, size, size), generator=generator) * 2 - 1
    condition = (target + 0.2 * torch.rand(target.shape, generator=generator)).clamp(-1, 1)
    return condition, target


def build_peer(config, seed=0):
    """``(PeerTrainer, params)`` of the peer in ``config`` (:data:`FULL` or :data:`TINY`)."""
    torch = import_torch()
    torch.manual_seed(seed)
    generator = build_generator(config["levels"], config["ngf"])
    discriminator = build_discriminator(config["ndf"], config["d_layers"])
    params = {"generator": count_params(generator), "discriminator": count_params(discriminator)}
    return PeerTrainer(generator, discriminator), params


def check_peer_size(size, levels):
    """Raises ValueError unless ``size`` is a multiple of ``2 ** levels`` (the published U-Net does not pad)."""
    if size < 1 or size % 2**levels:
        raise ValueError(f"the peer's {levels}-level U-Net needs a size that is a multiple of {2**levels}, got {size}")


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------


def resolve_precisions(names):
    """``[(resolved precision, [requested names])]`` in first-seen order (see the module docstring)."""
    from erlrestore.training import devices  # pylint: disable=import-outside-toplevel

    resolved = {}
    for name in names:
        resolved.setdefault(devices.resolve_precision(name, "CPU"), []).append(name)
    return list(resolved.items())


def measure_peer(trainer, data, steps, warmup):
    """``(train step seconds, inference seconds)``: medians by :func:`tools.benchmark.median_seconds`."""
    condition, target = data
    train_s = benchmark.median_seconds(lambda: trainer.train_step(condition, target), steps, warmup)
    infer_s = benchmark.median_seconds(lambda: trainer.infer(condition), steps, warmup)
    return train_s, infer_s


def measure_ours(precision, size, batch, steps, warmup, quick, flop_cache, report):
    """``(train step seconds, inference seconds, params)`` of tools.benchmark's pix2pix row, XLA off."""
    [record] = benchmark.benchmark_model("pix2pix", size, batch, precision, "off", steps, warmup, {}, "CPU",
                                         quick=quick, flop_cache=flop_cache, report=report)
    return record["train_step_ms"] / 1e3, record["infer_ms"] / 1e3, record["params"]


def _side(train_rounds, infer_rounds, params):
    return {"train_step_s": statistics.median(train_rounds), "infer_s": statistics.median(infer_rounds),
            "train_step_s_rounds": train_rounds, "infer_s_rounds": infer_rounds, "params": params}


def run_comparison(precisions, size, batch, steps, warmup, rounds, threads, quick=False, report=print):
    """Measures the peer and ours alternately for each precision; returns the JSON dict (module docstring)."""
    torch = import_torch()
    torch.set_num_threads(threads)
    config = TINY if quick else FULL
    check_peer_size(size, config["levels"])
    resolved = resolve_precisions(precisions)
    for precision, _ in resolved:  # refuse a size ours cannot take before spending any time
        benchmark.check_size(size, benchmark.model_settings("pix2pix", precision, "off", quick))
    started = time.perf_counter()
    description = machine.describe()
    report("machine: " + ", ".join(f"{k}={v}" for k, v in description.items()))
    trainer, peer_params = build_peer(config)
    data = random_pair(size, batch)
    report(f"peer: PyTorch {torch.__version__}, {torch.get_num_threads()} threads, G {peer_params['generator']:,} "
           f"D {peer_params['discriminator']:,} parameters; {rounds} rounds of the median of {steps} steps "
           f"after {warmup} warm-up")
    results, flop_cache = [], {}
    for precision, requested in resolved:
        ours_train, ours_infer, peer_train, peer_infer, ours_params = [], [], [], [], None
        for round_index in range(rounds):
            order = ("ours", "peer") if round_index % 2 == 0 else ("peer", "ours")
            for side in order:
                if side == "ours":
                    train_s, infer_s, ours_params = measure_ours(precision, size, batch, steps, warmup, quick,
                                                                 flop_cache, report)
                    ours_train.append(train_s)
                    ours_infer.append(infer_s)
                else:
                    train_s, infer_s = measure_peer(trainer, data, steps, warmup)
                    peer_train.append(train_s)
                    peer_infer.append(infer_s)
                report(f"{precision:<14} round {round_index + 1}/{rounds} {side:<4} train step "
                       f"{1e3 * train_s:9.1f} ms  inference {1e3 * infer_s:8.1f} ms")
        ours = _side(ours_train, ours_infer, ours_params)
        peer = _side(peer_train, peer_infer, peer_params)
        result = {
            "precision": precision,
            "requested": requested,
            "peer_precision": "float32",
            "ours": ours,
            "peer": peer,
            "train_speedup": peer["train_step_s"] / ours["train_step_s"],
            "infer_speedup": peer["infer_s"] / ours["infer_s"],
        }
        report(f"{precision:<14} ours/peer median train step {1e3 * ours['train_step_s']:.1f} / "
               f"{1e3 * peer['train_step_s']:.1f} ms (speed-up {result['train_speedup']:.2f}x), inference "
               f"{1e3 * ours['infer_s']:.1f} / {1e3 * peer['infer_s']:.1f} ms "
               f"(speed-up {result['infer_speedup']:.2f}x)")
        results.append(result)
    elapsed = time.perf_counter() - started
    report(f"total {elapsed:.0f} s")
    return {
        "machine": description,
        "settings": {"size": size, "batch": batch, "steps": steps, "warmup": warmup, "rounds": rounds,
                     "precisions": list(precisions), "threads": threads, "quick": quick, "jit_compile": "off",
                     "device": "CPU"},
        "peer": {
            "framework": "pytorch",
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "generator": "unet_256" if not quick else "unet (tiny)",
            "discriminator": "basic PatchGAN 70x70" if not quick else "basic PatchGAN (tiny)",
            "config": dict(config),
            "losses": f"lsgan + {L1_WEIGHT:g} L1",
            "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE, "betas": list(BETAS)},
            "params": peer_params,
        },
        "ours": {"model": "pix2pix", "label": presets.PRESETS["pix2pix"].label},
        "results": results,
        "elapsed_s": elapsed,
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_integer("size", 256, f"Square crop side in pixels (--quick: {QUICK_SIZE}).", lower_bound=1)
    flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 5, "Timed calls per measurement (the median is kept; --quick: 2).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed calls after the first call (--quick: 0).", lower_bound=0)
    flags.DEFINE_integer("rounds", 3, "Alternating rounds per precision (the median over them is reported; "
                         "--quick: 2).", lower_bound=1)
    flags.DEFINE_list("precisions", ["float32", "auto"], "erlrestore's precisions, from auto, float32, "
                      "mixed_bfloat16, mixed_float16 (the peer stays float32).")
    flags.DEFINE_integer("threads", 0, "Threads for both frameworks (TensorFlow's intra-op pool and "
                         "torch.set_num_threads; 0: the CPUs this process may use).", lower_bound=0)
    flags.DEFINE_string("output", "", "Also write the JSON here.")
    flags.DEFINE_bool("quick", False, f"Tiny networks on {QUICK_SIZE} px, 2 steps, 2 rounds: seconds, for tests.")


def _configure_tensorflow(threads):
    """Same intra-op thread count as torch; no GPU (both frameworks on the CPU). Before TensorFlow starts."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.set_visible_devices([], "GPU")
    tf.get_logger().setLevel("ERROR")  # each round traces fresh functions on purpose: no retracing warnings


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        import_torch()
    except TorchMissing as error:
        print(error, file=sys.stderr)
        sys.exit(1)
    from erlrestore.training import devices  # pylint: disable=import-outside-toplevel

    for name in FLAGS.precisions:
        if name not in devices.PRECISIONS:
            raise app.UsageError(f"--precisions: unknown {name!r}; choose from {', '.join(devices.PRECISIONS)}")
    if not FLAGS.precisions:
        raise app.UsageError("--precisions: name at least one")
    quick = FLAGS.quick
    threads = FLAGS.threads or machine.usable_cpus() or 1
    _configure_tensorflow(threads)
    size = FLAGS.size if FLAGS["size"].present or not quick else QUICK_SIZE
    steps = FLAGS.steps if FLAGS["steps"].present or not quick else 2
    warmup = FLAGS.warmup if FLAGS["warmup"].present or not quick else 0
    rounds = FLAGS.rounds if FLAGS["rounds"].present or not quick else 2

    common.run_and_print(lambda report: run_comparison(FLAGS.precisions, size, FLAGS.batch, steps, warmup, rounds,
                                                        threads, quick=quick, report=report), FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
