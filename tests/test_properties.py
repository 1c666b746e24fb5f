"""Property-based tests (hypothesis) of the metrics and of aligned training crops.

Hand-picked golden values live in test_metrics.py and test_pipeline.py; here
hypothesis looks for counter-examples to invariants that must hold for every
input: symmetry, when PSNR is infinite, the range of SSIM, what ``crop_border``
does, dtype handling, the TF twins' documented accuracy, and that a training
crop of the input always comes from the same window (and the same flip or
rotation) as the crop of its target.

Every test runs derandomized and without an example database, so a run in CI
sees exactly the examples a run here sees.
"""

import contextlib
import math
import os
import tempfile

import cv2
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from erlrestore import color, inference, metrics
from erlrestore.data.pairing import Pair
from erlrestore.data.pipeline import pad_to_min_size, train_dataset

# Reproducible: the same examples on every run and machine, nothing stored.
FIXED = settings(
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def fixed(max_examples):
    return settings(FIXED, max_examples=max_examples)


MAX_SIDE = 40
SSIM_MIN = metrics.SSIM_WINDOW  # SSIM needs at least 11x11 pixels after cropping
# BT.601 weights in thousandths: integer arithmetic gives the *exact* Y of
# uint8 pixels (up to a common factor), an oracle independent of float rounding.
Y_WEIGHTS_INT = np.array([65481, 128553, 24966], dtype=np.int64)
# A change of colour that leaves the exact Y alone: 15*65481 - 9*128553 + 7*24966 = 0.
Y_METAMER_STEP = np.array([15, -9, 7], dtype=np.int64)


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------


def _values(dtype):
    if dtype == np.uint8:
        return st.integers(0, 255)
    return st.floats(0.0, 1.0, width=np.dtype(dtype).itemsize * 8)


@st.composite
def rgb_image(draw, height, width, dtype):
    """Sparse adversarial arrays (hypothesis' fill + a few pixels), dense noise,
    black/white noise, or nearly flat (where float32 SSIM loses precision)."""
    kind = draw(st.sampled_from(["sparse", "dense", "binary", "flat"]))
    shape = (height, width, 3)
    if kind == "sparse":
        return draw(hnp.arrays(dtype, shape, elements=_values(dtype)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "dense":
        unit = rng.random(shape)
    elif kind == "binary":
        unit = (rng.random(shape) > 0.5).astype(np.float64)
    else:
        level = draw(st.floats(0.0, 1.0))
        unit = np.clip(level + 0.01 * rng.standard_normal(shape), 0.0, 1.0)
    if dtype == np.uint8:
        return np.rint(unit * 255).astype(np.uint8)
    return unit.astype(dtype)


@st.composite
def image_pairs(draw, min_side=1, dtype=None, shape=None):
    """(a, b): b is a, a few pixels of a changed, a plus noise, 1 - a, or unrelated."""
    if dtype is None:
        dtype = draw(st.sampled_from([np.uint8, np.float64]))
    if shape is None:
        shape = (draw(st.integers(min_side, MAX_SIDE)), draw(st.integers(min_side, MAX_SIDE)))
    height, width = shape
    a = draw(rgb_image(height, width, dtype))
    how = draw(st.sampled_from(["same", "edits", "noise", "negative", "unrelated"]))
    if how == "same":
        b = a.copy()
    elif how == "edits":
        b = a.copy()
        edits = draw(
            st.lists(
                st.tuples(st.integers(0, height - 1), st.integers(0, width - 1), st.integers(0, 2), _values(dtype)),
                min_size=1,
                max_size=6,
            )
        )
        for i, j, c, v in edits:
            b[i, j, c] = v
    elif how == "noise":
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        sigma = draw(st.sampled_from([1e-3, 0.02, 0.3]))
        unit = np.clip(a / (255.0 if dtype == np.uint8 else 1.0) + sigma * rng.standard_normal(a.shape), 0, 1)
        b = np.rint(unit * 255).astype(np.uint8) if dtype == np.uint8 else unit.astype(dtype)
    elif how == "negative":
        b = (255 - a) if dtype == np.uint8 else (1.0 - a).astype(dtype)
    else:
        b = draw(rgb_image(height, width, dtype))
    return a, b


def crop_borders(shape, min_left=1):
    """Borders that leave at least ``min_left`` pixels on each axis."""
    return st.integers(0, max(0, (min(shape[:2]) - min_left) // 2))


def crop(x, k):
    return x[k : x.shape[0] - k, k : x.shape[1] - k]


def measured_planes(x, k, y_channel):
    """What the metrics compare, per their documentation: 0-255 scale, cropped, Y or RGB."""
    x = crop(metrics.to_255(x), k)
    return color.rgb_to_y(x / metrics.PEAK) if y_channel else x


def exact_y(x8):
    """1000 * 255 * (Y - 16) of uint8 RGB pixels, computed exactly in integers."""
    return x8.astype(np.int64) @ Y_WEIGHTS_INT


METRICS = {"psnr": metrics.psnr, "ssim": metrics.ssim}


# ---------------------------------------------------------------------------
# Metrics: symmetry, identity, range
# ---------------------------------------------------------------------------


@fixed(80)
@given(data=st.data(), pair=image_pairs(min_side=SSIM_MIN), y_channel=st.booleans())
def test_psnr_and_ssim_are_symmetric(data, pair, y_channel):
    a, b = pair
    k = data.draw(crop_borders(a.shape, SSIM_MIN), label="crop_border")
    assert metrics.psnr(a, b, k, y_channel) == metrics.psnr(b, a, k, y_channel)
    assert metrics.ssim(a, b, k, y_channel) == pytest.approx(metrics.ssim(b, a, k, y_channel), abs=1e-12)


@fixed(120)
@given(data=st.data(), pair=image_pairs(), y_channel=st.booleans())
def test_psnr_is_inf_exactly_when_the_measured_planes_are_identical(data, pair, y_channel):
    # "Identical" is what the function measures: the cropped images on the 0-255
    # scale (y_channel=False), or their float64 BT.601 Y planes (y_channel=True).
    # Two different RGB images can share a Y plane; see the metamer test below.
    a, b = pair
    k = data.draw(crop_borders(a.shape), label="crop_border")
    value = metrics.psnr(a, b, k, y_channel)
    identical = np.array_equal(measured_planes(a, k, y_channel), measured_planes(b, k, y_channel))
    assert (value == math.inf) == identical
    if not identical:
        assert math.isfinite(value)
    if np.array_equal(crop(a, k), crop(b, k)):  # equal RGB => equal Y as well
        assert value == math.inf


@fixed(100)
@given(data=st.data(), pair=image_pairs(dtype=np.uint8))
def test_uint8_psnr_y_against_exact_integer_y(data, pair):
    # For uint8 the exact Y is an integer combination of R, G, B: a float-free
    # oracle. A different exact Y anywhere must give a finite PSNR; equal exact
    # Y gives inf, or (float64 rounding of different RGB) a value far above
    # anything a restoration reaches.
    a, b = pair
    k = data.draw(crop_borders(a.shape), label="crop_border")
    value = metrics.psnr_y(a, b, k)
    if not np.array_equal(exact_y(crop(a, k)), exact_y(crop(b, k))):
        assert math.isfinite(value)
    else:
        assert value == math.inf or value > 250.0
    if np.array_equal(crop(a, k), crop(b, k)):
        assert metrics.psnr(a, b, k, y_channel=False) == math.inf
    else:
        assert math.isfinite(metrics.psnr(a, b, k, y_channel=False))


@fixed(40)
@given(
    base=hnp.arrays(np.uint8, st.tuples(st.integers(SSIM_MIN, 24), st.integers(SSIM_MIN, 24), st.just(3)),
                    elements=st.integers(20, 230)),
    mask=st.data(),
)
def test_y_metamers_differ_in_rgb_but_not_in_y(base, mask):
    # b differs from a by Y_METAMER_STEP on some pixels: a different colour, the same exact Y.
    assert int(Y_METAMER_STEP @ Y_WEIGHTS_INT) == 0
    h, w = base.shape[:2]
    changed = mask.draw(hnp.arrays(np.bool_, (h, w)), label="changed")
    assume(changed.any())
    a = base
    b = (base.astype(np.int64) + changed[..., None] * Y_METAMER_STEP).astype(np.uint8)
    assert math.isfinite(metrics.psnr(a, b, y_channel=False))
    assert metrics.ssim(a, b, y_channel=False) < 1.0
    # Y agrees up to float64 rounding of the weighted sums.
    assert metrics.psnr_y(a, b) == math.inf or metrics.psnr_y(a, b) > 250.0
    assert metrics.ssim_y(a, b) == pytest.approx(1.0, abs=1e-9)


@fixed(80)
@given(data=st.data(), pair=image_pairs(min_side=SSIM_MIN), y_channel=st.booleans())
def test_ssim_lies_in_minus_one_to_one_and_is_one_on_identical_images(data, pair, y_channel):
    a, b = pair
    k = data.draw(crop_borders(a.shape, SSIM_MIN), label="crop_border")
    value = metrics.ssim(a, b, k, y_channel)
    assert -1.0 - 1e-12 <= value <= 1.0 + 1e-12
    assert metrics.ssim(a, a, k, y_channel) == pytest.approx(1.0, abs=1e-12)
    assert metrics.psnr(a, a, k, y_channel) == math.inf


# ---------------------------------------------------------------------------
# Metrics: crop_border
# ---------------------------------------------------------------------------


@fixed(80)
@given(
    data=st.data(),
    pair=image_pairs(min_side=SSIM_MIN),
    y_channel=st.booleans(),
    name=st.sampled_from(sorted(METRICS)),
)
def test_crop_border_equals_measuring_the_precropped_images(data, pair, y_channel, name):
    a, b = pair
    k = data.draw(crop_borders(a.shape, SSIM_MIN), label="crop_border")
    metric = METRICS[name]
    assert metric(a, b, k, y_channel) == metric(crop(a, k), crop(b, k), 0, y_channel)


@fixed(80)
@given(
    data=st.data(),
    pair=image_pairs(min_side=SSIM_MIN),
    y_channel=st.booleans(),
    name=st.sampled_from(sorted(METRICS)),
)
def test_pixels_in_the_border_do_not_change_the_metric(data, pair, y_channel, name):
    a, b = pair
    k = data.draw(st.integers(1, max(1, (min(a.shape[:2]) - SSIM_MIN) // 2)), label="crop_border")
    assume(min(a.shape[:2]) - 2 * k >= SSIM_MIN)
    h, w = a.shape[:2]
    border = np.ones((h, w), bool)
    border[k : h - k, k : w - k] = False
    # Replace every border pixel of both images with unrelated values.
    noise_a = data.draw(rgb_image(h, w, a.dtype), label="new border of a")
    noise_b = data.draw(rgb_image(h, w, a.dtype), label="new border of b")
    a2, b2 = a.copy(), b.copy()
    a2[border], b2[border] = noise_a[border], noise_b[border]
    metric = METRICS[name]
    assert metric(a2, b2, k, y_channel) == metric(a, b, k, y_channel)


# ---------------------------------------------------------------------------
# Metrics: Y vs RGB, dtypes
# ---------------------------------------------------------------------------


@fixed(50)
@given(data=st.data(), pair=image_pairs(dtype=np.float64))
def test_grey_images_psnr_y_is_rgb_psnr_plus_the_y_range_gain(data, pair):
    # On grey pixels (R = G = B = v) Y = 16 + 219 v and every channel is 255 v,
    # so the Y error is 219/255 of the RGB error: PSNR_Y = PSNR_RGB + 20 log10(255/219).
    a, b = (np.repeat(x[..., :1], 3, axis=-1) for x in pair)
    k = data.draw(crop_borders(a.shape), label="crop_border")
    y, rgb = metrics.psnr(a, b, k, y_channel=True), metrics.psnr(a, b, k, y_channel=False)
    if rgb == math.inf:
        assert y == math.inf
    elif y != math.inf:  # (Y can round two grey levels 1 ulp apart together)
        assert y == pytest.approx(rgb + 20 * math.log10(255.0 / 219.0), abs=1e-6)


@fixed(60)
@given(data=st.data(), pair=image_pairs(min_side=SSIM_MIN, dtype=np.uint8), y_channel=st.booleans())
def test_uint8_uint16_and_float_inputs_measure_the_same(data, pair, y_channel):
    # The module promises float in [0, 1], uint8 in 0-255 and uint16 in 0-65535.
    a8, b8 = pair
    k = data.draw(crop_borders(a8.shape, SSIM_MIN), label="crop_border")
    variants = {
        "uint8": (a8, b8),
        "float64": (a8 / 255.0, b8 / 255.0),
        "float32": ((a8 / 255.0).astype(np.float32), (b8 / 255.0).astype(np.float32)),
        "uint16": (a8.astype(np.uint16) * 257, b8.astype(np.uint16) * 257),
    }
    reference_psnr = metrics.psnr(a8, b8, k, y_channel)
    reference_ssim = metrics.ssim(a8, b8, k, y_channel)
    rgb_equal = np.array_equal(crop(a8, k), crop(b8, k))
    y_equal = np.array_equal(exact_y(crop(a8, k)), exact_y(crop(b8, k)))
    # float32 holds v/255 to about 3e-8, i.e. 1e-5 on the 0-255 scale; the others are exact to 1e-13.
    tolerance = {"float32": (1e-3, 1e-6)}
    for name, (a, b) in variants.items():
        psnr_tol, ssim_tol = tolerance.get(name, (1e-6, 1e-9))
        value = metrics.psnr(a, b, k, y_channel)
        if rgb_equal:
            assert value == math.inf, name
        elif y_channel and y_equal:  # metamers: inf or rounding noise, in every dtype
            assert value == math.inf or value > 250.0, name
        else:
            assert value == pytest.approx(reference_psnr, abs=psnr_tol), name
        assert metrics.ssim(a, b, k, y_channel) == pytest.approx(reference_ssim, abs=ssim_tol), name


@fixed(60)
@given(data=st.data(), pair=image_pairs(min_side=SSIM_MIN), channel=st.integers(0, 2))
def test_rgb_metrics_of_a_one_channel_difference(data, pair, channel):
    # Only one channel differs: RGB PSNR's MSE is that channel's MSE / 3, so
    # PSNR_RGB = PSNR of the channel + 10 log10(3); RGB SSIM = (1 + 1 + SSIM of the channel) / 3,
    # the channel's SSIM being RGB SSIM of the grey images made of that channel.
    a, other = pair
    b = a.copy()
    b[..., channel] = other[..., channel]
    k = data.draw(crop_borders(a.shape, SSIM_MIN), label="crop_border")
    diff = crop(metrics.to_255(a[..., channel]) - metrics.to_255(b[..., channel]), k)
    mse = float(np.mean(diff**2))
    psnr_rgb, ssim_rgb = metrics.psnr_ssim(a, b, k, channel="rgb")
    if mse == 0:
        assert psnr_rgb == math.inf
    else:
        assert psnr_rgb == pytest.approx(10 * math.log10(255.0**2 / mse) + 10 * math.log10(3.0), abs=1e-9)
    grey_a, grey_b = (np.repeat(x[..., channel : channel + 1], 3, axis=-1) for x in (a, b))
    assert ssim_rgb == pytest.approx((2 + metrics.ssim_rgb(grey_a, grey_b, k)) / 3, abs=1e-12)


def _not_equivariant(batch):
    """A fixed map that no flip or rotation commutes with: a one-pixel shift plus a ramp along the width."""
    batch = np.asarray(batch, dtype=np.float32)
    shifted = np.zeros_like(batch)
    shifted[:, :, 1:] = batch[:, :, :-1]
    ramp = np.linspace(0.0, 0.1, batch.shape[2], dtype=np.float32)[None, None, :, None]
    return 0.6 * batch + 0.3 * shifted + ramp


@fixed(60)
@given(height=st.integers(1, 14), width=st.integers(1, 14), transform=st.sampled_from(inference.ENSEMBLE_TRANSFORMS),
       seed=st.integers(0, 2**16), tile=st.sampled_from([6, 16]))
def test_the_self_ensemble_of_any_model_commutes_with_flips_and_rotations(height, width, transform, seed, tile):
    # ensemble(T x) = mean_g g^-1 f(g T x) = T mean_h h^-1 f(h x) = T ensemble(x), h = g T;
    # with tiling (tile 6: several tiles, non-square ones after rotation) as without.
    image = np.random.default_rng(seed).random((height, width, 3), dtype=np.float32)
    ensembled = inference.restore_tiled(_not_equivariant, image, tile=tile, overlap=2, align=1, self_ensemble=True)
    moved = np.ascontiguousarray(inference.transform_image(image, transform))
    ensembled_moved = inference.restore_tiled(_not_equivariant, moved, tile=tile, overlap=2, align=1,
                                              self_ensemble=True)
    assert ensembled_moved.shape == moved.shape
    np.testing.assert_allclose(ensembled_moved, inference.transform_image(ensembled, transform), atol=1e-6)
    assert np.all((ensembled >= 0) & (ensembled <= 1))
    # An equivariant (per-pixel) model's ensemble is its plain output.
    np.testing.assert_allclose(
        inference.restore_tiled(lambda b: np.asarray(b) ** 2, image, tile=tile, overlap=2, align=1,
                                self_ensemble=True),
        image**2, atol=1e-6,
    )


# ---------------------------------------------------------------------------
# Metrics: the TensorFlow twins agree with the float64 reference
# ---------------------------------------------------------------------------


@st.composite
def float32_batches(draw):
    """(a, b) of shape [B, H, W, 3] float32, every image pair drawn like image_pairs."""
    count = draw(st.integers(1, 3))
    height = draw(st.integers(SSIM_MIN, 32))
    width = draw(st.integers(SSIM_MIN, 32))
    pairs = [draw(image_pairs(dtype=np.float32, shape=(height, width))) for _ in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


@fixed(40)
@given(data=st.data(), batch=float32_batches())
def test_tf_twins_agree_with_numpy_within_the_documented_accuracy(data, batch):
    # Module docstring: the TF versions agree with NumPy "to about 1e-3 dB and
    # 1e-4 SSIM in float32". Compare on the float32 values TF actually saw.
    a, b = batch
    k = data.draw(crop_borders(a.shape[1:], SSIM_MIN), label="crop_border")
    psnr_tf = metrics.psnr_y_tf(a, b, crop_border=k).numpy()
    ssim_tf = metrics.ssim_y_tf(a, b, crop_border=k).numpy()
    assert psnr_tf.shape == ssim_tf.shape == (a.shape[0],)
    for i in range(a.shape[0]):
        reference = metrics.psnr_y(a[i], b[i], k)
        if reference == math.inf:
            assert psnr_tf[i] == np.inf
        else:
            assert psnr_tf[i] == pytest.approx(reference, abs=1e-3)
        assert ssim_tf[i] == pytest.approx(metrics.ssim_y(a[i], b[i], k), abs=1e-4)


# ---------------------------------------------------------------------------
# Aligned cropping in train_dataset
# ---------------------------------------------------------------------------
#
# Every pixel carries its own (row, column) and its image's tag, encoded
# differently in input and target, so each crop can be decoded on its own:
#   target: R = row,       G = column,     B = tag
#   input:  R = 255 - col, G = row + 100,  B = 200 - tag
# Decoding both crops must give the same coordinates at every pixel (same
# window, same flip/rotation), and those coordinates must form a window of
# the (reflect-padded) image, flipped/rotated only when augment=True.


def encode(height, width, tag):
    rows, cols = np.mgrid[0:height, 0:width]
    tags = np.full_like(rows, tag)
    target = np.stack([rows, cols, tags], axis=-1).astype(np.uint8)
    inp = np.stack([255 - cols, rows + 100, 200 - tags], axis=-1).astype(np.uint8)
    return inp, target


def decode(crop_01, is_input):
    """(rows, cols, tags) of a float crop in [0, 1]."""
    v = np.rint(np.asarray(crop_01, np.float64) * 255).astype(np.int64)
    if is_input:
        return v[..., 1] - 100, 255 - v[..., 0], 200 - v[..., 2]
    return v[..., 0], v[..., 1], v[..., 2]


def dihedral(x):
    """The 8 flips / 90-degree rotations of a 2-D array, identity first."""
    out = []
    for k in range(4):
        r = np.rot90(x, k)
        out += [r, np.fliplr(r)]
    return out


def window_transforms(rows, cols, height, width):
    """Indices (into ``dihedral``) of the transforms under which the crop is a window
    of the ``height`` x ``width`` image reflect-padded to the crop size."""
    size = rows.shape[0]
    pad_h, pad_w = max(size - height, 0), max(size - width, 0)
    grid_r, grid_c = np.mgrid[0:height, 0:width]
    pads = ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
    padded_r, padded_c = np.pad(grid_r, pads, mode="reflect"), np.pad(grid_c, pads, mode="reflect")
    windows_r = np.lib.stride_tricks.sliding_window_view(padded_r, (size, size))
    windows_c = np.lib.stride_tricks.sliding_window_view(padded_c, (size, size))
    found = []
    for index, (r, c) in enumerate(zip(dihedral(rows), dihedral(cols))):
        hit = (windows_r == r).all(axis=(2, 3)) & (windows_c == c).all(axis=(2, 3))
        if hit.any():
            found.append(index)
    return found


def write_png(path, rgb_u8):
    assert cv2.imwrite(path, np.ascontiguousarray(rgb_u8[..., ::-1]))
    return path


@contextlib.contextmanager
def make_source(layout, images):
    """A train_dataset input holding ``images`` [(input, target) uint8]."""
    if layout == "generic":
        elements = [(i / np.float32(255), t / np.float32(255), f"img{n}") for n, (i, t) in enumerate(images)]
        spec = (tf.TensorSpec([None, None, 3]), tf.TensorSpec([None, None, 3]), tf.TensorSpec([], tf.string))
        yield tf.data.Dataset.from_generator(lambda: iter(elements), output_signature=spec)
        return
    with tempfile.TemporaryDirectory() as folder:
        pairs = []
        for n, (inp, tgt) in enumerate(images):
            if layout == "files":
                input_path = write_png(os.path.join(folder, f"in{n}.png"), inp)
                target_path = write_png(os.path.join(folder, f"gt{n}.png"), tgt)
                pairs.append(Pair(input_path, target_path))
            else:  # one file, input on the left half
                path = write_png(os.path.join(folder, f"sbs{n}.png"), np.concatenate([inp, tgt], axis=1))
                pairs.append(Pair(path, path, side_by_side="input_left"))
        yield pairs


@st.composite
def crop_setups(draw):
    crop_size = draw(st.integers(1, 20))
    pad_small = draw(st.booleans())
    low = 1 if pad_small else crop_size
    count = draw(st.integers(1, 3))
    sizes = [(draw(st.integers(low, 32)), draw(st.integers(low, 32))) for _ in range(count)]
    return dict(
        sizes=sizes,
        crop_size=crop_size,
        pad_small=pad_small,
        layout=draw(st.sampled_from(["generic", "files", "side_by_side"])),
        augment=draw(st.booleans()),
        batch_size=draw(st.integers(1, 3)),
        seed=draw(st.integers(0, 2**31 - 2)),
        cache=draw(st.booleans()),
        deterministic=draw(st.booleans()),
    )


@fixed(40)
@given(setup=crop_setups())
@example(setup=dict(sizes=[(5, 1), (2, 9)], crop_size=7, pad_small=True, layout="generic", augment=True,
                    batch_size=2, seed=0, cache=False, deterministic=True))
@example(setup=dict(sizes=[(13, 17)], crop_size=13, pad_small=False, layout="side_by_side", augment=True,
                    batch_size=3, seed=1, cache=True, deterministic=False))
def test_input_and_target_crops_come_from_the_same_window(setup):
    sizes, size = setup["sizes"], setup["crop_size"]
    images = [encode(h, w, tag=10 * (n + 1)) for n, (h, w) in enumerate(sizes)]
    with make_source(setup["layout"], images) as source:
        ds = train_dataset(
            source,
            crop_size=size,
            batch_size=setup["batch_size"],
            augment=setup["augment"],
            seed=setup["seed"],
            cache=setup["cache"],
            pad_small=setup["pad_small"],
            deterministic=setup["deterministic"],
        )
        batches = [(i.numpy(), t.numpy()) for i, t in ds.take(3)]
    assert len(batches) == 3
    for inp, tgt in batches:
        assert inp.shape == tgt.shape == (setup["batch_size"], size, size, 3)
        for crop_in, crop_tgt in zip(inp, tgt):
            rows_i, cols_i, tags_i = decode(crop_in, is_input=True)
            rows_t, cols_t, tags_t = decode(crop_tgt, is_input=False)
            # Same source image, same window, same orientation, pixel by pixel.
            np.testing.assert_array_equal(tags_i, tags_t)
            np.testing.assert_array_equal(rows_i, rows_t)
            np.testing.assert_array_equal(cols_i, cols_t)
            tags = np.unique(tags_t)
            assert len(tags) == 1 and tags[0] % 10 == 0 and 1 <= tags[0] // 10 <= len(sizes)
            height, width = sizes[tags[0] // 10 - 1]
            transforms = window_transforms(rows_t, cols_t, height, width)
            assert transforms, "the crop is no window of its (padded) image"
            if not setup["augment"]:
                assert 0 in transforms, "a crop was flipped/rotated without augment"


@fixed(50)
@given(height=st.integers(1, 12), width=st.integers(1, 12), min_size=st.integers(1, 30))
def test_pad_to_min_size_is_numpy_reflect_repeated(height, width, min_size):
    image = np.arange(height * width * 2, dtype=np.float32).reshape(height, width, 2)
    got = pad_to_min_size(image, min_size).numpy()
    pad_h, pad_w = max(min_size - height, 0), max(min_size - width, 0)
    want = np.pad(image, ((pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(got, want)
