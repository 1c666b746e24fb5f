"""Classical baselines on a paired benchmark: dark-channel-prior de-hazing or CBM3D de-noising, scored.

    python -m tools.classical_baselines --method=dcp --input_dir=../shared/data/sots-indoor-10
    python -m tools.classical_baselines --method=cbm3d --input_dir=noisy/ --target_dir=clean/ --sigma=25
    python -m tools.classical_baselines --method=cbm3d --input_dir=../shared/data/polyu-20 --sigma=estimate \\
        --channel=rgb --output_dir=runs/cbm3d-polyu --record=runs/cbm3d-polyu.json

Pairs are found as ``erlrestore-metrics`` finds them (``erlrestore.data.pairing``:
every benchmark layout the project knows, RESIDE ``hazy/`` + ``gt/`` included;
``--layout`` and ``--pair_order`` as there). Each degraded image is restored
with the method of :mod:`erlrestore.classical`, rounded to 8 bits and scored
against its clean image by the same code as ``erlrestore-evaluate``
(``erlrestore.evaluation.evaluate_model``, which takes the method as a
restorer, and ``measure_pairs`` for the inputs' own scores), so the numbers
stand beside the learned models' and the written PNGs give the same numbers
with ``erlrestore-metrics``.

* ``--method=dcp``: He et al.'s dark channel prior with guided-filter
  refinement; ``--patch``, ``--omega``, ``--t0``, ``--radius``, ``--eps`` and
  ``--top_fraction`` default to the papers' values
  (:func:`erlrestore.classical.dark_channel_prior`).
* ``--method=cbm3d``: CBM3D from the ``bm3d`` package (``pip install -e
  '.[baselines]'``); ``--sigma`` is the noise level on the 0-255 scale, or
  ``estimate`` to estimate it per image from the noisy input
  (:func:`erlrestore.classical.estimate_noise_sigma`), for real noise;
  ``--estimate_scale`` sets the estimate's scale (1, Donoho's finest scale,
  by default; 2 for real JPEG photos such as PolyU, whose correlated noise
  the finest scale misses).

Flags of the other method are refused rather than ignored. Stdout has one line
per image (restored and input scores, seconds, sigma for CBM3D), the inputs'
summary, and last the summary in ``erlrestore-metrics``' format:
``n=<N> psnr_y=<x.xxxx> ssim_y=<x.xxxxx>`` (``psnr_rgb``/``ssim_rgb`` with
``--channel=rgb``). ``--output_dir`` writes the restored images as
``<input stem>.png`` (8-bit; the evaluation tools' output policy, existing
files only with ``--overwrite``); ``--record`` writes a JSON record: method,
parameters, per-image scores, sigma and seconds, the means and the inputs'
scores. Seconds are the method's own time per image (decoding and scoring
run beside it in other threads).
"""

import json
import math
import sys
import time

import numpy as np
from absl import app, flags

import erlrestore.cli  # noqa: F401  (quiet by default; imported before anything imports TensorFlow)
from erlrestore import classical, evaluation, metrics
from erlrestore.cli import apply_max_image_pixels, define_max_image_pixels_flag, fail, option_groups
from erlrestore.data import image_files, pairing

FLAGS = flags.FLAGS

METHODS = ("dcp", "cbm3d")
ESTIMATE = "estimate"
# The flags of each method; those of the other method are refused.
DCP_FLAGS = ("patch", "omega", "t0", "radius", "eps", "top_fraction")
CBM3D_FLAGS = ("sigma", "estimate_scale")
# What CBM3D runs with (erlrestore.classical.cbm3d pins the bm3d package's defaults).
CBM3D_SETTINGS = {"profile": "np", "colorspace": "opp"}


def define_flags():
    defaults = classical.check_dcp_parameters()
    flags.DEFINE_enum("method", None, METHODS, "dcp: dark channel prior de-hazing; cbm3d: CBM3D de-noising.")
    flags.DEFINE_string("input_dir", None, "Degraded images (or one folder holding both sets).")
    flags.DEFINE_string("target_dir", None, "Clean images; omit when --input_dir holds both sets.")
    flags.DEFINE_enum("layout", "auto", pairing.LAYOUTS, "How files are paired; 'auto' detects it.")
    flags.DEFINE_enum("pair_order", "", ("",) + pairing.PAIR_ORDERS, "Half order for side_by_side images.")
    flags.DEFINE_enum("channel", "y", metrics.CHANNELS, "Score on the BT.601 Y channel or on RGB (as "
                      "erlrestore-metrics); names the numbers psnr_y/ssim_y or psnr_rgb/ssim_rgb.")
    flags.DEFINE_integer("crop_border", 0, "Pixels removed from every side before scoring.", lower_bound=0)
    option_groups.define_output_flags(f"{option_groups.NAMED_AS_STEM_PNG} (8-bit)")
    flags.DEFINE_string("record", None, "Write a JSON record of the run (parameters, per-image scores) here.")
    flags.DEFINE_string("sigma", "25", "cbm3d: noise standard deviation on the 0-255 scale (> 0), or 'estimate' "
                        "to estimate it per image from the noisy input (real noise).")
    flags.DEFINE_integer("estimate_scale", 1, "cbm3d with --sigma=estimate: scale of the noise estimate (1: "
                         "finest, for white noise; 2: for real JPEG photos such as PolyU).", lower_bound=1)
    flags.DEFINE_integer("patch", defaults["patch"], "dcp: dark-channel window side in pixels (odd).")
    flags.DEFINE_float("omega", defaults["omega"], "dcp: share of the haze removed, in (0, 1].")
    flags.DEFINE_float("t0", defaults["t0"], "dcp: lower bound of the transmission, in (0, 1).")
    flags.DEFINE_integer("radius", defaults["radius"], "dcp: guided-filter radius in pixels (0: no refinement).")
    flags.DEFINE_float("eps", defaults["eps"], "dcp: guided-filter regularisation (> 0).")
    flags.DEFINE_float("top_fraction", defaults["top_fraction"],
                       "dcp: share of the dark channel searched for the atmospheric light, in (0, 1].")
    flags.DEFINE_integer("workers", 0, "Decoding and scoring threads (0: one per CPU, at most 4).", lower_bound=0)
    define_max_image_pixels_flag()
    flags.mark_flag_as_required("method")
    flags.mark_flag_as_required("input_dir")


def parse_sigma(text):
    """``--sigma``: ``"estimate"`` or a number > 0 on the 0-255 scale (returned as float); ValueError otherwise."""
    text = str(text).strip()
    if text.lower() == ESTIMATE:
        return ESTIMATE
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--sigma must be a number on the 0-255 scale or '{ESTIMATE}', got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"--sigma must be > 0 (0-255 scale) or '{ESTIMATE}', got {text!r}")
    return value


class ClassicalRestorer:
    """One classical method as a restorer: a callable on float32 ``[B, H, W, 3]`` batches in [0, 1].

    That is what :mod:`erlrestore.inference` and
    :func:`erlrestore.evaluation.evaluate_model` run, so the baselines are
    scored, quantized and written by the same code as the learned models.
    Each image's method time (``seconds``) and, for CBM3D, the sigma used
    (``sigmas``) are appended in call order: the pairs' order when
    ``evaluate_model`` runs it (one image per call, on one thread).
    """

    def __init__(self, method, sigma=25.0, dcp_parameters=None, estimate_scale=1):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
        self.method = method
        self.sigma = sigma
        self.estimate_scale = estimate_scale
        self.dcp_parameters = classical.check_dcp_parameters(**(dcp_parameters or {}))
        self.source = f"{method} ({self.describe()})"
        self.seconds, self.sigmas = [], []

    def describe(self):
        if self.method == "dcp":
            return ", ".join(f"{name}={value:g}" for name, value in self.dcp_parameters.items())
        if self.sigma == ESTIMATE:
            return f"sigma=estimate, estimate_scale={self.estimate_scale}"
        return f"sigma={self.sigma:g}"

    def _restore(self, image):
        if self.method == "dcp":
            return classical.dark_channel_prior(image, **self.dcp_parameters)
        if self.sigma == ESTIMATE:
            sigma = classical.estimate_noise_sigma(image, scale=self.estimate_scale)
        else:
            sigma = self.sigma
        self.sigmas.append(float(sigma))
        return classical.cbm3d(image, sigma)

    def __call__(self, batch):
        batch = np.asarray(batch, dtype=np.float32)
        restored = np.empty_like(batch)
        for index, image in enumerate(batch):
            start = time.perf_counter()
            restored[index] = self._restore(image)
            self.seconds.append(time.perf_counter() - start)
        return restored


def _number(value):
    """A float for JSON: finite values as they are, inf (identical images) as the string ``"inf"``."""
    value = float(value)
    return value if math.isfinite(value) else str(value)


def run_baseline(pairs, method, *, sigma=25.0, estimate_scale=1, dcp_parameters=None, channel="y", crop_border=0,
                 output_dir=None, overwrite=False, workers=None, show_progress=True):
    """Restores and scores ``pairs`` with one classical method; returns ``(record, summary)``.

    Args:
      pairs: ``pairing.Pair`` records (``pairing.find_pairs``).
      method: ``"dcp"`` or ``"cbm3d"``.
      sigma: CBM3D's noise level on the 0-255 scale, or ``"estimate"``.
      estimate_scale: the ``scale`` of ``classical.estimate_noise_sigma``
        with ``sigma="estimate"`` (an error otherwise, unless 1).
      dcp_parameters: keyword arguments of ``classical.dark_channel_prior``
        (the papers' values where left out).
      channel, crop_border, output_dir, overwrite, workers, show_progress:
        as for :func:`erlrestore.evaluation.evaluate_model` (restored images
        rounded to 8 bits before scoring).

    Returns:
      ``record``: a JSON-ready dict (method, parameters, per-image rows
      with ``psnr_<c>``, ``ssim_<c>``, the input's ``input_psnr_<c>`` and
      ``input_ssim_<c>``, ``seconds`` and, for CBM3D, ``sigma``; ``mean``,
      ``input_mean``, ``seconds_per_image``, ``summary_line``); a metric
      registered with :func:`erlrestore.metrics.register_metric` is there
      beside PSNR and SSIM as ``<name>_<c>`` and ``input_<name>_<c>``;
      ``summary``: the restored images' :class:`erlrestore.evaluation.Summary`.

    Raises:
      ValueError (DataError for files) for bad settings or data; ImportError
      when CBM3D's package is missing (before any image is read).
    """
    if method == "cbm3d":
        if sigma != ESTIMATE:
            sigma = parse_sigma(sigma)
            if estimate_scale != 1:
                raise ValueError(f"--estimate_scale={estimate_scale} needs --sigma={ESTIMATE}")
        parameters = {"sigma": sigma, **CBM3D_SETTINGS, "bm3d_version": classical.bm3d_version()}
        if sigma == ESTIMATE:
            parameters["estimate_scale"] = estimate_scale
    elif method == "dcp":
        parameters = classical.check_dcp_parameters(**(dcp_parameters or {}))
    else:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    restorer = ClassicalRestorer(method, sigma=sigma, dcp_parameters=dcp_parameters if method == "dcp" else None,
                                 estimate_scale=estimate_scale)
    scores, summary = evaluation.evaluate_model(
        restorer, pairs, crop_border=crop_border, output_dir=output_dir, show_progress=show_progress,
        workers=workers, channel=channel, overwrite=overwrite)
    input_scores, input_summary = evaluation.measure_pairs(pairs, crop_border, workers=workers,
                                                           show_progress=False, channel=channel)
    images = []
    for index, (score, before) in enumerate(zip(scores, input_scores)):
        row = {"name": score.name, "input": score.input_path, "target": score.target_path,
               **_named_values(score, channel), **_named_values(before, channel, "input_"),
               "seconds": restorer.seconds[index]}
        if method == "cbm3d":
            row["sigma"] = restorer.sigmas[index]
        images.append(row)
    record = {
        "tool": "tools.classical_baselines",
        "method": method,
        "parameters": parameters,
        "settings": restorer.describe(),
        "channel": channel,
        "crop_border": crop_border,
        "quantized_8bit": True,
        "count": summary.count,
        "mean": _named_values(summary, channel),
        "input_mean": _named_values(input_summary, channel),
        "seconds_per_image": math.fsum(restorer.seconds) / len(restorer.seconds),
        "images": images,
        "input_summary_line": input_summary.line(),
        "summary_line": summary.line(),
    }
    return record, summary


def _named_values(scores, channel, prefix=""):
    """``{"<prefix><metric>_<channel>": value}`` of an ImageScore or Summary, every metric it carries, in order."""
    return {f"{prefix}{name}_{channel}": _number(value) for name, value in scores.metric_values()}


def image_line(row, channel):
    """One image's stdout line: restored and input scores, seconds, and sigma for CBM3D.

    The scores are those of the registered metrics (PSNR, SSIM, then any
    added with :func:`erlrestore.metrics.register_metric`) that ``row`` has,
    with the summary line's decimals.
    """
    names = [name for name in metrics.metric_names() if f"{name}_{channel}" in row]
    parts = [row["name"]]
    for prefix in ("", "input_"):
        for name in names:
            key = f"{prefix}{name}_{channel}"
            parts.append(f"{key}={float(row[key]):.{metrics.get_metric(name).line_decimals}f}")
    text = " ".join([*parts, f"seconds={row['seconds']:.3f}"])
    if "sigma" in row:
        text += f" sigma={row['sigma']:.4f}"
    return text


def _refuse_other_method_flags(method):
    other = CBM3D_FLAGS if method == "dcp" else DCP_FLAGS
    given = [f"--{name}" for name in other if FLAGS[name].present]
    if given:
        raise app.UsageError(f"{', '.join(given)} do not apply to --method={method}")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    method = FLAGS.method
    _refuse_other_method_flags(method)
    apply_max_image_pixels()
    try:
        sigma = parse_sigma(FLAGS.sigma) if method == "cbm3d" else None
        dcp_parameters = {name: FLAGS[name].value for name in DCP_FLAGS} if method == "dcp" else None
        if dcp_parameters:
            classical.check_dcp_parameters(**dcp_parameters)
        pairs = pairing.find_pairs(FLAGS.input_dir, FLAGS.target_dir, layout=FLAGS.layout,
                                   pair_order=FLAGS.pair_order)
        record, summary = run_baseline(
            pairs, method, sigma=sigma, estimate_scale=FLAGS.estimate_scale, dcp_parameters=dcp_parameters,
            channel=FLAGS.channel, crop_border=FLAGS.crop_border, output_dir=FLAGS.output_dir,
            overwrite=FLAGS.overwrite, workers=FLAGS.workers or None)
    except (image_files.DataError, ValueError, ImportError) as error:
        return fail(error)
    record.update(input_dir=FLAGS.input_dir, target_dir=FLAGS.target_dir, layout=FLAGS.layout)
    if FLAGS.record:
        text = json.dumps(record, indent=1) + "\n"
        image_files.write_bytes_atomically(FLAGS.record, text.encode("utf-8"))
    for row in record["images"]:
        print(image_line(row, FLAGS.channel))
    print(f"method={method} ({record['settings']}) seconds_per_image={record['seconds_per_image']:.3f}")
    print(f"input: {record['input_summary_line']}")
    print(summary.line())
    return 0


if __name__ == "__main__":
    define_flags()
    sys.exit(app.run(main))
