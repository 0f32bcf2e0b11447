"""Sweep results: per-member rows (`MemberResult`), per-set summaries ranked, the best config.

A member's row holds its final return (`purejaxppo.run.rundir.final_return`)
and the area under its learning curve; `summarize` ranks the sets by mean
final return over seeds, with a 95% confidence interval, and adds the robust
statistics of `purejaxppo.run.stats` (IQM with a bootstrap CI, the top set's
probability of improvement over the next ones). Host side; no JAX.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from purejaxppo.config import HParams
from purejaxppo.run.config import RunConfig
from purejaxppo.run.rundir import final_return
from purejaxppo.run.stats import Estimate, iqm_ci, probability_of_improvement
from purejaxppo.sweep.population import Population

IMPROVEMENT_TOP = 10  # P(improvement) of the best set over ranks 2..IMPROVEMENT_TOP
NO_ESTIMATE = Estimate(math.nan, math.nan, math.nan)


def area_under_curve(returns: np.ndarray) -> float:
    """Mean episode return over all updates: the area under the learning curve / its length."""
    r = np.asarray(returns, np.float64)
    return float(np.nanmean(r)) if np.isfinite(r).any() else float("nan")


@dataclasses.dataclass(frozen=True)
class MemberResult:
    """One row of `results.csv`.

    Attributes:
      member, set_index, seed: which run.
      group, chunk: its static group and chunk (members of a chunk ran together).
      values: the swept `(key, value)` pairs of its set.
      hparams: all its hyperparameters.
      env_steps: environment steps it took (`num_updates * batch_size`).
      final_return: `final_return` of its curve.
      auc: `area_under_curve` of its curve.
      wall_time_s: wall time of its chunk (shared by the chunk's members).
    """

    member: int
    set_index: int
    seed: int
    group: int
    chunk: int
    values: tuple[tuple[str, Any], ...]
    hparams: HParams
    env_steps: int
    final_return: float
    auc: float
    wall_time_s: float


def member_result(
    population: Population,
    member: int,
    returns: np.ndarray,
    group: int,
    chunk: int,
    wall_time_s: float,
) -> MemberResult:
    """The results row of `member` from its episode-return curve `[U]`."""
    m = population.member(member)
    s = population.sets[m.set_index]
    return MemberResult(
        member=member,
        set_index=m.set_index,
        seed=m.seed,
        group=group,
        chunk=chunk,
        values=s.values,
        hparams=s.hparams,
        env_steps=s.config.num_updates * s.config.batch_size,
        final_return=final_return(returns),
        auc=area_under_curve(returns),
        wall_time_s=float(wall_time_s),
    )


@dataclasses.dataclass(frozen=True)
class SetSummary:
    """One row of `summary.csv`: a hyperparameter set over its seeds.

    `ci95` is the half-width of the 95% confidence interval of the mean final
    return (Student t, n - 1 degrees of freedom; NaN with one seed).
    `min_return` is the lowest final return of its seeds when at least two
    have a finite one (what every one of them reached), NaN otherwise.

    `iqm` is the interquartile mean of the seeds' final returns with its 95%
    bootstrap interval (`purejaxppo.run.stats.iqm_ci`, 2000 resamples, seed 0;
    no interval with one seed). `improvement` is P(a seed of the rank-1 set ends
    above a seed of this set) with its 95% bootstrap interval, for ranks 2 to
    `IMPROVEMENT_TOP`. Both are NaN where a seed has no final return (no
    finished episode), like `mean_return`.
    """

    rank: int
    set_index: int
    values: tuple[tuple[str, Any], ...]
    num_seeds: int
    mean_return: float
    std_return: float
    ci95: float
    mean_auc: float
    min_return: float = math.nan
    iqm: Estimate = NO_ESTIMATE
    improvement: Estimate = NO_ESTIMATE


def t_quantile_975(dof: int) -> float:
    """The 0.975 quantile of Student's t with `dof` degrees of freedom."""
    from scipy import stats

    return float(stats.t.ppf(0.975, dof))


def summarize(results: Sequence[MemberResult], population: Population) -> list[SetSummary]:
    """Sets ranked by mean final return over seeds, ties by mean AUC (NaN means go last)."""
    by_set: dict[int, list[MemberResult]] = {}
    for r in results:
        by_set.setdefault(r.set_index, []).append(r)
    rows = []
    finals_of: dict[int, np.ndarray] = {}
    for index, members in by_set.items():
        finals = finals_of[index] = np.array([r.final_return for r in members], np.float64)
        n = len(finals)
        mean = float(np.mean(finals))
        std = float(np.std(finals, ddof=1)) if n > 1 else float("nan")
        ci = t_quantile_975(n - 1) * std / math.sqrt(n) if n > 1 else float("nan")
        auc = float(np.mean([r.auc for r in members]))
        finite = finals[np.isfinite(finals)]
        low = float(np.min(finite)) if finite.size >= 2 else float("nan")
        values = population.sets[index].values
        robust = iqm_ci(finals) if np.isfinite(finals).all() else NO_ESTIMATE
        rows.append(SetSummary(0, index, values, n, mean, std, ci, auc, low, robust))
    rows.sort(key=_rank_key)
    best = finals_of[rows[0].set_index] if rows else np.empty(0)
    return [
        dataclasses.replace(
            s,
            rank=i + 1,
            improvement=_improvement(best, finals_of[s.set_index])
            if 0 < i < IMPROVEMENT_TOP
            else NO_ESTIMATE,
        )
        for i, s in enumerate(rows)
    ]


def _improvement(best: np.ndarray, other: np.ndarray) -> Estimate:
    """P(best > other) over seeds with its bootstrap CI; NaN if a seed has no final return."""
    if np.isfinite(best).all() and np.isfinite(other).all():
        return probability_of_improvement(best, other)
    return NO_ESTIMATE


def _rank_key(s: SetSummary) -> tuple[bool, float, float, int]:
    """Mean final return (descending), ties broken by mean AUC (faster learning first)."""
    nan = math.isnan(s.mean_return)
    auc = -s.mean_auc if math.isfinite(s.mean_auc) else math.inf
    return (nan, 0.0 if nan else -s.mean_return, auc, s.set_index)


def best_run_config(population: Population, summary: Sequence[SetSummary]) -> RunConfig:
    """The top set as a `RunConfig` (first seed of the sweep), ready for `purejaxppo train`.

    `expected_return` is the lowest final return among the set's seeds (its
    `min_return`, rounded down to 2 decimals): every seed reached it, so a rerun,
    whose mean over seeds `train` compares with it, normally does too. None
    with fewer than two seeds with a final return: one run says nothing about reruns.
    """
    top = summary[0]
    s = population.sets[top.set_index]
    low = top.min_return
    return RunConfig(
        ppo=s.config,
        hparams=s.hparams,
        seed=population.seeds[0],
        expected_return=None if math.isnan(low) else math.floor(round(low * 100, 6)) / 100,
    )
