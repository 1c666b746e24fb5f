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

The pieces that are not about running models live in modules of their own
and are imported from here as before: :mod:`erlrestore.scoring` (the
scores of image pairs, summaries, the CSV, the comparison to a baseline
and the printed lines) and :mod:`erlrestore.rain_masks` (benchmark rain
masks for mIoR / mIoB).
"""

import collections
import concurrent.futures
import dataclasses
import os

import numpy as np

from erlrestore import inference, metrics, outputs, pictures
from erlrestore.data import image_files, pairing
from erlrestore.progress import progress
from erlrestore.rain_masks import rain_mask_paths, read_rain_mask
from erlrestore.scoring import (
    ImageScore,
    Summary,
    compare_to_baseline,
    gain_line,
    image_score,
    improvement_line,
    input_line,
    measure_pairs,
    miou_line,
    score_pair,
    summarize,
    write_csv,
)

__all__ = [
    "ImageScore",
    "ModelComparison",
    "Summary",
    "compare_models",
    "compare_paths",
    "compare_to_baseline",
    "evaluate_model",
    "gain_line",
    "image_score",
    "improvement_line",
    "input_line",
    "measure_pairs",
    "miou_line",
    "quantize_8bit",
    "rain_mask_paths",
    "read_rain_mask",
    "restore_image",
    "restored_paths",
    "score_pair",
    "summarize",
    "write_csv",
]


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
