"""Robust statistics of final returns (Agarwal et al. 2021, "Deep RL at the Edge of the
Statistical Precipice"): interquartile mean, stratified bootstrap confidence intervals and
probability of improvement, as the `rliable` package defines them.

Host side: numpy and scipy, no JAX. Scores are `[runs]` (one task) or `[runs, tasks]`
(runs are seeds, tasks are environments); a stratified bootstrap resamples the runs of
each task independently, so resampling never mixes tasks. The arithmetic is scipy's:
`scipy.stats.trim_mean(x, 0.25)` for the IQM (rliable's `aggregate_iqm` is exactly
that, over all run x task scores) and `scipy.stats.bootstrap` with one sample per task
(scipy resamples every sample on its own: the stratified bootstrap) and a percentile
interval. `rliable` itself is not used: its `library` module imports `arch`, which
fails to import with pandas 3 (docs/sweeps.md). It lives in `run/` because
the sweep reports and the benchmark both use it (and `bench/` imports no `sweep/`).

Scores must be finite: a run that never finished an episode has a NaN final return,
and no score can stand in for it, so the functions refuse NaN (`ValueError`); callers
decide what such a run means (the sweep summary writes NaN for its set).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from scipy import stats

REPS = 2000  # bootstrap resamples of the reports
TRIM = 0.25  # the IQM: mean of the middle 50% of the scores


class Estimate(NamedTuple):
    """A point estimate with its confidence interval (`low`, `high`: NaN with one run)."""

    point: float
    low: float
    high: float


def _runs_tasks(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    """`scores` `[runs]` or `[runs, tasks]` as float64 `[runs, tasks]`; ValueError if empty/NaN."""
    x = np.asarray(scores, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValueError(f"{name}: expected [runs] or [runs, tasks], got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: no scores (shape {x.shape})")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise ValueError(
            f"{name}: {bad} of {x.size} scores are NaN or infinite (a run that never "
            "finished an episode has no final return); drop those runs first"
        )
    return x


def _iqm_of(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """IQM of the samples pooled along `axis` (each sample `[..., runs]`: one task)."""
    return stats.trim_mean(np.concatenate(samples, axis=axis), TRIM, axis=axis)


def iqm(scores: np.ndarray) -> float:
    """Interquartile mean of `scores` `[runs]` or `[runs, tasks]`, all run x task scores
    pooled: the mean after cutting `floor(n / 4)` scores off each end (`n` scores).

    IQM(1..8) = mean(3..6) = 4.5. rliable's `aggregate_iqm`.
    """
    return float(_iqm_of(_runs_tasks(scores).ravel()))


def _improvement_of(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(X > Y) averaged over tasks; `samples` = the tasks' X runs, then their Y runs,
    each `[..., runs]` (`axis` -1)."""
    tasks = len(samples) // 2
    probs = []
    for x, y in zip(samples[:tasks], samples[tasks:], strict=True):
        x, y = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
        probs.append(np.mean((x > y) + 0.5 * (x == y), axis=(-2, -1)))
    return np.mean(probs, axis=0)


def _bootstrap(
    statistic: Callable[..., np.ndarray],
    samples: list[np.ndarray],
    confidence: float,
    reps: int,
    seed: int,
) -> Estimate:
    """Point estimate and percentile interval of `statistic(*samples)`, each sample resampled
    on its own (stratified); no interval (NaN) when a sample has a single run."""
    point = float(statistic(*samples))
    if min(len(s) for s in samples) < 2:
        return Estimate(point, math.nan, math.nan)
    res = stats.bootstrap(
        tuple(samples),
        statistic,
        n_resamples=reps,
        vectorized=True,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return Estimate(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def _check(confidence: float, reps: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence: expected a value in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps: expected at least 1 bootstrap resample, got {reps}")


def iqm_ci(
    scores: np.ndarray, confidence: float = 0.95, reps: int = REPS, seed: int = 0
) -> Estimate:
    """IQM of `scores` `[runs]` or `[runs, tasks]` with a stratified bootstrap interval.

    Each of `reps` resamples draws, for every task on its own, `runs` runs with
    replacement from that task's runs; the interval is the `(1 - confidence) / 2` and
    `(1 + confidence) / 2` percentiles of the resamples' IQMs (rliable's
    `get_interval_estimates` with `StratifiedBootstrap`). The same `seed` gives the same
    interval. With one run there is nothing to resample: `low` and `high` are NaN.
    """
    _check(confidence, reps)
    x = _runs_tasks(scores)
    return _bootstrap(_iqm_of, list(x.T), confidence, reps, seed)


def probability_of_improvement(
    x: np.ndarray,
    y: np.ndarray,
    confidence: float = 0.95,
    reps: int = REPS,
    seed: int = 0,
) -> Estimate:
    """P(X > Y): the chance that a run of X scores above a run of Y on the same task,
    ties counting 1/2 (the Mann-Whitney U statistic over `n * m`), averaged over tasks.

    Args:
      x: scores of X, `[n]` or `[n, tasks]`.
      y: scores of Y, `[m]` or `[m, tasks]` (the same tasks; the run counts may differ).

    Returns:
      The probability with a stratified bootstrap interval (the runs of X and of Y
      resampled on their own within each task); NaN bounds when X or Y has one run.
      rliable's `probability_of_improvement`.
    """
    _check(confidence, reps)
    xs, ys = _runs_tasks(x, "x"), _runs_tasks(y, "y")
    if xs.shape[1] != ys.shape[1]:
        raise ValueError(f"x has {xs.shape[1]} tasks but y has {ys.shape[1]}")
    return _bootstrap(_improvement_of, [*xs.T, *ys.T], confidence, reps, seed)
