"""Throughput scaling of the reference recipe with `num_envs` and with the population size.

The reference recipe is PureJaxRL's CartPole (`purejaxppo.bench.suite.reference_recipe`).
Each point compiles (or reuses, `PopulationCache`) a population the way `purejaxppo
train --seeds` does (train's grouping of members per device, rounds over the devices),
with short calls (`chunk_updates`, about `plan.chunk_s` each) unless the same population
was compiled earlier in the run (then its chunk size is kept); it makes one warm-up call,
then times calls until the plan's `min_measure_s` (at least 2) and reports the median and
the best call rate, all members together.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from purejaxppo.bench.flops import count_flops
from purejaxppo.bench.hw import MatmulPeak
from purejaxppo.bench.population import PopulationCache, chunk_updates
from purejaxppo.bench.results import ScalingPoint
from purejaxppo.bench.suite import BenchPlan, reference_recipe
from purejaxppo.config import HParams, PPOConfig
from purejaxppo.train import make_trainer

SCALING_MIN_UPDATES = 16  # a num_envs point's config has at least this many updates

Log = Callable[[str], None]


def measure_point(
    axis: str,
    value: int,
    config: PPOConfig,
    hparams: HParams,
    members: int,
    plan: BenchPlan,
    peak: MatmulPeak,
    cache: PopulationCache,
) -> ScalingPoint:
    """Warm up once, then time calls until `plan.min_measure_s` (and >= 2 calls)."""
    flops = count_flops(config, make_trainer(config).space)
    k = chunk_updates(config, members, flops.per_step, peak.best_gflops, plan.chunk_s)
    pop, cached = cache.get(config, hparams, members, k, any_chunk=True)
    times = pop.time_calls(plan.min_measure_s)
    rates = [pop.steps_per_call() / t for t in times]
    rate = statistics.median(rates)
    gflops = flops.per_step * rate / 1e9
    layout = pop.layout
    return ScalingPoint(
        axis=axis,
        value=value,
        members=members,
        devices=layout.devices,
        width=layout.width,
        rounds=layout.rounds,
        num_envs=config.num_envs,
        updates_per_call=pop.updates_per_call,
        calls=len(times),
        compile_s=pop.compile_s,
        compiled_here=not cached,
        steps_per_s=rate,
        steps_per_s_best=max(rates),
        call_rates=tuple(rates),
        gflops=gflops,
        utilisation=gflops / peak.best_gflops,
    )


def measure_scaling(
    plan: BenchPlan, peak: MatmulPeak, cache: PopulationCache, log: Log
) -> list[ScalingPoint]:
    """Steps/s of the reference recipe against `num_envs` (1 seed) and population size."""
    base, hp = reference_recipe()
    points = []
    for n in plan.num_envs_points:
        batch = n * base.num_steps
        total = max(base.total_timesteps, batch * SCALING_MIN_UPDATES)
        cfg = base.replace(num_envs=n, total_timesteps=total)
        point = measure_point("num_envs", n, cfg, hp, 1, plan, peak, cache)
        log(f"scaling num_envs={n}: {point.steps_per_s:,.0f} steps/s")
        points.append(point)
    for p in plan.population_points:
        point = measure_point("population", p, base, hp, p, plan, peak, cache)
        log(
            f"scaling population={p}: {point.steps_per_s:,.0f} steps/s on "
            f"{point.devices} device(s), groups of {point.width}, {point.rounds} round(s), "
            f"{point.updates_per_call} updates per call"
        )
        points.append(point)
    return points
