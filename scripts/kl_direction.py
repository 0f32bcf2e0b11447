"""Which KL direction works better in the KL-penalty objective? Side by side, same seeds.

    python scripts/kl_direction.py [--seeds 10]

Runs `objective: kl_penalty` with `kl_direction: new_old` (the note's KL(pi_theta || q))
and `old_new` (the PPO paper's KL(pi_old || pi_theta)) on CartPole-v1 (the shipped
variant config, 1e5 steps) and Pendulum-v1 (the shipped config, 3e5 steps), the seeds
vmapped in one program (the same seeds for both directions), and prints per case the
final return as IQM with a 95% stratified bootstrap CI (`purejaxppo.run.stats`) and as
mean +- 95% t-CI over seeds (the project's final-return rule), the mean measured KL, the
mean beta and the seconds; then, per env, the probability that a `new_old` seed ends
above an `old_new` seed (0.5 = no difference) with its 95% bootstrap CI.
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
from purejaxppo.run.stats import iqm_ci, probability_of_improvement
from purejaxppo.sweep.results import t_quantile_975

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CASES = (
    ("CartPole-v1", CONFIGS / "variants" / "CartPole-v1-kl-penalty.yaml", 100_000),
    ("Pendulum-v1", CONFIGS / "Pendulum-v1.yaml", 300_000),
)
DIRECTIONS = ("new_old", "old_new")


def run_case(path: Path, steps: int, direction: str, seeds: int) -> dict[str, object]:
    """Train `seeds` seeds of the config with the KL penalty in `direction`: the final
    returns `[seeds]`, the mean KL and beta, and the seconds (compile included)."""
    rc = load_run_config(path)
    cfg = rc.ppo.replace(total_timesteps=steps, objective="kl_penalty", kl_direction=direction)
    keys = jax.random.split(jax.random.key(0), seeds)
    start = time.perf_counter()
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, rc.hparams)
    returns = np.asarray(out.metrics["episode_return"])
    return {
        "finals": np.array([final_return(row) for row in returns]),
        "kl": float(np.nanmean(out.metrics["kl"])),
        "beta": float(np.mean(out.metrics["kl_coef"])),
        "seconds": time.perf_counter() - start,
    }


def summary_row(env: str, direction: str, r: dict[str, object]) -> str:
    """One table row: IQM [95% bootstrap CI], mean +- 95% t-CI, mean KL, mean beta, seconds."""
    finals = np.asarray(r["finals"])
    n = finals.size
    half = t_quantile_975(n - 1) * finals.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
    est = iqm_ci(finals)
    return (
        f"| {env} | {direction} | {est.point:.1f} [{est.low:.1f}, {est.high:.1f}] | "
        f"{finals.mean():.1f} ± {half:.1f} | {r['kl']:.4f} | {r['beta']:.3f} | "
        f"{r['seconds']:.0f} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per case (default 10)")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        print("kl_direction: --seeds: expected a positive integer", file=sys.stderr)
        return 2
    print(
        "| env | kl_direction | final return IQM [95% CI] | mean ± 95% t-CI | mean KL "
        "| mean beta | seconds |"
    )
    print("|---|---|---|---|---:|---:|---:|")
    finals: dict[str, dict[str, np.ndarray]] = {}
    for env, path, steps in CASES:
        for direction in DIRECTIONS:
            r = run_case(path, steps, direction, args.seeds)
            finals.setdefault(env, {})[direction] = np.asarray(r["finals"])
            print(summary_row(env, direction, r), flush=True)
    print()
    print("| env | P(new_old > old_new) [95% CI] |")
    print("|---|---|")
    for env, by_direction in finals.items():
        p = probability_of_improvement(by_direction["new_old"], by_direction["old_new"])
        print(f"| {env} | {p.point:.2f} [{p.low:.2f}, {p.high:.2f}] |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
