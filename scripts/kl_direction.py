"""Which KL direction works better in the KL-penalty objective? Side by side, same seeds.

    python scripts/kl_direction.py [--seeds 4]

Runs `objective: kl_penalty` with `kl_direction: new_old` (the note's KL(pi_theta || q))
and `old_new` (the PPO paper's KL(pi_old || pi_theta)) on CartPole-v1 (the shipped
variant config, 1e5 steps) and Pendulum-v1 (the shipped config, 3e5 steps), the seeds
vmapped in one program, and prints the final return (mean +- 95% CI over seeds, the
project's final-return rule), the mean measured KL and the mean beta.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import purejaxppo as ppo
from purejaxppo.run.config import load_run_config
from purejaxppo.run.rundir import final_return
from purejaxppo.sweep.results import t_quantile_975

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CASES = (
    ("CartPole-v1", CONFIGS / "variants" / "CartPole-v1-kl-penalty.yaml", 100_000),
    ("Pendulum-v1", CONFIGS / "Pendulum-v1.yaml", 300_000),
)


def run_case(path: Path, steps: int, direction: str, seeds: int) -> dict[str, float]:
    """Train `seeds` seeds of the config with the KL penalty in `direction`."""
    rc = load_run_config(path)
    cfg = rc.ppo.replace(total_timesteps=steps, objective="kl_penalty", kl_direction=direction)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, rc.hparams)
    returns = np.asarray(out.metrics["episode_return"])
    finals = np.array([final_return(row) for row in returns])
    half = t_quantile_975(seeds - 1) * finals.std(ddof=1) / np.sqrt(seeds) if seeds > 1 else 0
    return {
        "mean": float(finals.mean()),
        "ci": float(half),
        "kl": float(np.nanmean(out.metrics["kl"])),
        "beta": float(np.mean(out.metrics["kl_coef"])),
        "seconds": time.perf_counter() - start,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=4, help="seeds per case (default 4)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print("kl_direction: --seeds: expected a positive integer", file=sys.stderr)
        return 2
    print("| env | kl_direction | final return (95% CI) | mean KL | mean beta | seconds |")
    print("|---|---|---|---:|---:|---:|")
    for env, path, steps in CASES:
        for direction in ("new_old", "old_new"):
            r = run_case(path, steps, direction, args.seeds)
            print(
                f"| {env} | {direction} | {r['mean']:.1f} ± {r['ci']:.1f} | {r['kl']:.4f} | "
                f"{r['beta']:.3f} | {r['seconds']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
