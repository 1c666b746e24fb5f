"""A reference for the compute benchmark: the published pix2pix in PyTorch against erlrestore's pix2pix.

    .venv/bin/python -m tools.bench_peer [--output=runs/bench_peer.json]      # on an otherwise idle machine
    .venv/bin/python -m tools.bench_peer --quick --allow_busy                 # tiny; the tests' run
    .venv/bin/python -m tools.bench_peer --quick --sides=fake_ours,fake_peer  # the harness alone, no frameworks

Needs PyTorch (``pip install -e '.[peer]'``; the CPU build is enough and much
smaller: ``pip install torch --index-url https://download.pytorch.org/whl/cpu``).
Without it the tool stops with that advice; importing this module and
``--help`` work without it, and so does the stand-in run above.

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

The reference runs in float32 on the CPU (with ``--peer_autocast``, see
Precisions, its forward passes in bfloat16 where ours is mixed_bfloat16).

Ours is the ``pix2pix`` row of ``tools.benchmark`` (UNet-8, 64 filters, the
PatchGAN, LSGAN, 100 L1), built by the same functions
(:func:`tools.benchmark.build_workload`, ``training_call``): the trainer
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

One process per side and round. This module is the parent: it imports
neither TensorFlow nor PyTorch (only its helpers for the peer's networks
import torch, and only when called, in the peer's process). For each
measurement it starts ``python -m tools.peer_side`` (:mod:`tools.peer_side`)
for one side, which loads that side's framework alone, times it and writes
its result as JSON to a file; the parent waits for it before starting the
next. Sharing one process slowed PyTorch's inference by 30-40% (the two
frameworks' thread pools and allocators in one address space), which is why
the sides are kept apart. After every child the parent checks that the
child's pid is new and not its own, that the child loaded its own side's
framework and not the other side's, and at the end that it has loaded
neither itself; any breach is an error (:class:`HarnessError`), not a figure.

Same conditions for both: both children get the same environment, with
``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` set to
``--threads``, and each sets its framework's pools explicitly: TensorFlow's
intra-op and inter-op pools, ``torch.set_num_threads`` and
``torch.set_num_interop_threads``, to ``--threads`` and
``--interop_threads`` (default: ``--threads``); TensorFlow is kept off any
GPU. Both read one input the parent draws with NumPy from ``--seed`` and
saves once as ``.npy`` (:func:`tools.peer_side.make_input`: ``[0, 1]``
NHWC, which ours takes as is and the reference maps to ``[-1, 1]`` NCHW);
each reports the file's SHA-256, and the parent checks it.

Precisions (``--precisions``, default ``float32,auto``): each is resolved
by ours' first process with
:func:`erlrestore.training.devices.resolve_precision` (``auto`` is
mixed_bfloat16 on a CPU with bfloat16 arithmetic, float32 elsewhere) and
run once, even when two names resolve alike. The reference stays float32
in every block, as published; ``--peer_autocast`` runs its forward passes
(not the backward ones, as PyTorch advises) under
``torch.autocast("cpu", dtype=torch.bfloat16)`` in the blocks where ours is
mixed_bfloat16, for a like-for-like mixed-precision ratio.

Timing: for each precision, ``--rounds`` rounds (default 5); each round
starts one child per side, ours first in rounds 1, 3, ... and the reference
first in rounds 2, 4, ..., so a slow drift of the machine falls on both.
Each child times inference, then the training step: one untimed first call
(ours traces in it), ``--warmup`` untimed calls, then ``--steps`` timed
calls (:func:`tools.peer_side.time_calls`); a round's figure for a side is
the median of its timed calls. Reported per side and measure: the min,
median and max over the rounds; per round, the speed-up (the reference's
seconds over ours: above 1, ours is faster), and over the rounds its
median, min and max.

Load (:class:`ProcMeter`): the 1-minute load average is read before the
run and before every child, and around every child the CPU time the whole
machine spent busy (``/proc/stat``: user, nice, system, irq, softirq and
steal) less what this process and its children used (``getrusage``),
divided by the child's wall time: the CPUs other processes kept busy
meanwhile. If the load average before the run or the other processes' use
during any child exceeds ``--max_load`` (default: a quarter of
``--threads``, at least 0.5), the tool stops and reports no figures (exit
status 3, :data:`BUSY_EXIT`), unless ``--allow_busy``: then it goes on and
marks every figure of the run (``"busy": true`` beside it in the JSON,
``(busy)`` in the table, and a ``warning``); each round's entry also says
which of its two measurements were the busy ones. The load average
read between rounds includes this run's own earlier children, so it is
recorded, not judged. Where ``/proc/stat`` cannot be read (not Linux), the
other processes' share is recorded as null and only the load average
before the run is judged.

Output: one JSON object on stdout (and in ``--output``); a table on stderr
with the progress. Keys: ``harness``, ``machine`` (from ours' process:
:func:`erlrestore.machine.describe`), ``settings``, ``load`` (the limit, the
load average at the start, whether the machine was busy and why),
``processes`` (the parent's pid and frameworks, then every child in the
order run: side, role, precision, round, pid, frameworks, threads, thread
environment, load average before, other processes' CPUs, busy), ``peer``
and ``ours`` (what each side is: versions, threads, parameter counts),
``results`` (one per resolved precision: ``precision``, ``requested``,
``peer_precision``, ``rounds`` with each round's order, pids, figures and
speed-ups, then per side ``train_step_s`` and ``infer_s`` as ``{"min",
"median", "max", "busy"}``, ``params``, and ``train_speedup`` /
``infer_speedup`` as ``{"median", "min", "max", "busy"}``), ``busy``,
``warning`` (when busy) and ``elapsed_s``. The peer's ``params`` count
torch parameters (BatchNorm's running statistics are buffers, not
counted); ours count every weight, as ``tools.benchmark`` does (BatchNorm's
moving statistics included: 54,424,387 and 2,770,497).

``--sides`` picks the two sides (ours, then the reference): ``ours,peer``
by default; ``fake_ours`` and ``fake_peer`` are NumPy stand-ins
(:mod:`tools.peer_side`) that test the harness where neither framework is
installed. Their figures mean nothing.
"""

import importlib.util
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

from erlrestore import machine
from tools import common, peer_side
# The reference's networks and the load meter, importable from here as before.
from tools.load_meter import ProcMeter, default_max_load, others_cpus, parse_proc_stat  # noqa: F401
from tools.peer_pix2pix import (BETAS, FULL, INSTALL_HINT, L1_WEIGHT, LEARNING_RATE, TINY,  # noqa: F401
                                PeerTrainer, TorchMissing, build_discriminator, build_generator, build_peer,
                                check_peer_size, count_params, import_torch, init_weights, level_filters,
                                random_pair)

FLAGS = flags.FLAGS

# --quick: crops of this side (the peer's TINY networks need a multiple of 32).
QUICK_SIZE = 32
# Exit status when the machine was busy and --allow_busy was not given.
BUSY_EXIT = 3


class MachineBusy(RuntimeError):
    """Other processes used more of the machine than ``--max_load`` allows (no figures are reported)."""


class HarnessError(RuntimeError):
    """A side's process failed, or the sides were not kept in processes of their own."""


# ---------------------------------------------------------------------------
# The children
# ---------------------------------------------------------------------------

REPO = pathlib.Path(__file__).resolve().parent.parent
ROLES = ("ours", "peer")
MEASURES = ("train_step_s", "infer_s")


def child_environment(threads, base=None):
    """The environment both sides' processes get: ``base`` (this one's) with the thread variables set to ``threads``."""
    env = dict(os.environ if base is None else base)
    for name in peer_side.THREAD_ENV:
        env[name] = str(threads)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_child(request, workdir, name, env):
    """Runs ``python -m tools.peer_side`` on ``request`` in a new process and returns its JSON result."""
    request_path = pathlib.Path(workdir) / f"{name}.request.json"
    result_path = pathlib.Path(workdir) / f"{name}.result.json"
    peer_side.write_json(request_path, request)
    # The child's stdout joins stderr (fd 2): this process's stdout carries only the final JSON.
    done = subprocess.run([sys.executable, "-m", "tools.peer_side", str(request_path), str(result_path)],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=2, check=False)
    try:
        result = peer_side.load_json(result_path)
    except (OSError, ValueError):
        result = None
    if done.returncode or result is None or "error" in result:
        detail = (result or {}).get("error", "").strip().splitlines()[-1:] or ["no result written"]
        raise HarnessError(f"the {request['side']} process for {name} exited with status {done.returncode}: "
                           f"{detail[0]}")
    return result


def check_child(result, side, other_side, parent_pid, seen_pids):
    """Raises :class:`HarnessError` unless ``result`` came from a new process holding ``side``'s framework only."""
    pid = result["pid"]
    if pid == parent_pid or pid in seen_pids:
        raise HarnessError(f"the {side} side ran in process {pid}, "
                           + ("the parent" if pid == parent_pid else "which an earlier measurement used"))
    own, other = peer_side.SIDES[side], peer_side.SIDES[other_side]
    if own not in result["frameworks"] or other in result["frameworks"]:
        raise HarnessError(f"the {side} process {pid} holds {result['frameworks']}: it should hold {own} "
                           f"and not {other}")
    seen_pids.add(pid)


def check_parent(sides, modules=None):
    """Raises :class:`HarnessError` when this process has loaded either side's framework."""
    loaded = set(peer_side.loaded_frameworks(modules))
    shared = sorted(loaded & {peer_side.SIDES[side] for side in sides})
    if shared:
        raise HarnessError(f"the parent process has loaded {', '.join(shared)}: the sides must run in their own "
                           "processes")


# ---------------------------------------------------------------------------
# Statistics and the table
# ---------------------------------------------------------------------------


def spread(values, busy=False):
    """``{"min", "median", "max", "busy"}`` of ``values``."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "busy": bool(busy)}


def round_order(round_index, sides):
    """The order of the sides in round ``round_index`` (0-based): as given in even rounds, reversed in odd ones."""
    return tuple(sides) if round_index % 2 == 0 else tuple(reversed(sides))


def summarize(precision, requested, rounds, busy=False):
    """One ``results`` entry from the rounds of a precision (each ``{"order", "ours": child, "peer": child}``).

    Each round keeps its own children's ``busy``; the summary figures carry
    ``busy`` (the run was measured on a busy machine: any child, or the
    load before the run).
    """
    entries = []
    for index, record in enumerate(rounds):
        entry = {"round": index + 1, "order": list(record["order"]),
                 "busy": record["ours"]["busy"] or record["peer"]["busy"]}
        for role in ROLES:
            child = record[role]
            entry[role] = {"pid": child["pid"], "train_step_s": child["train_step_median_s"],
                           "infer_s": child["infer_median_s"], "others_cpus": child["others_cpus"],
                           "busy": child["busy"]}
        entry["train_speedup"] = entry["peer"]["train_step_s"] / entry["ours"]["train_step_s"]
        entry["infer_speedup"] = entry["peer"]["infer_s"] / entry["ours"]["infer_s"]
        entries.append(entry)
    result = {"precision": precision, "requested": requested,
              "peer_precision": rounds[0]["peer"]["precision"], "rounds": entries}
    busy = bool(busy or any(entry["busy"] for entry in entries))
    for role in ROLES:
        result[role] = {measure: spread([entry[role][measure] for entry in entries], busy) for measure in MEASURES}
        result[role]["params"] = rounds[0][role]["params"]
    for name in ("train_speedup", "infer_speedup"):
        values = [entry[name] for entry in entries]
        result[name] = {"median": statistics.median(values), "min": min(values), "max": max(values), "busy": busy}
    result["busy"] = busy
    return result


def _figure(value, unit, busy):
    """One table cell: milliseconds (3 significant decimals below 10 ms) or a ratio, ``(busy)`` when it was."""
    if unit == "ms":
        ms = 1e3 * value
        text = f"{ms:.1f} ms" if ms >= 10 else f"{ms:.3f} ms"
    else:
        text = f"{value:.2f}x"
    return text + (" (busy)" if busy else "")


def format_table(result):
    """The readable summary of a run's JSON ``result``: per precision, measure and side, min / median / max."""
    settings = result["settings"]
    sides = settings["sides"]
    rows = []  # (precision, measure, side, min, median, max)
    for record in result["results"]:
        for measure, label, speedup in (("train_step_s", "train step", "train_speedup"),
                                        ("infer_s", "inference", "infer_speedup")):
            for side, figures, unit in ((f"ours ({record['precision']})", record["ours"][measure], "ms"),
                                        (f"reference ({record['peer_precision']})", record["peer"][measure], "ms"),
                                        ("speed-up (reference / ours)", record[speedup], "x")):
                rows.append([record["precision"], label, side]
                            + [_figure(figures[key], unit, figures["busy"]) for key in ("min", "median", "max")])
    header = ["precision", "measure", "side", "min", "median", "max"]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    lines = [f"bench_peer: {sides['ours']} (ours) against {sides['peer']} (the reference), one process per side "
             f"and round; {settings['rounds']} rounds of the median of {settings['steps']} steps; "
             f"{settings['threads']} threads each"]
    if result.get("warning"):
        lines.append("WARNING: " + result["warning"])

    def line(cells):
        return "  ".join(cell.ljust(widths[c]) if c < 3 else cell.rjust(widths[c]) for c, cell in enumerate(cells))

    lines += [line(header), "-" * len(line(header))]
    previous = None
    for row in rows:  # a precision, and a measure within it, are named on their first row only
        shown = list(row)
        if previous and row[0] == previous[0]:
            shown[0] = ""
            if row[1] == previous[1]:
                shown[1] = ""
        lines.append(line(shown).rstrip())
        previous = row
    load = result["load"]
    others = [child["others_cpus"] for child in result["processes"]["children"] if child["others_cpus"] is not None]
    start = load["loadavg_at_start"]
    text = (f"load: other processes kept at most {max(others):.2f} CPUs busy during a measurement" if others
            else "load: other processes' CPU use could not be read")
    text += f"; 1-min load average at the start {start[0]:.2f}" if start else ""
    lines.append(text + f" (limit --max_load={load['max_load']:g})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The harness
# ---------------------------------------------------------------------------


def run_harness(sides, precisions, size, batch, steps, warmup, rounds, threads, interop_threads=None, quick=False,
                max_load=None, allow_busy=False, peer_autocast=False, seed=0, meter=None, report=common.report):
    """Measures ``sides`` (ours, the reference) one process per side and round; returns the JSON dict.

    ``meter`` reads the load (:class:`ProcMeter` by default). Raises
    :class:`MachineBusy` when the machine was busy and not ``allow_busy``,
    :class:`HarnessError` when a child fails or the sides were not kept
    apart, and ValueError for a size a side cannot take.
    """
    sides = tuple(sides)
    interop_threads = interop_threads or threads
    max_load = default_max_load(threads) if max_load is None else max_load
    meter = meter or ProcMeter()
    env = child_environment(threads)
    parent_pid = os.getpid()
    check_parent(sides)
    started = time.perf_counter()
    notes = []

    def judge(what, load):
        """True when ``load`` is above the limit: refused, or noted with ``allow_busy``."""
        if load is None or load <= max_load:
            return False
        note = f"{what}: {load:.2f} CPUs' worth of other work, above --max_load={max_load:g}"
        if not allow_busy:
            raise MachineBusy(f"the machine is busy ({note}); no figures reported. Run it on an idle machine, "
                              "raise --max_load, or pass --allow_busy to report figures marked as busy")
        notes.append(note)
        report("busy: " + note)
        return True

    start_load = meter.loadavg()
    judge("1-min load average before the run", start_load and start_load[0])
    children, blocks, peer_info, ours_info = [], [], None, None
    seen_pids = set()
    with tempfile.TemporaryDirectory(prefix="bench_peer_") as workdir:
        input_path = pathlib.Path(workdir) / "input.npy"
        np.save(input_path, peer_side.make_input(size, batch, seed))
        input_sha = peer_side.file_sha256(input_path)
        common_request = {"size": size, "batch": batch, "quick": quick}
        described = run_child({**common_request, "mode": "describe", "side": sides[0],
                               "precisions": list(precisions)}, workdir, "describe", env)
        if described["size_error"]:
            raise ValueError(described["size_error"])
        if described["pid"] == parent_pid or peer_side.SIDES[sides[1]] in described["frameworks"]:
            raise HarnessError(f"the describing process {described['pid']} holds {described['frameworks']}")
        report("machine: " + ", ".join(f"{k}={v}" for k, v in described["machine"].items()))
        report(f"{sides[0]} against {sides[1]}: one process per side and round, {rounds} rounds, {threads} threads "
               f"(inter-op {interop_threads}), median of {steps} steps after {warmup} warm-up")
        for precision, requested in described["resolved"]:
            rounds_done = []
            for round_index in range(rounds):
                record = {"order": round_order(round_index, sides)}
                for side in record["order"]:
                    role = ROLES[sides.index(side)]
                    other = sides[1 - sides.index(side)]
                    request = {**common_request, "mode": "measure", "side": side, "precision": precision,
                               "steps": steps, "warmup": warmup, "threads": threads,
                               "interop_threads": interop_threads, "input": str(input_path), "seed": seed,
                               "peer_autocast": peer_autocast}
                    load_before = meter.loadavg()
                    token = meter.start()
                    result = run_child(request, workdir, f"{precision}-round{round_index + 1}-{side}", env)
                    usage = meter.stop(token)
                    check_child(result, side, other, parent_pid, seen_pids)
                    if result["input_sha256"] != input_sha:
                        raise HarnessError(f"the {side} process read another input ({result['input_sha256']})")
                    busy = judge(f"{precision} round {round_index + 1}, {side}", usage["others_cpus"])
                    child = {**result, **usage, "role": role, "round": round_index + 1, "loadavg_before": load_before,
                             "busy": busy}
                    record[role] = child
                    children.append({key: child.get(key) for key in (
                        "side", "role", "precision", "round", "pid", "frameworks", "threads", "thread_env",
                        "input_sha256", "started", "ended", "loadavg_before", "others_cpus", "wall_s",
                        "children_cpu_s", "busy")})
                    if role == "peer" and peer_info is None:
                        peer_info = result
                    if role == "ours" and ours_info is None:
                        ours_info = result
                    report(f"{precision:<14} round {round_index + 1}/{rounds} {side:<9} pid {result['pid']:<7} "
                           f"train step {1e3 * result['train_step_median_s']:9.1f} ms  inference "
                           f"{1e3 * result['infer_median_s']:8.1f} ms  others {_cpus(usage['others_cpus'])}"
                           + ("  (busy)" if busy else ""))
                rounds_done.append(record)
            blocks.append((precision, requested, rounds_done))
    check_parent(sides)
    busy = bool(notes)
    results = [summarize(precision, requested, rounds_done, busy) for precision, requested, rounds_done in blocks]
    output = {
        "harness": "one process per side and round (tools.peer_side), sides alternating",
        "machine": described["machine"],
        "settings": {"sides": dict(zip(ROLES, sides)), "size": size, "batch": batch, "steps": steps,
                     "warmup": warmup, "rounds": rounds, "precisions": list(precisions), "threads": threads,
                     "interop_threads": interop_threads, "thread_env": {name: str(threads) for name in
                                                                        peer_side.THREAD_ENV},
                     "seed": seed, "input_sha256": input_sha, "quick": quick, "jit_compile": "off",
                     "device": "CPU", "peer_autocast": peer_autocast},
        "load": {"max_load": max_load, "allow_busy": allow_busy, "loadavg_at_start": start_load, "busy": busy,
                 "notes": notes},
        "processes": {"parent": {"pid": parent_pid, "frameworks": peer_side.loaded_frameworks()},
                      "children": children},
        "peer": _side_info(sides[1], peer_info, quick),
        "ours": {**_side_info(sides[0], ours_info, quick), "label": described["label"]},
        "results": results,
        "busy": busy,
        "elapsed_s": time.perf_counter() - started,
    }
    if busy:
        output["warning"] = (f"measured on a busy machine (--allow_busy), so every figure is marked busy and may "
                             f"be biased: {notes[0]}" + (f" (and {len(notes) - 1} more, under load.notes)"
                                                         if len(notes) > 1 else ""))
    return output


def _cpus(value):
    return "?" if value is None else f"{value:.2f} CPUs"


def _side_info(side, result, quick):
    info = {"side": side, "framework": peer_side.SIDES[side], "versions": result["versions"],
            "threads": result["threads"], "params": result["params"]}
    if side == "peer":
        info.update({
            "generator": "unet_256" if not quick else "unet (tiny)",
            "discriminator": "basic PatchGAN 70x70" if not quick else "basic PatchGAN (tiny)",
            "config": dict(TINY if quick else FULL),
            "losses": f"lsgan + {L1_WEIGHT:g} L1",
            "optimizer": {"name": "adam", "learning_rate": LEARNING_RATE, "betas": list(BETAS)},
        })
    return info


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def define_flags():
    flags.DEFINE_integer("size", 256, f"Square crop side in pixels (--quick: {QUICK_SIZE}).", lower_bound=1)
    flags.DEFINE_integer("batch", 1, "Batch size.", lower_bound=1)
    flags.DEFINE_integer("steps", 5, "Timed calls per measurement (the median is kept; --quick: 2).", lower_bound=1)
    flags.DEFINE_integer("warmup", 1, "Untimed calls after the first call (--quick: 0).", lower_bound=0)
    flags.DEFINE_integer("rounds", 5, "Rounds per precision, each one process per side, the order alternating "
                         "(--quick: 2).", lower_bound=1)
    flags.DEFINE_list("precisions", ["float32", "auto"], "erlrestore's precisions, from auto, float32, "
                      "mixed_bfloat16, mixed_float16 (the reference stays float32 unless --peer_autocast).")
    flags.DEFINE_integer("threads", 0, "Threads for both sides: intra-op pools and OMP/MKL/OpenBLAS_NUM_THREADS "
                         "(0: the CPUs this process may use).", lower_bound=0)
    flags.DEFINE_integer("interop_threads", 0, "Inter-op pool of both sides (TensorFlow's, "
                         "torch.set_num_interop_threads; 0: as --threads).", lower_bound=0)
    flags.DEFINE_float("max_load", None, "Refuse to report figures when the 1-min load average before the run, or "
                       "the CPUs other processes kept busy during any measurement, exceeds this (default: "
                       "max(0.5, threads / 4)).", lower_bound=0)
    flags.DEFINE_bool("allow_busy", False, "Report figures from a busy machine anyway, each marked busy.")
    flags.DEFINE_bool("peer_autocast", False, "Where ours is mixed_bfloat16, run the reference's forward passes "
                      "under torch.autocast(bfloat16) (default: it stays float32, as published).")
    flags.DEFINE_list("sides", ["ours", "peer"], "Ours then the reference, from ours, peer, fake_ours, fake_peer "
                      "(the fakes: NumPy stand-ins that test the harness; their figures mean nothing).")
    flags.DEFINE_integer("seed", 0, "Seed of the input both sides read.")
    flags.DEFINE_string("output", "", "Also write the JSON here.")
    flags.DEFINE_bool("quick", False, f"Tiny networks on {QUICK_SIZE} px, 2 steps, 2 rounds: for tests.")


def check_sides(names):
    """Validates ``--sides``: two different known sides, ours first from those that can describe the run."""
    if len(names) != 2 or len(set(names)) != 2:
        raise app.UsageError(f"--sides: name two different sides, got {','.join(names)}")
    for name in names:
        if name not in peer_side.SIDES:
            raise app.UsageError(f"--sides: unknown {name!r}; choose from {', '.join(peer_side.SIDES)}")
    if names[0] == "peer":
        raise app.UsageError("--sides: the first side is ours (ours, fake_ours or fake_peer), not peer")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    sides = list(FLAGS.sides)
    check_sides(sides)
    if "peer" in sides and importlib.util.find_spec("torch") is None:
        print(INSTALL_HINT, file=sys.stderr)
        sys.exit(1)
    if not FLAGS.precisions:
        raise app.UsageError("--precisions: name at least one")
    for name in FLAGS.precisions:
        if name not in peer_side.PRECISIONS:
            raise app.UsageError(f"--precisions: unknown {name!r}; choose from {', '.join(peer_side.PRECISIONS)}")
    quick = FLAGS.quick
    threads = FLAGS.threads or machine.usable_cpus() or 1
    size = FLAGS.size if FLAGS["size"].present or not quick else QUICK_SIZE
    steps = FLAGS.steps if FLAGS["steps"].present or not quick else 2
    warmup = FLAGS.warmup if FLAGS["warmup"].present or not quick else 0
    rounds = FLAGS.rounds if FLAGS["rounds"].present or not quick else 2
    try:
        if "peer" in sides:
            check_peer_size(size, (TINY if quick else FULL)["levels"])
        result = run_harness(sides, FLAGS.precisions, size, FLAGS.batch, steps, warmup, rounds, threads,
                             FLAGS.interop_threads or threads, quick=quick, max_load=FLAGS.max_load,
                             allow_busy=FLAGS.allow_busy, peer_autocast=FLAGS.peer_autocast, seed=FLAGS.seed)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    except MachineBusy as error:
        print(f"bench_peer: {error}", file=sys.stderr)
        sys.exit(BUSY_EXIT)
    except HarnessError as error:
        print(f"bench_peer: {error}", file=sys.stderr)
        sys.exit(1)
    common.report(format_table(result))
    common.print_result(result, FLAGS.output)


if __name__ == "__main__":
    define_flags()
    app.run(main)
