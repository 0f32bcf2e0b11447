"""Host side, numpy only: the RLHF evaluation read with completion length held fixed, and
Gao et al. (2022)'s over-optimisation curve fitted to gold reward against KL.

Why length: the shipped gold (`ascending`, rising adjacent pairs) can only grow with the
completion's content length (`L` content tokens hold at most `L - 1` rising pairs), and
completions are capped, so a policy can gain gold by writing longer answers alone. These
functions compare gold *at equal lengths*:

- `length_table(lengths, gold, max_length)`: count and mean gold at each content length
  `0 .. max_length`.
- `standardised_gold(lengths, gold, weights)`: mean gold re-weighted to a fixed length
  distribution (direct standardisation, as in epidemiology): `sum_l w_l * mean_gold(l)`.
  Two policies standardised to the same `weights` differ only in gold at equal lengths.
- `common_weights(length_sets, max_length, min_count)`: the pooled length distribution of
  several policies, kept only where every one of them has `min_count` completions.
- `within_length_difference(...)`: `sum_l w_l (mean_a(l) - mean_b(l))` with the weights of
  an OLS of gold on length dummies and a method indicator (`w_l ∝ n_a n_b / (n_a + n_b)`).
- `same_length_win_rate(...)`: the win rate over the prompt pairs whose two completions have
  the same length (policy and reference answer the same prompts).
- `stratified_mean_difference_ci(x, y)`: a difference of means of `[runs, strata]` scores
  (RL seeds x prepare seeds) with the runs resampled within each stratum.

Gao et al. (2022), "Scaling Laws for Reward Model Overoptimization", section 3: for RL,
`R(d) = d (alpha - beta log d)` with `d = sqrt(KL(pi || pi_init))` (nats) and `R` the gold
score relative to the initial policy (`R(0) = 0`). `fit_gao_rl(kl, gain)` is that least-squares
fit; it is linear in `(alpha, beta)` for fixed `d`. Its peak is at `d* = exp(alpha / beta - 1)`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import stats as sps


class LengthTable(NamedTuple):
    """Per content length `0 .. max_length`: how many completions and their mean gold (NaN
    where there are none)."""

    counts: np.ndarray  # [L + 1] int
    means: np.ndarray  # [L + 1] float


def length_table(lengths: np.ndarray, gold: np.ndarray, max_length: int) -> LengthTable:
    """Count and mean gold of the completions at each content length `0 .. max_length`.

    `lengths` and `gold` are `[N]` (one completion each)."""
    lengths = np.asarray(lengths).astype(int).ravel()
    gold = np.asarray(gold, np.float64).ravel()
    if lengths.shape != gold.shape:
        raise ValueError(f"lengths {lengths.shape} and gold {gold.shape} differ")
    if lengths.size and (lengths.min() < 0 or lengths.max() > max_length):
        raise ValueError(f"lengths must lie in [0, {max_length}]")
    counts = np.bincount(lengths, minlength=max_length + 1)
    sums = np.bincount(lengths, weights=gold, minlength=max_length + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return LengthTable(counts, means)


def standardised_gold(lengths: np.ndarray, gold: np.ndarray, weights: np.ndarray) -> float:
    """`sum_l weights_l * mean_gold(l)` over the lengths with weight (`weights` `[L + 1]`,
    normalised here). NaN when a weighted length has no completion."""
    w = np.asarray(weights, np.float64)
    if w.sum() <= 0:
        return float("nan")
    table = length_table(lengths, gold, len(w) - 1)
    used = w > 0
    if np.any(table.counts[used] == 0):
        return float("nan")
    return float(np.sum(w[used] * table.means[used]) / w[used].sum())


def common_weights(
    length_sets: list[np.ndarray], max_length: int, min_count: int = 1
) -> np.ndarray:
    """The pooled length distribution `[L + 1]` of `length_sets` (each set weighs by its
    number of completions), zero at every length where some set has fewer than `min_count`
    completions, renormalised to sum to 1 (all zeros if no length is shared)."""
    counts = np.stack([length_table(s, np.zeros(len(s)), max_length).counts for s in length_sets])
    pooled = counts.sum(0).astype(np.float64)
    pooled[np.any(counts < min_count, axis=0)] = 0.0
    total = pooled.sum()
    return pooled / total if total > 0 else pooled


class Difference(NamedTuple):
    """A within-length difference and the share of each side's completions it rests on."""

    value: float
    share_a: float  # fraction of A's completions at lengths B also has
    share_b: float


def within_length_difference(
    lengths_a: np.ndarray,
    gold_a: np.ndarray,
    lengths_b: np.ndarray,
    gold_b: np.ndarray,
    max_length: int,
) -> Difference:
    """Mean gold of A minus B at equal lengths: `sum_l w_l (mean_a(l) - mean_b(l))`, `w_l ∝
    n_a(l) n_b(l) / (n_a(l) + n_b(l))` — the method coefficient of the least-squares fit
    `gold ~ length dummies + [is A]`. NaN when A and B share no length."""
    ta = length_table(lengths_a, gold_a, max_length)
    tb = length_table(lengths_b, gold_b, max_length)
    na, nb = ta.counts.astype(np.float64), tb.counts.astype(np.float64)
    both = (na > 0) & (nb > 0)
    if not both.any():
        return Difference(float("nan"), 0.0, 0.0)
    w = np.where(both, na * nb / np.maximum(na + nb, 1), 0.0)
    diff = np.where(both, ta.means - tb.means, 0.0)
    return Difference(
        float(np.sum(w * diff) / w.sum()),
        float(na[both].sum() / na.sum()),
        float(nb[both].sum() / nb.sum()),
    )


def same_length_win_rate(
    gold: np.ndarray, gold_ref: np.ndarray, lengths: np.ndarray, lengths_ref: np.ndarray
) -> tuple[float, int]:
    """Win rate (ties half) over the pairs — one prompt, a completion of each policy — whose
    two completions have the same content length; `(rate, number of such pairs)`, NaN if
    none."""
    same = np.asarray(lengths) == np.asarray(lengths_ref)
    n = int(same.sum())
    if n == 0:
        return float("nan"), 0
    g, r = np.asarray(gold)[same], np.asarray(gold_ref)[same]
    return float(np.mean((g > r) + 0.5 * (g == r))), n


def mean_difference_ci(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """`mean(x) - mean(y)` over runs (seeds) with a percentile bootstrap interval, `x` and
    `y` resampled on their own (as `purejaxppo.run.stats` does); NaN bounds with one run."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    point = float(x.mean() - y.mean())
    if min(len(x), len(y)) < 2:
        return point, float("nan"), float("nan")
    res = sps.bootstrap(
        (x, y),
        lambda a, b, axis=-1: a.mean(axis) - b.mean(axis),
        n_resamples=reps,
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return point, float(ci.low), float(ci.high)


def stratified_mean_difference_ci(
    x: np.ndarray, y: np.ndarray, confidence: float = 0.95, reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """`mean(x) - mean(y)` of `[runs, strata]` scores (e.g. RL seeds x prepare seeds: each
    stratum one reference and reward model) with a percentile bootstrap interval that
    resamples the runs of `x` and of `y` within each stratum on their own (the strata are
    fixed, as `purejaxppo.run.stats` treats tasks); the mean gives every stratum equal weight.
    NaN bounds when a stratum has one run."""
    x, y = (
        np.atleast_2d(np.asarray(x, np.float64).T).T,
        np.atleast_2d(np.asarray(y, np.float64).T).T,
    )
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x has {x.shape[1]} strata but y has {y.shape[1]}")
    strata = x.shape[1]

    def diff(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        means = [np.mean(s, axis=axis) for s in samples]
        return np.mean(means[:strata], axis=0) - np.mean(means[strata:], axis=0)

    samples = [*x.T, *y.T]
    point = float(diff(*samples))
    if min(len(x), len(y)) < 2:
        return point, float("nan"), float("nan")
    res = sps.bootstrap(
        tuple(samples),
        diff,
        n_resamples=reps,
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = res.confidence_interval
    return point, float(ci.low), float(ci.high)


class GaoFit(NamedTuple):
    """`R(d) = d (alpha - beta log d)`, `d = sqrt(KL)`; peak at `d* = exp(alpha/beta - 1)`."""

    alpha: float
    beta: float
    rmse: float  # root mean squared residual of the fitted points
    points: int

    @property
    def peak_kl(self) -> float:
        """KL (nats) at the fitted peak, `d*^2`; inf when `beta <= 0` (no peak)."""
        if self.beta <= 0:
            return float("inf")
        return float(np.exp(2.0 * (self.alpha / self.beta - 1.0)))

    def predict(self, kl: np.ndarray) -> np.ndarray:
        d = np.sqrt(np.maximum(np.asarray(kl, np.float64), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d > 0, d * (self.alpha - self.beta * np.log(d)), 0.0)


def fit_gao_rl(kl: np.ndarray, gain: np.ndarray) -> GaoFit:
    """Least squares of `gain ≈ d (alpha - beta log d)`, `d = sqrt(kl)`: `kl` `[N]` in nats
    (KL(pi || pi_init)), `gain` `[N]` the gold score minus the initial policy's. Points with
    `kl <= 0` carry no information (the model is 0 there) and are dropped."""
    kl, gain = np.asarray(kl, np.float64).ravel(), np.asarray(gain, np.float64).ravel()
    keep = kl > 0
    d, y = np.sqrt(kl[keep]), gain[keep]
    if len(d) < 2:
        raise ValueError(f"need at least 2 points with KL > 0, got {len(d)}")
    design = np.stack([d, -d * np.log(d)], axis=1)
    (alpha, beta), *_ = np.linalg.lstsq(design, y, rcond=None)
    rmse = float(np.sqrt(np.mean((design @ np.array([alpha, beta]) - y) ** 2)))
    return GaoFit(float(alpha), float(beta), rmse, len(d))


def distinct_targets(kl: np.ndarray, rtol: float = 0.05) -> list[int]:
    """Indices of the KL targets whose runs reached a KL of their own.

    `kl` `[targets, seeds]` is the measured KL of each run, targets in ascending order. A
    target is dropped when, seed by seed, its runs' KL lies within `rtol` (relative) of the
    last kept target's: the controller could reach neither, so both ran with beta shrinking
    at its maximum rate and they are the same run up to float rounding, not two points."""
    kl = np.asarray(kl, np.float64)
    kept = [0]
    for t in range(1, len(kl)):
        prev = kl[kept[-1]]
        if not np.all(np.abs(kl[t] - prev) <= rtol * np.abs(prev)):
            kept.append(t)
    return kept


def bootstrap_gao(
    kl: np.ndarray, gain: np.ndarray, reps: int = 2000, confidence: float = 0.95, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of `alpha`, `beta` and the peak KL of `fit_gao_rl`, the seeds of
    each KL target resampled on their own (`kl`, `gain` `[targets, seeds]`)."""
    kl, gain = np.asarray(kl, np.float64), np.asarray(gain, np.float64)
    rng = np.random.default_rng(seed)
    targets, seeds = kl.shape
    draws = np.empty((reps, 3))
    for r in range(reps):
        idx = rng.integers(0, seeds, (targets, seeds))
        fit = fit_gao_rl(np.take_along_axis(kl, idx, 1), np.take_along_axis(gain, idx, 1))
        draws[r] = fit.alpha, fit.beta, fit.peak_kl
    lo, hi = 100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2
    return {
        name: (float(np.percentile(draws[:, j], lo)), float(np.percentile(draws[:, j], hi)))
        for j, name in enumerate(("alpha", "beta", "peak_kl"))
    }
