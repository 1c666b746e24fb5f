"""Whether a claim of a paper holds in our runs: a three-way verdict with a margin.

A claim such as "A beats B on PSNR" is judged from per-image PSNRs of both
rows, for every seed both rows were trained with (seed ``k`` of A is paired
with seed ``k`` of B), on one test set. With ``d[s, i]`` the PSNR of A minus
the PSNR of B on image ``i`` for seed ``s``:

* **reproduced** when (1) at least :data:`MIN_SEEDS` seeds were run, (2) the
  mean over images of ``d[s, :]`` is positive for *every* seed, and (3) a
  paired test over the test images agrees: the per-image differences
  averaged over seeds, ``d[:, i].mean()``, have a positive mean and a
  two-sided sign-flip permutation test on that mean gives ``p <= ALPHA``;
* **not reproduced** when the opposite holds: enough seeds, every seed's
  mean negative, the mean of the seed-averaged differences negative and
  ``p <= ALPHA``;
* **undecided** otherwise (too few seeds, seeds that disagree in sign, or a
  test that does not reach the level).

The permutation test (:func:`sign_flip_p_value`) flips the sign of each
image's difference independently: under the null hypothesis (no
difference between A and B, differences symmetric about zero) every one of
the ``2**n`` sign patterns is equally likely. Up to
:data:`EXACT_MAX_IMAGES` images all patterns are enumerated; above that a
seeded Monte Carlo draws :data:`MONTE_CARLO_DRAWS` patterns and returns
``(1 + hits) / (1 + draws)``, so the result is the same on every run.

Claims other than "beats" use the same rule on shifted differences:

* ``no_worse`` ("no drop from B to A"): A's PSNR is above B's minus
  :data:`EQUIVALENCE_MARGIN_DB`; the rule runs on ``d + margin``;
* ``similar`` ("A and B are about equal"): A is no worse than B and B no
  worse than A, both within the margin. Reproduced when both directions
  are reproduced, not reproduced when either is not reproduced;
* ``majority`` ("A restores more than half of the images better"): every
  seed has more than half of the images with ``d > 0``, and an exact
  two-sided sign test (binomial, ties left out) on the seed-averaged
  differences agrees; the opposite (more than half worse for every seed,
  test agreeing) is not reproduced.

A claim judged on several test sets (:func:`combine`) is reproduced only
when it is reproduced on every set, not reproduced only when it is not
reproduced on every set, and undecided otherwise.

Only NumPy is needed.
"""

import dataclasses
import math

import numpy as np

ALPHA = 0.05
MIN_SEEDS = 3
EXACT_MAX_IMAGES = 20
MONTE_CARLO_DRAWS = 100_000
MONTE_CARLO_SEED = 20191027
# "No drop" and "similar" claims: a difference smaller than this many dB counts as no difference.
EQUIVALENCE_MARGIN_DB = 0.5

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
UNDECIDED = "undecided"
NOT_RUN = "not run"

KINDS = ("better", "no_worse", "similar", "majority")

# Relative tolerance when comparing a permuted statistic with the observed one (ties count as extreme).
_TIE_TOLERANCE = 1e-9


def _signed_sums(values):
    """All ``2**len(values)`` sums ``sum(s_i * v_i)`` with ``s_i`` in {+1, -1}."""
    sums = np.zeros(1)
    for value in values:
        sums = np.concatenate([sums + value, sums - value])
    return sums


def sign_flip_p_value(differences, *, draws=MONTE_CARLO_DRAWS, seed=MONTE_CARLO_SEED,
                      exact_max=EXACT_MAX_IMAGES):
    """Two-sided p-value of the mean of ``differences`` under random sign flips.

    The share of sign patterns whose mean is at least as far from zero as
    the observed one (the observed pattern included). Exact for up to
    ``exact_max`` values (all ``2**n`` patterns, enumerated as the sums of
    two halves); above that a Monte Carlo estimate with ``draws`` patterns
    from a generator seeded with ``seed``: ``(1 + hits) / (1 + draws)``.
    """
    d = np.asarray(differences, dtype=np.float64).ravel()
    if d.size == 0:
        raise ValueError("no differences to test")
    if not np.all(np.isfinite(d)):
        raise ValueError("differences must be finite")
    observed = abs(float(d.sum()))
    threshold = observed - _TIE_TOLERANCE * max(observed, float(np.abs(d).sum()), 1.0)
    if d.size <= exact_max:
        half = d.size // 2
        first, second = _signed_sums(d[:half]), _signed_sums(d[half:])
        hits = 0
        for chunk in np.array_split(first, max(1, first.size // 1024)):
            hits += int(np.count_nonzero(np.abs(chunk[:, None] + second[None, :]) >= threshold))
        return hits / 2.0 ** d.size
    rng = np.random.default_rng(seed)
    hits, done, chunk = 0, 0, 10_000
    while done < draws:
        size = min(chunk, draws - done)
        signs = np.where(rng.random((size, d.size)) < 0.5, -1.0, 1.0)
        hits += int(np.count_nonzero(np.abs(signs @ d) >= threshold))
        done += size
    return (1 + hits) / (1 + draws)


def sign_test_p_value(positives, negatives):
    """Exact two-sided binomial sign test: ``positives`` successes of ``positives + negatives`` at 1/2."""
    m = positives + negatives
    if m == 0:
        return 1.0
    k = max(positives, negatives)
    tail = sum(math.comb(m, j) for j in range(k, m + 1)) / 2.0 ** m
    return min(1.0, 2.0 * tail)


@dataclasses.dataclass(frozen=True)
class Evidence:
    """A verdict and what it rests on (for one claim on one test set)."""

    verdict: str
    reason: str
    seeds: tuple = ()
    seed_means: tuple = ()  # mean over images of A - B, per seed (unshifted)
    mean: float = math.nan  # mean over images of the seed-averaged A - B (unshifted)
    p_value: float = math.nan
    n_images: int = 0
    agreeing: int = 0  # seeds whose own result goes the claimed way

    @property
    def std(self):
        """Standard deviation over seeds of the seeds' mean differences (sample, ddof=1); NaN for one seed."""
        if len(self.seed_means) < 2:
            return math.nan
        return float(np.std(self.seed_means, ddof=1))


def _matrix(differences):
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError("differences are seeds x images")
    return d


def _too_few(d, min_seeds):
    if d.shape[0] < min_seeds:
        return f"{d.shape[0]} seed(s); a verdict needs {min_seeds}"
    return ""


def better_verdict(differences, *, seeds=None, margin=0.0, alpha=ALPHA, min_seeds=MIN_SEEDS, **test_options):
    """The verdict on "A - B > -margin" from ``differences[seed, image]`` (A minus B, in dB).

    ``margin=0`` is "A beats B"; a positive margin is "A is no worse than B
    by more than ``margin``". See the module docstring for the rule.
    """
    d = _matrix(differences)
    seeds = tuple(range(d.shape[0])) if seeds is None else tuple(seeds)
    seed_means = tuple(float(x) for x in d.mean(axis=1))
    per_image = d.mean(axis=0)
    shifted = per_image + margin
    p = sign_flip_p_value(shifted, **test_options)
    positive = sum(1 for m in seed_means if m + margin > 0)
    negative = sum(1 for m in seed_means if m + margin < 0)
    common = dict(seeds=seeds, seed_means=seed_means, mean=float(per_image.mean()), p_value=p,
                  n_images=d.shape[1], agreeing=positive)
    few = _too_few(d, min_seeds)
    if few:
        return Evidence(UNDECIDED, few, **common)
    significant = p <= alpha
    if positive == len(seed_means) and shifted.mean() > 0 and significant:
        return Evidence(REPRODUCED, f"every seed agrees and p = {p:.3g} <= {alpha}", **common)
    if negative == len(seed_means) and shifted.mean() < 0 and significant:
        return Evidence(NOT_REPRODUCED, f"every seed has the opposite sign and p = {p:.3g} <= {alpha}", **common)
    if positive and negative or positive + negative < len(seed_means):
        return Evidence(UNDECIDED, f"seeds disagree ({positive} of {len(seed_means)} in the claimed direction)",
                        **common)
    return Evidence(UNDECIDED, f"every seed has the same sign but p = {p:.3g} > {alpha}", **common)


def similar_verdict(differences, *, seeds=None, margin=EQUIVALENCE_MARGIN_DB, **options):
    """The verdict on "|A - B| < margin": A no worse than B and B no worse than A, both within ``margin``."""
    d = _matrix(differences)
    forward = better_verdict(d, seeds=seeds, margin=margin, **options)
    backward = better_verdict(-d, seeds=seeds, margin=margin, **options)
    common = dict(seeds=forward.seeds, seed_means=forward.seed_means, mean=forward.mean,
                  p_value=max(forward.p_value, backward.p_value), n_images=forward.n_images,
                  agreeing=sum(1 for m in forward.seed_means if abs(m) < margin))
    if forward.verdict == REPRODUCED and backward.verdict == REPRODUCED:
        return Evidence(REPRODUCED, f"within {margin} dB both ways (p = {forward.p_value:.3g}, "
                        f"{backward.p_value:.3g})", **common)
    if NOT_REPRODUCED in (forward.verdict, backward.verdict):
        side = "A" if backward.verdict == NOT_REPRODUCED else "B"
        return Evidence(NOT_REPRODUCED, f"{side} is better by more than {margin} dB", **common)
    reason = forward.reason if forward.verdict != REPRODUCED else backward.reason
    return Evidence(UNDECIDED, reason, **common)


def majority_verdict(differences, *, seeds=None, alpha=ALPHA, min_seeds=MIN_SEEDS):
    """The verdict on "A is better than B on more than half of the images" (exact sign test)."""
    d = _matrix(differences)
    seeds = tuple(range(d.shape[0])) if seeds is None else tuple(seeds)
    per_image = d.mean(axis=0)
    positives, negatives = int(np.sum(per_image > 0)), int(np.sum(per_image < 0))
    p = sign_test_p_value(positives, negatives)
    better_share = (d > 0).mean(axis=1)
    worse_share = (d < 0).mean(axis=1)
    common = dict(seeds=seeds, seed_means=tuple(float(x) for x in d.mean(axis=1)), mean=float(per_image.mean()),
                  p_value=p, n_images=d.shape[1], agreeing=int(np.sum(better_share > 0.5)))
    few = _too_few(d, min_seeds)
    if few:
        return Evidence(UNDECIDED, few, **common)
    significant = p <= alpha
    if np.all(better_share > 0.5) and positives > negatives and significant:
        return Evidence(REPRODUCED, f"{positives} of {d.shape[1]} images better, every seed over half, "
                        f"p = {p:.3g}", **common)
    if np.all(worse_share > 0.5) and negatives > positives and significant:
        return Evidence(NOT_REPRODUCED, f"{negatives} of {d.shape[1]} images worse, every seed over half, "
                        f"p = {p:.3g}", **common)
    return Evidence(UNDECIDED, f"{positives} better, {negatives} worse of {d.shape[1]}; p = {p:.3g}", **common)


def verdict(kind, differences, **options):
    """Dispatches on the claim's kind (:data:`KINDS`)."""
    if kind == "better":
        return better_verdict(differences, **options)
    if kind == "no_worse":
        return better_verdict(differences, margin=options.pop("margin", EQUIVALENCE_MARGIN_DB), **options)
    if kind == "similar":
        return similar_verdict(differences, **options)
    if kind == "majority":
        return majority_verdict(differences, **options)
    raise ValueError(f"unknown claim kind {kind!r}; choose from {', '.join(KINDS)}")


def paired_differences(a_by_seed, b_by_seed):
    """(seeds, names, differences[seed, image]) from ``{seed: {image name: psnr}}`` of rows A and B.

    Seeds both rows have are paired (seed k with seed k); images must be
    the same names for every one of those seeds (the same test set).
    """
    seeds = sorted(set(a_by_seed) & set(b_by_seed))
    if not seeds:
        raise ValueError("the two rows have no seed in common")
    names = sorted(a_by_seed[seeds[0]])
    for seed in seeds:
        for side in (a_by_seed[seed], b_by_seed[seed]):
            if sorted(side) != names:
                raise ValueError(f"seed {seed}: the rows were scored on different images")
    d = np.array([[a_by_seed[s][n] - b_by_seed[s][n] for n in names] for s in seeds], dtype=np.float64)
    return tuple(seeds), tuple(names), d


def combine(verdicts):
    """One verdict over several test sets: reproduced (or not) only when every set says so."""
    verdicts = list(verdicts)
    if not verdicts:
        return NOT_RUN
    if all(v == REPRODUCED for v in verdicts):
        return REPRODUCED
    if all(v == NOT_REPRODUCED for v in verdicts):
        return NOT_REPRODUCED
    return UNDECIDED
