"""Measuring a set of image pairs with the literature's Y-channel metrics.

``measure_pairs`` is the one loop that turns pairs of files into per-image
PSNR/SSIM rows and a summary; the metrics tool and, later, model evaluation
use it. Decoding runs in a small thread pool (OpenCV and NumPy release the
GIL), results keep the pairs' order.
"""

import concurrent.futures
import csv
import dataclasses
import math
import os

from erlrestore import metrics
from erlrestore.data import pairing
from erlrestore.progress import progress


@dataclasses.dataclass(frozen=True)
class ImageScore:
    name: str
    input_path: str
    target_path: str
    psnr_y: float
    ssim_y: float


@dataclasses.dataclass(frozen=True)
class Summary:
    count: int
    psnr_y: float  # mean of per-image PSNRs (inf if any pair is identical)
    ssim_y: float

    def line(self):
        """The tools' last stdout line: ``n=<N> psnr_y=<x.xxxx> ssim_y=<x.xxxxx>``."""
        return f"n={self.count} psnr_y={self.psnr_y:.4f} ssim_y={self.ssim_y:.5f}"


def score_pair(pair, crop_border=0):
    """Y-channel PSNR/SSIM of one pair of files."""
    degraded, clean = pairing.load_pair(pair)
    return ImageScore(
        name=pair.name,
        input_path=pair.input_path,
        target_path=pair.target_path,
        psnr_y=metrics.psnr_y(degraded, clean, crop_border),
        ssim_y=metrics.ssim_y(degraded, clean, crop_border),
    )


def measure_pairs(pairs, crop_border=0, workers=None, show_progress=True):
    """Scores every pair; returns (list of ImageScore in pair order, Summary)."""
    if not pairs:
        raise ValueError("no image pairs to measure")
    workers = workers or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        scores = pool.map(lambda p: score_pair(p, crop_border), pairs)
        if show_progress:
            scores = progress(scores, total=len(pairs), desc="measuring")
        scores = list(scores)
    return scores, summarize(scores)


def summarize(scores):
    count = len(scores)
    return Summary(
        count=count,
        psnr_y=math.fsum(s.psnr_y for s in scores) / count,
        ssim_y=math.fsum(s.ssim_y for s in scores) / count,
    )


def write_csv(path, scores):
    """Per-image rows (name, input, target, psnr_y, ssim_y), written atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "input", "target", "psnr_y", "ssim_y"])
        for s in scores:
            writer.writerow([s.name, s.input_path, s.target_path, f"{s.psnr_y:.6f}", f"{s.ssim_y:.7f}"])
    os.replace(tmp, path)
