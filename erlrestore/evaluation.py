"""Measuring image pairs, and evaluating restoration models on them.

``measure_pairs`` turns pairs of files into per-image PSNR/SSIM rows (on
the BT.601 Y channel by default, or on RGB with ``channel="rgb"``; see
:mod:`erlrestore.metrics`) and a summary (the metrics tool).
``evaluate_model`` first restores each degraded image with a model and
scores the restored image against the clean one; ``compare_models`` does
that for a model and a baseline together and adds the ERL-Net paper's
analyses (Sec. 4.3): the share of images the model improves over the
baseline, overall and on the hard / easy halves (Fig. 3,
:func:`compare_to_baseline`), and mIoR / mIoB (Eq. 6-8,
:mod:`erlrestore.metrics`).

Choices where the papers are silent:

* ``quantize=True`` (the default) rounds every restored image to 8 bits
  before it is scored, exactly as writing it to a PNG and measuring the file
  would (the way published numbers are made: results are saved, then
  measured). The written PNGs therefore give the same numbers with
  ``erlrestore-metrics``. ``quantize=False`` scores the float32 output.
* mIoR / mIoB are computed on the same (quantized or not) images that are
  scored. Rounding makes exact ties between the two models more frequent;
  ties count as "not better" (Eq. 6).
* The rain / background maps of mIoR / mIoB are the thresholded
  ``|rainy - clean|`` maps (``metrics.rain_maps``), or, with ``rain_masks``,
  a benchmark's own binary rain masks as the paper uses for Rain100H
  (:func:`rain_mask_paths` pairs them to the images, :func:`read_rain_mask`
  reads them: a pixel is rain where the grey value is > 0.5).
* Models are run by :mod:`erlrestore.inference`, the one runner of every
  tool: a Keras model, a restorer, or anything ``load_restorer`` loads (a
  ``.keras`` file, a run folder, a SavedModel, ``pretrained:<name>``). This
  module only measures what the restorer returns. By default each image
  goes through whole (``tile=None``, as papers evaluate); ``tile`` restores
  larger images in overlapping tiles as ``erlrestore-restore`` does.
* Restored images are written as PNG named after the input's stem, under
  :mod:`erlrestore.outputs`' policy: the output folder may not be a folder
  that holds input or clean images, so evaluation never overwrites its data,
  and existing restored images are only replaced with ``overwrite``.
* ``channel`` chooses what PSNR/SSIM are measured on (``"y"`` or ``"rgb"``)
  and names the numbers: :class:`ImageScore` and :class:`Summary` carry it,
  the summary line reads ``psnr_y=... ssim_y=...`` or ``psnr_rgb=...
  ssim_rgb=...`` and the CSV columns are named the same way. The improved
  shares of :func:`compare_to_baseline` use that channel's PSNR; mIoR / mIoB
  stay on the Y channel, as the ERL-Net paper defines them.
* ``self_ensemble=True`` restores each image with the x8 geometric
  self-ensemble (:func:`erlrestore.inference.restore_tiled`): the model runs
  on the 8 flips/rotations of the degraded image, one call each (a batch of
  one, so batch statistics under ``training=True`` stay per image), every
  output is clipped to [0, 1], transformed back and the 8 are averaged;
  quantization and scoring then apply to the average. With a baseline it
  applies to both models.
* Every evaluation also scores each degraded input against its clean image
  (same channel and crop), so a tool can print the input's score and the
  gain beside the restored score (:func:`gain_line`):
  ``evaluate_model(..., return_input=True)`` and
  :attr:`ModelComparison.input_scores` give them.
* ``compare_dir`` writes one labelled strip per pair, input | restored |
  clean (with the baseline's restoration before the model's when there is
  one), each panel's PSNR on ``channel`` printed on it: the numbers scored
  (:mod:`erlrestore.pictures`; ``compare_max_width`` bounds the strip's
  width). Strips are ``<input stem>.png``, under the output policy, in a
  folder that is not ``output_dir``.

Decoding, scoring and writing run in a small thread pool (OpenCV and NumPy
release the GIL) while the model runs on the calling thread; at most a few
images are in flight, so memory stays flat on large sets. Results keep the
pairs' order.
"""

import collections
import concurrent.futures
import csv
import dataclasses
import math
import os
import re

import numpy as np

from erlrestore import inference, metrics, outputs, pictures
from erlrestore.data import image_files, pairing
from erlrestore.progress import progress


class _NamedByChannel:
    """``psnr_y`` / ``ssim_y`` / ``psnr_rgb`` / ``ssim_rgb``: ``psnr`` / ``ssim`` named by their channel.

    Asking for the other channel's name is an AttributeError, so RGB numbers
    are never read as Y ones (or the reverse).
    """

    def _named(self, value, channel):
        if self.channel != channel:
            raise AttributeError(f"these scores are measured on channel {self.channel!r}, not {channel!r}")
        return value

    @property
    def psnr_y(self):
        return self._named(self.psnr, "y")

    @property
    def ssim_y(self):
        return self._named(self.ssim, "y")

    @property
    def psnr_rgb(self):
        return self._named(self.psnr, "rgb")

    @property
    def ssim_rgb(self):
        return self._named(self.ssim, "rgb")


@dataclasses.dataclass(frozen=True)
class ImageScore(_NamedByChannel):
    """One image's PSNR/SSIM against its clean image, measured on ``channel`` (``"y"`` or ``"rgb"``)."""

    name: str
    input_path: str
    target_path: str
    psnr: float
    ssim: float
    channel: str = "y"


@dataclasses.dataclass(frozen=True)
class Summary(_NamedByChannel):
    """A set's mean PSNR (inf if any pair is identical) and mean SSIM on ``channel``."""

    count: int
    psnr: float
    ssim: float
    channel: str = "y"

    def line(self):
        """The tools' last stdout line: ``n=<N> psnr_<c>=<x.xxxx> ssim_<c>=<x.xxxxx>``, ``<c>`` the channel.

        ``n=12 psnr_y=30.1354 ssim_y=0.85540`` (the default), or
        ``n=12 psnr_rgb=28.1234 ssim_rgb=0.81234`` with ``channel="rgb"``.
        """
        c = self.channel
        return f"n={self.count} psnr_{c}={self.psnr:.4f} ssim_{c}={self.ssim:.5f}"


def image_score(pair, image, clean, crop_border=0, channel="y"):
    """PSNR/SSIM of ``image`` (the pair's input, or its restoration) against ``clean``.

    ``channel``: ``"y"`` (BT.601 Y, the default) or ``"rgb"``. Images the
    metrics cannot measure (smaller than SSIM's 11x11 window, or than twice
    ``crop_border``) raise a DataError naming the pair's files.
    """
    metrics.is_y_channel(channel)  # an unknown channel is a plain ValueError, not the pair's fault
    try:
        psnr, ssim = metrics.psnr_ssim(image, clean, crop_border, channel)
    except ValueError as error:
        where = pair.input_path if pair.input_path == pair.target_path else f"{pair.input_path} / {pair.target_path}"
        raise image_files.DataError(f"{where}: {error}") from None
    return ImageScore(name=pair.name, input_path=pair.input_path, target_path=pair.target_path,
                      psnr=psnr, ssim=ssim, channel=channel)


def score_pair(pair, crop_border=0, channel="y"):
    """PSNR/SSIM of one pair of files on ``channel`` (``"y"`` or ``"rgb"``)."""
    degraded, clean = pairing.load_pair(pair)
    return image_score(pair, degraded, clean, crop_border, channel)


def measure_pairs(pairs, crop_border=0, workers=None, show_progress=True, channel="y"):
    """Scores every pair on ``channel``; returns (list of ImageScore in pair order, Summary)."""
    if not pairs:
        raise ValueError("no image pairs to measure")
    metrics.is_y_channel(channel)
    workers = workers or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        scores = pool.map(lambda p: score_pair(p, crop_border, channel), pairs)
        if show_progress:
            scores = progress(scores, total=len(pairs), desc="measuring")
        scores = list(scores)
    return scores, summarize(scores)


def _channel_of(scores):
    channels = sorted({s.channel for s in scores})
    if len(channels) != 1:
        raise ValueError(f"scores measured on different channels ({', '.join(channels)}) cannot be combined")
    return channels[0]


def summarize(scores):
    """The Summary (mean PSNR and SSIM) of ImageScores measured on one channel."""
    if not scores:
        raise ValueError("no scores to summarize")
    count = len(scores)
    return Summary(
        count=count,
        psnr=math.fsum(s.psnr for s in scores) / count,
        ssim=math.fsum(s.ssim for s in scores) / count,
        channel=_channel_of(scores),
    )


def write_csv(path, scores, extra_columns=None):
    """Per-image rows (name, input, target, psnr_<c>, ssim_<c>), written atomically.

    ``<c>`` is the scores' channel (``y`` or ``rgb``).

    ``extra_columns`` (optional) maps further column names to one value per
    row; floats are written with 6 decimals, anything else as ``str``.
    """
    path = os.fspath(path)
    extra_columns = dict(extra_columns or {})
    channel = _channel_of(scores) if scores else "y"
    for column, values in extra_columns.items():
        if len(values) != len(scores):
            raise ValueError(f"column {column!r} has {len(values)} values for {len(scores)} rows")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "input", "target", f"psnr_{channel}", f"ssim_{channel}", *extra_columns])
        for i, s in enumerate(scores):
            extra = [_csv_value(values[i]) for values in extra_columns.values()]
            writer.writerow([s.name, s.input_path, s.target_path, f"{s.psnr:.6f}", f"{s.ssim:.7f}", *extra])
    os.replace(tmp, path)


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


# --------------------------------------------------------------------------
# Evaluating restoration models.
# --------------------------------------------------------------------------


def restore_image(model, image, training=False, self_ensemble=False):
    """Restores one whole ``H x W x 3`` image; returns float32 ``H x W x 3`` in [0, 1].

    A shortcut for :func:`erlrestore.inference.restore_tiled` with
    ``tile=None``: ``model`` is a Keras model, a restorer or a model path
    (:func:`erlrestore.inference.as_restorer`), run on a batch of one.
    ``training=True`` runs a Keras model with batch statistics
    (:class:`erlrestore.inference.KerasRestorer`: pix2pix's default test
    mode; the model's moving statistics are left unchanged).
    ``self_ensemble=True`` averages the x8 flip/rotation self-ensemble, one
    call per transform.

    Raises:
      ValueError for an image that is not ``H x W x 3``, or a model whose
      output does not have the input's shape.
    """
    restorer = inference.as_restorer(model, batch_statistics=training)
    return inference.restore_tiled(restorer, image, tile=None, self_ensemble=self_ensemble)


def quantize_8bit(image):
    """``image`` rounded to 8 bits (float32 ``k / 255``), as writing a PNG and reading it back does.

    Bit-identical to ``image_files.read_image`` of the file ``image_files.write_image`` makes
    from ``image``.
    """
    levels = np.rint(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255.0).astype(np.uint8)
    return levels.astype(np.float32) / np.float32(255.0)


def restored_paths(pairs, output_dir, overwrite=False):
    """Where the restored image of each pair is written: ``output_dir/<input stem>.png``.

    Raises:
      DataError (:func:`erlrestore.outputs.output_paths`) when ``output_dir``
      is a folder holding any input or clean image of ``pairs``, when two
      inputs share a stem (``a.png`` and ``a.jpg``) and would overwrite each
      other's result, or, without ``overwrite``, when restored images exist
      there already.
    """
    return outputs.output_paths([pair.input_path for pair in pairs], output_dir, extension=".png",
                                overwrite=overwrite, references=[pair.target_path for pair in pairs])


_NUMBER = re.compile(r"\d+")


def _first_number(stem):
    """The first run of digits in a file stem, as an int (``rain-001x2`` -> 1), or None."""
    match = _NUMBER.search(stem)
    return int(match.group()) if match else None


def rain_mask_paths(pairs, mask_dir):
    """The rain mask file of each pair, from the images directly inside ``mask_dir``.

    ERL-Net's Table 4 uses the benchmark's own binary rain masks where they
    are shipped (Rain100H) instead of thresholded ``|rainy - clean|`` maps.
    For each pair, the first rule that finds a mask wins:

    1. a mask with the degraded image's stem (``rain-001.png`` -> ``rain-001.*``);
    2. a mask with the clean image's stem (``norain-001.png`` -> ``norain-001.*``);
    3. a mask with the same number: the first run of digits of the stem,
       compared as an integer, of the degraded image (else the clean image),
       so ``rain-001.png`` and ``norain-001x2.png`` both pair with
       ``rainmask-001.png``, ``rainregion-1.png`` or ``001.png``.

    A rule that finds two masks (same stem with two extensions, or two masks
    with one number) is an error rather than a guess, and so is a pair with no
    mask; both name the files. The pairs' own degraded and clean images are
    never masks, so ``mask_dir`` may be a folder that also holds the images
    (Rain100H's training folder holds ``rain-1``, ``norain-1``,
    ``rainregion-1`` and ``rainstreak-1``; there the two numbered candidates
    are reported as ambiguous: put the masks in a folder of their own).

    Returns:
      One path per pair, in pair order.

    Raises:
      DataError naming ``mask_dir`` and the image without a mask (or the
      competing masks); ``mask_dir`` itself must be a folder of images.
    """
    images = {os.path.realpath(path) for pair in pairs for path in (pair.input_path, pair.target_path)}
    masks = [path for path in image_files.list_images(mask_dir) if os.path.realpath(path) not in images]
    if not masks:
        raise image_files.DataError(f"{mask_dir} holds no rain masks, only the evaluated images")
    by_stem, by_number = collections.defaultdict(list), collections.defaultdict(list)
    for path in masks:
        stem = os.path.splitext(os.path.basename(path))[0]
        by_stem[stem].append(path)
        number = _first_number(stem)
        if number is not None:
            by_number[number].append(path)

    def stem_of(path):
        return os.path.splitext(os.path.basename(path))[0]

    def one(found, pair, rule):
        if len(found) > 1:
            raise image_files.DataError(
                f"rain masks {' and '.join(found)} both match {pair.input_path} ({rule}); "
                f"keep one of them in {mask_dir}"
            )
        return found[0]

    result = []
    for pair in pairs:
        input_stem, clean_stem = stem_of(pair.input_path), stem_of(pair.target_path)
        if by_stem.get(input_stem):
            result.append(one(by_stem[input_stem], pair, f"name {input_stem!r}"))
            continue
        if by_stem.get(clean_stem):
            result.append(one(by_stem[clean_stem], pair, f"name {clean_stem!r}"))
            continue
        numbers = [n for n in (_first_number(input_stem), _first_number(clean_stem)) if n is not None]
        number = next((n for n in numbers if by_number.get(n)), None)
        if number is None:
            wanted = f"{input_stem!r} or {clean_stem!r}" if clean_stem != input_stem else repr(input_stem)
            numbered = f" or numbered {numbers[0]}" if numbers else ""
            raise image_files.DataError(
                f"no rain mask for {pair.input_path} in {mask_dir}: looked for a mask named {wanted}{numbered}"
            )
        result.append(one(by_number[number], pair, f"number {number}"))
    return result


def read_rain_mask(path, shape):
    """A binary rain mask (BMR) from an image file: True where rain.

    The file is read as float in [0, 1] (any bit depth; grey, RGB or RGBA,
    alpha dropped), turned grey as the mean of its channels, and a pixel is
    rain where that value is > 0.5 (so 0/255 and 0/1 masks both work); the
    background map (BMB) is the complement.

    Args:
      path: the mask file.
      shape: ``(height, width)`` of the images it belongs to.

    Raises:
      DataError naming ``path`` when it cannot be read, or when its size is
      not ``shape``.
    """
    mask = image_files.read_image(path)
    if mask.shape[:2] != tuple(shape[:2]):
        raise image_files.DataError(
            f"rain mask {path} is {mask.shape[1]}x{mask.shape[0]} (width x height), but its images are "
            f"{shape[1]}x{shape[0]}"
        )
    return mask.mean(axis=-1) > 0.5


def _ordered(pool, function, items, depth):
    """``map(function, items)`` on ``pool``, in order, with at most ``depth`` items in flight."""
    pending = collections.deque()
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _load(indexed_pair):
    index, pair = indexed_pair
    return index, pair, *pairing.load_pair(pair)


def _restore_all(restorers, loaded, self_ensemble, tile, overlap):
    """(index, pair, degraded, clean) -> the same plus [restored by each restorer]."""
    for index, pair, degraded, clean in loaded:
        restored = []
        for restorer in restorers:
            try:
                restored.append(inference.restore_tiled(restorer, degraded, tile=tile, overlap=overlap,
                                                        self_ensemble=self_ensemble))
            except Exception as error:
                height, width = degraded.shape[:2]
                raise image_files.DataError(
                    f"restoring {pair.input_path} ({width}x{height}) with {getattr(restorer, 'source', restorer)} "
                    f"failed: {type(error).__name__}: {error}"
                ) from error
        yield index, pair, degraded, clean, restored


@dataclasses.dataclass(frozen=True)
class _Evaluated:
    scores: list  # one ImageScore per model
    iou: tuple  # (IoR, IoB) of models[0] over models[1], or None
    input_score: ImageScore  # the degraded input against the clean image


def compare_paths(pairs, compare_dir, output_dir=None, overwrite=False):
    """Where the comparison strip of each pair goes: ``compare_dir/<input stem>.png``.

    Raises DataError (:func:`erlrestore.pictures.strip_paths`) when
    ``compare_dir`` holds input or clean images, is ``output_dir``, when two
    inputs share a stem, or, without ``overwrite``, when strips exist there.
    """
    return pictures.strip_paths([pair.input_path for pair in pairs], compare_dir, overwrite=overwrite,
                                references=[pair.target_path for pair in pairs], beside=[output_dir])


def _evaluate(models, pairs, crop_border, output_dir, quantize, show_progress, workers, desc, rain_masks=None,
              training=False, channel="y", self_ensemble=False, tile=None, overlap=32, overwrite=False,
              compare_dir=None, compare_max_width=pictures.DEFAULT_MAX_WIDTH):
    """The shared loop of evaluate_model and compare_models; models[0] is the one written."""
    if not pairs:
        raise ValueError("no image pairs to evaluate")
    metrics.is_y_channel(channel)
    if rain_masks is not None and len(rain_masks) != len(pairs):
        raise ValueError(f"{len(rain_masks)} rain masks for {len(pairs)} image pairs")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    restorers = [inference.as_restorer(model, batch_statistics=training) for model in models]
    if tile is not None:
        for restorer in restorers:
            inference.check_tiling(tile, overlap, inference.default_align(restorer))
    targets = restored_paths(pairs, output_dir, overwrite=overwrite) if output_dir else [None] * len(pairs)
    strips = (compare_paths(pairs, compare_dir, output_dir, overwrite=overwrite) if compare_dir
              else [None] * len(pairs))

    def finish(item):
        index, pair, degraded, clean, restored = item
        if quantize:
            restored = [quantize_8bit(image) for image in restored]
        if targets[index]:
            image_files.write_image(targets[index], restored[0])
        scores = [image_score(pair, image, clean, crop_border, channel) for image in restored]
        input_score = image_score(pair, degraded, clean, crop_border, channel)
        iou = None
        if len(restored) == 2:
            mask = None if rain_masks is None else read_rain_mask(rain_masks[index], degraded.shape[:2])
            iou = metrics.iou_rain_background(restored[0], restored[1], degraded, clean, crop_border, rain_mask=mask)
        if strips[index]:
            # The baseline's restoration (if any) before the model's, as "input -> baseline -> ours -> clean".
            shown, shown_scores = restored[::-1], scores[::-1]
            labels = ["input", *(["baseline"] if len(restored) == 2 else []), "restored", "clean"]
            picture = pictures.comparison_strip(
                degraded, shown, clean, labels=labels, psnrs=[input_score.psnr] + [s.psnr for s in shown_scores],
                channel=channel, max_width=compare_max_width)
            pictures.write_strip(strips[index], picture)
        return _Evaluated(scores, iou, input_score)

    workers = workers or min(4, os.cpu_count() or 1)
    depth = workers + 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        loaded = _ordered(pool, _load, enumerate(pairs), depth)
        results = _ordered(pool, finish, _restore_all(restorers, loaded, self_ensemble, tile, overlap), depth)
        if show_progress:
            results = progress(results, total=len(pairs), desc=desc)
        return list(results)


def evaluate_model(model, pairs, crop_border=0, output_dir=None, quantize=True, show_progress=True, workers=None,
                   training=False, channel="y", self_ensemble=False, tile=None, overlap=32, overwrite=False,
                   compare_dir=None, compare_max_width=pictures.DEFAULT_MAX_WIDTH, return_input=False):
    """Restores every pair's input with ``model`` and scores it against the clean image.

    Args:
      model: a Keras model mapping ``[B, H, W, 3]`` images to the same shape,
        a restorer (:mod:`erlrestore.inference`), or a path
        ``load_restorer`` loads (``.keras`` file, run folder, SavedModel,
        ``pretrained:<name>``).
      pairs: ``pairing.Pair`` records (``pairing.find_pairs``).
      crop_border: pixels removed from every side before measuring.
      output_dir: when given, each restored image is written there as
        ``<input stem>.png`` (8-bit; see :func:`restored_paths` for refusals).
      quantize: round restored images to 8 bits before scoring (see the
        module docstring); False scores the float32 output.
      show_progress: draw a progress bar on stderr.
      workers: threads for decoding, scoring and writing (default: CPUs, at
        most 4).
      training: call the model with ``training=True`` (batch-norm batch
        statistics and dropout on, pix2pix's default test mode; see
        :class:`erlrestore.inference.KerasRestorer`) instead of inference
        mode. Keras models only: a SavedModel or ONNX model is an error.
      channel: ``"y"`` (BT.601 Y, the default) or ``"rgb"``: what PSNR/SSIM
        are measured on (:mod:`erlrestore.metrics`).
      self_ensemble: restore with the x8 flip/rotation self-ensemble (see
        the module docstring); 8 model calls per image.
      tile, overlap: None restores each image whole (the default); a tile
        side restores larger images in overlapping tiles
        (:func:`erlrestore.inference.restore_tiled`, tiles aligned to the
        model's padding multiple).
      overwrite: replace restored images that exist in ``output_dir``
        (without it they are refused before anything runs), and strips
        in ``compare_dir``.
      compare_dir: when given, a labelled strip input | restored | clean
        with the PSNRs is written there per pair as ``<input stem>.png``
        (:func:`compare_paths` for refusals; not ``output_dir``).
      compare_max_width: the strips' largest width in pixels; wider ones
        are scaled down (:func:`erlrestore.pictures.strip`).
      return_input: also return the degraded inputs' scores.

    Returns:
      ``(scores, summary)``: ImageScore per pair (restored vs clean, in pair
      order; ``input_path`` is still the degraded file) and their Summary;
      with ``return_input``, ``(scores, summary, input_scores,
      input_summary)``, the last two those of the degraded inputs against
      the clean images (as :func:`measure_pairs` gives them).
    """
    results = _evaluate([model], pairs, crop_border, output_dir, quantize, show_progress, workers, "evaluating",
                        training=training, channel=channel, self_ensemble=self_ensemble, tile=tile,
                        overlap=overlap, overwrite=overwrite, compare_dir=compare_dir,
                        compare_max_width=compare_max_width)
    scores = [r.scores[0] for r in results]
    if return_input:
        input_scores = [r.input_score for r in results]
        return scores, summarize(scores), input_scores, summarize(input_scores)
    return scores, summarize(scores)


@dataclasses.dataclass(frozen=True)
class ModelComparison:
    """A model and a baseline evaluated on the same pairs (see :func:`compare_models`).

    Attributes:
      scores, summary: the model's per-image scores and Summary.
      baseline_scores, baseline_summary: the same for the baseline.
      ious: per-image ``(IoR, IoB)`` of the model over the baseline.
      miou: ``(mIoR, mIoB)`` (``metrics.miou`` of ``ious``).
      improvement: :func:`compare_to_baseline` of the two score lists.
      input_scores, input_summary: the degraded inputs' scores against the
        clean images, and their Summary.
    """

    scores: list
    summary: Summary
    baseline_scores: list
    baseline_summary: Summary
    ious: list
    miou: tuple
    improvement: dict
    input_scores: list = None
    input_summary: Summary = None


def compare_models(
    model, baseline_model, pairs, crop_border=0, output_dir=None, quantize=True, show_progress=True, workers=None,
    rain_masks=None, training=False, channel="y", self_ensemble=False, tile=None, overlap=32, overwrite=False,
    compare_dir=None, compare_max_width=pictures.DEFAULT_MAX_WIDTH,
):
    """Evaluates ``model`` and ``baseline_model`` in one pass (each image is decoded once).

    Arguments as for :func:`evaluate_model`; only ``model``'s restored images
    are written to ``output_dir``; the strips in ``compare_dir`` show input |
    baseline | restored | clean. IoR / IoB use the rain map of each
    degraded image against its clean image (threshold: the mean difference,
    ``metrics.rain_maps``) and the same crop as the scores; or, with
    ``rain_masks`` (one mask file per pair, e.g. from :func:`rain_mask_paths`),
    the masks read by :func:`read_rain_mask` (cropped the same way).
    ``channel`` applies to both models' scores and the improved shares,
    ``training``, ``self_ensemble`` and ``tile`` to both models'
    restorations; IoR / IoB are on Y.

    Returns:
      A :class:`ModelComparison`.
    """
    results = _evaluate(
        [model, baseline_model], pairs, crop_border, output_dir, quantize, show_progress, workers, "comparing",
        rain_masks=rain_masks, training=training, channel=channel, self_ensemble=self_ensemble, tile=tile,
        overlap=overlap, overwrite=overwrite, compare_dir=compare_dir, compare_max_width=compare_max_width,
    )
    scores = [r.scores[0] for r in results]
    baseline_scores = [r.scores[1] for r in results]
    ious = [r.iou for r in results]
    input_scores = [r.input_score for r in results]
    return ModelComparison(
        input_scores=input_scores,
        input_summary=summarize(input_scores),
        scores=scores,
        summary=summarize(scores),
        baseline_scores=baseline_scores,
        baseline_summary=summarize(baseline_scores),
        ious=ious,
        miou=metrics.miou(ious),
        improvement=compare_to_baseline(scores, baseline_scores),
    )


def compare_to_baseline(scores, baseline_scores):
    """How many images a model improves over a baseline (ERL-Net Fig. 3).

    An image is improved when the model's PSNR (on the scores' channel, Y by
    default) is strictly higher than the baseline's (equal is not improved).
    The hard subset holds the images whose baseline PSNR is below the mean
    baseline PSNR of the set, the easy subset
    the others (equal to the mean counts as easy; the paper leaves it open).
    When some baseline PSNR is infinite the mean is too, and every image with
    a finite baseline PSNR is hard.

    Args:
      scores, baseline_scores: ImageScore lists of the same images in the same
        order (matched by ``name``).

    Returns:
      A dict with ``count``, ``improved``, ``improved_share`` (improved /
      count), the same three for ``hard_`` and ``easy_`` (e.g.
      ``hard_count``, ``hard_improved``, ``hard_improved_share``; a share of
      an empty subset is nan), and ``baseline_mean_psnr_<c>`` with ``<c>``
      the channel (``baseline_mean_psnr_y`` by default).

    Raises:
      ValueError when the lists are empty, do not hold the same images, or
      were measured on different channels.
    """
    if not scores:
        raise ValueError("no scores to compare")
    if len(scores) != len(baseline_scores):
        raise ValueError(f"{len(scores)} scores but {len(baseline_scores)} baseline scores")
    for new, base in zip(scores, baseline_scores):
        if new.name != base.name:
            raise ValueError(f"score lists do not match: {new.name!r} against baseline {base.name!r}")
    channel = _channel_of(list(scores) + list(baseline_scores))
    mean = math.fsum(b.psnr for b in baseline_scores) / len(baseline_scores)
    improved = [new.psnr > base.psnr for new, base in zip(scores, baseline_scores)]
    hard = [base.psnr < mean for base in baseline_scores]

    def subset(prefix, members):
        count = sum(members)
        better = sum(1 for member, up in zip(members, improved) if member and up)
        return {
            f"{prefix}count": count,
            f"{prefix}improved": better,
            f"{prefix}improved_share": better / count if count else math.nan,
        }

    result = subset("", [True] * len(scores))
    result.update(subset("hard_", hard))
    result.update(subset("easy_", [not h for h in hard]))
    result[f"baseline_mean_psnr_{channel}"] = mean
    return result


def improvement_line(improvement):
    """``improved_all=0.6667 (2/3) improved_hard=1.0000 (2/2) improved_easy=0.0000 (0/1)``."""
    parts = []
    for label, prefix in (("all", ""), ("hard", "hard_"), ("easy", "easy_")):
        share = improvement[f"{prefix}improved_share"]
        parts.append(
            f"improved_{label}={share:.4f} ({improvement[f'{prefix}improved']}/{improvement[f'{prefix}count']})"
        )
    return " ".join(parts)


def miou_line(miou):
    """``mIoR=0.4700 mIoB=0.2800`` (nan printed as ``nan``)."""
    return f"mIoR={miou[0]:.4f} mIoB={miou[1]:.4f}"


def input_line(input_summary):
    """``input: n=12 psnr_y=30.1354 ssim_y=0.85540``: the degraded inputs' Summary, as measured."""
    return f"input: {input_summary.line()}"


def gain_line(summary, input_summary):
    """``gain: psnr_y=+3.3991 ssim_y=+0.05761``: restored minus input, signed, the summary line's decimals.

    Both summaries must be on one channel and count the same images. An
    infinite PSNR (an image identical to its clean one) gives ``+inf``,
    ``-inf`` or ``+nan``, as the difference of the means does.
    """
    channel = _channel_of([summary, input_summary])
    if summary.count != input_summary.count:
        raise ValueError(f"a gain compares the same images: {summary.count} restored, {input_summary.count} inputs")
    psnr, ssim = summary.psnr - input_summary.psnr, summary.ssim - input_summary.ssim
    return f"gain: psnr_{channel}={psnr:+.4f} ssim_{channel}={ssim:+.5f}"
