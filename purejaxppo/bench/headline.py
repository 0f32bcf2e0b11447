"""The headline of a benchmark: the reference-recipe figures picked out of a result.

`headline(result)` sets what the run measured of PureJaxRL's CartPole recipe (1
seed; several seeds over the whole machine and on one device; compile time,
utilisation, the compute-bound point, Stable-Baselines3, the fastest CartPole
solve) against issue 5's reference figures; `bench.json`,
`BENCHMARKS.md` and the command's last lines report it.
"""

from __future__ import annotations

import dataclasses
import statistics

from purejaxppo.bench.results import BenchResult, EnvResult, ThroughputPoint
from purejaxppo.bench.suite import reference_recipe


@dataclasses.dataclass(frozen=True)
class Headline:
    """The reference-recipe figures set against issue 5's reference figures (None: not measured).

    Attributes:
      single_seed_steps_per_s: reference recipe, 1 seed, one device: median over the timed
        calls of the `num_envs=4` and `population=1` points (the same program).
      single_seed_compile_s: its compile time.
      multi_seed_steps_per_s: reference recipe, several seeds, whole machine (as
        `purejaxppo train --seeds N` runs them, over every device it uses).
      multi_seed_members: the seed count of that figure.
      multi_seed_devices: the devices it used.
      multi_seed_source: `device split`, `env suite` or `scaling` (older fallbacks when
        the device split was not measured).
      members_per_device: the most members a device runs at once (train's default).
      per_device_steps_per_s: the same seeds and members per device on one device
        (groups in rounds): one device's throughput.
      per_device_rounds: rounds of groups per call on that device.
      device_efficiency: `multi_seed_steps_per_s / (devices x per_device_steps_per_s)`
        (None when the whole machine figure used one device).
      speedup_vs_purejaxrl: `multi_seed_steps_per_s` / the issue's PureJaxRL figure.
      utilisation: fraction of the matmul peak at `multi_seed_steps_per_s`.
      compute_hidden_sizes: the network of the widest compute-bound point.
      compute_steps_per_s, compute_gflops: its throughput (1 seed, one device).
      compute_utilisation: its share of the matmul peak (median call).
      sb3_steps_per_s: measured Stable-Baselines3 steps/s, if installed.
      ratio_vs_sb3: `single_seed_steps_per_s / sb3_steps_per_s`.
      solve_wall_s: the fastest CartPole-v1 time to threshold in the env suite.
      solve_seeds: seeds of that run.
      solve_entry: its suite entry (`CartPole-v1`, or a fast config's name).
    """

    single_seed_steps_per_s: float | None
    single_seed_compile_s: float | None
    multi_seed_steps_per_s: float | None
    multi_seed_members: int | None
    multi_seed_devices: int | None
    multi_seed_source: str | None
    members_per_device: int | None
    per_device_steps_per_s: float | None
    per_device_rounds: int | None
    device_efficiency: float | None
    speedup_vs_purejaxrl: float | None
    utilisation: float | None
    compute_hidden_sizes: tuple[int, ...] | None
    compute_steps_per_s: float | None
    compute_gflops: float | None
    compute_utilisation: float | None
    sb3_steps_per_s: float | None
    ratio_vs_sb3: float | None
    solve_wall_s: float | None
    solve_seeds: int | None
    solve_entry: str | None


def _reference_env(result: BenchResult) -> EnvResult | None:
    """The suite's run of the exact reference recipe, if there is one."""
    ref, _ = reference_recipe()
    for env in result.envs:
        same = (
            env.env_name == ref.env_name
            and env.num_envs == ref.num_envs
            and env.num_steps == ref.num_steps
            and env.hidden_sizes == ref.hidden_sizes
            and env.update_epochs == ref.update_epochs
            and env.num_minibatches == ref.num_minibatches
        )
        if same:
            return env
    return None


@dataclasses.dataclass(frozen=True)
class _Multi:
    rate: float | None = None
    members: int | None = None
    devices: int | None = None
    source: str | None = None
    utilisation: float | None = None
    per_device: ThroughputPoint | None = None


def _multi_seed(result: BenchResult) -> _Multi:
    """The several-seed figures: the device split, else the suite's run, else scaling."""
    split = {p.name: p for p in result.device_split}
    whole = split.get("whole machine")
    if whole is not None and whole.members >= 2:
        return _Multi(
            whole.steps_per_s,
            whole.members,
            whole.devices,
            "device split",
            whole.utilisation,
            split.get("per device"),
        )
    env = _reference_env(result)
    if env is not None and env.seeds >= 2:
        return _Multi(env.steps_per_s, env.seeds, env.devices, "env suite", env.utilisation)
    pops = [p for p in result.scaling if p.axis == "population" and p.members >= 2]
    if pops:
        best = max(pops, key=lambda p: p.members)
        return _Multi(best.steps_per_s, best.members, best.devices, "scaling", best.utilisation)
    return _Multi()


def headline(result: BenchResult) -> Headline:
    """Pick the reference-recipe figures out of a result."""
    ref = result.reference
    # `num_envs=4` and `population=1` are the same program measured twice: pool their calls.
    singles = [
        p
        for p in result.scaling
        if (p.axis == "population" and p.members == 1) or (p.axis == "num_envs" and p.value == 4)
    ]
    single_rate = statistics.median([r for p in singles for r in p.call_rates]) if singles else None
    single_compile = min(p.compile_s for p in singles) if singles else None
    multi = _multi_seed(result)
    per_device = multi.per_device
    efficiency = None
    if per_device is not None and multi.rate and multi.devices and multi.devices > 1:
        efficiency = multi.rate / (multi.devices * per_device.steps_per_s)
    # The widest compute-bound point: the most arithmetic per dispatched op.
    compute = max(result.compute, key=lambda p: p.hidden_sizes) if result.compute else None
    sb3 = next((p for p in result.peers if p.name == "stable-baselines3" and p.available), None)
    # The fastest CartPole solve in the suite (e.g. a shipped fast config beside the reference).
    cartpoles = [e for e in result.envs if e.env_name == "CartPole-v1"]
    solved = [e for e in cartpoles if e.solve_wall_s is not None]
    solve_env = (
        min(solved, key=lambda e: e.solve_wall_s or 0.0)
        if solved
        else (cartpoles[0] if cartpoles else None)
    )
    return Headline(
        single_seed_steps_per_s=single_rate,
        single_seed_compile_s=single_compile,
        multi_seed_steps_per_s=multi.rate,
        multi_seed_members=multi.members,
        multi_seed_devices=multi.devices,
        multi_seed_source=multi.source,
        members_per_device=per_device.members_per_device if per_device else None,
        per_device_steps_per_s=per_device.steps_per_s if per_device else None,
        per_device_rounds=per_device.rounds if per_device else None,
        device_efficiency=efficiency,
        speedup_vs_purejaxrl=multi.rate / ref.purejaxrl_steps_per_s if multi.rate else None,
        utilisation=multi.utilisation,
        compute_hidden_sizes=compute.hidden_sizes if compute else None,
        compute_steps_per_s=compute.steps_per_s if compute else None,
        compute_gflops=compute.gflops if compute else None,
        compute_utilisation=compute.utilisation if compute else None,
        sb3_steps_per_s=sb3.steps_per_s if sb3 else None,
        ratio_vs_sb3=single_rate / sb3.steps_per_s if (sb3 and single_rate) else None,
        solve_wall_s=solve_env.solve_wall_s if solve_env else None,
        solve_seeds=solve_env.seeds if solve_env else None,
        solve_entry=solve_env.name if solve_env else None,
    )
