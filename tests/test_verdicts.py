"""The verdict rule (erlrestore.verdicts) on hand-worked examples: exact sign-flip p-values, seeds, margins."""

import math

import numpy as np
import pytest

from erlrestore import verdicts
from erlrestore.verdicts import NOT_REPRODUCED, REPRODUCED, UNDECIDED


def test_exact_two_sided_p_values_worked_by_hand():
    # [1, 2, 3, 4]: sum 10; only all-plus and all-minus reach |sum| >= 10 among 16 patterns.
    assert verdicts.sign_flip_p_value([1, 2, 3, 4]) == 2 / 16
    # [1..5]: one-sided it would be 1/32 = 0.031 (below 0.05); two-sided it is 2/32.
    assert verdicts.sign_flip_p_value([1, 2, 3, 4, 5]) == 2 / 32
    # [1, 2, 3, -0.5, 4, 5]: sum 14.5; patterns with sum >= 14.5 are the observed one and the one with
    # +0.5 (15.5), every other flip loses at least 2 * 0.5 + ... -> 2 per side, 4 of 64.
    assert verdicts.sign_flip_p_value([1, 2, 3, -0.5, 4, 5]) == 4 / 64
    # Equal differences: ties with the observed statistic count (no float rounding lets them slip).
    assert verdicts.sign_flip_p_value([0.1] * 6) == 2 / 64
    # A difference of zero changes nothing: [0, 1, 2] -> patterns of (1, 2) are {3, 1, -1, -3}, doubled by 0's sign.
    assert verdicts.sign_flip_p_value([0.0, 1.0, 2.0]) == 4 / 8
    assert verdicts.sign_flip_p_value([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError):
        verdicts.sign_flip_p_value([])
    with pytest.raises(ValueError):
        verdicts.sign_flip_p_value([1.0, math.nan])


def test_monte_carlo_above_twenty_images_is_seeded_and_close_to_exact():
    rng = np.random.default_rng(3)
    d = rng.normal(0.3, 1.0, size=22)
    exact = verdicts.sign_flip_p_value(d, exact_max=22)
    first = verdicts.sign_flip_p_value(d)
    assert first == verdicts.sign_flip_p_value(d)  # same draws every time
    assert abs(first - exact) < 0.01
    # Monte Carlo p-values are (1 + hits) / (1 + draws): never zero.
    small = verdicts.sign_flip_p_value(np.full(21, 2.0), draws=999)
    assert small == pytest.approx(1 / 1000)
    assert verdicts.sign_flip_p_value(d, draws=999) * 1000 == pytest.approx(round(
        verdicts.sign_flip_p_value(d, draws=999) * 1000))
    # Twenty images are still exact: a multiple of 2**-20.
    p20 = verdicts.sign_flip_p_value(d[:20])
    assert p20 * 2 ** 20 == pytest.approx(round(p20 * 2 ** 20))


def test_exact_sign_test():
    assert verdicts.sign_test_p_value(9, 1) == 2 * (10 + 1) / 1024
    assert verdicts.sign_test_p_value(5, 5) == 1.0
    assert verdicts.sign_test_p_value(0, 0) == 1.0
    assert verdicts.sign_test_p_value(0, 6) == 2 / 64


def test_every_seed_positive_but_four_images_is_undecided():
    evidence = verdicts.better_verdict([[1, 2, 3, 4]] * 3)
    assert evidence.verdict == UNDECIDED
    assert evidence.p_value == 0.125
    assert evidence.agreeing == 3
    assert "p = 0.125" in evidence.reason


def test_reproduced_needs_every_seed_and_the_test():
    d = [[1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]]  # image means 1.5 .. 5.5
    evidence = verdicts.better_verdict(d, seeds=(0, 1, 2))
    assert evidence.verdict == REPRODUCED
    assert evidence.p_value == 2 / 64
    assert evidence.seed_means == (3.5, 3.5, 3.5) and evidence.mean == 3.5 and evidence.std == 0.0
    assert evidence.n_images == 6 and evidence.seeds == (0, 1, 2)
    # Five images can never reach 0.05 two-sided (2/32), even with every sign right.
    assert verdicts.better_verdict([[1, 2, 3, 4, 5]] * 3).verdict == UNDECIDED
    # The same rows with one image going the other way: p = 4/64 > 0.05.
    assert verdicts.better_verdict([[1, 2, 3, -0.5, 4, 5]] * 3).verdict == UNDECIDED


def test_not_reproduced_is_the_mirror_image():
    d = -np.array([[1, 2, 3, 4, 5, 6], [2, 1, 4, 3, 6, 5], [1.5, 1.5, 3.5, 3.5, 5.5, 5.5]])
    evidence = verdicts.better_verdict(d)
    assert evidence.verdict == NOT_REPRODUCED
    assert evidence.agreeing == 0 and evidence.mean == -3.5


def test_seeds_that_disagree_are_undecided_however_strong_the_average():
    d = [[3.0] * 8, [3.0] * 8, [-0.5] * 8]  # the seed-averaged differences are all +1.83: p = 2/256
    evidence = verdicts.better_verdict(d)
    assert evidence.p_value == 2 / 256
    assert evidence.verdict == UNDECIDED
    assert evidence.agreeing == 2
    assert "disagree" in evidence.reason
    # ... and a seed with no difference at all does not count as agreeing either.
    assert verdicts.better_verdict([[3.0] * 8, [3.0] * 8, [0.0] * 8]).verdict == UNDECIDED


def test_fewer_than_three_seeds_is_undecided():
    d = [[1, 2, 3, 4, 5, 6]] * 2
    evidence = verdicts.better_verdict(d)
    assert evidence.verdict == UNDECIDED and "2 seed(s)" in evidence.reason
    assert verdicts.better_verdict(d, min_seeds=2).verdict == REPRODUCED


def test_no_drop_and_similar_claims_use_the_margin():
    margin = verdicts.EQUIVALENCE_MARGIN_DB
    slightly_worse = np.full((3, 8), -0.2)  # A is 0.2 dB under B: no drop beyond the margin
    assert verdicts.verdict("no_worse", slightly_worse).verdict == REPRODUCED
    assert verdicts.verdict("no_worse", np.full((3, 8), -1.0)).verdict == NOT_REPRODUCED
    assert verdicts.verdict("no_worse", np.full((3, 8), -margin)).verdict == UNDECIDED  # on the margin: neither
    close = np.tile([0.1, -0.1, 0.2, -0.2, 0.05, -0.05, 0.0, 0.1], (3, 1))
    assert verdicts.verdict("similar", close).verdict == REPRODUCED
    apart = verdicts.verdict("similar", np.full((3, 8), 1.0))
    assert apart.verdict == NOT_REPRODUCED and "A is better" in apart.reason
    assert verdicts.verdict("similar", np.full((3, 8), -1.0)).reason.startswith("B is better")
    assert verdicts.verdict("similar", close[:2]).verdict == UNDECIDED


def test_more_than_half_of_the_images():
    ten = np.array([[1.0] * 9 + [-1.0]] * 3)
    evidence = verdicts.verdict("majority", ten)
    assert evidence.verdict == REPRODUCED and evidence.p_value == 22 / 1024
    assert verdicts.verdict("majority", -ten).verdict == NOT_REPRODUCED
    one_seed_at_half = ten.copy()
    one_seed_at_half[2, :5] = -0.1  # seed 2: 4 of 10 better; the seed average is still positive on 9 images
    mixed = verdicts.verdict("majority", one_seed_at_half)
    assert mixed.verdict == UNDECIDED and mixed.agreeing == 2
    with pytest.raises(ValueError, match="unknown claim kind"):
        verdicts.verdict("worse", ten)


def test_paired_differences_pair_seeds_and_images_by_name():
    a = {0: {"x.png": 30.0, "y.png": 31.0}, 1: {"x.png": 29.0, "y.png": 30.0}, 5: {"x.png": 1.0, "y.png": 1.0}}
    b = {0: {"y.png": 30.5, "x.png": 29.0}, 1: {"x.png": 29.5, "y.png": 29.0}, 2: {"x.png": 0.0, "y.png": 0.0}}
    seeds, names, d = verdicts.paired_differences(a, b)
    assert seeds == (0, 1) and names == ("x.png", "y.png")
    np.testing.assert_allclose(d, [[1.0, 0.5], [-0.5, 1.0]])
    with pytest.raises(ValueError, match="different images"):
        verdicts.paired_differences({0: {"x.png": 1.0}}, {0: {"z.png": 1.0}})
    with pytest.raises(ValueError, match="no seed in common"):
        verdicts.paired_differences({0: {"x.png": 1.0}}, {1: {"x.png": 1.0}})


def test_combining_test_sets():
    assert verdicts.combine([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert verdicts.combine([NOT_REPRODUCED, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert verdicts.combine([REPRODUCED, UNDECIDED]) == UNDECIDED
    assert verdicts.combine([REPRODUCED, NOT_REPRODUCED]) == UNDECIDED
    assert verdicts.combine([]) == verdicts.NOT_RUN
