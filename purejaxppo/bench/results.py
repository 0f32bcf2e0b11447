"""Result dataclasses of a benchmark run: per env, per scaling point, and the whole run.

`EnvResult` (with its learning curve of `CurvePoint`s), `ScalingPoint` and
`BenchResult` are plain frozen dataclasses, written by `purejaxppo.bench.measure` and
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
    plan's time budget stopped training before `total_timesteps`.
    """

    name: str
    env_name: str
    source: str
    seeds: int
    devices: int
    num_envs: int
    num_steps: int
    hidden_sizes: tuple[int, ...]
    update_epochs: int
    num_minibatches: int
    total_timesteps: int
    env_steps: int
    complete: bool
    updates_per_call: int
    compile_s: float
    init_compile_s: float
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
class BenchResult:
    """One benchmark run: the machine, the plan and every measurement."""

    plan: BenchPlan
    started: str
    command: str
    device: DeviceInfo
    versions: dict[str, str | None]
    matmul: MatmulPeak
    envs: tuple[EnvResult, ...]
    scaling: tuple[ScalingPoint, ...]
    peers: tuple[Any, ...]
    reference: ReferenceFigures
    wall_s: float
