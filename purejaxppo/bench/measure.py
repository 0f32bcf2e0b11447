"""The benchmark run (`run_benchmark`) and its per-env measurement (`measure_env`).

`run_benchmark(plan, specs, log)` measures, in one process and on one device
set, in this order (so every figure in a report comes from the same run):

1. the float32 matmul peak (`purejaxppo.bench.hw.measure_matmul_peak`);
2. per suite env: `plan.seeds` seeds compiled and run as `purejaxppo train
   --seeds` runs them (`purejaxppo.bench.population`: `compile_trainer`'s
   grouping and programs, train's chunk size `default_chunk(num_updates)`, the
   metrics read back after every chunk).
   Compilation is timed on its own (init and chunk programs lowered and compiled
   in parallel threads, one total as train reports it; persistent cache not
   used); steady steps/s is the median chunk rate after the first chunk; the
   time to threshold is the wall clock from before compilation to the end of
   the first chunk after which the seed mean of the recent return reaches the
   threshold; the final return is per seed over the last 5% of updates
   trained, then mean and 95% Student-t CI over seeds;
3. the reference recipe (PureJaxRL's CartPole) with `plan.seeds` seeds over
   the whole machine and on one device, and the compute-bound point
   (`purejaxppo.bench.throughput`);
4. scaling of the reference recipe with `num_envs` (1 seed) and with the
   population size (`purejaxppo.bench.scaling`);
5. installed peers (`purejaxppo.bench.peers`) on the same recipe.

Throughput = env steps of all members / wall time of a call, with the call's
metrics read back to the host (as train does after every chunk); the device
split, compute-bound and scaling points report the median and the best of
their timed calls after one warm-up call. The results are the dataclasses of
`purejaxppo.bench.results`.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from purejaxppo.bench.flops import FlopCount, XlaFlops, count_flops, xla_flops
from purejaxppo.bench.hw import MatmulPeak, device_info, library_versions
from purejaxppo.bench.hw import measure_matmul_peak as _measure_matmul_peak
from purejaxppo.bench.population import Population, PopulationCache, fit_chunk
from purejaxppo.bench.results import BenchResult, CurvePoint, EnvResult
from purejaxppo.bench.scaling import measure_scaling
from purejaxppo.bench.suite import BenchPlan, EnvSpec
from purejaxppo.bench.throughput import measure_compute, measure_device_split
from purejaxppo.run.compiled import default_chunk, describe_plan, plan_chunks
from purejaxppo.run.rundir import final_return, final_window, recent_mean
from purejaxppo.train import make_trainer

Log = Callable[[str], None]


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
@dataclasses.dataclass
class _Chunks:
    """What training one env chunk by chunk produced.

    Attributes:
      updates: updates trained per seed.
      times: wall time of every call.
      steps: env steps of all seeds in every call.
      returns: per call, the per-update episode returns `[P, k]`.
      curve: the seed mean of the recent return after every call.
      solve_wall_s: wall clock (from before compiling) at the first call that
        reached the threshold, or None.
      solve_env_steps: env steps per seed at that call, or None.
    """

    updates: int = 0
    times: list[float] = dataclasses.field(default_factory=list)
    steps: list[int] = dataclasses.field(default_factory=list)
    returns: list[np.ndarray] = dataclasses.field(default_factory=list)
    curve: list[CurvePoint] = dataclasses.field(default_factory=list)
    solve_wall_s: float | None = None
    solve_env_steps: int | None = None


def _compile_env(
    spec: EnvSpec, plan: BenchPlan, sizes: list[int], cache: PopulationCache, log: Log
) -> tuple[Population, float]:
    """The env's population compiled for train's chunk `sizes`, and the start of its solve
    clock."""
    wall0 = time.perf_counter()  # the solve clock starts here: compilation counts
    pop, cached = cache.get(spec.ppo, spec.hparams, plan.seeds, sorted(set(sizes), key=sizes.index))
    if cached:  # compiled earlier in this run (same config twice): count its compile time
        wall0 -= pop.compile_s
    log(
        f"{spec.name}: compiled in {pop.compile_s:.1f} s (init and {describe_plan(sizes)}, "
        f"as train; {pop.layout.describe()})"
    )
    return pop, wall0


def _train_chunks(
    spec: EnvSpec, plan: BenchPlan, pop: Population, sizes: list[int], wall0: float
) -> _Chunks:
    """Call `pop` over train's chunk plan until its end or the plan's budget; track the
    curve and the solve."""
    cfg = spec.ppo
    window = final_window(cfg.num_updates)
    run = _Chunks()
    for k in sizes:
        seconds, metrics = pop.call(k)
        run.updates += k
        run.times.append(seconds)
        run.steps.append(pop.steps_per_call(k))
        run.returns.append(np.asarray(metrics["episode_return"], np.float64).reshape(plan.seeds, k))
        history = np.concatenate(run.returns, axis=1)
        now = time.perf_counter() - wall0
        recent = recent_mean(history, window)
        run.curve.append(CurvePoint(now, run.updates * cfg.batch_size, recent))
        if run.solve_wall_s is None and spec.threshold is not None and recent >= spec.threshold:
            run.solve_wall_s, run.solve_env_steps = now, run.updates * cfg.batch_size
        if plan.env_budget_s is not None and sum(run.times) >= plan.env_budget_s:
            break
    return run


def _env_result(
    spec: EnvSpec,
    plan: BenchPlan,
    peak: MatmulPeak,
    pop: Population,
    flops: FlopCount,
    xla: XlaFlops | None,
    run: _Chunks,
) -> EnvResult:
    """Final returns, steady throughput and utilisation of a trained env."""
    cfg = spec.ppo
    history = np.concatenate(run.returns, axis=1)
    finals = tuple(final_return(row, final_window(cfg.num_updates)) for row in history)
    mean, ci = mean_ci95(finals)
    calls = list(zip(run.steps, run.times, strict=True))
    rates = [steps / t for steps, t in (calls[1:] if len(calls) > 1 else calls)]
    rate = statistics.median(rates)
    gflops = flops.per_step * rate / 1e9
    layout = pop.layout
    return EnvResult(
        name=spec.name,
        env_name=cfg.env_name or spec.name,
        source=spec.source,
        seeds=plan.seeds,
        devices=layout.devices,
        members_per_device=layout.members_per_device,
        rounds=layout.rounds,
        num_envs=cfg.num_envs,
        num_steps=cfg.num_steps,
        hidden_sizes=tuple(cfg.hidden_sizes),
        update_epochs=cfg.update_epochs,
        num_minibatches=cfg.num_minibatches,
        total_timesteps=cfg.num_updates * cfg.batch_size,
        env_steps=run.updates * cfg.batch_size,
        complete=run.updates >= cfg.num_updates,
        updates_per_call=pop.updates_per_call,
        train_chunk=min(default_chunk(cfg.num_updates), cfg.num_updates),
        compile_s=pop.compile_s,
        train_s=sum(run.times),
        steps_per_s=rate,
        steps_per_s_best=max(rates),
        steps_per_s_per_seed=rate / plan.seeds,
        threshold=spec.threshold,
        threshold_source=spec.threshold_source,
        solve_wall_s=run.solve_wall_s,
        solve_env_steps=run.solve_env_steps,
        final_return=mean,
        final_return_ci95=ci,
        final_returns=finals,
        flops=flops,
        xla_flops=xla,
        gflops=gflops,
        utilisation=gflops / peak.best_gflops,
        curve=tuple(run.curve),
    )


def measure_env(
    spec: EnvSpec, plan: BenchPlan, peak: MatmulPeak, cache: PopulationCache, log: Log
) -> EnvResult:
    """Train `plan.seeds` seeds of `spec` as `purejaxppo train --seeds` does (its programs,
    its chunk plan); time compile, throughput and solve."""
    cfg = spec.ppo
    start = time.perf_counter()
    trainer = make_trainer(cfg)
    flops = count_flops(cfg, trainer.space)
    xla = xla_flops(trainer, spec.hparams, flops)
    chunk = min(default_chunk(cfg.num_updates), cfg.num_updates)  # as train: no --chunk
    if plan.env_budget_s is not None:  # a call must not eat the whole budget
        fit = fit_chunk(
            cfg, plan.seeds, flops.per_step, peak.best_gflops, chunk, plan.env_budget_s / 2
        )
        if fit < chunk:
            log(
                f"{spec.name}: {fit}-update chunks instead of train's {chunk} (a call of "
                f"{chunk} is guessed to take over half the {plan.env_budget_s:g} s budget)"
            )
        chunk = fit
    sizes = plan_chunks(0, cfg.num_updates, chunk)
    pop, wall0 = _compile_env(spec, plan, sizes, cache, log)
    run = _train_chunks(spec, plan, pop, sizes, wall0)
    result = _env_result(spec, plan, peak, pop, flops, xla, run)
    if pop.nonfinite is not None:
        bad = pop.nonfinite
        log(f"{spec.name}: warning: non-finite {bad.what} (seed {bad.seed}); train would stop")
    solve = result.solve_wall_s
    solved = f"solved in {solve:.1f} s" if solve is not None else "threshold not reached"
    log(
        f"{spec.name}: {result.steps_per_s:,.0f} steps/s over {plan.seeds} seeds, "
        f"return {result.final_return:.1f} ± {result.final_return_ci95:.1f} after "
        f"{result.env_steps:,} steps/seed, {solved} ({time.perf_counter() - start:.0f} s)"
    )
    return result


# =========================================================================== the whole run
def run_benchmark(
    plan: BenchPlan,
    specs: Sequence[EnvSpec],
    log: Log,
    command: str = "purejaxppo bench",
    rejax_python: str | None = None,
) -> BenchResult:
    """Measure everything `plan` asks for, in one process (rejax, when `rejax_python` names
    its environment's interpreter, in a fresh one); see the module docstring."""
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
    device_split = tuple(measure_device_split(plan, peak, cache, log))
    compute = tuple(measure_compute(plan, peak, cache, log))
    scaling = tuple(measure_scaling(plan, peak, cache, log))
    peers = tuple(measure_peers(plan.peer_steps, log, rejax_python))
    return BenchResult(
        plan=plan,
        started=started,
        command=command,
        device=device,
        versions=versions,
        matmul=peak,
        envs=envs,
        device_split=device_split,
        compute=compute,
        scaling=scaling,
        peers=peers,
        reference=REFERENCE,
        wall_s=time.perf_counter() - start,
    )
