"""Used fraction of simulated env steps in `group` mode: `group_reset` update vs longest.

    .venv/bin/python scripts/group_sync_usage.py [--out docs/critic-vs-group/protocol-sync]
        [--env Acrobot-v1] [--budget 200000] [--seeds 3] [--learning-rate 1e-3]
        [--ent-coef 0] [--score reward_to_go]

Trains the critic-protocol's group arm (16 envs in groups of 8, `num_steps` = the time
limit, the env's shipped config, gamma 0.99, no KL term) in both `group_reset` modes and,
before every update, replays that update's rollout exactly (the same keys, split as
`Trainer.update` splits them) to count the steps whose loss weight is non-zero: the first
episode of every env (`update`) or the episodes of every complete round (`longest`).
Reports the fraction of all `num_envs x num_steps` simulated steps, per update and over
training, and the final return. Writes `used_fraction.json` and `used_fraction.md`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def used_fraction(trainer, state, hparams):
    """Fraction of the next update's `[T, N]` steps that weigh in its loss (a scalar)."""
    import jax
    import jax.numpy as jnp

    from purejaxppo.gae import first_episode_mask
    from purejaxppo.rollout import group_reset, make_sync_group_batch, sync_rollout

    _, rollout_key, _, reset_key = jax.random.split(state.key, 4)
    state = group_reset(trainer, state, reset_key)
    if trainer.config.group_reset == "longest":
        _, steps = sync_rollout(trainer, state, hparams, rollout_key)
        batch, _ = make_sync_group_batch(trainer, steps, hparams)
        return jnp.mean(batch.mask > 0)
    _, trajectory, _ = trainer.rollout(state, hparams, rollout_key)
    return jnp.mean(first_episode_mask(trajectory.done))


def measure(args: argparse.Namespace, mode: str) -> list[dict]:
    """Train `--seeds` seeds in `mode` (one compiled program), one row per seed."""
    import jax

    from purejaxppo.run.config import load_run_config
    from purejaxppo.run.rundir import final_return
    from purejaxppo.train import _as_float, make_trainer

    run = load_run_config(ROOT / "configs" / f"{args.env}.yaml")
    import gymnax

    steps = int(gymnax.make(args.env)[1].max_steps_in_episode)
    cfg = run.ppo.replace(
        num_envs=16,
        num_steps=steps,
        total_timesteps=max(args.budget, 16 * steps),
        advantage="group",
        group_size=8,
        group_score=args.score,
        normalize_rewards=False,
        group_reset=mode,
    )
    hparams = _as_float(
        run.hparams.replace(
            gamma=0.99, ref_kl_coef=0.0, learning_rate=args.learning_rate, ent_coef=args.ent_coef
        )
    )
    trainer = make_trainer(cfg)
    probe = jax.jit(lambda s: used_fraction(trainer, s, hparams))
    update = jax.jit(trainer.update)
    rows = []
    for seed in range(args.seeds):
        state = trainer.init(jax.random.key(seed), hparams)
        fractions, returns = [], []
        for _ in range(cfg.num_updates):
            fractions.append(float(probe(state)))
            state, metrics = update(state, hparams)
            returns.append(float(metrics["episode_return"]))
        rows.append(
            {
                "mode": mode,
                "seed": seed,
                "fractions": fractions,
                "mean_fraction": float(np.mean(fractions)),
                "final_return": float(final_return(np.asarray(returns))),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/critic-vs-group/protocol-sync")
    parser.add_argument("--env", default="Acrobot-v1")
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--ent-coef", type=float, default=0.0)
    parser.add_argument("--score", default="reward_to_go", choices=("reward_to_go", "outcome"))
    args = parser.parse_args(argv)
    start = time.perf_counter()
    modes = ("update", "longest")
    rows = [row for mode in modes for row in measure(args, mode)]
    wall = time.perf_counter() - start
    shown = sys.argv[1:] if argv is None else argv
    result = {
        "command": " ".join(["scripts/group_sync_usage.py", *shown]),
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": wall,
        "load_average": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "used_fraction.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Used fraction of simulated steps, {args.env}, group_score {args.score}, "
        f"{args.budget:,} env steps per seed, lr {args.learning_rate:g}, ent {args.ent_coef:g}.",
        "",
        "| group_reset | seed | first update | last update | mean over training | final return |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        f = r["fractions"]
        lines.append(
            f"| {r['mode']} | {r['seed']} | {f[0]:.3f} | {f[-1]:.3f} | "
            f"{r['mean_fraction']:.3f} | {r['final_return']:.1f} |"
        )
    (args.out / "used_fraction.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wall {wall:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
