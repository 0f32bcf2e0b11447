"""Device memory of a sweep chunk against population size and against total_timesteps.

For each setting this compiles the two programs a sweep runs for one chunk
(`init`, and a `segment_updates`-long scan of PPO updates) and reads XLA's own
memory analysis of them: arguments + outputs + temporaries - donated buffers,
per device. Nothing is trained, so it takes only compile time; where the
backend reports it (GPU, TPU), the peak memory of a short real run is added.

Expected: linear in the population (every member has its own params, optimizer
state, envs and rollout buffers) and flat in total_timesteps (a sweep runs
fixed-size segments and copies the metrics to the host after each).

    .venv/bin/python scripts/sweep_memory.py                      # CartPole defaults
    .venv/bin/python scripts/sweep_memory.py --populations 1 8 64 --timesteps 1e5 1e7
"""

from __future__ import annotations

import argparse

import jax

import purejaxppo as ppo
from purejaxppo.sharding import population_mesh
from purejaxppo.sweep import DEFAULT_SEGMENT_UPDATES, GroupRunner

MIB = 2**20


def footprint(cfg: ppo.PPOConfig, population: int, segment: int) -> dict[str, float]:
    """MiB per device of the init and update programs for a chunk of `population` members."""
    mesh = population_mesh(jax.local_devices()[:1])
    runner = GroupRunner(cfg, population, mesh, segment)
    row = {}
    for name, compiled in zip(("init", "update"), runner.programs(), strict=True):
        m = compiled.memory_analysis()
        row[f"{name}_args"] = m.argument_size_in_bytes / MIB
        row[f"{name}_temp"] = m.temp_size_in_bytes / MIB
        row[f"{name}_total"] = (
            m.argument_size_in_bytes
            + m.output_size_in_bytes
            + m.temp_size_in_bytes
            - m.alias_size_in_bytes
        ) / MIB
    row["total"] = runner.memory_bytes() / MIB
    stats = jax.local_devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:  # GPU/TPU: measure a real (short) run too
        short = GroupRunner(
            cfg.replace(total_timesteps=segment * cfg.batch_size), population, mesh, segment
        )
        short.run_chunk(list(range(population)), [ppo.HParams()] * population)
        row["peak_in_use"] = jax.local_devices()[0].memory_stats()["peak_bytes_in_use"] / MIB
    return row


def show(label: str, value: str, row: dict[str, float]) -> None:
    peak = f"  peak in use {row['peak_in_use']:9.2f}" if "peak_in_use" in row else ""
    print(
        f"{label} {value:>12}  state {row['update_args']:8.2f}  "
        f"update temp {row['update_temp']:8.2f}  init temp {row['init_temp']:7.2f}  "
        f"total {row['total']:8.2f} MiB{peak}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--num-steps", type=int, default=128)
    parser.add_argument("--populations", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--timesteps", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    parser.add_argument("--population-for-timesteps", type=int, default=16)
    parser.add_argument("--segment-updates", type=int, default=DEFAULT_SEGMENT_UPDATES)
    args = parser.parse_args()
    base = ppo.PPOConfig(
        env_name=args.env,
        num_envs=args.num_envs,
        num_steps=args.num_steps,
        total_timesteps=int(args.timesteps[0]),
    )
    print(
        f"{args.env}, {args.num_envs} envs x {args.num_steps} steps, "
        f"segments of {args.segment_updates} updates, one {jax.devices()[0].platform} device "
        "(MiB per device: state = params, optimizer, env states; temp = XLA scratch)"
    )
    print(f"-- against the population (total_timesteps {int(args.timesteps[0]):,})")
    rows = []
    for p in args.populations:
        row = footprint(base, p, args.segment_updates)
        rows.append(row)
        show("population", str(p), row)
    if len(rows) > 1:
        per = (rows[-1]["total"] - rows[0]["total"]) / (args.populations[-1] - args.populations[0])
        print(f"   -> about {per:.3f} MiB more per member")
    print(f"-- against total_timesteps (population {args.population_for_timesteps})")
    totals = []
    for t in args.timesteps:
        row = footprint(
            base.replace(total_timesteps=int(t)),
            args.population_for_timesteps,
            args.segment_updates,
        )
        totals.append(row["total"])
        show("timesteps", f"{int(t):,}", row)
    flat = max(totals) - min(totals)
    print(f"   -> spread {flat:.4f} MiB over a {args.timesteps[-1] / args.timesteps[0]:g}x range")


if __name__ == "__main__":
    main()
