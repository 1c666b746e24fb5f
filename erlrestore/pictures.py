"""Pictures to look at: labelled side-by-side strips, input | restored (| clean).

One strip maker for every tool that shows a restoration:
``erlrestore-restore --compare``, ``erlrestore-evaluate --compare``,
``tools/demo.py`` and the gallery (``python -m tools.gallery``).

    strip = pictures.comparison_strip(rainy, restored, clean)     # uint8 H x W x 3
    pictures.write_strip("compare/rain-001.png", strip)

Layout: the panels sit side by side in one row, ``GAP`` pixels apart, each
under a dark band holding its label in white text (the band is separate from
the picture, so the text reads the same on bright and dark images and hides
nothing). Where the clean image is known, the band also gives each panel's
PSNR against it (:func:`psnr_text`: ``Y-PSNR 33.61 dB``, or ``RGB-PSNR`` on
the RGB channels). Panels of different heights are top-aligned on the dark
background.

Large images: when the row would be wider than ``max_width`` pixels
(default :data:`DEFAULT_MAX_WIDTH`, 2400), the pictures are scaled down
together (area interpolation) so that it fits; the text is drawn after the
scaling, at a fixed size, so it stays legible. The text shrinks only for
panels too narrow to hold it (down to a floor, below which it is cut off at
the panel's edge). ``max_width=None`` (or 0) never scales.

Strips are 8-bit RGB arrays; :func:`write_strip` writes one in any format
``erlrestore.data.image_files`` writes (PNG by the tools, JPEG for the
gallery). Where strips go follows :mod:`erlrestore.outputs`' policy
(:func:`strip_paths`).

This module imports no TensorFlow (OpenCV and NumPy only), except that
:func:`comparison_strip` imports :mod:`erlrestore.metrics` when it has to
measure PSNRs itself.
"""

import math
import os

import cv2
import numpy as np

from erlrestore import outputs
from erlrestore.data import image_files

# Widest strip before the pictures are scaled down, in pixels.
DEFAULT_MAX_WIDTH = 2400
# Pixels between neighbouring panels.
GAP = 8
BACKGROUND = (24, 24, 24)
TEXT_COLOUR = (255, 255, 255)
FONT = cv2.FONT_HERSHEY_SIMPLEX
FONT_SCALE = 0.6
MIN_FONT_SCALE = 0.3
_MARGIN = 6  # pixels of band around the text
_LINE_SPACING = 6

CHANNEL_NAMES = {"y": "Y", "rgb": "RGB"}


def psnr_text(psnr, channel="y"):
    """The PSNR as a panel shows it: ``Y-PSNR 33.61 dB`` (``RGB-PSNR ...`` for ``channel="rgb"``).

    Two decimals; identical images (an infinite PSNR) read ``Y-PSNR inf dB``.
    """
    if channel not in CHANNEL_NAMES:
        raise ValueError(f"channel must be one of {', '.join(CHANNEL_NAMES)}, got {channel!r}")
    value = "inf" if math.isinf(psnr) and psnr > 0 else f"{psnr:.2f}"
    return f"{CHANNEL_NAMES[channel]}-PSNR {value} dB"


def _as_uint8(image):
    """An H x W x 3 uint8 copy of ``image`` (float in [0, 1], or uint8; grey is replicated)."""
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] != 3 or array.size == 0:
        raise ValueError(f"a strip panel must be an H x W x 3 image, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array.copy()
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"strip panels are float images in [0, 1] or uint8, got {array.dtype}")
    values = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
    return np.rint(np.clip(values, 0.0, 1.0) * 255.0).astype(np.uint8)


def _lines(label):
    if isinstance(label, str):
        return label.split("\n")
    return [str(line) for line in label]


def _line_height(scale):
    (_, height), baseline = cv2.getTextSize("Ag", FONT, scale, 1)
    return height + baseline


def band_height(lines, scale=FONT_SCALE):
    """Height in pixels of the label band for ``lines`` lines of text."""
    return 2 * _MARGIN + lines * _line_height(scale) + (lines - 1) * _LINE_SPACING


def _fitting_scale(lines, width):
    """The largest scale <= FONT_SCALE (>= MIN_FONT_SCALE) at which every line fits ``width``."""
    room = width - 2 * _MARGIN
    widest = max((cv2.getTextSize(line, FONT, FONT_SCALE, 1)[0][0] for line in lines), default=0)
    if widest <= room:
        return FONT_SCALE
    return max(MIN_FONT_SCALE, FONT_SCALE * room / widest)


def _draw_label(band, lines):
    scale = _fitting_scale(lines, band.shape[1])
    step = _line_height(FONT_SCALE) + _LINE_SPACING
    (_, height), _ = cv2.getTextSize("Ag", FONT, scale, 1)
    for i, line in enumerate(lines):
        baseline_y = _MARGIN + i * step + height
        cv2.putText(band, line, (_MARGIN, baseline_y), FONT, scale, TEXT_COLOUR, 1, cv2.LINE_AA)


def _scaled_sizes(sizes, max_width, gap):
    """(height, width) of each panel after scaling the row to at most ``max_width`` pixels."""
    total = sum(width for _, width in sizes) + gap * (len(sizes) - 1)
    if not max_width or total <= max_width:
        return list(sizes)
    room = max_width - gap * (len(sizes) - 1)
    if room < len(sizes):
        raise ValueError(f"max_width={max_width} leaves no room for {len(sizes)} panels {gap} px apart")
    factor = room / sum(width for _, width in sizes)
    return [(max(1, round(height * factor)), max(1, math.floor(width * factor))) for height, width in sizes]


def strip(images, labels, max_width=DEFAULT_MAX_WIDTH, gap=GAP):
    """``images`` side by side, each under a dark band holding its label; an 8-bit RGB array.

    Args:
      images: H x W x 3 images (float in [0, 1], or uint8; grey H x W is
        replicated), shown left to right.
      labels: one per image: a string (``"\\n"`` separates lines) or a list
        of lines. Every band is as high as the one with the most lines.
      max_width: the widest the strip may be; a wider row is scaled down
        (pictures only; bands and text keep their size). None or 0: never.
      gap: pixels between panels.

    Returns:
      ``uint8`` of shape ``(band + tallest panel, sum of panel widths +
      gap * (n - 1), 3)``, panel widths after scaling; see the module
      docstring.
    """
    images = [_as_uint8(image) for image in images]
    labels = [_lines(label) for label in labels]
    if not images:
        raise ValueError("a strip needs at least one image")
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} images")
    if max_width is not None and max_width < 0:
        raise ValueError(f"max_width must be >= 0 (0: no limit), got {max_width}")
    sizes = _scaled_sizes([image.shape[:2] for image in images], max_width, gap)
    band = band_height(max(len(lines) for lines in labels))
    height = band + max(h for h, _ in sizes)
    width = sum(w for _, w in sizes) + gap * (len(images) - 1)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = BACKGROUND
    x = 0
    for image, lines, (h, w) in zip(images, labels, sizes):
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
        canvas[band:band + h, x:x + w] = image
        _draw_label(canvas[:band, x:x + w], lines)
        x += w + gap
    return canvas


def comparison_strip(degraded, restored, clean=None, *, labels=None, psnrs=None, channel="y", crop_border=0,
                     max_width=DEFAULT_MAX_WIDTH):
    """input | restored (| clean): :func:`strip` with the tools' labels and, given ``clean``, PSNRs.

    Args:
      degraded: the input image.
      restored: the restored image, or a list of them (e.g. a baseline's and
        the model's), shown in order after the input.
      clean: the clean image, when known; shown last, and every other panel's
        label then carries its PSNR against it (:func:`psnr_text`).
      labels: panel names, one per panel (default ``input``, ``restored``
        (``restored 1``, ``restored 2``... for several), ``clean``).
      psnrs: with ``clean``, the PSNRs to print, one per non-clean panel
        (input first), e.g. the scores a tool reported; measured here with
        :func:`erlrestore.metrics.psnr_ssim` on ``channel`` and
        ``crop_border`` when not given.
      channel: ``"y"`` (BT.601 Y, the default) or ``"rgb"``: what the PSNRs
        are measured on, and so what the text names.
      max_width: see :func:`strip`.
    """
    outputs_ = list(restored) if isinstance(restored, (list, tuple)) else [restored]
    images = [degraded, *outputs_] + ([] if clean is None else [clean])
    if labels is None:
        names = ["restored"] if len(outputs_) == 1 else [f"restored {i}" for i in range(1, len(outputs_) + 1)]
        labels = ["input", *names] + ([] if clean is None else ["clean"])
    labels = [_lines(label) for label in labels]
    if len(labels) != len(images):
        raise ValueError(f"{len(labels)} labels for {len(images)} panels")
    if clean is not None:
        measured = images[:-1]
        if psnrs is None:
            from erlrestore import metrics  # imports TensorFlow: only when there is something to measure

            psnrs = [metrics.psnr_ssim(image, clean, crop_border, channel)[0] for image in measured]
        if len(psnrs) != len(measured):
            raise ValueError(f"{len(psnrs)} PSNRs for {len(measured)} panels compared with the clean image")
        labels = [lines + [psnr_text(psnr, channel)] for lines, psnr in zip(labels, psnrs)] + [labels[-1]]
    elif psnrs is not None:
        raise ValueError("PSNRs are measured against a clean image: give clean= too")
    return strip(images, labels, max_width=max_width)


def write_strip(path, picture, jpeg_quality=90):
    """Writes an 8-bit strip (:func:`strip`) atomically; the format follows the extension."""
    picture = np.asarray(picture)
    if picture.dtype != np.uint8:
        raise ValueError(f"write_strip takes the uint8 strips of strip(), got {picture.dtype}")
    image_files.write_image(path, picture.astype(np.float32) / np.float32(255.0), jpeg_quality=jpeg_quality)
    return os.fspath(path)


def strip_paths(inputs, folder, overwrite=False, references=(), beside=()):
    """Where the strip of each input file goes: ``folder/<input stem>.png``, under :mod:`erlrestore.outputs`' policy.

    ``references`` are further files never written over (clean images);
    ``beside`` the folders the tool writes its restored images to, which
    ``folder`` may not be (a strip would take a restored image's name).

    Raises:
      DataError before anything is written, for the refusals of
      :func:`erlrestore.outputs.output_paths`, or when ``folder`` is one of
      ``beside``.
    """
    for other in beside:
        if other is not None and os.path.realpath(other) == os.path.realpath(folder):
            raise image_files.DataError(
                f"comparison strips go to a folder of their own, not {folder}, where restored images are written"
            )
    return outputs.output_paths(inputs, folder, extension=".png", overwrite=overwrite, references=references)
