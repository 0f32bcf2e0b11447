"""Is "Dr. GRPO beats GRPO on CartPole" the estimator or the entropy bonus's scale?

    python scripts/grpo_entropy.py [--seeds 10] [--group-size 8] [--budget 1000000]

GRPO's group advantages have unit spread inside every group; Dr. GRPO's are GRPO's times
the group's return std (tens to hundreds on CartPole), and neither is normalised again in
group mode. So the shipped entropy bonus (`ent_coef` 0.01) weighs that many times more
against the surrogate under GRPO. This trains GRPO and Dr. GRPO, each with the shipped
`ent_coef` and with 0, on CartPole-v1 with the group settings of
`scripts/critic_vs_group.py` (16 envs, `num_steps` 500, no reward normalisation, the rest
from configs/CartPole-v1.yaml), the seeds vmapped in one program per arm (member i has
`jax.random.key(i)`, the same keys in every arm), and prints the final return per arm
(IQM [95% stratified bootstrap CI] and mean +- 95% t-CI, `purejaxppo.run.stats`) and
P(Dr. GRPO > GRPO) at each `ent_coef`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import purejaxppo as ppo
from purejaxppo.run.config import load_run_config
from purejaxppo.run.rundir import final_return
from purejaxppo.run.stats import iqm_ci, probability_of_improvement
from purejaxppo.sweep.results import t_quantile_975

CONFIG = Path(__file__).resolve().parent.parent / "configs" / "CartPole-v1.yaml"
GROUP_NUM_ENVS = 16
EPISODE_STEPS = 500  # CartPole-v1's time limit: one whole episode per env per update


def run_arm(normalize: bool, ent_coef: float | None, args: argparse.Namespace) -> np.ndarray:
    """Final returns `[seeds]` of one arm (`ent_coef` None = the shipped value)."""
    rc = load_run_config(CONFIG)
    cfg = rc.ppo.replace(
        advantage="group",
        group_size=args.group_size,
        group_normalize=normalize,
        num_envs=GROUP_NUM_ENVS,
        num_steps=EPISODE_STEPS,
        normalize_rewards=False,
        total_timesteps=args.budget,
    )
    hp = rc.hparams if ent_coef is None else rc.hparams.replace(ent_coef=ent_coef)
    keys = jnp.stack([jax.random.key(s) for s in range(args.seeds)])  # as critic_vs_group.py
    out = jax.jit(jax.vmap(ppo.make_train(cfg), (0, None)))(keys, hp)
    returns = np.asarray(out.metrics["episode_return"])
    return np.array([final_return(row) for row in returns])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per arm (default 10)")
    parser.add_argument("--group-size", type=int, default=8, help="G (default 8)")
    parser.add_argument("--budget", type=int, default=1_000_000, help="env steps per seed")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.group_size < 1 or GROUP_NUM_ENVS % args.group_size:
        print("grpo_entropy: --seeds >= 1 and a --group-size dividing 16", file=sys.stderr)
        return 2
    shipped = float(load_run_config(CONFIG).hparams.ent_coef)
    print("| variant | ent_coef | final return IQM [95% CI] | mean ± 95% t-CI | seconds |")
    print("|---|---:|---|---|---:|")
    finals: dict[tuple[bool, float], np.ndarray] = {}
    for ent in (shipped, 0.0):
        for normalize in (True, False):
            start = time.perf_counter()
            f = finals[normalize, ent] = run_arm(normalize, ent, args)
            est, n = iqm_ci(f), f.size
            half = t_quantile_975(n - 1) * f.std(ddof=1) / np.sqrt(n) if n > 1 else 0.0
            label = f"{'GRPO' if normalize else 'Dr. GRPO'} G={args.group_size}"
            print(
                f"| {label} | {ent:g} | {est.point:.1f} [{est.low:.1f}, {est.high:.1f}] | "
                f"{f.mean():.1f} ± {half:.1f} | {time.perf_counter() - start:.0f} |",
                flush=True,
            )
    print()
    print("| ent_coef | P(Dr. GRPO > GRPO) [95% CI] |")
    print("|---:|---|")
    for ent in (shipped, 0.0):
        p = probability_of_improvement(finals[False, ent], finals[True, ent])
        print(f"| {ent:g} | {p.point:.2f} [{p.low:.2f}, {p.high:.2f}] |")
    p = probability_of_improvement(finals[True, 0.0], finals[True, shipped])
    print(f"\nP(GRPO ent_coef 0 > GRPO ent_coef {shipped:g}) = {p.point:.2f}", end=" ")
    print(f"[{p.low:.2f}, {p.high:.2f}]")
    for (normalize, ent), f in finals.items():
        label = "GRPO" if normalize else "Dr. GRPO"
        print(f"{label} ent_coef {ent:g} per-seed finals: {', '.join(f'{x:.1f}' for x in f)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
