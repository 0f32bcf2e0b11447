"""Final returns of the shipped configs over many seeds, next to published figures.

    .venv/bin/python scripts/returns_table.py [--envs A,B] [--seeds 16] [--out FILE.json]

Trains every listed config (configs/<env>.yaml) to its `total_timesteps` with
`--seeds` seeds vmapped and sharded over one XLA host device per core, exactly
as `purejaxppo bench --full` does for its suite, and prints a markdown table:
final return (per seed the mean over the last 5% of updates, then mean ± 95%
Student-t CI over seeds), wall clock including compilation, and the published
RL Baselines3 Zoo and gymnax figures for the same env (see docs/benchmark.md
for what those figures are). `--out` also keeps the raw results as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from purejaxppo.run.devices import ensure_host_devices

CLASSIC = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1")
MINATAR = (
    "Breakout-MinAtar",
    "Asterix-MinAtar",
    "Freeway-MinAtar",
    "SpaceInvaders-MinAtar",
    "Seaquest-MinAtar",
)

# DLR-RM/rl-baselines3-zoo benchmark.md (commit 0088472b), PPO rows: one trained agent,
# deterministic evaluation, mean ± std over evaluation episodes; training steps in brackets.
ZOO_PPO = {
    "CartPole-v1": "500.0 ± 0.0 (100k)",
    "Acrobot-v1": "-73.5 ± 18.2 (1M)",
    "MountainCar-v0": "-110.4 ± 19.5 (1M)",
    "MountainCarContinuous-v0": "88.3 ± 2.6 (20k)",
    "Pendulum-v1": "-172.2 ± 104.2 (100k)",
}
# gymnax README, "Ckpt (Return)" column: gymnax-blines' PPO/ES checkpoints (no spread given).
GYMNAX = {
    "CartPole-v1": "500",
    "Acrobot-v1": "-80",
    "MountainCar-v0": "-118",
    "MountainCarContinuous-v0": "92",
    "Pendulum-v1": "-130",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", default=",".join(CLASSIC + MINATAR))
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    ensure_host_devices()  # before jax starts: one XLA host device per core

    from purejaxppo.bench.hw import device_info, measure_matmul_peak
    from purejaxppo.bench.measure import measure_env
    from purejaxppo.bench.population import PopulationCache
    from purejaxppo.bench.report import clean_json
    from purejaxppo.bench.suite import PLANS, parse_envs, resolve_env

    plan = dataclasses.replace(PLANS["full"], seeds=args.seeds)
    start = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {line}", file=sys.stderr, flush=True)

    log(f"device: {device_info().describe()}")
    peak = measure_matmul_peak(plan.matmul_size, plan.matmul_s)
    rows, results = [], []
    for name in parse_envs(args.envs, ()):
        spec = resolve_env(name)
        res = measure_env(spec, plan, peak, PopulationCache(), log)
        results.append(res)
        wall = res.compile_s + res.train_s
        ci = f" ± {res.final_return_ci95:.1f}" if res.seeds > 1 else ""
        rows.append(
            f"| {name} | {res.seeds} | {res.env_steps:,} | {res.final_return:.1f}{ci} | "
            f"{wall:.0f} s | {ZOO_PPO.get(spec.ppo.env_name, 'n/a')} | "
            f"{GYMNAX.get(spec.ppo.env_name, 'n/a')} |"
        )
        if args.out is not None:
            args.out.write_text(json.dumps(clean_json(results), indent=2) + "\n")
    print(
        "| env | seeds | env steps/seed | final return (mean ± 95% CI) | wall incl. compile "
        "| RL Zoo3 PPO | gymnax ckpt |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
