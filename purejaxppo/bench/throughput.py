"""Whole-machine and per-device throughput of the reference recipe, and compute-bound points.

Device split (`measure_device_split`): the reference recipe (PureJaxRL's CartPole)
with the plan's seeds, compiled and called as `purejaxppo train --seeds` does
(`compile_trainer`, train's members per device, train's chunk size
`default_chunk(num_updates)`), twice:

- **whole machine**: over every local device (at most one group per device);
- **per device**: the same seeds and members per device with `num_devices=1`,
  i.e. the same per-device program running the groups in rounds on one device
  (when the whole machine already used one device, e.g. 2 seeds in one group on
  a CPU, that measurement is reported for both).
  Its steps/s is one device's throughput: the figure to set against another
  trainer's seeds vmapped on one device.

Compute-bound points (`measure_compute`): one seed of the reference env with
`width x width` layers and 256 envs x 32 steps (`purejaxppo.bench.suite.compute_recipe`),
so that the epochs' `[2048, width] @ [width, width]` matmuls, not per-op dispatch,
take the time; its share of the matmul peak (re-measured before the points and
after each; the best of the run's and these measurements divides) is what the
trainer reaches when arithmetic dominates.

Every point makes one warm-up call, then times calls until `plan.min_measure_s`
(at least 2) and reports the median call rate; the two device-split populations
take their calls in turn, so that a busy moment of a shared machine hits both.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable

from purejaxppo.bench.flops import count_flops
from purejaxppo.bench.hw import MatmulPeak, measure_matmul_peak
from purejaxppo.bench.population import (
    Population,
    PopulationCache,
    chunk_updates,
    time_interleaved,
)
from purejaxppo.bench.results import ThroughputPoint
from purejaxppo.bench.suite import BenchPlan, compute_recipe, reference_recipe
from purejaxppo.config import PPOConfig
from purejaxppo.run.compiled import default_chunk
from purejaxppo.train import make_trainer

Log = Callable[[str], None]

WHOLE_MACHINE = "whole machine"
PER_DEVICE = "per device"
COMPUTE_BOUND = "compute-bound"


def _point(
    name: str,
    config: PPOConfig,
    pop: Population,
    cached: bool,
    times: list[float],
    peak_gflops: float,
) -> ThroughputPoint:
    flops = count_flops(config, pop.trainer.space).per_step
    rates = [pop.steps_per_call() / t for t in times]
    rate = statistics.median(rates)
    layout = pop.layout
    return ThroughputPoint(
        name=name,
        env_name=config.env_name or "",
        num_envs=config.num_envs,
        num_steps=config.num_steps,
        hidden_sizes=tuple(config.hidden_sizes),
        update_epochs=config.update_epochs,
        num_minibatches=config.num_minibatches,
        members=layout.members,
        members_per_device=layout.members_per_device,
        width=layout.width,
        groups=layout.groups,
        devices=layout.devices,
        rounds=layout.rounds,
        updates_per_call=pop.updates_per_call,
        calls=len(times),
        compile_s=pop.compile_s,
        compiled_here=not cached,
        steps_per_s=rate,
        steps_per_s_best=max(rates),
        steps_per_s_per_device=rate / layout.devices,
        call_rates=tuple(rates),
        flops_per_step=flops,
        gflops=flops * rate / 1e9,
        peak_gflops=peak_gflops,
        utilisation=flops * rate / 1e9 / peak_gflops,
        utilisation_best=flops * max(rates) / 1e9 / peak_gflops,
    )


def measure_device_split(
    plan: BenchPlan, peak: MatmulPeak, cache: PopulationCache, log: Log
) -> list[ThroughputPoint]:
    """The reference recipe with `plan.seeds` seeds over all devices, then on one device,
    their calls interleaved."""
    config, hp = reference_recipe()
    chunk = min(default_chunk(config.num_updates), config.num_updates)  # train's chunk
    whole, whole_cached = cache.get(config, hp, plan.seeds, chunk)
    pops, cached = [whole], [whole_cached]
    if whole.devices > 1:  # else the whole machine is one device: one measurement is both
        one, one_cached = cache.get(config, hp, plan.seeds, chunk, num_devices=1)
        pops.append(one)
        cached.append(one_cached)
    times = time_interleaved(pops, plan.min_measure_s)
    points = [
        _point(name, config, pop, c, t, peak.best_gflops)
        for name, pop, c, t in zip((WHOLE_MACHINE, PER_DEVICE), pops, cached, times, strict=False)
    ]
    if len(points) == 1:
        points.append(dataclasses.replace(points[0], name=PER_DEVICE, compiled_here=False))
    for point in points:
        log(
            f"reference recipe, {plan.seeds} seeds, {point.name}: {point.steps_per_s:,.0f} "
            f"steps/s ({point.steps_per_s_per_device:,.0f} per device; groups of "
            f"{point.width} on {point.devices} device(s), {point.rounds} round(s) per "
            f"{chunk}-update call; compile {point.compile_s:.1f} s"
            f"{'' if point.compiled_here else ', reused'})"
        )
    return points


def measure_compute(
    plan: BenchPlan, peak: MatmulPeak, cache: PopulationCache, log: Log
) -> list[ThroughputPoint]:
    """Compute-bound points (`plan.compute_widths`): 1 seed, one device, short calls."""
    if not plan.compute_widths:
        return []
    # The peak again, before the points and after each (a busy machine can only lower a
    # measurement): the best of the run's and these so far is the denominator.
    again = measure_matmul_peak(plan.matmul_size, plan.matmul_s)
    best = max(peak.best_gflops, again.best_gflops)
    points = []
    for width in plan.compute_widths:
        config, hp = compute_recipe(width)
        flops = count_flops(config, make_trainer(config).space).per_step
        k = chunk_updates(config, 1, flops, peak.best_gflops, plan.chunk_s)
        pop, cached = cache.get(config, hp, 1, k)
        times = pop.time_calls(plan.min_measure_s)
        after = measure_matmul_peak(plan.matmul_size, plan.matmul_s)
        best = max(best, after.best_gflops)
        point = _point(COMPUTE_BOUND, config, pop, cached, times, best)
        log(
            f"compute-bound {width}x{width}, {config.num_envs} envs x {config.num_steps} steps, "
            f"1 seed: {point.steps_per_s:,.0f} steps/s = {point.gflops:.1f} GFLOP/s = "
            f"{point.utilisation:.1%} of {best:.1f} GFLOP/s (best call "
            f"{point.utilisation_best:.1%}; compile {point.compile_s:.1f} s)"
        )
        points.append(point)
    return points
