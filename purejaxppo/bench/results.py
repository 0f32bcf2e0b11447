"""Result dataclasses of a benchmark run: per env, per scaling point, and the whole run.

`EnvResult` (with its learning curve of `CurvePoint`s), `ThroughputPoint`,
`ScalingPoint` and `BenchResult` are plain frozen dataclasses, written by
`purejaxppo.bench.measure`, `purejaxppo.bench.throughput` and
`purejaxppo.bench.scaling` and read by `purejaxppo.bench.report`; `bench.json` is
`dataclasses.asdict` of a `BenchResult` (plus the headline). Definitions of the
figures: the docstring of `purejaxppo.bench.measure` and docs/benchmark.md.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from purejaxppo.bench.flops import FlopCount, XlaFlops
from purejaxppo.bench.hw import DeviceInfo, MatmulPeak
from purejaxppo.bench.suite import BenchPlan, ReferenceFigures


@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """The population after a chunk: wall since before compiling, env steps per seed, return."""

    wall_s: float
    env_steps: int
    mean_return: float


@dataclasses.dataclass(frozen=True)
class EnvResult:
    """Everything measured for one suite env (definitions: `purejaxppo.bench.measure`).

    Throughputs count the env steps of all seeds; `steps_per_s_per_seed` divides
    by the seed count. `env_steps` is per seed; `complete` is False when the
    plan's time budget stopped training before `total_timesteps`. The seeds run
    as `purejaxppo train --seeds` runs them: groups of at most
    `members_per_device` on `devices` devices, `rounds` programs per device per
    chunk of `updates_per_call` updates: train's `default_chunk` (`train_chunk`),
    or fewer in a budgeted mode when a call of it would take over half the
    budget. `compile_s`
    is init and chunk programs compiled in parallel threads (one total, as train
    reports it; format 1's `init_compile_s` is gone).
    """

    name: str
    env_name: str
    source: str
    seeds: int
    devices: int
    members_per_device: int
    rounds: int
    num_envs: int
    num_steps: int
    hidden_sizes: tuple[int, ...]
    update_epochs: int
    num_minibatches: int
    total_timesteps: int
    env_steps: int
    complete: bool
    updates_per_call: int
    train_chunk: int
    compile_s: float
    train_s: float
    steps_per_s: float
    steps_per_s_best: float
    steps_per_s_per_seed: float
    threshold: float | None
    threshold_source: str
    solve_wall_s: float | None
    solve_env_steps: int | None
    final_return: float
    final_return_ci95: float
    final_returns: tuple[float, ...]
    flops: FlopCount
    xla_flops: XlaFlops | None
    gflops: float
    utilisation: float
    curve: tuple[CurvePoint, ...]


@dataclasses.dataclass(frozen=True)
class ScalingPoint:
    """Throughput of the reference recipe at one `num_envs` / population size.

    Attributes:
      axis: `num_envs` or `population`.
      value: the swept value.
      members: population size (1 on the `num_envs` axis).
      devices: devices the population was spread over.
      width: members per group (per device and call; train's grouping).
      rounds: programs each device runs one after another per call.
      num_envs: envs per member.
      updates_per_call: updates in one timed call.
      calls: timed calls (after one warm-up).
      compile_s: lowering + compiling init and the chunk.
      compiled_here: False when the program was compiled earlier in the run
        (by an env of the suite or another point) and reused.
      steps_per_s: median over calls, all members.
      steps_per_s_best: fastest call.
      call_rates: steps/s of every timed call.
      gflops: `flops/step x steps_per_s`.
      utilisation: `gflops` / matmul peak.
    """

    axis: str
    value: int
    members: int
    devices: int
    width: int
    rounds: int
    num_envs: int
    updates_per_call: int
    calls: int
    compile_s: float
    compiled_here: bool
    steps_per_s: float
    steps_per_s_best: float
    call_rates: tuple[float, ...]
    gflops: float
    utilisation: float


@dataclasses.dataclass(frozen=True)
class ThroughputPoint:
    """Timed calls of one compiled population of a fixed recipe (no learning figures).

    Attributes:
      name: `whole machine`, `per device` (the device split of the reference
        recipe) or `compute-bound` (a wide network, arithmetic-dominated).
      env_name, num_envs, num_steps, hidden_sizes, update_epochs, num_minibatches:
        the recipe.
      members: seeds.
      members_per_device: the most members a device runs at once (train's default).
      width: members per group; groups: groups of `width`.
      devices: devices one call runs on.
      rounds: programs each device runs one after another per call.
      updates_per_call: updates of every member in one timed call.
      calls: timed calls (after one warm-up).
      compile_s: init and chunk programs, compiled in parallel threads.
      compiled_here: False when the programs were compiled earlier in the run.
      steps_per_s: median call rate, env steps of all members.
      steps_per_s_best: fastest call.
      steps_per_s_per_device: `steps_per_s / devices`.
      call_rates: steps/s of every timed call.
      flops_per_step: analytic network FLOPs per env step (`purejaxppo.bench.flops`).
      gflops: `flops_per_step x steps_per_s`.
      peak_gflops: the matmul peak `utilisation` divides by.
      utilisation: `gflops / peak_gflops` (median call).
      utilisation_best: the fastest call's share of the peak.
    """

    name: str
    env_name: str
    num_envs: int
    num_steps: int
    hidden_sizes: tuple[int, ...]
    update_epochs: int
    num_minibatches: int
    members: int
    members_per_device: int
    width: int
    groups: int
    devices: int
    rounds: int
    updates_per_call: int
    calls: int
    compile_s: float
    compiled_here: bool
    steps_per_s: float
    steps_per_s_best: float
    steps_per_s_per_device: float
    call_rates: tuple[float, ...]
    flops_per_step: int
    gflops: float
    peak_gflops: float
    utilisation: float
    utilisation_best: float


@dataclasses.dataclass(frozen=True)
class BenchResult:
    """One benchmark run: the machine, the plan and every measurement.

    `device_split` is the reference recipe with the plan's seeds over all devices
    (`whole machine`) and on one device (`per device`); `compute` the
    compute-bound points.
    """

    plan: BenchPlan
    started: str
    command: str
    device: DeviceInfo
    versions: dict[str, str | None]
    matmul: MatmulPeak
    envs: tuple[EnvResult, ...]
    device_split: tuple[ThroughputPoint, ...]
    compute: tuple[ThroughputPoint, ...]
    scaling: tuple[ScalingPoint, ...]
    peers: tuple[Any, ...]
    reference: ReferenceFigures
    wall_s: float
