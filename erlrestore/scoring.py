"""Scoring image pairs: PSNR/SSIM per image, summaries, the CSV, the comparison to a baseline, printed lines.

:func:`measure_pairs` turns pairs of files into per-image PSNR/SSIM rows (on
the BT.601 Y channel by default, or on RGB with ``channel="rgb"``; see
:mod:`erlrestore.metrics`) and a :class:`Summary` (the metrics tool).
:class:`ImageScore` and :class:`Summary` carry the channel their numbers
were measured on and name them by it (``psnr_y`` or ``psnr_rgb``, never
both); :func:`write_csv` writes the per-image rows;
:func:`compare_to_baseline` counts the images a model improves over a
baseline (ERL-Net Fig. 3); the ``*_line`` functions format the numbers as
the tools print them. A metric added with
:func:`erlrestore.metrics.register_metric` is measured for every image too
(``extra_metrics``), averaged by :func:`summarize`, and shown after SSIM on
:meth:`Summary.line`, on :func:`gain_line` and in :func:`write_csv`'s
columns; the comparison to a baseline (improved shares, by PSNR as ERL-Net
Fig. 3 counts them) and the strips' labels stay PSNR.
:mod:`erlrestore.evaluation` scores restored images with these functions
and re-exports every one of them.
"""

import concurrent.futures
import csv
import dataclasses
import math
import os

from erlrestore import metrics
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

    def metric_values(self):
        """``((name, value), ...)``: PSNR, SSIM, then the registered metrics measured (``extra_metrics``)."""
        return (("psnr", self.psnr), ("ssim", self.ssim), *self.extra_metrics)

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
    """One image's PSNR/SSIM against its clean image, measured on ``channel`` (``"y"`` or ``"rgb"``).

    ``extra_metrics``: ``((name, value), ...)`` of the metrics registered
    beyond PSNR and SSIM (:func:`erlrestore.metrics.register_metric`).
    """

    name: str
    input_path: str
    target_path: str
    psnr: float
    ssim: float
    channel: str = "y"
    extra_metrics: tuple = ()


@dataclasses.dataclass(frozen=True)
class Summary(_NamedByChannel):
    """A set's mean PSNR (inf if any pair is identical) and mean SSIM on ``channel``.

    ``extra_metrics``: ``((name, mean), ...)`` of the registered metrics
    beyond PSNR and SSIM.
    """

    count: int
    psnr: float
    ssim: float
    channel: str = "y"
    extra_metrics: tuple = ()

    def line(self):
        """The tools' last stdout line: ``n=<N> psnr_<c>=<x.xxxx> ssim_<c>=<x.xxxxx>``, ``<c>`` the channel.

        ``n=12 psnr_y=30.1354 ssim_y=0.85540`` (the default), or
        ``n=12 psnr_rgb=28.1234 ssim_rgb=0.81234`` with ``channel="rgb"``.
        Registered metrics follow as ``<name>_<c>=<mean>``, with their
        :class:`~erlrestore.metrics.Metric`'s ``line_decimals``.
        """
        c = self.channel
        return " ".join([f"n={self.count}"] + [
            f"{name}_{c}={value:.{metrics.get_metric(name).line_decimals}f}" for name, value in self.metric_values()])


def image_score(pair, image, clean, crop_border=0, channel="y"):
    """PSNR/SSIM of ``image`` (the pair's input, or its restoration) against ``clean``.

    ``channel``: ``"y"`` (BT.601 Y, the default) or ``"rgb"``. Images the
    metrics cannot measure (smaller than SSIM's 11x11 window, or than twice
    ``crop_border``) raise a DataError naming the pair's files.
    """
    metrics.is_y_channel(channel)  # an unknown channel is a plain ValueError, not the pair's fault
    try:
        values = metrics.measure(image, clean, crop_border, channel)  # every registered metric, by name
    except ValueError as error:
        where = pair.input_path if pair.input_path == pair.target_path else f"{pair.input_path} / {pair.target_path}"
        raise image_files.DataError(f"{where}: {error}") from None
    psnr, ssim = values.pop("psnr"), values.pop("ssim")
    return ImageScore(name=pair.name, input_path=pair.input_path, target_path=pair.target_path,
                      psnr=psnr, ssim=ssim, channel=channel, extra_metrics=tuple(values.items()))


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
    """The Summary (mean PSNR and SSIM, and of the registered metrics) of ImageScores measured on one channel."""
    if not scores:
        raise ValueError("no scores to summarize")
    count = len(scores)
    names = _extra_names(scores)
    return Summary(
        count=count,
        psnr=math.fsum(s.psnr for s in scores) / count,
        ssim=math.fsum(s.ssim for s in scores) / count,
        channel=_channel_of(scores),
        extra_metrics=tuple((name, math.fsum(dict(s.extra_metrics)[name] for s in scores) / count)
                            for name in names),
    )


def _extra_names(scores):
    """The names of the scores' ``extra_metrics``; ValueError when the scores do not all have the same."""
    names = {tuple(name for name, _ in s.extra_metrics) for s in scores}
    if len(names) != 1:
        raise ValueError(f"scores measured with different metrics ({' / '.join(map(str, sorted(names)))}) "
                         "cannot be combined")
    return names.pop()


def write_csv(path, scores, extra_columns=None):
    """Per-image rows (name, input, target, psnr_<c>, ssim_<c>), written atomically.

    ``<c>`` is the scores' channel (``y`` or ``rgb``). The registered metrics
    beyond PSNR and SSIM (``extra_metrics``) follow SSIM as ``<name>_<c>``,
    with their :class:`~erlrestore.metrics.Metric`'s ``csv_decimals``.

    ``extra_columns`` (optional) maps further column names to one value per
    row; floats are written with 6 decimals, anything else as ``str``.
    """
    path = os.fspath(path)
    extra_columns = dict(extra_columns or {})
    channel = _channel_of(scores) if scores else "y"
    names = ("psnr", "ssim", *(_extra_names(scores) if scores else ()))
    columns = [metrics.get_metric(name) for name in names]
    for column, values in extra_columns.items():
        if len(values) != len(scores):
            raise ValueError(f"column {column!r} has {len(values)} values for {len(scores)} rows")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "input", "target", *(f"{name}_{channel}" for name in names), *extra_columns])
        for i, s in enumerate(scores):
            measured = [metric.csv_text(value) for (_, value), metric in zip(s.metric_values(), columns)]
            extra = [_csv_value(values[i]) for values in extra_columns.values()]
            writer.writerow([s.name, s.input_path, s.target_path, *measured, *extra])
    os.replace(tmp, path)


def _csv_value(value):
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


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

    Every metric of the summaries is shown, in :meth:`Summary.line`'s order:
    PSNR, SSIM, then the registered ones (``max_error_y=-7.50``), each with
    its :class:`~erlrestore.metrics.Metric`'s ``line_decimals``. Both
    summaries must be on one channel, count the same images and carry the
    same metrics. An infinite PSNR (an image identical to its clean one)
    gives ``+inf``, ``-inf`` or ``+nan``, as the difference of the means does.
    """
    channel = _channel_of([summary, input_summary])
    if summary.count != input_summary.count:
        raise ValueError(f"a gain compares the same images: {summary.count} restored, {input_summary.count} inputs")
    _extra_names([summary, input_summary])  # the same metrics on both sides, or a ValueError
    gains = [(name, value - before) for (name, value), (_, before)
             in zip(summary.metric_values(), input_summary.metric_values())]
    return "gain: " + " ".join(
        f"{name}_{channel}={gain:+.{metrics.get_metric(name).line_decimals}f}" for name, gain in gains)
