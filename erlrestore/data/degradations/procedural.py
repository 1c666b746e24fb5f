"""Procedural clean images: synthetic "photos" for demos, tests and synthetic training sets."""

import numpy as np

from erlrestore.data.degradations.common import _check_int


def _procedural_image(seed, index, height, width):
    """One synthetic "photo"; depends only on (seed, index, height, width)."""
    rng = np.random.default_rng([seed, index])
    scale = float(max(height, width))
    yy, xx = np.meshgrid(
        (np.arange(height) + 0.5) / scale, (np.arange(width) + 0.5) / scale, indexing="ij"
    )
    # Background: a two-colour gradient along a random direction ...
    c0, c1 = rng.uniform(0.1, 0.9, size=(2, 3))
    phi = rng.uniform(0, 2 * np.pi)
    s = xx * np.cos(phi) + yy * np.sin(phi)
    s = (s - s.min()) / max(s.max() - s.min(), 1e-9)
    image = c0 * (1 - s[..., None]) + c1 * s[..., None]
    # ... with soft low-frequency shading.
    for _ in range(2):
        f = rng.uniform(0.5, 2.0, size=2) * 2 * np.pi
        image += rng.uniform(0.03, 0.08) * np.sin(f[0] * xx + f[1] * yy + rng.uniform(0, 6.3))[..., None]

    # Shapes with anti-aliased edges: alpha = clip(0.5 - signed distance in pixels, 0, 1).
    for _ in range(int(rng.integers(3, 7))):
        kind = rng.choice(["disk", "ellipse", "rectangle"])
        cx, cy = rng.uniform(0.05, 0.95, size=2) * np.array([width, height]) / scale
        size = rng.uniform(0.08, 0.3)
        rot = rng.uniform(0, np.pi)
        qx = (xx - cx) * np.cos(rot) + (yy - cy) * np.sin(rot)
        qy = -(xx - cx) * np.sin(rot) + (yy - cy) * np.cos(rot)
        if kind == "disk":
            sd = np.hypot(qx, qy) - size
        elif kind == "ellipse":
            a, b = size, size * rng.uniform(0.3, 0.9)
            sd = (np.hypot(qx / a, qy / b) - 1.0) * b
        else:
            a, b = size, size * rng.uniform(0.3, 1.0)
            sd = np.maximum(np.abs(qx) - a, np.abs(qy) - b)
        alpha = np.clip(0.5 - sd * scale, 0.0, 1.0)[..., None]
        colour = rng.uniform(0.05, 0.95, size=3)
        shade = 1.0 + 0.25 * np.clip(qy / size, -1, 1)[..., None]  # lit from one side
        fill = colour * shade
        texture = rng.choice(["flat", "stripes", "checker"])
        period = rng.uniform(3.0, 10.0) / scale  # pixels -> normalised units
        if texture == "stripes":
            fill = fill * (1.0 + 0.2 * np.sin(2 * np.pi * qx / period))[..., None]
        elif texture == "checker":
            check = (np.floor(qx / period) + np.floor(qy / period)) % 2
            fill = fill * (0.85 + 0.3 * check)[..., None]
        image = image * (1 - alpha) + fill * alpha
    # Fine, low-amplitude texture (paper/film grain look), smooth enough to stay "clean".
    grain = rng.normal(0.0, 1.0, size=(height, width, 1))
    grain = 0.25 * (grain + np.roll(grain, 1, 0) + np.roll(grain, 1, 1) + np.roll(grain, (1, 1), (0, 1)))
    image += 0.01 * grain
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def procedural_images(count, height, width, seed=0):
    """``count`` clean-looking synthetic photos, ``[count, height, width, 3]`` float32 in [0, 1].

    Each has a two-colour background gradient with soft shading, 3-6 shapes
    (disks, ellipses, rotated rectangles) with anti-aliased edges, side
    shading and stripe/checker textures, and faint smoothed grain. NumPy,
    deterministic: image ``i`` depends only on ``(seed, i, height, width)``,
    so ``procedural_images(5, ...)[:2]`` equals ``procedural_images(2, ...)``.
    ``seed`` is a non-negative integer.
    """
    count = _check_int("count", count, 0)
    height = _check_int("height", height, 1)
    width = _check_int("width", width, 1)
    seed = _check_int("seed", seed, 0)
    out = np.empty((count, height, width, 3), np.float32)
    for i in range(count):
        out[i] = _procedural_image(seed, i, height, width)
    return out
