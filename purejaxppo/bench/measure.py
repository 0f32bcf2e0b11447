"""The single-command benchmark: compile time, steady steps/s, time to solve, scaling.

`run_benchmark(plan, specs, log)` measures, in one process and on one device
set, in this order (so every figure in a report comes from the same run):

1. the float32 matmul peak (`bench_hw.measure_matmul_peak`);
2. per suite env: a population of `plan.seeds` seeds, sharded over all
   devices (`purejaxppo.sharding`), trained in compiled chunks of updates.
   Compilation is timed on its own (`lower + compile`, persistent cache not
   used); steady steps/s is the median chunk rate after the first chunk; the
   time to threshold is the wall clock from before compilation to the end of
   the first chunk after which the seed mean of the recent return reaches the
   threshold; the final return is per seed over the last 5% of updates
   trained, then mean and 95% Student-t CI over seeds;
3. scaling of the reference recipe (PureJaxRL's CartPole) with `num_envs`
   (1 seed) and with the population size (all devices);
4. installed peers (`bench_peers`) on the same recipe.

Throughput = env steps of all members / wall time of a call, with the call's
outputs waited for; scaling points report the median and the best of their
timed calls after one warm-up call.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purejaxppo.bench.flops import FlopCount, XlaFlops, count_flops, xla_flops
from purejaxppo.bench.hw import DeviceInfo, MatmulPeak, device_info, library_versions
from purejaxppo.bench.hw import measure_matmul_peak as _measure_matmul_peak
from purejaxppo.bench.suite import REFERENCE_ENV, BenchPlan, EnvSpec, ReferenceFigures
from purejaxppo.config import HParams, PPOConfig
from purejaxppo.run.rundir import final_return, final_window, recent_mean
from purejaxppo.sharding import population_map, population_mesh, shard_rows
from purejaxppo.train import Trainer, make_trainer

ASSUMED_EFFICIENCY = 0.3  # of the matmul peak, only to size chunks before measuring
MAX_UPDATES_PER_CALL = 64

Log = Callable[[str], None]


# =========================================================================== populations
def _largest_divisor(n: int, at_most: int) -> int:
    """The largest divisor of `n` that is <= `at_most` (at least 1)."""
    return max(d for d in range(1, max(1, min(n, at_most)) + 1) if n % d == 0)


def _key_data(seeds: Sequence[int]) -> np.ndarray:
    """Raw key data `[P, 2]` uint32 of `jax.random.key(seed)` per seed."""
    return np.stack([np.asarray(jax.random.key_data(jax.random.key(s))) for s in seeds])


@dataclasses.dataclass
class Population:
    """A compiled population of `size` members of one config, sharded over `devices` devices.

    `call()` advances every member by `updates_per_call` updates; `reset()`
    starts the members again from `init` (same seeds), without recompiling.
    """

    trainer: Trainer
    size: int
    devices: int
    updates_per_call: int
    init_compile_s: float
    run_compile_s: float
    key_data: jax.Array
    hparams: Any
    init: Callable[[jax.Array, Any], Any]
    run: Callable[[Any, Any], tuple[Any, dict[str, jax.Array]]]
    state: Any = None

    @property
    def compile_s(self) -> float:
        """Lowering + compiling `init` and the chunk of updates."""
        return self.init_compile_s + self.run_compile_s

    @property
    def steps_per_call(self) -> int:
        """Env steps of all members in one call."""
        return self.size * self.updates_per_call * self.trainer.config.batch_size

    def reset(self) -> None:
        """Fresh initial states for every member (waited for)."""
        self.state = jax.block_until_ready(self.init(self.key_data, self.hparams))

    def call(self) -> tuple[float, dict[str, jax.Array]]:
        """One call, waited for; returns its wall time and metrics `[P, k]`."""
        start = time.perf_counter()
        self.state, metrics = self.run(self.state, self.hparams)
        jax.block_until_ready((self.state, metrics))
        return time.perf_counter() - start, metrics


def build_population(
    trainer: Trainer, hparams: HParams, seeds: Sequence[int], updates_per_call: int
) -> Population:
    """Compile `init` and a chunk of `updates_per_call` updates for `len(seeds)` members.

    Members are spread over the largest number of devices that divides the
    population. Compile times cover lowering and compiling, not running `init`;
    the returned population holds its initial state.
    """
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    size = len(seeds)
    devices = jax.devices()
    used = _largest_divisor(size, len(devices))
    mesh = population_mesh(devices[:used])
    hp = jax.device_put(
        jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams), NamedSharding(mesh, P())
    )
    key_data = shard_rows(mesh, _key_data(seeds))

    def init_member(kd: jax.Array, h: HParams) -> Any:
        return trainer.init(jax.random.wrap_key_data(kd), h)

    def run_member(state: Any, h: HParams) -> tuple[Any, dict[str, jax.Array]]:
        return trainer.run(state, h, updates_per_call)

    start = time.perf_counter()
    init = population_map(init_member, mesh, (True, False)).lower(key_data, hp).compile()
    init_s = time.perf_counter() - start
    state = jax.block_until_ready(init(key_data, hp))
    start = time.perf_counter()
    run = population_map(run_member, mesh, (True, False), donate_argnums=(0,))
    run = run.lower(state, hp).compile()
    run_s = time.perf_counter() - start
    return Population(
        trainer, size, used, updates_per_call, init_s, run_s, key_data, hp, init, run, state
    )


class PopulationCache:
    """Compiled populations by (config, hparams, members, updates per call): compile once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[Any, ...], Population] = {}

    def get(
        self, config: PPOConfig, hparams: HParams, members: int, updates: int
    ) -> tuple[Population, bool]:
        """`(population, cached)`; a cached population is `reset()` before it is returned."""
        key = (config, tuple(float(x) for x in jax.tree.leaves(hparams)), members, updates)
        if key in self._cache:
            pop = self._cache[key]
            pop.reset()
            return pop, True
        pop = build_population(make_trainer(config), hparams, list(range(members)), updates)
        self._cache[key] = pop
        return pop, False


def chunk_updates(
    config: PPOConfig, members: int, flops_per_step: int, peak_gflops: float, seconds: float
) -> int:
    """Updates per compiled call: the largest divisor of `num_updates` whose call should
    take at most about `seconds` (a FLOP-based guess, before anything is measured)."""
    update_flops = members * config.batch_size * flops_per_step
    guess_s = update_flops / (ASSUMED_EFFICIENCY * peak_gflops * 1e9)
    want = int(min(MAX_UPDATES_PER_CALL, max(1, math.floor(seconds / max(guess_s, 1e-12)))))
    return _largest_divisor(config.num_updates, want)


# =========================================================================== statistics
def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and half-width of its 95% Student-t confidence interval (NaN with < 2 values)."""
    from scipy import stats

    x = np.asarray([v for v in values if math.isfinite(v)], np.float64)
    if x.size == 0:
        return math.nan, math.nan
    if x.size == 1:
        return float(x[0]), math.nan
    half = float(stats.t.ppf(0.975, x.size - 1) * np.std(x, ddof=1) / math.sqrt(x.size))
    return float(np.mean(x)), half


# =========================================================================== per env
@dataclasses.dataclass(frozen=True)
class CurvePoint:
    """The population after a chunk: wall since before compiling, env steps per seed, return."""

    wall_s: float
    env_steps: int
    mean_return: float


@dataclasses.dataclass(frozen=True)
class EnvResult:
    """Everything measured for one suite env (see the module docstring for definitions).

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


def measure_env(
    spec: EnvSpec, plan: BenchPlan, peak: MatmulPeak, cache: PopulationCache, log: Log
) -> EnvResult:
    """Train `plan.seeds` seeds of `spec` in chunks; time compile, throughput and solve."""
    cfg = spec.ppo
    start = time.perf_counter()
    trainer = make_trainer(cfg)
    flops = count_flops(cfg, trainer.space)
    xla = xla_flops(trainer, spec.hparams, flops)
    k = chunk_updates(cfg, plan.seeds, flops.per_step, peak.best_gflops, plan.chunk_s)
    wall0 = time.perf_counter()  # the solve clock starts here: compilation counts
    pop, cached = cache.get(cfg, spec.hparams, plan.seeds, k)
    if cached:  # compiled earlier in this run (same config twice): count its compile time
        wall0 -= pop.compile_s
    log(
        f"{spec.name}: compiled in {pop.compile_s:.1f} s (init {pop.init_compile_s:.1f} s + "
        f"{k}-update chunk {pop.run_compile_s:.1f} s; {plan.seeds} seeds on {pop.devices} "
        "device(s))"
    )
    window = final_window(cfg.num_updates)
    returns: list[np.ndarray] = []
    times: list[float] = []
    curve: list[CurvePoint] = []
    solve_wall = solve_steps = None
    done = 0
    while done < cfg.num_updates:
        seconds, metrics = pop.call()
        done += k
        times.append(seconds)
        returns.append(np.asarray(metrics["episode_return"], np.float64).reshape(plan.seeds, k))
        history = np.concatenate(returns, axis=1)
        now = time.perf_counter() - wall0
        recent = recent_mean(history, window)
        curve.append(CurvePoint(now, done * cfg.batch_size, recent))
        if solve_wall is None and spec.threshold is not None and recent >= spec.threshold:
            solve_wall, solve_steps = now, done * cfg.batch_size
        if plan.env_budget_s is not None and sum(times) >= plan.env_budget_s:
            break
    history = np.concatenate(returns, axis=1)
    finals = tuple(final_return(row, window) for row in history)
    mean, ci = mean_ci95(finals)
    rates = [pop.steps_per_call / t for t in (times[1:] if len(times) > 1 else times)]
    rate = statistics.median(rates)
    gflops = flops.per_step * rate / 1e9
    result = EnvResult(
        name=spec.name,
        env_name=cfg.env_name or spec.name,
        source=spec.source,
        seeds=plan.seeds,
        devices=pop.devices,
        num_envs=cfg.num_envs,
        num_steps=cfg.num_steps,
        hidden_sizes=tuple(cfg.hidden_sizes),
        update_epochs=cfg.update_epochs,
        num_minibatches=cfg.num_minibatches,
        total_timesteps=cfg.num_updates * cfg.batch_size,
        env_steps=done * cfg.batch_size,
        complete=done >= cfg.num_updates,
        updates_per_call=k,
        compile_s=pop.compile_s,
        init_compile_s=pop.init_compile_s,
        train_s=sum(times),
        steps_per_s=rate,
        steps_per_s_best=max(rates),
        steps_per_s_per_seed=rate / plan.seeds,
        threshold=spec.threshold,
        threshold_source=spec.threshold_source,
        solve_wall_s=solve_wall,
        solve_env_steps=solve_steps,
        final_return=mean,
        final_return_ci95=ci,
        final_returns=finals,
        flops=flops,
        xla_flops=xla,
        gflops=gflops,
        utilisation=gflops / peak.best_gflops,
        curve=tuple(curve),
    )
    solved = f"solved in {solve_wall:.1f} s" if solve_wall is not None else "threshold not reached"
    log(
        f"{spec.name}: {rate:,.0f} steps/s over {plan.seeds} seeds, "
        f"return {mean:.1f} ± {ci:.1f} after {result.env_steps:,} steps/seed, {solved} "
        f"({time.perf_counter() - start:.0f} s)"
    )
    return result


# =========================================================================== scaling
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
    """Warm up once, then time calls until `plan.min_measure_s` (and >= 2 calls).

    Members restart from `init` (untimed) before the learning-rate schedule
    would run past `num_updates`.
    """
    flops = count_flops(config, make_trainer(config).space)
    k = chunk_updates(config, members, flops.per_step, peak.best_gflops, plan.chunk_s)
    pop, cached = cache.get(config, hparams, members, k)
    done = k
    pop.call()
    times: list[float] = []
    while len(times) < 2 or sum(times) < plan.min_measure_s:
        if done + k > config.num_updates:
            pop.reset()
            done = 0
        times.append(pop.call()[0])
        done += k
    rates = [pop.steps_per_call / t for t in times]
    rate = statistics.median(rates)
    gflops = flops.per_step * rate / 1e9
    return ScalingPoint(
        axis=axis,
        value=value,
        members=members,
        devices=pop.devices,
        num_envs=config.num_envs,
        updates_per_call=k,
        calls=len(times),
        compile_s=pop.compile_s,
        compiled_here=not cached,
        steps_per_s=rate,
        steps_per_s_best=max(rates),
        call_rates=tuple(rates),
        gflops=gflops,
        utilisation=gflops / peak.best_gflops,
    )


def reference_recipe() -> tuple[PPOConfig, HParams]:
    """PureJaxRL's CartPole: 4 envs x 128 steps, 4 x 4 minibatches, 64x64 tanh, 5e5 steps."""
    return PPOConfig(env_name=REFERENCE_ENV), HParams()


SCALING_MIN_UPDATES = 16  # a num_envs point's config has at least this many updates


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
            f"scaling population={p}: {point.steps_per_s:,.0f} steps/s on {point.devices} device(s)"
        )
        points.append(point)
    return points


# =========================================================================== the whole run
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


def run_benchmark(
    plan: BenchPlan, specs: Sequence[EnvSpec], log: Log, command: str = "purejaxppo bench"
) -> BenchResult:
    """Measure everything `plan` asks for, in one process; see the module docstring."""
    from purejaxppo.bench.peers import measure_peers
    from purejaxppo.bench.suite import REFERENCE

    start = time.perf_counter()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    device = device_info()
    versions = library_versions()
    log(f"device: {device.describe()}")
    log(
        "versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None)
        + f", python {device.python}"
    )
    peak = _measure_matmul_peak(plan.matmul_size, plan.matmul_s)
    log(
        f"matmul peak ({plan.matmul_size}^3 float32): {peak.best_gflops:.1f} GFLOP/s best, "
        f"{peak.median_gflops:.1f} median"
    )
    cache = PopulationCache()
    envs = tuple(measure_env(spec, plan, peak, cache, log) for spec in specs)
    scaling = tuple(measure_scaling(plan, peak, cache, log))
    peers = tuple(measure_peers(plan.peer_steps, log))
    return BenchResult(
        plan=plan,
        started=started,
        command=command,
        device=device,
        versions=versions,
        matmul=peak,
        envs=envs,
        scaling=scaling,
        peers=peers,
        reference=REFERENCE,
        wall_s=time.perf_counter() - start,
    )
